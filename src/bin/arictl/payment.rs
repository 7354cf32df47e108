//! `arictl payment`: ask for, follow and report payments (agent side, agent socket), and list,
//! show, confirm and reject them (operator, admin socket).

use crate::cli::{Cli, PaymentCmd};
use crate::file::read_input;
use crate::print_json;
use crate::rpc::{call, parse_wire, wire_name};
use crate::time::parse_duration;
use anyhow::{Result, anyhow};
use ari::protocol::call;
use ari::protocol::payment::{
    Authorization, AuthorizeParams, DecisionParam, PaymentListParams, PaymentParams, RejectParams,
    ReportParams, StatusParams,
};
use serde_json::Value;
use std::path::Path;

/// Runs one `arictl payment` command.
pub(crate) fn run(cli: &Cli, cmd: &PaymentCmd) -> Result<()> {
    let admin = &cli.admin_socket;
    let agent = &cli.agent_socket;
    match cmd {
        PaymentCmd::Authorize {
            voucher,
            amount,
            currency,
            payee,
            category,
            transaction_id,
            checkout,
            aud,
            nonce,
            facts,
            no_proof,
            wait,
        } => {
            let voucher = if Path::new(voucher).is_file() {
                read_input(Path::new(voucher))?.trim().to_owned()
            } else {
                voucher.clone()
            };
            let params = AuthorizeParams {
                voucher,
                payment: PaymentParams {
                    amount: *amount,
                    currency: currency.clone(),
                    payee: payee.clone(),
                    category: category.clone(),
                    transaction_id: transaction_id.clone(),
                },
                aud: aud.clone(),
                nonce: nonce.clone(),
                facts: parse_facts(facts)?,
                proof: !*no_proof,
                checkout_jwt: checkout
                    .as_ref()
                    .map(|f| read_input(f).map(|t| t.trim().to_owned()))
                    .transpose()?,
            };
            let answer = call::<call::PaymentAuthorize>(agent, &params)?;
            let wait_ms = wait_ms(wait.as_deref())?;
            match answer {
                Authorization::PendingConfirmation(held) if wait_ms > 0 => {
                    eprintln!(
                        "payment {} waits for an operator (arictl payment confirm|reject) ...",
                        held.decision
                    );
                    let params = StatusParams {
                        decision: held.decision,
                        wait_ms,
                    };
                    print_json(&call::<call::PaymentStatus>(agent, &params)?)
                }
                answer => print_json(&answer),
            }
        }
        PaymentCmd::Status { decision, wait } => {
            let params = StatusParams {
                decision: decision.clone(),
                wait_ms: wait_ms(wait.as_deref())?,
            };
            print_json(&call::<call::PaymentStatus>(agent, &params)?)
        }
        PaymentCmd::Report {
            decision,
            outcome,
            reference,
            receipt,
            authorization,
        } => {
            let authorization = authorization
                .as_ref()
                .map(|f| -> Result<String> {
                    let text = read_input(f)?;
                    let text = text.trim();
                    if !text.starts_with('{') {
                        return Ok(text.to_owned());
                    }
                    let printed: serde_json::Value = serde_json::from_str(text)?;
                    printed
                        .get("authorization")
                        .or_else(|| printed.get("receipt").and_then(|r| r.get("authorization")))
                        .and_then(serde_json::Value::as_str)
                        .map(str::to_owned)
                        .ok_or_else(|| anyhow::anyhow!("{}: no authorization in it", f.display()))
                })
                .transpose()?;
            let params = ReportParams {
                decision: decision.clone(),
                outcome: parse_wire("--outcome", outcome, "succeeded, failed or refunded")?,
                reference: reference.clone(),
                receipt_jwt: receipt
                    .as_ref()
                    .map(|f| read_input(f).map(|t| t.trim().to_owned()))
                    .transpose()?,
                authorization,
            };
            print_json(&call::<call::PaymentReport>(agent, &params)?)
        }
        PaymentCmd::List {
            status,
            voucher,
            json: as_json,
        } => {
            let params = PaymentListParams {
                status: status
                    .as_deref()
                    .map(|s| parse_wire("--status", s, "pending, authorized, denied or void"))
                    .transpose()?,
                voucher: voucher.clone(),
                limit: None,
            };
            let list = call::<call::AdminPaymentList>(admin, &params)?;
            if *as_json {
                return print_json(&list);
            }
            let tz = jiff::tz::TimeZone::system();
            let now = ari::clock::unix_now();
            let mut table = crate::view::Table::new(&[
                "DECISION", "AGENT", "STATUS", ">AMOUNT", "PAYEE", "CATEGORY", "WHEN",
            ]);
            for x in &list.payments {
                let status = match (&x.status, &x.reason, &x.outcome) {
                    (_, Some(reason), _) => format!("{}: {reason}", wire_name(&x.status)),
                    (_, None, Some(outcome)) => {
                        format!("{}, {}", wire_name(&x.status), wire_name(outcome))
                    }
                    _ => wire_name(&x.status).replace('_', " "),
                };
                table.row(vec![
                    x.decision.clone(),
                    x.agent.clone(),
                    status,
                    crate::view::money(x.amount, &x.currency),
                    x.payee.clone(),
                    x.category.clone().unwrap_or_else(|| "-".into()),
                    crate::view::when(x.decided_at.unwrap_or(x.created_at), now, &tz),
                ]);
            }
            print!("{}", table.render());
            Ok(())
        }
        PaymentCmd::Show { decision } => {
            let params = DecisionParam {
                decision: decision.clone(),
            };
            print_json(&call::<call::AdminPaymentShow>(admin, &params)?)
        }
        PaymentCmd::Confirm { decision } => {
            let params = DecisionParam {
                decision: decision.clone(),
            };
            let d = call::<call::AdminPaymentConfirm>(admin, &params)?;
            println!("payment {decision}: {}", wire_name(&d.status));
            Ok(())
        }
        PaymentCmd::Reject { decision, note } => {
            let params = RejectParams {
                decision: decision.clone(),
                note: note.clone(),
            };
            let d = call::<call::AdminPaymentReject>(admin, &params)?;
            println!(
                "payment {decision}: {} ({})",
                wire_name(&d.status),
                d.reason.as_deref().unwrap_or("?")
            );
            Ok(())
        }
    }
}

/// Parses `NAME=VALUE` facts: integers and booleans as such, anything else as text.
fn parse_facts(facts: &[String]) -> Result<serde_json::Map<String, Value>> {
    let mut out = serde_json::Map::new();
    for f in facts {
        let (name, value) = f
            .split_once('=')
            .ok_or_else(|| anyhow!("--fact {f:?}: expected NAME=VALUE"))?;
        let value = match value {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            v => v
                .parse::<i64>()
                .map_or_else(|_| Value::from(v), Value::from),
        };
        out.insert(name.to_string(), value);
    }
    Ok(out)
}

/// `--wait` in milliseconds (0 without it).
fn wait_ms(wait: Option<&str>) -> Result<u64> {
    Ok(wait
        .map(parse_duration)
        .transpose()?
        .unwrap_or(0)
        .saturating_mul(1000))
}
