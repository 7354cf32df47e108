//! The TPM backend against a real software TPM (swtpm on free loopback ports): quotes that
//! tpm2-tools accepts, a verifier that names each tampered field, shared quotes under load, and a
//! TPM that dies and comes back while the daemon keeps running.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::common;
use ari::protocol::Method;

use ari::attest::Bundle;
use ari::attest::tpm::{self, Policy, Seen};
use ari::client::{Client, ClientError};
use ari::jose::{self, Jwk, PublicKey};
use common::{Daemon, remote_err};
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

fn issue(d: &Daemon, agent: &str, budget: u64) -> String {
    let v = d
        .admin()
        .call(
            Method::AdminVoucherIssue,
            json!({"agent": agent, "level": "L5", "currency": "CNY", "budget": budget,
                   "expires_at": ari::clock::unix_now() + 86_400}),
        )
        .unwrap();
    v["id"].as_str().unwrap().into()
}

fn pay(c: &mut Client, voucher: &str, tx: &str) -> Result<Value, ClientError> {
    c.call(
        Method::PaymentAuthorize,
        json!({
            "voucher": voucher,
            "payment": {"amount": 100, "currency": "CNY", "payee": "shop.example",
                        "category": "groceries", "transaction_id": tx},
            "aud": "psp.example",
            "nonce": format!("nonce-{tx}-0000"),
        }),
    )
}

fn bundle_of(receipt: &Value) -> Bundle {
    serde_json::from_slice(&jose::b64url_decode(receipt["attestation"].as_str().unwrap()).unwrap())
        .unwrap()
}

fn ak_of(d: &Daemon) -> PublicKey {
    let ak = d.admin().call(Method::AdminTpmAk, json!({})).unwrap();
    serde_json::from_value::<Jwk>(ak["jwk"].clone())
        .unwrap()
        .to_public_key()
        .unwrap()
}

/// The binding digest recomputed from the authorization alone, as hex.
fn binding_from_authorization(receipt: &Value) -> String {
    let authorization = receipt["authorization"].as_str().unwrap();
    let binding = ari::payment::binding_of(authorization).unwrap();
    hex::encode(jose::b64url_decode(&binding).unwrap())
}

fn checkquote(dir: &Path, qualification: &str) -> bool {
    Command::new("tpm2_checkquote")
        .arg("-u")
        .arg(dir.join("ak.pem"))
        .arg("-m")
        .arg(dir.join("quote.msg"))
        .arg("-s")
        .arg(dir.join("quote.sig"))
        .arg("-f")
        .arg(dir.join("pcrs.bin"))
        .args(["-g", "sha256", "-q", qualification])
        .output()
        .unwrap()
        .status
        .success()
}

#[test]
fn quotes_pass_tpm2_checkquote_and_fail_when_the_nonce_or_a_pcr_changes() {
    let d = Daemon::start_tpm();
    d.provision_self("shop-bot");
    let voucher = issue(&d, "shop-bot", 10_000);
    let receipt = pay(&mut d.agent(), &voucher, "checkout-1").unwrap();
    let tmp = common::tempdir();
    let dir = tmp.path();
    std::fs::write(dir.join("receipt.json"), receipt.to_string()).unwrap();

    // A TPM has no Ed25519: the log signs its checkpoints with the ECDSA key alone, says so,
    // and offers one verifier key.
    let (code, vkeys, err) = d.arictl(&["log", "vkey"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(vkeys.lines().count(), 1, "{vkeys}");
    assert!(
        ari::evidence::checkpoint::LogKey::from_vkey(vkeys.trim())
            .is_ok_and(|k| matches!(k, ari::evidence::checkpoint::LogKey::Ecdsa { .. })),
        "{vkeys}"
    );
    assert!(
        d.log().contains("public witnesses cannot cosign this log"),
        "{}",
        d.log()
    );

    // Our own tools: the AK for enrollment, the quote as tpm2-tools files.
    let (code, _, err) = d.arictl(&["tpm", "ak", "--out", dir.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    let q = dir.join("q");
    let (code, _, err) = d.arictl(&[
        "tpm",
        "quote-files",
        dir.join("receipt.json").to_str().unwrap(),
        "--out",
        q.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    std::fs::copy(dir.join("ak.pem"), q.join("ak.pem")).unwrap();

    // The qualification is the binding digest the verifier recomputes from the authorization.
    let binding = binding_from_authorization(&receipt);
    assert_eq!(
        std::fs::read_to_string(q.join("qualification.hex")).unwrap(),
        binding
    );
    assert!(
        checkquote(&q, &binding),
        "tpm2_checkquote refused the quote"
    );

    // Another nonce: refused.
    let mut other = binding.clone().into_bytes();
    other[0] = if other[0] == b'0' { b'1' } else { b'0' };
    assert!(!checkquote(&q, std::str::from_utf8(&other).unwrap()));

    // Another PCR value: refused. The first value's bytes start after the selection (132
    // bytes), the group count (4), the digest count (4) and the value's size (2).
    let pcrs = std::fs::read(q.join("pcrs.bin")).unwrap();
    let mut changed = pcrs.clone();
    changed[142] ^= 1;
    std::fs::write(q.join("pcrs.bin"), &changed).unwrap();
    assert!(!checkquote(&q, &binding));
    std::fs::write(q.join("pcrs.bin"), &pcrs).unwrap();
    assert!(checkquote(&q, &binding));

    // And our verifier agrees, with the AK as PEM.
    std::fs::write(dir.join("policy.toml"), "require_tpm = true\n").unwrap();
    let (code, _, err) = d.arictl(&[
        "verify",
        "attestation",
        dir.join("receipt.json").to_str().unwrap(),
        "--ak",
        dir.join("ak.pem").to_str().unwrap(),
        "--policy",
        dir.join("policy.toml").to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("attestation OK"), "{err}");
}

fn quote(b: &mut Bundle) -> &mut tpm::Quote {
    b.evidence.tpm.quote.as_mut().unwrap()
}

fn cert(b: &mut Bundle) -> &mut tpm::Certification {
    b.evidence.tpm.certification.as_mut().unwrap()
}

/// A bundle with one field changed by `edit` must fail `check`.
fn refused(bundle: &Bundle, ak: &PublicKey, policy: &Policy, seen: Option<Seen>, check: &str) {
    let e = tpm::verify(bundle, ak, policy, seen).expect_err(check);
    assert_eq!(e.check, check, "{e}");
}

fn edit_b64(b64: &mut String, at: usize) {
    let mut bytes = jose::b64url_decode(b64).unwrap();
    let n = bytes.len();
    bytes[at.min(n - 1)] ^= 0x01;
    *b64 = jose::b64url(&bytes);
}

#[test]
fn the_verifier_names_each_tampered_field() {
    let d = Daemon::start_tpm();
    d.provision_self("shop-bot");
    let voucher = issue(&d, "shop-bot", 10_000);
    let receipt = pay(&mut d.agent(), &voucher, "checkout-1").unwrap();
    let good = bundle_of(&receipt);
    let ak = ak_of(&d);
    let any = Policy {
        require_tpm: true,
        ..Default::default()
    };
    let v = tpm::verify(&good, &ak, &any, None).unwrap();
    let seen = v.seen.unwrap();
    // The same bundle again is not a rollback.
    tpm::verify(&good, &ak, &any, Some(seen)).unwrap();

    // The AK's signature over the quote.
    let mut b = good.clone();
    edit_b64(&mut quote(&mut b).signature, 40);
    refused(&b, &ak, &any, None, "quote_signature");
    // A quote edited after signing (the clock inside it).
    let mut b = good.clone();
    edit_b64(&mut quote(&mut b).attest, 60);
    refused(&b, &ak, &any, None, "quote_signature");
    // The nonce: a bundle bound to another payment.
    let mut b = good.clone();
    b.binding = jose::b64url(&[7u8; 32]);
    refused(&b, &ak, &any, None, "qualifying_data");
    // A PCR value.
    let mut b = good.clone();
    let first = quote(&mut b).pcrs.values_mut().next().unwrap();
    *first = format!("01{}", &first[2..]);
    refused(&b, &ak, &any, None, "pcr_digest");
    // The policy's PCR value.
    let mut strict = any.clone();
    strict.pcrs.insert("0".into(), "11".repeat(32));
    refused(&good, &ak, &strict, None, "pcr_value");
    // The executable and the uid.
    let mut strict = any.clone();
    strict.exe_sha256 = vec!["00".repeat(32)];
    refused(&good, &ak, &strict, None, "exe");
    let mut strict = any.clone();
    strict.uids = vec![common::uid() + 1];
    refused(&good, &ak, &strict, None, "uid");
    // The clock, resetCount and restartCount against what was seen before.
    let later = |f: fn(&mut Seen)| {
        let mut s = seen;
        f(&mut s);
        Some(s)
    };
    refused(&good, &ak, &any, later(|s| s.clock += 1), "clock");
    refused(
        &good,
        &ak,
        &any,
        later(|s| s.reset_count += 1),
        "reset_count",
    );
    refused(
        &good,
        &ak,
        &any,
        later(|s| s.restart_count += 1),
        "restart_count",
    );
    // The certification's signature, and its attributes: fixedTPM cleared in the public area.
    let mut b = good.clone();
    edit_b64(&mut cert(&mut b).signature, 40);
    refused(&b, &ak, &any, None, "certify_signature");
    let mut b = good.clone();
    {
        use tss_esapi::traits::{Marshall, UnMarshall};
        let c = cert(&mut b);
        let bytes = jose::b64url_decode(&c.public).unwrap();
        let public = tss_esapi::structures::Public::unmarshall(&bytes).unwrap();
        let attrs = public.object_attributes();
        let raw = u32::from(attrs) & !0x2; // TPMA_OBJECT_FIXEDTPM
        let tss_esapi::structures::Public::Ecc {
            name_hashing_algorithm,
            auth_policy,
            parameters,
            unique,
            ..
        } = public
        else {
            panic!("not ECC")
        };
        let edited = tss_esapi::structures::Public::Ecc {
            object_attributes: tss_esapi::attributes::ObjectAttributes::from(raw),
            name_hashing_algorithm,
            auth_policy,
            parameters,
            unique,
        };
        c.public = jose::b64url(&edited.marshall().unwrap());
    }
    refused(&b, &ak, &any, None, "certify_attributes");
    // The public area of another key than the one certified.
    let mut b = good.clone();
    d.admin()
        .call(
            Method::AdminAgentProvision,
            json!({"agent": "other-bot", "user": "bob", "uid": common::uid() + 1000}),
        )
        .unwrap();
    let others = d
        .admin()
        .call(Method::AdminAgentShow, json!({"agent": "other-bot"}))
        .unwrap();
    cert(&mut b).public = others["key"]["certification"]["public"]
        .as_str()
        .unwrap()
        .into();
    refused(&b, &ak, &any, None, "certify_name");
    // A swapped AK: the verifier's enrolled key is not the one that signed.
    let stranger = ari::jose::PublicKey::from_pem(
        "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEGgtYdrTKoYVBafTveB1/R7xLw4De\nqMZ7vJ5l+3G3oCAuvGcwGlh6U9sygKVc5lmkanur9BNq7QcRaYwsLsFlsQ==\n-----END PUBLIC KEY-----\n",
    )
    .unwrap();
    refused(&good, &stranger, &any, None, "ak");
    let mut b = good.clone();
    b.evidence.tpm.ak = Some(stranger.to_jwk());
    refused(&b, &ak, &any, None, "ak");
    // A PKCS#11-style bundle: the policy decides.
    let mut b = good.clone();
    b.evidence.tpm = tpm::TpmEvidence::absent();
    refused(&b, &ak, &any, None, "no_tpm_evidence");
    let lax = Policy {
        require_tpm: false,
        ..Default::default()
    };
    assert!(!tpm::verify(&b, &ak, &lax, None).unwrap().tpm);
}

#[test]
fn concurrent_payments_share_quotes_and_each_bundle_verifies() {
    const CLIENTS: usize = 16;
    const EACH: usize = 15;
    let d = Daemon::start_tpm();
    d.provision_self("shop-bot");
    let voucher = issue(&d, "shop-bot", 1_000_000);
    let ak = ak_of(&d);
    let before = d.admin().call(Method::AdminStatus, json!({})).unwrap()["tpm"].clone();
    let receipts: Vec<Value> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..CLIENTS)
            .map(|n| {
                let (d, voucher) = (&d, &voucher);
                s.spawn(move || {
                    let mut c = d.agent();
                    (0..EACH)
                        .map(|i| pay(&mut c, voucher, &format!("c{n}-{i}")).unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let after = d.admin().call(Method::AdminStatus, json!({})).unwrap()["tpm"].clone();
    let quotes = after["quotes"].as_u64().unwrap() - before["quotes"].as_u64().unwrap();
    let quoted = after["quoted"].as_u64().unwrap() - before["quoted"].as_u64().unwrap();
    assert_eq!(quoted, (CLIENTS * EACH) as u64);
    assert!(
        quotes < quoted,
        "{quotes} quotes for {quoted} payments: none was shared"
    );
    let policy = Policy {
        require_tpm: true,
        ..Default::default()
    };
    let mut shared = 0;
    for r in &receipts {
        let b = bundle_of(r);
        let v = tpm::verify(&b, &ak, &policy, None).unwrap();
        if v.batch_size > 1 {
            shared += 1;
        }
        // The path is bound: the same quote does not vouch for another payment.
        let mut other = b.clone();
        other.binding = jose::b64url(&[9u8; 32]);
        assert_eq!(
            tpm::verify(&other, &ak, &policy, None).unwrap_err().check,
            "qualifying_data"
        );
    }
    assert!(shared > 0);
}

#[test]
fn a_tpm_reset_under_the_daemon_invalidates_its_handles_and_it_recovers() {
    let tmp = common::tempdir();
    let sim = ari::tools::swtpm::Swtpm::start(&tmp.path().join("tpm")).unwrap();
    let d = Daemon::start_on_tpm(&sim.tcti());
    let pid = d.child.as_ref().unwrap().id();
    d.provision_self("shop-bot");
    let voucher = issue(&d, "shop-bot", 1_000_000);
    let ak = ak_of(&d);
    let policy = Policy {
        require_tpm: true,
        ..Default::default()
    };
    let mut c = d.agent();
    let mut seen = tpm::verify(
        &bundle_of(&pay(&mut c, &voucher, "before").unwrap()),
        &ak,
        &policy,
        None,
    )
    .unwrap()
    .seen
    .unwrap();
    let mut answered = 0;
    for reset in 0..3 {
        // TPM_Init over the simulator's control channel, as a platform reset: every loaded
        // object and session handle the daemon holds is gone, the connection stays up.
        let out = Command::new("swtpm_ioctl")
            .args(["--tcp", &format!("127.0.0.1:{}", sim.port() + 1), "-i"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "swtpm_ioctl -i: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut after = None;
        for i in 0..50 {
            match pay(&mut c, &voucher, &format!("reset-{reset}-{i}")) {
                Ok(v) => {
                    after = Some(v);
                    break;
                }
                Err(ClientError::Remote(e)) => {
                    assert!(e.error.retryable(), "{e:?}");
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                Err(e) => panic!("{e}"),
            }
        }
        let after = after.expect("the daemon never used the reset TPM again");
        answered += 1;
        // The quote shows the reset, and the keys and the AK are the same.
        let v = tpm::verify(&bundle_of(&after), &ak, &policy, Some(seen)).unwrap();
        let now = v.seen.unwrap();
        assert!(now.reset_count > seen.reset_count, "{now:?} after {seen:?}");
        seen = now;
        let att = c
            .call(
                Method::AgentAttest,
                json!({"nonce": format!("after-reset-{reset}-0001")}),
            )
            .unwrap();
        assert!(att["attestation"].is_string());
    }
    assert_eq!(d.child.as_ref().unwrap().id(), pid);
    assert_eq!(ak_of(&d).thumbprint(), ak.thumbprint());
    println!(
        "3 TPM resets under the daemon: {answered} payments signed after them by the same process (pid {pid})"
    );
}

#[test]
fn a_tpm_that_dies_and_comes_back_is_used_again_without_restarting_arid() {
    let tmp = common::tempdir();
    let mut sim = ari::tools::swtpm::Swtpm::start(&tmp.path().join("tpm")).unwrap();
    let d = Daemon::start_on_tpm(&sim.tcti());
    d.provision_self("shop-bot");
    let voucher = issue(&d, "shop-bot", 1_000_000);
    let ak = ak_of(&d);
    let policy = Policy {
        require_tpm: true,
        ..Default::default()
    };
    let mut c = d.agent();
    let first = pay(&mut c, &voucher, "before").unwrap();
    let seen = tpm::verify(&bundle_of(&first), &ak, &policy, None)
        .unwrap()
        .seen
        .unwrap();

    // Killed mid-run: a typed, retryable error, and the daemon keeps serving.
    let failures = Arc::new(AtomicU64::new(0));
    sim.kill();
    for i in 0..3 {
        let e = remote_err(pay(&mut c, &voucher, &format!("down-{i}")));
        assert_eq!(e.error.reason(), "backend_unavailable", "{e:?}");
        assert!(e.error.retryable(), "{e:?}");
        failures.fetch_add(1, Ordering::Relaxed);
    }
    let e = remote_err(c.call(Method::AgentAttest, json!({"nonce": "while-down-0001"})));
    assert_eq!(e.error.reason(), "backend_unavailable");
    assert!(d.admin().call(Method::AdminStatus, json!({})).is_ok());

    // Back on the same ports with the same state: a TPM reset. The keys load again from their
    // blobs and sign; the quote shows the reset.
    sim.restart().unwrap();
    let mut ok = None;
    for i in 0..50 {
        match pay(&mut c, &voucher, &format!("after-{i}")) {
            Ok(v) => {
                ok = Some(v);
                break;
            }
            Err(ClientError::Remote(e)) if e.error.retryable() => {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            Err(e) => panic!("{e}"),
        }
    }
    let after = ok.expect("the daemon never used the restarted TPM");
    let v = tpm::verify(&bundle_of(&after), &ak, &policy, Some(seen)).unwrap();
    assert!(v.seen.unwrap().reset_count > seen.reset_count);
    // The agent's key still signs attestations too, and the AK is unchanged.
    let att = c
        .call(Method::AgentAttest, json!({"nonce": "after-reset-0001"}))
        .unwrap();
    assert!(att["attestation"].is_string());
    assert_eq!(ak_of(&d).thumbprint(), ak.thumbprint());
    // And the unavailable calls recorded nothing and spent nothing.
    let shown = d
        .admin()
        .call(Method::AdminVoucherShow, json!({"voucher": voucher}))
        .unwrap();
    assert_eq!(shown["spent"], 200);
}
