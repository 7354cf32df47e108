//! `arictl voucher`: issue, list, show, revoke and import vouchers, print the signed voucher
//! status list (operator, admin socket), and delegate part of a voucher to a child agent (agent
//! socket).

use crate::cli::{Cli, VoucherCmd};
use crate::file::read_input;
use crate::print_json;
use crate::rpc::{call, parse_wire, wire_name};
use crate::time::{parse_duration, parse_time};
use anyhow::{Context, Result};
use ari::protocol::call;
use ari::protocol::daemon::NoParams;
use ari::protocol::voucher::{DelegateParams, IssueParams, VoucherParam};

/// Runs one `arictl voucher` command.
pub(crate) fn run(cli: &Cli, cmd: &VoucherCmd) -> Result<()> {
    let admin = &cli.admin_socket;
    let one = |voucher: &str| VoucherParam {
        voucher: voucher.to_owned(),
    };
    match cmd {
        VoucherCmd::Issue {
            agent,
            level,
            currency,
            max_amount,
            min_amount,
            budget,
            max_payments,
            period,
            payees,
            categories,
            funds_carrier,
            not_before,
            expires,
            report_within,
            conditions,
            json: as_json,
        } => {
            let params = IssueParams {
                agent: agent.clone(),
                level: parse_wire("--level", level, "L0 to L5")?,
                currency: currency.clone(),
                min_amount: *min_amount,
                max_amount: *max_amount,
                budget: *budget,
                max_payments: *max_payments,
                period: period
                    .as_deref()
                    .map(|p| {
                        parse_wire(
                            "--period",
                            &p.to_uppercase(),
                            "daily, weekly, biweekly, monthly, quarterly or annually",
                        )
                    })
                    .transpose()?,
                payees: payees.clone(),
                categories: categories.clone(),
                funds_carrier: funds_carrier.clone(),
                not_before: not_before.as_deref().map(parse_time).transpose()?,
                expires_at: parse_time(expires)?,
                report_within_s: report_within.as_deref().map(parse_duration).transpose()?,
                conditions: conditions.clone(),
                not_after_execution: None,
                not_before_execution: None,
            };
            let v = call::<call::AdminVoucherIssue>(admin, &params)?;
            if *as_json {
                #[derive(serde::Serialize)]
                struct Issued<'a> {
                    id: &'a str,
                    digest: &'a str,
                    voucher: &'a str,
                }
                return print_json(&Issued {
                    id: &v.id,
                    digest: &v.digest,
                    voucher: &v.compact,
                });
            }
            println!("{}", v.compact);
            Ok(())
        }
        VoucherCmd::List {
            agent,
            json: as_json,
        } => crate::spending::vouchers(cli, agent, *as_json),
        VoucherCmd::Show { voucher } => {
            print_json(&call::<call::AdminVoucherShow>(admin, &one(voucher))?)
        }
        VoucherCmd::Revoke { voucher } => {
            let v = call::<call::AdminVoucherRevoke>(admin, &one(voucher))?;
            println!("voucher {}: {}", v.id, wire_name(&v.status));
            Ok(())
        }
        VoucherCmd::StatusList { json: as_json } => {
            let v = call::<call::AdminVoucherStatusList>(admin, &NoParams {})?;
            if *as_json {
                return print_json(&v);
            }
            println!("{}", v.token);
            eprintln!(
                "status list {}: {} entries, {} invalid, {} suspended, good until {}",
                v.uri, v.entries, v.invalid, v.suspended, v.exp
            );
            Ok(())
        }
        VoucherCmd::Import { file } => {
            let text = read_input(file)?;
            print_json(&call::<call::AdminVoucherImport>(admin, &one(text.trim()))?)
        }
        VoucherCmd::Delegate {
            voucher,
            agent,
            constraints,
            expires,
            json: as_json,
        } => {
            /// The child's limits, as its open mandate will write them.
            #[derive(serde::Deserialize)]
            #[serde(deny_unknown_fields)]
            struct Limits {
                constraints: Vec<serde_json::Value>,
                #[serde(default)]
                a2p2: Option<ari::mandate::A2p2Limits>,
            }
            let limits: Limits = serde_json::from_str(&read_input(constraints)?).context(
                "the limits file is not {\"constraints\": [AP2 constraints], \"a2p2\": {...}}",
            )?;
            let params = DelegateParams {
                voucher: voucher.clone(),
                agent: agent.clone(),
                constraints: limits.constraints,
                a2p2: limits.a2p2,
                not_before: None,
                expires_at: expires.as_deref().map(parse_time).transpose()?,
            };
            let v = call::<call::VoucherDelegate>(&cli.agent_socket, &params)?;
            if *as_json {
                return print_json(&v);
            }
            println!("{}", v.voucher);
            Ok(())
        }
    }
}
