//! Evidence entries as a person follows them: one line per decision or change that stops
//! spending, shared by `arictl watch` and the console's feed.

use crate::view;
use ari::evidence::entry::{Entry, Kind};
use serde::Serialize;
use serde_json::Value;

/// One entry, summed up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Event {
    pub index: u64,
    pub time: i64,
    pub kind: &'static str,
    pub agent: Option<String>,
    pub user: Option<String>,
    pub decision: Option<String>,
    pub amount_display: Option<String>,
    pub reason: Option<String>,
    /// The line: who did what.
    pub text: String,
}

/// Whether `kind` is a decision on money or a change that starts or stops spending: what a
/// watcher follows by default.
pub(crate) fn followed(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::PaymentAuthorized
            | Kind::PaymentDenied
            | Kind::PaymentPending
            | Kind::PaymentConfirmed
            | Kind::PaymentRejected
            | Kind::PaymentVoided
            | Kind::PaymentReported
            | Kind::AgentFrozen
            | Kind::AgentUnfrozen
            | Kind::AgentRetired
            | Kind::AgentProvisioned
            | Kind::AgentRotated
            | Kind::VoucherIssued
            | Kind::VoucherDelegated
            | Kind::VoucherRevoked
    )
}

fn text_of<'a>(fact: &'a Value, key: &str) -> Option<&'a str> {
    fact.get(key).and_then(Value::as_str)
}

/// `entry` summed up.
pub(crate) fn event(entry: &Entry) -> Event {
    let f = &entry.fact;
    let amount = match (
        f.get("amount").and_then(Value::as_u64),
        text_of(f, "currency"),
    ) {
        (Some(a), Some(c)) => Some(view::money(a, c)),
        _ => None,
    };
    let payee = text_of(f, "payee").unwrap_or("?");
    let money = amount.clone().unwrap_or_else(|| "?".into());
    let reason = text_of(f, "reason").map(str::to_owned);
    let who = entry.agent.clone().unwrap_or_else(|| "daemon".into());
    let what = match entry.kind {
        Kind::PaymentAuthorized => format!("authorized {money} to {payee}"),
        Kind::PaymentDenied => format!(
            "denied {money} to {payee}: {}",
            reason.as_deref().unwrap_or("?")
        ),
        Kind::PaymentPending => format!("held {money} to {payee} for confirmation"),
        Kind::PaymentConfirmed => format!("confirmed {money} to {payee}"),
        Kind::PaymentRejected => format!("rejected {money} to {payee}"),
        Kind::PaymentVoided => format!("voided {money} to {payee} (signing failed)"),
        Kind::PaymentReported => format!(
            "reported {money} to {payee}: {}",
            text_of(f, "outcome").unwrap_or("?")
        ),
        Kind::AgentFrozen => "frozen".into(),
        Kind::AgentUnfrozen => "unfrozen".into(),
        Kind::AgentRetired => "retired".into(),
        Kind::AgentProvisioned => "provisioned".into(),
        Kind::AgentRotated => "given a new key".into(),
        Kind::VoucherIssued => format!("given voucher {}", text_of(f, "voucher").unwrap_or("?")),
        Kind::VoucherDelegated => {
            format!(
                "given delegated voucher {}",
                text_of(f, "voucher").unwrap_or("?")
            )
        }
        Kind::VoucherRevoked => format!("voucher {} revoked", text_of(f, "voucher").unwrap_or("?")),
        other => other.name().to_string(),
    };
    Event {
        index: entry.index,
        time: entry.time,
        kind: entry.kind.name(),
        agent: entry.agent.clone(),
        user: entry.user.clone(),
        decision: text_of(f, "decision").map(str::to_owned),
        amount_display: amount,
        reason,
        text: format!("{who} {what}"),
    }
}

/// Whether `entry` is about `agent` (when given) and `user` (when given).
pub(crate) fn about(entry: &Entry, agent: Option<&str>, user: Option<&str>) -> bool {
    agent.is_none_or(|a| entry.agent.as_deref() == Some(a))
        && user.is_none_or(|u| entry.user.as_deref() == Some(u))
}
