//! The one way `arictl` calls the daemon: every command's call goes through [`call`], so the
//! wire contract is met in one place, and a socket that cannot be reached gets a hint (which
//! group may use it, or which flag points at it).

use anyhow::{Result, anyhow};
use ari::client::{Client, ClientError};
use serde_json::Value;
use std::path::Path;

/// Calls `method` with `params` on the daemon at `socket` and returns its result.
pub(crate) fn call(socket: &Path, method: &str, params: Value) -> Result<Value> {
    let mut client = Client::connect(socket).map_err(|e| hint(e, socket))?;
    Ok(client.call(method, params)?)
}

/// A connection error, with what to do about it.
fn hint(e: ClientError, socket: &Path) -> anyhow::Error {
    match e {
        ClientError::Connect { ref source, .. }
            if source.kind() == std::io::ErrorKind::PermissionDenied =>
        {
            anyhow!(
                "{e}\nhint: the socket's group may use it: operators join the admin socket's group (`ari-admin` in a package install), agent runtimes the agent socket's (`ari-agents`)"
            )
        }
        ClientError::Connect { .. } => anyhow!(
            "{e}\nhint: is arid running? Point arictl at its socket with --admin-socket/--agent-socket or ARI_ADMIN_SOCKET/ARI_AGENT_SOCKET (now {})",
            socket.display()
        ),
        other => other.into(),
    }
}

/// The member of a result at a JSON pointer, or null.
pub(crate) fn field<'a>(v: &'a Value, pointer: &str) -> &'a Value {
    v.pointer(pointer).unwrap_or(&Value::Null)
}
