//! Payment receipts: `payment::verify` (voucher chain, authorization, limits, attestation
//! bundle and its binding).
//!
//! First byte even: the rest is a receipt (`{"authorization","chain","attestation"}` JSON) as a
//! verifier receives it, checked as it is.
//! Odd: the rest is `{"chain": [voucher claims], "authorization": claims, "bundle": bundle,
//! "status": Status List Token claims}` (all optional, any JSON). The harness signs the chain
//! (`sign_chain`), fills in what the fuzzer cannot compute when absent — the authorization's
//! `vouchers` digests and `attestation_sha256`, the bundle's `binding` — signs the
//! authorization with the leaf's holder key and verifies the receipt, so every check after
//! the signatures is reached.
#![no_main]

use ari::payment::{self, Receipt};
use ari::voucher::status::Verified;
use ari_fuzz::{NOW, issuer};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn check(receipt: &Receipt, status: Option<&Verified>) {
    if let Ok(v) = payment::verify(receipt, &[issuer().pk], status, NOW) {
        assert_eq!(v.chain.len(), receipt.chain.len());
        assert!(v.claims.iat < v.claims.exp && NOW < v.claims.exp);
        let leaf = v.chain.last().expect("a verified chain is not empty");
        assert_eq!(v.claims.agent, leaf.agent);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        if let Ok(receipt) = serde_json::from_slice::<Receipt>(rest) {
            check(&receipt, None);
        }
        return;
    }
    let Ok(mut input) = serde_json::from_slice::<Value>(rest) else {
        return;
    };
    let (receipt, status) = ari_fuzz::build_receipt(&mut input);
    check(&receipt, status.as_ref());
});
