//! `arictl status` and `arictl metrics`: the operator's view of the daemon (admin socket).

use crate::cli::Cli;
use crate::print_json;
use crate::rpc::{call, field};
use anyhow::Result;
use serde_json::{Value, json};

/// `arictl status`: everything as text or JSON, or only one of the daemon's public keys.
pub(crate) fn status(cli: &Cli, json: bool, issuer_jwk: bool, log_jwk: bool) -> Result<()> {
    let v = call(&cli.admin_socket, "admin.status", json!({}))?;
    match (json, issuer_jwk, log_jwk) {
        (_, true, _) => print_json(field(&v, "/daemon_keys/issuer/jwk")),
        (_, _, true) => print_json(field(&v, "/daemon_keys/log/jwk")),
        (true, _, _) => print_json(&v),
        _ => {
            print!("{}", status_text(&v));
            Ok(())
        }
    }
}

/// `arictl metrics`: the Prometheus text as the daemon renders it.
pub(crate) fn metrics(cli: &Cli) -> Result<()> {
    let v = call(&cli.admin_socket, "admin.metrics", json!({}))?;
    print!("{}", field(&v, "/text").as_str().unwrap_or_default());
    Ok(())
}

/// `admin.status` for people.
fn status_text(v: &Value) -> String {
    let s = |p: &str| match field(v, p) {
        Value::String(x) => x.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    };
    let n = |p: &str| field(v, p).as_u64().unwrap_or(0);
    let counts = |p: &str| match field(v, p).as_object() {
        Some(m) if !m.is_empty() => m
            .iter()
            .map(|(k, c)| format!("{c} {k}"))
            .collect::<Vec<_>>()
            .join(", "),
        _ => "none".into(),
    };
    let up = n("/uptime_s");
    let health = match s("/backend_health/state").as_str() {
        "ok" => format!("ok (probe {} µs)", n("/backend_health/probe_us")),
        _ => format!("FAILING: {}", s("/backend_health/detail")),
    };
    let mut out = format!(
        "arid {version}, up {d}d {h}h {m}m {sec}s, config {config:.12}… (reloaded {reloads} times)\n\
         backend   {backend}: {health}; queue {bw}/{bc}\n\
         ledger    queue {lw}/{lc}\n\
         agents    {agents}\n\
         vouchers  {vouchers}\n\
         evidence  {origin}: {entries} entries, newest checkpoint covers {cp} ({unsigned} not yet)\n",
        version = s("/version"),
        d = up / 86_400,
        h = up / 3_600 % 24,
        m = up / 60 % 60,
        sec = up % 60,
        config = s("/config_sha256"),
        reloads = n("/reloads"),
        backend = s("/backend"),
        bw = n("/queues/backend/waiting"),
        bc = n("/queues/backend/capacity"),
        lw = n("/queues/ledger/waiting"),
        lc = n("/queues/ledger/capacity"),
        agents = counts("/agents"),
        vouchers = counts("/vouchers"),
        origin = s("/evidence/origin"),
        entries = n("/evidence/entries"),
        cp = s("/evidence/checkpoint_size"),
        unsigned = n("/evidence/unsigned"),
    );
    if !field(v, "/tpm").is_null() {
        out.push_str(&format!(
            "tpm       ak {}: {} commands, {} quotes for {} payments, {} signatures\n",
            s("/tpm/ak"),
            n("/tpm/commands"),
            n("/tpm/quotes"),
            n("/tpm/quoted"),
            n("/tpm/signs")
        ));
    }
    out
}
