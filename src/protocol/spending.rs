//! What agents and users have spent (`admin.spending`): every voucher's balance, and totals per
//! agent and per user. Amounts are integers in minor units of their currency, as everywhere on
//! the wire; formatting them is the reader's business. Types only.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The params of `admin.spending`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpendingParams {
    /// Only this agent's vouchers and totals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// Only this user's agents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Where "today" starts, Unix seconds (default: the last midnight UTC). A reader in another
    /// time zone passes its own midnight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub day_start: Option<i64>,
}

/// The result of `admin.spending`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spending {
    /// When it was read, Unix seconds: the time every state and period below is relative to.
    pub now: i64,
    /// Where "today" started.
    pub day_start: i64,
    /// The vouchers, newest first.
    pub vouchers: Vec<VoucherBalance>,
    /// Per agent, by id.
    pub agents: Vec<Totals>,
    /// Per user (the agents' users), by id.
    pub users: Vec<Totals>,
    /// Authorized amounts per hour over the last 24 hours, by currency then hour: the
    /// spending-over-time chart. Hours without a payment are left out.
    pub hourly: Vec<Hourly>,
}

/// What the selected agents had authorized in one currency in one hour.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hourly {
    /// ISO 4217.
    pub currency: String,
    /// The hour's start, Unix seconds (a multiple of 3600).
    pub hour: i64,
    /// Minor units.
    pub amount: u64,
}

/// Where a voucher stands, in words a reader can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VoucherState {
    /// Spendable now (if its agent is active).
    Active,
    /// Not valid before its `not_before`.
    NotYetValid,
    /// Past its expiry.
    Expired,
    /// Revoked by an operator.
    Revoked,
    /// Its agent is frozen: nothing is spent until it is unfrozen.
    Suspended,
    /// Its agent is retired.
    Retired,
}

/// One voucher's limits and what has been used of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoucherBalance {
    /// The voucher's id.
    pub id: String,
    /// The agent that holds it.
    pub agent: String,
    /// The user whose funds it spends.
    pub user: String,
    /// The voucher it was delegated from, by id.
    pub parent: Option<String>,
    /// Where it stands.
    pub state: VoucherState,
    /// Its autonomy level, `L0` to `L5` (absent if its chain no longer verifies).
    pub level: Option<String>,
    /// ISO 4217, from its budget or amount range (absent if it limits neither).
    pub currency: Option<String>,
    /// Its budget: for its whole life, or, with `period`, for each period.
    pub budget: Option<u64>,
    /// `DAILY`, `WEEKLY`, … for a voucher whose budget and count renew each period (UTC).
    pub period: Option<String>,
    /// When the current period started.
    pub period_start: Option<i64>,
    /// Spent and not given back (the current period's, with `period`), holds excluded.
    pub spent: u64,
    /// Held for payments awaiting an operator's confirmation (L2).
    pub held: u64,
    /// Carved out for delegated vouchers and not yet spent by them.
    pub reserved: u64,
    /// What is left to spend: budget minus spent, held and reserved.
    pub remaining: Option<u64>,
    /// Payments counted so far (the current period's, with `period`).
    pub payments: u64,
    /// The most payments allowed (per period, with `period`).
    pub max_payments: Option<u64>,
    /// Unix seconds.
    pub issued_at: i64,
    /// Unix seconds.
    pub not_before: i64,
    /// Unix seconds.
    pub expires_at: i64,
}

/// Spending of one agent or user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// The agent's or user's id.
    pub id: String,
    /// For an agent: its user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// For an agent: `active`, `frozen` or `retired`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Per currency, by code.
    pub amounts: Vec<Amounts>,
    /// Denied decisions by reason, all time.
    pub denials: BTreeMap<String, u64>,
    /// Payments awaiting an operator's confirmation.
    pub pending: u64,
    /// Authorized payments not reported by their deadline.
    pub overdue: u64,
}

impl Amounts {
    /// Nothing yet in `currency`.
    pub fn none(currency: &str) -> Self {
        Self {
            currency: currency.to_string(),
            today: 0,
            period: None,
            lifetime: 0,
            held: 0,
        }
    }
}

/// Amounts in one currency, minor units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Amounts {
    /// ISO 4217.
    pub currency: String,
    /// Authorized since `day_start` (failed and refunded payments given back).
    pub today: u64,
    /// Authorized in the current period of the periodic vouchers (absent without one).
    pub period: Option<u64>,
    /// Authorized, all time.
    pub lifetime: u64,
    /// Held for confirmation now.
    pub held: u64,
}
