//! Payment authorizations: the terminal hop of an AP2 delegate SD-JWT chain, holding a closed
//! payment mandate, and how anyone checks one offline.
//!
//! An authorization is a `kb+sd-jwt` segment ([`crate::sdjwt::TERMINAL_TYP`]) signed inside the
//! key store with the paying agent's ARI key, the `cnf` key of the last voucher of its chain. Its
//! payload binds it to that voucher as presented (`sd_hash`), answers the merchant's `aud` and
//! `nonce`, and carries `iat`, a short `exp`, the decision id (`jti`) and the index of the
//! evidence entry that records it (`log_index`). Its one disclosed `delegate_payload` item is
//! the closed mandate ([`crate::mandate::ClosedPaymentMandate`]): the transaction id, the payee
//! as a Merchant, the amount in minor units, the funds carrier as the payment instrument, the
//! execution date, and in `risk_data.ari` ([`RiskData`]) what ARI adds: agent, instance, user,
//! autonomy level, confirmation, category, report deadline, and the attestation bundle with its
//! SHA-256. The bundle carries the *binding digest* of the payment ([`binding_digest`]), which a
//! verifier recomputes from the authorization, so nothing refers to itself.
//!
//! The whole `~~`-joined chain, root voucher to this hop, is the `mandate` an agent hands a
//! merchant; a [`Receipt`] carries it with the bundle. [`verify`] checks all of it and names the
//! failed check; it needs only the trusted issuer keys and, optionally, the issuer's Status List
//! Token (already verified with [`crate::voucher::status::verify`]).

use crate::attest::Bundle;
use crate::jose::{self, Header, JoseError, PendingInput, PublicKey};
use crate::mandate::{self, Amount, ClosedPaymentMandate, Merchant, PaymentInstrument};
use crate::sdjwt::{self, Disclosure, SdJwtError, Segment};
use crate::voucher::constraint::{AutonomyLevel, Constraint};
use crate::voucher::status::{self, StatusError};
use crate::voucher::{self, VoucherClaims, VoucherError};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// How long an authorization is good for, in seconds.
pub const AUTHORIZATION_TTL_S: i64 = 300;
/// The member of the closed mandate's `risk_data` that holds [`RiskData`].
pub const RISK_MEMBER: &str = "ari";
/// The payment instrument `type` of a funds carrier ARI names when the voucher names none: the
/// user's own funds, id `urn:ari:user:<user>`.
pub const USER_FUNDS_TYPE: &str = "ari.user_funds";
/// The `type` of the closed mandate's `agent_attestation` (the Verifiable Intent slot): its
/// `value` is the base64url SHA-256 of the attestation bundle in `risk_data.ari`.
pub const AGENT_ATTESTATION_TYPE: &str = "urn:ari:attestation-bundle:sha256";

/// What ARI says about a payment in the closed mandate's `risk_data.ari`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiskData {
    /// The user whose funds are spent (the vouchers' `sub`).
    pub sub: String,
    /// The paying agent's id.
    pub agent: String,
    /// Its instance id.
    pub instance: String,
    /// The autonomy level the decision was made at.
    pub level: AutonomyLevel,
    /// Whether a human confirmed the payment (L2).
    pub confirmed: bool,
    /// The purchase category, if named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Report deadline, Unix seconds, if the voucher asks for a report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_by: Option<i64>,
    /// Whether `transaction_id` is the hash of a checkout JWT the merchant's registered key
    /// signed (and that matched the payment), rather than the agent's own word.
    #[serde(default)]
    pub checkout_verified: bool,
    /// base64url SHA-256 of the attestation bundle's bytes.
    pub attestation_sha256: String,
    /// The attestation bundle (base64url of its JSON bytes): the runtime as measured for this
    /// payment, and on a TPM the quote bound to it. A selectively disclosable member: the
    /// closed mandate names it by digest, its disclosure follows the mandate's.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub attestation: String,
    /// base64url SHA-256 of the JSON of the facts the request carried, as its evidence entry
    /// records them; absent when it carried none. Facts are the agent's own claims (what L4
    /// conditions read), never measured by the daemon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facts_sha256: Option<String>,
}

/// An authorization in ARI's terms: its hop's claims and its closed mandate, read together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuthorizationClaims {
    /// The user whose funds are spent.
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
    /// The checkout's transaction id.
    pub transaction_id: String,
    /// Whether it is the hash of a checkout the merchant's registered key signed.
    pub checkout_verified: bool,
    /// Who is paid.
    pub payee: String,
    /// Minor units.
    pub amount: u64,
    /// ISO 4217.
    pub currency: String,
    /// The purchase category, if named.
    pub category: Option<String>,
    /// The funds carrier (the closed mandate's payment instrument id).
    pub funds_carrier: String,
    /// The autonomy level the decision was made at.
    pub level: AutonomyLevel,
    /// Whether a human confirmed the payment (L2).
    pub confirmed: bool,
    /// The index of the evidence entry that records this authorization.
    pub log_index: u64,
    /// Report deadline, Unix seconds, if the voucher asks for a report.
    pub report_by: Option<i64>,
    /// base64url SHA-256 of the attestation bundle's bytes.
    pub attestation_sha256: String,
    /// base64url SHA-256 of the facts' JSON, if the request carried facts.
    pub facts_sha256: Option<String>,
}

/// The hop's own claims, beside `sd_hash` and `delegate_payload`.
#[derive(Serialize, Deserialize)]
struct HopClaims {
    aud: String,
    nonce: String,
    iat: i64,
    exp: i64,
    jti: String,
    log_index: u64,
}

/// The fields a payment is bound by; hashed by [`binding_digest`].
#[derive(Debug, Clone, Copy)]
pub struct Binding<'a> {
    /// Digest of the last voucher of the chain ([`voucher::digest`], its `sd_hash`).
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

/// The payment instrument a payment draws on: the voucher's funds carrier, else the user's own
/// funds.
pub fn instrument(funds_carrier: Option<&str>, user: &str) -> PaymentInstrument {
    match funds_carrier {
        Some(id) => PaymentInstrument {
            id: id.into(),
            kind: voucher::ap2::INSTRUMENT_TYPE.into(),
            description: None,
        },
        None => PaymentInstrument {
            id: format!("urn:ari:user:{user}"),
            kind: USER_FUNDS_TYPE.into(),
            description: None,
        },
    }
}

/// An authorization being made: the hop's payload, rendered but for its log index (which only
/// the ledger knows), and its disclosures.
#[derive(Debug, Clone)]
pub struct AuthorizationDraft {
    /// The payload, with `log_index` to fill in.
    pub pending: PendingInput,
    /// The disclosures, as they follow the JWS: the closed mandate's first (what the evidence
    /// entry records), then the attestation bundle's, which the closed mandate names in
    /// `risk_data.ari._sd`: the bundle travels with the mandate, and the log keeps its digest.
    pub disclosures: Vec<String>,
}

impl AuthorizationDraft {
    /// The terminal hop for `claims` (its `log_index` ignored) after the voucher segment `leaf`
    /// (as presented), signed by the key with thumbprint `kid`; `attestation` is the bundle
    /// (base64url) and `salts` two fresh salts.
    pub fn new(
        claims: &AuthorizationClaims,
        leaf: &str,
        kid: &str,
        attestation: &str,
        salts: [&str; 2],
    ) -> Result<Self, JoseError> {
        let [salt, bundle_salt] = salts;
        let bundle = (!attestation.is_empty()).then(|| {
            Disclosure::member(
                bundle_salt,
                "attestation",
                Value::String(attestation.into()),
            )
        });
        let closed = ClosedPaymentMandate {
            vct: mandate::CLOSED_VCT.into(),
            transaction_id: claims.transaction_id.clone(),
            payee: Merchant {
                id: claims.payee.clone(),
                name: claims.payee.clone(),
                website: None,
            },
            payment_amount: Amount {
                amount: claims.amount,
                currency: claims.currency.clone(),
            },
            payment_instrument: if claims.funds_carrier == instrument(None, &claims.sub).id {
                instrument(None, &claims.sub)
            } else {
                instrument(Some(&claims.funds_carrier), &claims.sub)
            },
            execution_date: Some(mandate::utc(claims.iat)),
            risk_data: Some(json!({ RISK_MEMBER: RiskData {
                sub: claims.sub.clone(),
                agent: claims.agent.clone(),
                instance: claims.instance.clone(),
                level: claims.level,
                confirmed: claims.confirmed,
                category: claims.category.clone(),
                report_by: claims.report_by,
                checkout_verified: claims.checkout_verified,
                attestation_sha256: claims.attestation_sha256.clone(),
                attestation: String::new(),
                facts_sha256: claims.facts_sha256.clone(),
            }})),
        };
        let mut item = serde_json::to_value(&closed)
            .map_err(|e| JoseError::Json("closed mandate", e.to_string()))?;
        if let (Some(d), Some(Value::Object(ari))) = (
            &bundle,
            item.get_mut("risk_data")
                .and_then(|r| r.get_mut(RISK_MEMBER)),
        ) {
            ari.insert("_sd".into(), json!([d.digest()]));
        }
        if let (Value::Object(m), false) = (&mut item, claims.attestation_sha256.is_empty()) {
            m.insert(
                "agent_attestation".into(),
                json!({ "type": AGENT_ATTESTATION_TYPE, "value": claims.attestation_sha256 }),
            );
        }
        let disclosure = Disclosure::element(salt, item);
        let mut payload = Map::new();
        payload.insert(
            "delegate_payload".into(),
            json!([{ "...": disclosure.digest() }]),
        );
        let own = serde_json::to_value(HopClaims {
            aud: claims.aud.clone(),
            nonce: claims.nonce.clone(),
            iat: claims.iat,
            exp: claims.exp,
            jti: claims.jti.clone(),
            log_index: 0,
        })
        .map_err(|e| JoseError::Json("payload", e.to_string()))?;
        if let Value::Object(own) = own {
            payload.extend(own);
        }
        payload.insert("sd_hash".into(), voucher::digest(leaf).into());
        payload.insert("_sd_alg".into(), sdjwt::SD_ALG.into());
        let header = Header::es256(sdjwt::TERMINAL_TYP, kid);
        let mut disclosures = vec![disclosure.encoded];
        disclosures.extend(bundle.map(|d| d.encoded));
        Ok(Self {
            pending: PendingInput::new(&header, &payload, "log_index")?,
            disclosures,
        })
    }
}

/// The terminal segment as presented, from its signed JWS and its disclosures.
pub fn segment(jwt: &str, disclosures: &[String]) -> String {
    let mut s = jwt.to_string();
    s.push('~');
    for d in disclosures {
        s.push_str(d);
        s.push('~');
    }
    s
}

/// Reads an authorization from its hop's payload and its disclosed closed mandate.
pub fn read(payload: &Value, closed: &Value) -> Result<AuthorizationClaims, PaymentError> {
    let hop: HopClaims = serde_json::from_value(payload.clone())
        .map_err(|e| fail("claims", format!("the hop's claims: {e}")))?;
    if closed.get("vct").and_then(Value::as_str) != Some(mandate::CLOSED_VCT) {
        return Err(fail(
            "mandate",
            format!("the last hop's vct is not {}", mandate::CLOSED_VCT),
        ));
    }
    let m: ClosedPaymentMandate = serde_json::from_value(closed.clone())
        .map_err(|e| fail("mandate", format!("the closed mandate: {e}")))?;
    let risk: RiskData = m
        .risk_data
        .as_ref()
        .and_then(|r| r.get(RISK_MEMBER))
        .cloned()
        .ok_or_else(|| fail("mandate", "no risk_data.ari"))
        .and_then(|r| {
            serde_json::from_value(r).map_err(|e| fail("mandate", format!("risk_data.ari: {e}")))
        })?;
    if m.execution_date.as_deref() != Some(mandate::utc(hop.iat).as_str()) {
        return Err(fail("mandate", "execution_date is not the hop's iat"));
    }
    Ok(AuthorizationClaims {
        sub: risk.sub,
        aud: hop.aud,
        iat: hop.iat,
        exp: hop.exp,
        jti: hop.jti,
        nonce: hop.nonce,
        agent: risk.agent,
        instance: risk.instance,
        transaction_id: m.transaction_id,
        checkout_verified: risk.checkout_verified,
        payee: m.payee.id,
        amount: m.payment_amount.amount,
        currency: m.payment_amount.currency,
        category: risk.category,
        funds_carrier: m.payment_instrument.id,
        level: risk.level,
        confirmed: risk.confirmed,
        log_index: hop.log_index,
        report_by: risk.report_by,
        attestation_sha256: risk.attestation_sha256,
        facts_sha256: risk.facts_sha256,
    })
}

/// Reads an authorization as its evidence entry logs it: the hop's payload (base64url, as the
/// JWS carries it) and the closed mandate's disclosure, which the payload must name.
pub fn read_logged(payload: &str, disclosure: &str) -> Result<AuthorizationClaims, PaymentError> {
    let payload: Value = jose::b64url_decode(payload)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| fail("mandate", "not the payload of an authorization"))?;
    let d = Disclosure::parse(disclosure).map_err(PaymentError::Chain)?;
    let named = payload
        .get("delegate_payload")
        .and_then(|p| p.get(0))
        .and_then(|i| i.get("..."))
        .and_then(Value::as_str);
    if named != Some(d.digest().as_str()) {
        return Err(fail(
            "mandate",
            "the payload does not name this closed mandate",
        ));
    }
    read(&payload, &d.value)
}

/// The binding digest an authorization segment (as presented) commits its payment to, read
/// from the segment alone (its signature unchecked): what a verifier compares with the bundle's.
pub fn binding_of(authorization: &str) -> Result<String, PaymentError> {
    let segment = sdjwt::split(authorization)?
        .pop()
        .ok_or_else(|| fail("authorization", "empty"))?;
    let payload = segment.jwt.split('.').nth(1).unwrap_or_default();
    let disclosure = segment.disclosures.first().map_or("", String::as_str);
    let c = read_logged(payload, disclosure)?;
    let decoded: Value = jose::b64url_decode(payload)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let voucher = decoded
        .get("sd_hash")
        .and_then(Value::as_str)
        .ok_or_else(|| fail("binding", "no sd_hash"))?;
    let kid = jose::peek_header(&segment.jwt)?.kid;
    Ok(binding_digest(&Binding {
        voucher,
        transaction_id: &c.transaction_id,
        amount: c.amount,
        currency: &c.currency,
        payee: &c.payee,
        aud: &c.aud,
        nonce: &c.nonce,
        kid: &kid,
    }))
}

/// What an agent gives a verifier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The whole chain, root voucher to the authorization, joined with `~~`: what a merchant
    /// running AP2 verifies.
    pub mandate: String,
    /// The authorization alone: the chain's last segment, as presented.
    pub authorization: String,
    /// The voucher chain's segments, root first, as presented.
    pub chain: Vec<String>,
    /// The attestation bundle: base64url of its JSON bytes (also in the closed mandate).
    pub attestation: String,
    /// The authorization's evidence entry in the log, as a C2SP `tlog-proof` whose `extra`
    /// holds the entry's exact bytes ([`crate::evidence::proof::verify_receipt`]). Absent when
    /// no checkpoint covered the entry in time; `payment.status` then returns it later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tlog_proof: Option<String>,
}

impl Receipt {
    /// The receipt of an authorization after `chain` (voucher segments as presented).
    pub fn new(chain: &[String], authorization: String, attestation: String) -> Self {
        let mut all = chain.to_vec();
        all.push(authorization.clone());
        Self {
            mandate: voucher::join(&all).unwrap_or_default(),
            authorization,
            chain: chain.to_vec(),
            attestation,
            tlog_proof: None,
        }
    }
}

/// Which check of a receipt failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PaymentError {
    /// The voucher chain failed.
    #[error("voucher chain: {0}")]
    Voucher(#[from] VoucherError),
    /// The SD-JWT chain failed: encoding, a signature, a binding, a type, `aud` or `nonce`.
    #[error(transparent)]
    Chain(#[from] SdJwtError),
    /// The authorization's encoding failed.
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

/// What the merchant expects of the authorization, when it checks them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Expected<'a> {
    /// Its `aud`.
    pub aud: Option<&'a str>,
    /// Its `nonce`.
    pub nonce: Option<&'a str>,
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
    verify_expecting(receipt, trusted, status, now, Expected::default())
}

/// As [`verify`], also checking the authorization's `aud` and `nonce`.
pub fn verify_expecting(
    receipt: &Receipt,
    trusted: &[PublicKey],
    status: Option<&status::Verified>,
    now: i64,
    expected: Expected<'_>,
) -> Result<Verified, PaymentError> {
    let segments = sdjwt::split(&receipt.mandate)?;
    let (terminal, vouchers) = segments
        .split_last()
        .filter(|(_, v)| !v.is_empty())
        .ok_or_else(|| fail("chain", "a mandate is a voucher chain and an authorization"))?;
    let presented: Vec<String> = vouchers.iter().map(Segment::presented).collect();
    if receipt.chain != presented || receipt.authorization != terminal.presented() {
        return Err(fail(
            "receipt",
            "chain and authorization are not the mandate's segments",
        ));
    }
    let root = voucher::root_key(vouchers, trusted)?;
    let checked = sdjwt::verify_segments(
        &segments,
        &root,
        &sdjwt::Expect {
            aud: expected.aud,
            nonce: expected.nonce,
            at: None,
            skew: voucher::CLOCK_SKEW_S,
            open: false,
        },
    )?;
    let no_time = voucher::Checks {
        now: None,
        allow_unknown: false,
    };
    let chain = voucher::read(vouchers, &checked, &root, no_time)?;
    let leaf = chain
        .last()
        .ok_or_else(|| fail("chain", "the chain is empty"))?;
    let holder = leaf.cnf.jwk.to_public_key()?;
    let kid = holder.thumbprint();
    let last = vouchers.len();
    let header_kid = checked
        .headers
        .get(last)
        .and_then(|h| h.get("kid"))
        .and_then(Value::as_str);
    if header_kid != Some(kid.as_str()) {
        return Err(fail(
            "kid",
            "the header's kid is not the holder key's thumbprint",
        ));
    }
    let (payload, closed) = checked
        .payloads
        .get(last)
        .zip(checked.mandates.get(last))
        .ok_or_else(|| fail("chain", "no authorization"))?;
    if payload.get("sd_hash").is_none() {
        return Err(fail(
            "binding",
            "the authorization is bound by issuer_jwt_hash, not sd_hash",
        ));
    }
    let c = read(payload, closed)?;
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
    let risk_attestation = closed
        .get("risk_data")
        .and_then(|r| r.get(RISK_MEMBER))
        .and_then(|r| r.get("attestation"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let pointer = closed
        .get("agent_attestation")
        .and_then(|a| a.get("value"))
        .and_then(Value::as_str);
    if pointer.is_some_and(|v| v != c.attestation_sha256) {
        return Err(fail(
            "attestation",
            "agent_attestation names another bundle than risk_data.ari",
        ));
    }
    if risk_attestation != receipt.attestation {
        return Err(fail(
            "attestation",
            "the receipt's bundle is not the one the mandate carries",
        ));
    }
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
    let binding = Binding {
        voucher: &voucher::digest(&presented.last().cloned().unwrap_or_default()),
        transaction_id: &c.transaction_id,
        amount: c.amount,
        currency: &c.currency,
        payee: &c.payee,
        aud: &c.aud,
        nonce: &c.nonce,
        kid: &kid,
    };
    if bundle.binding != binding_digest(&binding) {
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
            Constraint::FundsCarrier { id } => c.funds_carrier == *id,
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
