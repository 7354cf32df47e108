//! The one way `arictl` calls the daemon: every command's call goes through [`call`], typed by
//! the method's marker in [`ari::protocol::call`], so `arictl` sends the params type and reads
//! the result type the daemon itself uses; a socket that cannot be reached gets a hint (which
//! group may use it, or which flag points at it).

use anyhow::{Result, anyhow};
use ari::client::{Client, ClientError};
use ari::protocol::Call;
use std::path::Path;

/// Calls method `C` with `params` on the daemon at `socket` and returns its result.
pub(crate) fn call<C: Call>(socket: &Path, params: &C::Params) -> Result<C::Result> {
    let mut client = Client::connect(socket).map_err(|e| hint(e, socket))?;
    Ok(client.request::<C>(params)?)
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

pub(crate) use ari::protocol::wire_name;

/// A command-line value read as its wire type (a level, a status, an outcome), refused here with
/// the values `flag` takes rather than by the daemon.
pub(crate) fn parse_wire<T: serde::de::DeserializeOwned>(
    flag: &str,
    text: &str,
    takes: &str,
) -> Result<T> {
    serde_json::from_value(serde_json::Value::from(text))
        .map_err(|_| anyhow!("{flag} {text:?}: expected {takes}"))
}
