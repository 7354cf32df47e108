//! `admin.spending`: every voucher's balance and what each agent and user spent, read from
//! committed state on the reading connection (never the ledger's writer), so a reader cannot
//! hold up a payment's commit.
//!
//! A voucher's `spent` column counts holds (an L2 payment is debited when it is held), so the
//! balance splits them out: `spent` is what was authorized and not given back, `held` what
//! awaits an operator, and `remaining` what is left once both and the delegations' reservations
//! are taken off. A delegation's spending is its parent's too, and so are its holds. A periodic
//! voucher's figures are its current period's, as the ledger counts them.

use super::{Service, blocking};
use crate::clock::unix_now;
use crate::error::Error;
use crate::identity::{Agent, AgentStatus};
use crate::protocol::spending::{
    Amounts, Hourly, Spending, SpendingParams, Totals, VoucherBalance, VoucherState,
};
use crate::protocol::wire_name;
use crate::store::{PaymentGroup, StoredVoucher, VoucherStatus};
use crate::voucher::VoucherClaims;
use crate::voucher::constraint::Constraint;
use std::collections::{BTreeMap, HashMap};

/// The payment states, as stored.
const PENDING: &str = "pending";
const AUTHORIZED: &str = "authorized";
const DENIED: &str = "denied";

/// Seconds in a day.
const DAY_S: i64 = 86_400;
/// Seconds in an hour.
const HOUR_S: i64 = 3_600;
/// Hours of the spending series, this one included.
const HOURS: i64 = 24;

impl Service {
    pub(super) async fn spending(&self, p: SpendingParams) -> Result<Spending, Error> {
        let now = unix_now();
        let day_start = p.day_start.unwrap_or(now - now.rem_euclid(DAY_S));
        if let Some(id) = &p.agent {
            self.agent(id)?;
        }
        let mut agents: Vec<Agent> = self
            .registry
            .all()
            .into_iter()
            .filter(|a| p.agent.as_ref().is_none_or(|id| *id == a.id))
            .filter(|a| p.user.as_ref().is_none_or(|u| *u == a.user))
            .collect();
        agents.sort_by(|a, b| a.id.cmp(&b.id));
        let store = self.store.clone();
        let since = now - now.rem_euclid(HOUR_S) - (HOURS - 1) * HOUR_S;
        let (vouchers, groups) =
            blocking(move || store.spending_snapshot(now, day_start, since)).await?;
        let holds: Vec<(String, u64)> = groups
            .iter()
            .filter(|g| g.status == PENDING)
            .map(|g| (g.voucher.clone(), g.amount))
            .collect();
        let mut series: BTreeMap<(String, i64), u64> = BTreeMap::new();
        for g in groups.iter().filter(|g| g.status == AUTHORIZED && g.spends) {
            if let Some(hour) = g.hour
                && agents.iter().any(|a| a.id == g.agent)
            {
                let sum = series.entry((g.currency.clone(), hour)).or_default();
                *sum = sum.saturating_add(g.amount);
            }
        }
        let held = held_by_voucher(&vouchers, &holds);
        let mut balances = Vec::new();
        for v in vouchers
            .iter()
            .filter(|v| agents.iter().any(|a| a.id == v.agent))
        {
            let claims = self
                .resolve_chain(&v.id)
                .await
                .ok()
                .map(|c| c.claims.clone());
            balances.push(
                self.balance(v, claims.as_deref(), &agents, &held, now)
                    .await?,
            );
        }
        let by_agent: Vec<Totals> = agents
            .iter()
            .map(|a| agent_totals(a, &groups, &balances))
            .collect();
        Ok(Spending {
            now,
            day_start,
            users: user_totals(&agents, &by_agent),
            vouchers: balances,
            agents: by_agent,
            hourly: series
                .into_iter()
                .map(|((currency, hour), amount)| Hourly {
                    currency,
                    hour,
                    amount,
                })
                .collect(),
        })
    }

    /// One voucher's balance; `chain` is its verified chain, root first, when it still
    /// verifies.
    async fn balance(
        &self,
        v: &StoredVoucher,
        chain: Option<&[VoucherClaims]>,
        agents: &[Agent],
        held: &HashMap<&str, u64>,
        now: i64,
    ) -> Result<VoucherBalance, Error> {
        let leaf = chain.and_then(<[VoucherClaims]>::last);
        let agent = agents.iter().find(|a| a.id == v.agent);
        let limits = leaf.map(limits).unwrap_or_default();
        let period = leaf.and_then(crate::policy::period);
        let period_start = period.and_then(|f| crate::mandate::period_start(now, f));
        // A periodic voucher's figures are its current period's, holds included: a hold from
        // an earlier period counts in that one, as the ledger counts it.
        let (budget, used, payments, held) = match period_start {
            Some(start) => {
                let (store, id) = (self.store.clone(), v.id.clone());
                let (used, count, held) = blocking(move || store.period_usage(&id, start)).await?;
                (limits.budget, used, count, held)
            }
            None => (
                v.budget.or(limits.budget),
                v.spent,
                v.payments,
                held.get(v.id.as_str()).copied().unwrap_or(0),
            ),
        };
        let not_before = leaf.map_or(v.issued_at, |c| c.nbf);
        let state = match (v.status, agent.map(|a| a.status)) {
            (VoucherStatus::Revoked, _) => VoucherState::Revoked,
            (_, Some(AgentStatus::Retired)) => VoucherState::Retired,
            _ if now >= v.expires_at => VoucherState::Expired,
            _ if now < not_before => VoucherState::NotYetValid,
            (_, Some(AgentStatus::Frozen)) => VoucherState::Suspended,
            _ => VoucherState::Active,
        };
        Ok(VoucherBalance {
            id: v.id.clone(),
            agent: v.agent.clone(),
            user: leaf.map_or_else(
                || agent.map(|a| a.user.clone()).unwrap_or_default(),
                |c| c.sub.clone(),
            ),
            parent: v.parent.as_ref().map(|_| {
                chain
                    .and_then(|c| c.len().checked_sub(2).and_then(|i| c.get(i)))
                    .map_or_else(String::new, |p| p.jti.clone())
            }),
            state,
            level: chain.and_then(crate::voucher::level).map(|l| wire_name(&l)),
            currency: limits.currency,
            budget,
            period: period.map(|f| wire_name(&f)),
            period_start,
            spent: used.saturating_sub(held),
            held,
            reserved: v.reserved,
            remaining: budget.map(|b| b.saturating_sub(used).saturating_sub(v.reserved)),
            payments,
            max_payments: limits.max_payments,
            issued_at: v.issued_at,
            not_before,
            expires_at: v.expires_at,
        })
    }
}

/// The limits of one voucher a balance shows.
#[derive(Default)]
struct Limits {
    currency: Option<String>,
    budget: Option<u64>,
    max_payments: Option<u64>,
}

fn limits(v: &VoucherClaims) -> Limits {
    let mut out = Limits::default();
    for c in &v.constraints {
        match c {
            Constraint::Budget { currency, max } => {
                out.currency = Some(currency.as_str().to_string());
                out.budget = Some(*max);
            }
            Constraint::AmountRange { currency, .. } if out.currency.is_none() => {
                out.currency = Some(currency.as_str().to_string());
            }
            Constraint::AgentRecurrence {
                max_occurrences, ..
            } if *max_occurrences != u32::MAX => {
                out.max_payments = Some(u64::from(*max_occurrences));
            }
            _ => {}
        }
    }
    out
}

/// The amount held on each voucher: a hold debits every voucher of its chain, so a voucher's
/// holds are those asked on it and on every voucher delegated from it.
fn held_by_voucher<'a>(
    vouchers: &'a [StoredVoucher],
    holds: &[(String, u64)],
) -> HashMap<&'a str, u64> {
    let by_id: HashMap<&str, &StoredVoucher> =
        vouchers.iter().map(|v| (v.id.as_str(), v)).collect();
    let by_digest: HashMap<&str, &str> = vouchers
        .iter()
        .map(|v| (v.digest.as_str(), v.id.as_str()))
        .collect();
    let mut held: HashMap<&str, u64> = HashMap::new();
    for (voucher, amount) in holds {
        let mut at = by_id.get(voucher.as_str()).copied();
        // A chain is at most `voucher::MAX_CHAIN` long; the bound keeps a corrupt loop finite.
        for _ in 0..crate::voucher::MAX_CHAIN {
            let Some(v) = at else { break };
            let sum = held.entry(v.id.as_str()).or_default();
            *sum = sum.saturating_add(*amount);
            at = v
                .parent
                .as_deref()
                .and_then(|d| by_digest.get(d))
                .and_then(|id| by_id.get(id))
                .copied();
        }
    }
    held
}

fn agent_totals(agent: &Agent, groups: &[PaymentGroup], balances: &[VoucherBalance]) -> Totals {
    let mut amounts: BTreeMap<String, Amounts> = BTreeMap::new();
    let mut denials: BTreeMap<String, u64> = BTreeMap::new();
    let (mut pending, mut overdue) = (0, 0);
    for g in groups.iter().filter(|g| g.agent == agent.id) {
        if g.status == DENIED {
            let reason = g.reason.clone().unwrap_or_else(|| "unknown".into());
            *denials.entry(reason).or_default() += g.count;
            continue;
        }
        let a = amounts
            .entry(g.currency.clone())
            .or_insert_with(|| Amounts::none(&g.currency));
        match g.status.as_str() {
            PENDING => {
                a.held = a.held.saturating_add(g.amount);
                pending += g.count;
            }
            AUTHORIZED => {
                if g.spends {
                    a.lifetime = a.lifetime.saturating_add(g.amount);
                    if g.today {
                        a.today = a.today.saturating_add(g.amount);
                    }
                }
                if g.overdue {
                    overdue += g.count;
                }
            }
            _ => {}
        }
    }
    for b in balances
        .iter()
        .filter(|b| b.agent == agent.id && b.period.is_some())
    {
        let Some(currency) = &b.currency else {
            continue;
        };
        let a = amounts
            .entry(currency.clone())
            .or_insert_with(|| Amounts::none(currency));
        a.period = Some(a.period.unwrap_or(0).saturating_add(b.spent));
    }
    Totals {
        id: agent.id.clone(),
        user: Some(agent.user.clone()),
        status: Some(wire_name(&agent.status)),
        amounts: amounts.into_values().collect(),
        denials,
        pending,
        overdue,
    }
}

/// Each user's totals: the sum of their agents'.
fn user_totals(agents: &[Agent], by_agent: &[Totals]) -> Vec<Totals> {
    let mut users: BTreeMap<&str, Totals> = BTreeMap::new();
    for (agent, t) in agents.iter().zip(by_agent) {
        let u = users.entry(agent.user.as_str()).or_insert_with(|| Totals {
            id: agent.user.clone(),
            user: None,
            status: None,
            amounts: Vec::new(),
            denials: BTreeMap::new(),
            pending: 0,
            overdue: 0,
        });
        for a in &t.amounts {
            match u.amounts.iter_mut().find(|x| x.currency == a.currency) {
                Some(x) => {
                    x.today = x.today.saturating_add(a.today);
                    x.lifetime = x.lifetime.saturating_add(a.lifetime);
                    x.held = x.held.saturating_add(a.held);
                    x.period = match (x.period, a.period) {
                        (None, None) => None,
                        (p, q) => Some(p.unwrap_or(0).saturating_add(q.unwrap_or(0))),
                    };
                }
                None => u.amounts.push(a.clone()),
            }
        }
        for (reason, n) in &t.denials {
            *u.denials.entry(reason.clone()).or_default() += n;
        }
        u.pending += t.pending;
        u.overdue += t.overdue;
    }
    let mut out: Vec<Totals> = users.into_values().collect();
    for u in &mut out {
        u.amounts.sort_by(|a, b| a.currency.cmp(&b.currency));
    }
    out
}
