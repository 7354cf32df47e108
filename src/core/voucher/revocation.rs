//! Signed revocation lists: which vouchers an issuer has revoked, for verifiers working offline.
//!
//! A list is a compact ES256 JWS (`typ` [`REVOCATION_TYP`]) signed by the daemon's issuer key in
//! the key store. It names each revoked voucher by id and digest with the time of revocation,
//! so a verifier can tell a payment signed before a revocation from one signed after it. A list
//! is a snapshot: its `iat` says how fresh it is, and a verifier's policy decides how old a list
//! it accepts.

use crate::jose::{self, JoseError, PublicKey};
use serde::{Deserialize, Serialize};

/// The JWS `typ` of a revocation list.
pub const REVOCATION_TYP: &str = "ari-revocations+jwt";

/// One revoked voucher.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revoked {
    /// The voucher's `jti`.
    pub id: String,
    /// Its digest ([`super::digest`]).
    pub digest: String,
    /// When it was revoked, Unix seconds.
    pub revoked_at: i64,
}

/// The claims of a revocation list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevocationList {
    /// The issuer (`urn:ari:issuer:<kid>`).
    pub iss: String,
    /// Made at, Unix seconds.
    pub iat: i64,
    /// Every revoked voucher.
    pub revoked: Vec<Revoked>,
}

impl RevocationList {
    /// Whether the voucher with this digest was revoked at or before `t`.
    pub fn revoked_before(&self, digest: &str, t: i64) -> bool {
        self.revoked
            .iter()
            .any(|r| r.digest == digest && r.revoked_at <= t)
    }

    /// Whether the voucher with this digest is on the list at all.
    pub fn contains(&self, digest: &str) -> bool {
        self.revoked.iter().any(|r| r.digest == digest)
    }
}

/// Verifies a signed list against trusted issuer keys.
pub fn verify(jws: &str, trusted: &[PublicKey]) -> Result<RevocationList, JoseError> {
    let kid = jose::peek_header(jws)?.kid;
    let key = trusted
        .iter()
        .find(|k| k.thumbprint() == kid)
        .ok_or(JoseError::Signature)?;
    Ok(jose::verify::<RevocationList>(jws, key, REVOCATION_TYP)?.payload)
}
