//! Delegation vouchers (open mandates): what a user lets an agent pay for.
//!
//! A voucher is an SD-JWT VC without disclosures: a compact ES256 JWS (`typ` [`VOUCHER_TYP`])
//! followed by `~`. Its claims follow the AP2 open-mandate shape: `iss`, `sub` (the user),
//! `iat`, `nbf`, `exp`, `jti`, `vct`, `cnf.jwk` (the agent's ARI public key, so only that agent
//! can use it) and `constraints`. A sub-delegation is a voucher signed by the parent voucher's
//! `cnf` key, naming its parent by digest in `parent`, whose constraints may only narrow the
//! parent's. [`verify_chain`] checks a chain offline, from a trusted issuer down to the leaf, and
//! names the check that failed. Nothing here keeps state: budgets and counts are the daemon's.
//! Whether a voucher was revoked or suspended since is not in the voucher but in the status list
//! its `status` claim points at ([`status`]).

pub mod constraint;
pub mod status;

use crate::jose::{self, Header, JoseError, Jwk, PublicKey, SigningInput};
use constraint::Constraint;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The JWS `typ` of a voucher.
pub const VOUCHER_TYP: &str = "dc+sd-jwt";
/// The verifiable-credential type of a voucher.
pub const VOUCHER_VCT: &str = "urn:a2p2:voucher:1";
/// Clock skew tolerated when checking `nbf` and `exp`, in seconds.
pub const CLOCK_SKEW_S: i64 = 60;
/// The longest accepted chain (root voucher plus sub-delegations).
pub const MAX_CHAIN: usize = 8;

/// The confirmation claim: the key that may use the voucher.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Confirmation {
    /// The holder's public key.
    pub jwk: Jwk,
}

/// The claims of a voucher.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoucherClaims {
    /// Who signed it: the issuer's name (root) or the parent agent's id (delegation).
    pub iss: String,
    /// The user whose funds it spends.
    pub sub: String,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Valid from, Unix seconds.
    pub nbf: i64,
    /// Valid until, Unix seconds.
    pub exp: i64,
    /// Unique id.
    pub jti: String,
    /// Always [`VOUCHER_VCT`].
    pub vct: String,
    /// The agent the voucher is for.
    pub agent: String,
    /// The holder's key.
    pub cnf: Confirmation,
    /// Digest ([`digest`]) of the parent voucher, for a sub-delegation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// The limits.
    pub constraints: Vec<Constraint>,
    /// Where its status (valid, revoked, suspended) is published: every voucher the daemon
    /// signs has one; a voucher of another issuer may not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<status::Status>,
}

/// Why a voucher or chain was refused; each variant names one check.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VoucherError {
    /// Not `JWS~`.
    #[error("voucher {index}: not an SD-JWT without disclosures (JWS followed by a single '~')")]
    Format { index: usize },
    /// The JWS failed.
    #[error("voucher {index}: {source}")]
    Jose { index: usize, source: JoseError },
    /// The root is not signed by a trusted issuer key.
    #[error("voucher 0: signed by key {kid:?}, which is not a trusted issuer")]
    UntrustedIssuer { kid: String },
    /// A claim has the wrong value.
    #[error("voucher {index}: {message}")]
    Claim { index: usize, message: String },
    /// Not valid yet.
    #[error("voucher {index}: not valid before {nbf}")]
    NotYetValid { index: usize, nbf: i64 },
    /// Expired.
    #[error("voucher {index}: expired at {exp}")]
    Expired { index: usize, exp: i64 },
    /// A constraint is unknown or malformed.
    #[error("voucher {index}: {source}")]
    Constraint {
        index: usize,
        #[source]
        source: constraint::InvalidConstraint,
    },
    /// A constraint type appears more than once.
    #[error("voucher {index}: a constraint type appears twice")]
    RepeatedConstraint { index: usize },
    /// A delegation does not name its parent.
    #[error("voucher {index}: its parent digest does not match voucher {}", index - 1)]
    Parent { index: usize },
    /// A delegation widens its parent.
    #[error("voucher {index}: {message}; a delegation may only narrow its parent")]
    Widens { index: usize, message: String },
    /// Too long.
    #[error("a voucher chain holds at most {MAX_CHAIN} vouchers")]
    TooLong,
}

/// The digest that names a voucher: base64url(SHA-256(compact form, `~` included)).
pub fn digest(voucher: &str) -> String {
    jose::b64url(&Sha256::digest(voucher.as_bytes()))
}

/// A voucher waiting for its signature.
#[derive(Debug, Clone)]
pub struct VoucherDraft {
    input: SigningInput,
}

impl VoucherDraft {
    /// Encodes the claims under a header naming the signing key.
    pub fn new(claims: &VoucherClaims, signer_kid: &str) -> Result<Self, JoseError> {
        Ok(Self {
            input: SigningInput::new(&Header::es256(VOUCHER_TYP, signer_kid), claims)?,
        })
    }

    /// The digest to sign.
    pub fn digest(&self) -> [u8; 32] {
        self.input.digest()
    }

    /// The compact voucher.
    pub fn finish(self, raw_signature: &[u8; 64]) -> String {
        let mut v = self.input.finish(raw_signature);
        v.push('~');
        v
    }
}

/// What a verification checks besides signatures, links and narrowing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checks {
    /// Check validity windows at this time (with [`CLOCK_SKEW_S`]); `None` skips them.
    pub now: Option<i64>,
    /// Accept constraint types this build does not know. Only the daemon sets this, so that a
    /// payment against such a voucher is a recorded `unknown_constraint` denial; its policy
    /// never lets an unknown constraint pass.
    pub allow_unknown: bool,
}

impl Checks {
    /// Everything, at time `now`.
    pub fn at(now: i64) -> Self {
        Self {
            now: Some(now),
            allow_unknown: false,
        }
    }
}

/// Checks claims that do not depend on other vouchers: shape, time (when asked) and
/// constraints.
pub fn check_claims(
    claims: &VoucherClaims,
    index: usize,
    checks: Checks,
) -> Result<PublicKey, VoucherError> {
    let claim = |message: String| VoucherError::Claim { index, message };
    if claims.vct != VOUCHER_VCT {
        return Err(claim(format!(
            "vct is {:?}, not {VOUCHER_VCT:?}",
            claims.vct
        )));
    }
    if claims.nbf > claims.exp {
        return Err(claim("nbf is after exp".into()));
    }
    if claims.jti.is_empty() || claims.sub.is_empty() || claims.agent.is_empty() {
        return Err(claim("jti, sub and agent must not be empty".into()));
    }
    if let Some(now) = checks.now {
        if now.saturating_add(CLOCK_SKEW_S) < claims.nbf {
            return Err(VoucherError::NotYetValid {
                index,
                nbf: claims.nbf,
            });
        }
        if now.saturating_sub(CLOCK_SKEW_S) >= claims.exp {
            return Err(VoucherError::Expired {
                index,
                exp: claims.exp,
            });
        }
    }
    for c in &claims.constraints {
        if checks.allow_unknown && matches!(c, Constraint::Unknown { .. }) {
            continue;
        }
        c.validate()
            .map_err(|source| VoucherError::Constraint { index, source })?;
    }
    let mut kinds: Vec<&str> = claims.constraints.iter().map(Constraint::kind).collect();
    kinds.sort_unstable();
    if kinds.windows(2).any(|w| matches!(w, [a, b] if a == b)) {
        return Err(VoucherError::RepeatedConstraint { index });
    }
    claims
        .cnf
        .jwk
        .to_public_key()
        .map_err(|source| VoucherError::Jose { index, source })
}

/// Checks that `child`'s limits are all within `parent`'s.
pub fn check_narrowing(
    child: &VoucherClaims,
    parent: &VoucherClaims,
    index: usize,
) -> Result<(), VoucherError> {
    let widens = |message: String| VoucherError::Widens { index, message };
    if child.sub != parent.sub {
        return Err(widens("it names another user".into()));
    }
    if child.nbf < parent.nbf || child.exp > parent.exp {
        return Err(widens(
            "its validity window reaches outside the parent's".into(),
        ));
    }
    for p in &parent.constraints {
        match child.constraints.iter().find(|c| c.kind() == p.kind()) {
            None => return Err(widens(format!("it drops {}", p.kind()))),
            Some(c) if !c.narrows(p) => return Err(widens(format!("its {} is wider", p.kind()))),
            Some(_) => {}
        }
    }
    Ok(())
}

/// Splits `JWS~` and refuses disclosures.
fn jws_of(voucher: &str, index: usize) -> Result<&str, VoucherError> {
    match voucher.strip_suffix('~') {
        Some(jws) if !jws.contains('~') => Ok(jws),
        _ => Err(VoucherError::Format { index }),
    }
}

/// Verifies a chain, root first, against trusted issuer keys at time `now`. Returns the claims
/// of every voucher, root first.
pub fn verify_chain(
    chain: &[&str],
    trusted: &[PublicKey],
    now: i64,
) -> Result<Vec<VoucherClaims>, VoucherError> {
    verify_chain_with(chain, trusted, Checks::at(now))
}

/// As [`verify_chain`] with chosen [`Checks`]: the daemon checks time at each decision instead,
/// so an expired voucher is a recorded denial rather than an unreadable one.
pub fn verify_chain_with(
    chain: &[&str],
    trusted: &[PublicKey],
    checks: Checks,
) -> Result<Vec<VoucherClaims>, VoucherError> {
    if chain.is_empty() || chain.len() > MAX_CHAIN {
        return Err(VoucherError::TooLong);
    }
    let mut verified: Vec<VoucherClaims> = Vec::with_capacity(chain.len());
    let mut signer: Option<PublicKey> = None;
    for (index, voucher) in chain.iter().enumerate() {
        let jws = jws_of(voucher, index)?;
        let key = match signer {
            Some(k) => k,
            None => {
                let kid = jose::peek_header(jws)
                    .map_err(|source| VoucherError::Jose { index, source })?
                    .kid;
                *trusted
                    .iter()
                    .find(|k| k.thumbprint() == kid)
                    .ok_or(VoucherError::UntrustedIssuer { kid })?
            }
        };
        let v = jose::verify::<VoucherClaims>(jws, &key, VOUCHER_TYP)
            .map_err(|source| VoucherError::Jose { index, source })?;
        if v.header.kid != key.thumbprint() {
            return Err(VoucherError::Claim {
                index,
                message: "kid is not the signer's thumbprint".into(),
            });
        }
        let holder = check_claims(&v.payload, index, checks)?;
        match (
            index.checked_sub(1).and_then(|i| chain.get(i)),
            verified.last(),
        ) {
            (Some(prev), Some(parent)) => {
                if v.payload.parent.as_deref() != Some(digest(prev).as_str()) {
                    return Err(VoucherError::Parent { index });
                }
                check_narrowing(&v.payload, parent, index)?;
            }
            _ if v.payload.parent.is_some() => {
                return Err(VoucherError::Claim {
                    index,
                    message: "the root names a parent".into(),
                });
            }
            _ => {}
        }
        signer = Some(holder);
        verified.push(v.payload);
    }
    Ok(verified)
}

/// The lowest autonomy level in the chain; `None` if a voucher names none.
pub fn level(chain: &[VoucherClaims]) -> Option<constraint::AutonomyLevel> {
    chain
        .iter()
        .map(|v| {
            v.constraints.iter().find_map(|c| match c {
                Constraint::AutonomyLevel { level } => Some(*level),
                _ => None,
            })
        })
        .try_fold(constraint::AutonomyLevel::L5, |low, l| {
            l.map(|l| low.min(l))
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
    use super::constraint::{AutonomyLevel, Currency};
    use super::*;
    use p256::ecdsa::signature::hazmat::PrehashSigner;
    use p256::ecdsa::{Signature, SigningKey};

    fn key(seed: u8) -> (SigningKey, PublicKey) {
        let sk = SigningKey::from_slice(&[seed; 32]).unwrap();
        let pk = PublicKey::from_sec1(sk.verifying_key().to_sec1_point(false).as_bytes()).unwrap();
        (sk, pk)
    }

    fn sign(claims: &VoucherClaims, sk: &SigningKey, pk: &PublicKey) -> String {
        let draft = VoucherDraft::new(claims, &pk.thumbprint()).unwrap();
        let sig: Signature = sk.sign_prehash(&draft.digest()).unwrap();
        draft.finish(&sig.to_bytes().into())
    }

    fn cny() -> Currency {
        Currency::try_from("CNY".to_string()).unwrap()
    }

    fn claims(holder: &PublicKey, constraints: Vec<Constraint>) -> VoucherClaims {
        VoucherClaims {
            iss: "issuer".into(),
            sub: "alice".into(),
            iat: 1000,
            nbf: 1000,
            exp: 2000,
            jti: "v1".into(),
            vct: VOUCHER_VCT.into(),
            agent: "shop-bot".into(),
            cnf: Confirmation {
                jwk: holder.to_jwk(),
            },
            parent: None,
            constraints,
            status: None,
        }
    }

    fn limits(max: u64, level: AutonomyLevel) -> Vec<Constraint> {
        vec![
            Constraint::AmountRange {
                currency: cny(),
                min: None,
                max: Some(max),
            },
            Constraint::Budget {
                currency: cny(),
                max: 10 * max,
            },
            Constraint::AutonomyLevel { level },
        ]
    }

    #[test]
    fn root_and_delegation_verify_and_each_failure_is_named() {
        let (isk, ipk) = key(1);
        let (ask, apk) = key(2);
        let (_, cpk) = key(3);
        let root = sign(&claims(&apk, limits(500, AutonomyLevel::L3)), &isk, &ipk);
        let verified = verify_chain(&[&root], &[ipk], 1500).unwrap();
        assert_eq!(verified[0].agent, "shop-bot");
        assert!(root.ends_with('~'));

        let mut child = claims(&cpk, limits(200, AutonomyLevel::L2));
        child.iss = "shop-bot".into();
        child.agent = "child".into();
        child.parent = Some(digest(&root));
        let delegated = sign(&child, &ask, &apk);
        assert_eq!(
            verify_chain(&[&root, &delegated], &[ipk], 1500)
                .unwrap()
                .len(),
            2
        );

        // Widening, wrong parent, wrong signer, untrusted root, time, tampering.
        let mut wide = child.clone();
        wide.constraints = limits(900, AutonomyLevel::L2);
        let wide = sign(&wide, &ask, &apk);
        assert!(matches!(
            verify_chain(&[&root, &wide], &[ipk], 1500),
            Err(VoucherError::Widens { index: 1, .. })
        ));
        let mut dropped = child.clone();
        dropped.constraints.pop();
        let dropped = sign(&dropped, &ask, &apk);
        assert!(matches!(
            verify_chain(&[&root, &dropped], &[ipk], 1500),
            Err(VoucherError::Widens { .. })
        ));
        let mut orphan = child.clone();
        orphan.parent = Some("AAAA".into());
        let orphan = sign(&orphan, &ask, &apk);
        assert!(matches!(
            verify_chain(&[&root, &orphan], &[ipk], 1500),
            Err(VoucherError::Parent { index: 1 })
        ));
        let forged = sign(&child, &isk, &ipk);
        assert!(matches!(
            verify_chain(&[&root, &forged], &[ipk], 1500),
            Err(VoucherError::Jose { index: 1, .. })
        ));
        assert!(matches!(
            verify_chain(&[&root], &[apk], 1500),
            Err(VoucherError::UntrustedIssuer { .. })
        ));
        assert!(matches!(
            verify_chain(&[&root], &[ipk], 500),
            Err(VoucherError::NotYetValid { .. })
        ));
        assert!(matches!(
            verify_chain(&[&root], &[ipk], 2100),
            Err(VoucherError::Expired { .. })
        ));
        let tampered = root.replacen('.', ".e", 1);
        assert!(verify_chain(&[&tampered], &[ipk], 1500).is_err());
        assert!(matches!(
            verify_chain(&[root.trim_end_matches('~')], &[ipk], 1500),
            Err(VoucherError::Format { .. })
        ));
    }

    #[test]
    fn unknown_and_duplicate_constraints_fail() {
        let (isk, ipk) = key(1);
        let (_, apk) = key(2);
        let unknown: Constraint =
            serde_json::from_value(serde_json::json!({"type": "com.example.anything", "x": 1}))
                .unwrap();
        let mut c = claims(&apk, limits(500, AutonomyLevel::L3));
        c.constraints.push(unknown);
        let v = sign(&c, &isk, &ipk);
        match verify_chain(&[&v], &[ipk], 1500) {
            Err(VoucherError::Constraint { source, .. }) => {
                assert!(source.to_string().contains("com.example.anything"))
            }
            other => panic!("{other:?}"),
        }
        let mut dup = claims(&apk, limits(500, AutonomyLevel::L3));
        dup.constraints.push(Constraint::AutonomyLevel {
            level: AutonomyLevel::L5,
        });
        let v = sign(&dup, &isk, &ipk);
        assert!(matches!(
            verify_chain(&[&v], &[ipk], 1500),
            Err(VoucherError::RepeatedConstraint { index: 0 })
        ));
    }
}
