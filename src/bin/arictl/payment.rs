//! `arictl payment`: ask for, follow and report payments (agent side, agent socket), and list,
//! show, confirm and reject them (operator, admin socket).

use crate::cli::{Cli, PaymentCmd};
use crate::file::read_input;
use crate::print_json;
use crate::rpc::{call, field};
use crate::time::parse_duration;
use anyhow::{Result, anyhow};
use serde_json::{Value, json};
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
            aud,
            nonce,
            facts,
            wait,
        } => {
            let text;
            let voucher = if Path::new(voucher).is_file() {
                text = read_input(Path::new(voucher))?;
                text.trim()
            } else {
                voucher.as_str()
            };
            let v = call(
                agent,
                "payment.authorize",
                json!({
                    "voucher": voucher,
                    "payment": {
                        "amount": amount, "currency": currency, "payee": payee,
                        "category": category, "transaction_id": transaction_id,
                    },
                    "aud": aud,
                    "nonce": nonce,
                    "facts": parse_facts(facts)?,
                }),
            )?;
            let waiting = wait_ms(wait.as_deref())?;
            if field(&v, "/status") == "pending_confirmation" && waiting > 0 {
                eprintln!(
                    "payment {} waits for an operator (arictl payment confirm|reject) ...",
                    field(&v, "/decision").as_str().unwrap_or("?")
                );
                let v = call(
                    agent,
                    "payment.status",
                    json!({ "decision": field(&v, "/decision"), "wait_ms": waiting }),
                )?;
                return print_json(&v);
            }
            print_json(&v)
        }
        PaymentCmd::Status { decision, wait } => print_json(&call(
            agent,
            "payment.status",
            json!({ "decision": decision, "wait_ms": wait_ms(wait.as_deref())? }),
        )?),
        PaymentCmd::Report {
            decision,
            outcome,
            reference,
        } => print_json(&call(
            agent,
            "payment.report",
            json!({ "decision": decision, "outcome": outcome, "reference": reference }),
        )?),
        PaymentCmd::List {
            status,
            voucher,
            json: as_json,
        } => {
            let v = call(
                admin,
                "admin.payment_list",
                json!({ "status": status, "voucher": voucher }),
            )?;
            if *as_json {
                return print_json(&v);
            }
            println!(
                "{:<34} {:<22} {:>10} {:<4} {:<20} REASON",
                "DECISION", "STATUS", "AMOUNT", "CUR", "PAYEE"
            );
            for x in field(&v, "/payments").as_array().into_iter().flatten() {
                println!(
                    "{:<34} {:<22} {:>10} {:<4} {:<20} {}",
                    field(x, "/decision").as_str().unwrap_or("?"),
                    field(x, "/status").as_str().unwrap_or("?"),
                    field(x, "/amount").to_string(),
                    field(x, "/currency").as_str().unwrap_or("?"),
                    field(x, "/payee").as_str().unwrap_or("?"),
                    field(x, "/reason").as_str().unwrap_or("")
                );
            }
            Ok(())
        }
        PaymentCmd::Show { decision } => print_json(&call(
            admin,
            "admin.payment_show",
            json!({ "decision": decision }),
        )?),
        PaymentCmd::Confirm { decision } => {
            let v = call(
                admin,
                "admin.payment_confirm",
                json!({ "decision": decision }),
            )?;
            println!(
                "payment {decision}: {}",
                field(&v, "/status").as_str().unwrap_or("?")
            );
            Ok(())
        }
        PaymentCmd::Reject { decision, note } => {
            let v = call(
                admin,
                "admin.payment_reject",
                json!({ "decision": decision, "note": note }),
            )?;
            println!(
                "payment {decision}: {} ({})",
                field(&v, "/status").as_str().unwrap_or("?"),
                field(&v, "/reason").as_str().unwrap_or("?")
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
