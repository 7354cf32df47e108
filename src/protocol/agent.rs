//! The agents' wire types: who the caller is (`agent.identity`), runtime attestations
//! (`agent.attest`), and the agent lifecycle on the admin socket (`admin.agent_*`).
//!
//! Params refuse unknown members; results are read leniently by clients, so the daemon may add
//! members without breaking them. These are types only: what the daemon does with them is
//! `service::agent` and `service::admin`.

use crate::attest::tpm::Certification;
use crate::backend::KeyAttributes;
use crate::identity::certificate::CertificateSummary;
use crate::identity::{AgentStatus, Selectors};
use crate::jose::Jwk;
use serde::{Deserialize, Serialize};

/// `{ "agent": ID }`: the params of the methods that act on one agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentParam {
    /// The agent's id.
    pub agent: String,
}

/// The params of `agent.attest`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttestParams {
    /// The verifier's nonce: 8 to 512 bytes without control characters.
    pub nonce: String,
}

/// The result of `agent.attest`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attestation {
    /// The attestation, a compact JWS signed with the agent's key.
    pub attestation: String,
    /// The agent key's thumbprint.
    pub kid: String,
    /// The attestation bundle bound to the challenge: base64url of its JSON bytes.
    pub bundle: String,
    /// The `agent.attested` evidence entry recording it.
    pub log_index: u64,
}

/// The params of `admin.agent_provision`: the agent's id, its user, and its selectors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvisionParams {
    /// The new agent's id.
    pub agent: String,
    /// The user it acts for.
    pub user: String,
    /// The uid its process runs as.
    pub uid: u32,
    /// The gid its process runs as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    /// The SHA-256 of its executable, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exe_sha256: Option<String>,
    /// A prefix of its cgroup path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<String>,
    /// Provision an existing agent again: a new key and instance replace the old ones, whose
    /// key is destroyed. Without it an existing id is refused.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rotate: bool,
}

/// The params of `admin.agent_csr`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsrParams {
    /// The agent whose key signs the request.
    pub agent: String,
    /// An RFC 4514 distinguished name.
    pub subject: String,
}

/// The params of `admin.agent_cert_import`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertImportParams {
    /// The agent whose key the certificate certifies.
    pub agent: String,
    /// The certificate, PEM.
    pub certificate: String,
}

/// The public view of an agent, as `agent.identity` and the `admin.agent_*` methods show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentView {
    /// Its id.
    pub agent: String,
    /// Random per registration.
    pub instance: String,
    /// The user it acts for.
    pub user: String,
    /// Where it stands.
    pub status: AgentStatus,
    /// How its process is recognized.
    pub selectors: Selectors,
    /// Its ARI key.
    pub key: AgentKey,
    /// The imported certificate, PEM.
    pub certificate: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
}

/// An agent's key in the [`AgentView`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentKey {
    /// The RFC 7638 thumbprint of `jwk`.
    pub kid: String,
    /// The public key.
    pub jwk: Jwk,
    /// The private key's name in its store (RFC 7512 on PKCS#11).
    pub uri: String,
    /// The private key's protection, as the store reports it.
    pub attributes: KeyAttributes,
    /// The TPM's certification of the key; `None` without a TPM.
    pub certification: Option<Certification>,
}

/// The result of `admin.agent_list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentList {
    /// Every agent, by id, retired ones included.
    pub agents: Vec<AgentView>,
}

/// The result of `admin.agent_retire`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retired {
    /// The agent's id.
    pub agent: String,
    /// Always retired.
    pub status: AgentStatus,
    /// Always true: the key is gone from the store.
    pub key_destroyed: bool,
}

/// The result of `admin.agent_csr`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Csr {
    /// The agent's id.
    pub agent: String,
    /// The PKCS#10 request, PEM.
    pub csr: String,
    /// The `agent.csr_signed` evidence entry recording it.
    pub log_index: u64,
}

/// The result of `admin.agent_cert_import`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertImported {
    /// The agent's id.
    pub agent: String,
    /// What the stored certificate says.
    pub certificate: CertificateSummary,
}
