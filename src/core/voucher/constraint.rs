//! The constraints a voucher carries, in ARI's own terms, and what "narrower" means for each.
//!
//! This is how ARI reasons about a voucher's limits, not how they travel: on the wire they are
//! AP2 constraint objects and the `a2p2` member of an open payment mandate, and
//! [`super::ap2`] maps between the two. The serialized form here (`payment.*` names with ARI's
//! members and units, budgets in minor units, and A2P2's own limits under the namespace
//! [`A2P2_NS`]) is ARI's reading: what `arictl verify voucher` prints and errors name, never a
//! voucher's content. A limit this build cannot enforce is kept verbatim as
//! [`Constraint::Unknown`] so it can be reported, and every check treats it as a failure: an
//! unknown limit is never silently ignored.

use crate::mandate::Frequency;
use serde::{Deserialize, Serialize};
use serde_json::Value;

fn on_demand() -> Frequency {
    Frequency::OnDemand
}

/// The namespace of A2P2's own constraint types.
pub const A2P2_NS: &str = "org.a2p2";
/// The largest amount (in minor units) or duration a constraint may name: what the ledger's
/// signed 64-bit columns hold. Anything larger is a caller's mistake, refused up front rather
/// than failing in the store.
pub const MAX_AMOUNT: u64 = i64::MAX as u64;

/// The most condition expressions one voucher may carry.
pub const MAX_CONDITIONS: usize = 16;
/// The largest budget, in minor units: AP2 writes budgets in the major unit as a JSON number,
/// and up to 15 significant digits read back exactly.
pub const MAX_BUDGET: u64 = 999_999_999_999_999;

/// Why a constraint's values are not acceptable ([`Constraint::validate`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidConstraint {
    /// An amount or a duration the ledger cannot hold.
    #[error("{kind}: {what} {n} is above the largest amount the ledger holds ({MAX_AMOUNT})")]
    TooLarge {
        /// The constraint's type.
        kind: String,
        /// The member.
        what: &'static str,
        /// Its value.
        n: u64,
    },
    /// A range whose low end is above its high end.
    #[error("{kind}: {low} is above {high}")]
    Unordered {
        /// The constraint's type.
        kind: String,
        /// The low end's member.
        low: &'static str,
        /// The high end's member.
        high: &'static str,
    },
    /// An empty list, or an empty value where one is needed.
    #[error("{kind}: at least one non-empty {what}")]
    Empty {
        /// The constraint's type.
        kind: String,
        /// What must not be empty.
        what: &'static str,
    },
    /// A budget too large to write exactly in the major unit.
    #[error(
        "payment.budget: {n} minor units is above the largest budget AP2's major units hold exactly ({MAX_BUDGET})"
    )]
    Inexact {
        /// The budget.
        n: u64,
    },
    /// Too few or too many condition expressions.
    #[error("org.a2p2.conditions: between 1 and {MAX_CONDITIONS} expressions")]
    ConditionCount,
    /// A condition expression that does not parse.
    #[error("org.a2p2.conditions: {expr:?}: {source}")]
    Condition {
        /// The expression.
        expr: String,
        /// Why it does not parse.
        #[source]
        source: crate::condition::ParseError,
    },
    /// A constraint type this version does not know.
    #[error("unknown constraint type {kind:?}")]
    Unknown {
        /// The type.
        kind: String,
    },
}

/// An ISO 4217 currency code: three ASCII capital letters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency(String);

/// A currency code that is not three capital letters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an ISO 4217 code (three capital letters)")]
pub struct InvalidCurrency(pub String);

impl TryFrom<String> for Currency {
    type Error = InvalidCurrency;
    fn try_from(code: String) -> Result<Self, InvalidCurrency> {
        if code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(Self(code))
        } else {
            Err(InvalidCurrency(code))
        }
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> String {
        c.0
    }
}

impl Currency {
    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How much the agent may do without a human (DESIGN §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AutonomyLevel {
    /// Never signs a payment.
    L0,
    /// Never signs a payment.
    L1,
    /// Every payment waits for a human.
    L2,
    /// Signs inside the hard constraints.
    L3,
    /// As L3, plus conditions and post-hoc reports.
    L4,
    /// Signs anything inside the outer bounds.
    L5,
}

/// One constraint. Amounts are integers in minor units of the currency; times are Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Constraint {
    /// Each payment's amount lies in `[min, max]` of `currency`.
    AmountRange {
        currency: Currency,
        min: Option<u64>,
        max: Option<u64>,
    },
    /// All payments together stay within `max` of `currency`.
    Budget { currency: Currency, max: u64 },
    /// Payments go only to these payees.
    AllowedPayees { payees: Vec<String> },
    /// Payments happen only inside this window.
    ExecutionDate {
        not_before: Option<i64>,
        not_after: Option<i64>,
    },
    /// At most this many payments (`u32::MAX`: no count), in each period of `frequency`
    /// ([`crate::mandate::period_start`]) or, `ON_DEMAND`, in the voucher's life. A periodic
    /// recurrence makes the voucher's budget a budget per period too.
    AgentRecurrence {
        max_occurrences: u32,
        frequency: Frequency,
    },
    /// The autonomy level.
    AutonomyLevel { level: AutonomyLevel },
    /// Payments only in these categories.
    Categories { categories: Vec<String> },
    /// The funds carrier (account, card, wallet) the voucher draws on.
    FundsCarrier { id: String },
    /// Every authorization must be reported within this many seconds.
    ReportWithin { seconds: u64 },
    /// Every one of these condition expressions ([`crate::condition`]) must hold.
    Conditions { all: Vec<String> },
    /// A type this build does not know; always fails.
    Unknown { kind: String, body: Value },
}

/// The wire form: `{"type": ..., ...members}`.
#[derive(Serialize, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
enum Wire {
    #[serde(rename = "payment.amount_range")]
    AmountRange {
        currency: Currency,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max: Option<u64>,
    },
    #[serde(rename = "payment.budget")]
    Budget { currency: Currency, max: u64 },
    #[serde(rename = "payment.allowed_payees")]
    AllowedPayees { payees: Vec<String> },
    #[serde(rename = "payment.execution_date")]
    ExecutionDate {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        not_before: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        not_after: Option<i64>,
    },
    #[serde(rename = "payment.agent_recurrence")]
    AgentRecurrence {
        max_occurrences: u32,
        #[serde(default = "on_demand")]
        frequency: Frequency,
    },
    #[serde(rename = "org.a2p2.autonomy_level")]
    AutonomyLevel { level: AutonomyLevel },
    #[serde(rename = "org.a2p2.categories")]
    Categories { categories: Vec<String> },
    #[serde(rename = "org.a2p2.funds_carrier")]
    FundsCarrier { id: String },
    #[serde(rename = "org.a2p2.report_within")]
    ReportWithin { seconds: u64 },
    #[serde(rename = "org.a2p2.conditions")]
    Conditions { all: Vec<String> },
}

impl Serialize for Constraint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let wire = match self.clone() {
            Self::AmountRange { currency, min, max } => Wire::AmountRange { currency, min, max },
            Self::Budget { currency, max } => Wire::Budget { currency, max },
            Self::AllowedPayees { payees } => Wire::AllowedPayees { payees },
            Self::ExecutionDate {
                not_before,
                not_after,
            } => Wire::ExecutionDate {
                not_before,
                not_after,
            },
            Self::AgentRecurrence {
                max_occurrences,
                frequency,
            } => Wire::AgentRecurrence {
                max_occurrences,
                frequency,
            },
            Self::AutonomyLevel { level } => Wire::AutonomyLevel { level },
            Self::Categories { categories } => Wire::Categories { categories },
            Self::FundsCarrier { id } => Wire::FundsCarrier { id },
            Self::ReportWithin { seconds } => Wire::ReportWithin { seconds },
            Self::Conditions { all } => Wire::Conditions { all },
            Self::Unknown { body, .. } => return body.serialize(s),
        };
        wire.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Constraint {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let body = Value::deserialize(d)?;
        let kind = body
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| serde::de::Error::custom("a constraint needs a string \"type\""))?
            .to_string();
        let wire = match serde_json::from_value::<Wire>(body.clone()) {
            Ok(w) => w,
            // A known type with a bad body is an error; an unknown type is kept and fails later.
            Err(e) if is_known(&kind) => {
                return Err(serde::de::Error::custom(format!("{kind}: {e}")));
            }
            Err(_) => return Ok(Self::Unknown { kind, body }),
        };
        Ok(match wire {
            Wire::AmountRange { currency, min, max } => Self::AmountRange { currency, min, max },
            Wire::Budget { currency, max } => Self::Budget { currency, max },
            Wire::AllowedPayees { payees } => Self::AllowedPayees { payees },
            Wire::ExecutionDate {
                not_before,
                not_after,
            } => Self::ExecutionDate {
                not_before,
                not_after,
            },
            Wire::AgentRecurrence {
                max_occurrences,
                frequency,
            } => Self::AgentRecurrence {
                max_occurrences,
                frequency,
            },
            Wire::AutonomyLevel { level } => Self::AutonomyLevel { level },
            Wire::Categories { categories } => Self::Categories { categories },
            Wire::FundsCarrier { id } => Self::FundsCarrier { id },
            Wire::ReportWithin { seconds } => Self::ReportWithin { seconds },
            Wire::Conditions { all } => Self::Conditions { all },
        })
    }
}

/// Every type this build understands.
pub const KNOWN_TYPES: &[&str] = &[
    "payment.amount_range",
    "payment.budget",
    "payment.allowed_payees",
    "payment.execution_date",
    "payment.agent_recurrence",
    "org.a2p2.autonomy_level",
    "org.a2p2.categories",
    "org.a2p2.funds_carrier",
    "org.a2p2.report_within",
    "org.a2p2.conditions",
];

fn is_known(kind: &str) -> bool {
    KNOWN_TYPES.contains(&kind)
}

impl Constraint {
    /// The wire `type`.
    pub fn kind(&self) -> &str {
        match self {
            Self::AmountRange { .. } => "payment.amount_range",
            Self::Budget { .. } => "payment.budget",
            Self::AllowedPayees { .. } => "payment.allowed_payees",
            Self::ExecutionDate { .. } => "payment.execution_date",
            Self::AgentRecurrence { .. } => "payment.agent_recurrence",
            Self::AutonomyLevel { .. } => "org.a2p2.autonomy_level",
            Self::Categories { .. } => "org.a2p2.categories",
            Self::FundsCarrier { .. } => "org.a2p2.funds_carrier",
            Self::ReportWithin { .. } => "org.a2p2.report_within",
            Self::Conditions { .. } => "org.a2p2.conditions",
            Self::Unknown { kind, .. } => kind,
        }
    }

    /// Checks the values themselves (ranges ordered, lists non-empty, amounts and durations no
    /// larger than [`MAX_AMOUNT`]).
    pub fn validate(&self) -> Result<(), InvalidConstraint> {
        let kind = || self.kind().to_string();
        let too_large = |what, n| {
            Err(InvalidConstraint::TooLarge {
                kind: kind(),
                what,
                n,
            })
        };
        let empty = |what| Err(InvalidConstraint::Empty { kind: kind(), what });
        match self {
            Self::AmountRange { min: Some(n), .. } if *n > MAX_AMOUNT => too_large("min", *n),
            Self::AmountRange { max: Some(n), .. } if *n > MAX_AMOUNT => too_large("max", *n),
            Self::Budget { max, .. } if *max > MAX_BUDGET => {
                Err(InvalidConstraint::Inexact { n: *max })
            }
            Self::ReportWithin { seconds } if *seconds > MAX_AMOUNT => {
                too_large("seconds", *seconds)
            }
            Self::AmountRange {
                min: Some(lo),
                max: Some(hi),
                ..
            } if lo > hi => Err(InvalidConstraint::Unordered {
                kind: kind(),
                low: "min",
                high: "max",
            }),
            Self::ExecutionDate {
                not_before: Some(a),
                not_after: Some(b),
            } if a > b => Err(InvalidConstraint::Unordered {
                kind: kind(),
                low: "not_before",
                high: "not_after",
            }),
            Self::AllowedPayees { payees }
                if payees.is_empty() || payees.iter().any(String::is_empty) =>
            {
                empty("payee")
            }
            Self::Categories { categories }
                if categories.is_empty() || categories.iter().any(String::is_empty) =>
            {
                empty("category")
            }
            Self::FundsCarrier { id } if id.is_empty() => empty("id"),
            Self::Conditions { all } if all.is_empty() || all.len() > MAX_CONDITIONS => {
                Err(InvalidConstraint::ConditionCount)
            }
            Self::Conditions { all } => all.iter().try_for_each(|e| {
                crate::condition::Expr::parse(e)
                    .map(|_| ())
                    .map_err(|source| InvalidConstraint::Condition {
                        expr: e.clone(),
                        source,
                    })
            }),
            Self::Unknown { kind, .. } => Err(InvalidConstraint::Unknown { kind: kind.clone() }),
            _ => Ok(()),
        }
    }

    /// Whether `self` (a child's constraint of the same type) is equal to or stricter than
    /// `parent`.
    pub fn narrows(&self, parent: &Constraint) -> bool {
        use Constraint as C;
        let within_min = |child: Option<u64>, parent: Option<u64>| match (child, parent) {
            (_, None) => true,
            (Some(c), Some(p)) => c >= p,
            (None, Some(_)) => false,
        };
        let within_max = |child: Option<u64>, parent: Option<u64>| match (child, parent) {
            (_, None) => true,
            (Some(c), Some(p)) => c <= p,
            (None, Some(_)) => false,
        };
        let subset = |child: &[String], parent: &[String]| child.iter().all(|c| parent.contains(c));
        match (self, parent) {
            (
                C::AmountRange {
                    currency: c,
                    min: cmin,
                    max: cmax,
                },
                C::AmountRange {
                    currency: p,
                    min: pmin,
                    max: pmax,
                },
            ) => c == p && within_min(*cmin, *pmin) && within_max(*cmax, *pmax),
            (
                C::Budget {
                    currency: c,
                    max: cmax,
                },
                C::Budget {
                    currency: p,
                    max: pmax,
                },
            ) => c == p && cmax <= pmax,
            (C::AllowedPayees { payees: c }, C::AllowedPayees { payees: p }) => subset(c, p),
            (
                C::ExecutionDate {
                    not_before: cnb,
                    not_after: cna,
                },
                C::ExecutionDate {
                    not_before: pnb,
                    not_after: pna,
                },
            ) => {
                let after = match (cnb, pnb) {
                    (_, None) => true,
                    (Some(c), Some(p)) => c >= p,
                    (None, Some(_)) => false,
                };
                let before = match (cna, pna) {
                    (_, None) => true,
                    (Some(c), Some(p)) => c <= p,
                    (None, Some(_)) => false,
                };
                after && before
            }
            // A periodic voucher is never delegated, so a parent's recurrence counts its life.
            (
                C::AgentRecurrence {
                    max_occurrences: c, ..
                },
                C::AgentRecurrence {
                    max_occurrences: p,
                    frequency: Frequency::OnDemand,
                },
            ) => c <= p,
            (C::AutonomyLevel { level: c }, C::AutonomyLevel { level: p }) => c <= p,
            (C::Categories { categories: c }, C::Categories { categories: p }) => subset(c, p),
            (C::FundsCarrier { id: c }, C::FundsCarrier { id: p }) => c == p,
            (C::ReportWithin { seconds: c }, C::ReportWithin { seconds: p }) => c <= p,
            // More conditions are stricter: the child keeps every one of the parent's.
            (C::Conditions { all: c }, C::Conditions { all: p }) => subset(p, c),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use serde_json::json;

    fn cny() -> Currency {
        Currency::try_from("CNY".to_string()).unwrap()
    }

    #[test]
    fn wire_roundtrip_and_unknown_types_are_kept() {
        let c: Constraint = serde_json::from_value(
            json!({"type": "payment.amount_range", "currency": "CNY", "max": 5000}),
        )
        .unwrap();
        assert_eq!(
            c,
            Constraint::AmountRange {
                currency: cny(),
                min: None,
                max: Some(5000)
            }
        );
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            json!({"type": "payment.amount_range", "currency": "CNY", "max": 5000})
        );
        let u: Constraint =
            serde_json::from_value(json!({"type": "com.example.moon_phase", "phase": "full"}))
                .unwrap();
        assert_eq!(u.kind(), "com.example.moon_phase");
        assert!(u.validate().is_err(), "an unknown constraint fails");
        assert_eq!(serde_json::to_value(&u).unwrap()["phase"], "full");
        // A known type with a bad body is refused outright.
        assert!(
            serde_json::from_value::<Constraint>(
                json!({"type": "payment.budget", "currency": "cny", "max": 1})
            )
            .is_err()
        );
        assert!(
            serde_json::from_value::<Constraint>(
                json!({"type": "payment.budget", "currency": "CNY", "max": 1, "x": 2})
            )
            .is_err()
        );
        assert!(serde_json::from_value::<Constraint>(json!({"currency": "CNY"})).is_err());
    }

    #[test]
    fn narrowing_per_type() {
        let range = |min, max| Constraint::AmountRange {
            currency: cny(),
            min,
            max,
        };
        assert!(range(Some(100), Some(500)).narrows(&range(None, Some(1000))));
        assert!(
            !range(None, None).narrows(&range(None, Some(1000))),
            "dropping a max widens"
        );
        assert!(!range(Some(10), Some(500)).narrows(&range(Some(100), None)));
        let payees = |p: &[&str]| Constraint::AllowedPayees {
            payees: p.iter().map(|s| s.to_string()).collect(),
        };
        assert!(payees(&["a"]).narrows(&payees(&["a", "b"])));
        assert!(!payees(&["a", "c"]).narrows(&payees(&["a", "b"])));
        let level = |l| Constraint::AutonomyLevel { level: l };
        assert!(level(AutonomyLevel::L2).narrows(&level(AutonomyLevel::L3)));
        assert!(!level(AutonomyLevel::L5).narrows(&level(AutonomyLevel::L3)));
        let budget = |m| Constraint::Budget {
            currency: cny(),
            max: m,
        };
        assert!(budget(10).narrows(&budget(10)));
        assert!(!budget(11).narrows(&budget(10)));
        assert!(
            !budget(1).narrows(&level(AutonomyLevel::L3)),
            "different types never narrow"
        );
    }

    #[test]
    fn values_are_checked() {
        assert!(
            Constraint::AmountRange {
                currency: cny(),
                min: Some(5),
                max: Some(1)
            }
            .validate()
            .is_err()
        );
        assert!(
            Constraint::AllowedPayees { payees: vec![] }
                .validate()
                .is_err()
        );
        assert!(Currency::try_from("US".to_string()).is_err());
        // Amounts and durations stop at what the ledger's columns hold.
        let budget = |max| Constraint::Budget {
            currency: cny(),
            max,
        };
        // A budget stops where AP2's major units stop being exact.
        assert!(budget(MAX_BUDGET).validate().is_ok());
        assert!(matches!(
            budget(MAX_BUDGET + 1).validate(),
            Err(InvalidConstraint::Inexact { .. })
        ));
        let range = |min, max| Constraint::AmountRange {
            currency: cny(),
            min,
            max,
        };
        assert!(range(None, Some(u64::MAX)).validate().is_err());
        assert!(range(Some(MAX_AMOUNT + 1), None).validate().is_err());
        assert!(
            Constraint::ReportWithin { seconds: u64::MAX }
                .validate()
                .is_err()
        );
    }
}
