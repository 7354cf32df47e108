//! The daemon's own wire types on the admin socket: `admin.status`, `admin.metrics` and
//! `admin.tpm_ak`, and the params of every method that takes none.
//!
//! Types only; what the daemon reports is `service`'s business.

use crate::backend::{CounterValues, QueueDepth};
use crate::jose::Jwk;
use crate::store::VoucherStatus;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The params of a method that takes none: `{}`, refusing any member.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

/// The result of `admin.status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The daemon's version.
    pub version: String,
    /// The kind of key store: `pkcs11` or `tpm`.
    pub backend: String,
    /// The answer to a cheap call to the key store.
    pub backend_health: Health,
    /// Work waiting for the key store and for the ledger writer.
    pub queues: Queues,
    /// The host's boot id.
    pub boot_id: String,
    /// SHA-256 of the configuration in force, hex.
    pub config_sha256: String,
    /// Reloads applied since start.
    pub reloads: u64,
    /// Start time, Unix seconds.
    pub started_at: i64,
    /// Seconds since start.
    pub uptime_s: u64,
    /// Agents by status.
    pub agents: BTreeMap<String, usize>,
    /// Vouchers by status (an active voucher past its end counts as expired).
    pub vouchers: BTreeMap<VoucherStatus, i64>,
    /// The evidence log.
    pub evidence: LogStatus,
    /// The daemon's own keys by role (`issuer`, `log`).
    pub daemon_keys: BTreeMap<String, DaemonKey>,
    /// On a TPM, its counters; else `None`.
    pub tpm: Option<TpmStatus>,
}

/// How the key store answered a cheap call (the issuer key's attributes) in `admin.status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum Health {
    /// It answered.
    Ok {
        /// How long it took, microseconds.
        probe_us: u64,
    },
    /// Its queue is full.
    Busy {
        /// Why, for people.
        detail: String,
    },
    /// It failed, or took over 2 s.
    Error {
        /// Why, for people.
        detail: String,
    },
}

/// The work queues in `admin.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Queues {
    /// Work waiting for the key store's threads.
    pub backend: QueueDepth,
    /// Jobs waiting for the ledger writer.
    pub ledger: QueueDepth,
}

/// The evidence log in `admin.status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogStatus {
    /// The log's name.
    pub origin: String,
    /// Its size.
    pub entries: u64,
    /// The newest signed checkpoint's size; `None` before the first.
    pub checkpoint_size: Option<u64>,
    /// Entries not yet covered by a signed checkpoint.
    pub unsigned: u64,
}

/// One of the daemon's own keys in `admin.status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonKey {
    /// Its thumbprint.
    pub kid: String,
    /// Its name in the key store.
    pub uri: String,
    /// The public key.
    pub jwk: Jwk,
}

/// The TPM in `admin.status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TpmStatus {
    /// The attestation key's thumbprint.
    pub ak: Option<String>,
    /// Commands since start.
    #[serde(flatten)]
    pub counters: CounterValues,
}

/// The result of `admin.metrics`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricsText {
    /// The Prometheus text exposition.
    pub text: String,
}

/// The result of `admin.tpm_ak`: the TPM's attestation key, for enrolment with a verifier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TpmAk {
    /// Its thumbprint.
    pub kid: String,
    /// The public key.
    pub jwk: Jwk,
    /// The public key as SubjectPublicKeyInfo, PEM.
    pub pem: String,
    /// Its `TPMT_PUBLIC`, base64url.
    pub tpm_public: String,
    /// The endorsement key's certificate, PEM, when the TPM holds one.
    pub ek_certificate: Option<String>,
}
