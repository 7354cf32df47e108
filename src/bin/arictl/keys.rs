//! `arictl keys`: export the key set and rotate the daemon's own keys (operator, admin socket).

use crate::cli::{Cli, KeysCmd};
use crate::print_json;
use crate::rpc::call;
use crate::time::parse_duration;
use anyhow::Result;
use ari::protocol::call;
use ari::protocol::daemon::NoParams;
use ari::protocol::keys::{DaemonRole, RotateParams};

/// Runs one `arictl keys` command.
pub(crate) fn run(cli: &Cli, cmd: &KeysCmd) -> Result<()> {
    let admin = &cli.admin_socket;
    match cmd {
        KeysCmd::Export => print_json(&call::<call::AdminKeysExport>(admin, &NoParams {})?),
        KeysCmd::Rotate { role, overlap } => {
            let role = if role == "issuer" {
                DaemonRole::Issuer
            } else {
                DaemonRole::Log
            };
            let params = RotateParams {
                role,
                overlap_s: overlap.as_deref().map(parse_duration).transpose()?,
            };
            print_json(&call::<call::AdminKeysRotate>(admin, &params)?)
        }
    }
}
