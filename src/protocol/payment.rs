//! The payments' wire types: asking for an authorization (`payment.authorize`), following and
//! reporting it (`payment.status`, `payment.report`), and the operator's side
//! (`admin.payment_*`).
//!
//! An authorized payment's answer carries a [`Receipt`], the format a verifier checks offline
//! ([`crate::payment`]). Types only; the decision is `policy`'s and `service::payment`'s.

use crate::ledger::{Outcome, PaymentStatus};
use crate::payment::Receipt;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The params of `payment.authorize`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorizeParams {
    /// The voucher spent: id, digest, or the voucher itself (the `~~`-joined chain up to it).
    pub voucher: String,
    /// The payment asked for.
    pub payment: PaymentParams,
    /// The verifier the authorization is for.
    pub aud: String,
    /// The verifier's nonce.
    pub nonce: String,
    /// The agent's claims that the voucher's conditions read.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub facts: Map<String, Value>,
    /// Wait for the checkpoint that covers the decision and put its `tlog_proof` in the
    /// receipt.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub proof: bool,
    /// The merchant's signed checkout (an AP2 checkout JWT): checked against the merchant's
    /// registered key and the payment, its hash becomes the transaction id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkout_jwt: Option<String>,
}

/// The payment inside [`AuthorizeParams`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentParams {
    /// Minor units, more than zero.
    pub amount: u64,
    /// ISO 4217.
    pub currency: String,
    /// Who is paid.
    pub payee: String,
    /// What kind of purchase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// The checkout's id: required unless `checkout_jwt` is given (then, if given, it must be
    /// the checkout's hash).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<String>,
}

/// The result of `payment.authorize`, by its `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Authorization {
    /// Signed (L3 to L5): the receipt.
    Authorized(Authorized),
    /// Held for an operator (L2).
    PendingConfirmation(Held),
}

/// A signed authorization: the decision and its receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Authorized {
    /// The decision's id.
    pub decision: String,
    /// Its place in the ledger.
    pub ledger_seq: i64,
    /// The evidence entry recording it, and the authorization's `log_index` claim.
    pub log_index: u64,
    /// What a verifier checks.
    #[serde(flatten)]
    pub receipt: Receipt,
}

/// A payment held for an operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    /// The decision's id, for `payment.status`.
    pub decision: String,
}

/// `{ "decision": ID }`: the params of `admin.payment_show` and `admin.payment_confirm`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionParam {
    /// The decision's id.
    pub decision: String,
}

/// The params of `admin.payment_reject`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RejectParams {
    /// The decision's id.
    pub decision: String,
    /// Why, for the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The params of `payment.status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusParams {
    /// The decision's id.
    pub decision: String,
    /// How long to wait for a held decision to be confirmed or rejected, milliseconds.
    #[serde(default)]
    pub wait_ms: u64,
}

/// The params of `payment.report`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportParams {
    /// The decision's id.
    pub decision: String,
    /// How the payment ended.
    pub outcome: Outcome,
    /// The payment rail's reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// The payment provider's signed AP2 payment receipt: checked against the registered
    /// providers' keys and this payment's authorization, and logged with the report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt_jwt: Option<String>,
    /// With `receipt_jwt`: the authorization the receipt answers, as `payment.authorize`
    /// returned it (the daemon keeps a copy only of confirmed held payments').
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<String>,
}

/// The params of `admin.payment_list`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentListParams {
    /// Only decisions that stand so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<PaymentStatus>,
    /// Only decisions on this voucher.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voucher: Option<String>,
    /// At most this many (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// The result of `admin.payment_list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentList {
    /// The decisions, newest first.
    pub payments: Vec<DecisionView>,
}

/// Where a decision stands, as agents and operators see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionStatus {
    /// Signed (or confirmed and signed).
    Authorized,
    /// Held for an operator.
    PendingConfirmation,
    /// Refused by the policy or an operator.
    Denied,
    /// Authorized, but its signature could not be made; its amount was returned.
    Void,
}

/// A payment decision, as `payment.status`, `payment.report` and the `admin.payment_*` methods
/// show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionView {
    /// Its id.
    pub decision: String,
    /// Where it stands.
    pub status: DecisionStatus,
    /// The denial reason.
    pub reason: Option<String>,
    /// Its place in the ledger.
    pub ledger_seq: i64,
    /// The voucher it was decided on.
    pub voucher: String,
    /// The agent that asked.
    pub agent: String,
    /// Minor units.
    pub amount: u64,
    /// ISO 4217.
    pub currency: String,
    /// Who is paid.
    pub payee: String,
    /// What kind of purchase.
    pub category: Option<String>,
    /// The checkout's id.
    pub transaction_id: String,
    /// The verifier the authorization is for.
    pub aud: String,
    /// Unix seconds.
    pub created_at: i64,
    /// When it was authorized or denied.
    pub decided_at: Option<i64>,
    /// When it must be reported by.
    pub report_deadline: Option<i64>,
    /// How it ended, once reported.
    pub outcome: Option<Outcome>,
    /// The payment rail's reference.
    pub reference: Option<String>,
    /// For a confirmed held payment, to its agent: the receipt.
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<Receipt>,
}
