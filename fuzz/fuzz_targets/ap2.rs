//! AP2 documents around a payment (`ari::ap2`): the merchant's checkout JWT
//! (`verify_checkout`), the payment provider's receipt JWT (`verify_receipt`) and the receipt's
//! reference to a mandate chain (`receipt_reference`).
//!
//! The first byte picks the mode (mod 5):
//! - 0: the rest is a checkout JWT as it travels, verified under the fixed issuer key and the
//!   merchant key of AP2's vectors;
//! - 1: the rest is a checkout's payload (any bytes), signed here by the issuer key with a header
//!   `typ` the mode byte picks (`JWT`, none, `jwt`, `JOSE`);
//! - 2: the rest is `reference\nreceipt JWT`: the receipt verified as it travels under the fixed
//!   issuer key and the provider key of AP2's vectors, expecting that reference;
//! - 3: the rest is `reference\npayload`: the payload (any bytes) signed here as a receipt, and
//!   verified expecting the reference, or, when the line is empty, the payload's own;
//! - 4: the rest is a presentation (a mandate chain, or a lone JWT) whose reference is computed.
//!
//! Properties: a verified checkout is named by the hash of its JWT and its currency is three
//! capital letters; a verified receipt carries the reference expected, and signed again as it
//! serializes it verifies to the same receipt; the reference of a chain that splits is the
//! digest of its last segment's JWT, whatever came before it.
#![no_main]

use ari::sdjwt;
use ari_core::ap2::{self, ReceiptStatus};
use ari_fuzz::chain::jws_with_header;
use ari_fuzz::{NOW, issuer, split_once, vectors};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

fn checkout(jwt: &str, keys: &[ari::jose::PublicKey]) {
    let _ = ap2::checkout_hash(jwt);
    for key in keys {
        if let Ok(c) = ap2::verify_checkout(jwt, key, NOW) {
            assert_eq!(c.hash, ap2::checkout_hash(jwt));
            let cur = c.amount.currency.as_bytes();
            assert!(cur.len() == 3 && cur.iter().all(u8::is_ascii_uppercase));
        }
    }
}

fn receipt(jwt: &str, expected: &str, keys: &[ari::jose::PublicKey]) {
    for key in keys {
        let Ok(r) = ap2::verify_receipt(jwt, key, expected) else {
            continue;
        };
        assert_eq!(r.reference, expected);
        let wire = serde_json::to_value(&r).expect("a receipt writes");
        assert_eq!(wire["status"], json!(r.status()));
        let ok = matches!(r.outcome, ap2::Outcome::Success { .. });
        assert_eq!(ok, r.status() == ReceiptStatus::Success);
        // What it writes, signed again, is the same receipt.
        let again = jws_with_header(
            &json!({"alg": "ES256", "typ": "JWT"}),
            wire.to_string().as_bytes(),
            issuer(),
        );
        assert_eq!(
            ap2::verify_receipt(&again, &issuer().pk, expected).as_ref(),
            Ok(&r)
        );
    }
}

fn reference(text: &str) {
    let r = ap2::receipt_reference(text);
    if let Some(last) = sdjwt::split(text).ok().and_then(|s| s.last().cloned()) {
        assert_eq!(r, sdjwt::digest(&last.jwt));
        assert_eq!(ap2::receipt_reference(&last.jwt), r);
        assert_eq!(ap2::receipt_reference(&last.presented()), r);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let merchant: Vec<_> = [Some(issuer().pk), vectors::key("merchant")]
        .into_iter()
        .flatten()
        .collect();
    let provider: Vec<_> = [
        Some(issuer().pk),
        vectors::key("merchant-payment-processor-key-1"),
    ]
    .into_iter()
    .flatten()
    .collect();
    match mode % 5 {
        0 => {
            if let Ok(text) = std::str::from_utf8(rest) {
                checkout(text, &merchant);
            }
        }
        1 => {
            let header = match (mode / 5) % 4 {
                0 => json!({"alg": "ES256", "typ": "JWT"}),
                1 => json!({"alg": "ES256"}),
                2 => json!({"alg": "ES256", "typ": "jwt", "kid": "merchant-key-1"}),
                _ => json!({"alg": "ES256", "typ": "JOSE"}),
            };
            checkout(&jws_with_header(&header, rest, issuer()), &[issuer().pk]);
        }
        2 => {
            let (expected, jwt) = split_once(rest, b'\n');
            if let (Ok(expected), Ok(jwt)) =
                (std::str::from_utf8(expected), std::str::from_utf8(jwt))
            {
                receipt(jwt, expected, &provider);
            }
        }
        3 => {
            let (expected, payload) = split_once(rest, b'\n');
            let Ok(expected) = std::str::from_utf8(expected) else {
                return;
            };
            let own = serde_json::from_slice::<Value>(payload).ok().and_then(|p| {
                p.get("reference")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            });
            let expected = match (expected.is_empty(), own) {
                (true, Some(own)) => own,
                _ => expected.to_string(),
            };
            let header = json!({"alg": "ES256", "typ": "JWT", "kid": "provider"});
            receipt(
                &jws_with_header(&header, payload, issuer()),
                &expected,
                &[issuer().pk],
            );
        }
        _ => {
            if let Ok(text) = std::str::from_utf8(rest) {
                reference(text);
            }
        }
    }
});
