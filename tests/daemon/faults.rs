//! Faults from below the daemon, injected from outside it: a token that fails calls or loses
//! its sessions and login, and a disk whose writes and fsyncs fail. The daemon is the ordinary
//! `arid` binary on a real SoftHSM2 token and a real SQLite database; the faults come from two
//! small C shims in `tests/faults/`, compiled here: a PKCS#11 module that wraps SoftHSM and
//! tampers with `C_SignInit`, and an `LD_PRELOAD` library that makes `write`/`pwrite` and
//! `fsync`/`fdatasync` on the state database fail with EIO. (TPM faults, a killed and a reset
//! simulator, are in `tpm.rs` beside this file.)
//!
//! What must hold: a fault in the key store is a typed, retryable error and the same daemon
//! process serves again once it passes; a fault in storage fails closed, so no client is ever
//! handed a signature whose decision is not committed in the log, counted over 10,000 requests.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::common;
use ari::protocol::Method;

use ari::client::{Client, ClientError};
use common::{Daemon, pay};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Compiles `tests/faults/NAME.c` into a shared library and returns its path.
fn shim(name: &str) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/faults/{name}.c"));
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("ari-fault-{name}.so"));
    let status = Command::new("cc")
        .args([
            "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror", "-o",
        ])
        .arg(&out)
        .arg(&src)
        .arg("-ldl")
        .status()
        .expect("cc (gcc) is needed to build the fault shims");
    assert!(status.success(), "cannot compile {}", src.display());
    out
}

fn issue(d: &Daemon, budget: u64) -> String {
    let v = d
        .admin()
        .call(
            Method::AdminVoucherIssue,
            json!({"agent": "shop-bot", "level": "L5", "currency": "CNY", "budget": budget,
                   "expires_at": ari::clock::unix_now() + 86_400}),
        )
        .unwrap();
    v["id"].as_str().unwrap().into()
}

fn spent(d: &Daemon, voucher: &str) -> u64 {
    d.admin()
        .call(Method::AdminVoucherShow, json!({"voucher": voucher}))
        .unwrap()["spent"]
        .as_u64()
        .unwrap()
}

/// Lines in the shim's fault log, by kind.
fn injected(log: &Path) -> BTreeMap<String, u64> {
    let mut kinds = BTreeMap::new();
    for line in std::fs::read_to_string(log).unwrap_or_default().lines() {
        *kinds.entry(line.to_string()).or_insert(0) += 1;
    }
    kinds
}

/// What the calls of one phase came to.
#[derive(Default, Debug)]
struct Outcomes {
    ok: u64,
    amount: u64,
    /// Errors by reason.
    errors: BTreeMap<String, u64>,
}

#[test]
fn token_faults_are_retryable_errors_and_the_same_daemon_recovers() {
    let module = shim("pkcs11");
    let mut d = Daemon::prepared();
    d.set_config("module", &format!("{:?}", module.display().to_string()));
    let control = d.dir.join("token-faults");
    let log = d.dir.join("token-faults.log");
    d.env = vec![
        (
            "ARI_FAULT_PKCS11_MODULE".into(),
            ari::tools::dev::SOFTHSM_MODULE.into(),
        ),
        ("ARI_FAULT_CONTROL".into(), control.display().to_string()),
        ("ARI_FAULT_LOG".into(), log.display().to_string()),
    ];
    d.spawn();
    let pid = d.child.as_ref().unwrap().id();
    d.provision_self("shop-bot");
    let voucher = issue(&d, 1_000_000_000);
    let mut total = Outcomes::default();
    let mut wanted = 0;

    // One fault of each kind is absorbed (the worker reopens its session, logs in again and
    // retries once); a run of device errors outlasts the retry and reaches the clients.
    for (phase, (kind, count)) in [
        ("device_error", 1),
        ("close_session", 1),
        ("logout", 1),
        ("device_error", 40),
        ("close_session", 6),
        ("logout", 3),
    ]
    .into_iter()
    .enumerate()
    {
        wanted += count;
        std::fs::write(&control, format!("{kind} {count}\n")).unwrap();
        let outcomes = Arc::new(Mutex::new(Outcomes::default()));
        let handles: Vec<_> = (0..4)
            .map(|n| {
                let (path, voucher, outcomes, control) = (
                    d.agent_path(),
                    voucher.clone(),
                    outcomes.clone(),
                    control.clone(),
                );
                std::thread::spawn(move || {
                    let mut c = Client::connect(&path).unwrap();
                    for i in 0..400 {
                        let left = std::fs::read_to_string(&control).unwrap();
                        if left.trim().ends_with(" 0") && i > 0 {
                            break;
                        }
                        let amount = 1 + (i % 3);
                        let got = if n == 0 {
                            c.call(
                                Method::AgentAttest,
                                json!({"nonce": format!("attest-{phase}-{i:08}")}),
                            )
                        } else {
                            pay(&mut c, &voucher, amount, &format!("p{phase}-{n}-{i}"))
                        };
                        let mut o = outcomes.lock().unwrap();
                        match got {
                            Ok(_) => {
                                o.ok += 1;
                                if n != 0 {
                                    o.amount += amount;
                                }
                            }
                            Err(ClientError::Remote(e)) => {
                                assert_eq!(
                                    e.error.reason(),
                                    "backend_unavailable",
                                    "{kind}: {e:?}"
                                );
                                assert!(e.error.retryable(), "{kind}: {e:?}");
                                *o.errors.entry(e.error.reason().to_owned()).or_insert(0) += 1;
                            }
                            Err(e) => panic!("{kind}: {e}"),
                        }
                    }
                })
            })
            .collect();
        for h in handles {
            if h.join().is_err() {
                let log = d.log();
                let errors: Vec<&str> = log.lines().filter(|l| l.contains("ERROR")).collect();
                panic!(
                    "phase {phase} ({kind}) failed; the daemon logged:\n{}",
                    errors.join("\n")
                );
            }
        }
        let o = std::mem::take(&mut *outcomes.lock().unwrap_or_else(|p| p.into_inner()));
        assert_eq!(
            std::fs::read_to_string(&control).unwrap().trim(),
            format!("{kind} 0"),
            "phase {phase}: the faults were not all taken"
        );
        // Recovered: the same process signs again, twenty calls in a row.
        let mut c = d.agent();
        for i in 0..20 {
            pay(&mut c, &voucher, 1, &format!("after-{phase}-{i}")).unwrap_or_else(|e| {
                panic!("phase {phase} ({kind}): not recovered after the faults: {e}")
            });
            total.amount += 1;
        }
        println!("token fault {kind} x{count}: {o:?}");
        total.ok += o.ok + 20;
        total.amount += o.amount;
        for (k, v) in o.errors {
            *total.errors.entry(k).or_insert(0) += v;
        }
    }

    let kinds = injected(&log);
    assert_eq!(kinds.values().sum::<u64>(), wanted, "{kinds:?}");
    assert!(
        total
            .errors
            .get("backend_unavailable")
            .copied()
            .unwrap_or(0)
            > 0,
        "no fault reached a client: {total:?}"
    );
    // Never restarted; the key store reports healthy; a payment that failed to sign was
    // voided and its money returned, so the voucher has spent exactly what clients were given.
    assert_eq!(d.child.as_ref().unwrap().id(), pid);
    assert!(d.child.as_mut().unwrap().try_wait().unwrap().is_none());
    let status = d.admin().call(Method::AdminStatus, json!({})).unwrap();
    assert_eq!(status["backend_health"]["state"], "ok", "{status}");
    assert_eq!(spent(&d, &voucher), total.amount);
    println!(
        "token faults injected {kinds:?}: {} calls answered, {:?} (all retryable); the same daemon (pid {pid}) recovered after every phase",
        total.ok, total.errors
    );
}

/// A result a client was handed: where it is in the log and what the entry must hold.
struct Received {
    index: u64,
    fact: (&'static str, String),
    amount: u64,
}

#[test]
fn storage_faults_fail_closed_over_10000_requests() {
    const REQUESTS: u64 = 10_000;
    const PAYERS: usize = 12;
    const RECORDERS: usize = 4;
    let preload = shim("storage");
    let mut d = Daemon::prepared();
    let control = d.dir.join("storage-faults");
    let log = d.dir.join("storage-faults.log");
    d.env = vec![
        ("LD_PRELOAD".into(), preload.display().to_string()),
        (
            "ARI_FAULT_FILES".into(),
            d.dir.join("state/ari.db").display().to_string(),
        ),
        ("ARI_FAULT_CONTROL".into(), control.display().to_string()),
        ("ARI_FAULT_LOG".into(), log.display().to_string()),
    ];
    d.spawn();
    let pid = d.child.as_ref().unwrap().id();
    d.provision_self("shop-bot");
    let voucher = issue(&d, 1_000_000_000);

    // 0.2% of writes and 4% of fsyncs on the database, its WAL and its index fail.
    std::fs::write(&control, "write=2 fsync=40\n").unwrap();
    let sent = Arc::new(AtomicU64::new(0));
    let received = Arc::new(Mutex::new(Vec::<Received>::new()));
    let errors = Arc::new(Mutex::new(BTreeMap::<String, u64>::new()));
    let handles: Vec<_> = (0..PAYERS + RECORDERS)
        .map(|n| {
            let (path, voucher, sent, received, errors) = (
                d.agent_path(),
                voucher.clone(),
                sent.clone(),
                received.clone(),
                errors.clone(),
            );
            std::thread::spawn(move || {
                let mut c = Client::connect(&path).unwrap();
                while sent.fetch_add(1, Ordering::SeqCst) < REQUESTS {
                    let i = sent.load(Ordering::SeqCst);
                    let amount = 1 + (i % 3);
                    let got = if n < PAYERS {
                        pay(&mut c, &voucher, amount, &format!("s{n}-{i}")).map(|r| Received {
                            index: r["log_index"].as_u64().unwrap(),
                            fact: (
                                "mandate",
                                r["authorization"]
                                    .as_str()
                                    .unwrap()
                                    .split('.')
                                    .nth(1)
                                    .unwrap()
                                    .to_string(),
                            ),
                            amount,
                        })
                    } else {
                        c.call(
                            Method::EvidenceRecord,
                            json!({"kind": "fault.storage", "body": {"n": n, "i": i}}),
                        )
                        .map(|r| Received {
                            index: r["index"].as_u64().unwrap(),
                            fact: ("statement", r["statement"].as_str().unwrap().to_string()),
                            amount: 0,
                        })
                    };
                    match got {
                        Ok(r) => received.lock().unwrap().push(r),
                        Err(ClientError::Remote(e)) => {
                            assert!(
                                e.error.reason() == "storage_error" || e.error.retryable(),
                                "an untyped or final error under storage faults: {e:?}"
                            );
                            *errors
                                .lock()
                                .unwrap()
                                .entry(e.error.reason().to_owned())
                                .or_insert(0) += 1;
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    std::fs::remove_file(&control).unwrap();
    let kinds = injected(&log);
    let received = std::mem::take(&mut *received.lock().unwrap());
    let errors = std::mem::take(&mut *errors.lock().unwrap());
    let failed: u64 = errors.values().sum();
    assert_eq!(received.len() as u64 + failed, REQUESTS);
    assert!(
        kinds.get("fsync").copied().unwrap_or(0) > 0
            && kinds.get("write").copied().unwrap_or(0) > 0,
        "no storage faults were injected: {kinds:?}"
    );
    assert!(failed > 0, "no request failed under storage faults");

    // The same daemon serves again once the disk is healthy, then survives a SIGKILL: what
    // follows is read from the database as a restart finds it.
    let mut c = d.agent();
    let last = pay(&mut c, &voucher, 1, "after-faults").unwrap();
    assert_eq!(d.child.as_ref().unwrap().id(), pid);
    d.kill();
    d.spawn();

    // Every signature and statement handed out is in the signed log, holding what the client
    // received; the voucher spent exactly what was handed out.
    let status = d.admin().call(Method::AdminStatus, json!({})).unwrap();
    let origin = status["evidence"]["origin"].as_str().unwrap().to_string();
    let key: ari::jose::Jwk =
        serde_json::from_value(status["daemon_keys"]["log"]["jwk"].clone()).unwrap();
    let key = key.to_public_key().unwrap();
    let size = last["log_index"].as_u64().unwrap() + 1;
    let cp = d
        .admin()
        .call(
            Method::EvidenceCheckpoint,
            json!({"at_least": size, "wait_ms": 10_000}),
        )
        .unwrap();
    let head =
        ari::evidence::checkpoint::verify(cp["note"].as_str().unwrap(), &origin, &key).unwrap();
    let mut admin = d.admin();
    for r in &received {
        common::assert_logged(
            &mut admin,
            r.index,
            (r.fact.0, &r.fact.1),
            (head.size, &head.root),
            "",
        );
    }
    let handed: u64 = received.iter().map(|r| r.amount).sum::<u64>() + 1;
    assert_eq!(spent(&d, &voucher), handed);

    // And the whole log exports and verifies offline.
    let work = common::tempdir();
    let jwk = work.path().join("log.jwk");
    std::fs::write(&jwk, status["daemon_keys"]["log"]["jwk"].to_string()).unwrap();
    let out = work.path().join("export");
    let (code, _, err) = d.arictl(&["log", "export", "--out", out.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    let verified = Command::new(common::ARICTL)
        .args(["verify", "log"])
        .arg(&out)
        .arg("--log-key")
        .arg(&jwk)
        .output()
        .unwrap();
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    println!(
        "{REQUESTS} requests under storage faults (injected: {kinds:?}): {} answered with a committed entry, {failed} refused {errors:?}; 0 signatures without their entry; all {} found in the signed log of {} entries after a SIGKILL",
        received.len(),
        received.len(),
        head.size
    );
}
