//! `arictl bench`: every benchmark and flag runs briefly on its own throwaway daemon (or a
//! running one) and prints JSON whose figures are numbers that make sense: positive rates and
//! latencies, a baseline and a ratio, CPU and memory read from /proc. No figure is compared
//! with a bound: timing belongs to benchmarks, and this machine is shared.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::common;

use common::{ARICTL, Daemon};
use serde_json::Value;
use std::process::Command;

/// Runs `arictl bench ARGS --json` and returns its JSON lines.
fn bench(args: &[&str]) -> Vec<Value> {
    let out = Command::new(ARICTL)
        .arg("bench")
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "arictl bench {args:?}: {stderr}");
    println!("arictl bench {}:\n{stdout}", args.join(" "));
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// A finite number above zero.
fn positive(v: &Value, key: &str) -> f64 {
    let x = v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is not a number in {v}"));
    assert!(x.is_finite() && x > 0.0, "{key} = {x} in {v}");
    x
}

/// A finite number, zero allowed (CPU time is counted in clock ticks; a short run may see none).
fn not_negative(v: &Value, key: &str) -> f64 {
    let x = v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is not a number in {v}"));
    assert!(x.is_finite() && x >= 0.0, "{key} = {x} in {v}");
    x
}

/// The fields every socket bench reports about its run and the daemon.
fn socket_run(v: &Value) {
    for key in [
        "ops_per_s",
        "p50_us",
        "p99_us",
        "baseline_ops_per_s",
        "ratio",
    ] {
        positive(v, key);
    }
    for key in ["daemon_cpu_us_per_op", "client_cpu_us_per_op"] {
        not_negative(v, key);
    }
    for key in ["daemon_rss_kib_before", "daemon_rss_kib_after"] {
        positive(v, key);
    }
    let ratio = v["ops_per_s"].as_f64().unwrap() / v["baseline_ops_per_s"].as_f64().unwrap();
    assert!((ratio - v["ratio"].as_f64().unwrap()).abs() < 1e-6 * ratio.max(1.0));
}

#[test]
fn attest_prints_the_raw_baseline_the_ratio_cpu_and_memory() {
    let rows = bench(&["attest", "--clients", "2", "--seconds", "0.5"]);
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    assert_eq!(r["method"], "agent.attest");
    assert_eq!(r["clients"], 2);
    socket_run(r);
    positive(r, "baseline_p50_us");
    not_negative(r, "baseline_cpu_us_per_op");
}

#[test]
fn authorize_sweeps_a_list_of_client_counts_against_one_baseline() {
    let rows = bench(&["authorize", "--clients", "1,3", "--seconds", "0.4"]);
    let clients: Vec<u64> = rows
        .iter()
        .map(|r| r["clients"].as_u64().unwrap())
        .collect();
    assert_eq!(clients, [1, 3]);
    for r in &rows {
        assert_eq!(r["method"], "payment.authorize");
        socket_run(r);
        assert_eq!(r["baseline_ops_per_s"], rows[0]["baseline_ops_per_s"]);
    }
}

#[test]
fn log_compares_with_raw_sqlite_appends_of_the_same_group_size() {
    let rows = bench(&["log", "--clients", "1,4", "--seconds", "0.5"]);
    assert_eq!(rows.len(), 2);
    for r in &rows {
        socket_run(r);
        for key in [
            "bytes_per_entry",
            "entries_per_commit",
            "baseline_p50_us",
            "baseline_p99_us",
        ] {
            positive(r, key);
        }
        assert!(r["entries"].as_u64().unwrap() > 0);
        assert!(r["group_commits"].as_u64().unwrap() > 0);
        assert!(r["baseline_group"].as_u64().unwrap() >= 1);
        assert!(r["baseline_row_bytes"].as_u64().unwrap() > 100);
        // The floor: the socket alone, and the disk alone, and the most they leave room for.
        positive(r, "floor_ops_per_s");
        let parts: f64 = [
            "floor_daemon_cpu_us_per_op",
            "floor_client_cpu_us_per_op",
            "baseline_cpu_us_per_op",
        ]
        .iter()
        .map(|k| not_negative(r, k))
        .sum();
        let cores = r["cores"].as_u64().unwrap() as f64;
        assert!(cores >= 1.0, "{r}");
        let ceiling = not_negative(r, "ceiling_ops_per_s");
        if parts > 0.0 {
            let expected = cores * 1e6 / parts;
            assert!((ceiling - expected).abs() < 1e-6 * expected, "{r}");
        }
    }
}

#[test]
fn proof_compares_with_reading_as_many_nodes() {
    let rows = bench(&["proof", "--entries", "3000", "--samples", "200"]);
    let r = &rows[0];
    assert_eq!(r["entries"], 3000);
    for key in [
        "inclusion_ops_per_s",
        "inclusion_p50_us",
        "inclusion_node_reads",
        "inclusion_baseline_ops_per_s",
        "inclusion_ratio",
        "consistency_ops_per_s",
        "consistency_node_reads",
        "consistency_baseline_ops_per_s",
        "consistency_ratio",
    ] {
        positive(r, key);
    }
    assert!(r["proof_hashes"].as_u64().unwrap() >= 11);
}

#[test]
fn verify_times_the_offline_verifier_on_real_artifacts() {
    let rows = bench(&[
        "verify",
        "--clients",
        "1,2",
        "--seconds",
        "0.3",
        "--log-entries",
        "40",
    ]);
    assert_eq!(rows.len(), 2);
    for r in &rows {
        assert_eq!(r["chain"], 1);
        assert!(r["tree_size"].as_u64().unwrap() > 40);
        assert!(r["proof_hashes"].as_u64().unwrap() >= 1);
        let what: Vec<&str> = r["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| row["what"].as_str().unwrap())
            .collect();
        assert_eq!(what, ["payment", "inclusion"]);
        for row in r["rows"].as_array().unwrap() {
            for key in [
                "ops_per_s",
                "p50_us",
                "p99_us",
                "baseline_ops_per_s",
                "baseline_p50_us",
                "ratio",
            ] {
                positive(row, key);
            }
        }
        // A receipt with one voucher: the voucher's and the authorization's signatures.
        assert_eq!(r["rows"][0]["signatures"], 2);
        assert_eq!(r["rows"][1]["signatures"], 1);
    }
}

#[test]
fn tpm_authorize_compares_with_raw_tpm2_sign() {
    let rows = bench(&[
        "authorize",
        "--backend",
        "tpm",
        "--clients",
        "2",
        "--seconds",
        "0.5",
    ]);
    let r = &rows[0];
    for key in [
        "ops_per_s",
        "unbatched_ops_per_s",
        "speedup",
        "baseline_ops_per_s",
        "baseline_p50_us",
        "ratio",
        "quotes_per_authorization",
    ] {
        positive(r, key);
    }
    for key in [
        "daemon_cpu_us_per_op",
        "tpm_cpu_us_per_op",
        "baseline_tpm_cpu_us_per_op",
    ] {
        not_negative(r, key);
    }
}

#[test]
fn a_running_daemon_is_measured_and_its_connection_cap_respected() {
    if common::backend() == "tpm" {
        println!("skipped: the raw baseline signs on the dev SoftHSM token");
        return;
    }
    let d = Daemon::start();
    let dir = d.dir.to_str().unwrap();
    let rows = bench(&[
        "attest",
        "--state-dir",
        dir,
        "--clients",
        "1",
        "--seconds",
        "0.3",
    ]);
    socket_run(&rows[0]);
    // More clients than limits.max_connections would wait in the backlog: refused up front.
    let out = Command::new(ARICTL)
        .args(["bench", "attest", "--state-dir", dir, "--clients", "4,300"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("limits.max_connections (256)"), "{err}");
}
