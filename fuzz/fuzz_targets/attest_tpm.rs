//! TPM evidence: `attest::tpm::verify` (quote and certification signatures, the TPMS_ATTEST and
//! TPMT_PUBLIC parsers, qualifying data and batch paths, PCR selection and digest, clock
//! monotonicity, key attributes and names). The AK is the fixed key `issuer()`.
//!
//! The first byte picks the mode (mod 4):
//! - 0: the rest is a bundle (JSON) verified as it is;
//! - 1: the rest is `{"bundle", "policy", "last_seen"}` (any JSON); the bundle is completed
//!   with `complete_tpm_bundle` (absent attestations are built from their `fields`, absent
//!   signatures made by the AK), so the checks behind the signatures are reached;
//! - 2: the rest is raw TPMS_ATTEST bytes, used as the quote of the template bundle and signed
//!   by the AK: the binary parser behind the signature;
//! - 3: the same for the certification.
#![no_main]

use ari::attest::Bundle;
use ari::attest::tpm::{self, Policy, Seen};
use ari_fuzz::{b64, complete_tpm_bundle, issuer, tpm_bundle_template, tpm_signature};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn check(bundle: Value, policy: &Value, last_seen: Option<Seen>) {
    let Ok(bundle) = serde_json::from_value::<Bundle>(bundle) else {
        return;
    };
    let policy: Policy = serde_json::from_value(policy.clone())
        .unwrap_or_else(|_| serde_json::from_value(serde_json::json!({})).expect("policy"));
    if let Ok(v) = tpm::verify(&bundle, &issuer().pk, &policy, last_seen) {
        assert_eq!(v.tpm, bundle.evidence.tpm.present);
        if let (Some(now), Some(last)) = (v.seen, last_seen)
            && now.reset_count == last.reset_count
            && now.restart_count == last.restart_count
        {
            assert!(now.clock >= last.clock);
        }
    }
    if let Some(q) = &bundle.evidence.tpm.quote {
        let _ = tpm::quote_files(q);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let empty = serde_json::json!({});
    match mode % 4 {
        0 => {
            if let Ok(bundle) = serde_json::from_slice::<Value>(rest) {
                check(bundle, &empty, None);
            }
        }
        1 => {
            let Ok(input) = serde_json::from_slice::<Value>(rest) else {
                return;
            };
            let mut bundle = input
                .get("bundle")
                .cloned()
                .unwrap_or_else(tpm_bundle_template);
            complete_tpm_bundle(&mut bundle);
            let last_seen = input
                .get("last_seen")
                .and_then(|s| serde_json::from_value::<Seen>(s.clone()).ok());
            check(bundle, input.get("policy").unwrap_or(&empty), last_seen);
        }
        m => {
            let mut bundle = tpm_bundle_template();
            let part = if m == 2 { "quote" } else { "certification" };
            bundle["tpm"][part]["attest"] = Value::String(b64(rest));
            bundle["tpm"][part]["signature"] = Value::String(b64(&tpm_signature(rest, issuer())));
            complete_tpm_bundle(&mut bundle);
            check(bundle, &empty, None);
        }
    }
});
