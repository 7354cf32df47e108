//! The key set's wire types: `admin.keys_export` (every public key a verifier needs, as one JWK
//! Set) and `admin.keys_rotate` (hand the daemon's issuer or log role to a new key).
//!
//! The key set itself is [`crate::keyset::KeySet`], the same document the daemon publishes as
//! `jwks.json`; its members are described in `docs/formats.md`.

use crate::jose::Jwk;
use serde::{Deserialize, Serialize};

/// A role the daemon's own keys play, as `admin.keys_rotate` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DaemonRole {
    /// The voucher issuer key.
    Issuer,
    /// The evidence log key.
    Log,
}

impl DaemonRole {
    /// `issuer` or `log`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Issuer => "issuer",
            Self::Log => "log",
        }
    }
}

/// The params of `admin.keys_rotate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateParams {
    /// The role to hand to a new key.
    pub role: DaemonRole,
    /// Seconds during which verifiers accept the old key as they accept the new one; the
    /// configured `keys.rotation_overlap_s` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlap_s: Option<u64>,
}

/// The result of `admin.keys_rotate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rotated {
    /// The role rotated.
    pub role: DaemonRole,
    /// The old key's thumbprint: it signs nothing from now on.
    pub old_kid: String,
    /// The new key's thumbprint.
    pub kid: String,
    /// The new public key.
    pub jwk: Jwk,
    /// Unix seconds: the moment of rotation.
    pub rotated_at: i64,
    /// Unix seconds: the end of the overlap.
    pub overlap_until: i64,
    /// The `key.rotated` evidence entry.
    pub log_index: u64,
}
