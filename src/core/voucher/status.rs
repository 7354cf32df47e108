//! Voucher status: the IETF OAuth Token Status List (draft-ietf-oauth-status-list), read and
//! written.
//!
//! Every voucher the daemon signs is a *Referenced Token*: its `status` claim
//! ([`Status`]) names an index (`idx`) in a list and the list's URL (`uri`). The list is a byte
//! array holding [`BITS`] bits per voucher (index `i` lives in byte `i * bits / 8`, at bit
//! offset `(i * bits) % 8` counted from the least significant bit), compressed with DEFLATE in
//! the ZLIB format and carried base64url-encoded in `lst`. The *Status List Token* is an ES256
//! JWT (`typ` [`STATUS_LIST_TYP`]) signed by the issuer key, whose `sub` is that URL.
//!
//! A verifier checks a token with [`verify`] (signature against trusted issuer keys, type,
//! freshness) and only then reads statuses, through the [`Verified`] it returns: a list that did
//! not pass cannot be asked. Decompressing never produces more than [`MAX_LIST_BYTES`], so a
//! small `lst` that inflates to gigabytes is refused rather than followed. The list only tells
//! the status *now*: it keeps no history, so a verifier checks a payment against a list as fresh
//! as its policy asks for.

use super::VoucherClaims;
use crate::jose::{self, JoseError, PublicKey};
use serde::{Deserialize, Serialize};

/// The JWT `typ` of a Status List Token.
pub const STATUS_LIST_TYP: &str = "statuslist+jwt";
/// The bits per voucher in the lists the daemon writes: two, for VALID, INVALID and SUSPENDED.
pub const BITS: u8 = 2;
/// The most bytes a list may decompress to (16 MiB: 64 Mi vouchers at two bits).
pub const MAX_LIST_BYTES: usize = 16 * 1024 * 1024;
/// The ZLIB compression level the daemon writes with (miniz's highest).
const LEVEL: u8 = 10;

/// The `status` claim of a voucher.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Status {
    /// The status list mechanism: where this voucher's status is.
    pub status_list: StatusListRef,
}

/// A voucher's place in a status list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusListRef {
    /// Its index in the list.
    pub idx: u64,
    /// The URL of the Status List Token (its `sub`).
    pub uri: String,
}

/// A voucher's status, as the list holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusType {
    /// 0x00: valid.
    Valid,
    /// 0x01: revoked; never valid again.
    Invalid,
    /// 0x02: suspended (the agent is frozen); may become valid again.
    Suspended,
    /// Any other value: application-specific, never read as valid.
    Other(u8),
}

impl StatusType {
    /// The value stored in the list.
    pub fn value(self) -> u8 {
        match self {
            Self::Valid => 0,
            Self::Invalid => 1,
            Self::Suspended => 2,
            Self::Other(v) => v,
        }
    }

    /// The status of a stored value.
    pub fn from_value(v: u8) -> Self {
        match v {
            0 => Self::Valid,
            1 => Self::Invalid,
            2 => Self::Suspended,
            v => Self::Other(v),
        }
    }
}

impl std::fmt::Display for StatusType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Valid => f.write_str("VALID"),
            Self::Invalid => f.write_str("INVALID"),
            Self::Suspended => f.write_str("SUSPENDED"),
            Self::Other(v) => write!(f, "0x{v:02x}"),
        }
    }
}

/// Why a status list or a status was refused; each variant names one check.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StatusError {
    /// `bits` is not 1, 2, 4 or 8.
    #[error("bits is {0}; a status list holds 1, 2, 4 or 8 bits per token")]
    Bits(u8),
    /// `lst` is not base64url without padding.
    #[error("lst is not base64url")]
    Encoding,
    /// `lst` is not a ZLIB stream.
    #[error("lst is not ZLIB-compressed data")]
    Compression,
    /// `lst` decompresses to more than the cap.
    #[error("lst decompresses to more than {max} bytes")]
    TooLarge {
        /// The cap.
        max: usize,
    },
    /// The index is past the end of the list.
    #[error("index {idx} is outside the list of {len} entries")]
    Index {
        /// The index asked for.
        idx: u64,
        /// How many entries the list has.
        len: u64,
    },
    /// A value does not fit the list's bits.
    #[error("status value {value} does not fit in {bits} bit(s)")]
    Value {
        /// The value.
        value: u8,
        /// The list's bits.
        bits: u8,
    },
    /// The token's signature, encoding or `typ` failed.
    #[error("status list token: {0}")]
    Jose(#[source] JoseError),
    /// The token is not signed by a trusted issuer key.
    #[error("status list token: signed by key {kid:?}, which is not a trusted issuer")]
    UntrustedIssuer {
        /// The header's `kid`.
        kid: String,
    },
    /// The token's `sub` is not the URL the voucher references.
    #[error("status list token: its sub is {found:?}, the voucher references {expected:?}")]
    Subject {
        /// The voucher's `uri`.
        expected: String,
        /// The token's `sub`.
        found: String,
    },
    /// The token is past its `exp`.
    #[error("status list token: expired at {exp}")]
    Expired {
        /// Its `exp`.
        exp: i64,
    },
    /// A claim of the token is malformed.
    #[error("status list token: {0}")]
    Claim(&'static str),
    /// No voucher of the chain references this list.
    #[error("no voucher of the chain references the status list {sub:?}")]
    Unreferenced {
        /// The token's `sub`.
        sub: String,
    },
    /// A voucher of the chain is not valid.
    #[error("voucher {index}: its status is {status}")]
    NotValid {
        /// Its position in the chain, root first.
        index: usize,
        /// Its status.
        status: StatusType,
    },
}

/// A status list, uncompressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusList {
    bits: u8,
    bytes: Vec<u8>,
}

impl StatusList {
    /// A list of at least `len` entries (rounded up to whole bytes), all VALID.
    pub fn new(bits: u8, len: u64) -> Result<Self, StatusError> {
        check_bits(bits)?;
        let per_byte = u64::from(8 / bits);
        let bytes = usize::try_from(len.div_ceil(per_byte))
            .ok()
            .filter(|n| *n <= MAX_LIST_BYTES)
            .ok_or(StatusError::TooLarge {
                max: MAX_LIST_BYTES,
            })?;
        Ok(Self {
            bits,
            bytes: vec![0; bytes],
        })
    }

    /// A list from its uncompressed bytes.
    pub fn from_bytes(bits: u8, bytes: Vec<u8>) -> Result<Self, StatusError> {
        check_bits(bits)?;
        if bytes.len() > MAX_LIST_BYTES {
            return Err(StatusError::TooLarge {
                max: MAX_LIST_BYTES,
            });
        }
        Ok(Self { bits, bytes })
    }

    /// Bits per entry.
    pub fn bits(&self) -> u8 {
        self.bits
    }

    /// The uncompressed bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// How many entries the list has.
    pub fn len(&self) -> u64 {
        self.bytes.len() as u64 * u64::from(8 / self.bits)
    }

    /// Whether the list has no entry.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The byte and bit offset of entry `idx`.
    fn place(&self, idx: u64) -> Result<(usize, u8), StatusError> {
        let outside = || StatusError::Index {
            idx,
            len: self.len(),
        };
        let bit = idx.checked_mul(u64::from(self.bits)).ok_or_else(outside)?;
        let byte = usize::try_from(bit / 8)
            .ok()
            .filter(|b| *b < self.bytes.len())
            .ok_or_else(outside)?;
        // `bit % 8` is below 8.
        Ok((byte, (bit % 8) as u8))
    }

    fn mask(&self) -> u8 {
        // bits is 1, 2, 4 or 8.
        (((1u16) << self.bits) - 1) as u8
    }

    /// The value at `idx`.
    pub fn get(&self, idx: u64) -> Result<StatusType, StatusError> {
        let (byte, shift) = self.place(idx)?;
        let b = self.bytes.get(byte).copied().unwrap_or_default();
        Ok(StatusType::from_value((b >> shift) & self.mask()))
    }

    /// Sets the value at `idx`.
    pub fn set(&mut self, idx: u64, status: StatusType) -> Result<(), StatusError> {
        let value = status.value();
        if value > self.mask() {
            return Err(StatusError::Value {
                value,
                bits: self.bits,
            });
        }
        let (byte, shift) = self.place(idx)?;
        let mask = self.mask() << shift;
        if let Some(b) = self.bytes.get_mut(byte) {
            *b = (*b & !mask) | (value << shift);
        }
        Ok(())
    }

    /// The JSON form: `bits` and `lst`, the ZLIB-compressed bytes in base64url.
    pub fn encode(&self) -> EncodedList {
        EncodedList {
            bits: self.bits,
            lst: jose::b64url(&miniz_oxide::deflate::compress_to_vec_zlib(
                &self.bytes,
                LEVEL,
            )),
        }
    }

    /// Reads the JSON form, refusing anything that decompresses past [`MAX_LIST_BYTES`].
    pub fn decode(encoded: &EncodedList) -> Result<Self, StatusError> {
        Self::decode_within(encoded, MAX_LIST_BYTES)
    }

    /// As [`StatusList::decode`] with a smaller cap of `max` bytes.
    pub fn decode_within(encoded: &EncodedList, max: usize) -> Result<Self, StatusError> {
        check_bits(encoded.bits)?;
        let max = max.min(MAX_LIST_BYTES);
        let compressed = jose::b64url_decode(&encoded.lst).map_err(|_| StatusError::Encoding)?;
        let bytes = miniz_oxide::inflate::decompress_to_vec_zlib_with_limit(&compressed, max)
            .map_err(|e| match e.status {
                miniz_oxide::inflate::TINFLStatus::HasMoreOutput => StatusError::TooLarge { max },
                _ => StatusError::Compression,
            })?;
        Ok(Self {
            bits: encoded.bits,
            bytes,
        })
    }
}

fn check_bits(bits: u8) -> Result<(), StatusError> {
    match bits {
        1 | 2 | 4 | 8 => Ok(()),
        b => Err(StatusError::Bits(b)),
    }
}

/// The `status_list` claim of a Status List Token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncodedList {
    /// Bits per entry.
    pub bits: u8,
    /// base64url (no padding) of the ZLIB-compressed bytes.
    pub lst: String,
}

/// The claims of a Status List Token. Other claims are allowed by the draft and ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusListClaims {
    /// The token's own URL: what vouchers name in `status.status_list.uri`.
    pub sub: String,
    /// Signed at, Unix seconds.
    pub iat: i64,
    /// Not to be relied on after, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    /// How long a reader may cache it, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u64>,
    /// The list.
    pub status_list: EncodedList,
}

/// A Status List Token that passed [`verify`]: the only way to read statuses from one.
#[derive(Debug, Clone)]
pub struct Verified {
    claims: StatusListClaims,
    list: StatusList,
    kid: String,
}

impl Verified {
    /// The token's claims.
    pub fn claims(&self) -> &StatusListClaims {
        &self.claims
    }

    /// The list.
    pub fn list(&self) -> &StatusList {
        &self.list
    }

    /// The thumbprint of the key that signed it.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The status a reference points at: its `uri` must be this token's `sub`.
    pub fn status_of(&self, reference: &StatusListRef) -> Result<StatusType, StatusError> {
        if reference.uri != self.claims.sub {
            return Err(StatusError::Subject {
                expected: reference.uri.clone(),
                found: self.claims.sub.clone(),
            });
        }
        self.list.get(reference.idx)
    }

    /// Checks every voucher of a chain that references this list: each must be VALID. Vouchers
    /// that reference another list (another issuer's) are not this list's to judge; a chain of
    /// which no voucher references it is refused, since the list says nothing about it.
    pub fn check_chain(&self, chain: &[VoucherClaims]) -> Result<(), StatusError> {
        let mut referenced = false;
        for (index, v) in chain.iter().enumerate() {
            let Some(status) = &v.status else { continue };
            if status.status_list.uri != self.claims.sub {
                continue;
            }
            referenced = true;
            match self.status_of(&status.status_list)? {
                StatusType::Valid => {}
                status => return Err(StatusError::NotValid { index, status }),
            }
        }
        if referenced {
            Ok(())
        } else {
            Err(StatusError::Unreferenced {
                sub: self.claims.sub.clone(),
            })
        }
    }
}

/// Verifies a Status List Token against trusted issuer keys: ES256 under the key its `kid`
/// names, `typ` [`STATUS_LIST_TYP`], and, when `now` is given, not past its `exp` (with
/// [`super::CLOCK_SKEW_S`]).
pub fn verify(
    token: &str,
    trusted: &[PublicKey],
    now: Option<i64>,
) -> Result<Verified, StatusError> {
    let kid = jose::peek_header(token).map_err(StatusError::Jose)?.kid;
    let key = trusted
        .iter()
        .find(|k| k.thumbprint() == kid)
        .ok_or(StatusError::UntrustedIssuer { kid: kid.clone() })?;
    let v =
        jose::verify::<StatusListClaims>(token, key, STATUS_LIST_TYP).map_err(StatusError::Jose)?;
    let claims = v.payload;
    if claims.sub.is_empty() {
        return Err(StatusError::Claim("sub is empty"));
    }
    if claims.exp.is_some_and(|exp| exp <= claims.iat) {
        return Err(StatusError::Claim("exp is not after iat"));
    }
    if claims.ttl == Some(0) {
        return Err(StatusError::Claim("ttl is not positive"));
    }
    if let (Some(now), Some(exp)) = (now, claims.exp)
        && now.saturating_sub(super::CLOCK_SKEW_S) >= exp
    {
        return Err(StatusError::Expired { exp });
    }
    let list = StatusList::decode(&claims.status_list)?;
    Ok(Verified { claims, list, kid })
}

/// As [`verify`], for the list at `uri`: the token's `sub` must be `uri`.
pub fn verify_for(
    token: &str,
    trusted: &[PublicKey],
    uri: &str,
    now: Option<i64>,
) -> Result<Verified, StatusError> {
    let v = verify(token, trusted, now)?;
    if v.claims.sub != uri {
        return Err(StatusError::Subject {
            expected: uri.to_string(),
            found: v.claims.sub,
        });
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
    use super::*;
    use crate::jose::{Header, SigningInput};
    use p256::ecdsa::signature::hazmat::PrehashSigner;
    use p256::ecdsa::{Signature, SigningKey};

    /// draft-ietf-oauth-status-list, "Status List Token with 2-Bit Status Values": twelve
    /// statuses, their bytes, and the draft's compressed `lst`.
    const DRAFT_STATUSES: [u8; 12] = [1, 2, 0, 3, 0, 1, 0, 1, 1, 2, 3, 3];
    const DRAFT_BYTES: [u8; 3] = [0xc9, 0x44, 0xf9];
    const DRAFT_LST: &str = "eNo76fITAAPfAgc";
    const URI: &str = "https://pay.example.com/ari/status/vouchers";

    fn key(seed: u8) -> (SigningKey, PublicKey) {
        let sk = SigningKey::from_slice(&[seed; 32]).unwrap();
        let pk = PublicKey::from_sec1(sk.verifying_key().to_sec1_point(false).as_bytes()).unwrap();
        (sk, pk)
    }

    fn sign<T: Serialize>(typ: &str, claims: &T, sk: &SigningKey, pk: &PublicKey) -> String {
        let input = SigningInput::new(&Header::es256(typ, &pk.thumbprint()), claims).unwrap();
        let sig: Signature = sk.sign_prehash(&input.digest()).unwrap();
        input.finish(&sig.to_bytes())
    }

    fn token(list: &StatusList, sub: &str, exp: Option<i64>) -> (String, PublicKey) {
        let (sk, pk) = key(7);
        let claims = StatusListClaims {
            sub: sub.into(),
            iat: 1000,
            exp,
            ttl: Some(300),
            status_list: list.encode(),
        };
        (sign(STATUS_LIST_TYP, &claims, &sk, &pk), pk)
    }

    #[test]
    fn the_drafts_two_bit_example_packs_and_reads_back() {
        let mut list = StatusList::new(2, 12).unwrap();
        assert_eq!(list.len(), 12);
        for (i, v) in DRAFT_STATUSES.iter().enumerate() {
            list.set(i as u64, StatusType::from_value(*v)).unwrap();
        }
        assert_eq!(list.bytes(), DRAFT_BYTES);
        // Index 1 (SUSPENDED) sits at bits 2..4 of byte 0, index 3 (0x03) at bits 6..8.
        assert_eq!(list.get(1).unwrap(), StatusType::Suspended);
        assert_eq!(list.get(3).unwrap(), StatusType::Other(3));

        // The draft's compressed list, made by another compressor, inflates to the same bytes.
        let drafts = StatusList::decode(&EncodedList {
            bits: 2,
            lst: DRAFT_LST.into(),
        })
        .unwrap();
        assert_eq!(drafts, list);
        for (i, v) in DRAFT_STATUSES.iter().enumerate() {
            assert_eq!(drafts.get(i as u64).unwrap().value(), *v, "index {i}");
        }
        // And ours round-trips.
        assert_eq!(StatusList::decode(&list.encode()).unwrap(), list);

        // Resetting one entry leaves its neighbours alone.
        list.set(1, StatusType::Valid).unwrap();
        assert_eq!(list.bytes()[0], 0xc1);
        assert!(matches!(
            list.get(12),
            Err(StatusError::Index { idx: 12, len: 12 })
        ));
        assert!(matches!(
            list.set(12, StatusType::Invalid),
            Err(StatusError::Index { .. })
        ));
        assert!(matches!(
            list.set(0, StatusType::Other(4)),
            Err(StatusError::Value { value: 4, bits: 2 })
        ));
        assert!(matches!(StatusList::new(3, 8), Err(StatusError::Bits(3))));
    }

    #[test]
    fn a_list_that_inflates_past_the_cap_is_refused() {
        let bomb = vec![0u8; MAX_LIST_BYTES + 1];
        let encoded = EncodedList {
            bits: 2,
            lst: jose::b64url(&miniz_oxide::deflate::compress_to_vec_zlib(&bomb, 6)),
        };
        assert!(
            encoded.lst.len() < 64 * 1024,
            "a few kilobytes stand for {} bytes",
            bomb.len()
        );
        assert!(matches!(
            StatusList::decode(&encoded),
            Err(StatusError::TooLarge {
                max: MAX_LIST_BYTES
            })
        ));
        // Exactly at a cap is fine; one byte over is not.
        let small = EncodedList {
            bits: 2,
            lst: jose::b64url(&miniz_oxide::deflate::compress_to_vec_zlib(&[0; 100], 6)),
        };
        assert_eq!(StatusList::decode_within(&small, 100).unwrap().len(), 400);
        assert!(matches!(
            StatusList::decode_within(&small, 99),
            Err(StatusError::TooLarge { max: 99 })
        ));
        let garbage = EncodedList {
            bits: 2,
            lst: jose::b64url(b"not zlib at all"),
        };
        assert!(matches!(
            StatusList::decode(&garbage),
            Err(StatusError::Compression)
        ));
        let padded = EncodedList {
            bits: 2,
            lst: "eNo76fITAAPfAgc=".into(),
        };
        assert!(matches!(
            StatusList::decode(&padded),
            Err(StatusError::Encoding)
        ));
    }

    #[test]
    fn a_token_verifies_only_for_its_own_uri() {
        let mut list = StatusList::new(BITS, 16).unwrap();
        list.set(5, StatusType::Invalid).unwrap();
        let (jwt, pk) = token(&list, URI, Some(2000));
        let v = verify_for(&jwt, &[pk], URI, Some(1500)).unwrap();
        assert_eq!(v.kid(), pk.thumbprint());
        let at = |idx| StatusListRef {
            idx,
            uri: URI.into(),
        };
        assert_eq!(v.status_of(&at(5)).unwrap(), StatusType::Invalid);
        assert_eq!(v.status_of(&at(4)).unwrap(), StatusType::Valid);

        let other = "https://pay.example.com/ari/status/other";
        match verify_for(&jwt, &[pk], other, Some(1500)) {
            Err(StatusError::Subject { expected, found }) => {
                assert_eq!((expected.as_str(), found.as_str()), (other, URI));
            }
            r => panic!("{r:?}"),
        }
        assert!(matches!(
            v.status_of(&StatusListRef {
                idx: 5,
                uri: other.into()
            }),
            Err(StatusError::Subject { .. })
        ));
    }

    #[test]
    fn a_token_of_another_type_key_or_time_is_refused() {
        let list = StatusList::new(BITS, 16).unwrap();
        let (sk, pk) = key(7);
        let claims = StatusListClaims {
            sub: URI.into(),
            iat: 1000,
            exp: Some(2000),
            ttl: Some(300),
            status_list: list.encode(),
        };
        let jwt = sign("JWT", &claims, &sk, &pk);
        match verify(&jwt, &[pk], None) {
            Err(StatusError::Jose(JoseError::Type { expected, found })) => {
                assert_eq!(
                    (expected.as_str(), found.as_str()),
                    (STATUS_LIST_TYP, "JWT")
                );
            }
            r => panic!("{r:?}"),
        }
        let jwt = sign(STATUS_LIST_TYP, &claims, &sk, &pk);
        let (_, stranger) = key(8);
        assert!(matches!(
            verify(&jwt, &[stranger], None),
            Err(StatusError::UntrustedIssuer { .. })
        ));
        assert!(matches!(
            verify(&jwt, &[pk], Some(2100)),
            Err(StatusError::Expired { exp: 2000 })
        ));
        assert!(verify(&jwt, &[pk], Some(2000)).is_ok(), "within the skew");
        let tampered = jwt.replacen('.', ".e", 1);
        assert!(matches!(
            verify(&tampered, &[pk], None),
            Err(StatusError::Jose(_))
        ));
    }

    #[test]
    fn a_chain_is_judged_by_the_vouchers_that_reference_the_list() {
        use super::super::Confirmation;
        use crate::mandate::OPEN_VCT as VOUCHER_VCT;
        let (_, pk) = key(1);
        let voucher = |status: Option<Status>| VoucherClaims {
            iss: "issuer".into(),
            sub: "alice".into(),
            iat: 1000,
            nbf: 1000,
            exp: 2000,
            jti: "v".into(),
            vct: VOUCHER_VCT.into(),
            agent: "bot".into(),
            cnf: Confirmation { jwk: pk.to_jwk() },
            parent: None,
            constraints: vec![],
            status,
        };
        let at = |idx, uri: &str| {
            Some(Status {
                status_list: StatusListRef {
                    idx,
                    uri: uri.into(),
                },
            })
        };
        let mut list = StatusList::new(BITS, 8).unwrap();
        list.set(2, StatusType::Suspended).unwrap();
        let (jwt, key) = token(&list, URI, None);
        let v = verify(&jwt, &[key], None).unwrap();
        let elsewhere = "https://other.example/status";
        v.check_chain(&[voucher(at(9, elsewhere)), voucher(at(1, URI))])
            .unwrap();
        assert!(matches!(
            v.check_chain(&[voucher(at(1, URI)), voucher(at(2, URI))]),
            Err(StatusError::NotValid {
                index: 1,
                status: StatusType::Suspended
            })
        ));
        assert!(matches!(
            v.check_chain(&[voucher(at(1, elsewhere)), voucher(None)]),
            Err(StatusError::Unreferenced { .. })
        ));
        assert!(matches!(
            v.check_chain(&[voucher(at(8, URI))]),
            Err(StatusError::Index { idx: 8, .. })
        ));
    }
}
