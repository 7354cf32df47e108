//! What an operator reads: `arictl voucher list` and `arictl spending` on a real daemon's
//! figures (several currencies, an L2 hold, an expired voucher), compared with snapshots once
//! the ids and clock times are masked; and `arictl watch`, which must show a payment, a denial
//! and a freeze within a second of each, and carry on across a daemon restart.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::common::{ARICTL, Daemon, pay};
use ari::protocol::Method;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn issue(d: &Daemon, args: &[&str]) -> String {
    let mut all = vec!["voucher", "issue", "--agent", "shopper", "--json"];
    all.extend_from_slice(args);
    let (code, out, err) = d.arictl(&all);
    assert_eq!(code, Some(0), "voucher issue {args:?}: {err}");
    serde_json::from_str::<Value>(&out).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn pay_in(c: &mut ari::client::Client, voucher: &str, amount: u64, currency: &str) -> Value {
    c.call(
        Method::PaymentAuthorize,
        json!({
            "voucher": voucher,
            "payment": {"amount": amount, "currency": currency, "payee": "shop.example",
                        "transaction_id": format!("tx-{voucher}-{amount}")},
            "aud": "psp.example",
            "nonce": "nonce-views-0000",
        }),
    )
    .unwrap()
}

/// `arictl` with the daemon's sockets, in UTC.
fn arictl_utc(d: &Daemon, args: &[&str]) -> String {
    let out = Command::new(ARICTL)
        .env("ARI_ADMIN_SOCKET", d.admin_path())
        .env("TZ", "UTC")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "arictl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `text` with each id replaced by its name, padded to the id's width so the columns stay as
/// they were, and every local time (with how far it is from now) replaced by `<time>`.
fn masked(text: &str, names: &[(&str, &str)]) -> String {
    let mut out = text.to_string();
    for (id, name) in names {
        out = out.replace(id, &format!("{name:<width$}", width = id.len()));
    }
    out.lines()
        .map(|line| {
            let mut line = line.to_string();
            while let Some(at) = line.find(" UTC") {
                let start = at - "2026-12-07 03:00".len();
                let end = line[at..]
                    .find(')')
                    .map_or(at + 4, |close| at + close + 1)
                    .min(line.len());
                let end = if line[at..].starts_with(" UTC (") {
                    end
                } else {
                    at + 4
                };
                line.replace_range(start..end, "<time>");
            }
            line.trim_end().to_string() + "\n"
        })
        .collect()
}

fn snapshot(name: &str, got: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(name);
    if std::env::var_os("ARI_UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, got).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        got, want,
        "{name} changed; look at it, then ARI_UPDATE_SNAPSHOTS=1 to accept"
    );
}

#[test]
fn the_views_show_each_vouchers_money_in_its_currency_with_holds_and_expiry() {
    let d = Daemon::start();
    d.provision_self("shopper");
    let l3 = issue(
        &d,
        &[
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
            "--expires",
            "1h",
        ],
    );
    let l2 = issue(
        &d,
        &[
            "--level",
            "L2",
            "--currency",
            "CNY",
            "--max-amount",
            "5000",
            "--budget",
            "10000",
            "--payee",
            "shop.example",
            "--expires",
            "1h",
        ],
    );
    let jpy = issue(
        &d,
        &[
            "--level",
            "L4",
            "--currency",
            "JPY",
            "--max-amount",
            "50000",
            "--budget",
            "100000",
            "--payee",
            "shop.example",
            "--expires",
            "1h",
        ],
    );
    let issued = Instant::now();
    let old = issue(
        &d,
        &[
            "--level",
            "L3",
            "--currency",
            "EUR",
            "--max-amount",
            "500",
            "--budget",
            "5000",
            "--payee",
            "shop.example",
            "--expires",
            "6s",
        ],
    );
    let mut c = d.agent();
    assert_eq!(pay_in(&mut c, &l3, 3_750, "CNY")["status"], "authorized");
    assert_eq!(
        pay_in(&mut c, &l2, 1_200, "CNY")["status"],
        "pending_confirmation"
    );
    assert_eq!(pay_in(&mut c, &jpy, 5_000, "JPY")["status"], "authorized");
    assert_eq!(pay_in(&mut c, &old, 499, "EUR")["status"], "authorized");
    // Over the amount range: a denial, counted by its reason.
    assert!(pay(&mut c, &l3, 9_999, "too-much").is_err());
    // Past the EUR voucher's end (whole seconds, so a little more than six).
    std::thread::sleep(
        (issued + Duration::from_millis(7_100)).saturating_duration_since(Instant::now()),
    );

    let s: Value = serde_json::from_str(&arictl_utc(&d, &["spending", "--json"])).unwrap();
    let v = |id: &str| {
        s["vouchers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(v(&l3)["spent"], 3_750);
    assert_eq!(v(&l3)["remaining"], 16_250);
    assert_eq!(v(&l2)["held"], 1_200, "an L2 payment is held, not spent");
    assert_eq!(v(&l2)["spent"], 0);
    assert_eq!(v(&l2)["remaining"], 8_800);
    assert_eq!(v(&old)["state"], "expired");
    assert_eq!(v(&jpy)["currency"], "JPY");
    let shopper = &s["agents"][0];
    assert_eq!(shopper["pending"], 1);
    assert_eq!(shopper["denials"]["amount_out_of_range"], 1, "{shopper}");
    let cny = shopper["amounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["currency"] == "CNY")
        .unwrap();
    assert_eq!(
        (cny["today"].as_u64(), cny["held"].as_u64()),
        (Some(3_750), Some(1_200))
    );
    assert_eq!(s["users"][0]["id"], "alice@example.com");

    let names = [
        (l3.as_str(), "l3-cny"),
        (l2.as_str(), "l2-cny"),
        (jpy.as_str(), "l4-jpy"),
        (old.as_str(), "expired-eur"),
    ];
    let list = arictl_utc(&d, &["voucher", "list"]);
    assert!(
        list.contains("5,000 JPY") && list.contains("12.00 CNY"),
        "{list}"
    );
    snapshot("voucher-list-live.txt", &masked(&list, &names));
    snapshot(
        "spending-live.txt",
        &masked(&arictl_utc(&d, &["spending"]), &names),
    );
}

/// `arictl watch` in the background, its lines sent to a channel.
struct Watch {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Watch {
    fn start(d: &Daemon) -> Self {
        let mut child = Command::new(ARICTL)
            .env("ARI_ADMIN_SOCKET", d.admin_path())
            .args(["watch"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines }
    }

    /// The next line that contains `what`, within a second of `since`.
    fn within_a_second(&self, since: Instant, what: &str) -> String {
        let deadline = since + Duration::from_secs(1);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(what) => return line,
                Ok(_) => {}
                Err(_) => panic!("watch showed no {what:?} within a second"),
            }
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn watch_shows_a_payment_a_denial_and_a_freeze_within_a_second_across_a_restart() {
    let mut d = Daemon::start();
    d.provision_self("shopper");
    let voucher = issue(
        &d,
        &[
            "--level",
            "L3",
            "--currency",
            "CNY",
            "--max-amount",
            "5000",
            "--expires",
            "1h",
        ],
    );
    let watch = Watch::start(&d);
    // The watch starts at the log's end: give it the moment to learn where that is.
    std::thread::sleep(Duration::from_millis(500));
    let mut c = d.agent();

    pay(&mut c, &voucher, 1_000, "w1").unwrap();
    let line = watch.within_a_second(Instant::now(), "authorized 10.00 CNY to shop.example");
    assert!(line.contains("shopper"), "{line}");
    assert!(pay(&mut c, &voucher, 9_000, "w2").is_err());
    watch.within_a_second(
        Instant::now(),
        "denied 90.00 CNY to shop.example: amount_out_of_range",
    );
    d.admin()
        .call(Method::AdminAgentFreeze, json!({"agent": "shopper"}))
        .unwrap();
    watch.within_a_second(Instant::now(), "shopper frozen");

    // The daemon goes away and comes back; the watch carries on by itself.
    assert!(d.stop());
    d.spawn();
    d.admin()
        .call(Method::AdminAgentUnfreeze, json!({"agent": "shopper"}))
        .unwrap();
    watch.within_a_second(Instant::now(), "shopper unfrozen");
    let mut c = d.agent();
    pay(&mut c, &voucher, 2_000, "w3").unwrap();
    watch.within_a_second(Instant::now(), "authorized 20.00 CNY");
    assert!(pay(&mut c, &voucher, 8_000, "w4").is_err());
    watch.within_a_second(Instant::now(), "denied 80.00 CNY");
    d.admin()
        .call(Method::AdminAgentFreeze, json!({"agent": "shopper"}))
        .unwrap();
    watch.within_a_second(Instant::now(), "shopper frozen");
}
