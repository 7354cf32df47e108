//! Vouchers issued by the real daemon, signed by its issuer key in the token, checked offline.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::common;
use ari::protocol::Method;

use ari::jose::{Jwk, PublicKey};
use common::{Daemon, remote_err};
use serde_json::json;

fn far_future() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
        + 30 * 86_400
}

#[test]
fn issue_verify_list_show_revoke() {
    let d = Daemon::start();
    d.provision_self("shop-bot");
    let status = d.admin().call(Method::AdminStatus, json!({})).unwrap();
    let issuer: PublicKey =
        serde_json::from_value::<Jwk>(status["daemon_keys"]["issuer"]["jwk"].clone())
            .unwrap()
            .to_public_key()
            .unwrap();

    let issued = d
        .admin()
        .call(
            Method::AdminVoucherIssue,
            json!({"agent": "shop-bot", "level": "L3", "currency": "CNY", "max_amount": 5000, "budget": 20000,
                   "payees": ["shop.example"], "expires_at": far_future()}),
        )
        .unwrap();
    let compact = issued["voucher"].as_str().unwrap();
    assert!(compact.ends_with('~'));
    assert_eq!(issued["digest"], ari::voucher::digest(compact));
    let now = far_future() - 30 * 86_400;
    let claims =
        ari::voucher::verify_chain(compact, &[issuer], now).expect("verifies under the issuer key");
    let leaf = &claims[0];
    assert_eq!(leaf.agent, "shop-bot");
    assert_eq!(leaf.sub, "alice@example.com");
    let agent = d
        .admin()
        .call(Method::AdminAgentShow, json!({"agent": "shop-bot"}))
        .unwrap();
    assert_eq!(
        serde_json::to_value(&leaf.cnf.jwk).unwrap(),
        agent["key"]["jwk"],
        "bound to the agent's ARI key"
    );
    let kinds: Vec<&str> = leaf.constraints.iter().map(|c| c.kind()).collect();
    for k in [
        "org.a2p2.autonomy_level",
        "payment.amount_range",
        "payment.budget",
        "payment.allowed_payees",
    ] {
        assert!(kinds.contains(&k), "{k} in {kinds:?}");
    }
    // Another key is not trusted.
    assert!(ari::voucher::verify_chain(compact, &[agent_key(&agent)], now).is_err());

    let id = issued["id"].as_str().unwrap();
    let list = d
        .admin()
        .call(Method::AdminVoucherList, json!({"agent": "shop-bot"}))
        .unwrap();
    assert_eq!(list["vouchers"].as_array().unwrap().len(), 1);
    let by_digest = d
        .admin()
        .call(
            Method::AdminVoucherShow,
            json!({"voucher": issued["digest"]}),
        )
        .unwrap();
    assert_eq!(by_digest["id"], id);
    let revoked = d
        .admin()
        .call(Method::AdminVoucherRevoke, json!({"voucher": id}))
        .unwrap();
    assert_eq!(revoked["status"], "revoked");
    assert_eq!(
        d.admin()
            .call(Method::AdminVoucherShow, json!({"voucher": id}))
            .unwrap()["status"],
        "revoked"
    );
    let e = remote_err(
        d.admin()
            .call(Method::AdminVoucherShow, json!({"voucher": "nope"})),
    );
    assert_eq!(
        (e.error.code(), e.error.reason()),
        (-32015, "voucher_not_found")
    );
}

fn agent_key(agent: &serde_json::Value) -> PublicKey {
    serde_json::from_value::<Jwk>(agent["key"]["jwk"].clone())
        .unwrap()
        .to_public_key()
        .unwrap()
}

#[test]
fn bad_issue_requests_are_refused() {
    let d = Daemon::start();
    d.provision_self("bot");
    let base = json!({"agent": "bot", "level": "L3", "currency": "CNY", "max_amount": 100, "expires_at": far_future()});
    let with = |k: &str, v: serde_json::Value| {
        let mut p = base.clone();
        p[k] = v;
        p
    };
    let cases = [
        (
            "unknown agent",
            with("agent", json!("ghost")),
            "agent_not_found",
        ),
        ("bad level", with("level", json!("L9")), "invalid_params"),
        (
            "bad currency",
            with("currency", json!("yuan")),
            "invalid_params",
        ),
        (
            "negative amount",
            with("max_amount", json!(-5)),
            "invalid_params",
        ),
        (
            "already expired",
            with("expires_at", json!(1000)),
            "invalid_params",
        ),
        (
            "min above max",
            with("min_amount", json!(500)),
            "invalid_params",
        ),
        ("empty payee", with("payees", json!([""])), "invalid_params"),
        (
            "unknown member",
            with("colour", json!("red")),
            "invalid_params",
        ),
    ];
    for (name, params, reason) in cases {
        let e = remote_err(d.admin().call(Method::AdminVoucherIssue, params));
        assert_eq!(e.error.reason(), reason, "{name}: {}", e.message);
    }
    let mut no_limit = base.clone();
    no_limit.as_object_mut().unwrap().remove("max_amount");
    let e = remote_err(d.admin().call(Method::AdminVoucherIssue, no_limit));
    assert_eq!(
        e.error.reason(),
        "invalid_params",
        "a voucher without an amount limit: {}",
        e.message
    );
}

#[test]
fn arictl_issues_and_verifies_offline() {
    let d = Daemon::start();
    d.provision_self("bot");
    let arictl = |args: &[&str]| d.arictl(args);
    let (code, voucher, err) = arictl(&[
        "voucher",
        "issue",
        "--agent",
        "bot",
        "--level",
        "L3",
        "--currency",
        "CNY",
        "--max-amount",
        "5000",
        "--budget",
        "20000",
        "--payee",
        "shop.example",
        "--category",
        "books",
        "--expires",
        "7d",
        "--report-within",
        "1h",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let work = common::tempdir();
    let vfile = work.path().join("voucher.txt");
    std::fs::write(&vfile, &voucher).unwrap();
    let (code, issuer, _) = arictl(&["status", "--issuer-jwk"]);
    assert_eq!(code, Some(0));
    let ifile = work.path().join("issuer.jwk");
    std::fs::write(&ifile, issuer).unwrap();
    let (code, out, err) = arictl(&[
        "verify",
        "voucher",
        "--trust",
        ifile.to_str().unwrap(),
        vfile.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("voucher OK"), "{err}");
    assert!(out.contains("org.a2p2.report_within"), "{out}");
    // A voucher altered by one character fails.
    let mut bad = voucher.trim().to_string();
    bad.insert(bad.len() - 5, 'A');
    std::fs::write(&vfile, bad).unwrap();
    let (code, _, err) = arictl(&[
        "verify",
        "voucher",
        "--trust",
        ifile.to_str().unwrap(),
        vfile.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1), "{err}");
    let (code, list, _) = arictl(&["voucher", "list"]);
    assert_eq!(code, Some(0));
    assert!(list.contains("bot") && list.contains("active"), "{list}");
}

#[test]
fn amounts_beyond_what_the_ledger_holds_are_invalid_params_not_retryable() {
    let d = Daemon::start();
    d.provision_self("bot");
    for (field, value) in [
        ("budget", json!(1u64 << 63)),
        ("max_amount", json!(u64::MAX)),
        ("min_amount", json!(1u64 << 63)),
        ("report_within_s", json!(u64::MAX)),
    ] {
        let mut params = json!({"agent": "bot", "level": "L3", "currency": "CNY",
                                "max_amount": 100, "expires_at": far_future()});
        params[field] = value;
        let e = remote_err(d.admin().call(Method::AdminVoucherIssue, params));
        assert_eq!(e.error.code(), -32602, "{field}: {e:?}");
        assert!(
            !e.error.retryable(),
            "{field}: a wrong value is never worth retrying: {e:?}"
        );
    }
    // The largest amount the ledger holds is accepted for a payment; a budget, which AP2 writes
    // in the major unit as a JSON number, is exact up to 15 digits.
    d.admin()
        .call(
            Method::AdminVoucherIssue,
            json!({"agent": "bot", "level": "L3", "currency": "CNY", "max_amount": i64::MAX,
                   "expires_at": far_future()}),
        )
        .unwrap();
    let e = remote_err(d.admin().call(
        Method::AdminVoucherIssue,
        json!({"agent": "bot", "level": "L3", "currency": "CNY",
               "budget": 1_000_000_000_000_000u64, "expires_at": far_future()}),
    ));
    assert_eq!(e.error.code(), -32602, "{e:?}");
    d.admin()
        .call(
            Method::AdminVoucherIssue,
            json!({"agent": "bot", "level": "L3", "currency": "CNY",
                   "budget": ari::voucher::constraint::MAX_BUDGET, "expires_at": far_future()}),
        )
        .unwrap();
}
