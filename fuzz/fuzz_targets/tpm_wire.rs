//! The TPM structure reader a verifier uses on bundles it is handed: `attest::tpm::wire`.
//!
//! The first byte picks the structure (`TPMS_ATTEST`, `TPMT_SIGNATURE`, `TPMT_PUBLIC`); the
//! rest is read as one. Reading never panics, and what it accepts holds together: a quote's
//! selected PCRs are within its select bytes, a signature's scalars are 32 bytes each, a
//! P-256 point is 65 bytes when the coordinates fit.
#![no_main]

use ari::attest::tpm::wire::{Attest, Attested, EccPublic, EcdsaSignature};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => {
            if let Ok(a) = Attest::read(rest) {
                if let Attested::Quote(q) = &a.attested {
                    for sel in &q.pcr_select {
                        let bits = sel.select.len() * 8;
                        assert!(sel.pcrs().all(|p| (p as usize) < bits));
                    }
                }
            }
        }
        1 => {
            if let Ok(s) = EcdsaSignature::read(rest) {
                assert_eq!(s.rs.len(), 64);
            }
        }
        _ => {
            if let Ok(p) = EccPublic::read(rest) {
                if p.x.len() <= 32 && p.y.len() <= 32 {
                    assert_eq!(p.sec1_p256().map(|s| s.len()).ok(), Some(65));
                }
            }
        }
    }
});
