//! Delegation vouchers: what a user lets an agent pay for, as AP2 open payment mandates.
//!
//! A voucher chain is an AP2 delegate SD-JWT chain ([`crate::sdjwt`]). Its root is an SD-JWT
//! signed by an issuer (`typ` [`VOUCHER_TYP`]); each sub-delegation is a `kb+sd-jwt+kb` hop
//! signed by the key the segment before names in `cnf`, bound to that segment as presented by
//! `sd_hash`. Every segment discloses one open payment mandate ([`crate::mandate`]): the
//! limits, written as AP2 constraints plus the `a2p2` member ([`ap2`]), and the holder's key.
//! Beside it, each segment's payload carries ARI's claims: `iss`, `sub` (the user), `iat`,
//! `nbf`, `exp`, `jti`, `agent` and `status`.
//!
//! [`VoucherClaims`] is one segment read back in ARI's terms; a sub-delegation's may only
//! narrow its parent's. [`verify_chain`] checks a chain offline, from a trusted issuer down to
//! the last holder, and names the check that failed. The digest that names a voucher
//! ([`digest`]) is the `sd_hash` a hop after it carries. Nothing here keeps state: budgets and
//! counts are the daemon's. Whether a voucher was revoked or suspended since is in the status
//! list its `status` claim points at ([`status`]).

pub mod ap2;
pub mod constraint;
pub mod status;

use crate::jose::{self, JoseError, Jwk, PublicKey, SigningInput};
use crate::mandate::OPEN_VCT;
use crate::sdjwt::{self, Binding, Draft, SdJwtError, Segment};
use constraint::Constraint;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The JWS `typ` of a root voucher (an SD-JWT VC).
pub const VOUCHER_TYP: &str = "dc+sd-jwt";
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
    /// The mandate's `vct`: [`OPEN_VCT`].
    pub vct: String,
    /// The agent the voucher is for.
    pub agent: String,
    /// The holder's key.
    pub cnf: Confirmation,
    /// Digest ([`digest`]) of the segment before, for a sub-delegation: taken from the chain,
    /// never from the payload.
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
    /// The SD-JWT chain failed (encoding, a signature, a binding, a type).
    #[error(transparent)]
    Chain(#[from] SdJwtError),
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

/// The digest that names a voucher: base64url SHA-256 of its segment as presented
/// (`<jwt>~<disclosures>~`), which is what a hop after it puts in `sd_hash`.
pub fn digest(segment: &str) -> String {
    sdjwt::digest(segment)
}

/// The member names ARI's own claims take in a segment's payload.
#[derive(Serialize, Deserialize)]
struct Own {
    iss: String,
    sub: String,
    iat: i64,
    nbf: i64,
    exp: i64,
    jti: String,
    agent: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status: Option<status::Status>,
}

impl Own {
    fn of(c: &VoucherClaims) -> Self {
        Self {
            iss: c.iss.clone(),
            sub: c.sub.clone(),
            iat: c.iat,
            nbf: c.nbf,
            exp: c.exp,
            jti: c.jti.clone(),
            agent: c.agent.clone(),
            status: c.status.clone(),
        }
    }
}

/// A voucher segment waiting for its signature.
#[derive(Debug, Clone)]
pub struct VoucherDraft {
    draft: Draft,
    input: SigningInput,
}

impl VoucherDraft {
    /// A root voucher signed by the issuer key `issuer_kid`; `salt` gives a fresh salt (16 random
    /// bytes, base64url) each call.
    pub fn root(
        claims: &VoucherClaims,
        issuer_kid: &str,
        salt: &mut dyn FnMut() -> String,
    ) -> Result<Self, VoucherError> {
        let (mandate, disclosures) = ap2::to_mandate(claims, salt)?;
        let draft = Draft::root(VOUCHER_TYP, issuer_kid, &salt(), mandate, disclosures);
        Self::with_claims(draft, claims)
    }

    /// A sub-delegation of the voucher segment `parent` (as presented), signed by the parent's
    /// holder key `holder_kid`: a `kb+sd-jwt+kb` hop bound by `sd_hash`.
    pub fn delegation(
        claims: &VoucherClaims,
        holder_kid: &str,
        parent: &str,
        salt: &mut dyn FnMut() -> String,
    ) -> Result<Self, VoucherError> {
        let (mandate, disclosures) = ap2::to_mandate(claims, salt)?;
        let draft = Draft::hop(
            holder_kid,
            &salt(),
            mandate,
            disclosures,
            Binding::SdHash(digest(parent)),
            claims.iat,
            &format!("urn:ari:agent:{}", claims.agent),
            &claims.jti,
        );
        Self::with_claims(draft, claims)
    }

    fn with_claims(mut draft: Draft, claims: &VoucherClaims) -> Result<Self, VoucherError> {
        let own = serde_json::to_value(Own::of(claims)).map_err(|e| VoucherError::Claim {
            index: 0,
            message: format!("the claims do not encode: {e}"),
        })?;
        if let Value::Object(own) = own {
            draft.claims.extend(own);
        }
        let input = draft
            .signing_input()
            .map_err(|source| VoucherError::Jose { index: 0, source })?;
        Ok(Self { draft, input })
    }

    /// The digest to sign.
    pub fn digest(&self) -> [u8; 32] {
        self.input.digest()
    }

    /// The signed segment, as presented (`<jwt>~<disclosures>~`).
    pub fn finish(self, raw_signature: &[u8; 64]) -> String {
        self.draft.finish(self.input, raw_signature).presented()
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
    if claims.vct != OPEN_VCT {
        return Err(claim(format!("vct is {:?}, not {OPEN_VCT:?}", claims.vct)));
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

/// Verifies a chain (`~~`-joined segments, root first) against trusted issuer keys at time
/// `now`. Returns the claims of every voucher, root first.
pub fn verify_chain(
    chain: &str,
    trusted: &[PublicKey],
    now: i64,
) -> Result<Vec<VoucherClaims>, VoucherError> {
    verify_chain_with(chain, trusted, Checks::at(now))
}

/// As [`verify_chain`] with chosen [`Checks`]: the daemon checks time at each decision instead,
/// so an expired voucher is a recorded denial rather than an unreadable one.
pub fn verify_chain_with(
    chain: &str,
    trusted: &[PublicKey],
    checks: Checks,
) -> Result<Vec<VoucherClaims>, VoucherError> {
    let segments = sdjwt::split(chain)?;
    verify_segments(&segments, trusted, checks)
}

/// As [`verify_chain_with`], on a chain already split.
pub fn verify_segments(
    segments: &[Segment],
    trusted: &[PublicKey],
    checks: Checks,
) -> Result<Vec<VoucherClaims>, VoucherError> {
    let root = root_key(segments, trusted)?;
    let expect = sdjwt::Expect {
        at: checks.now,
        skew: CLOCK_SKEW_S,
        open: true,
        ..sdjwt::Expect::default()
    };
    let verified = sdjwt::verify_segments(segments, &root, &expect)?;
    read(segments, &verified, &root, checks)
}

/// The trusted issuer key a chain's root names by `kid`.
pub fn root_key(segments: &[Segment], trusted: &[PublicKey]) -> Result<PublicKey, VoucherError> {
    if segments.is_empty() || segments.len() > MAX_CHAIN {
        return Err(VoucherError::TooLong);
    }
    let root = segments.first().ok_or(VoucherError::TooLong)?;
    let kid = jose::peek_header(&root.jwt)
        .map_err(|source| VoucherError::Jose { index: 0, source })?
        .kid;
    trusted
        .iter()
        .find(|k| k.thumbprint() == kid)
        .copied()
        .ok_or(VoucherError::UntrustedIssuer { kid })
}

/// Reads the voucher segments `segments` of a chain whose signatures and bindings `verified`
/// already checked (from `root`; a payment's chain may go on past them): ARI's claims, each
/// signer's `kid`, the limits, and that each voucher narrows the one before.
pub fn read(
    segments: &[Segment],
    verified: &sdjwt::Verified,
    root: &PublicKey,
    checks: Checks,
) -> Result<Vec<VoucherClaims>, VoucherError> {
    if segments.is_empty() || segments.len() > MAX_CHAIN {
        return Err(VoucherError::TooLong);
    }
    let mut out: Vec<VoucherClaims> = Vec::with_capacity(segments.len());
    let mut signer = root.thumbprint();
    for (index, ((payload, mandate), header)) in verified
        .payloads
        .iter()
        .zip(&verified.mandates)
        .zip(&verified.headers)
        .take(segments.len())
        .enumerate()
    {
        if header.get("kid").and_then(Value::as_str) != Some(signer.as_str()) {
            return Err(VoucherError::Claim {
                index,
                message: "kid is not the signer's thumbprint".into(),
            });
        }
        let own: Own =
            serde_json::from_value(payload.clone()).map_err(|e| VoucherError::Claim {
                index,
                message: format!("ARI's claims: {e}"),
            })?;
        let read = ap2::from_mandate(mandate, index)?;
        let raw = verified
            .raw_mandates
            .get(index)
            .filter(|r| !r.is_null())
            .ok_or_else(|| VoucherError::Claim {
                index,
                message: "its mandate is not a disclosure its payload names".into(),
            })?;
        if ap2::conceals_a_limit(raw) {
            return Err(VoucherError::Claim {
                index,
                message: "its mandate conceals a limit (only allowed payees and instruments \
                          may be concealed)"
                    .into(),
            });
        }
        let parent = match index.checked_sub(1).and_then(|i| segments.get(i)) {
            Some(prev) => {
                if payload.get("sd_hash").and_then(Value::as_str).is_none() {
                    return Err(VoucherError::Parent { index });
                }
                Some(prev.sd_hash())
            }
            None => None,
        };
        let claims = VoucherClaims {
            iss: own.iss,
            sub: own.sub,
            iat: own.iat,
            nbf: own.nbf,
            exp: own.exp,
            jti: own.jti,
            vct: read.vct,
            agent: own.agent,
            cnf: Confirmation { jwk: read.jwk },
            parent,
            constraints: read.constraints,
            status: own.status,
        };
        let holder = check_claims(&claims, index, checks)?;
        if mandate.get("exp").and_then(Value::as_i64) != Some(claims.exp) {
            return Err(VoucherError::Claim {
                index,
                message: "the mandate's exp differs from the voucher's".into(),
            });
        }
        if let Some(parent) = out.last() {
            check_narrowing(&claims, parent, index)?;
        }
        signer = holder.thumbprint();
        out.push(claims);
    }
    if out.len() != segments.len() {
        return Err(VoucherError::TooLong);
    }
    Ok(out)
}

/// The segments of a chain as presented, root first: what the daemon stores per voucher.
pub fn presented(chain: &str) -> Result<Vec<String>, VoucherError> {
    Ok(sdjwt::split(chain)?
        .iter()
        .map(Segment::presented)
        .collect())
}

/// The chain of presented segments, joined with `~~`.
pub fn join(segments: &[String]) -> Result<String, VoucherError> {
    let parsed = segments
        .iter()
        .map(|s| sdjwt::split(s).map(|mut v| v.pop()))
        .collect::<Result<Option<Vec<Segment>>, _>>()?
        .ok_or(VoucherError::TooLong)?;
    Ok(sdjwt::join(&parsed))
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
    use serde_json::json;

    fn key(seed: u8) -> (SigningKey, PublicKey) {
        let sk = SigningKey::from_slice(&[seed; 32]).unwrap();
        let pk = PublicKey::from_sec1(sk.verifying_key().to_sec1_point(false).as_bytes()).unwrap();
        (sk, pk)
    }

    fn salts() -> impl FnMut() -> String {
        let mut n = 0u32;
        move || {
            n += 1;
            format!("salt-{n}")
        }
    }

    fn sign_root(claims: &VoucherClaims, sk: &SigningKey, pk: &PublicKey) -> String {
        let draft = VoucherDraft::root(claims, &pk.thumbprint(), &mut salts()).unwrap();
        let sig: Signature = sk.sign_prehash(&draft.digest()).unwrap();
        draft.finish(&sig.to_bytes().into())
    }

    fn sign_hop(claims: &VoucherClaims, parent: &str, sk: &SigningKey, pk: &PublicKey) -> String {
        let draft =
            VoucherDraft::delegation(claims, &pk.thumbprint(), parent, &mut salts()).unwrap();
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
            vct: OPEN_VCT.into(),
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

    fn chain(links: &[&String]) -> String {
        let owned: Vec<String> = links.iter().map(|s| (*s).clone()).collect();
        join(&owned).unwrap()
    }

    #[test]
    fn a_voucher_is_an_ap2_open_mandate_with_its_payees_concealed() {
        let (isk, ipk) = key(1);
        let (_, apk) = key(2);
        let mut c = claims(&apk, limits(500, AutonomyLevel::L3));
        c.constraints.extend([
            Constraint::AllowedPayees {
                payees: vec!["shop-a".into(), "shop-b".into()],
            },
            Constraint::FundsCarrier {
                id: "card-1".into(),
            },
            Constraint::ExecutionDate {
                not_before: Some(0),
                not_after: Some(1_796_612_990),
            },
            Constraint::Categories {
                categories: vec!["books".into()],
            },
            Constraint::ReportWithin { seconds: 60 },
        ]);
        let root = sign_root(&c, &isk, &ipk);
        let segments = sdjwt::split(&root).unwrap();
        let v = sdjwt::verify(
            &root,
            &ipk,
            &sdjwt::Expect {
                at: Some(1500),
                open: true,
                ..sdjwt::Expect::default()
            },
        )
        .unwrap();
        let m = &v.mandates[0];
        assert_eq!(m["vct"], OPEN_VCT);
        assert_eq!(m["cnf"]["kid"], apk.thumbprint());
        assert_eq!(
            m["constraints"][0],
            json!({"type": "payment.amount_range", "currency": "CNY", "max": 500})
        );
        // 50.00 CNY: AP2 reads budgets in the major unit.
        assert_eq!(
            m["constraints"][1],
            json!({"type": "payment.budget", "currency": "CNY", "max": 50.00})
        );
        assert_eq!(
            m["constraints"][2]["allowed"],
            json!([{"id": "shop-a", "name": "shop-a"}, {"id": "shop-b", "name": "shop-b"}])
        );
        assert_eq!(
            m["constraints"][3]["allowed"],
            json!([{"id": "card-1", "type": ap2::INSTRUMENT_TYPE}])
        );
        assert_eq!(
            m["constraints"][4],
            json!({"type": "payment.execution_date",
                   "not_before": "1970-01-01T00:00:00Z", "not_after": "2026-12-07T03:09:50Z"})
        );
        assert_eq!(
            m["a2p2"],
            json!({"autonomy_level": "L3", "categories": ["books"], "report_within_s": 60})
        );
        // One disclosure for the mandate, one per payee and instrument: a holder may present
        // the voucher without a payee, which then allows nothing.
        assert_eq!(segments[0].disclosures.len(), 4);
        let read = verify_chain(&root, &[ipk], 1500).unwrap();
        let mut want = c.constraints.clone();
        let mut got = read[0].constraints.clone();
        want.sort_by_key(|c| c.kind().to_string());
        got.sort_by_key(|c| c.kind().to_string());
        assert_eq!(got, want);
        assert_eq!(read[0].jti, "v1");
        assert_eq!(digest(&root), segments[0].sd_hash());
    }

    #[test]
    fn root_and_delegation_verify_and_each_failure_is_named() {
        let (isk, ipk) = key(1);
        let (ask, apk) = key(2);
        let (_, cpk) = key(3);
        let root = sign_root(&claims(&apk, limits(500, AutonomyLevel::L3)), &isk, &ipk);
        let verified = verify_chain(&root, &[ipk], 1500).unwrap();
        assert_eq!(verified[0].agent, "shop-bot");
        assert!(root.ends_with('~'));

        let mut child = claims(&cpk, limits(200, AutonomyLevel::L2));
        child.iss = "shop-bot".into();
        child.agent = "child".into();
        let delegated = sign_hop(&child, &root, &ask, &apk);
        let both = verify_chain(&chain(&[&root, &delegated]), &[ipk], 1500).unwrap();
        assert_eq!(both.len(), 2);
        assert_eq!(both[1].parent.as_deref(), Some(digest(&root).as_str()));
        assert_eq!(
            jose::peek_header(&sdjwt::split(&delegated).unwrap()[0].jwt)
                .unwrap()
                .typ,
            sdjwt::DELEGATION_TYP
        );

        // Widening, wrong parent, wrong signer, untrusted root, time, tampering.
        let mut wide = child.clone();
        wide.constraints = limits(900, AutonomyLevel::L2);
        let wide = sign_hop(&wide, &root, &ask, &apk);
        assert!(matches!(
            verify_chain(&chain(&[&root, &wide]), &[ipk], 1500),
            Err(VoucherError::Widens { index: 1, .. })
        ));
        let mut dropped = child.clone();
        dropped.constraints.remove(1);
        let dropped = sign_hop(&dropped, &root, &ask, &apk);
        assert!(matches!(
            verify_chain(&chain(&[&root, &dropped]), &[ipk], 1500),
            Err(VoucherError::Widens { .. })
        ));
        let other_root = sign_root(&claims(&apk, limits(600, AutonomyLevel::L3)), &isk, &ipk);
        let orphan = sign_hop(&child, &other_root, &ask, &apk);
        assert!(matches!(
            verify_chain(&chain(&[&root, &orphan]), &[ipk], 1500),
            Err(VoucherError::Chain(SdJwtError::Binding(1)))
        ));
        let forged = sign_hop(&child, &root, &isk, &ipk);
        assert!(matches!(
            verify_chain(&chain(&[&root, &forged]), &[ipk], 1500),
            Err(VoucherError::Chain(SdJwtError::Jose { segment: 1, .. }))
        ));
        assert!(matches!(
            verify_chain(&root, &[apk], 1500),
            Err(VoucherError::UntrustedIssuer { .. })
        ));
        assert!(matches!(
            verify_chain(&root, &[ipk], 500),
            Err(VoucherError::Chain(SdJwtError::Time { claim: "iat", .. }))
        ));
        assert!(matches!(
            verify_chain(&root, &[ipk], 2100),
            Err(VoucherError::Chain(SdJwtError::Time { claim: "exp", .. }))
        ));
        let tampered = root.replacen('.', ".e", 1);
        assert!(verify_chain(&tampered, &[ipk], 1500).is_err());
        assert!(verify_chain(root.trim_end_matches('~'), &[ipk], 1500).is_err());
    }

    /// A root signed with `edit` applied to the mandate the claims make.
    fn root_edited(
        c: &VoucherClaims,
        edit: impl Fn(&mut Value, &mut Vec<sdjwt::Disclosure>),
        sk: &SigningKey,
        pk: &PublicKey,
    ) -> String {
        let (mut mandate, mut disclosures) = ap2::to_mandate(c, &mut salts()).unwrap();
        edit(&mut mandate, &mut disclosures);
        let mut draft = Draft::root(
            VOUCHER_TYP,
            &pk.thumbprint(),
            "c2FsdA",
            mandate,
            disclosures,
        );
        if let Value::Object(own) = serde_json::to_value(Own::of(c)).unwrap() {
            draft.claims.extend(own);
        }
        let input = draft.signing_input().unwrap();
        let sig: Signature = sk.sign_prehash(&input.digest()).unwrap();
        draft.finish(input, &sig.to_bytes()).presented()
    }

    #[test]
    fn a_concealed_limit_or_a_preset_claim_does_not_read_as_no_limit() {
        let (isk, ipk) = key(1);
        let (_, apk) = key(2);
        let c = claims(&apk, limits(500, AutonomyLevel::L3));
        // The budget concealed as an element of `constraints`: the holder could drop it.
        let concealed = root_edited(
            &c,
            |m, d| {
                let budget = m["constraints"][1].take();
                let e = sdjwt::Disclosure::element("c2FsdC1i", budget);
                m["constraints"][1] = json!({"...": e.digest()});
                d.push(e);
            },
            &isk,
            &ipk,
        );
        match verify_chain(&concealed, &[ipk], 1500) {
            Err(VoucherError::Claim { message, .. }) => {
                assert!(message.contains("conceals"), "{message}")
            }
            other => panic!("{other:?}"),
        }
        // A pre-set payee ARI does not enforce reads as unknown, which no payment passes.
        let preset = root_edited(
            &c,
            |m, _| m["payee"] = json!({"id": "m-1", "name": "M"}),
            &isk,
            &ipk,
        );
        match verify_chain(&preset, &[ipk], 1500) {
            Err(VoucherError::Constraint { source, .. }) => {
                assert!(source.to_string().contains("payee"), "{source}")
            }
            other => panic!("{other:?}"),
        }
        // The daemon's own form, payees concealed element by element, reads.
        let mut with_payees = c.clone();
        with_payees.constraints.push(Constraint::AllowedPayees {
            payees: vec!["a".into(), "b".into()],
        });
        assert!(verify_chain(&sign_root(&with_payees, &isk, &ipk), &[ipk], 1500).is_ok());
    }

    #[test]
    fn unenforceable_and_duplicate_constraints_fail() {
        let (isk, ipk) = key(1);
        let (_, apk) = key(2);
        let root = sign_root(&claims(&apk, limits(500, AutonomyLevel::L3)), &isk, &ipk);
        let segments = sdjwt::split(&root).unwrap();
        let v = sdjwt::verify(&root, &ipk, &sdjwt::Expect::default()).unwrap();
        // An AP2 constraint this version cannot enforce reads as unknown, and fails.
        let mut m = v.mandates[0].clone();
        m["constraints"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "payment.reference", "conditional_transaction_id": "x"}));
        let read = ap2::from_mandate(&m, 0).unwrap();
        let mut c = claims(&apk, read.constraints);
        match check_claims(&c, 0, Checks::at(1500)) {
            Err(VoucherError::Constraint { source, .. }) => {
                assert!(source.to_string().contains("payment.reference"))
            }
            other => panic!("{other:?}"),
        }
        c.constraints
            .retain(|c| !matches!(c, Constraint::Unknown { .. }));
        c.constraints.push(Constraint::AutonomyLevel {
            level: AutonomyLevel::L5,
        });
        assert!(matches!(
            check_claims(&c, 0, Checks::at(1500)),
            Err(VoucherError::RepeatedConstraint { index: 0 })
        ));
        assert_eq!(segments.len(), 1);
    }
}
