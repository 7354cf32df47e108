//! Voucher chains: `voucher::verify_chain` and `verify_chain_with`.
//!
//! The first byte picks the mode:
//! - even: the rest is a chain as it travels, one compact voucher (`JWS~`) per line, verified
//!   as it is against the fixed issuer key (the compact parsing before any signature check);
//! - odd: the rest is a JSON array of voucher claims (any JSON), which the harness signs as the
//!   issuer and the holders would (`ari_fuzz::sign_chain`, filling in absent `parent` digests),
//!   so the claims parser, the constraint decoder and the narrowing checks are reached.
//!
//! Property: whatever verifies has between 1 and MAX_CHAIN vouchers, root first, each one's
//! `parent` the digest of the one before it.
#![no_main]

use ari::voucher::{self, Checks, MAX_CHAIN};
use ari_fuzz::{NOW, issuer, sign_chain};
use libfuzzer_sys::fuzz_target;

fn verify(chain: &[String]) {
    let links: Vec<&str> = chain.iter().map(String::as_str).collect();
    let trusted = [issuer().pk];
    for checks in [
        Checks::at(NOW),
        Checks {
            now: None,
            allow_unknown: true,
        },
    ] {
        if let Ok(claims) = voucher::verify_chain_with(&links, &trusted, checks) {
            assert!(!claims.is_empty() && claims.len() <= MAX_CHAIN);
            assert_eq!(claims.len(), links.len());
            assert!(claims[0].parent.is_none());
            for i in 1..claims.len() {
                assert_eq!(
                    claims[i].parent.as_deref(),
                    Some(voucher::digest(links[i - 1]).as_str())
                );
            }
            let _ = ari::policy::level(&claims);
            let _ = ari::policy::report_within(&claims);
            for c in &claims {
                let _ = ari::policy::budget(c);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        let Ok(text) = std::str::from_utf8(rest) else {
            return;
        };
        let chain: Vec<String> = text.split('\n').map(str::to_string).collect();
        verify(&chain);
    } else {
        let Ok(serde_json::Value::Array(claims)) = serde_json::from_slice(rest) else {
            return;
        };
        if claims.len() > voucher::MAX_CHAIN + 1 {
            return;
        }
        verify(&sign_chain(&claims));
    }
});
