//! Runtime attestation: what the daemon can vouch for about a calling agent process.
//!
//! An attestation is a compact JWS (`typ` [`ATTEST_TYP`]) signed with the agent's ARI key inside
//! the key store. Its claims bind the caller's nonce to the runtime the daemon measured (uid,
//! gid, pid and start time, executable digest, cgroup), the host boot, the daemon build and
//! configuration, and the protection attributes of the signing key. On a PKCS#11 store there is
//! no TPM quote and the claims say so explicitly (`tpm.present = false`), so a verifier's policy
//! decides what that is worth instead of guessing from a missing field. Verifiers ignore claims
//! they do not know, so later versions can add claims without breaking them.

pub mod tpm;

use crate::jose::{self, JoseError, PublicKey};
use serde::{Deserialize, Serialize};

/// The JWS `typ` of an attestation.
pub const ATTEST_TYP: &str = "ari-attest+jwt";

/// Bounds on a caller's nonce, in bytes.
pub const NONCE_BYTES: std::ops::RangeInclusive<usize> = 8..=512;

/// Facts about this host and daemon, fixed for the daemon's life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonFacts {
    /// `/proc/sys/kernel/random/boot_id`.
    pub boot_id: String,
    /// The daemon's version.
    pub version: String,
    /// SHA-256 of the configuration file text, hex.
    pub config_sha256: String,
}

/// The claims of an attestation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttestClaims {
    /// Always `arid`.
    pub iss: String,
    /// The agent id.
    pub sub: String,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// The caller's nonce, verbatim.
    pub nonce: String,
    /// What the daemon vouches for (members at the top level of the claims).
    #[serde(flatten)]
    pub evidence: Evidence,
}

/// What the daemon vouches for about a caller, shared by attestations and the bundles of
/// payments: the agent, the process as measured, the host, the daemon and the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// The agent this key belongs to.
    pub agent: AgentClaim,
    /// The calling process as measured.
    pub runtime: RuntimeClaim,
    /// Host facts.
    pub host: HostClaim,
    /// Daemon facts.
    pub daemon: DaemonClaim,
    /// The signing key and its protection.
    pub key: KeyClaim,
    /// TPM evidence; on PKCS#11 `present` is false and nothing else is given.
    pub tpm: tpm::TpmEvidence,
}

/// Agent identity inside the claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentClaim {
    /// Agent id.
    pub id: String,
    /// Instance id.
    pub instance: String,
    /// The user the agent acts for.
    pub user: String,
}

/// The measured process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeClaim {
    /// uid from the kernel.
    pub uid: u32,
    /// gid from the kernel.
    pub gid: u32,
    /// pid from the kernel.
    pub pid: i32,
    /// Start time in clock ticks since boot, checked after measuring.
    pub start_time: u64,
    /// Executable SHA-256, hex, if readable.
    pub exe_sha256: Option<String>,
    /// cgroup v2 path, if known.
    pub cgroup: Option<String>,
}

/// Host facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostClaim {
    /// Kernel boot id.
    pub boot_id: String,
}

/// Daemon facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonClaim {
    /// Daemon version.
    pub version: String,
    /// Configuration digest.
    pub config_sha256: String,
}

/// The signing key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyClaim {
    /// JWK thumbprint (also the JWS `kid`).
    pub kid: String,
    /// `pkcs11` or `tpm`.
    pub store: String,
    /// The key's URI in its store.
    pub uri: String,
    /// Protection attributes as the store reports them.
    pub attributes: KeyAttributes,
}

/// The protection attributes a store reports for a private key, as a verifier's policy reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyAttributes {
    /// Stored on the token, not only in the session.
    pub token: bool,
    /// Only visible after login.
    pub private: bool,
    /// The value cannot be read in the clear.
    pub sensitive: bool,
    /// Has been sensitive since it was created.
    pub always_sensitive: bool,
    /// Can be exported wrapped.
    pub extractable: bool,
    /// Has never been extractable.
    pub never_extractable: bool,
    /// Was generated on the token (not imported).
    pub local: bool,
    /// Usable for signing.
    pub sign: bool,
    /// Usable for decryption.
    pub decrypt: bool,
    /// Usable for key derivation.
    pub derive: bool,
    /// Usable for unwrapping other keys.
    pub unwrap: bool,
}

impl KeyAttributes {
    /// What a key generated inside the store and kept there reports: sensitive and never
    /// extractable from birth, and good for signing only.
    pub const HARDWARE_RESIDENT: Self = Self {
        token: true,
        private: true,
        sensitive: true,
        always_sensitive: true,
        extractable: false,
        never_extractable: true,
        local: true,
        sign: true,
        decrypt: false,
        derive: false,
        unwrap: false,
    };

    /// Whether the key is protected as this product requires: sensitive and never extractable
    /// from birth, generated in the store, and good for nothing but signing.
    pub fn is_hardware_resident_signing_key(&self) -> bool {
        self.token
            && self.private
            && self.sensitive
            && self.always_sensitive
            && !self.extractable
            && self.never_extractable
            && self.local
            && self.sign
            && !self.decrypt
            && !self.derive
            && !self.unwrap
    }
}

/// The `typ` member of an attestation bundle.
pub const BUNDLE_TYP: &str = "ari-attest-bundle";

/// The attestation bundle of one payment: the runtime the daemon measured when it decided, bound
/// to the payment by its binding digest ([`crate::payment::binding_digest`]). The payment
/// authorization carries the SHA-256 of the bundle's bytes, so the bundle needs no signature of
/// its own. On PKCS#11 there is no TPM quote and `tpm.present` says so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bundle {
    /// Always [`BUNDLE_TYP`].
    pub typ: String,
    /// Measured at, Unix seconds.
    pub iat: i64,
    /// The payment's binding digest.
    pub binding: String,
    /// The agent, its process as measured when the payment was asked for, host, daemon, key.
    #[serde(flatten)]
    pub evidence: Evidence,
}

/// Checks a caller's nonce.
pub fn validate_nonce(nonce: &str) -> Result<(), BadNonce> {
    if !NONCE_BYTES.contains(&nonce.len()) || nonce.chars().any(char::is_control) {
        return Err(BadNonce);
    }
    Ok(())
}

/// A nonce of the wrong length, or holding control characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the nonce must be {} to {} bytes of printable text", NONCE_BYTES.start(), NONCE_BYTES.end())]
pub struct BadNonce;

/// Why an attestation did not verify.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AttestError {
    /// The JWS did not verify.
    #[error(transparent)]
    Jose(#[from] JoseError),
    /// The nonce is not the one the verifier sent.
    #[error("the attestation answers another nonce")]
    Nonce,
    /// The `kid` is not the key's thumbprint.
    #[error("the attestation names another key")]
    Kid,
}

/// Verifies an attestation against the agent's public key and the nonce the verifier chose.
pub fn verify(jws: &str, key: &PublicKey, nonce: &str) -> Result<AttestClaims, AttestError> {
    let v = jose::verify::<AttestClaims>(jws, key, ATTEST_TYP)?;
    let kid = key.thumbprint();
    if v.header.kid != kid || v.payload.evidence.key.kid != kid {
        return Err(AttestError::Kid);
    }
    if v.payload.nonce != nonce {
        return Err(AttestError::Nonce);
    }
    Ok(v.payload)
}
