//! Payment authorizations (closed mandates): what the daemon signs when a voucher allows a
//! payment, and how anyone checks one offline.
//!
//! An authorization is a compact ES256 JWS (`typ` [`AUTHORIZATION_TYP`]) signed inside the key
//! store with the paying agent's ARI key, which is the `cnf` key of the last voucher of its chain.
//! It names the chain by digest, the checkout, payee, amount, currency and category, the
//! verifier's `aud` and `nonce`, a short expiry, the ledger position of the decision, and the
//! SHA-256 of the attestation bundle. The bundle in turn carries the *binding digest* of the
//! payment ([`binding_digest`]), which a verifier recomputes from the authorization, so nothing
//! refers to itself.
//!
//! A [`Receipt`] is what an agent hands a verifier: the authorization, the voucher chain (root
//! first) and the bundle. [`verify`] checks all of it and names the failed check; it needs only
//! the trusted issuer keys and, optionally, the issuer's Status List Token (already verified with
//! [`crate::voucher::status::verify`]), which says whether a voucher was revoked or suspended.

use crate::attest::Bundle;
use crate::jose::{self, JoseError, PublicKey};
use crate::voucher::constraint::{AutonomyLevel, Constraint};
use crate::voucher::status::{self, StatusError};
use crate::voucher::{self, VoucherClaims, VoucherError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The JWS `typ` of a payment authorization.
pub const AUTHORIZATION_TYP: &str = "ari-payment+jwt";
/// How long an authorization is good for, in seconds.
pub const AUTHORIZATION_TTL_S: i64 = 300;

/// The claims of a payment authorization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationClaims {
    /// `urn:ari:agent:<agent id>`.
    pub iss: String,
    /// The user whose funds are spent (the vouchers' `sub`).
    pub sub: String,
    /// The verifier this authorization is for.
    pub aud: String,
    /// Signed at, Unix seconds.
    pub iat: i64,
    /// Good until, Unix seconds.
    pub exp: i64,
    /// The decision id.
    pub jti: String,
    /// The verifier's nonce, verbatim.
    pub nonce: String,
    /// The paying agent's id.
    pub agent: String,
    /// Its instance id.
    pub instance: String,
    /// Digests of the voucher chain, root first.
    pub vouchers: Vec<String>,
    /// Digest of the merchant's checkout.
    pub transaction_id: String,
    /// Who is paid.
    pub payee: String,
    /// Minor units.
    pub amount: u64,
    /// ISO 4217.
    pub currency: String,
    /// The purchase category, if named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// The funds carrier named by the voucher, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub funds_carrier: Option<String>,
    /// The autonomy level the decision was made at.
    pub level: AutonomyLevel,
    /// Whether a human confirmed the payment (L2).
    pub confirmed: bool,
    /// The index of the evidence entry that records this authorization.
    pub log_index: u64,
    /// Report deadline, Unix seconds, if the voucher asks for a report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_by: Option<i64>,
    /// base64url SHA-256 of the attestation bundle's bytes.
    pub attestation_sha256: String,
    /// base64url SHA-256 of the JSON of the facts the request carried, as its evidence entry
    /// records them; absent when it carried none. Facts are the agent's own claims (what L4
    /// conditions read), never measured by the daemon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facts_sha256: Option<String>,
}

/// The fields a payment is bound by; hashed by [`binding_digest`].
#[derive(Debug, Clone, Copy)]
pub struct Binding<'a> {
    /// Digest of the last voucher of the chain.
    pub voucher: &'a str,
    /// Checkout digest.
    pub transaction_id: &'a str,
    /// Minor units.
    pub amount: u64,
    /// ISO 4217.
    pub currency: &'a str,
    /// Payee.
    pub payee: &'a str,
    /// Audience.
    pub aud: &'a str,
    /// Nonce.
    pub nonce: &'a str,
    /// Thumbprint of the ARI key.
    pub kid: &'a str,
}

/// base64url SHA-256 over the compact JSON array
/// `[voucher, transaction_id, amount, currency, payee, aud, nonce, kid]`.
pub fn binding_digest(b: &Binding<'_>) -> String {
    let array = serde_json::json!([
        b.voucher,
        b.transaction_id,
        b.amount,
        b.currency,
        b.payee,
        b.aud,
        b.nonce,
        b.kid
    ]);
    jose::b64url(&Sha256::digest(array.to_string().as_bytes()))
}

impl AuthorizationClaims {
    /// The binding these claims commit to, for a key with thumbprint `kid`.
    pub fn binding<'a>(&'a self, kid: &'a str) -> Binding<'a> {
        Binding {
            voucher: self.vouchers.last().map_or("", String::as_str),
            transaction_id: &self.transaction_id,
            amount: self.amount,
            currency: &self.currency,
            payee: &self.payee,
            aud: &self.aud,
            nonce: &self.nonce,
            kid,
        }
    }
}

/// What an agent gives a verifier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The signed authorization.
    pub authorization: String,
    /// The voucher chain, root first.
    pub chain: Vec<String>,
    /// The attestation bundle: base64url of its JSON bytes.
    pub attestation: String,
    /// The authorization's evidence entry in the log, as a C2SP `tlog-proof` whose `extra`
    /// holds the entry's exact bytes ([`crate::evidence::proof::verify_receipt`]). Absent when
    /// no checkpoint covered the entry in time; `payment.status` then returns it later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tlog_proof: Option<String>,
}

/// Which check of a receipt failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PaymentError {
    /// The voucher chain failed.
    #[error("voucher chain: {0}")]
    Chain(#[from] VoucherError),
    /// The authorization's signature or encoding failed.
    #[error("authorization: {0}")]
    Jose(#[from] JoseError),
    /// A voucher of the chain is not valid in the status list, or the list does not apply.
    #[error("status: {0}")]
    Status(#[from] StatusError),
    /// A named check failed.
    #[error("authorization: {check}: {message}")]
    Check {
        /// The check's name, e.g. `amount`, `binding`, `expiry`.
        check: &'static str,
        /// What was found.
        message: String,
    },
}

fn fail(check: &'static str, message: impl Into<String>) -> PaymentError {
    PaymentError::Check {
        check,
        message: message.into(),
    }
}

/// A receipt that passed every check.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The authorization's claims.
    pub claims: AuthorizationClaims,
    /// The chain's claims, root first.
    pub chain: Vec<VoucherClaims>,
    /// The attestation bundle.
    pub bundle: Bundle,
}

/// Checks a receipt at time `now` against trusted issuer keys and, if given, a Status List
/// Token already verified with [`crate::voucher::status::verify`]: every voucher of the chain
/// that references that list must be VALID in it ([`status::Verified::check_chain`]).
pub fn verify(
    receipt: &Receipt,
    trusted: &[PublicKey],
    status: Option<&status::Verified>,
    now: i64,
) -> Result<Verified, PaymentError> {
    let links: Vec<&str> = receipt.chain.iter().map(String::as_str).collect();
    let chain = voucher::verify_chain_with(
        &links,
        trusted,
        voucher::Checks {
            now: None,
            allow_unknown: false,
        },
    )?;
    let leaf = chain
        .last()
        .ok_or_else(|| fail("chain", "the chain is empty"))?;
    let holder = leaf.cnf.jwk.to_public_key()?;
    let v =
        jose::verify::<AuthorizationClaims>(&receipt.authorization, &holder, AUTHORIZATION_TYP)?;
    let kid = holder.thumbprint();
    if v.header.kid != kid {
        return Err(fail(
            "kid",
            "the header's kid is not the holder key's thumbprint",
        ));
    }
    let c = v.payload;
    let digests: Vec<String> = receipt.chain.iter().map(|s| voucher::digest(s)).collect();
    if c.vouchers != digests {
        return Err(fail("vouchers", "the authorization names another chain"));
    }
    if c.agent != leaf.agent || c.sub != leaf.sub {
        return Err(fail(
            "holder",
            "agent or user differ from the last voucher's",
        ));
    }
    if c.iat >= c.exp || now >= c.exp {
        return Err(fail("expiry", format!("expired at {}", c.exp)));
    }
    if now.saturating_add(voucher::CLOCK_SKEW_S) < c.iat {
        return Err(fail("expiry", format!("issued in the future ({})", c.iat)));
    }
    for (i, link) in chain.iter().enumerate() {
        if c.iat < link.nbf || c.iat >= link.exp {
            return Err(fail(
                "validity",
                format!("voucher {i} was not valid when the payment was signed"),
            ));
        }
    }
    if let Some(list) = status {
        list.check_chain(&chain)?;
    }
    check_limits(&c, &chain)?;
    let bundle_bytes = jose::b64url_decode(&receipt.attestation)
        .map_err(|_| fail("attestation", "not base64url"))?;
    if jose::b64url(&Sha256::digest(&bundle_bytes)) != c.attestation_sha256 {
        return Err(fail(
            "attestation",
            "the bundle's digest differs from attestation_sha256",
        ));
    }
    let bundle: Bundle = serde_json::from_slice(&bundle_bytes)
        .map_err(|e| fail("attestation", format!("unreadable bundle: {e}")))?;
    if bundle.binding != binding_digest(&c.binding(&kid)) {
        return Err(fail("binding", "the bundle is bound to another payment"));
    }
    if bundle.evidence.key.kid != kid || bundle.evidence.agent.id != c.agent {
        return Err(fail(
            "attestation",
            "the bundle describes another agent or key",
        ));
    }
    Ok(Verified {
        claims: c,
        chain,
        bundle,
    })
}

/// The voucher limits a single authorization can be checked against offline. Budgets and counts
/// need the daemon's ledger and are not checked here.
fn check_limits(c: &AuthorizationClaims, chain: &[VoucherClaims]) -> Result<(), PaymentError> {
    match voucher::level(chain) {
        Some(l) if l >= AutonomyLevel::L2 && l == c.level => {}
        Some(l) if l >= AutonomyLevel::L2 => {
            return Err(fail(
                "level",
                format!("claims {:?}, the chain allows {l:?}", c.level),
            ));
        }
        _ => {
            return Err(fail(
                "level",
                "the chain's autonomy level never signs payments",
            ));
        }
    }
    if c.level == AutonomyLevel::L2 && !c.confirmed {
        return Err(fail("level", "an L2 payment must be confirmed by a human"));
    }
    for k in chain.iter().flat_map(|v| &v.constraints) {
        let ok = match k {
            Constraint::AmountRange { currency, min, max } => {
                currency.as_str() == c.currency
                    && min.is_none_or(|m| c.amount >= m)
                    && max.is_none_or(|m| c.amount <= m)
            }
            Constraint::Budget { currency, max } => {
                currency.as_str() == c.currency && c.amount <= *max
            }
            Constraint::AllowedPayees { payees } => payees.contains(&c.payee),
            Constraint::Categories { categories } => {
                c.category.as_ref().is_some_and(|k| categories.contains(k))
            }
            Constraint::ExecutionDate {
                not_before,
                not_after,
            } => not_before.is_none_or(|t| c.iat >= t) && not_after.is_none_or(|t| c.iat <= t),
            Constraint::FundsCarrier { id } => c.funds_carrier.as_ref() == Some(id),
            Constraint::ReportWithin { seconds } => c
                .report_by
                .is_some_and(|r| r <= c.iat.saturating_add_unsigned(*seconds)),
            // Conditions are over facts the receipt does not carry; counts need the ledger.
            Constraint::Conditions { .. }
            | Constraint::AgentRecurrence { .. }
            | Constraint::AutonomyLevel { .. } => true,
            Constraint::Unknown { .. } => false,
        };
        if !ok {
            return Err(fail(
                "constraint",
                format!("the payment is outside {}", k.kind()),
            ));
        }
    }
    Ok(())
}
