//! The publish directory, read by code nobody here wrote: the checkpoint's Ed25519 line by Go's
//! `golang.org/x/mod/sumdb/note`, the tiles and entry bundles by Go's `sumdb/tlog`; and the
//! witness client against a witness written in Go from the C2SP specs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::common::{Daemon, tlogcheck};
use ari::protocol::Method;
use serde_json::json;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Waits until the published checkpoint covers `size` entries; returns its path.
fn published(d: &Daemon, size: u64) -> PathBuf {
    let dir = d.dir.join("state/public");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let size_now = std::fs::read_to_string(dir.join("checkpoint"))
            .ok()
            .and_then(|n| n.lines().nth(1).and_then(|s| s.parse::<u64>().ok()));
        if size_now.is_some_and(|s| s >= size) {
            return dir;
        }
        assert!(
            Instant::now() < deadline,
            "no checkpoint of {size} entries published in 10 s (have {size_now:?})\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn vkeys(d: &Daemon) -> Vec<String> {
    let (code, out, err) = d.arictl(&["log", "vkey"]);
    assert_eq!(code, Some(0), "{err}");
    out.lines().map(str::to_string).collect()
}

fn check(args: &[&str], dir: &Path) -> (bool, String) {
    let mut a: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    a.insert(2, dir.as_os_str());
    tlogcheck(&a)
}

#[test]
fn go_reads_the_published_checkpoint_tiles_and_entries() {
    let d = Daemon::start();
    d.provision_self("shop-bot");
    let mut c = d.agent();
    // Past one full tile, so a level-1 tile and a full entry bundle exist too.
    let mut last = 0;
    for n in 0..300 {
        let r = c
            .call(
                Method::EvidenceRecord,
                json!({"kind": "step", "body": {"n": n}}),
            )
            .unwrap();
        last = r["index"].as_u64().unwrap();
    }
    let size = last + 1;
    let dir = published(&d, size);
    assert!(dir.join("tile/0/000").is_file(), "a full level-0 tile");
    assert!(
        dir.join("tile/entries/000").is_file(),
        "a full entry bundle"
    );
    assert!(dir.join("tile/1/000.p").is_dir(), "a partial level-1 tile");

    let keys = vkeys(&d);
    assert_eq!(keys.len(), 2, "{keys:?}");
    let (ed25519, ecdsa) = (&keys[0], &keys[1]);
    let origin = std::fs::read_to_string(dir.join("checkpoint")).unwrap();
    let origin = origin.lines().next().unwrap();
    assert!(ed25519.starts_with(&format!("{origin}+")), "{ed25519}");

    // The checkpoint verifies under the Ed25519 key with Go's note package.
    let cp = dir.join("checkpoint");
    let (ok, out) = tlogcheck(&[OsStr::new("note"), OsStr::new(ed25519), cp.as_os_str()]);
    assert!(ok, "{out}");
    let name_and_id = ed25519.splitn(3, '+').take(2).collect::<Vec<_>>().join("+");
    assert!(out.contains(&name_and_id), "{out}");
    // Go's note package has no ECDSA: the other line is someone else's to check.
    let (ok, out) = tlogcheck(&[OsStr::new("note"), OsStr::new(ecdsa), cp.as_os_str()]);
    assert!(!ok && out.contains("verifier key"), "{out}");

    // An edited checkpoint does not verify.
    let work = crate::common::tempdir();
    let text = std::fs::read_to_string(&cp).unwrap();
    let edited = work.path().join("checkpoint");
    let other_size = text.replacen(&format!("\n{}\n", text.lines().nth(1).unwrap()), "\n1\n", 1);
    std::fs::write(&edited, other_size).unwrap();
    let (ok, out) = tlogcheck(&[OsStr::new("note"), OsStr::new(ed25519), edited.as_os_str()]);
    assert!(!ok && out.contains("invalid signature"), "{out}");

    // Entries at the edges of tiles are proven in the signed tree from the tiles alone.
    let published_size: u64 = text.lines().nth(1).unwrap().parse().unwrap();
    for index in [0, 1, 255, 256, published_size - 1] {
        let i = index.to_string();
        let (ok, out) = check(&["inclusion", ed25519, &i], &dir);
        assert!(ok, "entry {index}: {out}");
        assert!(
            out.contains(&format!("entry {index} is in {origin}")),
            "{out}"
        );
    }
    let (ok, out) = check(&["inclusion", ed25519, &published_size.to_string()], &dir);
    assert!(!ok, "an entry past the tree: {out}");

    // The bundle holds the very bytes the daemon serves for the entry.
    let served = d
        .admin()
        .call(Method::EvidenceEntry, json!({"index": 256}))
        .unwrap();
    let entries = ari::evidence::tiles::unbundle(
        &std::fs::read(
            std::fs::read_dir(dir.join("tile/entries/001.p"))
                .unwrap()
                .next()
                .unwrap()
                .unwrap()
                .path(),
        )
        .unwrap(),
    )
    .unwrap()
    .into_iter()
    .map(|e| e.to_vec())
    .collect::<Vec<_>>();
    assert_eq!(
        entries[0],
        served["entry"].as_str().unwrap().as_bytes(),
        "entry 256 is the first of the second bundle"
    );

    // A tile altered on the mirror is caught against the signed root.
    let copy = work.path().join("mirror");
    copy_tree(&dir, &copy);
    let tile = copy.join("tile/0/000");
    let mut bytes = std::fs::read(&tile).unwrap();
    bytes[5] ^= 1;
    std::fs::write(&tile, bytes).unwrap();
    let (ok, out) = check(&["inclusion", ed25519, "3"], &copy);
    assert!(!ok, "a tampered tile: {out}");
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// A running `tests/go/witness`: its URL and cosigning vkey; killed on drop.
struct Witness {
    child: std::process::Child,
    url: String,
    vkey: String,
    log: PathBuf,
}

impl Witness {
    /// Starts one named `name` that trusts the log key written to `log_vkey` (later).
    fn start(name: &str, seed: u8, log_vkey: &Path, dir: &Path) -> Self {
        use std::io::BufRead;
        let log = dir.join(format!("{}.log", name.replace('/', "_")));
        let mut child = std::process::Command::new(crate::common::go_witness())
            .arg(name)
            .arg(hex::encode([seed; 32]))
            .arg(log_vkey)
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let (mut url, mut vkey) = (String::new(), String::new());
        out.read_line(&mut url).unwrap();
        out.read_line(&mut vkey).unwrap();
        Self {
            child,
            url: url.trim().strip_prefix("listening ").unwrap().to_string(),
            vkey: vkey.trim().strip_prefix("vkey ").unwrap().to_string(),
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Posts an `add-checkpoint` body as any client could: status and body.
    fn post(&self, body: &str) -> (u16, String) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut r = agent
            .post(format!("{}/add-checkpoint", self.url))
            .send(body)
            .unwrap();
        (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
    }
}

impl Drop for Witness {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The published checkpoint once it covers `size` and carries a cosignature the witness's key
/// verifies (checked by `arictl verify checkpoint` with a quorum of one).
fn cosigned(d: &Daemon, size: u64, log_vkey: &str, w: &Witness) -> String {
    let dir = published(d, size);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (code, _, err) = d.arictl(&[
            "verify",
            "checkpoint",
            dir.join("checkpoint").to_str().unwrap(),
            "--log-vkey",
            log_vkey,
            "--witness",
            &w.vkey,
        ]);
        let note = std::fs::read_to_string(dir.join("checkpoint")).unwrap();
        let at: u64 = note.lines().nth(1).unwrap().parse().unwrap();
        if code == Some(0) && at >= size {
            assert!(err.contains("cosigned by witness.test/"), "{err}");
            return note;
        }
        assert!(
            Instant::now() < deadline,
            "no cosigned checkpoint of {size} in 10 s: {err}\nwitness: {}\ndaemon: {}",
            w.log(),
            d.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn record_n(d: &Daemon, n: usize) -> u64 {
    let mut c = d.agent();
    let mut last = 0;
    for i in 0..n {
        last = c
            .call(
                Method::EvidenceRecord,
                json!({"kind": "step", "body": {"i": i}}),
            )
            .unwrap()["index"]
            .as_u64()
            .unwrap();
    }
    last + 1
}

#[test]
fn witnesses_cosign_with_consistency_proofs_and_refuse_a_stale_checkpoint() {
    let work = crate::common::tempdir();
    let log_vkey_file = work.path().join("log.vkey");
    let w1 = Witness::start("witness.test/w1", 1, &log_vkey_file, work.path());
    let w2 = Witness::start("witness.test/w2", 2, &log_vkey_file, work.path());

    // W1 is configured: the daemon submits every new checkpoint to it.
    let mut d = Daemon::prepared();
    let config = d.dir.join("arid.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!(
            "{text}\n[[evidence.witnesses]]\nurl = \"{}\"\nvkey = \"{}\"\n",
            w1.url, w1.vkey
        ),
    )
    .unwrap();
    d.spawn();
    d.provision_self("shop-bot");
    let log_vkey = vkeys(&d)[0].clone();
    std::fs::write(&log_vkey_file, format!("{log_vkey}\n")).unwrap();

    // The first cosignature, then one across sizes with a consistency proof.
    let first = record_n(&d, 3);
    cosigned(&d, first, &log_vkey, &w1);
    let second = record_n(&d, 40);
    let note = cosigned(&d, second, &log_vkey, &w1);
    assert!(
        w1.log().lines().any(|l| l.starts_with("cosigned")
            && !l.contains("from 0,")
            && !l.contains(" 0 proof")),
        "no cosignature from a consistency proof: {}",
        w1.log()
    );
    // The ECDSA line still verifies next to the Ed25519 line and the cosignature.
    let ecdsa = vkeys(&d)[1].clone();
    let f = work.path().join("cp");
    std::fs::write(&f, &note).unwrap();
    let (code, _, err) = d.arictl(&[
        "verify",
        "checkpoint",
        f.to_str().unwrap(),
        "--log-vkey",
        &ecdsa,
    ]);
    assert_eq!(code, Some(0), "{err}");
    // A quorum the note does not meet is refused.
    let (code, _, err) = d.arictl(&[
        "verify",
        "checkpoint",
        f.to_str().unwrap(),
        "--log-vkey",
        &log_vkey,
        "--witness",
        &w1.vkey,
        "--witness",
        &w2.vkey,
        "--quorum",
        "2",
    ]);
    assert_ne!(code, Some(0));
    assert!(
        err.contains("1 of the 2 witness cosignatures required"),
        "{err}"
    );

    // W2 by hand: cosigns from nothing.
    let size = second.to_string();
    let (code, out, err) = d.arictl(&[
        "log",
        "witness",
        "--witness",
        &w2.url,
        "--vkey",
        &w2.vkey,
        "--size",
        &size,
    ]);
    assert_eq!(code, Some(0), "{err}\n{}", w2.log());
    assert!(
        err.contains(&format!("witness.test/w2 cosigned size {second}")),
        "{err}"
    );
    assert!(out.contains("\u{2014} witness.test/w2 "), "{out}");

    // Someone else moves W2 ahead (a newer checkpoint with the proof from the one it has)...
    let third = record_n(&d, 5);
    let newest = published(&d, third);
    let note3 = std::fs::read_to_string(newest.join("checkpoint")).unwrap();
    let third: u64 = note3.lines().nth(1).unwrap().parse().unwrap();
    let proof = d
        .admin()
        .call(
            Method::EvidenceConsistency,
            json!({"from": second, "to": third}),
        )
        .unwrap();
    let mut body = format!("old {second}\n");
    for h in proof["hashes"].as_array().unwrap() {
        let bytes = crate::common::hash(h);
        body.push_str(&<base64ct::Base64 as base64ct::Encoding>::encode_string(
            &bytes,
        ));
        body.push('\n');
    }
    body.push('\n');
    body.push_str(&note3);
    let (status, answer) = w2.post(&body);
    assert_eq!(status, 200, "{answer}");
    // ...so the daemon's checkpoint of `second` is stale to it: refused by the witness (409).
    let (code, _, err) = d.arictl(&[
        "log",
        "witness",
        "--witness",
        &w2.url,
        "--vkey",
        &w2.vkey,
        "--size",
        &size,
    ]);
    assert_ne!(code, Some(0));
    assert!(
        err.contains("witness_refused") || err.contains("stale"),
        "{err}"
    );
    assert!(err.contains(&format!("has cosigned size {third}")), "{err}");
    // A witness whose key does not match what it signs with is not believed.
    let mut wrong = w1.vkey.clone();
    wrong.replace_range(..w1.vkey.find('+').unwrap(), "witness.test/w2");
    let (code, _, err) = d.arictl(&["log", "witness", "--witness", &w2.url, "--vkey", &wrong]);
    assert_ne!(code, Some(0));
    assert!(err.contains("vkey") || err.contains("key ID"), "{err}");
    // The daemon still serves.
    record_n(&d, 1);
}

/// A voucher for shop-bot at `level`, budget 10,000 CNY, for an hour: its id.
fn issue(d: &Daemon, level: &str) -> String {
    d.admin()
        .call(
            Method::AdminVoucherIssue,
            json!({"agent": "shop-bot", "level": level, "currency": "CNY", "budget": 10_000,
                   "expires_at": ari::clock::unix_now() + 3600}),
        )
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn a_receipt_carries_a_tlog_proof_a_merchant_checks_offline() {
    let d = Daemon::start();
    d.provision_self("shop-bot");
    let voucher = issue(&d, "L5");
    let mut c = d.agent();
    let pay = |c: &mut ari::client::Client, voucher: &str, amount: u64, tx: &str, proof: bool| {
        c.call(
            Method::PaymentAuthorize,
            json!({
                "voucher": voucher,
                "payment": {"amount": amount, "currency": "CNY", "payee": "shop.example",
                            "transaction_id": tx},
                "aud": "psp.example",
                "nonce": format!("nonce-{tx}-0000"),
                "proof": proof,
            }),
        )
        .unwrap()
    };
    // Without asking, the answer does not wait for a checkpoint and has no proof.
    let quick = pay(&mut c, &voucher, 50, "tx-0", false);
    assert!(quick.get("tlog_proof").is_none(), "{quick}");
    let first = pay(&mut c, &voucher, 100, "tx-1", true);
    let second = pay(&mut c, &voucher, 200, "tx-2", true);
    let proof = first["tlog_proof"]
        .as_str()
        .expect("the receipt carries a tlog_proof");
    assert!(
        proof.starts_with("c2sp.org/tlog-proof@v1\nextra "),
        "{proof}"
    );
    assert!(
        proof.contains(&format!("\nindex {}\n", first["log_index"])),
        "{proof}"
    );

    let work = crate::common::tempdir();
    let status = d.admin().call(Method::AdminStatus, json!({})).unwrap();
    let issuer = work.path().join("issuer.jwk");
    std::fs::write(&issuer, status["daemon_keys"]["issuer"]["jwk"].to_string()).unwrap();
    let keys = vkeys(&d);
    let verify = |receipt: &serde_json::Value, vkey: &str| {
        let f = work.path().join("receipt.json");
        std::fs::write(&f, receipt.to_string()).unwrap();
        d.arictl(&[
            "verify",
            "payment",
            "--trust",
            issuer.to_str().unwrap(),
            "--log-vkey",
            vkey,
            f.to_str().unwrap(),
        ])
    };
    // Under either log key: the Ed25519 one and the ECDSA one.
    for vkey in &keys {
        let (code, _, err) = verify(&first, vkey);
        assert_eq!(code, Some(0), "{err}");
        assert!(err.contains("logged OK: entry"), "{err}");
    }
    // Go's tlog package reads the same proof.
    let f = work.path().join("first.tlog-proof");
    std::fs::write(&f, proof).unwrap();
    let (ok, out) = tlogcheck(&[OsStr::new("proof"), OsStr::new(&keys[0]), f.as_os_str()]);
    assert!(ok, "{out}");

    // The proof of one payment does not vouch for another's authorization.
    let mut swapped = second.clone();
    swapped["tlog_proof"] = first["tlog_proof"].clone();
    let (code, _, err) = verify(&swapped, &keys[0]);
    assert_ne!(code, Some(0));
    assert!(err.contains("records another authorization"), "{err}");
    // An edited entry no longer leads to the signed root.
    let entry_b64 = proof
        .lines()
        .nth(1)
        .unwrap()
        .strip_prefix("extra ")
        .unwrap();
    let entry = <base64ct::Base64 as base64ct::Encoding>::decode_vec(entry_b64).unwrap();
    let edited = String::from_utf8(entry).unwrap().replacen("100", "900", 1);
    let mut tampered = first.clone();
    tampered["tlog_proof"] = proof
        .replacen(
            entry_b64,
            &<base64ct::Base64 as base64ct::Encoding>::encode_string(edited.as_bytes()),
            1,
        )
        .into();
    let (code, _, err) = verify(&tampered, &keys[0]);
    assert_ne!(code, Some(0));
    assert!(err.contains("is not at index"), "{err}");
    // A held payment's receipt, collected with payment.status once confirmed, carries one too.
    let held_voucher = issue(&d, "L2");
    let held = pay(&mut c, &held_voucher, 300, "tx-held", false);
    let decision = held["decision"].as_str().unwrap().to_string();
    d.admin()
        .call(Method::AdminPaymentConfirm, json!({"decision": decision}))
        .unwrap();
    let later = c
        .call(
            Method::PaymentStatus,
            json!({"decision": decision, "wait_ms": 5000}),
        )
        .unwrap();
    assert_eq!(later["status"], "authorized", "{later}");
    let (code, _, err) = verify(&later, &keys[0]);
    assert_eq!(code, Some(0), "{later}\n{err}");
}
