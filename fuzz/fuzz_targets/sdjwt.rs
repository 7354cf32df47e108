//! SD-JWT delegation chains on their own (`ari::sdjwt`): `split` and `join`, `Disclosure::parse`,
//! `resolve`, `conceal` and `verify`, below what vouchers and payments make of them.
//!
//! The first byte picks the mode (mod 3):
//! - 0: the rest is a chain as it travels. Split, each disclosure parsed, each segment's payload
//!   resolved against its disclosures as it is (no signature needed for that), then verified
//!   under the key its root names (the fixed issuer, or a key of AP2's vectors): as a closed
//!   chain expecting its last hop's own `aud` and `nonce`, at the fixed time, and as an open one;
//! - 1: the rest is a JSON array of segment descriptions (see `ari_fuzz::chain`), signed by the
//!   harness, then checked as in mode 0;
//! - 2: the rest is `{"object": any JSON, "names": [member names], "salts": [strings]}`:
//!   the object's members concealed, then resolved back.
//!
//! Properties: a chain that splits joins back to the same text; a parsed disclosure keeps its
//! text, and one made with `Disclosure::member`/`element` parses back to itself; nothing
//! resolved keeps an `_sd` member; a verified chain has one header, payload and mandate per
//! segment, each hop's `typ` one its place allows, and its last hop fails another audience;
//! concealing then resolving gives the object back.
#![no_main]

use ari::sdjwt::{self, Disclosure, Expect, Segment};
use ari_fuzz::chain::{MAX_SEGMENTS, decode_json, sign_segments};
use ari_fuzz::{NOW, vectors};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

fn has_sd(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.iter().any(|(k, v)| k == "_sd" || has_sd(v)),
        Value::Array(items) => items.iter().any(has_sd),
        _ => false,
    }
}

/// Members only the format itself writes: an object holding one is not a plain claim set.
fn reserved(v: &Value) -> bool {
    match v {
        Value::Object(m) => m
            .iter()
            .any(|(k, v)| k == "_sd" || k == "_sd_alg" || k == "..." || reserved(v)),
        Value::Array(items) => items.iter().any(reserved),
        _ => false,
    }
}

/// Whether `v` holds a floating-point number (which serde_json, without its `float_roundtrip`
/// feature, may read back a unit in the last place off).
fn has_float(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.is_f64(),
        Value::Object(m) => m.values().any(has_float),
        Value::Array(items) => items.iter().any(has_float),
        _ => false,
    }
}

fn check_disclosure(text: &str) {
    let Ok(d) = Disclosure::parse(text) else {
        return;
    };
    assert_eq!(d.encoded, text);
    // The same salt, name and value made by the library's own constructors read back the same.
    let Some(Value::Array(parts)) = decode_json(text) else {
        return;
    };
    let Some(Value::String(salt)) = parts.first() else {
        return;
    };
    if has_float(&d.value) {
        return;
    }
    let made = match &d.name {
        Some(name) => Disclosure::member(salt, name, d.value.clone()),
        None => Disclosure::element(salt, d.value.clone()),
    };
    assert_eq!(Disclosure::parse(&made.encoded).as_ref(), Ok(&made));
}

fn check_chain(text: &str) {
    let Ok(segments) = sdjwt::split(text) else {
        return;
    };
    assert_eq!(sdjwt::join(&segments), text);
    for seg in &segments {
        let parsed: Vec<Disclosure> = seg
            .disclosures
            .iter()
            .filter_map(|d| {
                check_disclosure(d);
                Disclosure::parse(d).ok()
            })
            .collect();
        if let Some(payload) = seg.jwt.split('.').nth(1).and_then(decode_json)
            && let Ok(resolved) = sdjwt::resolve(&payload, &parsed)
        {
            assert!(!has_sd(&resolved));
        }
    }
    verify(text, &segments);
}

fn verify(text: &str, segments: &[Segment]) {
    let root = segments.first().map(|s| s.jwt.as_str()).unwrap_or_default();
    let last = segments.last().and_then(|s| s.jwt.split('.').nth(1));
    let payload = last.and_then(decode_json).unwrap_or_default();
    let aud = payload.get("aud").and_then(Value::as_str);
    let nonce = payload.get("nonce").and_then(Value::as_str);
    for key in vectors::keys_for(root) {
        for expect in [
            Expect {
                aud,
                nonce,
                at: None,
                skew: 300,
                open: false,
            },
            Expect {
                at: Some(NOW),
                skew: 300,
                ..Expect::default()
            },
            Expect {
                at: None,
                open: true,
                ..Expect::default()
            },
        ] {
            let Ok(v) = sdjwt::verify(text, &key, &expect) else {
                continue;
            };
            assert_eq!(v.headers.len(), segments.len());
            assert_eq!(v.payloads.len(), segments.len());
            assert_eq!(v.mandates.len(), segments.len());
            for (i, h) in v.headers.iter().enumerate().skip(1) {
                let typ = h.get("typ").and_then(Value::as_str).unwrap_or_default();
                let terminal = !expect.open && i + 1 == segments.len();
                let allowed: &[&str] = if terminal {
                    &[sdjwt::TERMINAL_TYP, "kb-sd-jwt"]
                } else {
                    &[sdjwt::DELEGATION_TYP, "kb-sd-jwt+kb"]
                };
                assert!(allowed.contains(&typ), "{typ}");
            }
            assert!(v.payloads.iter().all(|p| !has_sd(p)));
            if let (Some(a), true) = (aud, segments.len() > 1 && !expect.open) {
                let elsewhere = format!("{a}/elsewhere");
                let other = Expect {
                    aud: Some(&elsewhere),
                    ..expect
                };
                assert_eq!(
                    sdjwt::verify(text, &key, &other),
                    Err(sdjwt::SdJwtError::Audience("aud"))
                );
            }
        }
    }
}

fn conceal(input: &Value) {
    let Some(Value::Object(object)) = input.get("object") else {
        return;
    };
    let names: Vec<&str> = match input.get("names") {
        Some(Value::Array(n)) => n.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let salts: Vec<String> = match input.get("salts") {
        Some(Value::Array(s)) => s.iter().map(|s| s.to_string()).collect(),
        _ => (0..names.len()).map(|i| format!("c2FsdC0{i}")).collect(),
    };
    let mut concealed: Map<String, Value> = object.clone();
    let Ok(disclosures) = sdjwt::conceal(&mut concealed, &names, &salts) else {
        assert!(salts.len() < names.len());
        return;
    };
    for d in &disclosures {
        check_disclosure(&d.encoded);
    }
    let back = sdjwt::resolve(&Value::Object(concealed), &disclosures);
    let original = Value::Object(object.clone());
    if !reserved(&original) && names.iter().all(|n| !n.is_empty()) {
        // A name concealed twice is concealed once: the second finds it gone.
        assert_eq!(back, Ok(original));
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => {
            if let Ok(text) = std::str::from_utf8(rest) {
                check_chain(text);
            }
        }
        1 => {
            let Ok(Value::Array(descs)) = serde_json::from_slice::<Value>(rest) else {
                return;
            };
            if descs.len() <= MAX_SEGMENTS {
                check_chain(&sdjwt::join(&sign_segments(&descs)));
            }
        }
        _ => {
            if let Ok(input) = serde_json::from_slice::<Value>(rest) {
                conceal(&input);
            }
        }
    }
});
