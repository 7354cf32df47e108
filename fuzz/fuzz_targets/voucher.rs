//! Voucher chains: `voucher::verify_chain` and `verify_chain_with` (AP2 open payment mandates as
//! an SD-JWT delegation chain: the `~~` split, disclosures, ARI's claims, the mandate's
//! constraints and `a2p2` limits, delegation links and narrowing).
//!
//! The first byte picks the mode:
//! - even: the rest is a chain as it travels (`<jwt>~<disclosures>~~<jwt>~…~`), verified as it
//!   is against the fixed issuer key (the parsing before any signature check);
//! - odd: the rest is a JSON array of segment descriptions (any JSON; see
//!   `ari_fuzz::chain`), which the harness signs as the issuer and the holders would, filling in
//!   absent `sd_hash` bindings and digests given by reference, so the disclosures, the claims,
//!   the constraint readers and the narrowing checks are reached.
//!
//! Properties: whatever verifies has between 1 and MAX_CHAIN vouchers, one per segment, root
//! first, each one's `parent` the digest of the segment before it as presented; the verified
//! chain's segments join back to the very text.
#![no_main]

use ari::sdjwt::{self, Segment};
use ari::voucher::{self, Checks, MAX_CHAIN};
use ari_fuzz::chain::{MAX_SEGMENTS, sign_segments};
use ari_fuzz::{NOW, issuer};
use libfuzzer_sys::fuzz_target;

fn verify(chain: &str) {
    let trusted = [issuer().pk];
    for checks in [
        Checks::at(NOW),
        Checks {
            now: None,
            allow_unknown: true,
        },
    ] {
        if let Ok(claims) = voucher::verify_chain_with(chain, &trusted, checks) {
            let segments = sdjwt::split(chain).expect("a verified chain splits");
            assert!(!claims.is_empty() && claims.len() <= MAX_CHAIN);
            assert_eq!(claims.len(), segments.len());
            assert!(claims[0].parent.is_none());
            for i in 1..claims.len() {
                assert_eq!(
                    claims[i].parent.as_deref(),
                    Some(voucher::digest(&segments[i - 1].presented()).as_str())
                );
            }
            // What the daemon stores per voucher joins back to the chain.
            let presented = voucher::presented(chain).expect("a verified chain reads");
            assert_eq!(voucher::join(&presented).expect("joins").as_str(), chain);
            if checks.now.is_some() {
                assert_eq!(
                    voucher::verify_chain(chain, &trusted, NOW).ok(),
                    Some(claims.clone())
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
        verify(text);
    } else {
        let Ok(serde_json::Value::Array(descs)) = serde_json::from_slice(rest) else {
            return;
        };
        if descs.len() > MAX_SEGMENTS {
            return;
        }
        let segments: Vec<Segment> = sign_segments(&descs);
        verify(&sdjwt::join(&segments));
    }
});
