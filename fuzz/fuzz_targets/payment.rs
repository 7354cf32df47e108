//! Payment receipts and AP2 payment chains: `payment::verify` and `verify_expecting` (the
//! voucher chain, the terminal `kb+sd-jwt` hop with its closed mandate, limits, attestation
//! bundle, binding, voucher status), `payment::read_logged` and `binding_of` (the authorization
//! read from its segment alone), and `mandate::verify_chain` (any AP2 payment chain: open
//! mandates down to a closed one, either binding, then AP2's constraint check).
//!
//! The first byte picks the mode (mod 4):
//! - 0: the rest is a receipt (`{"mandate","authorization","chain","attestation"}` JSON) as a
//!   verifier receives it, checked as it is;
//! - 1: the rest is `{"chain": [segment descriptions], "authorization": segment description,
//!   "bundle": bundle, "status": Status List Token claims}` (all optional, any JSON; see
//!   `ari_fuzz::chain` and `ari_fuzz::build_receipt`). The harness signs the chain, fills in
//!   what the fuzzer cannot compute when absent (bindings, digests, the bundle's `binding`, the
//!   closed mandate's attestation and its digest), signs the authorization with the last
//!   holder's key and checks the receipt, so every check after the signatures is reached;
//! - 2: the rest is a payment chain as it travels (`~~`-joined), read by `mandate::verify_chain`
//!   under the key its root names (the fixed issuer, or a key of AP2's vectors);
//! - 3: the rest is a JSON array of segment descriptions, signed by the harness and read by
//!   `mandate::verify_chain`.
//!
//! Properties of a receipt that verifies: one voucher per chain segment; the authorization
//! current at the fixed time and made by the last voucher's agent for its user; it verifies
//! again expecting its own `aud` and `nonce` and fails expecting another; where it is shaped as
//! the daemon writes it (one disclosure, nothing concealed), reading it as it is logged gives the
//! same claims and `binding_of` the bundle's binding. Of a payment chain that verifies: one
//! open mandate per segment but the last, a binding named per hop, and the violations those of
//! every open mandate's `mandate::check`, together, each once.
#![no_main]

use ari::mandate::{self, PaymentChain, Usage};
use ari::payment::{self, Expected, Receipt};
use ari::sdjwt::{self, Expect};
use ari::voucher::status::Verified;
use ari_fuzz::chain::{MAX_SEGMENTS, decode_json, sign_segments};
use ari_fuzz::{NOW, issuer, vectors};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// Whether `v` holds anything a resolution would change: an `_sd`, `_sd_alg` or `...` member
/// anywhere.
fn conceals(v: &Value) -> bool {
    match v {
        Value::Object(m) => m
            .iter()
            .any(|(k, v)| k == "_sd" || k == "_sd_alg" || k == "..." || conceals(v)),
        Value::Array(items) => items.iter().any(conceals),
        _ => false,
    }
}

fn check_receipt(receipt: &Receipt, status: Option<&Verified>) {
    let trusted = [issuer().pk];
    let expect_seed = Expected {
        aud: Some("psp.example"),
        nonce: Some("8c1d44e0a9b2"),
    };
    let _ = payment::verify_expecting(receipt, &trusted, status, NOW, expect_seed);
    let _ = payment::binding_of(&receipt.authorization);
    let _ = payment::binding_of(&receipt.mandate);
    let chain = mandate::verify_chain(
        &receipt.mandate,
        &trusted,
        &Expect {
            at: Some(NOW),
            skew: ari::voucher::CLOCK_SKEW_S,
            ..Expect::default()
        },
        None,
    );
    if let Ok(c) = &chain {
        check_payment_chain(&receipt.mandate, c, Some(NOW), None);
    }
    let Ok(v) = payment::verify(receipt, &trusted, status, NOW) else {
        return;
    };
    assert_eq!(v.chain.len(), receipt.chain.len());
    assert!(v.claims.iat < v.claims.exp && NOW < v.claims.exp);
    let leaf = v.chain.last().expect("a verified chain is not empty");
    assert_eq!(v.claims.agent, leaf.agent);
    assert_eq!(v.claims.sub, leaf.sub);
    let own = Expected {
        aud: Some(&v.claims.aud),
        nonce: Some(&v.claims.nonce),
    };
    assert!(payment::verify_expecting(receipt, &trusted, status, NOW, own).is_ok());
    let replayed = format!("{}-again", v.claims.nonce);
    let other = Expected {
        nonce: Some(&replayed),
        ..own
    };
    assert!(payment::verify_expecting(receipt, &trusted, status, NOW, other).is_err());
    if let Ok(c) = &chain {
        assert!(c.bindings.iter().all(|b| *b == "sd_hash"));
        assert_eq!(c.open.len(), receipt.chain.len());
        assert_eq!(c.closed.transaction_id, v.claims.transaction_id);
        assert_eq!(c.closed.payment_amount.amount, v.claims.amount);
    }
    // As the daemon writes it, the authorization reads the same from its segment alone.
    let terminal = sdjwt::split(&receipt.authorization)
        .ok()
        .and_then(|mut s| s.pop())
        .expect("a verified authorization splits");
    let payload_text = terminal.jwt.split('.').nth(1).unwrap_or_default();
    let payload = decode_json(payload_text).expect("a verified payload");
    let [disclosure] = terminal.disclosures.as_slice() else {
        return;
    };
    let closed = decode_json(disclosure).expect("a verified disclosure");
    let named = serde_json::json!([{ "...": sdjwt::digest(disclosure) }]);
    let payload_conceals = payload.as_object().is_some_and(|m| {
        m.iter().any(|(k, v)| match k.as_str() {
            "_sd" => true,
            "_sd_alg" => false,
            "delegate_payload" => *v != named,
            _ => conceals(v),
        })
    });
    if payload_conceals || conceals(&closed) {
        return;
    }
    let logged = payment::read_logged(payload_text, disclosure).expect("reads as logged");
    assert_eq!(logged, v.claims);
    assert_eq!(
        payment::binding_of(&receipt.authorization).expect("its binding reads"),
        v.bundle.binding
    );
}

fn check_payment_chain(text: &str, c: &PaymentChain, at: Option<i64>, hash: Option<&str>) {
    let segments = sdjwt::split(text).expect("a verified chain splits");
    assert_eq!(c.open.len() + 1, segments.len());
    assert_eq!(c.payloads.len(), segments.len());
    assert_eq!(c.bindings.len(), segments.len() - 1);
    assert!(!c.open.is_empty(), "at least one open mandate");
    // Every open mandate is checked: the violations are theirs together, each once.
    let now = mandate::utc(at.unwrap_or(0));
    let mut all = Vec::new();
    for open in &c.open {
        for v in mandate::check(open, &c.closed, Usage::default(), &now, hash) {
            if !all.contains(&v) {
                all.push(v);
            }
        }
    }
    assert_eq!(all, c.violations);
}

/// `mandate::verify_chain` under the keys the root names, with and without the last hop's
/// `aud` and `nonce`, at the fixed time and without time checks.
fn check_chain(text: &str) {
    let root = text.split('~').next().unwrap_or_default();
    let trusted = vectors::keys_for(root);
    let last = text.rsplit("~~").next().unwrap_or_default();
    let payload = last
        .split('~')
        .next()
        .and_then(|jwt| jwt.split('.').nth(1))
        .and_then(decode_json)
        .unwrap_or_default();
    let own_aud = payload.get("aud").and_then(Value::as_str);
    let own_nonce = payload.get("nonce").and_then(Value::as_str);
    // A checkout hash the chain's last open mandate may be conditional on.
    let hash = "x0Cm1M1lRCr5sCaGvp0sz5xDJGLwM2XQXQS3cqrpNwM";
    for (at, aud, nonce, checkout) in [
        (Some(NOW), None, None, None),
        (None, own_aud, own_nonce, Some(hash)),
    ] {
        let expect = Expect {
            aud,
            nonce,
            at,
            skew: 300,
            open: false,
        };
        if let Ok(c) = mandate::verify_chain(text, &trusted, &expect, checkout) {
            check_payment_chain(text, &c, at, checkout);
            if let Some(aud) = aud {
                let elsewhere = format!("{aud}/elsewhere");
                let other = Expect {
                    aud: Some(&elsewhere),
                    ..expect
                };
                assert!(mandate::verify_chain(text, &trusted, &other, checkout).is_err());
            }
        }
    }
    let _ = payment::binding_of(text);
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        0 => {
            if let Ok(receipt) = serde_json::from_slice::<Receipt>(rest) {
                check_receipt(&receipt, None);
            }
        }
        1 => {
            let Ok(mut input) = serde_json::from_slice::<Value>(rest) else {
                return;
            };
            let (receipt, status) = ari_fuzz::build_receipt(&mut input);
            check_receipt(&receipt, status.as_ref());
        }
        2 => {
            if let Ok(text) = std::str::from_utf8(rest) {
                check_chain(text);
            }
        }
        _ => {
            let Ok(Value::Array(descs)) = serde_json::from_slice::<Value>(rest) else {
                return;
            };
            if descs.len() <= MAX_SEGMENTS {
                check_chain(&sdjwt::join(&sign_segments(&descs)));
            }
        }
    }
});
