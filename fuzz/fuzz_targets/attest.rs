//! Runtime attestations: `attest::verify` (compact JWS, claims, kid and nonce checks).
//!
//! The input is `nonce\nrest`. First byte of `rest` even: the remainder is a compact JWS
//! verified as it is against the fixed daemon key. Odd: the remainder is the claims payload
//! (any bytes), signed here by the daemon key, so the claims parser is reached.
#![no_main]

use ari::attest::{self, ATTEST_TYP};
use ari_fuzz::{issuer, jws, split_once};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (nonce, rest) = split_once(data, b'\n');
    let Ok(nonce) = std::str::from_utf8(nonce) else {
        return;
    };
    let _ = attest::validate_nonce(nonce);
    let Some((&mode, rest)) = rest.split_first() else {
        return;
    };
    let key = issuer();
    let text = if mode & 1 == 0 {
        match std::str::from_utf8(rest) {
            Ok(t) => t.to_string(),
            Err(_) => return,
        }
    } else {
        jws(ATTEST_TYP, &key.kid, rest, key)
    };
    if let Ok(claims) = attest::verify(&text, &key.pk, nonce) {
        assert_eq!(claims.nonce, nonce);
        assert_eq!(claims.evidence.key.kid, key.kid);
    }
});
