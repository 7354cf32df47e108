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
    /// Its RFC 7638 thumbprint (Verifiable Intent requires it beside the key).
    pub kid: String,
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
}

/// An open payment mandate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenPaymentMandate {
    pub vct: String,
    pub constraints: Vec<Constraint>,
    pub cnf: Cnf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_instrument: Option<PaymentInstrument>,
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

/// A minor-unit budget as AP2's `budget.max`: the major-unit decimal, parsed from its digits.
/// JSON carries it as a binary float, so AP2's `int(max * 100)` may read one minor unit less
/// (`19.99` → 1998): never more than ARI's own limit, so whatever ARI refuses, AP2 refuses too.
pub fn budget_major(minor: u64, currency: &str) -> serde_json::Number {
    let exp = minor_exponent(currency);
    let scale = 10u64.pow(exp);
    let text = if exp == 0 {
        minor.to_string()
    } else {
        format!(
            "{}.{:0width$}",
            minor / scale,
            minor % scale,
            width = exp as usize
        )
    };
    text.parse::<serde_json::Number>()
        .unwrap_or_else(|_| serde_json::Number::from(minor / scale))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
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

    #[test]
    fn budgets_are_written_in_major_units_exactly() {
        assert_eq!(budget_major(20_000, "CNY").to_string(), "200.0");
        assert_eq!(budget_major(1_999, "USD").to_string(), "19.99");
        assert_eq!(budget_major(5_000, "JPY").to_string(), "5000");
        assert_eq!(budget_major(1_234, "KWD").to_string(), "1.234");
        assert_eq!(budget_major(7, "EUR").to_string(), "0.07");
    }
}
