//! `arictl agent`: provision, list, show, freeze, unfreeze and retire agents, and their keys'
//! certificates (operator, admin socket).

use crate::cli::{AgentCmd, Cli};
use crate::file::sha256_file;
use crate::print_json;
use crate::rpc::{call, field};
use anyhow::{Context, Result, anyhow};
use serde_json::{Value, json};

/// Runs one `arictl agent` command.
pub(crate) fn run(cli: &Cli, cmd: &AgentCmd) -> Result<()> {
    let admin = &cli.admin_socket;
    match cmd {
        AgentCmd::Provision {
            agent,
            user,
            uid,
            gid,
            exe,
            exe_sha256,
            cgroup,
        } => {
            let digest = match (exe, exe_sha256) {
                (Some(path), _) => Some(sha256_file(path)?),
                (None, d) => d.clone(),
            };
            let mut params = json!({ "agent": agent, "user": user, "uid": uid });
            for (k, v) in [
                ("gid", gid.map(|g| json!(g))),
                ("exe_sha256", digest.map(Value::from)),
                ("cgroup", cgroup.clone().map(Value::from)),
            ] {
                if let (Some(v), Some(obj)) = (v, params.as_object_mut()) {
                    obj.insert(k.to_string(), v);
                }
            }
            print_json(&call(admin, "admin.agent_provision", params)?)
        }
        AgentCmd::List { json } => {
            let v = call(admin, "admin.agent_list", json!({}))?;
            if *json {
                return print_json(&v);
            }
            println!(
                "{:<24} {:<8} {:<24} {:<8} KID",
                "AGENT", "STATUS", "USER", "UID"
            );
            for a in field(&v, "/agents").as_array().into_iter().flatten() {
                println!(
                    "{:<24} {:<8} {:<24} {:<8} {}",
                    field(a, "/agent").as_str().unwrap_or("?"),
                    field(a, "/status").as_str().unwrap_or("?"),
                    field(a, "/user").as_str().unwrap_or("?"),
                    field(a, "/selectors/uid").to_string(),
                    field(a, "/key/kid").as_str().unwrap_or("?")
                );
            }
            Ok(())
        }
        AgentCmd::Show { agent } => {
            print_json(&call(admin, "admin.agent_show", json!({ "agent": agent }))?)
        }
        AgentCmd::Freeze { agent } => status_line(&call(
            admin,
            "admin.agent_freeze",
            json!({ "agent": agent }),
        )?),
        AgentCmd::Unfreeze { agent } => status_line(&call(
            admin,
            "admin.agent_unfreeze",
            json!({ "agent": agent }),
        )?),
        AgentCmd::Retire { agent } => status_line(&call(
            admin,
            "admin.agent_retire",
            json!({ "agent": agent }),
        )?),
        AgentCmd::Csr { agent, subject } => {
            let v = call(
                admin,
                "admin.agent_csr",
                json!({ "agent": agent, "subject": subject }),
            )?;
            print!(
                "{}",
                field(&v, "/csr")
                    .as_str()
                    .ok_or_else(|| anyhow!("the daemon returned no CSR"))?
            );
            Ok(())
        }
        AgentCmd::CertImport { agent, file } => {
            let pem = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            print_json(&call(
                admin,
                "admin.agent_cert_import",
                json!({ "agent": agent, "certificate": pem }),
            )?)
        }
    }
}

/// One line for a status change: `agent ID: STATUS`.
fn status_line(v: &Value) -> Result<()> {
    let id = field(v, "/agent").as_str().unwrap_or("?");
    let status = field(v, "/status").as_str().unwrap_or("?");
    let extra = if field(v, "/key_destroyed") == &Value::Bool(true) {
        " (key destroyed)"
    } else {
        ""
    };
    println!("agent {id}: {status}{extra}");
    Ok(())
}
