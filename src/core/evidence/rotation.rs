//! Key rotations: the `key.rotated` entry that hands one of the daemon's roles (`issuer`,
//! `log`) from an old key to a new one.
//!
//! Both keys sign the same statement ([`RotationClaims`]: the log, the role, both keys, when,
//! and the end of the overlap) as two ES256 compact JWS of type [`ROTATION_TYP`] with the same
//! payload, one with each key's `kid` in its header. The old key's signature says the holder
//! of the role handed it over; the new key's says the new key's holder took it (and proves it
//! holds the key). [`verify`] checks both signatures, that the payloads are the same bytes,
//! and that the fact names the keys the statement names; a verifier that tracks the log key
//! through a log then accepts checkpoints by the new key after the entry, and the old key's
//! only before it.

use crate::jose::{self, Jwk, PublicKey};
use serde::{Deserialize, Serialize};

/// The `typ` of a rotation statement's JWS.
pub const ROTATION_TYP: &str = "ari-key-rotation+jwt";

/// The statement both keys sign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotationClaims {
    /// The evidence log's origin.
    pub log: String,
    /// The role handed over: `issuer` or `log`.
    pub role: String,
    /// The key that held the role, with its thumbprint as `kid`.
    pub old: Jwk,
    /// The key that holds it from now on, with its thumbprint as `kid`.
    pub new: Jwk,
    /// Unix seconds: the moment of rotation.
    pub iat: i64,
    /// Unix seconds: until when verifiers accept the old key as they accept the new one.
    pub overlap_until: i64,
}

/// One key as a rotation fact names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedKey {
    /// The key's thumbprint.
    pub kid: String,
    /// The public key.
    pub jwk: Jwk,
}

/// The two signatures over the statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotationSignatures {
    /// The statement as a compact JWS by the old key.
    pub old: String,
    /// The same statement as a compact JWS by the new key.
    pub new: String,
}

/// The fact of a `key.rotated` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotationFact {
    /// `issuer` or `log`.
    pub role: String,
    /// The key rotated out.
    pub old: NamedKey,
    /// The key rotated in.
    pub new: NamedKey,
    /// Unix seconds: the end of the overlap.
    pub overlap_until: i64,
    /// The statement signed by both keys.
    pub signatures: RotationSignatures,
}

/// Why a rotation does not verify.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RotationError {
    /// A key named is not a P-256 key, or its `kid` is not its thumbprint.
    #[error("the {0} key: {1}")]
    Key(&'static str, String),
    /// One key's signature does not verify.
    #[error("the {0} key's signature: {1}")]
    Signature(&'static str, #[source] jose::JoseError),
    /// The two JWS do not sign the same statement.
    #[error("the two signatures are over different statements")]
    Different,
    /// The statement and the fact (or the entry) disagree.
    #[error("the statement and the entry disagree on {0}")]
    Disagree(&'static str),
    /// The keys are the same.
    #[error("a key cannot be rotated to itself")]
    Same,
}

fn named(which: &'static str, k: &NamedKey) -> Result<PublicKey, RotationError> {
    let key = k
        .jwk
        .to_public_key()
        .map_err(|e| RotationError::Key(which, e.to_string()))?;
    if key.thumbprint() != k.kid || k.jwk.kid.as_ref().is_some_and(|kid| *kid != k.kid) {
        return Err(RotationError::Key(
            which,
            "the kid is not the key's thumbprint".into(),
        ));
    }
    Ok(key)
}

/// Checks a rotation fact of the log `log`: both signatures over the same statement, and the
/// statement names the log, the role and the keys the fact names. Returns the old and new keys.
pub fn verify(fact: &RotationFact, log: &str) -> Result<(PublicKey, PublicKey), RotationError> {
    let old = named("old", &fact.old)?;
    let new = named("new", &fact.new)?;
    if old == new {
        return Err(RotationError::Same);
    }
    let by_old: jose::Verified<RotationClaims> =
        jose::verify(&fact.signatures.old, &old, ROTATION_TYP)
            .map_err(|e| RotationError::Signature("old", e))?;
    let by_new: jose::Verified<RotationClaims> =
        jose::verify(&fact.signatures.new, &new, ROTATION_TYP)
            .map_err(|e| RotationError::Signature("new", e))?;
    let payload = |jws: &str| jws.split('.').nth(1).map(str::to_string);
    if payload(&fact.signatures.old) != payload(&fact.signatures.new) {
        return Err(RotationError::Different);
    }
    if by_old.header.kid != fact.old.kid || by_new.header.kid != fact.new.kid {
        return Err(RotationError::Disagree("the signers' kid"));
    }
    let c = by_old.payload;
    if c.log != log {
        return Err(RotationError::Disagree("the log"));
    }
    if c.role != fact.role {
        return Err(RotationError::Disagree("the role"));
    }
    if c.old.to_public_key().ok() != Some(old) || c.new.to_public_key().ok() != Some(new) {
        return Err(RotationError::Disagree("the keys"));
    }
    if c.overlap_until != fact.overlap_until {
        return Err(RotationError::Disagree("the overlap"));
    }
    Ok((old, new))
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::jose::{Header, SigningInput};
    use p256::ecdsa::{SigningKey, signature::hazmat::PrehashSigner};

    pub(crate) fn pair(seed: u8) -> (SigningKey, PublicKey) {
        let sk = SigningKey::from_slice(&[seed; 32]).unwrap();
        let pk = PublicKey::from_sec1(sk.verifying_key().to_sec1_point(false).as_bytes()).unwrap();
        (sk, pk)
    }

    fn sign(sk: &SigningKey, pk: &PublicKey, claims: &RotationClaims) -> String {
        let input =
            SigningInput::new(&Header::es256(ROTATION_TYP, &pk.thumbprint()), claims).unwrap();
        let sig: p256::ecdsa::Signature = sk.sign_prehash(&input.digest()).unwrap();
        input.finish(&sig.to_bytes())
    }

    /// A rotation fact of `role` in `log` from key `from` to key `to`, signed by both.
    pub(crate) fn fact(log: &str, role: &str, from: u8, to: u8) -> RotationFact {
        let ((osk, old), (nsk, new)) = (pair(from), pair(to));
        let claims = RotationClaims {
            log: log.into(),
            role: role.into(),
            old: old.to_jwk(),
            new: new.to_jwk(),
            iat: 1_700_000_000,
            overlap_until: 1_700_086_400,
        };
        RotationFact {
            role: role.into(),
            old: NamedKey {
                kid: old.thumbprint(),
                jwk: old.to_jwk(),
            },
            new: NamedKey {
                kid: new.thumbprint(),
                jwk: new.to_jwk(),
            },
            overlap_until: claims.overlap_until,
            signatures: RotationSignatures {
                old: sign(&osk, &old, &claims),
                new: sign(&nsk, &new, &claims),
            },
        }
    }

    #[test]
    fn a_rotation_signed_by_both_keys_verifies() {
        let f = fact("ari.example/log", "log", 1, 2);
        let (old, new) = verify(&f, "ari.example/log").unwrap();
        assert_eq!((old, new), (pair(1).1, pair(2).1));
    }

    #[test]
    fn a_tampered_rotation_is_refused() {
        let f = fact("ari.example/log", "log", 1, 2);
        assert_eq!(
            verify(&f, "ari.example/other"),
            Err(RotationError::Disagree("the log"))
        );
        // A third key named as the new one: its signature does not verify.
        let mut swapped = f.clone();
        let third = pair(3).1;
        swapped.new = NamedKey {
            kid: third.thumbprint(),
            jwk: third.to_jwk(),
        };
        assert!(matches!(
            verify(&swapped, "ari.example/log"),
            Err(RotationError::Signature("new", _))
        ));
        // Only one key's signature: the other is the same JWS twice.
        let mut one = f.clone();
        one.signatures.new = one.signatures.old.clone();
        assert!(verify(&one, "ari.example/log").is_err());
        // Another role in the fact than in the statement.
        let mut role = f.clone();
        role.role = "issuer".into();
        assert_eq!(
            verify(&role, "ari.example/log"),
            Err(RotationError::Disagree("the role"))
        );
        // A signature edited by one bit.
        let mut bad = f.clone();
        let mut sig = bad.signatures.old.into_bytes();
        let last = sig.len() - 2;
        sig[last] = if sig[last] == b'A' { b'B' } else { b'A' };
        bad.signatures.old = String::from_utf8(sig).unwrap();
        assert!(matches!(
            verify(&bad, "ari.example/log"),
            Err(RotationError::Signature("old", _))
        ));
        // Statements that differ: one signed with a longer overlap.
        let other = fact("ari.example/log", "log", 1, 2);
        let ((nsk, new), _) = (pair(2), ());
        let claims = RotationClaims {
            log: "ari.example/log".into(),
            role: "log".into(),
            old: pair(1).1.to_jwk(),
            new: new.to_jwk(),
            iat: 1_700_000_000,
            overlap_until: 1_800_000_000,
        };
        let mut differ = other;
        differ.signatures.new = sign(&nsk, &new, &claims);
        assert_eq!(
            verify(&differ, "ari.example/log"),
            Err(RotationError::Different)
        );
    }
}
