//! `arictl agent`: provision, list, show, freeze, unfreeze and retire agents, and their keys'
//! certificates (operator, admin socket).

use crate::cli::{AgentCmd, Cli};
use crate::file::sha256_file;
use crate::rpc::{call, wire_name};
use crate::{print_json, print_table};
use anyhow::{Context, Result};
use ari::protocol::agent::{AgentParam, CertImportParams, CsrParams, ProvisionParams};
use ari::protocol::call;
use ari::protocol::daemon::NoParams;

/// Runs one `arictl agent` command.
pub(crate) fn run(cli: &Cli, cmd: &AgentCmd) -> Result<()> {
    let admin = &cli.admin_socket;
    let one = |agent: &String| AgentParam {
        agent: agent.clone(),
    };
    match cmd {
        AgentCmd::Provision {
            agent,
            user,
            uid,
            gid,
            exe,
            exe_sha256,
            cgroup,
            rotate,
        } => {
            let exe_sha256 = match (exe, exe_sha256) {
                (Some(path), _) => Some(sha256_file(path)?),
                (None, d) => d.clone(),
            };
            let params = ProvisionParams {
                agent: agent.clone(),
                user: user.clone(),
                uid: *uid,
                gid: *gid,
                exe_sha256,
                cgroup: cgroup.clone(),
                rotate: *rotate,
            };
            print_json(&call::<call::AdminAgentProvision>(admin, &params)?)
        }
        AgentCmd::List { json } => {
            let list = call::<call::AdminAgentList>(admin, &NoParams {})?;
            let header = format!(
                "{:<24} {:<8} {:<24} {:<8} KID",
                "AGENT", "STATUS", "USER", "UID"
            );
            let rows = list.agents.iter().map(|a| {
                let status = wire_name(&a.status);
                let (id, user, uid, kid) = (&a.agent, &a.user, a.selectors.uid, &a.key.kid);
                format!("{id:<24} {status:<8} {user:<24} {uid:<8} {kid}")
            });
            print_table(&list, *json, header, rows)
        }
        AgentCmd::Show { agent } => print_json(&call::<call::AdminAgentShow>(admin, &one(agent))?),
        AgentCmd::Freeze { agent } => {
            let a = call::<call::AdminAgentFreeze>(admin, &one(agent))?;
            status_line(&a.agent, &a.status, false)
        }
        AgentCmd::Unfreeze { agent } => {
            let a = call::<call::AdminAgentUnfreeze>(admin, &one(agent))?;
            status_line(&a.agent, &a.status, false)
        }
        AgentCmd::Retire { agent } => {
            let r = call::<call::AdminAgentRetire>(admin, &one(agent))?;
            status_line(&r.agent, &r.status, r.key_destroyed)
        }
        AgentCmd::Csr { agent, subject } => {
            let params = CsrParams {
                agent: agent.clone(),
                subject: subject.clone(),
            };
            print!("{}", call::<call::AdminAgentCsr>(admin, &params)?.csr);
            Ok(())
        }
        AgentCmd::CertImport { agent, file } => {
            let certificate = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let params = CertImportParams {
                agent: agent.clone(),
                certificate,
            };
            print_json(&call::<call::AdminAgentCertImport>(admin, &params)?)
        }
    }
}

/// One line for a status change: `agent ID: STATUS`.
fn status_line(agent: &str, status: &impl serde::Serialize, key_destroyed: bool) -> Result<()> {
    let extra = if key_destroyed {
        " (key destroyed)"
    } else {
        ""
    };
    println!("agent {agent}: {}{extra}", wire_name(status));
    Ok(())
}
