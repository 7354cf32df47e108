//! `arictl status` and `arictl metrics`: the operator's view of the daemon (admin socket).

use crate::cli::Cli;
use crate::print_json;
use crate::rpc::{call, wire_name};
use anyhow::{Result, anyhow};
use ari::protocol::call;
use ari::protocol::daemon::{Health, NoParams, Status};
use std::fmt::Display;

/// `arictl status`: everything as text or JSON, or only one of the daemon's public keys.
pub(crate) fn status(cli: &Cli, json: bool, issuer_jwk: bool, log_jwk: bool) -> Result<()> {
    let status = call::<call::AdminStatus>(&cli.admin_socket, &NoParams {})?;
    let key = |role: &str| {
        status
            .daemon_keys
            .get(role)
            .map(|k| &k.jwk)
            .ok_or_else(|| anyhow!("the daemon reports no {role} key"))
    };
    match (json, issuer_jwk, log_jwk) {
        (_, true, _) => print_json(key("issuer")?),
        (_, _, true) => print_json(key("log")?),
        (true, _, _) => print_json(&status),
        _ => {
            print!("{}", status_text(&status));
            Ok(())
        }
    }
}

/// `arictl metrics`: the Prometheus text as the daemon renders it.
pub(crate) fn metrics(cli: &Cli) -> Result<()> {
    print!(
        "{}",
        call::<call::AdminMetrics>(&cli.admin_socket, &NoParams {})?.text
    );
    Ok(())
}

/// `count status, ...` of a tally, or `none`.
fn counts<K: serde::Serialize, C: Display>(tally: impl IntoIterator<Item = (K, C)>) -> String {
    let parts: Vec<String> = tally
        .into_iter()
        .map(|(k, c)| format!("{c} {}", wire_name(&k)))
        .collect();
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

/// `admin.status` for people.
fn status_text(v: &Status) -> String {
    let up = v.uptime_s;
    let health = match &v.backend_health {
        Health::Ok { probe_us } => format!("ok (probe {probe_us} µs)"),
        Health::Busy { detail } | Health::Error { detail } => format!("FAILING: {detail}"),
    };
    let (b, l) = (v.queues.backend, v.queues.ledger);
    let e = &v.evidence;
    let mut out = format!(
        "arid {version}, up {d}d {h}h {m}m {sec}s, config {config:.12}… (reloaded {reloads} times)\n\
         backend   {backend}: {health}; queue {bw}/{bc}\n\
         ledger    queue {lw}/{lc}\n\
         agents    {agents}\n\
         vouchers  {vouchers}\n\
         evidence  {origin}: {entries} entries, newest checkpoint covers {cp} ({unsigned} not yet)\n",
        version = v.version,
        d = up / 86_400,
        h = up / 3_600 % 24,
        m = up / 60 % 60,
        sec = up % 60,
        config = v.config_sha256,
        reloads = v.reloads,
        backend = v.backend,
        bw = b.waiting,
        bc = b.capacity,
        lw = l.waiting,
        lc = l.capacity,
        agents = counts(&v.agents),
        vouchers = counts(&v.vouchers),
        origin = e.origin,
        entries = e.entries,
        cp = e
            .checkpoint_size
            .map_or_else(|| "-".to_owned(), |n| n.to_string()),
        unsigned = e.unsigned,
    );
    if let Some(tpm) = &v.tpm {
        let c = &tpm.counters;
        out.push_str(&format!(
            "tpm       ak {}: {} commands, {} quotes for {} payments, {} signatures\n",
            tpm.ak.as_deref().unwrap_or("-"),
            c.commands,
            c.quotes,
            c.quoted,
            c.signs
        ));
    }
    out
}
