//! The Python client (`clients/python`) against the real daemon on a real SoftHSM2 token: the
//! operator side is done here with `arictl` (an agent whose selectors are this machine's python3
//! interpreter, a child agent, a voucher), then the Python unittest suite runs as that agent.
//! Its error table is also checked against the daemon's own.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::common;

use ari::protocol::ErrorCode;
use common::{ARICTL, Daemon};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const AGENT: &str = "py-agent";
const CHILD: &str = "py-child";

fn client_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/python")
}

/// The client is standard library only, so any python3 of 3.11 or later will do.
fn python() -> &'static str {
    crate::common::debian_python()
}

/// Runs the python interpreter in the client's directory, without writing bytecode there.
fn run_python(args: &[&str], envs: &[(&str, String)]) -> Output {
    Command::new(python())
        .args(args)
        .current_dir(client_dir())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python()))
}

/// The executable the kernel runs for `python()` (a PATH entry may be a symlink or a pyenv shim
/// that execs another file), as the interpreter itself sees it.
fn interpreter_exe() -> PathBuf {
    let out = run_python(
        &["-c", "import os; print(os.path.realpath('/proc/self/exe'))"],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim_end())
}

fn sha256_hex(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

fn arictl_ok(d: &Daemon, args: &[&str]) -> String {
    let (code, out, err) = d.arictl(args);
    assert_eq!(code, Some(0), "arictl {args:?}: {err}");
    out
}

#[test]
fn the_python_error_table_is_the_daemons() {
    let out = run_python(
        &[
            "-c",
            "import json, ari_client; print(json.dumps([r[:3] for r in ari_client.ERRORS]))",
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table: Value = serde_json::from_slice(&out.stdout).unwrap();
    let daemon: Vec<Value> = ErrorCode::ALL
        .iter()
        .map(|c| json!([c.code(), c.reason(), c.retryable()]))
        .collect();
    assert_eq!(table, Value::Array(daemon));
}

#[test]
fn the_python_client_passes_its_tests_as_a_registered_agent() {
    let d = Daemon::start();
    let exe = interpreter_exe();
    let uid = common::uid().to_string();
    let provisioned: Value = serde_json::from_str(&arictl_ok(
        &d,
        &[
            "agent",
            "provision",
            "--agent",
            AGENT,
            "--user",
            "alice@example.com",
            "--uid",
            &uid,
            "--exe",
            exe.to_str().unwrap(),
        ],
    ))
    .unwrap();
    assert_eq!(provisioned["selectors"]["exe_sha256"], sha256_hex(&exe));
    // The child is arictl: same uid and user, another executable.
    arictl_ok(
        &d,
        &[
            "agent",
            "provision",
            "--agent",
            CHILD,
            "--user",
            "alice@example.com",
            "--uid",
            &uid,
            "--exe",
            ARICTL,
        ],
    );
    let voucher = arictl_ok(
        &d,
        &[
            "voucher",
            "issue",
            "--agent",
            AGENT,
            "--level",
            "L3",
            "--currency",
            "CNY",
            "--max-amount",
            "500",
            "--budget",
            "20000",
            "--payee",
            "shop.example",
            "--expires",
            "1h",
        ],
    );

    let env = [
        ("ARI_AGENT_SOCKET", d.agent_path().display().to_string()),
        ("ARI_ADMIN_SOCKET", d.admin_path().display().to_string()),
        ("ARI_TEST_ARICTL", ARICTL.to_string()),
        ("ARI_TEST_AGENT", AGENT.to_string()),
        (
            "ARI_TEST_KID",
            provisioned["key"]["kid"].as_str().unwrap().to_string(),
        ),
        ("ARI_TEST_VOUCHER", voucher.trim().to_string()),
        ("ARI_TEST_CHILD", CHILD.to_string()),
    ];
    let out = run_python(&["-m", "unittest", "-v", "test_ari_client"], &env);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}{report}");
    assert!(
        out.status.success(),
        "the python tests failed:\n{report}\ndaemon log:\n{}",
        d.log()
    );
    // Every live test ran against this daemon and passed; none was skipped.
    let live: Vec<&str> = report
        .lines()
        .filter(|l| l.contains("(test_ari_client.LiveDaemon."))
        .collect();
    assert!(!live.is_empty(), "no live test ran:\n{report}");
    assert!(live.iter().all(|l| l.ends_with("... ok")), "{report}");
}
