//! The L4 condition language: `condition::Expr::parse`, then `eval`.
//!
//! The input is `expression\nfacts`, where facts is a JSON object (the request's `facts`); the
//! payment evaluated is fixed. Property: parsing is deterministic and never panics, and
//! evaluation of a parsed expression never panics.
#![no_main]

use ari::condition::{Expr, Scope};
use ari_fuzz::{NOW, split_once};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

fuzz_target!(|data: &[u8]| {
    let (expr, facts) = split_once(data, b'\n');
    let Ok(src) = std::str::from_utf8(expr) else {
        return;
    };
    let parsed = Expr::parse(src);
    let Ok(e) = parsed else {
        return;
    };
    assert_eq!(
        Expr::parse(src).ok(),
        Some(e.clone()),
        "parsing is deterministic"
    );
    let facts: Map<String, Value> = serde_json::from_slice(facts).unwrap_or_default();
    for (amount, category) in [(1500, Some("books")), (u64::MAX, None), (0, Some(""))] {
        let scope = Scope {
            amount,
            currency: "CNY",
            payee: "shop.example",
            category,
            now: NOW,
            facts: &facts,
        };
        let _ = e.eval(&scope);
    }
});
