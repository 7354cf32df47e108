//! How `arictl` shows money, time and state to a person: amounts in the currency's major unit
//! with its code (ISO 4217 exponents: `JPY` has no minor unit, `KWD` three), times in the local
//! time zone with how far they are from now, states in words, and tables whose columns fit
//! their contents. Every view here is a pure function of the daemon's answer, the time and the
//! time zone, so the tests render fixed answers to fixed text. `--json` bypasses all of it.

use ari::protocol::spending::{Amounts, Spending, Totals, VoucherBalance, VoucherState};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use std::fmt::Write as _;

/// `minor` units of `currency` as the major unit with its code: `1,234.50 CNY`, `5,000 JPY`.
pub(crate) fn money(minor: u64, currency: &str) -> String {
    let exp = ari::mandate::minor_exponent(currency);
    let scale = 10u64.pow(exp);
    let (whole, frac) = (minor / scale, minor % scale);
    let digits = whole.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    match exp {
        0 => format!("{grouped} {currency}"),
        _ => format!("{grouped}.{frac:0width$} {currency}", width = exp as usize),
    }
}

/// An amount that may be in no currency (a voucher that limits none): the bare number then.
fn money_in(minor: u64, currency: Option<&str>) -> String {
    currency.map_or_else(|| minor.to_string(), |c| money(minor, c))
}

/// How far `t` is from `now`, as a person says it: `in 23 h`, `5 min ago`, `now`.
pub(crate) fn relative(t: i64, now: i64) -> String {
    let d = t.saturating_sub(now);
    let a = d.unsigned_abs();
    let amount = match a {
        0..=4 => return "now".into(),
        5..=59 => format!("{a} s"),
        60..=3_599 => format!("{} min", a / 60),
        3_600..=172_799 => format!("{} h", a / 3_600),
        _ => format!("{} d", a / 86_400),
    };
    if d > 0 {
        format!("in {amount}")
    } else {
        format!("{amount} ago")
    }
}

/// `t` in the local time zone, to the minute, with its zone's abbreviation.
pub(crate) fn local(t: i64, tz: &TimeZone) -> String {
    Timestamp::from_second(t).map_or_else(
        |_| t.to_string(),
        |ts| {
            ts.to_zoned(tz.clone())
                .strftime("%Y-%m-%d %H:%M %Z")
                .to_string()
        },
    )
}

/// `t` locally and relative to `now`: `2026-12-08 01:15 CET (in 23 h)`.
pub(crate) fn when(t: i64, now: i64, tz: &TimeZone) -> String {
    format!("{} ({})", local(t, tz), relative(t, now))
}

/// `t` as a local clock time, to the second, for a live feed.
pub(crate) fn clock(t: i64, tz: &TimeZone) -> String {
    Timestamp::from_second(t).map_or_else(
        |_| t.to_string(),
        |ts| ts.to_zoned(tz.clone()).strftime("%H:%M:%S").to_string(),
    )
}

/// The start of the local day that contains `now`.
pub(crate) fn day_start(now: i64, tz: &TimeZone) -> i64 {
    Timestamp::from_second(now)
        .ok()
        .and_then(|ts| ts.to_zoned(tz.clone()).start_of_day().ok())
        .map_or(now - now.rem_euclid(86_400), |z| z.timestamp().as_second())
}

/// A voucher's state in words.
pub(crate) fn state(s: VoucherState) -> &'static str {
    match s {
        VoucherState::Active => "active",
        VoucherState::NotYetValid => "not yet valid",
        VoucherState::Expired => "expired",
        VoucherState::Revoked => "revoked",
        VoucherState::Suspended => "suspended (agent frozen)",
        VoucherState::Retired => "retired",
    }
}

/// A period's name as an adverb: `DAILY` reads `daily`.
fn per(period: &str) -> String {
    period.to_lowercase()
}

/// A table: a header and rows of cells, columns as wide as their widest cell; numeric columns
/// (named in `right`) are aligned right.
pub(crate) struct Table {
    header: Vec<&'static str>,
    right: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these columns; a name starting with `>` is aligned right (the `>` is not
    /// shown).
    pub(crate) fn new(columns: &[&'static str]) -> Self {
        Self {
            header: columns.iter().map(|c| c.trim_start_matches('>')).collect(),
            right: columns.iter().map(|c| c.starts_with('>')).collect(),
            rows: Vec::new(),
        }
    }

    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as text, one line per row, no trailing spaces.
    pub(crate) fn render(&self) -> String {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let header: Vec<String> = self.header.iter().map(|h| (*h).to_string()).collect();
        for row in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (i, ((cell, w), right)) in row.iter().zip(&widths).zip(&self.right).enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                let pad = w.saturating_sub(cell.chars().count());
                if *right {
                    line.push_str(&" ".repeat(pad));
                    line.push_str(cell);
                } else {
                    line.push_str(cell);
                    line.push_str(&" ".repeat(pad));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `arictl voucher list`: each voucher's limits and what is left of them.
pub(crate) fn vouchers(s: &Spending, tz: &TimeZone) -> String {
    let mut t = Table::new(&[
        "VOUCHER",
        "AGENT",
        "LEVEL",
        "STATE",
        ">BUDGET",
        ">SPENT",
        ">HELD",
        ">REMAINING",
        ">PAYMENTS",
        "EXPIRES",
    ]);
    for v in &s.vouchers {
        t.row(voucher_row(v, s.now, tz));
    }
    if s.vouchers.is_empty() {
        return "no vouchers\n".into();
    }
    t.render()
}

fn voucher_row(v: &VoucherBalance, now: i64, tz: &TimeZone) -> Vec<String> {
    let cur = v.currency.as_deref();
    let budget = match (v.budget, &v.period) {
        (Some(b), Some(p)) => format!("{} {}", money_in(b, cur), per(p)),
        (Some(b), None) => money_in(b, cur),
        (None, _) => "none".into(),
    };
    let payments = match v.max_payments {
        Some(max) => format!("{} of {max}", v.payments),
        None => v.payments.to_string(),
    };
    let id = match &v.parent {
        Some(_) => format!("└ {}", v.id),
        None => v.id.clone(),
    };
    vec![
        id,
        v.agent.clone(),
        v.level.clone().unwrap_or_else(|| "?".into()),
        state(v.state).into(),
        budget,
        money_in(v.spent, cur),
        money_in(v.held, cur),
        v.remaining
            .map_or_else(|| "no limit".into(), |r| money_in(r, cur)),
        payments,
        when(v.expires_at, now, tz),
    ]
}

/// `arictl spending`: per agent and per user, then each voucher.
pub(crate) fn spending(s: &Spending, tz: &TimeZone) -> String {
    let mut out = format!(
        "as of {}; today since {}; amounts authorized, failed and refunded payments given back\n\n",
        local(s.now, tz),
        local(s.day_start, tz)
    );
    let agents = totals_table(
        &["AGENT", "USER", "STATUS"],
        s.agents.iter().map(|a| {
            let lead = [
                a.id.clone(),
                a.user.clone().unwrap_or_default(),
                a.status.clone().unwrap_or_default(),
            ];
            (lead.to_vec(), a)
        }),
    );
    let users = totals_table(&["USER"], s.users.iter().map(|u| (vec![u.id.clone()], u)));
    let _ = write!(
        out,
        "Agents\n{}\nUsers\n{}\nVouchers\n{}",
        agents.render(),
        users.render(),
        vouchers(s, tz)
    );
    out
}

/// A table of totals, one row per currency (see [`totals_rows`]), each total led by its
/// `lead` cells under the `lead` columns, on its first row only.
fn totals_table<'a>(
    lead: &[&'static str],
    totals: impl Iterator<Item = (Vec<String>, &'a Totals)>,
) -> Table {
    let mut columns = lead.to_vec();
    columns.extend([
        ">TODAY",
        ">THIS PERIOD",
        ">LIFETIME",
        ">HELD",
        ">PENDING",
        ">OVERDUE",
        "DENIALS",
    ]);
    let mut table = Table::new(&columns);
    for (cells, t) in totals {
        for (i, row) in totals_rows(t).into_iter().enumerate() {
            let mut line = if i == 0 {
                cells.clone()
            } else {
                vec![String::new(); cells.len()]
            };
            line.extend(row);
            table.row(line);
        }
    }
    table
}

/// One line per currency of an agent's or user's totals (one line of dashes without any); the
/// counts and denials on the first.
fn totals_rows(t: &Totals) -> Vec<Vec<String>> {
    let denials = if t.denials.is_empty() {
        "none".to_string()
    } else {
        t.denials
            .iter()
            .map(|(reason, n)| format!("{reason} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let counts = [t.pending.to_string(), t.overdue.to_string(), denials];
    let amounts: Vec<Option<&Amounts>> = if t.amounts.is_empty() {
        vec![None]
    } else {
        t.amounts.iter().map(Some).collect()
    };
    amounts
        .into_iter()
        .enumerate()
        .map(|(i, a)| {
            let mut row = match a {
                Some(a) => vec![
                    money(a.today, &a.currency),
                    a.period
                        .map_or_else(|| "-".into(), |p| money(p, &a.currency)),
                    money(a.lifetime, &a.currency),
                    money(a.held, &a.currency),
                ],
                None => vec!["-".into(), "-".into(), "-".into(), "-".into()],
            };
            if i == 0 {
                row.extend(counts.iter().cloned());
            }
            row
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use ari::protocol::spending::Amounts;

    #[test]
    fn amounts_use_each_currencys_minor_unit() {
        assert_eq!(money(3_750, "CNY"), "37.50 CNY");
        assert_eq!(money(5, "EUR"), "0.05 EUR");
        assert_eq!(money(5_000, "JPY"), "5,000 JPY");
        assert_eq!(money(1_234, "KWD"), "1.234 KWD");
        assert_eq!(money(123_456_789, "USD"), "1,234,567.89 USD");
        assert_eq!(money(0, "CNY"), "0.00 CNY");
        assert_eq!(money(u64::MAX, "JPY"), "18,446,744,073,709,551,615 JPY");
    }

    #[test]
    fn times_read_relative_to_now() {
        assert_eq!(relative(1_000, 1_000), "now");
        assert_eq!(relative(1_030, 1_000), "in 30 s");
        assert_eq!(relative(1_000 + 82_800, 1_000), "in 23 h");
        assert_eq!(relative(1_000 - 300, 1_000), "5 min ago");
        assert_eq!(relative(1_000 + 3 * 86_400, 1_000), "in 3 d");
    }

    #[test]
    fn the_local_day_starts_at_local_midnight() {
        let tz = TimeZone::get("Asia/Shanghai").unwrap();
        // 2026-12-07 02:00 UTC is 10:00 in Shanghai; its day began at 16:00 UTC the day before.
        let now = 1_796_608_800;
        assert_eq!(local(now, &tz), "2026-12-07 10:00 CST");
        assert_eq!(day_start(now, &tz), now - 10 * 3_600);
        assert_eq!(day_start(now, &TimeZone::UTC), now - 2 * 3_600);
    }

    /// The views of a fixed answer: several currencies, a hold, an expired voucher, a periodic
    /// one, a delegation, an agent that spent nothing. Compared with `tests/snapshots/`.
    fn sample() -> Spending {
        let now = 1_796_608_800; // 2026-12-07 02:00 UTC
        let v = |id: &str, agent: &str, state, cur: &str, budget, spent, held| VoucherBalance {
            id: id.into(),
            agent: agent.into(),
            user: "alice@example.com".into(),
            parent: None,
            state,
            level: Some("L3".into()),
            currency: Some(cur.into()),
            budget,
            period: None,
            period_start: None,
            spent,
            held,
            reserved: 0,
            remaining: budget.map(|b: u64| b - spent - held),
            payments: 3,
            max_payments: None,
            issued_at: now - 86_400,
            not_before: now - 86_400,
            expires_at: now + 82_800,
        };
        let mut held = v(
            "v-l2-cny",
            "shopper",
            VoucherState::Active,
            "CNY",
            Some(20_000),
            3_750,
            1_200,
        );
        held.level = Some("L2".into());
        let mut expired = v(
            "v-old-eur",
            "shopper",
            VoucherState::Expired,
            "EUR",
            Some(5_000),
            4_999,
            0,
        );
        expired.expires_at = now - 7_200;
        let mut periodic = v(
            "v-jpy-daily",
            "travel",
            VoucherState::Active,
            "JPY",
            Some(30_000),
            12_000,
            0,
        );
        periodic.period = Some("DAILY".into());
        periodic.period_start = Some(now - 7_200);
        periodic.max_payments = Some(5);
        let mut child = v(
            "v-kwd-child",
            "travel-sub",
            VoucherState::Suspended,
            "KWD",
            Some(10_000),
            1_234,
            0,
        );
        child.parent = Some("v-kwd".into());
        child.level = Some("L5".into());
        let agent =
            |id: &str, status: &str, amounts: Vec<Amounts>, pending, denials: &[(&str, u64)]| {
                Totals {
                    id: id.into(),
                    user: Some("alice@example.com".into()),
                    status: Some(status.into()),
                    amounts,
                    denials: denials
                        .iter()
                        .map(|(r, n)| ((*r).to_string(), *n))
                        .collect(),
                    pending,
                    overdue: 0,
                }
            };
        let a = |cur: &str, today, period, lifetime, held| Amounts {
            currency: cur.into(),
            today,
            period,
            lifetime,
            held,
        };
        Spending {
            now,
            day_start: now - 7_200,
            vouchers: vec![held, expired, periodic, child],
            agents: vec![
                agent(
                    "shopper",
                    "active",
                    vec![
                        a("CNY", 1_250, None, 3_750, 1_200),
                        a("EUR", 0, None, 4_999, 0),
                    ],
                    1,
                    &[("budget_exhausted", 2), ("voucher_expired", 1)],
                ),
                agent(
                    "travel",
                    "active",
                    vec![a("JPY", 12_000, Some(12_000), 48_000, 0)],
                    0,
                    &[],
                ),
                agent(
                    "travel-sub",
                    "frozen",
                    vec![a("KWD", 0, None, 1_234, 0)],
                    0,
                    &[("agent_frozen", 4)],
                ),
                agent("idle", "active", vec![], 0, &[]),
            ],
            users: vec![Totals {
                id: "alice@example.com".into(),
                user: None,
                status: None,
                amounts: vec![
                    a("CNY", 1_250, None, 3_750, 1_200),
                    a("EUR", 0, None, 4_999, 0),
                    a("JPY", 12_000, Some(12_000), 48_000, 0),
                    a("KWD", 0, None, 1_234, 0),
                ],
                denials: [
                    ("agent_frozen".to_string(), 4),
                    ("budget_exhausted".to_string(), 2),
                ]
                .into_iter()
                .collect(),
                pending: 1,
                overdue: 0,
            }],
            hourly: vec![],
        }
    }

    fn snapshot(name: &str, got: &str) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/snapshots")
            .join(name);
        if std::env::var_os("ARI_UPDATE_SNAPSHOTS").is_some() {
            std::fs::write(&path, got).unwrap();
        }
        let want = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(
            got, want,
            "{name} changed; look at it, then ARI_UPDATE_SNAPSHOTS=1 cargo test to accept"
        );
    }

    #[test]
    fn the_voucher_list_reads_as_money_and_time() {
        let tz = TimeZone::get("Europe/Paris").unwrap();
        snapshot("voucher-list.txt", &vouchers(&sample(), &tz));
    }

    #[test]
    fn the_spending_view_reads_per_agent_and_per_user() {
        snapshot("spending.txt", &spending(&sample(), &TimeZone::UTC));
    }
}
