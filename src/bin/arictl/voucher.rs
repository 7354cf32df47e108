//! `arictl voucher`: issue, list, show, revoke and import vouchers, write the revocation list
//! (operator, admin socket), and delegate part of a voucher to a child agent (agent socket).

use crate::cli::{Cli, VoucherCmd};
use crate::file::{read_input, write_output};
use crate::print_json;
use crate::rpc::{call, field};
use crate::time::{parse_duration, parse_time};
use anyhow::{Context, Result};
use serde_json::{Value, json};

/// Runs one `arictl voucher` command.
pub(crate) fn run(cli: &Cli, cmd: &VoucherCmd) -> Result<()> {
    let admin = &cli.admin_socket;
    match cmd {
        VoucherCmd::Issue {
            agent,
            level,
            currency,
            max_amount,
            min_amount,
            budget,
            max_payments,
            payees,
            categories,
            funds_carrier,
            not_before,
            expires,
            report_within,
            conditions,
            json: as_json,
        } => {
            let mut params = json!({
                "agent": agent,
                "level": level,
                "currency": currency,
                "payees": payees,
                "categories": categories,
                "conditions": conditions,
                "expires_at": parse_time(expires)?,
            });
            let optional = [
                ("max_amount", max_amount.map(Value::from)),
                ("min_amount", min_amount.map(Value::from)),
                ("budget", budget.map(Value::from)),
                ("max_payments", max_payments.map(Value::from)),
                ("funds_carrier", funds_carrier.clone().map(Value::from)),
                (
                    "not_before",
                    not_before
                        .as_deref()
                        .map(parse_time)
                        .transpose()?
                        .map(Value::from),
                ),
                (
                    "report_within_s",
                    report_within
                        .as_deref()
                        .map(parse_duration)
                        .transpose()?
                        .map(Value::from),
                ),
            ];
            for (k, v) in optional {
                if let (Some(v), Some(obj)) = (v, params.as_object_mut()) {
                    obj.insert(k.to_string(), v);
                }
            }
            let v = call(admin, "admin.voucher_issue", params)?;
            if *as_json {
                return print_json(
                    &json!({ "id": field(&v, "/id"), "digest": field(&v, "/digest"), "voucher": field(&v, "/voucher") }),
                );
            }
            println!("{}", field(&v, "/voucher").as_str().unwrap_or_default());
            Ok(())
        }
        VoucherCmd::List {
            agent,
            json: as_json,
        } => {
            let v = call(admin, "admin.voucher_list", json!({ "agent": agent }))?;
            if *as_json {
                return print_json(&v);
            }
            println!(
                "{:<34} {:<20} {:<8} {:>12} {:>8} EXPIRES",
                "ID", "AGENT", "STATUS", "SPENT", "PAYMENTS"
            );
            for x in field(&v, "/vouchers").as_array().into_iter().flatten() {
                println!(
                    "{:<34} {:<20} {:<8} {:>12} {:>8} {}",
                    field(x, "/id").as_str().unwrap_or("?"),
                    field(x, "/agent").as_str().unwrap_or("?"),
                    field(x, "/status").as_str().unwrap_or("?"),
                    field(x, "/spent").to_string(),
                    field(x, "/payments").to_string(),
                    field(x, "/expires_at")
                );
            }
            Ok(())
        }
        VoucherCmd::Show { voucher } => print_json(&call(
            admin,
            "admin.voucher_show",
            json!({ "voucher": voucher }),
        )?),
        VoucherCmd::Revoke { voucher } => {
            let v = call(admin, "admin.voucher_revoke", json!({ "voucher": voucher }))?;
            println!(
                "voucher {}: {}",
                field(&v, "/id").as_str().unwrap_or("?"),
                field(&v, "/status").as_str().unwrap_or("?")
            );
            Ok(())
        }
        VoucherCmd::Revoked { export } => {
            let v = call(admin, "admin.voucher_revocations", json!({}))?;
            let list = field(&v, "/list").as_str().unwrap_or_default();
            write_output(export, &format!("{list}\n"))?;
            eprintln!("revocation list: {} voucher(s)", field(&v, "/count"));
            Ok(())
        }
        VoucherCmd::Import { file } => {
            let text = read_input(file)?;
            print_json(&call(
                admin,
                "admin.voucher_import",
                json!({ "voucher": text.trim() }),
            )?)
        }
        VoucherCmd::Delegate {
            voucher,
            agent,
            constraints,
            expires,
            json: as_json,
        } => {
            let constraints: Value = serde_json::from_str(&read_input(constraints)?)
                .context("the constraints file is not JSON")?;
            let mut params =
                json!({ "voucher": voucher, "agent": agent, "constraints": constraints });
            if let (Some(t), Some(obj)) = (expires, params.as_object_mut()) {
                obj.insert("expires_at".into(), parse_time(t)?.into());
            }
            let v = call(&cli.agent_socket, "voucher.delegate", params)?;
            if *as_json {
                return print_json(&v);
            }
            println!("{}", field(&v, "/voucher").as_str().unwrap_or_default());
            Ok(())
        }
    }
}
