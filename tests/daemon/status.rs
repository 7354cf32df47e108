//! The voucher status list (IETF Token Status List) as a stranger sees it: the file the daemon
//! publishes, read back by `arictl verify` and independently by PyJWT and Python's zlib. A
//! revocation and a freeze must show in the published file within one second; nothing else is
//! timed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::common::{self, Daemon};
use ari::jose::{Jwk, PublicKey};
use ari::protocol::Method;
use ari::voucher::VoucherClaims;
use ari::voucher::status::{self, StatusType};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn now() -> i64 {
    ari::clock::unix_now()
}

/// The published token, where dev mode puts the publish directory (`<state_dir>/public`).
fn published(d: &Daemon) -> PathBuf {
    d.dir
        .join("state/public")
        .join(ari::service::STATUS_LIST_FILE)
}

fn issuer(d: &Daemon) -> PublicKey {
    let status = d.admin().call(Method::AdminStatus, json!({})).unwrap();
    serde_json::from_value::<Jwk>(status["daemon_keys"]["issuer"]["jwk"].clone())
        .unwrap()
        .to_public_key()
        .unwrap()
}

/// A voucher for shop-bot; its compact form and its claims.
fn issue(d: &Daemon) -> (String, VoucherClaims) {
    let v = d
        .admin()
        .call(
            Method::AdminVoucherIssue,
            json!({"agent": "shop-bot", "level": "L3", "currency": "CNY", "budget": 1000,
                   "expires_at": now() + 86_400}),
        )
        .unwrap();
    let compact = v["voucher"].as_str().unwrap().to_string();
    let status = d.admin().call(Method::AdminStatus, json!({})).unwrap();
    let issuer = serde_json::from_value::<Jwk>(status["daemon_keys"]["issuer"]["jwk"].clone())
        .unwrap()
        .to_public_key()
        .unwrap();
    let checks = ari::voucher::Checks {
        now: None,
        allow_unknown: false,
    };
    let claims = ari::voucher::verify_chain_with(&compact, &[issuer], checks)
        .unwrap()
        .remove(0);
    (compact, claims)
}

fn pay(d: &Daemon, voucher: &str, tx: &str) -> Value {
    d.agent()
        .call(
            Method::PaymentAuthorize,
            json!({
                "voucher": voucher,
                "payment": {"amount": 10, "currency": "CNY", "payee": "shop.example",
                            "transaction_id": tx},
                "aud": "psp.example",
                "nonce": format!("nonce-{tx}-0000"),
            }),
        )
        .unwrap()
}

/// Polls the published file, for at most one second, until every voucher reads as expected;
/// returns the token that did.
fn published_within_a_second(
    d: &Daemon,
    issuer: &PublicKey,
    expected: &[(&VoucherClaims, StatusType)],
) -> String {
    let deadline = Instant::now() + Duration::from_secs(1);
    let mut seen = String::from("no file");
    loop {
        if let Ok(text) = std::fs::read_to_string(published(d)) {
            let token = text.trim().to_string();
            let v = status::verify(&token, &[*issuer], Some(now())).unwrap();
            let statuses: Vec<StatusType> = expected
                .iter()
                .map(|(c, _)| {
                    v.status_of(&c.status.as_ref().unwrap().status_list)
                        .unwrap()
                })
                .collect();
            if statuses
                .iter()
                .zip(expected)
                .all(|(s, (_, want))| s == want)
            {
                return token;
            }
            seen = format!("{statuses:?}");
        }
        assert!(
            Instant::now() < deadline,
            "the published list does not read {:?} within 1 s: {seen}",
            expected.iter().map(|(_, s)| s).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// What PyJWT and zlib read for `voucher` in `token`.
fn python_reads(dir: &Path, token: &str, voucher: &str) -> String {
    let (t, v) = (dir.join("python-token.jwt"), dir.join("python-voucher.txt"));
    std::fs::write(&t, token).unwrap();
    std::fs::write(&v, voucher).unwrap();
    common::pyjwt_check("status_list_check.py", &[&t, &dir.join("issuer.jwk"), &v])
        .trim()
        .to_string()
}

/// `arictl verify payment --status-list` on a receipt; its exit code and stderr.
fn verify_payment(d: &Daemon, receipt: &Value, list: &Path) -> (Option<i32>, String) {
    let receipt_file = d.dir.join("receipt.json");
    std::fs::write(&receipt_file, receipt.to_string()).unwrap();
    // The same payment as a merchant holds it, its mandate chain alone: the same verdict.
    let chain_file = d.dir.join("mandate.txt");
    std::fs::write(&chain_file, receipt["mandate"].as_str().unwrap()).unwrap();
    let (chain_code, _, chain_err) = d.arictl(&[
        "verify",
        "payment",
        "--trust",
        d.dir.join("issuer.jwk").to_str().unwrap(),
        "--status-list",
        list.to_str().unwrap(),
        chain_file.to_str().unwrap(),
    ]);
    let file = receipt_file;
    let (code, _, err) = d.arictl(&[
        "verify",
        "payment",
        "--trust",
        d.dir.join("issuer.jwk").to_str().unwrap(),
        "--status-list",
        list.to_str().unwrap(),
        file.to_str().unwrap(),
    ]);
    assert_eq!(chain_code, code, "receipt: {err}; chain: {chain_err}");
    (code, err)
}

#[test]
fn revocations_and_freezes_are_published_and_refused_by_verifiers() {
    let d = Daemon::start();
    d.provision_self("shop-bot");
    let issuer = issuer(&d);
    std::fs::write(
        d.dir.join("issuer.jwk"),
        serde_json::to_string(&issuer.to_jwk()).unwrap(),
    )
    .unwrap();
    let (kept, kept_claims) = issue(&d);
    let (revoked, revoked_claims) = issue(&d);
    let (a, b) = (&kept_claims.status, &revoked_claims.status);
    let (a, b) = (
        &a.as_ref().unwrap().status_list,
        &b.as_ref().unwrap().status_list,
    );
    assert_ne!(a.idx, b.idx, "every voucher has a place of its own");
    assert_eq!(a.uri, b.uri);
    assert!(a.uri.ends_with("/status/vouchers"), "{}", a.uri);
    let paid_kept = pay(&d, &kept, "k1");
    let paid_revoked = pay(&d, &revoked, "r1");

    let token = published_within_a_second(
        &d,
        &issuer,
        &[
            (&kept_claims, StatusType::Valid),
            (&revoked_claims, StatusType::Valid),
        ],
    );
    assert_eq!(python_reads(&d.dir, &token, &revoked), "VALID");

    // Revoked: INVALID in the published file within a second, for Rust and Python readers.
    d.admin()
        .call(
            Method::AdminVoucherRevoke,
            json!({"voucher": revoked_claims.jti}),
        )
        .unwrap();
    let token = published_within_a_second(
        &d,
        &issuer,
        &[
            (&kept_claims, StatusType::Valid),
            (&revoked_claims, StatusType::Invalid),
        ],
    );
    assert_eq!(python_reads(&d.dir, &token, &revoked), "INVALID");
    assert_eq!(python_reads(&d.dir, &token, &kept), "VALID");

    // The verifier: the revoked voucher's payment fails on the published list, the other passes.
    let (code, err) = verify_payment(&d, &paid_revoked, &published(&d));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("voucher 0: its status is INVALID"), "{err}");
    let (code, err) = verify_payment(&d, &paid_kept, &published(&d));
    assert_eq!(code, Some(0), "{err}");
    // The operator's command prints the same kind of token.
    let (code, out, err) = d.arictl(&["voucher", "status-list"]);
    assert_eq!(code, Some(0), "{err}");
    let printed = d.dir.join("printed.jwt");
    std::fs::write(&printed, &out).unwrap();
    assert_eq!(verify_payment(&d, &paid_revoked, &printed).0, Some(1));
    assert_eq!(verify_payment(&d, &paid_kept, &printed).0, Some(0));
    // A list signed by a key the verifier does not trust is refused.
    let wallet = d.dir.join("wallet.jwk");
    let stranger = PublicKey::from_sec1(
        p256::ecdsa::SigningKey::from_slice(&[9; 32])
            .unwrap()
            .verifying_key()
            .to_sec1_point(false)
            .as_bytes(),
    )
    .unwrap();
    std::fs::write(&wallet, serde_json::to_string(&stranger.to_jwk()).unwrap()).unwrap();
    let receipt = d.dir.join("receipt.json");
    let (code, _, err) = d.arictl(&[
        "verify",
        "payment",
        "--trust",
        wallet.to_str().unwrap(),
        "--status-list",
        printed.to_str().unwrap(),
        receipt.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1));
    assert!(err.contains("not a trusted issuer"), "{err}");

    // Frozen: the agent's other voucher reads SUSPENDED; the revoked one stays INVALID.
    d.admin()
        .call(Method::AdminAgentFreeze, json!({"agent": "shop-bot"}))
        .unwrap();
    let token = published_within_a_second(
        &d,
        &issuer,
        &[
            (&kept_claims, StatusType::Suspended),
            (&revoked_claims, StatusType::Invalid),
        ],
    );
    assert_eq!(python_reads(&d.dir, &token, &kept), "SUSPENDED");
    let (code, err) = verify_payment(&d, &paid_kept, &published(&d));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("SUSPENDED"), "{err}");

    // Unfrozen: VALID again, except the revoked one.
    d.admin()
        .call(Method::AdminAgentUnfreeze, json!({"agent": "shop-bot"}))
        .unwrap();
    let token = published_within_a_second(
        &d,
        &issuer,
        &[
            (&kept_claims, StatusType::Valid),
            (&revoked_claims, StatusType::Invalid),
        ],
    );
    assert_eq!(python_reads(&d.dir, &token, &kept), "VALID");
    assert_eq!(python_reads(&d.dir, &token, &revoked), "INVALID");
}

#[test]
fn places_are_never_reused_across_restarts() {
    let mut d = Daemon::start();
    d.provision_self("shop-bot");
    let (_, first) = issue(&d);
    assert!(d.stop());
    d.spawn();
    let (_, second) = issue(&d);
    let idx = |c: &VoucherClaims| c.status.as_ref().unwrap().status_list.idx;
    assert!(
        idx(&second) > idx(&first),
        "{} then {}",
        idx(&first),
        idx(&second)
    );
    // Published again at start, and it holds the new place.
    let issuer = issuer(&d);
    published_within_a_second(
        &d,
        &issuer,
        &[(&first, StatusType::Valid), (&second, StatusType::Valid)],
    );
}
