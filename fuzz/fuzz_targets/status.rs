//! Voucher status lists (IETF Token Status List): `voucher::status::verify` and the list it
//! inflates.
//!
//! First byte even: the rest is a Status List Token verified as it is against the fixed issuer
//! key. Odd: the rest is the token's payload (any bytes), signed by the issuer here, so the
//! claims, the base64url and the ZLIB stream behind the signature are reached.
#![no_main]

use ari::voucher::status::{self, STATUS_LIST_TYP, StatusList, StatusListRef};
use ari_fuzz::{NOW, issuer, jws};
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
        jws(STATUS_LIST_TYP, &issuer().kid, rest, issuer())
    };
    if let Ok(v) = status::verify(&text, &[issuer().pk], Some(NOW)) {
        let list = v.list();
        assert!(list.bytes().len() <= status::MAX_LIST_BYTES);
        // Every place reads back (the first few thousand), and the list survives a round trip.
        for idx in 0..list.len().min(4096) {
            let reference = StatusListRef {
                idx,
                uri: v.claims().sub.clone(),
            };
            assert_eq!(
                v.status_of(&reference).expect("in range").value(),
                list.get(idx).expect("in range").value()
            );
        }
        assert!(list.get(list.len()).is_err());
        assert_eq!(
            &StatusList::decode(&list.encode()).expect("our own encoding reads back"),
            list
        );
    }
});
