//! `arictl spending` and `arictl voucher list`: the daemon's balances (`admin.spending`) as a
//! person reads them ([`crate::view`]), or as JSON.

use crate::cli::Cli;
use crate::print_json;
use crate::rpc::call;
use crate::view;
use anyhow::Result;
use ari::clock::unix_now;
use ari::protocol::call;
use ari::protocol::spending::{Spending, SpendingParams};
use jiff::tz::TimeZone;
use std::path::Path;

/// Asks the daemon at `admin` for the balances, with "today" starting at the local midnight.
pub(crate) fn fetch_from(
    admin: &Path,
    agent: Option<String>,
    user: Option<String>,
    tz: &TimeZone,
) -> Result<Spending> {
    let params = SpendingParams {
        agent,
        user,
        day_start: Some(view::day_start(unix_now(), tz)),
    };
    call::<call::AdminSpending>(admin, &params)
}

/// `arictl spending`.
pub(crate) fn run(
    cli: &Cli,
    agent: &Option<String>,
    user: &Option<String>,
    json: bool,
) -> Result<()> {
    let tz = TimeZone::system();
    let s = fetch_from(&cli.admin_socket, agent.clone(), user.clone(), &tz)?;
    if json {
        return print_json(&s);
    }
    print!("{}", view::spending(&s, &tz));
    Ok(())
}

/// `arictl voucher list`.
pub(crate) fn vouchers(cli: &Cli, agent: &Option<String>, json: bool) -> Result<()> {
    let tz = TimeZone::system();
    let s = fetch_from(&cli.admin_socket, agent.clone(), None, &tz)?;
    if json {
        #[derive(serde::Serialize)]
        struct List<'a> {
            now: i64,
            vouchers: &'a [ari::protocol::spending::VoucherBalance],
        }
        return print_json(&List {
            now: s.now,
            vouchers: &s.vouchers,
        });
    }
    print!("{}", view::vouchers(&s, &tz));
    Ok(())
}
