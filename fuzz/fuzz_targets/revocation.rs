//! Signed revocation lists: `voucher::revocation::verify`.
//!
//! First byte even: the rest is a compact JWS verified as it is against the fixed issuer key.
//! Odd: the rest is the list's payload (any bytes), signed by the issuer here, so the list
//! parser behind the signature is reached.
#![no_main]

use ari::voucher::revocation::{self, REVOCATION_TYP};
use ari_fuzz::{issuer, jws};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let text = if mode & 1 == 0 {
        match std::str::from_utf8(rest) {
            Ok(t) => t.to_string(),
            Err(_) => return,
        }
    } else {
        jws(REVOCATION_TYP, &issuer().kid, rest, issuer())
    };
    if let Ok(list) = revocation::verify(&text, &[issuer().pk]) {
        for r in &list.revoked {
            assert!(list.contains(&r.digest));
            assert!(list.revoked_before(&r.digest, r.revoked_at));
        }
    }
});
