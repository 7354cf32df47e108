//! How a voucher's limits are written as an AP2 open payment mandate, and read back.
//!
//! ARI reasons about limits as [`Constraint`]s; on the wire they are AP2's. The mapping:
//!
//! | ARI | AP2 open mandate |
//! | --- | --- |
//! | amount range | `payment.amount_range` (minor units; AP2 needs `max`) |
//! | budget | `payment.budget`, `max` in the **major** unit ([`mandate::budget_major`]) |
//! | payment count, per period or in all | `payment.agent_recurrence`: `frequency` (`ON_DEMAND` for the voucher's life), `max_occurrences`; a periodic one makes the budget per period too, counted in UTC (`a2p2.period_time_zone`) |
//! | allowed payees | `payment.allowed_payees`, each a Merchant (`id` = `name` = the payee), each element its own disclosure |
//! | funds carrier | `payment.allowed_payment_instruments`, one instrument of type [`INSTRUMENT_TYPE`], its own disclosure |
//! | execution window | `payment.execution_date`, ISO 8601 UTC strings ([`mandate::utc`]) |
//! | autonomy level, categories, report deadline, conditions | the `a2p2` member ([`mandate::A2p2Limits`]) |
//!
//! Reading is total: an AP2 constraint ARI cannot enforce (a checkout reference, a list of
//! several instruments, an unknown type) becomes
//! [`Constraint::Unknown`], which no payment ever passes.

use super::constraint::{AutonomyLevel, Constraint, Currency};
use super::{VoucherClaims, VoucherError};
use crate::jose::Jwk;
use crate::mandate::{self, A2p2Limits, Cnf, Frequency, OpenPaymentMandate};
use crate::sdjwt::Disclosure;
use serde_json::{Value, json};

/// The `type` of the payment instrument that names a voucher's funds carrier.
pub const INSTRUMENT_TYPE: &str = "ari.funds_carrier";

/// The open mandate carrying `claims`' limits and holder, and the disclosures of its concealed
/// array elements (allowed payees and instruments), each salted by `salt`.
pub fn to_mandate(
    claims: &VoucherClaims,
    salt: &mut dyn FnMut() -> String,
) -> Result<(Value, Vec<Disclosure>), VoucherError> {
    let mut out = Vec::new();
    let mut out_unknown = Vec::new();
    let mut disclosures = Vec::new();
    let mut limits = A2p2Limits::default();
    let mut conceal = |value: Value, disclosures: &mut Vec<Disclosure>| {
        let d = Disclosure::element(&salt(), value);
        let reference = json!({ "...": d.digest() });
        disclosures.push(d);
        reference
    };
    for c in &claims.constraints {
        match c {
            Constraint::AmountRange { currency, min, max } => {
                let max = max.ok_or_else(|| VoucherError::Claim {
                    index: 0,
                    message: "payment.amount_range needs a max on the wire".into(),
                })?;
                out.push(mandate::Constraint::AmountRange {
                    currency: currency.as_str().into(),
                    max,
                    min: *min,
                });
            }
            Constraint::Budget { currency, max } => {
                limits.budget_minor = mandate::budget_exact(*max, currency.as_str());
                out.push(mandate::Constraint::Budget {
                    currency: currency.as_str().into(),
                    max: mandate::budget_major(*max, currency.as_str()),
                })
            }
            Constraint::AgentRecurrence {
                max_occurrences,
                frequency,
            } => {
                if *frequency != Frequency::OnDemand {
                    limits.period_time_zone = Some(mandate::PERIOD_TIME_ZONE.into());
                }
                out.push(mandate::Constraint::AgentRecurrence {
                    frequency: *frequency,
                    max_occurrences: (*max_occurrences != u32::MAX)
                        .then_some(u64::from(*max_occurrences)),
                })
            }
            Constraint::AllowedPayees { payees } => {
                let allowed = payees
                    .iter()
                    .map(|p| conceal(json!({ "id": p, "name": p }), &mut disclosures))
                    .collect();
                out.push(mandate::Constraint::AllowedPayees { allowed });
            }
            Constraint::FundsCarrier { id } => {
                let allowed = vec![conceal(
                    json!({ "id": id, "type": INSTRUMENT_TYPE }),
                    &mut disclosures,
                )];
                out.push(mandate::Constraint::AllowedPaymentInstruments { allowed });
            }
            Constraint::ExecutionDate {
                not_before,
                not_after,
            } => out.push(mandate::Constraint::ExecutionDate {
                not_before: not_before.map(mandate::utc),
                not_after: not_after.map(mandate::utc),
            }),
            Constraint::AutonomyLevel { level } => {
                limits.autonomy_level = format!("{level:?}");
            }
            Constraint::Categories { categories } => limits.categories = categories.clone(),
            Constraint::ReportWithin { seconds } => limits.report_within_s = Some(*seconds),
            Constraint::Conditions { all } => limits.conditions = all.clone(),
            // Kept as it came: only a voucher of another issuer holds one (the daemon refuses to
            // sign it), and every reader refuses it.
            Constraint::Unknown { body, .. } => out_unknown.push(body.clone()),
        }
    }
    let open = OpenPaymentMandate {
        vct: mandate::OPEN_VCT.into(),
        constraints: out,
        cnf: Cnf {
            jwk: claims.cnf.jwk.clone(),
            kid: Some(
                claims
                    .cnf
                    .jwk
                    .to_public_key()
                    .map_err(|source| VoucherError::Jose { index: 0, source })?
                    .thumbprint(),
            ),
        },
        payment_instrument: None,
        payee: None,
        payment_amount: None,
        execution_date: None,
        iat: Some(claims.iat),
        exp: Some(claims.exp),
        a2p2: (!limits.autonomy_level.is_empty()).then_some(limits),
    };
    let mut value = serde_json::to_value(&open).map_err(|e| VoucherError::Claim {
        index: 0,
        message: format!("the mandate does not encode: {e}"),
    })?;
    if let Some(list) = value.get_mut("constraints").and_then(Value::as_array_mut) {
        list.extend(out_unknown);
    }
    Ok((value, disclosures))
}

/// What a disclosed open mandate says, in ARI's terms.
#[derive(Debug, Clone)]
pub struct Read {
    /// The holder's key.
    pub jwk: Jwk,
    /// The mandate's `vct`.
    pub vct: String,
    /// Its limits.
    pub constraints: Vec<Constraint>,
}

/// Reads a disclosed open mandate (already resolved: concealed elements nobody disclosed are
/// gone) as segment `index` of a chain.
pub fn from_mandate(m: &Value, index: usize) -> Result<Read, VoucherError> {
    let claim = |message: String| VoucherError::Claim { index, message };
    let vct = m
        .get("vct")
        .and_then(Value::as_str)
        .ok_or_else(|| claim("the mandate has no vct".into()))?
        .to_string();
    let cnf: Cnf = serde_json::from_value(m.get("cnf").cloned().unwrap_or(Value::Null))
        .map_err(|e| claim(format!("cnf: {e}")))?;
    let holder = cnf
        .jwk
        .to_public_key()
        .map_err(|source| VoucherError::Jose { index, source })?;
    if cnf.kid.as_deref() != Some(holder.thumbprint().as_str()) {
        return Err(claim("cnf.kid is not the thumbprint of cnf.jwk".into()));
    }
    let items = m
        .get("constraints")
        .and_then(Value::as_array)
        .ok_or_else(|| claim("the mandate has no constraints array".into()))?;
    let a2p2 = m
        .get(mandate::A2P2_CLAIM)
        .map(|a| {
            serde_json::from_value::<A2p2Limits>(a.clone())
                .map_err(|e| claim(format!("{}: {e}", mandate::A2P2_CLAIM)))
        })
        .transpose()?;
    let mut constraints = read_limits(items, a2p2).map_err(claim)?;
    // A member ARI does not enforce (a pre-set payee, amount, instrument or date, anything
    // else) limits nothing here: it is kept as unknown, which no payment passes.
    if let Some(members) = m.as_object() {
        for (name, value) in members {
            if !matches!(
                name.as_str(),
                "vct" | "constraints" | "cnf" | "iat" | "exp" | mandate::A2P2_CLAIM
            ) {
                constraints.push(Constraint::Unknown {
                    kind: format!("{name} (pre-set)"),
                    body: value.clone(),
                });
            }
        }
    }
    Ok(Read {
        jwk: cnf.jwk,
        vct,
        constraints,
    })
}

/// Limits written as an open mandate writes them, AP2 constraint objects and the `a2p2` member,
/// in ARI's terms.
pub fn read_limits(items: &[Value], a2p2: Option<A2p2Limits>) -> Result<Vec<Constraint>, String> {
    let exact = a2p2.as_ref().and_then(|l| l.budget_minor);
    let mut constraints = Vec::new();
    for body in items {
        constraints.push(read_constraint(body, exact)?);
    }
    if let Some(limits) = a2p2 {
        if limits
            .period_time_zone
            .as_deref()
            .is_some_and(|z| z != mandate::PERIOD_TIME_ZONE)
        {
            return Err(format!(
                "periods counted in {:?}: this version counts them in {}",
                limits.period_time_zone,
                mandate::PERIOD_TIME_ZONE
            ));
        }
        let level: AutonomyLevel =
            serde_json::from_value(Value::String(limits.autonomy_level.clone()))
                .map_err(|_| format!("autonomy level {:?}", limits.autonomy_level))?;
        constraints.push(Constraint::AutonomyLevel { level });
        if !limits.categories.is_empty() {
            constraints.push(Constraint::Categories {
                categories: limits.categories,
            });
        }
        if let Some(seconds) = limits.report_within_s {
            constraints.push(Constraint::ReportWithin { seconds });
        }
        if !limits.conditions.is_empty() {
            constraints.push(Constraint::Conditions {
                all: limits.conditions,
            });
        }
    }
    Ok(constraints)
}

/// Whether an open mandate as signed (before its disclosures are resolved) conceals anything
/// but elements of allowed lists: a holder could present it without a concealed limit, and the
/// limit would be gone. Allowed payees and instruments may be concealed: leaving one out only
/// narrows.
pub fn conceals_a_limit(raw: &Value) -> bool {
    fn any_concealed(v: &Value) -> bool {
        match v {
            Value::Object(m) => {
                m.contains_key("_sd") || m.contains_key("...") || m.values().any(any_concealed)
            }
            Value::Array(a) => a.iter().any(any_concealed),
            _ => false,
        }
    }
    let Some(members) = raw.as_object() else {
        return true;
    };
    members
        .iter()
        .any(|(name, value)| match (name.as_str(), value) {
            ("_sd", _) => true,
            ("constraints", Value::Array(items)) => items.iter().any(|c| match c.as_object() {
                None => true,
                Some(c) => c.iter().any(|(k, v)| match (k.as_str(), v) {
                    ("allowed", Value::Array(elements)) => elements.iter().any(|e| {
                        // `{"...": digest}` itself is fine; what an element holds is not.
                        e.as_object().is_some_and(|o| !o.contains_key("...")) && any_concealed(e)
                    }),
                    _ => k == "_sd" || k == "..." || any_concealed(v),
                }),
            }),
            _ => any_concealed(value),
        })
}

/// One AP2 constraint in ARI's terms; [`Constraint::Unknown`] where ARI cannot enforce it.
fn read_constraint(body: &Value, exact_budget: Option<u64>) -> Result<Constraint, String> {
    let kind = body
        .get("type")
        .and_then(Value::as_str)
        .ok_or("a constraint without a string type")?
        .to_string();
    let unknown = || Constraint::Unknown {
        kind: kind.clone(),
        body: body.clone(),
    };
    let Ok(c) = serde_json::from_value::<mandate::Constraint>(body.clone()) else {
        return Ok(unknown());
    };
    let currency = |c: &str| Currency::try_from(c.to_string()).map_err(|e| e.to_string());
    Ok(match c {
        mandate::Constraint::AmountRange {
            currency: c,
            max,
            min,
        } => Constraint::AmountRange {
            currency: currency(&c)?,
            min,
            max: Some(max),
        },
        mandate::Constraint::Budget { currency: c, max } => {
            let minor = mandate::budget_minor(&max, &c, exact_budget).ok_or_else(|| {
                format!("payment.budget: {max} (exactly {exact_budget:?}) is not an amount of {c}")
            })?;
            Constraint::Budget {
                currency: currency(&c)?,
                max: minor,
            }
        }
        mandate::Constraint::AgentRecurrence {
            frequency,
            max_occurrences,
        } => match max_occurrences.map(u32::try_from) {
            Some(Ok(n)) => Constraint::AgentRecurrence {
                max_occurrences: n,
                frequency,
            },
            // No count: only the period (its budget) limits.
            None => Constraint::AgentRecurrence {
                max_occurrences: u32::MAX,
                frequency,
            },
            Some(Err(_)) => unknown(),
        },
        mandate::Constraint::AllowedPayees { allowed } => {
            let payees = allowed
                .iter()
                .map(|m| serde_json::from_value::<mandate::Merchant>(m.clone()).map(|m| m.id))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("payment.allowed_payees: {e}"))?;
            Constraint::AllowedPayees { payees }
        }
        mandate::Constraint::AllowedPaymentInstruments { allowed } => match allowed.as_slice() {
            [one] => {
                let p: mandate::PaymentInstrument = serde_json::from_value(one.clone())
                    .map_err(|e| format!("payment.allowed_payment_instruments: {e}"))?;
                Constraint::FundsCarrier { id: p.id }
            }
            _ => unknown(),
        },
        mandate::Constraint::ExecutionDate {
            not_before,
            not_after,
        } => {
            let read = |t: Option<String>| match t {
                None => Ok(None),
                Some(t) => mandate::parse_utc(&t).map(Some).ok_or(t),
            };
            match (read(not_before), read(not_after)) {
                (Ok(not_before), Ok(not_after)) => Constraint::ExecutionDate {
                    not_before,
                    not_after,
                },
                _ => unknown(),
            }
        }
        // Conditional on an open checkout mandate, which this version does not take.
        mandate::Constraint::Reference { .. } => unknown(),
    })
}
