//! `arictl identity` and `arictl attest`: the calling agent's own identity and runtime
//! attestations (agent side, agent socket).

use crate::cli::Cli;
use crate::print_json;
use crate::rpc::call;
use anyhow::Result;
use ari::protocol::agent::AttestParams;
use ari::protocol::call;
use ari::protocol::daemon::NoParams;

/// `arictl identity`: the agent's identity, or only its public JWK.
pub(crate) fn identity(cli: &Cli, jwk: bool) -> Result<()> {
    let me = call::<call::AgentIdentity>(&cli.agent_socket, &NoParams {})?;
    if jwk {
        return print_json(&me.key.jwk);
    }
    print_json(&me)
}

/// `arictl attest`: an attestation answering a verifier's nonce.
pub(crate) fn attest(cli: &Cli, nonce: &str) -> Result<()> {
    let params = AttestParams {
        nonce: nonce.to_owned(),
    };
    print_json(&call::<call::AgentAttest>(&cli.agent_socket, &params)?)
}
