//! The vouchers' wire types: issuing, listing, revoking and importing them
//! (`admin.voucher_*`), trusting external issuers (`admin.issuer_*`), and delegation
//! (`voucher.delegate`).
//!
//! The voucher itself travels as SD-JWT segments (its own as presented, or the `~~`-joined chain
//! from its root); its format is [`crate::voucher`]'s. Types only.

use crate::jose::Jwk;
use crate::store::VoucherStatus;
use crate::voucher::constraint::AutonomyLevel;
use serde::{Deserialize, Serialize};

/// The params of `admin.voucher_issue`. Amounts in minor units, times in Unix seconds; each
/// optional member becomes a constraint of the voucher.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssueParams {
    /// The agent it is for.
    pub agent: String,
    /// Its autonomy level.
    pub level: AutonomyLevel,
    /// ISO 4217.
    pub currency: String,
    /// The least amount of one payment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_amount: Option<u64>,
    /// The largest amount of one payment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_amount: Option<u64>,
    /// The total it may spend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<u64>,
    /// How many payments it may make (per period, with `period`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_payments: Option<u32>,
    /// Makes the budget and the payment count per period: AP2's `agent_recurrence.frequency`
    /// (`DAILY`, `WEEKLY`, `BIWEEKLY`, `MONTHLY`, `QUARTERLY`, `ANNUALLY`), counted in UTC.
    /// Such a voucher cannot be delegated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<crate::mandate::Frequency>,
    /// The payees allowed (any when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub payees: Vec<String>,
    /// The categories allowed (any when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
    /// The funds carrier payments must use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub funds_carrier: Option<String>,
    /// Start of validity (default: now).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<i64>,
    /// End of validity.
    pub expires_at: i64,
    /// Seconds within which each payment must be reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_within_s: Option<u64>,
    /// Condition expressions that must all hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<String>,
    /// Latest execution date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after_execution: Option<i64>,
    /// Earliest execution date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before_execution: Option<i64>,
}

/// The params of `admin.voucher_list`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoucherListParams {
    /// Only this agent's vouchers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
}

/// `{ "voucher": ... }`: the params of the methods that act on one voucher (an id or digest,
/// or the root voucher itself, an SD-JWT with its disclosures, for `admin.voucher_import`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoucherParam {
    /// The voucher.
    pub voucher: String,
}

/// A voucher as the daemon keeps it, as the `admin.voucher_*` methods show it: the stored row
/// itself, so the two cannot drift apart.
pub type VoucherView = crate::store::StoredVoucher;

/// The result of `admin.voucher_list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoucherList {
    /// The vouchers, newest first.
    pub vouchers: Vec<VoucherView>,
}

/// The result of `admin.voucher_revoke`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoucherRevoked {
    /// The voucher's id.
    pub id: String,
    /// Always revoked.
    pub status: VoucherStatus,
}

/// The result of `admin.voucher_status_list`: the newest signed voucher status list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusListToken {
    /// The Status List Token (`typ` `statuslist+jwt`), signed by the issuer key.
    pub token: String,
    /// Its URL (the token's `sub`, what vouchers name in `status.status_list.uri`).
    pub uri: String,
    /// The file in the publish directory it is written to, relative to that directory.
    pub file: String,
    /// Signed at, Unix seconds.
    pub iat: i64,
    /// Good until, Unix seconds; the daemon signs a new one well before.
    pub exp: i64,
    /// How many entries the list has.
    pub entries: u64,
    /// How many vouchers it lists as INVALID (revoked, or their agent retired).
    pub invalid: u64,
    /// How many as SUSPENDED (their agent is frozen).
    pub suspended: u64,
}

/// The params of `admin.issuer_add`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerParams {
    /// The issuer's name.
    pub name: String,
    /// Its public P-256 key.
    pub jwk: Jwk,
}

/// `{ "name": NAME }`: the params of `admin.issuer_remove`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NameParam {
    /// The issuer's name.
    pub name: String,
}

/// The result of `admin.issuer_add`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuerAdded {
    /// The issuer's name.
    pub name: String,
    /// Its key's thumbprint.
    pub kid: String,
}

/// A trusted issuer, as `admin.issuer_list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Issuer {
    /// Its name (`arid` for the daemon's own).
    pub name: String,
    /// Its key's thumbprint.
    pub kid: String,
    /// Its public key.
    pub jwk: Jwk,
    /// Whether it is the daemon's own issuer key.
    pub own: bool,
}

/// The result of `admin.issuer_list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuerList {
    /// The daemon's own issuer first, then the registered ones.
    pub issuers: Vec<Issuer>,
}

/// The result of `admin.issuer_remove`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuerRemoved {
    /// The issuer's name.
    pub name: String,
    /// Always true.
    pub removed: bool,
}

/// The params of `voucher.delegate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DelegateParams {
    /// The parent voucher: id, digest, or the voucher itself (the `~~`-joined chain up to it).
    pub voucher: String,
    /// The child agent.
    pub agent: String,
    /// The child's AP2 constraints, as its open mandate will hold them (disclosed values, not
    /// digests): the full list, each as strict as the parent's or stricter.
    pub constraints: Vec<serde_json::Value>,
    /// The child's A2P2 limits (the open mandate's `a2p2` member), as strict as the parent's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub a2p2: Option<crate::mandate::A2p2Limits>,
    /// Start of validity (default: the parent's, or now if later).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<i64>,
    /// End of validity (default: the parent's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

/// The result of `voucher.delegate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delegated {
    /// The child voucher's id.
    pub id: String,
    /// Its digest.
    pub digest: String,
    /// The child voucher: the whole chain from the root, joined with `~~`.
    pub voucher: String,
}
