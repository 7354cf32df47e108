//! AP2's own test vectors (tests/vectors/ap2/), compiled in: the public keys their chains,
//! checkouts and receipts are signed with, so the targets' as-it-travels modes can verify the
//! vectors (and mutations of them) under the keys that really signed them.

use crate::issuer;
use ari::jose::{Jwk, PublicKey};
use serde_json::Value;
use std::sync::OnceLock;

/// The delegate SD-JWT vector set (pinned keys, four chains).
pub const DELEGATE: &str = include_str!("../../tests/vectors/ap2/delegate_sd_jwt_vectors.json");
/// Seven payment mandate chains made by AP2's SDK.
pub const SDK_CHAINS: &str = include_str!("../../tests/vectors/ap2/sdk_payment_chains.json");
/// Checkouts, a payment chain and receipts made by AP2's SDK.
pub const RECEIPT_CHECKOUT: &str = include_str!("../../tests/vectors/ap2/receipt_checkout.json");

/// A named public key of the vectors.
pub struct Named {
    /// The JWK's `kid`, or the name the file gives the key.
    pub name: String,
    pub key: PublicKey,
}

fn named(name: &str, jwk: &Value) -> Option<Named> {
    let jwk: Jwk = serde_json::from_value(jwk.clone()).ok()?;
    let key = jwk.to_public_key().ok()?;
    Some(Named {
        name: jwk.kid.unwrap_or_else(|| name.to_string()),
        key,
    })
}

/// Every public key of the AP2 vectors.
pub fn keys() -> &'static [Named] {
    static KEYS: OnceLock<Vec<Named>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let mut out = Vec::new();
        let parse = |text: &str| serde_json::from_str::<Value>(text).unwrap_or_default();
        let delegate = parse(DELEGATE);
        if let Some(pinned) = delegate.pointer("/keys/pinned").and_then(Value::as_object) {
            out.extend(pinned.iter().filter_map(|(n, jwk)| named(n, jwk)));
        }
        let sdk = parse(SDK_CHAINS);
        for c in sdk["chains"].as_array().into_iter().flatten() {
            out.extend(named("root", &c["root_public_jwk"]));
            for hop in c["hop_public_jwks"].as_array().into_iter().flatten() {
                out.extend(named("hop", hop));
            }
        }
        let rc = parse(RECEIPT_CHECKOUT);
        if let Some(keys) = rc["keys"].as_object() {
            out.extend(keys.iter().filter_map(|(n, jwk)| named(n, jwk)));
        }
        out
    })
}

/// The keys a JWS's header `kid` may mean: the fixed issuer's when it is its thumbprint, every
/// vector key of that name, and the issuer's when none matches.
pub fn keys_for(jws: &str) -> Vec<PublicKey> {
    let kid = jws
        .split('.')
        .next()
        .and_then(crate::chain::decode_json)
        .and_then(|h| h.get("kid").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_default();
    let mut out: Vec<PublicKey> = keys()
        .iter()
        .filter(|k| k.name == kid)
        .map(|k| k.key)
        .collect();
    if out.is_empty() || kid == issuer().kid {
        out.insert(0, issuer().pk);
    }
    out
}

/// A vector key by name (the first of that name).
pub fn key(name: &str) -> Option<PublicKey> {
    keys().iter().find(|k| k.name == name).map(|k| k.key)
}
