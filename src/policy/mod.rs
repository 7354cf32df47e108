//! The payment decision: does a voucher chain, as spent so far, allow this payment now?
//!
//! [`decide`] is a pure function of the verified chain (root first), what has been spent against
//! each voucher, the request and the clock. It never does I/O, so the same inputs always give the
//! same answer, and the ledger calls it inside the transaction that records the result. Checks run
//! in a fixed order and the first failure is the answer, so a request that breaks two limits
//! always gets the same reason. Every constraint of every voucher in the chain is enforced at
//! every level; the level only decides whether a human must confirm (L2) or no payment may be
//! signed at all (L0, L1). A constraint this build does not understand denies.
//!
//! The only way to obtain an [`Allowed`] is a `decide` that found nothing wrong; code that signs
//! a payment authorization takes one, so skipping the policy does not compile.

use crate::mandate::Frequency;
use crate::voucher::VoucherClaims;
use crate::voucher::constraint::{AutonomyLevel, Constraint, Currency};
/// The chain's autonomy level: the lowest any voucher names (the format's rule, in `ari_core`).
pub use crate::voucher::level;
use ari_core::condition;
use serde_json::{Map, Value};

/// The payment an agent asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRequest {
    /// Minor units; never zero.
    pub amount: u64,
    /// ISO 4217 code.
    pub currency: Currency,
    /// Who is paid.
    pub payee: String,
    /// What kind of purchase, if the merchant says.
    pub category: Option<String>,
    /// Digest of the merchant's checkout.
    pub transaction_id: String,
}

/// What has happened to one voucher so far, read inside the deciding transaction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Revoked by an operator (or its issuer).
    pub revoked: bool,
    /// Minor units spent through it, its delegations' spending included.
    pub spent: u64,
    /// Minor units carved out for delegations and not yet spent by them.
    pub reserved: u64,
    /// Payments authorized through it, its delegations' included.
    pub payments: u64,
    /// An authorization made through it is past its report deadline without a report.
    pub overdue: bool,
    /// For a voucher with a periodic recurrence ([`period`]): minor units spent through it in
    /// the current period (failed and refunded payments not counted).
    pub period_spent: u64,
    /// For such a voucher: payments made through it in the current period (failed ones not
    /// counted).
    pub period_payments: u64,
}

/// The frequency of a voucher's periodic recurrence, if it has one (not `ON_DEMAND`): its
/// budget and payment count are then per period.
pub fn period(v: &VoucherClaims) -> Option<Frequency> {
    v.constraints.iter().find_map(|c| match c {
        Constraint::AgentRecurrence { frequency, .. } if *frequency != Frequency::OnDemand => {
            Some(*frequency)
        }
        _ => None,
    })
}

/// Where each voucher's current period started at `now`, for those with one ([`period`]).
pub fn period_starts(chain: &[VoucherClaims], now: i64) -> Vec<Option<i64>> {
    chain
        .iter()
        .map(|v| period(v).and_then(|f| crate::mandate::period_start(now, f)))
        .collect()
}

/// Why a payment is refused. The wire names ([`Reason::name`]) are stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// The agent is frozen.
    AgentFrozen,
    /// A voucher in the chain is revoked.
    VoucherRevoked,
    /// A voucher in the chain is not valid yet.
    VoucherNotYetValid,
    /// A voucher in the chain has expired.
    VoucherExpired,
    /// A voucher carries a constraint this build does not know.
    UnknownConstraint,
    /// The autonomy level forbids signing payments (L0, L1, or no level at all).
    LevelForbidsPayment,
    /// A past authorization was not reported in time.
    ReportOverdue,
    /// The payment's currency is not the voucher's.
    CurrencyMismatch,
    /// The amount is outside the allowed range.
    AmountOutOfRange,
    /// The payee is not on the list.
    PayeeNotAllowed,
    /// The category is not on the list (or the payment names none).
    CategoryNotAllowed,
    /// Outside the voucher's execution dates.
    OutsideExecutionDate,
    /// A condition expression does not hold or cannot be decided.
    ConditionFailed,
    /// The voucher's payment count is used up.
    PaymentsExhausted,
    /// The amount does not fit in what is left of the budget.
    BudgetExhausted,
    /// This checkout was already authorized (or is pending) on this voucher.
    DuplicateTransaction,
    /// An operator rejected the pending payment.
    RejectedByOperator,
}

impl Reason {
    /// Every reason, in table order.
    pub const ALL: &'static [Reason] = &[
        Self::AgentFrozen,
        Self::VoucherRevoked,
        Self::VoucherNotYetValid,
        Self::VoucherExpired,
        Self::UnknownConstraint,
        Self::LevelForbidsPayment,
        Self::ReportOverdue,
        Self::CurrencyMismatch,
        Self::AmountOutOfRange,
        Self::PayeeNotAllowed,
        Self::CategoryNotAllowed,
        Self::OutsideExecutionDate,
        Self::ConditionFailed,
        Self::PaymentsExhausted,
        Self::BudgetExhausted,
        Self::DuplicateTransaction,
        Self::RejectedByOperator,
    ];

    /// The stable wire name.
    pub fn name(self) -> &'static str {
        match self {
            Self::AgentFrozen => "agent_frozen",
            Self::VoucherRevoked => "voucher_revoked",
            Self::VoucherNotYetValid => "voucher_not_yet_valid",
            Self::VoucherExpired => "voucher_expired",
            Self::UnknownConstraint => "unknown_constraint",
            Self::LevelForbidsPayment => "level_forbids_payment",
            Self::ReportOverdue => "report_overdue",
            Self::CurrencyMismatch => "currency_mismatch",
            Self::AmountOutOfRange => "amount_out_of_range",
            Self::PayeeNotAllowed => "payee_not_allowed",
            Self::CategoryNotAllowed => "category_not_allowed",
            Self::OutsideExecutionDate => "outside_execution_date",
            Self::ConditionFailed => "condition_failed",
            Self::PaymentsExhausted => "payments_exhausted",
            Self::BudgetExhausted => "budget_exhausted",
            Self::DuplicateTransaction => "duplicate_transaction",
            Self::RejectedByOperator => "rejected_by_operator",
        }
    }

    /// The reason with this wire name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|r| r.name() == name)
    }
}

/// A refusal: the stable reason and a sentence for humans.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct Denial {
    /// The stable reason.
    pub reason: Reason,
    /// What exactly failed.
    pub detail: String,
}

fn deny(reason: Reason, detail: impl Into<String>) -> Denial {
    Denial {
        reason,
        detail: detail.into(),
    }
}

/// Proof that [`decide`] allowed a payment. Only this module can make one, and it is neither
/// `Clone` nor `Copy`: the ledger's debit consumes it, so one decision debits once.
#[derive(Debug, PartialEq, Eq)]
pub struct Allowed(());

/// What happens to an allowed payment.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Sign it now (L3 to L5).
    Authorize(Allowed),
    /// Hold the funds and wait for a human (L2).
    AwaitConfirmation(Allowed),
}

impl Verdict {
    /// The proof, whichever the path.
    pub fn allowed(self) -> Allowed {
        match self {
            Self::Authorize(a) | Self::AwaitConfirmation(a) => a,
        }
    }
}

/// The state around a decision that is not the voucher's.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// Decision time, Unix seconds (the daemon's clock; no skew allowance).
    pub now: i64,
    /// Whether the agent is frozen.
    pub frozen: bool,
    /// The request's facts, for conditions.
    pub facts: &'a Map<String, Value>,
}

/// The budget of a voucher, if it has one.
pub fn budget(v: &VoucherClaims) -> Option<(&Currency, u64)> {
    v.constraints.iter().find_map(|c| match c {
        Constraint::Budget { currency, max } => Some((currency, *max)),
        _ => None,
    })
}

/// How long after authorization a payment must be reported, if the chain asks (the shortest).
pub fn report_within(chain: &[VoucherClaims]) -> Option<u64> {
    chain
        .iter()
        .flat_map(|v| &v.constraints)
        .filter_map(|c| match c {
            Constraint::ReportWithin { seconds } => Some(*seconds),
            _ => None,
        })
        .min()
}

/// Whether the chain still stands at `now`: the agent not frozen, no voucher revoked, every
/// voucher inside its validity window. Checked first by [`decide`], and again when a held (L2)
/// payment is confirmed.
pub fn standing(
    chain: &[VoucherClaims],
    usage: &[Usage],
    now: i64,
    frozen: bool,
) -> Result<(), Denial> {
    if frozen {
        return Err(deny(Reason::AgentFrozen, "the agent is frozen"));
    }
    if let Some((v, _)) = chain.iter().zip(usage).find(|(_, u)| u.revoked) {
        return Err(deny(
            Reason::VoucherRevoked,
            format!("voucher {} is revoked", v.jti),
        ));
    }
    if let Some(v) = chain.iter().find(|v| now < v.nbf) {
        return Err(deny(
            Reason::VoucherNotYetValid,
            format!("voucher {} is valid from {}", v.jti, v.nbf),
        ));
    }
    if let Some(v) = chain.iter().find(|v| now >= v.exp) {
        return Err(deny(
            Reason::VoucherExpired,
            format!("voucher {} expired at {}", v.jti, v.exp),
        ));
    }
    Ok(())
}

/// Decides a payment. `chain` is root first and already verified; `usage` is parallel to it.
pub fn decide(
    chain: &[VoucherClaims],
    usage: &[Usage],
    req: &PaymentRequest,
    ctx: &Context<'_>,
) -> Result<Verdict, Denial> {
    if chain.is_empty() || chain.len() != usage.len() {
        return Err(deny(
            Reason::UnknownConstraint,
            "the voucher chain could not be read",
        ));
    }
    standing(chain, usage, ctx.now, ctx.frozen)?;
    let pairs = || chain.iter().zip(usage);
    let all = || chain.iter().flat_map(|v| v.constraints.iter());
    if let Some(c) = all().find(|c| matches!(c, Constraint::Unknown { .. })) {
        return Err(deny(
            Reason::UnknownConstraint,
            format!("constraint {:?} is not understood", c.kind()),
        ));
    }
    let level = match level(chain) {
        Some(l) if l >= AutonomyLevel::L2 => l,
        Some(l) => {
            return Err(deny(
                Reason::LevelForbidsPayment,
                format!("autonomy level {l:?} never signs a payment"),
            ));
        }
        None => {
            return Err(deny(
                Reason::LevelForbidsPayment,
                "a voucher in the chain names no autonomy level",
            ));
        }
    };
    if let Some((v, _)) = pairs().find(|(_, u)| u.overdue) {
        return Err(deny(
            Reason::ReportOverdue,
            format!(
                "an authorization on voucher {} was not reported in time",
                v.jti
            ),
        ));
    }
    for c in all() {
        if let Constraint::AmountRange { currency, .. } | Constraint::Budget { currency, .. } = c
            && *currency != req.currency
        {
            return Err(deny(
                Reason::CurrencyMismatch,
                format!(
                    "the voucher is in {}, the payment in {}",
                    currency.as_str(),
                    req.currency.as_str()
                ),
            ));
        }
    }
    for c in all() {
        if let Constraint::AmountRange { min, max, .. } = c
            && (min.is_some_and(|m| req.amount < m) || max.is_some_and(|m| req.amount > m))
        {
            return Err(deny(
                Reason::AmountOutOfRange,
                format!(
                    "{} is outside [{}, {}]",
                    req.amount,
                    min.map_or("-".into(), |m| m.to_string()),
                    max.map_or("-".into(), |m| m.to_string())
                ),
            ));
        }
    }
    for c in all() {
        if let Constraint::AllowedPayees { payees } = c
            && !payees.contains(&req.payee)
        {
            return Err(deny(
                Reason::PayeeNotAllowed,
                format!("payee {:?} is not allowed", req.payee),
            ));
        }
    }
    for c in all() {
        if let Constraint::Categories { categories } = c
            && !req
                .category
                .as_ref()
                .is_some_and(|k| categories.contains(k))
        {
            return Err(deny(
                Reason::CategoryNotAllowed,
                match &req.category {
                    Some(k) => format!("category {k:?} is not allowed"),
                    None => "the voucher limits categories and the payment names none".into(),
                },
            ));
        }
    }
    for c in all() {
        if let Constraint::ExecutionDate {
            not_before,
            not_after,
        } = c
            && (not_before.is_some_and(|t| ctx.now < t) || not_after.is_some_and(|t| ctx.now > t))
        {
            return Err(deny(
                Reason::OutsideExecutionDate,
                "the payment falls outside the voucher's execution dates",
            ));
        }
    }
    let scope = condition::Scope {
        amount: req.amount,
        currency: req.currency.as_str(),
        payee: &req.payee,
        category: req.category.as_deref(),
        now: ctx.now,
        facts: ctx.facts,
    };
    for c in all() {
        if let Constraint::Conditions { all } = c {
            for src in all {
                let holds = condition::Expr::holds(src, &scope);
                match holds {
                    Ok(true) => {}
                    Ok(false) => {
                        return Err(deny(
                            Reason::ConditionFailed,
                            format!("condition {src:?} does not hold"),
                        ));
                    }
                    Err(why) => {
                        return Err(deny(
                            Reason::ConditionFailed,
                            format!("condition {src:?} cannot be decided: {why}"),
                        ));
                    }
                }
            }
        }
    }
    for (v, u) in pairs() {
        for c in &v.constraints {
            let Constraint::AgentRecurrence {
                max_occurrences,
                frequency,
            } = c
            else {
                continue;
            };
            let (used, per) = if *frequency == Frequency::OnDemand {
                (u.payments, String::new())
            } else {
                (
                    u.period_payments,
                    format!(" per {frequency:?} period").to_lowercase(),
                )
            };
            if used >= u64::from(*max_occurrences) {
                return Err(deny(
                    Reason::PaymentsExhausted,
                    format!(
                        "voucher {} allows {max_occurrences} payments{per}, all used",
                        v.jti
                    ),
                ));
            }
        }
    }
    // Delegations' budgets are reserved in their parents when made, so the leaf's own budget is
    // the binding one; every budgeted voucher is still checked, so a chain whose reservations were
    // somehow lost still cannot overspend a parent's own remainder.
    for (i, (v, u)) in pairs().enumerate() {
        // A periodic voucher is never delegated: its budget is spent by its own payments, in
        // the period.
        if let (Some((_, max)), Some(_)) = (budget(v), period(v)) {
            if u.period_spent.saturating_add(req.amount) > max {
                return Err(deny(
                    Reason::BudgetExhausted,
                    format!(
                        "voucher {} has {} of {max} left this period; {} asked",
                        v.jti,
                        max.saturating_sub(u.period_spent),
                        req.amount
                    ),
                ));
            }
            continue;
        }
        if let Some((_, max)) = budget(v) {
            let carved_for_this_chain = if i + 1 < chain.len() {
                chain
                    .get(i + 1)
                    .and_then(budget)
                    .map_or(0, |(_, child_max)| {
                        child_max.saturating_sub(usage.get(i + 1).map_or(0, |c| c.spent))
                    })
            } else {
                0
            };
            let committed = u
                .spent
                .saturating_add(u.reserved.saturating_sub(carved_for_this_chain));
            if committed.saturating_add(req.amount) > max {
                return Err(deny(
                    Reason::BudgetExhausted,
                    format!(
                        "voucher {} has {} of {max} left; {} asked",
                        v.jti,
                        max.saturating_sub(committed),
                        req.amount
                    ),
                ));
            }
        }
    }
    let allowed = Allowed(());
    Ok(if level == AutonomyLevel::L2 {
        Verdict::AwaitConfirmation(allowed)
    } else {
        Verdict::Authorize(allowed)
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::jose::PublicKey;
    use crate::mandate::OPEN_VCT as VOUCHER_VCT;
    use crate::voucher::Confirmation;
    use serde_json::json;

    fn cny() -> Currency {
        Currency::try_from("CNY".to_string()).unwrap()
    }

    fn voucher(constraints: Vec<Constraint>) -> VoucherClaims {
        let sk = p256::ecdsa::SigningKey::from_slice(&[7; 32]).unwrap();
        let pk = PublicKey::from_sec1(sk.verifying_key().to_sec1_point(false).as_bytes()).unwrap();
        VoucherClaims {
            iss: "issuer".into(),
            sub: "alice".into(),
            iat: 1000,
            nbf: 1000,
            exp: 2000,
            jti: "v1".into(),
            vct: VOUCHER_VCT.into(),
            agent: "bot".into(),
            cnf: Confirmation { jwk: pk.to_jwk() },
            parent: None,
            constraints,
            status: None,
        }
    }

    fn level(l: AutonomyLevel) -> Constraint {
        Constraint::AutonomyLevel { level: l }
    }

    fn request(amount: u64) -> PaymentRequest {
        PaymentRequest {
            amount,
            currency: cny(),
            payee: "shop-a".into(),
            category: Some("groceries".into()),
            transaction_id: "tx".into(),
        }
    }

    /// Decides `req` against one voucher holding L3 plus `extra`, at time 1500.
    fn check(extra: Constraint, req: &PaymentRequest, usage: Usage) -> Result<Verdict, Denial> {
        check_facts(extra, req, usage, json!({}))
    }

    fn check_facts(
        extra: Constraint,
        req: &PaymentRequest,
        usage: Usage,
        facts: Value,
    ) -> Result<Verdict, Denial> {
        let facts = facts.as_object().cloned().unwrap_or_default();
        let chain = [voucher(vec![level(AutonomyLevel::L3), extra])];
        decide(
            &chain,
            &[usage],
            req,
            &Context {
                now: 1500,
                frozen: false,
                facts: &facts,
            },
        )
    }

    fn reason(r: Result<Verdict, Denial>) -> Option<&'static str> {
        r.err().map(|d| d.reason.name())
    }

    /// For every payment the daemon refuses on a limit AP2 has a constraint for, AP2's reading
    /// of the same voucher (its open mandate as the daemon writes it) and the same closed
    /// mandate must report a violation too: amounts and budgets in currencies of every exponent,
    /// counts, payees, dates. Each case is printed as an `ap2-case:` line for AP2's own checker
    /// (tests/by-hand/ap2_constraints.py).
    #[test]
    fn every_ap2_limit_the_daemon_enforces_ap2s_reading_enforces_too() {
        use crate::mandate::{self, ClosedPaymentMandate, Merchant, OpenPaymentMandate};
        let ap2_reasons = [
            "amount_out_of_range",
            "budget_exhausted",
            "payments_exhausted",
            "payee_not_allowed",
            "outside_execution_date",
            "currency_mismatch",
        ];
        let now = 1500;
        let mut checked = 0;
        for (code, max, budget) in [
            ("CNY", 5_000, 7_500),
            ("USD", 1_999, 1_999),
            ("JPY", 5_000, 7_500),
            ("KWD", 1_234, 5_001),
        ] {
            let currency = Currency::try_from(code.to_string()).unwrap();
            let mut v = voucher(vec![
                level(AutonomyLevel::L3),
                Constraint::AmountRange {
                    currency: currency.clone(),
                    min: Some(100),
                    max: Some(max),
                },
                Constraint::Budget {
                    currency: currency.clone(),
                    max: budget,
                },
                Constraint::AgentRecurrence {
                    max_occurrences: 3,
                    frequency: Frequency::OnDemand,
                },
                Constraint::AllowedPayees {
                    payees: vec!["shop-a".into()],
                },
                Constraint::FundsCarrier { id: "pi-1".into() },
                Constraint::ExecutionDate {
                    not_before: Some(1_200),
                    not_after: Some(1_800),
                },
            ]);
            v.iat = 1000;
            let mut n = 0;
            let (open, disclosures) = crate::voucher::ap2::to_mandate(&v, &mut || {
                n += 1;
                format!("salt-{n}")
            })
            .unwrap();
            let disclosures: Vec<_> = disclosures
                .iter()
                .map(|d| crate::sdjwt::Disclosure::parse(&d.encoded).unwrap())
                .collect();
            let open = crate::sdjwt::resolve(&open, &disclosures).unwrap();
            let ap2: OpenPaymentMandate = serde_json::from_value(open.clone()).unwrap();
            for amount in [99, 100, max, max + 1] {
                for spent in [
                    0,
                    budget.saturating_sub(amount),
                    budget + 1 - amount.min(budget),
                ] {
                    for (uses, payee, at, cur) in [
                        (0, "shop-a", now, code),
                        (3, "shop-a", now, code),
                        (0, "shop-b", now, code),
                        (0, "shop-a", 1_900, code),
                        (0, "shop-a", now, "EUR"),
                    ] {
                        let req = PaymentRequest {
                            amount,
                            currency: Currency::try_from(cur.to_string()).unwrap(),
                            payee: payee.into(),
                            category: None,
                            transaction_id: "tx".into(),
                        };
                        let usage = Usage {
                            spent,
                            payments: uses,
                            ..Usage::default()
                        };
                        let facts = Map::new();
                        let ctx = Context {
                            now: at,
                            frozen: false,
                            facts: &facts,
                        };
                        let ari = reason(decide(std::slice::from_ref(&v), &[usage], &req, &ctx));
                        let closed = ClosedPaymentMandate {
                            vct: mandate::CLOSED_VCT.into(),
                            transaction_id: "tx".into(),
                            payee: Merchant {
                                id: payee.into(),
                                name: payee.into(),
                                website: None,
                            },
                            payment_amount: mandate::Amount {
                                amount,
                                currency: cur.into(),
                            },
                            payment_instrument: crate::payment::instrument(Some("pi-1"), "alice"),
                            execution_date: Some(mandate::utc(at)),
                            risk_data: None,
                        };
                        let usage = mandate::Usage { spent, uses };
                        let violations =
                            mandate::check(&ap2, &closed, usage, &mandate::utc(at), None);
                        if let Some(r) = ari.filter(|r| ap2_reasons.contains(r)) {
                            assert!(
                                !violations.is_empty(),
                                "{code}: the daemon refuses ({r}) {amount} after {spent}, {uses} \
                                 uses, to {payee} at {at}; AP2's reading allows it"
                            );
                        }
                        checked += 1;
                        println!(
                            "ap2-case: {}",
                            json!({
                                "open": open, "closed": closed,
                                "usage": {"spent": spent, "uses": uses},
                                "ari": ari.into_iter().collect::<Vec<_>>(),
                            })
                        );
                    }
                }
            }
        }
        assert_eq!(checked, 4 * 4 * 3 * 5);
    }

    #[test]
    fn a_periodic_voucher_counts_its_budget_and_payments_per_period() {
        let daily = |max_occurrences| Constraint::AgentRecurrence {
            max_occurrences,
            frequency: Frequency::Daily,
        };
        let budget = Constraint::Budget {
            currency: Currency::try_from("CNY".to_string()).unwrap(),
            max: 1000,
        };
        let chain = |extra: Vec<Constraint>| {
            let mut c = vec![level(AutonomyLevel::L3)];
            c.extend(extra);
            [voucher(c)]
        };
        let decide_with = |extra: Vec<Constraint>, usage: Usage, amount| {
            let facts = Map::new();
            let mut req = request(1);
            req.amount = amount;
            decide(
                &chain(extra),
                &[usage],
                &req,
                &Context {
                    now: 1500,
                    frozen: false,
                    facts: &facts,
                },
            )
        };
        // Lifetime figures do not count for a periodic voucher: this period's do.
        let spent_before = Usage {
            spent: 5000,
            payments: 50,
            period_spent: 600,
            period_payments: 1,
            ..Usage::default()
        };
        assert_eq!(
            reason(decide_with(
                vec![daily(2), budget.clone()],
                spent_before,
                400
            )),
            None
        );
        assert_eq!(
            reason(decide_with(
                vec![daily(2), budget.clone()],
                spent_before,
                401
            )),
            Some("budget_exhausted")
        );
        let two_today = Usage {
            period_payments: 2,
            ..spent_before
        };
        assert_eq!(
            reason(decide_with(vec![daily(2), budget], two_today, 1)),
            Some("payments_exhausted")
        );
        assert_eq!(period(&chain(vec![daily(2)])[0]), Some(Frequency::Daily));
        assert_eq!(
            period_starts(&chain(vec![daily(u32::MAX)]), 86_400 * 3 + 5),
            vec![Some(86_400 * 3)]
        );
    }

    #[test]
    fn each_constraint_allows_inside_and_denies_outside() {
        let none = Usage::default();
        let range = Constraint::AmountRange {
            currency: cny(),
            min: Some(100),
            max: Some(500),
        };
        assert_eq!(reason(check(range.clone(), &request(100), none)), None);
        assert_eq!(reason(check(range.clone(), &request(500), none)), None);
        assert_eq!(
            reason(check(range.clone(), &request(99), none)),
            Some("amount_out_of_range")
        );
        assert_eq!(
            reason(check(range.clone(), &request(501), none)),
            Some("amount_out_of_range")
        );
        let mut usd = request(200);
        usd.currency = Currency::try_from("USD".to_string()).unwrap();
        assert_eq!(reason(check(range, &usd, none)), Some("currency_mismatch"));

        let budget = Constraint::Budget {
            currency: cny(),
            max: 1000,
        };
        let used = |spent, reserved| Usage {
            spent,
            reserved,
            ..Usage::default()
        };
        assert_eq!(
            reason(check(budget.clone(), &request(400), used(600, 0))),
            None
        );
        assert_eq!(
            reason(check(budget.clone(), &request(401), used(600, 0))),
            Some("budget_exhausted")
        );
        assert_eq!(
            reason(check(budget.clone(), &request(1), used(600, 400))),
            Some("budget_exhausted"),
            "reserved for delegations counts"
        );
        assert_eq!(reason(check(budget, &usd, none)), Some("currency_mismatch"));

        let payees = Constraint::AllowedPayees {
            payees: vec!["shop-a".into(), "shop-b".into()],
        };
        assert_eq!(reason(check(payees.clone(), &request(1), none)), None);
        let mut other = request(1);
        other.payee = "shop-z".into();
        assert_eq!(
            reason(check(payees, &other, none)),
            Some("payee_not_allowed")
        );

        let cats = Constraint::Categories {
            categories: vec!["groceries".into()],
        };
        assert_eq!(reason(check(cats.clone(), &request(1), none)), None);
        let mut fuel = request(1);
        fuel.category = Some("fuel".into());
        assert_eq!(
            reason(check(cats.clone(), &fuel, none)),
            Some("category_not_allowed")
        );
        fuel.category = None;
        assert_eq!(
            reason(check(cats, &fuel, none)),
            Some("category_not_allowed")
        );

        let window = |a, b| Constraint::ExecutionDate {
            not_before: a,
            not_after: b,
        };
        assert_eq!(
            reason(check(window(Some(1400), Some(1600)), &request(1), none)),
            None
        );
        assert_eq!(
            reason(check(window(Some(1501), None), &request(1), none)),
            Some("outside_execution_date")
        );
        assert_eq!(
            reason(check(window(None, Some(1499)), &request(1), none)),
            Some("outside_execution_date")
        );

        let count = Constraint::AgentRecurrence {
            max_occurrences: 3,
            frequency: Frequency::OnDemand,
        };
        let paid = |n| Usage {
            payments: n,
            ..Usage::default()
        };
        assert_eq!(reason(check(count.clone(), &request(1), paid(2))), None);
        assert_eq!(
            reason(check(count, &request(1), paid(3))),
            Some("payments_exhausted")
        );

        let report = Constraint::ReportWithin { seconds: 60 };
        assert_eq!(reason(check(report.clone(), &request(1), none)), None);
        let overdue = Usage {
            overdue: true,
            ..Usage::default()
        };
        assert_eq!(
            reason(check(report, &request(1), overdue)),
            Some("report_overdue")
        );

        let carrier = Constraint::FundsCarrier {
            id: "card-1".into(),
        };
        assert_eq!(reason(check(carrier, &request(1), none)), None);

        let cond = Constraint::Conditions {
            all: vec![
                "facts.unit_price >= 400".into(),
                "facts.quantity <= 2".into(),
            ],
        };
        assert_eq!(
            reason(check_facts(
                cond.clone(),
                &request(1),
                none,
                json!({"unit_price": 450, "quantity": 2})
            )),
            None
        );
        assert_eq!(
            reason(check_facts(
                cond.clone(),
                &request(1),
                none,
                json!({"unit_price": 399, "quantity": 2})
            )),
            Some("condition_failed")
        );
        assert_eq!(
            reason(check_facts(cond, &request(1), none, json!({}))),
            Some("condition_failed"),
            "a missing fact fails"
        );

        let unknown: Constraint =
            serde_json::from_value(json!({"type": "com.example.moon", "phase": "full"})).unwrap();
        assert_eq!(
            reason(check(unknown, &request(1), none)),
            Some("unknown_constraint")
        );
    }

    #[test]
    fn levels_time_revocation_and_freeze() {
        let facts = Map::new();
        let ctx = |now, frozen| Context {
            now,
            frozen,
            facts: &facts,
        };
        let at = |l: Option<AutonomyLevel>, c: &Context<'_>| {
            let v = voucher(l.map(level).into_iter().collect());
            decide(&[v], &[Usage::default()], &request(1), c)
        };
        for l in [AutonomyLevel::L0, AutonomyLevel::L1] {
            assert_eq!(
                reason(at(Some(l), &ctx(1500, false))),
                Some("level_forbids_payment")
            );
        }
        assert_eq!(
            reason(at(None, &ctx(1500, false))),
            Some("level_forbids_payment")
        );
        assert!(matches!(
            at(Some(AutonomyLevel::L2), &ctx(1500, false)),
            Ok(Verdict::AwaitConfirmation(_))
        ));
        for l in [AutonomyLevel::L3, AutonomyLevel::L4, AutonomyLevel::L5] {
            assert!(matches!(
                at(Some(l), &ctx(1500, false)),
                Ok(Verdict::Authorize(_))
            ));
        }
        let l3 = Some(AutonomyLevel::L3);
        assert_eq!(
            reason(at(l3, &ctx(999, false))),
            Some("voucher_not_yet_valid")
        );
        assert_eq!(reason(at(l3, &ctx(2000, false))), Some("voucher_expired"));
        assert_eq!(reason(at(l3, &ctx(1500, true))), Some("agent_frozen"));
        let revoked = Usage {
            revoked: true,
            ..Usage::default()
        };
        let v = voucher(vec![level(AutonomyLevel::L3)]);
        assert_eq!(
            reason(decide(&[v], &[revoked], &request(1), &ctx(1500, false))),
            Some("voucher_revoked")
        );
    }

    #[test]
    fn a_chain_takes_the_lowest_level_and_every_link_limits() {
        let facts = Map::new();
        let c = Context {
            now: 1500,
            frozen: false,
            facts: &facts,
        };
        let root = voucher(vec![
            level(AutonomyLevel::L5),
            Constraint::Budget {
                currency: cny(),
                max: 1000,
            },
        ]);
        let child = voucher(vec![
            level(AutonomyLevel::L2),
            Constraint::Budget {
                currency: cny(),
                max: 300,
            },
        ]);
        let chain = [root, child];
        // The root reserved 300 for the child, which has spent 100 of it.
        let usage = [
            Usage {
                spent: 100,
                reserved: 200,
                ..Usage::default()
            },
            Usage {
                spent: 100,
                ..Usage::default()
            },
        ];
        assert!(matches!(
            decide(&chain, &usage, &request(200), &c),
            Ok(Verdict::AwaitConfirmation(_))
        ));
        assert_eq!(
            reason(decide(&chain, &usage, &request(201), &c)),
            Some("budget_exhausted")
        );
        let revoked_root = [
            Usage {
                revoked: true,
                ..usage[0]
            },
            usage[1],
        ];
        assert_eq!(
            reason(decide(&chain, &revoked_root, &request(1), &c)),
            Some("voucher_revoked")
        );
        assert!(
            Reason::ALL
                .iter()
                .all(|r| Reason::from_name(r.name()) == Some(*r))
        );
    }
}
