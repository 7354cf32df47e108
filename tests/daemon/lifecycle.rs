//! The daemon's life as an operator sees it: SIGHUP reloads without dropping anyone, SIGTERM
//! answers every call it was sent before it exits, a second daemon on the same state is
//! refused, and what `arictl status` and `arictl metrics` report.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::common;
use ari::protocol::Method;

use base64ct::Encoding;
use common::{Daemon, Raw, debian_python};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

fn status(d: &Daemon) -> Value {
    d.admin().call(Method::AdminStatus, json!({})).unwrap()
}

fn metrics(d: &Daemon) -> String {
    let (code, out, err) = d.arictl(&["metrics"]);
    assert_eq!(code, Some(0), "{err}");
    out
}

/// Waits until `check` holds for the daemon's status.
fn wait_status(d: &Daemon, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = status(d);
        if check(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "{what}: {s}\n{}", d.log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn call_line(id: u64, method: &str, params: Value) -> Vec<u8> {
    let mut line = serde_json::to_vec(
        &json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}),
    )
    .unwrap();
    line.push(b'\n');
    line
}

#[test]
fn sighup_changes_a_limit_without_dropping_an_open_connection() {
    let mut d = Daemon::start();
    d.provision_self("reloaded");
    let before = status(&d);
    assert_eq!(before["reloads"], 0);
    // A connection opened before the reload, with a call answered on it.
    let mut open = Raw::connect(&d.agent_path());
    open.send(&call_line(1, "agent.identity", json!({})));
    assert_eq!(open.recv().unwrap()["result"]["agent"], "reloaded");
    // A 4 KiB line is fine under the default 64 KiB limit.
    let padded = |id| call_line(id, "agent.identity", json!({ "pad": "x".repeat(4096) }));
    open.send(&padded(2));
    let answer = open.recv().unwrap();
    assert_eq!(
        answer["error"]["data"]["reason"], "invalid_params",
        "{answer}"
    );

    d.set_config("max_line_bytes", "2048");
    d.set_config("level", "\"debug\"");
    common::signal(d.child.as_ref().unwrap(), nix::sys::signal::Signal::SIGHUP);
    let after = wait_status(&d, "the reload is applied", |s| s["reloads"] == 1);
    assert_ne!(after["config_sha256"], before["config_sha256"]);

    // The open connection was not dropped and now works under the new limit.
    open.send(&call_line(3, "agent.identity", json!({})));
    assert_eq!(open.recv().unwrap()["result"]["agent"], "reloaded");
    open.send(&padded(4));
    let answer = open.recv().unwrap();
    assert_eq!(
        answer["error"]["data"]["reason"], "line_too_long",
        "{answer}"
    );
    assert!(open.closed(), "a line over the limit closes the connection");
    // New connections get the new limit too, and the new log level is in force.
    let mut fresh = Raw::connect(&d.agent_path());
    fresh.send(&padded(5));
    assert_eq!(
        fresh.recv().unwrap()["error"]["data"]["reason"],
        "line_too_long"
    );
    assert!(d.log().contains("DEBUG"), "log.level debug applies at once");

    // A broken file is refused; the daemon keeps serving with what it had.
    let config = d.dir.join("arid.toml");
    let good = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{good}\nmax_line_byte = 1\n")).unwrap();
    common::signal(d.child.as_ref().unwrap(), nix::sys::signal::Signal::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !metrics(&d).contains("ari_config_reloads_total{outcome=\"failed\"} 1") {
        assert!(Instant::now() < deadline, "{}", d.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(status(&d)["reloads"], 1);
    assert!(d.log().contains("reload refused"), "{}", d.log());
    // A file that changes what only a restart can is refused as a whole (the configuration
    // digest must describe what runs), even with a reloadable change beside it.
    let applied = status(&d)["config_sha256"].clone();
    std::fs::write(
        &config,
        good.replace("state_dir = ", "state_dir = \"/nonexistent\"\n# was: ")
            .replace("max_line_bytes = 2048", "max_line_bytes = 4096"),
    )
    .unwrap();
    common::signal(d.child.as_ref().unwrap(), nix::sys::signal::Signal::SIGHUP);
    while !metrics(&d).contains("ari_config_reloads_total{outcome=\"failed\"} 2") {
        assert!(Instant::now() < deadline, "{}", d.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let now = status(&d);
    assert_eq!(now["reloads"], 1);
    assert_eq!(now["config_sha256"], applied);
    assert!(
        d.log()
            .contains("state_dir changed, which only takes effect at a restart"),
        "{}",
        d.log()
    );
    let mut fresh = Raw::connect(&d.agent_path());
    fresh.send(&call_line(
        6,
        "agent.identity",
        json!({ "pad": "x".repeat(3000) }),
    ));
    assert_eq!(
        fresh.recv().unwrap()["error"]["data"]["reason"],
        "line_too_long",
        "the 2048-byte limit still holds"
    );
    assert_eq!(
        d.agent().call(Method::AgentIdentity, json!({})).unwrap()["agent"],
        "reloaded"
    );
    assert!(d.stop(), "{}", d.log());
}

#[test]
fn sigterm_answers_every_call_sent_before_it_and_keeps_what_it_answered() {
    let mut d = Daemon::start();
    d.provision_self("stopping");
    // 8 connections each send 16 durable calls (a token signature and a commit each; 16 is the
    // in-flight cap, so none is refused busy) in one write; the daemon is told to stop right
    // after, while it is still reading them.
    let mut conns: Vec<Raw> = (0..8).map(|_| Raw::connect(&d.agent_path())).collect();
    for (c, conn) in conns.iter_mut().enumerate() {
        let mut burst = Vec::new();
        for i in 0..16u64 {
            let id = (c as u64) * 100 + i;
            burst.extend(call_line(
                id,
                "evidence.record",
                json!({ "kind": "test.stop", "body": { "call": id } }),
            ));
        }
        conn.send(&burst);
    }
    // The stop comes once the daemon is serving them: after the first answer (connections are
    // measured as they are accepted, so on a slow machine a signal sent at once could find every
    // call still unread, and this test would check only the refusals).
    let first = conns[0].recv().expect("a first answer");
    let child = d.child.take().unwrap();
    common::signal(&child, nix::sys::signal::Signal::SIGTERM);
    let mut recorded = BTreeMap::new();
    let mut refused = 0;
    for (c, conn) in conns.iter_mut().enumerate() {
        let mut ids = Vec::new();
        let early = (c == 0).then(|| first.clone());
        for v in early.into_iter().chain(std::iter::from_fn(|| conn.recv())) {
            let id = v["id"].as_u64().unwrap_or_else(|| panic!("{v}"));
            ids.push(id);
            if let Some(r) = v.get("result") {
                recorded.insert(id, r["index"].as_u64().unwrap());
            } else {
                assert_eq!(v["error"]["data"]["reason"], "shutting_down", "{v}");
                assert_eq!(v["error"]["data"]["retryable"], true);
                refused += 1;
            }
        }
        ids.sort_unstable();
        let sent: Vec<u64> = (0..16).map(|i| (c as u64) * 100 + i).collect();
        assert_eq!(
            ids, sent,
            "connection {c}: every call answered exactly once"
        );
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "clean exit: {}", d.log());
    println!(
        "SIGTERM with 128 calls sent: {} run and answered, {refused} answered shutting_down",
        recorded.len()
    );
    assert!(!recorded.is_empty(), "some calls were in flight");

    // Everything answered as recorded is in the log after a restart.
    d.spawn();
    let mut admin = d.admin();
    for (id, index) in recorded {
        let entry = admin
            .call(Method::EvidenceEntry, json!({ "index": index }))
            .unwrap();
        let entry: Value = serde_json::from_str(entry["entry"].as_str().unwrap()).unwrap();
        let statement = entry["fact"]["statement"].as_str().unwrap();
        let payload = base64ct::Base64UrlUnpadded::decode_vec(statement).unwrap();
        let claims: Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(claims["kind"], "test.stop", "entry {index}: {claims}");
        assert_eq!(claims["body"]["call"], id, "entry {index} is call {id}'s");
    }
}

#[test]
fn a_second_daemon_on_the_same_state_directory_is_refused() {
    let d = Daemon::start();
    // The same configuration as the running dev daemon, started the production way.
    let other = d.dir.join("other.toml");
    let text = std::fs::read_to_string(d.dir.join("arid.toml"))
        .unwrap()
        .replace("agent.sock", "agent2.sock")
        .replace("admin.sock", "admin2.sock");
    std::fs::write(&other, text).unwrap();
    let out = Command::new(common::ARID)
        .arg("--config")
        .arg(&other)
        .env("SOFTHSM2_CONF", d.dir.join("softhsm2.conf"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let pid = d.child.as_ref().unwrap().id();
    assert!(
        err.contains("already using the state directory") && err.contains(&format!("pid {pid}")),
        "{err}"
    );
    assert!(!d.dir.join("agent2.sock").exists(), "no socket was bound");
    // The running daemon is untouched.
    assert_eq!(status(&d)["backend_health"]["state"], "ok");
}

#[test]
fn status_and_metrics_describe_the_running_daemon() {
    let d = Daemon::start();
    d.provision_self("measured");
    let mut agent = d.agent();
    for _ in 0..5 {
        agent.call(Method::AgentIdentity, json!({})).unwrap();
    }
    agent
        .call(
            Method::EvidenceRecord,
            json!({ "kind": "test.metrics", "body": {} }),
        )
        .unwrap();
    let mut raw = Raw::connect(&d.agent_path());
    raw.send(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"no.such_method\",\"params\":{}}\n");
    let refused = raw.recv().unwrap();
    assert_eq!(
        refused["error"]["data"]["reason"], "method_not_found",
        "{refused}"
    );

    let s = status(&d);
    assert_eq!(s["backend_health"]["state"], "ok", "{s}");
    assert!(s["queues"]["backend"]["capacity"].as_u64().unwrap() > 0);
    assert!(s["queues"]["ledger"]["capacity"].as_u64().unwrap() > 0);
    assert_eq!(s["agents"]["active"], 1);
    assert!(s["evidence"]["entries"].as_u64().unwrap() >= 2);
    assert!(s["uptime_s"].is_u64() && s["started_at"].is_i64());
    let (code, text, err) = d.arictl(&["status"]);
    assert_eq!(code, Some(0), "{err}");
    for line in ["backend   pkcs11: ok", "agents    1 active", "evidence  "] {
        assert!(text.contains(line), "{line:?} in\n{text}");
    }
    println!("{text}");

    let m = metrics(&d);
    for needle in [
        "ari_requests_total{method=\"agent.identity\",outcome=\"ok\"} 5",
        "ari_requests_total{method=\"unknown\",outcome=\"method_not_found\"} 1",
        "ari_request_duration_seconds_count{method=\"evidence.record\",outcome=\"ok\"} 1",
        "ari_backend_operation_duration_seconds_bucket{backend=",
        "ari_ledger_group_commit_jobs_count",
        "ari_agents{status=\"active\"} 1",
        // The typed client and the raw connection, both still open.
        "ari_connections{socket=\"agent\"} 2",
        "ari_uptime_seconds",
    ] {
        assert!(m.contains(needle), "{needle:?} in\n{m}");
    }
    // The Prometheus project's own checker parses the exposition as a scrape would and lints
    // it: HELP on every family, counters named `_total`, units in the names. .ci/test unpacks
    // it from Debian's `prometheus` package and names it in ARI_PROMTOOL.
    let promtool = std::env::var("ARI_PROMTOOL").unwrap_or_else(|_| "promtool".into());
    let (ok, out) = pipe(&promtool, &["check", "metrics"], &m);
    assert!(ok, "promtool check metrics refuses it:\n{out}\n{m}");
    // And the Prometheus Python client's text parser reads every family and sample.
    let script = "import sys\nfrom prometheus_client.parser import text_string_to_metric_families as parse\nfams = list(parse(sys.stdin.read()))\nprint(len(fams), sum(len(f.samples) for f in fams))\n";
    let (ok, out) = pipe(debian_python(), &["-c", script], &m);
    assert!(ok, "python3-prometheus-client cannot parse it: {out}");
    println!(
        "prometheus_client parsed: {} (families, samples)",
        out.trim()
    );
}

/// Runs `program` with `input` on its standard input: whether it succeeded, and what it printed
/// on both streams.
fn pipe(program: &str, args: &[&str], input: &str) -> (bool, String) {
    let mut child = Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program} (.ci/test installs it): {e}"));
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn logs_carry_request_ids_and_never_a_secret_or_a_voucher() {
    // Debug level, the most the daemon ever says.
    let mut d = Daemon::prepared();
    d.set_config("level", "\"debug\"");
    d.spawn();
    d.provision_self("quiet");
    let issued = d
        .admin()
        .call(
            Method::AdminVoucherIssue,
            json!({"agent": "quiet", "level": "L3", "currency": "CNY", "max_amount": 100,
                   "expires_at": ari::clock::unix_now() + 3600}),
        )
        .unwrap();
    let voucher = issued["voucher"].as_str().unwrap();
    let mut agent = d.agent();
    let paid = agent
        .call(
            Method::PaymentAuthorize,
            json!({"voucher": voucher, "payment": {"amount": 50, "currency": "CNY", "payee": "p",
                   "transaction_id": "t-1"}, "aud": "psp", "nonce": "nonce-0001"}),
        )
        .unwrap();
    let denied = agent.call(
        Method::PaymentAuthorize,
        json!({"voucher": voucher, "payment": {"amount": 500, "currency": "CNY", "payee": "p",
               "transaction_id": "t-2"}, "aud": "psp", "nonce": "nonce-0002"}),
    );
    assert!(denied.is_err());
    assert!(d.stop());

    let log = d.log();
    let pin = std::fs::read_to_string(d.dir.join("secrets/token.pin")).unwrap();
    let authorization = paid["authorization"].as_str().unwrap();
    for (what, secret) in [
        ("the token PIN", pin.trim()),
        ("the voucher", voucher),
        (
            "the voucher's signature",
            voucher.split('.').nth(2).unwrap(),
        ),
        ("the authorization", authorization),
    ] {
        assert!(!log.contains(secret), "{what} is in the log:\n{log}");
    }
    // Each call's lines carry its request id, method and caller.
    let provision = log
        .lines()
        .find(|l| l.contains("agent provisioned"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        provision.contains("call{req=") && provision.contains("method=\"admin.agent_provision\""),
        "{provision}"
    );
    let refusal = log
        .lines()
        .find(|l| l.contains("call refused") && l.contains("payment.authorize"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        refusal.contains("req=") && refusal.contains("uid="),
        "{refusal}"
    );
}
