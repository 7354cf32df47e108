//! AP2 v0.2 payment mandates, the documents vouchers and payment authorizations become.
//!
//! An *open* mandate (`vct` [`OPEN_VCT`]) is what a user delegates: AP2 constraint objects
//! (amount range, budget, recurrence, allowed payees and payment instruments, execution dates,
//! a checkout reference) and the holder's key in `cnf`. A *closed* mandate (`vct`
//! [`CLOSED_VCT`]) is one payment: the transaction, payee, amount, payment instrument and risk
//! data. Each travels as the disclosed item of an SD-JWT segment ([`crate::sdjwt`]).
//!
//! Units follow AP2: amounts (`payment_amount.amount`, `amount_range.min`/`max`) are integers in
//! the currency's minor unit; `budget.max` is a number in the **major** unit (AP2's checker
//! multiplies it by 100). [`budget_major`] writes a minor-unit budget that way.
//!
//! The A2P2 limits AP2 has no constraint for (autonomy level, purchase categories, the report
//! deadline, conditions, periodic limits) travel beside AP2's members as the claim
//! [`A2P2_CLAIM`] ([`A2p2Limits`]): AP2 verifiers ignore members they do not know, and ARI
//! enforces them. They never go into `constraints`, where an AP2 verifier would refuse an
//! unknown type.

use crate::jose::Jwk;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `vct` of an open payment mandate.
pub const OPEN_VCT: &str = "mandate.payment.open.1";
/// `vct` of a closed payment mandate.
pub const CLOSED_VCT: &str = "mandate.payment.1";
/// The member of an open mandate that carries the A2P2 limits.
pub const A2P2_CLAIM: &str = "a2p2";

/// An amount in the currency's minor unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Amount {
    pub amount: u64,
    pub currency: String,
}

/// A payee.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Merchant {
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub website: Option<String>,
}

/// The funds carrier a payment draws on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentInstrument {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// How often an agent may pay (`payment.agent_recurrence.frequency`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Frequency {
    OnDemand,
    Daily,
    Weekly,
    Biweekly,
    Monthly,
    Quarterly,
    Annually,
}

/// An AP2 constraint of an open payment mandate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Constraint {
    /// Each payment between `min` and `max`, minor units.
    #[serde(rename = "payment.amount_range")]
    AmountRange {
        currency: String,
        max: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min: Option<u64>,
    },
    /// All payments together at most `max`, **major** units.
    #[serde(rename = "payment.budget")]
    Budget {
        currency: String,
        max: serde_json::Number,
    },
    /// How often, and how many payments at most.
    #[serde(rename = "payment.agent_recurrence")]
    AgentRecurrence {
        frequency: Frequency,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_occurrences: Option<u64>,
    },
    /// Who may be paid; each element may be concealed (a selectively disclosable array).
    #[serde(rename = "payment.allowed_payees")]
    AllowedPayees { allowed: Vec<Value> },
    /// Which instruments may be drawn on; each element may be concealed.
    #[serde(rename = "payment.allowed_payment_instruments")]
    AllowedPaymentInstruments { allowed: Vec<Value> },
    /// When the payment may execute: ISO 8601 UTC times, `YYYY-MM-DDTHH:MM:SSZ`.
    #[serde(rename = "payment.execution_date")]
    ExecutionDate {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        not_before: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        not_after: Option<String>,
    },
    /// The checkout this mandate is conditional on.
    #[serde(rename = "payment.reference")]
    Reference { conditional_transaction_id: String },
}

/// The holder's key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cnf {
    pub jwk: Jwk,
    /// Its RFC 7638 thumbprint: Verifiable Intent requires it beside the key, AP2 does not;
    /// ARI always writes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
}

/// What A2P2 limits that AP2 has no constraint for; enforced by ARI, ignored by AP2 verifiers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct A2p2Limits {
    /// Autonomy level, `L0` to `L5`.
    pub autonomy_level: String,
    /// Purchase categories allowed; empty allows any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
    /// Every authorization must be reported within this many seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_within_s: Option<u64>,
    /// Conditions over the payment's facts that must hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<String>,
    /// The time zone periods (`agent_recurrence.frequency`) are counted in: `UTC`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_time_zone: Option<String>,
    /// The budget in minor units, exactly, where AP2's readings of `budget.max` differ
    /// (currencies whose exponent is not 2; [`budget_major`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_minor: Option<u64>,
}

/// An open payment mandate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenPaymentMandate {
    pub vct: String,
    pub constraints: Vec<Constraint>,
    pub cnf: Cnf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_instrument: Option<PaymentInstrument>,
    /// Pre-set: the one payee the closed mandate may name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payee: Option<Merchant>,
    /// Pre-set: the one amount the closed mandate may name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_amount: Option<Amount>,
    /// Pre-set: the one execution date the closed mandate may name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub a2p2: Option<A2p2Limits>,
}

/// A closed payment mandate: one payment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClosedPaymentMandate {
    pub vct: String,
    pub transaction_id: String,
    pub payee: Merchant,
    pub payment_amount: Amount,
    pub payment_instrument: PaymentInstrument,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk_data: Option<Value>,
}

/// ISO 4217 minor-unit exponent of `currency` (2 unless listed otherwise).
pub fn minor_exponent(currency: &str) -> u32 {
    match currency {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX"
        | "UYI" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        "CLF" | "UYW" => 4,
        _ => 2,
    }
}

/// A minor-unit budget as AP2's `budget.max`. AP2 reads that number two ways: its
/// specification in the currency's major unit, its SDK's checker as hundredths (`int(max *
/// 100)`, whatever the currency's exponent). The value written is `minor / 10^max(e, 2)` for a
/// currency of exponent `e`, so that neither reading allows more than `minor`: for the
/// two-decimal currencies both readings give `minor` exactly; for JPY (no decimals) the
/// specification's reading is a hundredth of it; for KWD (three) the SDK's a tenth. Where the
/// readings differ, the exact figure travels beside it as `a2p2.budget_minor`
/// ([`budget_exact`]). JSON carries the number as a binary float, so the SDK may read one unit
/// less still (`19.99` → 1998): stricter, never looser.
pub fn budget_major(minor: u64, currency: &str) -> serde_json::Number {
    let exp = minor_exponent(currency).max(2);
    let scale = 10u64.pow(exp);
    let text = format!(
        "{}.{:0width$}",
        minor / scale,
        minor % scale,
        width = exp as usize
    );
    text.parse::<serde_json::Number>()
        .unwrap_or_else(|_| serde_json::Number::from(minor / scale))
}

/// The exact budget ARI writes beside `budget.max` in `a2p2.budget_minor`: for currencies whose
/// exponent is not 2, where AP2's two readings of `budget.max` differ ([`budget_major`]).
pub fn budget_exact(minor: u64, currency: &str) -> Option<u64> {
    (minor_exponent(currency) != 2).then_some(minor)
}

/// Unix seconds as the ISO 8601 UTC time AP2's dates are compared in (as strings):
/// `YYYY-MM-DDTHH:MM:SSZ`. Times before 1970 or after 9999 are clamped to those years' ends.
pub fn utc(secs: i64) -> String {
    let secs = secs.clamp(0, 253_402_300_799);
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3_600,
        rest % 3_600 / 60,
        rest % 60
    )
}

/// The time zone ARI counts periods in.
pub const PERIOD_TIME_ZONE: &str = "UTC";

/// Where the period of `frequency` that holds `at` (Unix seconds) starts, counted in UTC:
/// `DAILY` at midnight, `WEEKLY` on Monday at midnight (ISO weeks), `BIWEEKLY` on every other
/// Monday counted from Monday 5 January 1970, `MONTHLY` on the first of the month, `QUARTERLY`
/// on the first of January, April, July and October, `ANNUALLY` on the first of January.
/// `ON_DEMAND` has no period: `None`.
pub fn period_start(at: i64, frequency: Frequency) -> Option<i64> {
    const DAY: i64 = 86_400;
    let midnight = at.div_euclid(DAY) * DAY;
    // 1970-01-05 was a Monday: day 4.
    let weeks = |n: i64| {
        let days = at.div_euclid(DAY) - 4;
        (days.div_euclid(7 * n) * 7 * n + 4) * DAY
    };
    let first_of = |months_per_period: i64| {
        let date = utc(at);
        let year: i64 = date.get(0..4)?.parse().ok()?;
        let month: i64 = date.get(5..7)?.parse().ok()?;
        let month = (month - 1) / months_per_period * months_per_period + 1;
        parse_utc(&format!("{year:04}-{month:02}-01T00:00:00Z"))
    };
    match frequency {
        Frequency::OnDemand => None,
        Frequency::Daily => Some(midnight),
        Frequency::Weekly => Some(weeks(1)),
        Frequency::Biweekly => Some(weeks(2)),
        Frequency::Monthly => first_of(1),
        Frequency::Quarterly => first_of(3),
        Frequency::Annually => first_of(12),
    }
}

/// The Unix seconds of a time written as [`utc`] writes it; `None` for any other form.
pub fn parse_utc(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let shape = b.len() == 20
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'Z',
            _ => c.is_ascii_digit(),
        });
    if !shape {
        return None;
    }
    let num = |r: std::ops::Range<usize>| text.get(r).and_then(|t| t.parse::<i64>().ok());
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 59 {
        return None;
    }
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let secs = (era * 146_097 + doe - 719_468) * 86_400 + hh * 3_600 + mm * 60 + ss;
    // A day past the month's end (e.g. 02-30) does not survive the round trip.
    (utc(secs) == text).then_some(secs)
}

/// What was spent under an open mandate before this payment: the figures its budget and
/// recurrence constraints are checked against (for a recurrence, within the current period).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Minor units already paid.
    pub spent: u64,
    /// Payments already made.
    pub uses: u64,
}

/// Why a closed mandate does not satisfy an open one; the names are ARI's denial reasons.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Violation {
    #[error("currency_mismatch: the {0} constraint is in another currency")]
    CurrencyMismatch(&'static str),
    #[error("amount_out_of_range: {amount} is outside {min}..={max}")]
    AmountOutOfRange { amount: u64, min: u64, max: u64 },
    #[error("budget_exhausted: {spent} spent + {amount} is over the budget of {budget}")]
    BudgetExhausted {
        spent: u64,
        amount: u64,
        budget: u64,
    },
    #[error("payments_exhausted: {uses} of {max} payments made")]
    PaymentsExhausted { uses: u64, max: u64 },
    #[error("payee_not_allowed: {0} is not among the disclosed allowed payees")]
    PayeeNotAllowed(String),
    #[error("instrument_not_allowed: {0} is not among the disclosed allowed payment instruments")]
    InstrumentNotAllowed(String),
    #[error("outside_execution_date: {0} is outside the allowed dates")]
    OutsideExecutionDate(String),
    #[error("reference_mismatch: the mandate is conditional on another checkout")]
    ReferenceMismatch,
    #[error("preset_mismatch: the payment changes the mandate's {0}")]
    PresetMismatch(&'static str),
    #[error("budget_unreadable: the budget {0} is not a non-negative amount of this currency")]
    BudgetUnreadable(String),
}

/// `budget.max` in minor units read as a number of `10^-exp` units, cut to an integer, from its
/// decimal digits; `None` if negative or not a plain decimal.
fn scaled(max: &serde_json::Number, exp: usize) -> Option<u64> {
    let text = max.to_string();
    if text.starts_with('-') || text.contains(['e', 'E']) {
        return None;
    }
    let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
    let kept: String = fraction
        .chars()
        .chain(std::iter::repeat('0'))
        .take(exp)
        .collect();
    format!("{whole}{kept}").parse().ok()
}

/// A budget (`payment.budget.max`) in minor units, as ARI reads it: `exact` (the mandate's
/// `a2p2.budget_minor`) where the issuer gave one that either of AP2's readings allows, else the
/// stricter of the two readings, the specification's (major units of the currency) and AP2's
/// SDK's (hundredths), so a budget never reads as more than its issuer may have meant. `None`
/// if unreadable, or if `exact` is more than both readings allow.
pub fn budget_minor(max: &serde_json::Number, currency: &str, exact: Option<u64>) -> Option<u64> {
    let spec = scaled(max, minor_exponent(currency) as usize)?;
    let sdk = scaled(max, 2)?;
    match exact {
        Some(e) if e <= spec.max(sdk) => Some(e),
        Some(_) => None,
        None => Some(spec.min(sdk)),
    }
}

/// Whether a payee matches an allowed one as AP2 matches them: by `id` when both have one, else
/// by equal, non-empty `name` and `website`.
fn merchant_matches(allowed: &Merchant, payee: &Merchant) -> bool {
    if !allowed.id.is_empty() && !payee.id.is_empty() {
        return allowed.id == payee.id;
    }
    !allowed.name.is_empty()
        && allowed.name == payee.name
        && allowed.website.is_some()
        && allowed.website == payee.website
}

/// Checks a closed mandate against the AP2 constraints of an open one, after `usage`, at
/// `now` (an ISO 8601 UTC time, the execution date of a payment that names none), with the
/// checkout the open mandate may be conditional on. Every violation is listed; concealed
/// payees and instruments (not disclosed to this verifier) allow nothing.
pub fn check(
    open: &OpenPaymentMandate,
    closed: &ClosedPaymentMandate,
    usage: Usage,
    now: &str,
    open_checkout_hash: Option<&str>,
) -> Vec<Violation> {
    let mut out = Vec::new();
    let amount = closed.payment_amount.amount;
    let currency = closed.payment_amount.currency.as_str();
    // Claims the open mandate pre-sets pass to the closed one unchanged.
    if let Some(preset) = &open.payment_instrument
        && preset.id != closed.payment_instrument.id
    {
        out.push(Violation::PresetMismatch("payment_instrument"));
    }
    if let Some(preset) = &open.payee
        && !merchant_matches(preset, &closed.payee)
    {
        out.push(Violation::PresetMismatch("payee"));
    }
    if let Some(preset) = &open.payment_amount
        && *preset != closed.payment_amount
    {
        out.push(Violation::PresetMismatch("payment_amount"));
    }
    if let Some(preset) = &open.execution_date
        && Some(preset) != closed.execution_date.as_ref()
    {
        out.push(Violation::PresetMismatch("execution_date"));
    }
    for c in &open.constraints {
        match c {
            Constraint::AmountRange {
                currency: cur,
                max,
                min,
            } => {
                if cur != currency {
                    out.push(Violation::CurrencyMismatch("payment.amount_range"));
                } else if amount > *max || amount < min.unwrap_or(0) {
                    out.push(Violation::AmountOutOfRange {
                        amount,
                        min: min.unwrap_or(0),
                        max: *max,
                    });
                }
            }
            Constraint::Budget { currency: cur, max } => {
                if cur != currency {
                    out.push(Violation::CurrencyMismatch("payment.budget"));
                    continue;
                }
                let exact = open.a2p2.as_ref().and_then(|l| l.budget_minor);
                match budget_minor(max, cur, exact) {
                    None => out.push(Violation::BudgetUnreadable(max.to_string())),
                    Some(budget) if usage.spent.saturating_add(amount) > budget => {
                        out.push(Violation::BudgetExhausted {
                            spent: usage.spent,
                            amount,
                            budget,
                        });
                    }
                    Some(_) => {}
                }
            }
            Constraint::AgentRecurrence {
                max_occurrences: Some(max),
                ..
            } if usage.uses >= *max => {
                out.push(Violation::PaymentsExhausted {
                    uses: usage.uses,
                    max: *max,
                });
            }
            Constraint::AgentRecurrence { .. } => {}
            Constraint::AllowedPayees { allowed } => {
                let ok = allowed
                    .iter()
                    .filter_map(|v| serde_json::from_value::<Merchant>(v.clone()).ok())
                    .any(|m| merchant_matches(&m, &closed.payee));
                if !ok {
                    out.push(Violation::PayeeNotAllowed(closed.payee.id.clone()));
                }
            }
            Constraint::AllowedPaymentInstruments { allowed } => {
                let ok = allowed
                    .iter()
                    .filter_map(|v| serde_json::from_value::<PaymentInstrument>(v.clone()).ok())
                    .any(|p| p.id == closed.payment_instrument.id);
                if !ok {
                    out.push(Violation::InstrumentNotAllowed(
                        closed.payment_instrument.id.clone(),
                    ));
                }
            }
            Constraint::ExecutionDate {
                not_before,
                not_after,
            } => {
                let when = closed.execution_date.as_deref().unwrap_or(now);
                let early = not_before.as_deref().is_some_and(|b| when < b);
                let late = not_after.as_deref().is_some_and(|a| when > a);
                if early || late {
                    out.push(Violation::OutsideExecutionDate(when.to_string()));
                }
            }
            Constraint::Reference {
                conditional_transaction_id,
            } => {
                if open_checkout_hash != Some(conditional_transaction_id.as_str()) {
                    out.push(Violation::ReferenceMismatch);
                }
            }
        }
    }
    out
}

/// A payment chain of any issuer (AP2's SDK, a wallet, ARI) that passed [`verify_chain`].
#[derive(Debug, Clone)]
pub struct PaymentChain {
    /// The open mandates, root first: one per segment but the last.
    pub open: Vec<OpenPaymentMandate>,
    /// The closed mandate of the last hop.
    pub closed: ClosedPaymentMandate,
    /// Each segment's resolved payload, root first.
    pub payloads: Vec<Value>,
    /// How each hop binds to the segment before it: `sd_hash` or `issuer_jwt_hash`.
    pub bindings: Vec<&'static str>,
    /// What the open mandates' constraints and pre-set claims say of the closed one, with
    /// nothing spent before (budgets and counts need the holder's ledger, which a chain does
    /// not carry).
    pub violations: Vec<Violation>,
}

/// Why a payment chain was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChainError {
    /// The root names no trusted key, or the SD-JWT chain fails.
    #[error(transparent)]
    Chain(#[from] crate::sdjwt::SdJwtError),
    /// No trusted key verifies the root.
    #[error("the root is signed by none of the trusted keys")]
    Untrusted,
    /// A mandate is not what its place in the chain requires.
    #[error("segment {segment}: {message}")]
    Mandate {
        /// Which segment.
        segment: usize,
        /// What is wrong.
        message: String,
    },
}

/// Verifies a payment chain as an AP2 verifier does, whoever made it: the root under one of
/// `trusted` (the one its header `kid` names, else each in turn), every hop under the key the
/// mandate before it names, the bindings (either hash, at any depth), the last hop's `aud`,
/// `nonce` and times per `expect`; every segment but the last must disclose an open payment
/// mandate and the last a closed one; then AP2's constraint check of the closed mandate against
/// every open one ([`check`]: constraints and pre-set claims, nothing spent before, `now` as
/// the execution date when the closed mandate names none).
pub fn verify_chain(
    chain: &str,
    trusted: &[crate::jose::PublicKey],
    expect: &crate::sdjwt::Expect<'_>,
    open_checkout_hash: Option<&str>,
) -> Result<PaymentChain, ChainError> {
    use crate::sdjwt;
    let segments = sdjwt::split(chain)?;
    if segments.len() < 2 {
        return Err(ChainError::Mandate {
            segment: 0,
            message: "a payment chain has a root and at least one hop".into(),
        });
    }
    let kid = segments
        .first()
        .and_then(|s| crate::jose::peek_header(&s.jwt).ok())
        .map(|h| h.kid)
        .unwrap_or_default();
    let mut keys: Vec<&crate::jose::PublicKey> =
        trusted.iter().filter(|k| k.thumbprint() == kid).collect();
    if keys.is_empty() {
        keys = trusted.iter().collect();
    }
    let mut verified = None;
    for key in keys {
        match sdjwt::verify_segments(&segments, key, expect) {
            Ok(v) => {
                verified = Some(v);
                break;
            }
            // Not this key's root signature: try the next.
            Err(sdjwt::SdJwtError::Jose { segment: 0, .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let v = verified.ok_or(ChainError::Untrusted)?;
    let last = v.mandates.len().saturating_sub(1);
    let mut open = Vec::new();
    let mut closed = None;
    for (segment, m) in v.mandates.iter().enumerate() {
        let bad = |message: String| ChainError::Mandate { segment, message };
        let vct = m.get("vct").and_then(Value::as_str).unwrap_or_default();
        if segment < last {
            if vct != OPEN_VCT {
                return Err(bad(format!("vct {vct:?} where {OPEN_VCT} was required")));
            }
            open.push(
                serde_json::from_value::<OpenPaymentMandate>(m.clone())
                    .map_err(|e| bad(format!("not an open payment mandate: {e}")))?,
            );
        } else {
            if vct != CLOSED_VCT {
                return Err(bad(format!("vct {vct:?} where {CLOSED_VCT} was required")));
            }
            closed = Some(
                serde_json::from_value::<ClosedPaymentMandate>(m.clone())
                    .map_err(|e| bad(format!("not a closed payment mandate: {e}")))?,
            );
        }
    }
    let Some(closed) = closed.filter(|_| !open.is_empty()) else {
        return Err(ChainError::Mandate {
            segment: last,
            message: "no closed mandate after an open one".into(),
        });
    };
    let now = utc(expect.at.unwrap_or(0));
    // Every open mandate's constraints and pre-set claims hold for the payment, not only the
    // last's: each hop may only narrow, and a verifier does not take that on trust.
    let mut violations: Vec<Violation> = Vec::new();
    for o in &open {
        for v in check(o, &closed, Usage::default(), &now, open_checkout_hash) {
            if !violations.contains(&v) {
                violations.push(v);
            }
        }
    }
    let bindings = v
        .payloads
        .iter()
        .skip(1)
        .map(|p| {
            if p.get("sd_hash").is_some() {
                "sd_hash"
            } else {
                "issuer_jwt_hash"
            }
        })
        .collect();
    Ok(PaymentChain {
        open,
        closed,
        payloads: v.payloads,
        bindings,
        violations,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
    use super::*;
    use serde_json::json;

    #[test]
    fn constraints_have_ap2_names_and_units() {
        let c = vec![
            Constraint::AmountRange {
                currency: "CNY".into(),
                max: 20_000,
                min: None,
            },
            Constraint::Budget {
                currency: "CNY".into(),
                max: budget_major(20_000, "CNY"),
            },
            Constraint::AgentRecurrence {
                frequency: Frequency::Daily,
                max_occurrences: Some(5),
            },
        ];
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            json!([
                {"type": "payment.amount_range", "currency": "CNY", "max": 20000},
                {"type": "payment.budget", "currency": "CNY", "max": 200.00},
                {"type": "payment.agent_recurrence", "frequency": "DAILY", "max_occurrences": 5},
            ])
        );
        // An unknown type does not parse, as AP2's union refuses it.
        assert!(serde_json::from_value::<Constraint>(json!({"type": "org.a2p2.level"})).is_err());
    }

    /// Payment chains AP2's own SDK made (tests/vectors/ap2/sdk_payment_chains.json).
    #[test]
    fn chains_made_by_the_ap2_sdk_verify_at_any_depth_with_either_binding() {
        let set: Value = serde_json::from_str(include_str!(
            "../../tests/vectors/ap2/sdk_payment_chains.json"
        ))
        .unwrap();
        let mut seen_issuer_jwt_hash = false;
        for c in set["chains"].as_array().unwrap() {
            let name = c["name"].as_str().unwrap();
            let root: crate::jose::Jwk =
                serde_json::from_value(c["root_public_jwk"].clone()).unwrap();
            let root = root.to_public_key().unwrap();
            let expect = crate::sdjwt::Expect {
                aud: c["expected_aud"].as_str(),
                nonce: c["expected_nonce"].as_str(),
                // After the hops were made (6 December 2026), before the mandates expire.
                at: Some(1_800_000_000),
                skew: 300,
                open: false,
            };
            let chain = c["mandate"].as_str().unwrap();
            let got = verify_chain(chain, &[root], &expect, None)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(
                got.payloads.len() as u64,
                c["depth"].as_u64().unwrap(),
                "{name}"
            );
            assert_eq!(got.violations, vec![], "{name}");
            assert_eq!(
                got.closed.transaction_id,
                c["expected_transaction_id"].as_str().unwrap(),
                "{name}"
            );
            seen_issuer_jwt_hash |= got.bindings.contains(&"issuer_jwt_hash");
            // Another nonce, a flipped signature, another root key: refused.
            let other = crate::sdjwt::Expect {
                nonce: Some("another-nonce"),
                ..expect
            };
            assert!(
                verify_chain(chain, &[root], &other, None).is_err(),
                "{name}"
            );
            let last_sig = chain.rfind('.').unwrap() + 3;
            let mut flipped = chain.to_string();
            let c2 = if &chain[last_sig..=last_sig] == "A" {
                "B"
            } else {
                "A"
            };
            flipped.replace_range(last_sig..=last_sig, c2);
            assert!(
                verify_chain(&flipped, &[root], &expect, None).is_err(),
                "{name}"
            );
        }
        assert!(seen_issuer_jwt_hash);
    }

    #[test]
    fn periods_start_where_the_calendar_says_in_utc() {
        let at = parse_utc("2026-12-06T23:59:59Z").unwrap(); // a Sunday
        let start = |f| period_start(at, f).map(utc);
        assert_eq!(start(Frequency::OnDemand), None);
        assert_eq!(start(Frequency::Daily).unwrap(), "2026-12-06T00:00:00Z");
        assert_eq!(start(Frequency::Weekly).unwrap(), "2026-11-30T00:00:00Z");
        assert_eq!(start(Frequency::Monthly).unwrap(), "2026-12-01T00:00:00Z");
        assert_eq!(start(Frequency::Quarterly).unwrap(), "2026-10-01T00:00:00Z");
        assert_eq!(start(Frequency::Annually).unwrap(), "2026-01-01T00:00:00Z");
        // Every other Monday from 1970-01-05; a Monday itself starts a week.
        let monday = parse_utc("2026-11-30T00:00:00Z").unwrap();
        assert_eq!(period_start(monday, Frequency::Weekly), Some(monday));
        let b = period_start(at, Frequency::Biweekly).unwrap();
        assert!(b == monday || b == monday - 7 * 86_400);
        assert_eq!(
            (b - parse_utc("1970-01-05T00:00:00Z").unwrap()) % (14 * 86_400),
            0
        );
        assert_eq!(
            period_start(
                parse_utc("2027-01-01T00:00:00Z").unwrap(),
                Frequency::Quarterly
            )
            .map(utc)
            .unwrap(),
            "2027-01-01T00:00:00Z"
        );
    }

    #[test]
    fn utc_times_round_trip_and_refuse_other_forms() {
        for (secs, text) in [
            (0, "1970-01-01T00:00:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_796_612_990, "2026-12-07T03:09:50Z"),
            (4_102_444_799, "2099-12-31T23:59:59Z"),
        ] {
            assert_eq!(utc(secs), text);
            assert_eq!(parse_utc(text), Some(secs));
        }
        for bad in [
            "2026-02-30T00:00:00Z",
            "2026-12-07",
            "2026-12-07T03:09:50+00:00",
            "2026-13-01T00:00:00Z",
            "2026-12-07t03:49:50Z",
        ] {
            assert_eq!(parse_utc(bad), None, "{bad}");
        }
    }

    #[test]
    fn budgets_read_back_exactly_and_refuse_what_the_currency_cannot_hold() {
        let n = |t: &str| t.parse::<serde_json::Number>().unwrap();
        // Two-decimal currencies: one reading, exact.
        for (minor, cur) in [(20_000, "CNY"), (1_999, "USD"), (0, "EUR")] {
            let v = budget_major(minor, cur);
            assert_eq!(budget_exact(minor, cur), None);
            assert_eq!(budget_minor(&v, cur, None), Some(minor), "{minor} {cur}");
        }
        // Others: AP2's two readings differ; neither allows more than the budget, and the
        // exact figure beside it reads back.
        assert_eq!(budget_major(5_000, "JPY"), n("50.00"));
        assert_eq!(budget_minor(&n("50.00"), "JPY", None), Some(50));
        assert_eq!(budget_minor(&n("50.00"), "JPY", Some(5_000)), Some(5_000));
        assert_eq!(budget_major(1_234, "KWD"), n("1.234"));
        assert_eq!(budget_minor(&n("1.234"), "KWD", None), Some(123));
        assert_eq!(budget_minor(&n("1.234"), "KWD", Some(1_234)), Some(1_234));
        assert_eq!(budget_exact(5_000, "JPY"), Some(5_000));
        // An exact figure no reading allows is refused; so are negative budgets.
        assert_eq!(budget_minor(&n("50.00"), "JPY", Some(5_001)), None);
        assert_eq!(budget_minor(&n("-1"), "USD", None), None);
        // Another issuer's budget: the stricter reading.
        assert_eq!(budget_minor(&n("5000"), "JPY", None), Some(5_000));
        assert_eq!(budget_minor(&n("19.999"), "USD", None), Some(1_999));
        assert_eq!(budget_minor(&n("1000"), "USD", None), Some(100_000));
    }

    /// An open mandate with every constraint kind, and a closed one inside all of them.
    pub(crate) fn fixture() -> (OpenPaymentMandate, ClosedPaymentMandate) {
        let jwk: Jwk = serde_json::from_value(json!({"kty": "EC", "crv": "P-256",
            "x": "toGTbmS_yILsQsNraZfhLjTy1yoGHd-NmHJ1FrV5OWs",
            "y": "PiXfjVFtax7OIBhrFwgFV4esW8PAwQBnZhS_h-ZfwCk"}))
        .unwrap();
        let open = OpenPaymentMandate {
            vct: OPEN_VCT.into(),
            constraints: vec![
                Constraint::AmountRange {
                    currency: "USD".into(),
                    max: 5_000,
                    min: Some(100),
                },
                Constraint::Budget {
                    currency: "USD".into(),
                    max: budget_major(10_000, "USD"),
                },
                Constraint::AgentRecurrence {
                    frequency: Frequency::Monthly,
                    max_occurrences: Some(3),
                },
                Constraint::AllowedPayees {
                    allowed: vec![json!({"id": "m-1", "name": "Acme"})],
                },
                Constraint::AllowedPaymentInstruments {
                    allowed: vec![json!({"id": "pi-1", "type": "card"})],
                },
                Constraint::ExecutionDate {
                    not_before: Some("2026-12-01T00:00:00Z".into()),
                    not_after: Some("2026-12-31T23:59:59Z".into()),
                },
            ],
            cnf: Cnf {
                jwk,
                kid: Some("k".into()),
            },
            payment_instrument: None,
            payee: None,
            payment_amount: None,
            execution_date: None,
            iat: None,
            exp: None,
            a2p2: None,
        };
        let closed = ClosedPaymentMandate {
            vct: CLOSED_VCT.into(),
            transaction_id: "tx".into(),
            payee: Merchant {
                id: "m-1".into(),
                name: "Acme".into(),
                website: None,
            },
            payment_amount: Amount {
                amount: 2_500,
                currency: "USD".into(),
            },
            payment_instrument: PaymentInstrument {
                id: "pi-1".into(),
                kind: "card".into(),
                description: None,
            },
            execution_date: Some("2026-12-06T12:00:00Z".into()),
            risk_data: None,
        };
        (open, closed)
    }

    #[test]
    fn a_payment_inside_every_constraint_passes_and_each_edge_is_named() {
        let (open, closed) = fixture();
        let now = "2026-12-06T12:00:00Z";
        assert!(check(&open, &closed, Usage::default(), now, None).is_empty());
        let names = |c: &ClosedPaymentMandate, u: Usage| {
            check(&open, c, u, now, None)
                .iter()
                .map(|v| {
                    v.to_string()
                        .split(':')
                        .next()
                        .unwrap_or_default()
                        .to_string()
                })
                .collect::<Vec<_>>()
        };
        let mut big = closed.clone();
        big.payment_amount.amount = 5_001;
        assert_eq!(names(&big, Usage::default()), ["amount_out_of_range"]);
        // Exactly at the budget passes; one minor unit over does not.
        assert!(
            names(
                &closed,
                Usage {
                    spent: 7_500,
                    uses: 0
                }
            )
            .is_empty()
        );
        assert_eq!(
            names(
                &closed,
                Usage {
                    spent: 7_501,
                    uses: 0
                }
            ),
            ["budget_exhausted"]
        );
        assert_eq!(
            names(&closed, Usage { spent: 0, uses: 3 }),
            ["payments_exhausted"]
        );
        let mut payee = closed.clone();
        payee.payee.id = "m-2".into();
        assert_eq!(names(&payee, Usage::default()), ["payee_not_allowed"]);
        // A payee not disclosed to this verifier allows nothing.
        let mut hidden = open.clone();
        hidden.constraints[3] = Constraint::AllowedPayees {
            allowed: vec![json!({"...": "bm90LWRpc2Nsb3NlZA"})],
        };
        assert_eq!(
            check(&hidden, &closed, Usage::default(), now, None).len(),
            1
        );
        let mut pi = closed.clone();
        pi.payment_instrument.id = "pi-2".into();
        assert_eq!(names(&pi, Usage::default()), ["instrument_not_allowed"]);
        let mut late = closed.clone();
        late.execution_date = Some("2027-01-01T00:00:00Z".into());
        assert_eq!(names(&late, Usage::default()), ["outside_execution_date"]);
        let mut eur = closed;
        eur.payment_amount.currency = "EUR".into();
        assert_eq!(
            names(&eur, Usage::default()),
            ["currency_mismatch", "currency_mismatch"]
        );
    }

    /// Payments ARI refuses on AP2 constraints, and ones it allows, printed (`--nocapture`) as
    /// `ap2-case: {open, closed, usage, ari}` lines for tests/by-hand/ap2_constraints.py, which
    /// asks AP2's own checker about the same mandates.
    #[test]
    fn ap2_consistency_cases() {
        let (open, closed) = fixture();
        let now = "2026-12-06T12:00:00Z";
        let mut cases: Vec<(ClosedPaymentMandate, Usage, bool)> = Vec::new();
        let with = |f: &dyn Fn(&mut ClosedPaymentMandate)| {
            let mut c = closed.clone();
            f(&mut c);
            c
        };
        for amount in [99, 100, 2_500, 5_000, 5_001] {
            cases.push((
                with(&|c| c.payment_amount.amount = amount),
                Usage::default(),
                (100..=5_000).contains(&amount),
            ));
        }
        for spent in [0, 7_499, 7_500, 7_501, 9_999] {
            cases.push((closed.clone(), Usage { spent, uses: 0 }, spent <= 7_500));
        }
        for uses in [0, 2, 3] {
            cases.push((closed.clone(), Usage { spent: 0, uses }, uses < 3));
        }
        cases.push((
            with(&|c| c.payee.id = "m-2".into()),
            Usage::default(),
            false,
        ));
        cases.push((
            with(&|c| c.payment_instrument.id = "pi-2".into()),
            Usage::default(),
            false,
        ));
        cases.push((
            with(&|c| c.payment_amount.currency = "EUR".into()),
            Usage::default(),
            false,
        ));
        cases.push((
            with(&|c| c.execution_date = Some("2027-01-01T00:00:00Z".into())),
            Usage::default(),
            false,
        ));
        cases.push((
            with(&|c| c.execution_date = Some("2026-11-30T23:59:59Z".into())),
            Usage::default(),
            false,
        ));
        for (c, usage, allowed) in cases {
            let violations = check(&open, &c, usage, now, None);
            assert_eq!(violations.is_empty(), allowed, "{violations:?}");
            println!(
                "ap2-case: {}",
                json!({
                    "open": open, "closed": c,
                    "usage": {"spent": usage.spent, "uses": usage.uses},
                    "ari": violations.iter().map(ToString::to_string).collect::<Vec<_>>(),
                })
            );
        }
    }

    #[test]
    fn budgets_are_written_so_no_reading_allows_more() {
        assert_eq!(budget_major(20_000, "CNY").to_string(), "200.0");
        assert_eq!(budget_major(1_999, "USD").to_string(), "19.99");
        // AP2's SDK reads hundredths: 50.00 is its 5000 yen; the specification's 50 yen.
        assert_eq!(budget_major(5_000, "JPY").to_string(), "50.0");
        assert_eq!(budget_major(1_234, "KWD").to_string(), "1.234");
        assert_eq!(budget_major(7, "EUR").to_string(), "0.07");
    }
}
