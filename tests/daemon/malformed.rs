//! Hostile and broken input, byte by byte, against a real daemon: every case gets its documented
//! error (or a clean close), and the daemon keeps serving the next client.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::common;
use ari::protocol::Method;

use common::{Daemon, Raw};
use serde_json::{Value, json};
use std::time::Duration;

/// What a case must produce.
enum Expect {
    /// One error response with this code (and the connection stays usable).
    Code(i64),
    /// One error response with this code, then the daemon closes the connection.
    CodeThenClose(i64),
    /// A batch answer: `Some(code)` for an error element, `None` for a success.
    Batch(Vec<Option<i64>>),
    /// One successful response.
    Ok,
    /// No answer; the daemon closes the connection.
    Close,
}

enum Socket {
    Admin,
    Agent,
}

enum Send {
    /// Bytes written at once.
    Bytes(Vec<u8>),
    /// Bytes written, then our write side shut down.
    ThenShutdown(Vec<u8>),
    /// Bytes written, then nothing more for longer than the read deadline.
    ThenStall(Vec<u8>),
}

struct Case {
    name: &'static str,
    socket: Socket,
    send: Send,
    expect: Expect,
}

fn line(s: &str) -> Send {
    Send::Bytes(format!("{s}\n").into_bytes())
}

fn call(method: &str, params: Value) -> Send {
    line(&json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params}).to_string())
}

fn case(name: &'static str, send: Send, expect: Expect) -> Case {
    Case {
        name,
        socket: Socket::Admin,
        send,
        expect,
    }
}

fn agent_case(name: &'static str, send: Send, expect: Expect) -> Case {
    Case {
        name,
        socket: Socket::Agent,
        send,
        expect,
    }
}

const MAX_LINE: usize = 4096;

fn cases() -> Vec<Case> {
    use Expect::*;
    let status = r#"{"jsonrpc":"2.0","id":1,"method":"admin.status"}"#;
    let deep = "[".repeat(300) + &"]".repeat(300);
    let mut garbage: Vec<u8> = (0u8..=255).filter(|b| *b != b'\n').collect();
    garbage.push(b'\n');
    let oversized_batch = format!("[{}]", vec![status; 65].join(","));
    vec![
        case("empty_object", line("{}"), Code(-32600)),
        case("not_json", line("hello"), Code(-32700)),
        case(
            "truncated_json",
            line(r#"{"jsonrpc":"2.0","id":1,"method":"admin.status""#),
            Code(-32700),
        ),
        case("binary_garbage", Send::Bytes(garbage), Code(-32700)),
        case(
            "invalid_utf8_in_string",
            Send::Bytes(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\xff\"}\n".to_vec()),
            Code(-32700),
        ),
        case(
            "trailing_garbage",
            line(&format!("{status} xyz")),
            Code(-32700),
        ),
        case("nested_too_deep", line(&deep), Code(-32700)),
        case("bare_number", line("42"), Code(-32600)),
        case("bare_string", line("\"hi\""), Code(-32600)),
        case("bare_null", line("null"), Code(-32600)),
        case("bare_true", line("true"), Code(-32600)),
        case(
            "missing_id",
            line(r#"{"jsonrpc":"2.0","method":"admin.status"}"#),
            Code(-32600),
        ),
        case(
            "null_id",
            line(r#"{"jsonrpc":"2.0","id":null,"method":"admin.status"}"#),
            Code(-32600),
        ),
        case(
            "fractional_id",
            line(r#"{"jsonrpc":"2.0","id":1.5,"method":"admin.status"}"#),
            Code(-32600),
        ),
        case(
            "object_id",
            line(r#"{"jsonrpc":"2.0","id":{"a":1},"method":"admin.status"}"#),
            Code(-32600),
        ),
        case(
            "array_id",
            line(r#"{"jsonrpc":"2.0","id":[1],"method":"admin.status"}"#),
            Code(-32600),
        ),
        case(
            "bool_id",
            line(r#"{"jsonrpc":"2.0","id":true,"method":"admin.status"}"#),
            Code(-32600),
        ),
        case(
            "overlong_string_id",
            line(
                &json!({"jsonrpc":"2.0","id":"i".repeat(300),"method":"admin.status"}).to_string(),
            ),
            Code(-32600),
        ),
        case(
            "missing_jsonrpc",
            line(r#"{"id":1,"method":"admin.status"}"#),
            Code(-32600),
        ),
        case(
            "wrong_jsonrpc_version",
            line(r#"{"jsonrpc":"1.0","id":1,"method":"admin.status"}"#),
            Code(-32600),
        ),
        case(
            "numeric_jsonrpc",
            line(r#"{"jsonrpc":2.0,"id":1,"method":"admin.status"}"#),
            Code(-32600),
        ),
        case(
            "missing_method",
            line(r#"{"jsonrpc":"2.0","id":1}"#),
            Code(-32600),
        ),
        case(
            "numeric_method",
            line(r#"{"jsonrpc":"2.0","id":1,"method":5}"#),
            Code(-32600),
        ),
        case(
            "null_method",
            line(r#"{"jsonrpc":"2.0","id":1,"method":null}"#),
            Code(-32600),
        ),
        case(
            "unknown_top_level_member",
            line(r#"{"jsonrpc":"2.0","id":1,"method":"admin.status","extra":1}"#),
            Code(-32600),
        ),
        case(
            "unknown_method",
            call("admin.nope", json!({})),
            Code(-32601),
        ),
        case("empty_method", call("", json!({})), Code(-32601)),
        case(
            "very_long_method",
            call(&"m".repeat(1000), json!({})),
            Code(-32601),
        ),
        case(
            "params_array",
            line(r#"{"jsonrpc":"2.0","id":1,"method":"admin.status","params":[1,2]}"#),
            Code(-32602),
        ),
        case(
            "params_string",
            line(r#"{"jsonrpc":"2.0","id":1,"method":"admin.status","params":"x"}"#),
            Code(-32602),
        ),
        case(
            "params_number",
            line(r#"{"jsonrpc":"2.0","id":1,"method":"admin.status","params":3}"#),
            Code(-32602),
        ),
        case(
            "unknown_param",
            call("admin.status", json!({"x": 1})),
            Code(-32602),
        ),
        case(
            "provision_missing_fields",
            call("admin.agent_provision", json!({"agent": "a"})),
            Code(-32602),
        ),
        case(
            "provision_uid_wrong_type",
            call(
                "admin.agent_provision",
                json!({"agent": "a", "user": "u", "uid": "zero"}),
            ),
            Code(-32602),
        ),
        case(
            "provision_negative_uid",
            call(
                "admin.agent_provision",
                json!({"agent": "a", "user": "u", "uid": -1}),
            ),
            Code(-32602),
        ),
        case(
            "provision_uid_overflow",
            call(
                "admin.agent_provision",
                json!({"agent": "a", "user": "u", "uid": 1u64 << 40}),
            ),
            Code(-32602),
        ),
        case(
            "provision_bad_agent_id",
            call(
                "admin.agent_provision",
                json!({"agent": "a/b", "user": "u", "uid": 1}),
            ),
            Code(-32602),
        ),
        case(
            "provision_control_char_user",
            call(
                "admin.agent_provision",
                json!({"agent": "a", "user": "u\u{7}", "uid": 1}),
            ),
            Code(-32602),
        ),
        case(
            "provision_bad_exe_digest",
            call(
                "admin.agent_provision",
                json!({"agent": "a", "user": "u", "uid": 1, "exe_sha256": "xyz"}),
            ),
            Code(-32602),
        ),
        case(
            "provision_relative_cgroup",
            call(
                "admin.agent_provision",
                json!({"agent": "a", "user": "u", "uid": 1, "cgroup": "user.slice"}),
            ),
            Code(-32602),
        ),
        case(
            "show_unknown_agent",
            call("admin.agent_show", json!({"agent": "ghost"})),
            Code(-32004),
        ),
        case(
            "freeze_missing_agent_param",
            call("admin.agent_freeze", json!({})),
            Code(-32602),
        ),
        case(
            "csr_bad_subject",
            call(
                "admin.agent_csr",
                json!({"agent": "m", "subject": "no equals"}),
            ),
            Code(-32602),
        ),
        case(
            "cert_import_garbage",
            call(
                "admin.agent_cert_import",
                json!({"agent": "m", "certificate": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}),
            ),
            Code(-32602),
        ),
        case(
            "agent_method_on_admin_socket",
            call("agent.identity", json!({})),
            Code(-32003),
        ),
        case("empty_batch", line("[]"), Code(-32600)),
        case("oversized_batch", line(&oversized_batch), Code(-32600)),
        case(
            "batch_of_junk",
            line("[1,2]"),
            Batch(vec![Some(-32600), Some(-32600)]),
        ),
        case(
            "batch_of_mixed_validity",
            line(&format!(
                r#"[{status},{{"jsonrpc":"2.0","method":"admin.status"}},{{"jsonrpc":"2.0","id":3,"method":"nope"}},{{"jsonrpc":"2.0","id":4,"method":"admin.status","params":[1]}}]"#
            )),
            Batch(vec![None, Some(-32600), Some(-32601), Some(-32602)]),
        ),
        case(
            "blank_line_then_call",
            Send::Bytes(format!("   \n\n{status}\n").into_bytes()),
            Ok,
        ),
        case(
            "crlf_line_ending",
            Send::Bytes(format!("{status}\r\n").into_bytes()),
            Ok,
        ),
        case(
            "huge_line",
            line(&"x".repeat(MAX_LINE + 100)),
            CodeThenClose(-32008),
        ),
        case(
            "huge_line_without_newline",
            Send::Bytes(vec![b'{'; MAX_LINE + 100]),
            CodeThenClose(-32008),
        ),
        case(
            "huge_valid_json_line",
            call("admin.status", json!({"pad": "p".repeat(MAX_LINE)})),
            CodeThenClose(-32008),
        ),
        case(
            "half_a_line_then_close",
            Send::ThenShutdown(br#"{"jsonrpc":"2.0","id":1,"meth"#.to_vec()),
            Close,
        ),
        case(
            "half_a_line_then_stall",
            Send::ThenStall(br#"{"jsonrpc":"2.0","id":1,"meth"#.to_vec()),
            CodeThenClose(-32009),
        ),
        agent_case(
            "admin_method_on_agent_socket",
            call("admin.agent_list", json!({})),
            Code(-32003),
        ),
        agent_case(
            "attest_missing_nonce",
            call("agent.attest", json!({})),
            Code(-32602),
        ),
        agent_case(
            "attest_nonce_too_short",
            call("agent.attest", json!({"nonce": "x"})),
            Code(-32602),
        ),
        agent_case(
            "attest_nonce_too_long",
            call("agent.attest", json!({"nonce": "n".repeat(600)})),
            Code(-32602),
        ),
        agent_case(
            "attest_nonce_wrong_type",
            call("agent.attest", json!({"nonce": 12345678})),
            Code(-32602),
        ),
        agent_case(
            "attest_nonce_control_chars",
            call("agent.attest", json!({"nonce": "abc\u{0}defgh"})),
            Code(-32602),
        ),
        agent_case(
            "identity_with_params",
            call("agent.identity", json!({"x": 1})),
            Code(-32602),
        ),
        agent_case(
            "identity_from_unknown_process",
            call("agent.identity", json!({})),
            CodeThenClose(-32001),
        ),
    ]
}

fn error_code(v: &Value) -> Option<i64> {
    v.get("error").map(|e| {
        assert!(
            e["data"]["reason"].is_string(),
            "error without data.reason: {v}"
        );
        assert!(
            e["data"]["retryable"].is_boolean(),
            "error without data.retryable: {v}"
        );
        e["code"].as_i64().unwrap()
    })
}

fn run_case(d: &Daemon, c: &Case) -> Result<(), String> {
    let path = match c.socket {
        Socket::Admin => d.admin_path(),
        Socket::Agent => d.agent_path(),
    };
    let mut raw = Raw::connect(&path);
    match &c.send {
        Send::Bytes(b) => raw.send(b),
        Send::ThenShutdown(b) => {
            raw.send(b);
            raw.stream.shutdown(std::net::Shutdown::Write).unwrap();
        }
        Send::ThenStall(b) => raw.send(b),
    }
    match &c.expect {
        Expect::Code(code) | Expect::CodeThenClose(code) => {
            let v = raw.recv().ok_or("connection closed without an answer")?;
            if error_code(&v) != Some(*code) {
                return Err(format!("expected error {code}, got {v}"));
            }
            if matches!(c.expect, Expect::CodeThenClose(_)) {
                if !raw.closed() {
                    return Err("the connection stayed open".into());
                }
            } else {
                // The same connection still works.
                raw.send(b"{\"jsonrpc\":\"2.0\",\"id\":\"again\",\"method\":\"nope\"}\n");
                let again = raw.recv().ok_or("connection closed after the error")?;
                if again["id"] != "again" {
                    return Err(format!("connection unusable after the error: {again}"));
                }
            }
        }
        Expect::Batch(want) => {
            let v = raw.recv().ok_or("connection closed without an answer")?;
            let items = v.as_array().ok_or(format!("expected an array, got {v}"))?;
            let got: Vec<Option<i64>> = items.iter().map(error_code).collect();
            if &got != want {
                return Err(format!("expected {want:?}, got {got:?}: {v}"));
            }
        }
        Expect::Ok => {
            let v = raw.recv().ok_or("connection closed without an answer")?;
            if v.get("result").is_none() {
                return Err(format!("expected a result, got {v}"));
            }
        }
        Expect::Close => {
            if !raw.closed() {
                return Err("expected the daemon to close without answering".into());
            }
        }
    }
    Ok(())
}

#[test]
fn malformed_inputs_get_documented_errors_and_the_daemon_keeps_serving() {
    let mut d = Daemon::prepared();
    d.set_config("max_line_bytes", &MAX_LINE.to_string());
    d.set_config("read_timeout_ms", "300");
    d.spawn();
    d.admin()
        .call(
            Method::AdminAgentProvision,
            json!({"agent": "m", "user": "u", "uid": 4242}),
        )
        .unwrap();
    let cases = cases();
    assert!(cases.len() >= 40, "{} cases", cases.len());
    let mut failures = Vec::new();
    for c in &cases {
        if let Err(why) = run_case(&d, c) {
            failures.push(format!("{}: {why}", c.name));
        }
        // The next client is served.
        if let Err(e) = d.admin().call(Method::AdminStatus, json!({})) {
            failures.push(format!("{}: the next client was not served: {e}", c.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    assert!(d.stop(), "the daemon stops cleanly after all that");
}

#[test]
fn idle_connections_are_closed_and_the_connection_cap_holds() {
    let mut d = Daemon::prepared();
    d.set_config("idle_timeout_ms", "400");
    d.set_config("max_connections", "2");
    d.spawn();
    // Idle: closed without a word.
    let mut idle = Raw::connect(&d.admin_path());
    std::thread::sleep(Duration::from_millis(900));
    assert!(idle.closed(), "idle connection closed");

    // Two connections take the cap; a third waits in the backlog until one leaves.
    let mut a = Raw::connect(&d.admin_path());
    let mut b = Raw::connect(&d.admin_path());
    for r in [&mut a, &mut b] {
        r.send(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"admin.status\"}\n");
        assert!(r.recv().unwrap().get("result").is_some());
    }
    let mut third = Raw::connect(&d.admin_path());
    third
        .stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    third.send(b"{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"admin.status\"}\n");
    let mut buf = [0u8; 1];
    let early = std::io::Read::read(&mut third.stream, &mut buf);
    assert!(
        early.is_err(),
        "the third client must not be served while the cap is taken"
    );
    drop(a);
    third
        .stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let v = third.recv().expect("served once a slot is free");
    assert_eq!(v["id"], 3);
}

#[test]
fn shutdown_answers_calls_in_flight() {
    let mut d = Daemon::start();
    d.provision_self("bot");
    let mut raw = Raw::connect(&d.agent_path());
    let mut burst = String::new();
    for i in 0..8 {
        burst.push_str(&format!("{{\"jsonrpc\":\"2.0\",\"id\":{i},\"method\":\"agent.attest\",\"params\":{{\"nonce\":\"drain-nonce-{i}\"}}}}\n"));
    }
    raw.send(burst.as_bytes());
    let first = raw.recv().expect("first answer");
    assert!(first.get("result").is_some(), "{first}");
    let child = d.child.take().unwrap();
    common::signal(&child, nix::sys::signal::Signal::SIGTERM);
    let mut answered = 1;
    while let Some(v) = raw.recv() {
        assert!(
            v.get("result").is_some() || v["error"]["data"]["reason"] == "shutting_down",
            "a call is either run or refused as not run: {v}"
        );
        answered += 1;
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "clean exit after draining");
    assert_eq!(answered, 8, "every call sent before the stop is answered");
    assert!(
        !d.agent_path().exists(),
        "sockets are removed on a clean stop"
    );
}

#[test]
fn a_full_signing_queue_answers_busy() {
    let mut d = Daemon::prepared();
    d.set_config("sessions", "1");
    d.set_config("queue_depth", "1");
    d.spawn();
    d.provision_self("bot");
    // Many calls at once on several connections: each is served or told to retry, none lost.
    let mut conns: Vec<Raw> = (0..4).map(|_| Raw::connect(&d.agent_path())).collect();
    let mut burst = String::new();
    for i in 0..16 {
        burst.push_str(&format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":{i},\"method\":\"agent.attest\",\"params\":{{\"nonce\":\"busy-nonce-{i}\"}}}}\n"
        ));
    }
    for c in &mut conns {
        c.send(burst.as_bytes());
    }
    let (mut ok, mut busy) = (0, 0);
    for c in &mut conns {
        for _ in 0..16 {
            let v = c.recv().expect("every call is answered");
            match v.get("error") {
                None => ok += 1,
                Some(e) => {
                    assert_eq!(e["code"], -32010, "{v}");
                    assert_eq!(e["data"]["reason"], "busy");
                    assert_eq!(e["data"]["retryable"], true);
                    busy += 1;
                }
            }
        }
    }
    // Whether any of them found the queue full depends on how fast this machine builds calls
    // compared with how fast the token signs; backend.rs beside this file shows the refusal itself.
    assert!(ok >= 1, "some calls were served");
    assert_eq!(
        ok + busy,
        64,
        "every call is either served or told to retry"
    );
    // And once the burst is over, calls are served again.
    d.agent()
        .call(Method::AgentAttest, json!({"nonce": "after-the-burst"}))
        .unwrap();
}
