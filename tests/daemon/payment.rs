//! Payment authorization against the real daemon on a real SoftHSM2 token: every constraint
//! through the socket, budgets under concurrency and SIGKILL, freeze and revocation under load,
//! L2 and L4 paths, delegation, external issuers, and offline verification of what was signed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::common;
use ari::protocol::Method;

use ari::client::{Client, ClientError};
use ari::jose::{Jwk, PublicKey};
use ari::mandate::OPEN_VCT as VOUCHER_VCT;
use ari::voucher::{Confirmation, VoucherClaims, VoucherDraft};
use common::{ARICTL, Daemon, remote_err};
use p256::ecdsa::signature::hazmat::PrehashSigner;
use p256::ecdsa::{Signature, SigningKey};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

fn now() -> i64 {
    ari::clock::unix_now()
}

fn issue(d: &Daemon, params: Value) -> (String, String) {
    let mut p = json!({"agent": "shop-bot", "level": "L3", "currency": "CNY", "expires_at": now() + 86_400});
    for (k, v) in params.as_object().unwrap() {
        p[k] = v.clone();
    }
    let v = d.admin().call(Method::AdminVoucherIssue, p).unwrap();
    (
        v["id"].as_str().unwrap().into(),
        v["voucher"].as_str().unwrap().into(),
    )
}

fn pay(
    c: &mut Client,
    voucher: &str,
    amount: u64,
    tx: &str,
    extra: Value,
) -> Result<Value, ClientError> {
    let mut p = json!({
        "voucher": voucher,
        "payment": {"amount": amount, "currency": "CNY", "payee": "shop.example",
                    "category": "groceries", "transaction_id": tx},
        "aud": "psp.example",
        "nonce": format!("nonce-{tx}-0000"),
    });
    for (k, v) in extra.as_object().unwrap() {
        if k == "payment" {
            for (pk, pv) in v.as_object().unwrap() {
                p["payment"][pk] = pv.clone();
            }
        } else {
            p[k] = v.clone();
        }
    }
    c.call(Method::PaymentAuthorize, p)
}

fn reason(r: Result<Value, ClientError>) -> String {
    match r {
        Ok(v) => v["status"].as_str().unwrap().to_string(),
        Err(ClientError::Remote(e)) => e.error.reason().to_owned(),
        Err(e) => panic!("{e}"),
    }
}

fn voucher_view(d: &Daemon, id: &str) -> Value {
    d.admin()
        .call(Method::AdminVoucherShow, json!({"voucher": id}))
        .unwrap()
}

fn issuer_key(d: &Daemon) -> PublicKey {
    let status = d.admin().call(Method::AdminStatus, json!({})).unwrap();
    serde_json::from_value::<Jwk>(status["daemon_keys"]["issuer"]["jwk"].clone())
        .unwrap()
        .to_public_key()
        .unwrap()
}

fn receipt(v: &Value) -> ari::payment::Receipt {
    serde_json::from_value(v.clone()).unwrap()
}

#[test]
fn every_constraint_is_enforced_through_the_socket_and_every_denial_is_recorded() {
    let d = Daemon::start();
    d.provision_self("shop-bot");
    let mut c = d.agent();
    let (range, _) = issue(&d, json!({"min_amount": 100, "max_amount": 500}));
    assert_eq!(
        reason(pay(&mut c, &range, 100, "r1", json!({}))),
        "authorized"
    );
    assert_eq!(
        reason(pay(&mut c, &range, 99, "r2", json!({}))),
        "amount_out_of_range"
    );
    assert_eq!(
        reason(pay(&mut c, &range, 501, "r3", json!({}))),
        "amount_out_of_range"
    );
    assert_eq!(
        reason(pay(
            &mut c,
            &range,
            200,
            "r4",
            json!({"payment": {"currency": "USD"}})
        )),
        "currency_mismatch"
    );
    assert_eq!(
        reason(pay(&mut c, &range, 100, "r1", json!({}))),
        "duplicate_transaction"
    );

    let (budget, _) = issue(&d, json!({"budget": 300}));
    assert_eq!(
        reason(pay(&mut c, &budget, 200, "b1", json!({}))),
        "authorized"
    );
    assert_eq!(
        reason(pay(&mut c, &budget, 101, "b2", json!({}))),
        "budget_exhausted"
    );
    assert_eq!(
        reason(pay(&mut c, &budget, 100, "b3", json!({}))),
        "authorized"
    );
    assert_eq!(voucher_view(&d, &budget)["spent"], 300);

    let (payees, _) = issue(&d, json!({"max_amount": 500, "payees": ["shop.example"]}));
    assert_eq!(
        reason(pay(&mut c, &payees, 1, "p1", json!({}))),
        "authorized"
    );
    assert_eq!(
        reason(pay(
            &mut c,
            &payees,
            1,
            "p2",
            json!({"payment": {"payee": "evil.example"}})
        )),
        "payee_not_allowed"
    );

    let (cats, _) = issue(&d, json!({"max_amount": 500, "categories": ["groceries"]}));
    assert_eq!(reason(pay(&mut c, &cats, 1, "c1", json!({}))), "authorized");
    assert_eq!(
        reason(pay(
            &mut c,
            &cats,
            1,
            "c2",
            json!({"payment": {"category": "casino"}})
        )),
        "category_not_allowed"
    );

    let (count, _) = issue(&d, json!({"max_amount": 500, "max_payments": 2}));
    assert_eq!(
        reason(pay(&mut c, &count, 1, "n1", json!({}))),
        "authorized"
    );
    assert_eq!(
        reason(pay(&mut c, &count, 1, "n2", json!({}))),
        "authorized"
    );
    assert_eq!(
        reason(pay(&mut c, &count, 1, "n3", json!({}))),
        "payments_exhausted"
    );

    let (dates, _) = issue(
        &d,
        json!({"max_amount": 500, "not_before_execution": now() - 10, "not_after_execution": now() + 3600}),
    );
    assert_eq!(
        reason(pay(&mut c, &dates, 1, "e1", json!({}))),
        "authorized"
    );
    let (later, _) = issue(
        &d,
        json!({"max_amount": 500, "not_before_execution": now() + 3600}),
    );
    assert_eq!(
        reason(pay(&mut c, &later, 1, "e2", json!({}))),
        "outside_execution_date"
    );

    let (future, _) = issue(&d, json!({"max_amount": 500, "not_before": now() + 3600}));
    assert_eq!(
        reason(pay(&mut c, &future, 1, "t1", json!({}))),
        "voucher_not_yet_valid"
    );
    let (short, _) = issue(&d, json!({"max_amount": 500, "expires_at": now() + 2}));
    assert_eq!(
        reason(pay(&mut c, &short, 1, "t2", json!({}))),
        "authorized"
    );
    std::thread::sleep(Duration::from_millis(3100));
    assert_eq!(
        reason(pay(&mut c, &short, 1, "t3", json!({}))),
        "voucher_expired"
    );

    for level in ["L0", "L1"] {
        let (v, _) = issue(&d, json!({"max_amount": 500, "level": level}));
        assert_eq!(
            reason(pay(&mut c, &v, 1, "l", json!({}))),
            "level_forbids_payment"
        );
    }
    for level in ["L3", "L4", "L5"] {
        let (v, _) = issue(&d, json!({"max_amount": 500, "level": level}));
        assert_eq!(
            reason(pay(&mut c, &v, 1, "l", json!({}))),
            "authorized",
            "{level}"
        );
    }

    // L4 conditions over the request's facts.
    let bad = d.admin().call(
        Method::AdminVoucherIssue,
        json!({"agent": "shop-bot", "level": "L4", "currency": "CNY", "max_amount": 1, "expires_at": now() + 60,
               "conditions": ["facts.x >"]}),
    );
    assert_eq!(
        remote_err(bad).error.reason(),
        "invalid_params",
        "a malformed condition is refused at issue"
    );
    let (cond, _) = issue(
        &d,
        json!({"level": "L4", "max_amount": 5000, "conditions": ["facts.unit_price >= 400", "facts.quantity <= 3"]}),
    );
    let facts = |p: i64, q: i64| json!({"facts": {"unit_price": p, "quantity": q}});
    assert_eq!(
        reason(pay(&mut c, &cond, 1200, "k1", facts(400, 3))),
        "authorized"
    );
    assert_eq!(
        reason(pay(&mut c, &cond, 1200, "k2", facts(399, 3))),
        "condition_failed"
    );
    assert_eq!(
        reason(pay(&mut c, &cond, 1200, "k3", facts(500, 4))),
        "condition_failed"
    );
    assert_eq!(
        reason(pay(&mut c, &cond, 1200, "k4", json!({}))),
        "condition_failed"
    );

    // Denials carry their decision id, and the decision is on record with its reason.
    let denied = d
        .admin()
        .call(
            Method::AdminPaymentList,
            json!({"status": "denied", "limit": 1000}),
        )
        .unwrap();
    let reasons: Vec<&str> = denied["payments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["reason"].as_str().unwrap())
        .collect();
    for r in [
        "amount_out_of_range",
        "currency_mismatch",
        "budget_exhausted",
        "payee_not_allowed",
        "category_not_allowed",
        "payments_exhausted",
        "outside_execution_date",
        "voucher_not_yet_valid",
        "voucher_expired",
        "level_forbids_payment",
        "condition_failed",
        "duplicate_transaction",
    ] {
        assert!(reasons.contains(&r), "{r} recorded: {reasons:?}");
    }
    // The daemon kept serving through all of it.
    assert!(c.call(Method::AgentIdentity, json!({})).is_ok());
}

#[test]
fn a_denial_names_its_recorded_decision() {
    let d = Daemon::start();
    d.provision_self("shop-bot");
    let (v, _) = issue(&d, json!({"max_amount": 10}));
    let mut raw = common::Raw::connect(&d.agent_path());
    raw.send(
        format!(
            "{}\n",
            json!({"jsonrpc": "2.0", "id": 1, "method": "payment.authorize", "params": {
                "voucher": v, "payment": {"amount": 11, "currency": "CNY", "payee": "p", "transaction_id": "t"},
                "aud": "a", "nonce": "nonce-0001"}})
        )
        .as_bytes(),
    );
    let resp = raw.recv().unwrap();
    assert_eq!(resp["error"]["data"]["reason"], "amount_out_of_range");
    assert_eq!(resp["error"]["code"], -32027);
    let decision = resp["error"]["data"]["decision"].as_str().unwrap();
    let shown = d
        .admin()
        .call(Method::AdminPaymentShow, json!({"decision": decision}))
        .unwrap();
    assert_eq!(shown["status"], "denied");
    assert_eq!(shown["reason"], "amount_out_of_range");
}

/// 64 clients race for a voucher that allows exactly K payments, 200 times over.
#[test]
fn double_spend_64_clients_200_rounds_exactly_k() {
    const CLIENTS: usize = 64;
    const ROUNDS: usize = 200;
    let d = Daemon::start();
    d.provision_self("shop-bot");
    let conns: Vec<Client> = (0..CLIENTS).map(|_| d.agent()).collect();
    let barrier = Arc::new(Barrier::new(CLIENTS + 1));
    let voucher = Arc::new(std::sync::Mutex::new(String::new()));
    let granted = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let handles: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(n, mut c)| {
            let (barrier, voucher, granted, failures) = (
                barrier.clone(),
                voucher.clone(),
                granted.clone(),
                failures.clone(),
            );
            std::thread::spawn(move || {
                for round in 0..ROUNDS {
                    barrier.wait();
                    let v = voucher.lock().unwrap().clone();
                    match reason(pay(&mut c, &v, 100, &format!("r{round}-c{n}"), json!({})))
                        .as_str()
                    {
                        "authorized" => {
                            granted.fetch_add(1, Ordering::SeqCst);
                        }
                        "budget_exhausted" => {}
                        other => failures.lock().unwrap().push(other.to_string()),
                    }
                    barrier.wait();
                }
            })
        })
        .collect();
    for round in 0..ROUNDS {
        let k = 1 + (round * 37) % (CLIENTS - 1);
        let (id, _) = issue(&d, json!({"budget": 100 * k as u64, "level": "L5"}));
        *voucher.lock().unwrap() = id.clone();
        granted.store(0, Ordering::SeqCst);
        barrier.wait();
        barrier.wait();
        assert_eq!(granted.load(Ordering::SeqCst), k as u64, "round {round}");
        let v = voucher_view(&d, &id);
        assert_eq!(v["spent"], 100 * k as u64, "round {round}");
        assert_eq!(v["payments"], k as u64, "round {round}");
    }
    for h in handles {
        h.join().unwrap();
    }
    assert!(
        failures.lock().unwrap().is_empty(),
        "{:?}",
        failures.lock().unwrap()
    );
}

/// The daemon is SIGKILLed in the middle of a race; what was answered stays spent, and nothing
/// ever exceeds the budget.
#[test]
fn double_spend_survives_sigkill_mid_round() {
    const CLIENTS: usize = 64;
    const ROUNDS: usize = 12;
    const K: u64 = 40;
    let mut d = Daemon::start();
    d.provision_self("shop-bot");
    for round in 0..ROUNDS {
        let (id, _) = issue(&d, json!({"budget": 100 * K, "level": "L5"}));
        let answered = Arc::new(AtomicU64::new(0));
        let barrier = Arc::new(Barrier::new(CLIENTS));
        let handles: Vec<_> = (0..CLIENTS)
            .map(|n| {
                let mut c = d.agent();
                let (answered, barrier, id) = (answered.clone(), barrier.clone(), id.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    // Several attempts each, so the kill lands while calls are in flight.
                    for i in 0..4 {
                        match pay(&mut c, &id, 100, &format!("k{round}-{n}-{i}"), json!({})) {
                            Ok(v) if v["status"] == "authorized" => {
                                answered.fetch_add(1, Ordering::SeqCst);
                            }
                            Ok(v) => panic!("{v}"),
                            Err(ClientError::Remote(e))
                                if e.error.reason() == "budget_exhausted" => {}
                            Err(_) => return, // the daemon died under us
                        }
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(5 + (round as u64 * 7) % 40));
        d.kill();
        for h in handles {
            h.join().unwrap();
        }
        d.spawn();
        let v = voucher_view(&d, &id);
        let spent = v["spent"].as_u64().unwrap();
        let answered = answered.load(Ordering::SeqCst);
        assert!(spent <= 100 * K, "round {round}: spent {spent} over budget");
        assert!(
            spent >= 100 * answered,
            "round {round}: {answered} answered but only {spent} durable"
        );
        assert_eq!(
            v["payments"].as_u64().unwrap() * 100,
            spent,
            "round {round}"
        );
        // Finish the round after the restart: the total is then exactly the budget.
        let mut c = d.agent();
        let mut i = 0;
        while reason(pay(
            &mut c,
            &id,
            100,
            &format!("after{round}-{i}"),
            json!({}),
        )) == "authorized"
        {
            i += 1;
        }
        assert_eq!(voucher_view(&d, &id)["spent"], 100 * K, "round {round}");
    }
}

/// Hammers payments from many threads; `stop` is called once the load runs, and the test checks
/// that nothing is signed after it returns.
fn nothing_signed_after(d: &Daemon, voucher: &str, stop: impl FnOnce()) {
    let running = Arc::new(AtomicBool::new(true));
    let acked = Arc::new(AtomicBool::new(false));
    let late = Arc::new(AtomicU64::new(0));
    let before = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..16)
        .map(|n| {
            let mut c = d.agent();
            let (running, acked, late, before) =
                (running.clone(), acked.clone(), late.clone(), before.clone());
            let voucher = voucher.to_string();
            std::thread::spawn(move || {
                let mut i = 0;
                while running.load(Ordering::SeqCst) {
                    let sent_after_ack = acked.load(Ordering::SeqCst);
                    let r = pay(&mut c, &voucher, 1, &format!("load-{n}-{i}"), json!({}));
                    if matches!(&r, Ok(v) if v["status"] == "authorized") {
                        if sent_after_ack {
                            late.fetch_add(1, Ordering::SeqCst);
                        } else {
                            before.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    i += 1;
                }
            })
        })
        .collect();
    let t = Instant::now();
    while before.load(Ordering::SeqCst) < 200 && t.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(10));
    }
    stop();
    acked.store(true, Ordering::SeqCst);
    let spent_at_ack = voucher_view(d, voucher)["spent"].as_u64().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    running.store(false, Ordering::SeqCst);
    for h in handles {
        h.join().unwrap();
    }
    assert!(before.load(Ordering::SeqCst) >= 200, "the load did run");
    assert_eq!(
        late.load(Ordering::SeqCst),
        0,
        "authorizations after the acknowledgement"
    );
    assert_eq!(
        voucher_view(d, voucher)["spent"].as_u64().unwrap(),
        spent_at_ack,
        "spending moved after the acknowledgement"
    );
}

#[test]
fn revoke_and_freeze_under_load_leave_no_window() {
    let d = Daemon::start();
    d.provision_self("shop-bot");
    let (v, _) = issue(&d, json!({"budget": 1_000_000_000u64, "level": "L5"}));
    nothing_signed_after(&d, &v, || {
        d.admin()
            .call(Method::AdminVoucherRevoke, json!({"voucher": v}))
            .unwrap();
    });
    assert_eq!(
        reason(pay(&mut d.agent(), &v, 1, "after", json!({}))),
        "voucher_revoked"
    );

    let (w, _) = issue(&d, json!({"budget": 1_000_000_000u64, "level": "L5"}));
    nothing_signed_after(&d, &w, || {
        d.admin()
            .call(Method::AdminAgentFreeze, json!({"agent": "shop-bot"}))
            .unwrap();
    });
    let e = remote_err(pay(&mut d.agent(), &w, 1, "frozen", json!({})));
    assert_eq!(e.error.reason(), "agent_frozen");
    let frozen = d
        .admin()
        .call(
            Method::AdminPaymentList,
            json!({"voucher": w, "status": "denied", "limit": 100000}),
        )
        .unwrap();
    assert!(
        frozen["payments"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["reason"] == "agent_frozen"),
        "a frozen agent's attempt is recorded"
    );
    d.admin()
        .call(Method::AdminAgentUnfreeze, json!({"agent": "shop-bot"}))
        .unwrap();
    assert_eq!(
        reason(pay(&mut d.agent(), &w, 1, "thawed", json!({}))),
        "authorized"
    );
}

#[test]
fn l2_holds_for_a_human_confirm_and_reject() {
    let d = Daemon::start();
    d.provision_self("shop-bot");
    let issuer = issuer_key(&d);
    let (v, _) = issue(&d, json!({"level": "L2", "budget": 1000}));
    let mut c = d.agent();
    let held = pay(&mut c, &v, 600, "h1", json!({})).unwrap();
    assert_eq!(held["status"], "pending_confirmation");
    let decision = held["decision"].as_str().unwrap().to_string();
    assert_eq!(voucher_view(&d, &v)["spent"], 600, "the amount is held");
    assert_eq!(
        reason(pay(&mut c, &v, 500, "h2", json!({}))),
        "budget_exhausted",
        "a hold counts against the budget"
    );
    let pending = d.arictl(&["payment", "list", "--status", "pending"]);
    assert!(pending.1.contains(&decision), "{pending:?}");

    // The agent waits; the operator confirms through arictl.
    let waiter = {
        let mut c = d.agent();
        let decision = decision.clone();
        std::thread::spawn(move || {
            c.call(
                Method::PaymentStatus,
                json!({"decision": decision, "wait_ms": 20000}),
            )
            .unwrap()
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let (code, out, err) = d.arictl(&["payment", "confirm", &decision]);
    assert_eq!(code, Some(0), "{out}{err}");
    let done = waiter.join().unwrap();
    assert_eq!(done["status"], "authorized");
    let checked = ari::payment::verify(&receipt(&done), &[issuer], None, now()).unwrap();
    assert!(checked.claims.confirmed);
    assert_eq!(checked.claims.amount, 600);
    let again = remote_err(
        d.admin()
            .call(Method::AdminPaymentConfirm, json!({"decision": decision})),
    );
    assert_eq!(again.error.reason(), "invalid_state");

    // Reject: the amount comes back.
    let held = pay(&mut c, &v, 300, "h3", json!({})).unwrap();
    let decision = held["decision"].as_str().unwrap().to_string();
    assert_eq!(voucher_view(&d, &v)["spent"], 900);
    let (code, out, _) = d.arictl(&["payment", "reject", &decision, "--note", "not today"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("rejected_by_operator"), "{out}");
    assert_eq!(voucher_view(&d, &v)["spent"], 600);
    let status = c
        .call(Method::PaymentStatus, json!({"decision": decision}))
        .unwrap();
    assert_eq!(status["status"], "denied");
    assert_eq!(status["reason"], "rejected_by_operator");

    // A hold on a voucher revoked before confirmation is denied, not signed.
    let held = pay(&mut c, &v, 100, "h4", json!({})).unwrap();
    d.admin()
        .call(Method::AdminVoucherRevoke, json!({"voucher": v}))
        .unwrap();
    let e = remote_err(d.admin().call(
        Method::AdminPaymentConfirm,
        json!({"decision": held["decision"]}),
    ));
    assert_eq!(e.error.reason(), "voucher_revoked");
    assert_eq!(voucher_view(&d, &v)["spent"], 600);
}

#[test]
fn overdue_reports_block_and_refunds_restore() {
    let d = Daemon::start();
    d.provision_self("shop-bot");
    let (v, _) = issue(
        &d,
        json!({"level": "L4", "budget": 1000, "report_within_s": 1}),
    );
    let mut c = d.agent();
    let a = pay(&mut c, &v, 400, "o1", json!({})).unwrap();
    let first = a["decision"].as_str().unwrap().to_string();
    assert!(a["authorization"].is_string());
    std::thread::sleep(Duration::from_millis(2200));
    assert_eq!(
        reason(pay(&mut c, &v, 1, "o2", json!({}))),
        "report_overdue"
    );
    let r = c
        .call(
            Method::PaymentReport,
            json!({"decision": first, "outcome": "succeeded", "reference": "psp-1"}),
        )
        .unwrap();
    assert_eq!(r["outcome"], "succeeded");
    let b = pay(&mut c, &v, 600, "o3", json!({})).unwrap();
    assert_eq!(voucher_view(&d, &v)["spent"], 1000);
    assert_eq!(
        reason(pay(&mut c, &v, 1, "o4", json!({}))),
        "budget_exhausted"
    );
    // Refund the first and fail the second: the budget comes back.
    let (code, out, err) = d.arictl(&["payment", "report", &first, "--outcome", "refunded"]);
    assert_eq!(code, Some(2), "arictl is not the agent: {out}{err}");
    c.call(
        Method::PaymentReport,
        json!({"decision": first, "outcome": "refunded"}),
    )
    .unwrap();
    assert_eq!(voucher_view(&d, &v)["spent"], 600);
    c.call(
        Method::PaymentReport,
        json!({"decision": b["decision"], "outcome": "failed"}),
    )
    .unwrap();
    let view = voucher_view(&d, &v);
    assert_eq!(view["spent"], 0);
    assert_eq!(
        view["payments"], 1,
        "a refund keeps the count, a failure gives it back"
    );
    let twice = remote_err(c.call(
        Method::PaymentReport,
        json!({"decision": first, "outcome": "failed"}),
    ));
    assert_eq!(twice.error.reason(), "invalid_state");
    assert_eq!(reason(pay(&mut c, &v, 1000, "o5", json!({}))), "authorized");
}

#[test]
fn delegation_narrows_reserves_and_debits_the_chain() {
    let d = Daemon::start();
    d.provision_self("shop-bot");
    // The child agent is arictl itself: same uid, another executable.
    let arictl_digest = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(std::fs::read(ARICTL).unwrap()))
    };
    d.admin()
        .call(
            Method::AdminAgentProvision,
            json!({"agent": "child-bot", "user": "alice@example.com", "uid": common::uid(), "exe_sha256": arictl_digest}),
        )
        .unwrap();
    let issuer = issuer_key(&d);
    let (parent, _parent_compact) = issue(
        &d,
        json!({"level": "L4", "max_amount": 500, "budget": 1000, "payees": ["shop.example", "cafe.example"]}),
    );
    let mut c = d.agent();
    // The child's limits as its open mandate writes them (budgets in yuan, as AP2 reads them).
    let limits = |level: &str, max: u64, budget: f64, payee: &str| {
        json!({
            "a2p2": {"autonomy_level": level},
            "constraints": [
                {"type": "payment.amount_range", "currency": "CNY", "max": max},
                {"type": "payment.budget", "currency": "CNY", "max": budget},
                {"type": "payment.allowed_payees", "allowed": [{"id": payee, "name": payee}]},
            ],
        })
    };
    let narrow = limits("L3", 300, 6.0, "shop.example");
    let delegate = |c: &mut Client, limits: &Value| {
        let mut params = json!({"voucher": parent, "agent": "child-bot"});
        params
            .as_object_mut()
            .unwrap()
            .extend(limits.as_object().unwrap().clone());
        c.call(Method::VoucherDelegate, params)
    };
    // Widening is refused: a higher level, a larger amount, a dropped constraint, a new payee.
    for (i, cs) in [
        limits("L5", 300, 6.0, "shop.example"),
        limits("L3", 501, 6.0, "shop.example"),
        limits("L3", 300, 6.0, "evil.example"),
    ]
    .into_iter()
    .enumerate()
    {
        assert_eq!(
            remote_err(delegate(&mut c, &cs)).error.reason(),
            "voucher_widens",
            "case {i}"
        );
    }
    let mut dropped = narrow.clone();
    dropped["constraints"].as_array_mut().unwrap().pop();
    assert_eq!(
        remote_err(delegate(&mut c, &dropped)).error.reason(),
        "voucher_widens"
    );

    let child = delegate(&mut c, &narrow).unwrap();
    let child_compact = child["voucher"].as_str().unwrap().to_string();
    assert_eq!(voucher_view(&d, &parent)["reserved"], 600);
    // Only 400 left to carve out or spend.
    let mut too_big = narrow.clone();
    too_big["constraints"][1]["max"] = json!(4.01);
    assert_eq!(
        remote_err(delegate(&mut c, &too_big)).error.reason(),
        "budget_exhausted"
    );
    assert_eq!(
        reason(pay(&mut c, &parent, 401, "p1", json!({}))),
        "budget_exhausted"
    );
    assert_eq!(
        reason(pay(&mut c, &parent, 400, "p2", json!({}))),
        "authorized"
    );

    // The holder of the parent cannot spend the child voucher.
    let e = remote_err(pay(&mut c, &child_compact, 1, "not-mine", json!({})));
    assert_eq!(e.error.reason(), "forbidden");

    // The child (arictl) pays; the whole chain is debited.
    let child_id = child["id"].as_str().unwrap().to_string();
    let (code, out, err) = d.arictl(&[
        "payment",
        "authorize",
        "--voucher",
        &child_id,
        "--amount",
        "250",
        "--currency",
        "CNY",
        "--payee",
        "shop.example",
        "--transaction-id",
        "child-1",
        "--aud",
        "psp.example",
        "--nonce",
        "child-nonce-1",
    ]);
    assert_eq!(code, Some(0), "{out}{err}");
    let paid: Value = serde_json::from_str(&out).unwrap();
    let (code, _, err) = d.arictl(&[
        "payment",
        "authorize",
        "--voucher",
        &child_id,
        "--amount",
        "250",
        "--currency",
        "CNY",
        "--payee",
        "cafe.example",
        "--transaction-id",
        "child-2",
        "--aud",
        "psp.example",
        "--nonce",
        "child-nonce-2",
    ]);
    assert_eq!(code, Some(2));
    assert!(err.contains("payee_not_allowed"), "{err}");
    let p = voucher_view(&d, &parent);
    assert_eq!(
        (p["spent"].as_u64(), p["reserved"].as_u64()),
        (Some(650), Some(350))
    );
    assert_eq!(voucher_view(&d, &child_id)["spent"], 250);

    // Offline: the receipt verifies with the issuer key alone, through both links.
    let checked = ari::payment::verify(&receipt(&paid), &[issuer], None, now()).unwrap();
    assert_eq!(checked.chain.len(), 2);
    assert_eq!(checked.claims.agent, "child-bot");
    assert_eq!(
        ari::voucher::verify_chain(&child_compact, &[issuer], now())
            .unwrap()
            .len(),
        2
    );

    // Revoking the child gives its unspent 350 back to the parent.
    d.admin()
        .call(Method::AdminVoucherRevoke, json!({"voucher": child_id}))
        .unwrap();
    assert_eq!(voucher_view(&d, &parent)["reserved"], 0);
    assert_eq!(
        reason(pay(&mut c, &parent, 350, "p3", json!({}))),
        "authorized"
    );

    // A revoked parent stops its delegations.
    let child2 = delegate(&mut c, &limits("L3", 300, 0.0, "shop.example"));
    assert!(child2.is_ok(), "{child2:?}");
    d.admin()
        .call(Method::AdminVoucherRevoke, json!({"voucher": parent}))
        .unwrap();
    let (code, _, err) = d.arictl(&[
        "payment",
        "authorize",
        "--voucher",
        child2.unwrap()["id"].as_str().unwrap(),
        "--amount",
        "1",
        "--currency",
        "CNY",
        "--payee",
        "shop.example",
        "--transaction-id",
        "child-3",
        "--aud",
        "psp.example",
        "--nonce",
        "child-nonce-3",
    ]);
    assert_eq!(code, Some(2));
    assert!(err.contains("voucher_revoked"), "{err}");
}

fn external_voucher(sk: &SigningKey, pk: &PublicKey, agent: &Value, extra: Vec<Value>) -> String {
    let mut constraints = vec![
        json!({"type": "org.a2p2.autonomy_level", "level": "L3"}),
        json!({"type": "payment.budget", "currency": "CNY", "max": 1000}),
    ];
    constraints.extend(extra);
    let claims = VoucherClaims {
        iss: "https://wallet.example/alice".into(),
        sub: agent["user"].as_str().unwrap().into(),
        iat: now(),
        nbf: now() - 5,
        exp: now() + 3600,
        jti: format!("ext-{}", constraints.len()),
        vct: VOUCHER_VCT.into(),
        agent: agent["agent"].as_str().unwrap().into(),
        cnf: Confirmation {
            jwk: serde_json::from_value(agent["key"]["jwk"].clone()).unwrap(),
        },
        parent: None,
        constraints: constraints
            .into_iter()
            .map(|c| serde_json::from_value(c).unwrap())
            .collect(),
        status: None,
    };
    let mut n = 0;
    let mut salt = || {
        n += 1;
        format!("external-salt-{n}")
    };
    let draft = VoucherDraft::root(&claims, &pk.thumbprint(), &mut salt).unwrap();
    let sig: Signature = sk.sign_prehash(&draft.digest()).unwrap();
    draft.finish(&sig.to_bytes().into())
}

#[test]
fn external_issuers_unknown_constraints_and_offline_checks() {
    let d = Daemon::start();
    let agent = d.provision_self("shop-bot");
    let sk = SigningKey::from_slice(&[0x42; 32]).unwrap();
    let pk = PublicKey::from_sec1(sk.verifying_key().to_sec1_point(false).as_bytes()).unwrap();
    let voucher = external_voucher(&sk, &pk, &agent, vec![]);
    let mut c = d.agent();
    assert_eq!(
        remote_err(pay(&mut c, &voucher, 1, "u1", json!({})))
            .error
            .reason(),
        "untrusted_voucher",
        "not before its issuer is registered"
    );
    let jwk_file = d.dir.join("wallet.jwk");
    std::fs::write(&jwk_file, serde_json::to_string(&pk.to_jwk()).unwrap()).unwrap();
    let (code, out, err) = d.arictl(&[
        "issuer",
        "add",
        "alice-wallet",
        "--jwk",
        jwk_file.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{out}{err}");
    let (code, _, _) = d.arictl(&[
        "issuer",
        "add",
        "again",
        "--jwk",
        jwk_file.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(2), "the same key twice");
    let paid = pay(&mut c, &voucher, 250, "u2", json!({})).unwrap();
    assert_eq!(paid["status"], "authorized");
    let issuer = issuer_key(&d);
    ari::payment::verify(&receipt(&paid), &[pk], None, now()).unwrap();
    assert!(
        ari::payment::verify(&receipt(&paid), &[issuer], None, now()).is_err(),
        "the daemon's key did not sign this chain"
    );

    // A constraint nobody here understands: the voucher registers, every payment fails and
    // the failure is recorded; offline verification refuses it outright.
    let odd = external_voucher(
        &sk,
        &pk,
        &agent,
        vec![json!({"type": "com.example.moon_phase", "phase": "full"})],
    );
    let odd_file = d.dir.join("odd.txt");
    std::fs::write(&odd_file, &odd).unwrap();
    let (code, out, err) = d.arictl(&["voucher", "import", odd_file.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(
        reason(pay(&mut c, &odd, 1, "u3", json!({}))),
        "unknown_constraint"
    );
    let wallet_file = d.dir.join("wallet.jwk");
    let (code, _, err) = d.arictl(&[
        "verify",
        "voucher",
        "--trust",
        wallet_file.to_str().unwrap(),
        odd_file.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1));
    assert!(err.contains("com.example.moon_phase"), "{err}");

    // Offline: the daemon's own voucher and a payment against it verify under its issuer key
    // (the status list's part is tests/daemon/status.rs).
    let (_, own_compact) = issue(&d, json!({"budget": 100}));
    let own = own_compact.clone();
    let before = pay(&mut c, &own, 10, "rv1", json!({})).unwrap();
    let issuer_file = d.dir.join("issuer.jwk");
    std::fs::write(
        &issuer_file,
        serde_json::to_string(&issuer.to_jwk()).unwrap(),
    )
    .unwrap();
    let voucher_file = d.dir.join("voucher.txt");
    std::fs::write(&voucher_file, &own_compact).unwrap();
    let (code, _, _) = d.arictl(&[
        "verify",
        "voucher",
        "--trust",
        issuer_file.to_str().unwrap(),
        voucher_file.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0));
    let receipt_file = d.dir.join("receipt.json");
    std::fs::write(&receipt_file, before.to_string()).unwrap();
    let (code, _, err) = d.arictl(&[
        "verify",
        "payment",
        "--trust",
        issuer_file.to_str().unwrap(),
        receipt_file.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    // A tampered receipt names the failed check.
    let mut tampered = before.clone();
    tampered["attestation"] = json!(ari::jose::b64url(b"{}"));
    std::fs::write(&receipt_file, tampered.to_string()).unwrap();
    let (code, _, err) = d.arictl(&[
        "verify",
        "payment",
        "--trust",
        issuer_file.to_str().unwrap(),
        receipt_file.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1));
    assert!(err.contains("attestation"), "{err}");
    // Too late: the authorization's short expiry is checked.
    std::fs::write(&receipt_file, before.to_string()).unwrap();
    let late = (now() + 3600).to_string();
    let (code, _, err) = d.arictl(&[
        "verify",
        "payment",
        "--trust",
        issuer_file.to_str().unwrap(),
        "--at",
        &late,
        receipt_file.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1));
    assert!(err.contains("expiry"), "{err}");
}

/// An independent JOSE implementation (Python PyJWT with `cryptography`) verifies a voucher and
/// an authorization with the exported JWKs.
#[test]
fn pyjwt_verifies_a_voucher_and_an_authorization() {
    let d = Daemon::start();
    let agent = d.provision_self("shop-bot");
    let (v, compact) = issue(&d, json!({"budget": 1000, "payees": ["shop.example"]}));
    let paid = pay(&mut d.agent(), &v, 120, "py1", json!({})).unwrap();
    let issuer = issuer_key(&d);
    let dir = d.dir.clone();
    std::fs::write(
        dir.join("issuer.jwk"),
        serde_json::to_string(&issuer.to_jwk()).unwrap(),
    )
    .unwrap();
    std::fs::write(dir.join("agent.jwk"), agent["key"]["jwk"].to_string()).unwrap();
    std::fs::write(dir.join("voucher.txt"), &compact).unwrap();
    std::fs::write(
        dir.join("authorization.jwt"),
        paid["authorization"].as_str().unwrap(),
    )
    .unwrap();
    let stdout = common::pyjwt_check("jose_check.py", &[&dir]);
    assert!(stdout.contains("voucher ok shop-bot"), "{stdout}");
    assert!(stdout.contains("authorization ok 120 CNY"), "{stdout}");
}
