//! `arictl identity` and `arictl attest`: the calling agent's own identity and runtime
//! attestations (agent side, agent socket).

use crate::cli::Cli;
use crate::print_json;
use crate::rpc::{call, field};
use anyhow::Result;
use serde_json::json;

/// `arictl identity`: the agent's identity, or only its public JWK.
pub(crate) fn identity(cli: &Cli, jwk: bool) -> Result<()> {
    let v = call(&cli.agent_socket, "agent.identity", json!({}))?;
    print_json(if jwk { field(&v, "/key/jwk") } else { &v })
}

/// `arictl attest`: an attestation answering a verifier's nonce.
pub(crate) fn attest(cli: &Cli, nonce: &str) -> Result<()> {
    print_json(&call(
        &cli.agent_socket,
        "agent.attest",
        json!({ "nonce": nonce }),
    )?)
}
