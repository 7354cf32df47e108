//! AP2 payment mandates (`ari::mandate`) below the chains that carry them: the
//! `OpenPaymentMandate`, `ClosedPaymentMandate`, `Constraint` and `A2p2Limits` deserializers,
//! the constraint check, the dates and the budgets' units, and how a voucher reads an open
//! mandate (`voucher::ap2::from_mandate`, `read_limits`).
//!
//! The first byte picks the mode (mod 4):
//! - 0: the rest is one JSON value, read as each of those types and as a voucher's mandate;
//! - 1: the rest is `{"open": open mandate, "closed": closed mandate, "spent": n, "uses": n,
//!   "now": time, "hash": checkout hash}` (any JSON), and `mandate::check` judges the payment;
//! - 2: the rest is a time: its text read by `parse_utc`, and its first 8 bytes, as a
//!   big-endian Unix time, written by `utc`;
//! - 3: the rest is `[budget, currency]` (any JSON): `budget_minor` reads it; and its first 8
//!   bytes, as a minor-unit amount, written by `budget_major` (with `budget_exact` beside it).
//!
//! Properties: whatever deserializes serializes back to the same value; `check` judges the same
//! payment the same and never finds fewer violations after more spending; a time `parse_utc`
//! reads is one `utc` writes back as the same text, and every time `utc` writes (clamped to the
//! years 1970 to 9999) reads back; a budget `budget_major` writes, while a binary float holds it
//! exactly, reads back to the same minor units with its exact figure, and never to more without.
#![no_main]

use ari::mandate::{
    self, A2p2Limits, ClosedPaymentMandate, Cnf, Constraint, OpenPaymentMandate, Usage,
};
use ari::voucher::ap2;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// Reads a JSON value as the type given; what reads writes back to the same value.
macro_rules! round_trip {
    ($t:ty, $v:expr) => {
        serde_json::from_value::<$t>($v.clone()).ok().inspect(|t| {
            let again: $t = serde_json::from_value(serde_json::to_value(t).expect("it writes"))
                .expect("what it writes reads back");
            assert_eq!(&again, t);
        })
    };
}

fn read(v: &Value) {
    let open = round_trip!(OpenPaymentMandate, v);
    let _ = round_trip!(ClosedPaymentMandate, v);
    let _ = round_trip!(Constraint, v);
    let _ = round_trip!(Vec<Constraint>, v);
    let _ = round_trip!(A2p2Limits, v);
    let _ = round_trip!(Cnf, v);
    let voucher = ap2::from_mandate(v, 0);
    if let Some(items) = v.as_array() {
        let _ = ap2::read_limits(items, None);
    }
    if let (Some(open), Ok(read)) = (open, voucher) {
        // The holder a voucher reads is the mandate's.
        assert_eq!(read.jwk, open.cnf.jwk);
    }
}

fn check(input: &Value) {
    let (Some(open), Some(closed)) = (input.get("open"), input.get("closed")) else {
        return;
    };
    let (Ok(open), Ok(closed)) = (
        serde_json::from_value::<OpenPaymentMandate>(open.clone()),
        serde_json::from_value::<ClosedPaymentMandate>(closed.clone()),
    ) else {
        return;
    };
    let usage = Usage {
        spent: input.get("spent").and_then(Value::as_u64).unwrap_or(0),
        uses: input.get("uses").and_then(Value::as_u64).unwrap_or(0),
    };
    let now = match input.get("now") {
        Some(Value::String(s)) => s.clone(),
        Some(n) => mandate::utc(n.as_i64().unwrap_or(0)),
        None => mandate::utc(ari_fuzz::NOW),
    };
    let hash = input.get("hash").and_then(Value::as_str);
    let found = mandate::check(&open, &closed, usage, &now, hash);
    assert_eq!(found, mandate::check(&open, &closed, usage, &now, hash));
    let before = mandate::check(&open, &closed, Usage::default(), &now, hash);
    assert!(before.len() <= found.len(), "{before:?} {found:?}");
    // At most one violation per constraint, and one for a preset instrument.
    assert!(found.len() <= open.constraints.len() + 1);
}

fn times(rest: &[u8]) {
    if let Ok(text) = std::str::from_utf8(rest)
        && let Some(secs) = mandate::parse_utc(text)
    {
        assert_eq!(mandate::utc(secs), text);
        assert!((0..=253_402_300_799).contains(&secs));
    }
    if let Some(bytes) = rest.get(..8) {
        let secs = i64::from_be_bytes(bytes.try_into().expect("eight bytes"));
        let text = mandate::utc(secs);
        assert_eq!(
            mandate::parse_utc(&text),
            Some(secs.clamp(0, 253_402_300_799)),
            "{text}"
        );
    }
}

fn budgets(rest: &[u8]) {
    if let Ok(Value::Array(pair)) = serde_json::from_slice::<Value>(rest)
        && let [Value::Number(max), Value::String(currency)] = pair.as_slice()
        && let Some(minor) = mandate::budget_minor(max, currency, None)
    {
        // Written again, it reads back the same, with its exact figure where one is written,
        // and never as more without it.
        if minor < 1_000_000_000_000_000 {
            let major = mandate::budget_major(minor, currency);
            let exact = mandate::budget_exact(minor, currency);
            assert_eq!(
                mandate::budget_minor(&major, currency, exact),
                Some(minor),
                "{max} {major}"
            );
            assert!(
                mandate::budget_minor(&major, currency, None).is_some_and(|m| m <= minor),
                "{max} {major}"
            );
        }
    }
    if let Some(bytes) = rest.get(..8) {
        let minor = u64::from_be_bytes(bytes.try_into().expect("eight bytes"));
        let currency = std::str::from_utf8(rest.get(8..).unwrap_or_default()).unwrap_or("CNY");
        let major = mandate::budget_major(minor, currency);
        let exact = mandate::budget_exact(minor, currency);
        if minor < 1_000_000_000_000_000 {
            assert_eq!(
                mandate::budget_minor(&major, currency, exact),
                Some(minor),
                "{major} {currency}"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        0 => {
            if let Ok(v) = serde_json::from_slice::<Value>(rest) {
                read(&v);
            }
        }
        1 => {
            if let Ok(v) = serde_json::from_slice::<Value>(rest) {
                check(&v);
            }
        }
        2 => times(rest),
        _ => budgets(rest),
    }
});
