//! JOSE encoding for the one signature suite the product uses: ES256 (ECDSA P-256 with SHA-256,
//! signature as raw `r||s`).
//!
//! This module turns public keys into JWKs and RFC 7638 thumbprints, builds the signing input
//! of a compact JWS, and verifies compact JWS strings. It never holds a private key: signing
//! happens in the backend, which receives only the SHA-256 digest of the signing input built
//! here. Verification is strict: the header must say `ES256`, every segment must be canonical
//! base64url without padding, and the signature must be exactly 64 bytes.

use base64ct::{Base64UrlUnpadded, Encoding};
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use p256::ecdsa::{Signature, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Why a JWS or JWK was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum JoseError {
    /// The compact serialization does not have exactly three dot-separated segments.
    #[error("a compact JWS has three segments separated by '.'")]
    Segments,
    /// A segment is not canonical base64url without padding.
    #[error("segment {0} is not base64url")]
    Base64(&'static str),
    /// The protected header or payload is not the JSON expected.
    #[error("{0} is not valid JSON: {1}")]
    Json(&'static str, String),
    /// The header names an algorithm other than ES256.
    #[error("algorithm {0:?} is not accepted; only ES256 is")]
    Algorithm(String),
    /// The header's `typ` is not the one this kind of object requires.
    #[error("type {found:?} where {expected:?} was required")]
    Type { expected: String, found: String },
    /// The signature is not 64 bytes of `r||s` or does not verify under the key.
    #[error("signature does not verify")]
    Signature,
    /// The JWK is not an EC P-256 public key.
    #[error("not an EC P-256 public JWK: {0}")]
    Jwk(&'static str),
}

/// An uncompressed P-256 public key point. Always a valid curve point once constructed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey {
    key: VerifyingKey,
    /// SHA-256 of the RFC 7638 member string, computed once: keys are compared and named by
    /// it on every call.
    thumbprint: [u8; 32],
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", self.thumbprint())
    }
}

impl PublicKey {
    /// Parses a SEC1 point (`04||x||y`, or compressed).
    pub fn from_sec1(bytes: &[u8]) -> Result<Self, JoseError> {
        let key = VerifyingKey::from_sec1_bytes(bytes)
            .map_err(|_| JoseError::Jwk("not a valid P-256 point"))?;
        let (x, y) = coordinates(&key);
        let members = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        Ok(Self {
            key,
            thumbprint: Sha256::digest(members.as_bytes()).into(),
        })
    }

    /// The uncompressed SEC1 encoding, 65 bytes.
    pub fn to_sec1(&self) -> Vec<u8> {
        self.key.to_sec1_point(false).as_bytes().to_vec()
    }

    /// The SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`), as OpenSSL and tpm2-tools
    /// read it.
    pub fn to_pem(&self) -> Result<String, JoseError> {
        use p256::pkcs8::EncodePublicKey;
        self.key
            .to_public_key_pem(p256::pkcs8::LineEnding::LF)
            .map_err(|_| JoseError::Jwk("cannot encode the key as PEM"))
    }

    /// Parses a SubjectPublicKeyInfo PEM holding a P-256 key.
    pub fn from_pem(pem: &str) -> Result<Self, JoseError> {
        use p256::pkcs8::DecodePublicKey;
        let key = VerifyingKey::from_public_key_pem(pem.trim())
            .map_err(|_| JoseError::Jwk("not a P-256 public key in PEM"))?;
        Self::from_sec1(key.to_sec1_point(false).as_bytes())
    }

    /// The key as the `p256` crate sees it, for verifying.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.key
    }

    /// The public JWK (`kty`, `crv`, `x`, `y`) with its thumbprint as `kid`.
    pub fn to_jwk(&self) -> Jwk {
        let (x, y) = self.coordinates();
        Jwk {
            kty: "EC".into(),
            crv: "P-256".into(),
            x,
            y,
            kid: Some(self.thumbprint()),
        }
    }

    /// The base64url `x` and `y` coordinates.
    fn coordinates(&self) -> (String, String) {
        coordinates(&self.key)
    }

    /// RFC 7638 thumbprint: base64url(SHA-256 of the canonical member string).
    pub fn thumbprint(&self) -> String {
        Base64UrlUnpadded::encode_string(&self.thumbprint)
    }

    /// Verifies a raw 64-byte `r||s` signature over a SHA-256 digest.
    pub fn verify_digest(&self, digest: &[u8; 32], signature: &[u8]) -> Result<(), JoseError> {
        let sig = Signature::from_slice(signature).map_err(|_| JoseError::Signature)?;
        self.key
            .verify_prehash(digest, &sig)
            .map_err(|_| JoseError::Signature)
    }
}

/// The base64url `x` and `y` coordinates of a point.
fn coordinates(key: &VerifyingKey) -> (String, String) {
    let sec1 = key.to_sec1_point(false);
    let bytes = sec1.as_bytes();
    (
        Base64UrlUnpadded::encode_string(bytes.get(1..33).unwrap_or_default()),
        Base64UrlUnpadded::encode_string(bytes.get(33..65).unwrap_or_default()),
    )
}

/// A public EC JWK as it travels on the wire and in files.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Jwk {
    pub kty: String,
    pub crv: String,
    pub x: String,
    pub y: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
}

impl Jwk {
    /// Checks the members and returns the key. A JWK carrying a private member is refused.
    pub fn to_public_key(&self) -> Result<PublicKey, JoseError> {
        if self.kty != "EC" {
            return Err(JoseError::Jwk("kty must be EC"));
        }
        if self.crv != "P-256" {
            return Err(JoseError::Jwk("crv must be P-256"));
        }
        let x = Base64UrlUnpadded::decode_vec(&self.x)
            .map_err(|_| JoseError::Jwk("x is not base64url"))?;
        let y = Base64UrlUnpadded::decode_vec(&self.y)
            .map_err(|_| JoseError::Jwk("y is not base64url"))?;
        if x.len() != 32 || y.len() != 32 {
            return Err(JoseError::Jwk("x and y must be 32 bytes each"));
        }
        let mut sec1 = Vec::with_capacity(65);
        sec1.push(0x04);
        sec1.extend_from_slice(&x);
        sec1.extend_from_slice(&y);
        PublicKey::from_sec1(&sec1)
    }

    /// Parses a JWK from JSON text, refusing private members (`d`).
    pub fn from_json(text: &str) -> Result<Self, JoseError> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| JoseError::Json("JWK", e.to_string()))?;
        if value.get("d").is_some() {
            return Err(JoseError::Jwk(
                "a private JWK was given; pass the public key only",
            ));
        }
        serde_json::from_value(value).map_err(|e| JoseError::Json("JWK", e.to_string()))
    }
}

/// The protected header of every JWS this product signs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Header {
    pub alg: String,
    pub typ: String,
    pub kid: String,
}

impl Header {
    /// An ES256 header of the given type for the key with thumbprint `kid`.
    pub fn es256(typ: &str, kid: &str) -> Self {
        Self {
            alg: "ES256".into(),
            typ: typ.into(),
            kid: kid.into(),
        }
    }
}

/// The part of a JWS that is signed: `b64(header).b64(payload)`, and its digest.
#[derive(Debug, Clone)]
pub struct SigningInput {
    text: String,
}

impl SigningInput {
    /// Encodes a header and a serializable payload.
    pub fn new<T: Serialize>(header: &Header, payload: &T) -> Result<Self, JoseError> {
        let header =
            serde_json::to_vec(header).map_err(|e| JoseError::Json("header", e.to_string()))?;
        let payload =
            serde_json::to_vec(payload).map_err(|e| JoseError::Json("payload", e.to_string()))?;
        let mut text = Base64UrlUnpadded::encode_string(&header);
        text.push('.');
        text.push_str(&Base64UrlUnpadded::encode_string(&payload));
        Ok(Self { text })
    }

    /// The payload segment (base64url of the payload's JSON), as the JWS will carry it.
    pub fn payload(&self) -> &str {
        self.text.split_once('.').map_or("", |(_, p)| p)
    }

    /// SHA-256 of the signing input: what the backend signs.
    pub fn digest(&self) -> [u8; 32] {
        Sha256::digest(self.text.as_bytes()).into()
    }

    /// Appends the raw `r||s` signature and returns the compact JWS.
    pub fn finish(mut self, signature: &[u8]) -> String {
        self.text.push('.');
        self.text
            .push_str(&Base64UrlUnpadded::encode_string(signature));
        self.text
    }
}

/// A signing input rendered before one unsigned integer member of its payload is known: the
/// payload's JSON is split around that member's value, so filling it in is a splice and an
/// encoding, not a second serialization. The payment path renders an authorization this way
/// outside the ledger, which then only fills in the evidence index.
#[derive(Debug, Clone)]
pub struct PendingInput {
    /// `b64(header).`
    header: String,
    /// The payload's JSON up to the member's value, and after it.
    before: Vec<u8>,
    after: Vec<u8>,
}

impl PendingInput {
    /// Renders `payload`, in which the member `field` must serialize as the integer 0, once.
    pub fn new<T: Serialize>(header: &Header, payload: &T, field: &str) -> Result<Self, JoseError> {
        let header =
            serde_json::to_vec(header).map_err(|e| JoseError::Json("header", e.to_string()))?;
        let json =
            serde_json::to_vec(payload).map_err(|e| JoseError::Json("payload", e.to_string()))?;
        // A quote inside a string value is escaped, so `"field":0` followed by `,` or `}` can
        // only be the member itself; it must occur exactly once.
        let key = format!("\"{field}\":0");
        let found: Vec<usize> = json
            .windows(key.len() + 1)
            .enumerate()
            .filter(|(_, w)| {
                w.starts_with(key.as_bytes()) && matches!(w.last(), Some(b',') | Some(b'}'))
            })
            .map(|(i, _)| i + key.len() - 1)
            .collect();
        let [at] = found[..] else {
            return Err(JoseError::Json(
                "payload",
                format!("member {field:?} does not appear as 0 exactly once"),
            ));
        };
        let (before, rest) = json.split_at(at);
        let mut text = Base64UrlUnpadded::encode_string(&header);
        text.push('.');
        Ok(Self {
            header: text,
            before: before.to_vec(),
            after: rest.get(1..).unwrap_or_default().to_vec(),
        })
    }

    /// The signing input with the member set to `value`.
    pub fn fill(self, value: u64) -> SigningInput {
        let Self {
            mut header,
            mut before,
            after,
        } = self;
        // Writing to a vector cannot fail.
        let _ = std::io::Write::write_fmt(&mut before, format_args!("{value}"));
        before.extend_from_slice(&after);
        header.push_str(&Base64UrlUnpadded::encode_string(&before));
        SigningInput { text: header }
    }
}

/// A compact JWS whose signature has been checked.
#[derive(Debug, Clone)]
pub struct Verified<T> {
    pub header: Header,
    pub payload: T,
}

/// Decodes a compact JWS without checking its signature; for looking up the key by `kid`.
pub fn peek_header(jws: &str) -> Result<Header, JoseError> {
    let header = jws.split('.').next().ok_or(JoseError::Segments)?;
    let bytes = Base64UrlUnpadded::decode_vec(header).map_err(|_| JoseError::Base64("header"))?;
    serde_json::from_slice(&bytes).map_err(|e| JoseError::Json("header", e.to_string()))
}

/// Verifies an ES256 compact JWS under `key`, requires header type `typ`, and decodes the payload.
pub fn verify<T: serde::de::DeserializeOwned>(
    jws: &str,
    key: &PublicKey,
    typ: &str,
) -> Result<Verified<T>, JoseError> {
    let (header, payload) = verify_with(jws, key, |header| {
        let found = header.get("typ").and_then(serde_json::Value::as_str);
        if found == Some(typ) {
            Ok(())
        } else {
            Err(JoseError::Type {
                expected: typ.into(),
                found: found.unwrap_or_default().into(),
            })
        }
    })?;
    let header: Header = serde_json::from_value(serde_json::Value::Object(header))
        .map_err(|e| JoseError::Json("header", e.to_string()))?;
    let payload =
        serde_json::from_slice(&payload).map_err(|e| JoseError::Json("payload", e.to_string()))?;
    Ok(Verified { header, payload })
}

/// Verifies an ES256 compact JWS under `key`: the header must name ES256 and pass `check`
/// (before the signature is checked); returns the header's members and the payload's bytes.
/// For documents whose header rules are not a single `typ` (SD-JWT hops).
pub fn verify_with(
    jws: &str,
    key: &PublicKey,
    check: impl FnOnce(&serde_json::Map<String, serde_json::Value>) -> Result<(), JoseError>,
) -> Result<(serde_json::Map<String, serde_json::Value>, Vec<u8>), JoseError> {
    let mut parts = jws.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JoseError::Segments);
    };
    let header_bytes = Base64UrlUnpadded::decode_vec(h).map_err(|_| JoseError::Base64("header"))?;
    let header: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&header_bytes)
        .map_err(|e| JoseError::Json("header", e.to_string()))?;
    let alg = header
        .get("alg")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default();
    if alg != "ES256" {
        return Err(JoseError::Algorithm(alg.into()));
    }
    check(&header)?;
    let signature = Base64UrlUnpadded::decode_vec(s).map_err(|_| JoseError::Base64("signature"))?;
    let signed_len = h.len() + 1 + p.len();
    let signing_input = jws.get(..signed_len).ok_or(JoseError::Segments)?;
    let digest: [u8; 32] = Sha256::digest(signing_input.as_bytes()).into();
    key.verify_digest(&digest, &signature)?;
    let payload = Base64UrlUnpadded::decode_vec(p).map_err(|_| JoseError::Base64("payload"))?;
    Ok((header, payload))
}

/// Base64url without padding, as JOSE uses everywhere.
pub fn b64url(bytes: &[u8]) -> String {
    Base64UrlUnpadded::encode_string(bytes)
}

/// Unpadded base64url decoding.
pub fn b64url_decode(text: &str) -> Result<Vec<u8>, JoseError> {
    Base64UrlUnpadded::decode_vec(text).map_err(|_| JoseError::Base64("value"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
    use super::*;
    use p256::ecdsa::SigningKey;
    use p256::ecdsa::signature::hazmat::PrehashSigner;

    #[derive(serde::Serialize)]
    struct Claims {
        a: String,
        index: u64,
        z: Option<String>,
        n: Vec<u64>,
    }

    #[test]
    fn a_pending_input_filled_in_equals_the_payload_rendered_whole() {
        let header = Header::es256("t+jwt", "kid");
        // Strings that look like the member must not be taken for it.
        let tricky = [
            "plain",
            "\"index\":0,",
            "x\",\"index\":0}",
            "\\\"index\\\":0,",
            "ünï\u{1}code",
        ];
        for a in tricky {
            for z in [None, Some(tricky[1].to_string())] {
                for value in [0, 1, 9, 10, 12_345, u64::MAX] {
                    let claims = |index| Claims {
                        a: a.into(),
                        index,
                        z: z.clone(),
                        n: vec![0, 10],
                    };
                    let pending = PendingInput::new(&header, &claims(0), "index").unwrap();
                    let whole = SigningInput::new(&header, &claims(value)).unwrap();
                    assert_eq!(pending.fill(value).text, whole.text, "{a:?} {z:?} {value}");
                }
            }
        }
    }

    #[test]
    fn a_pending_input_needs_the_member_once_as_zero() {
        let header = Header::es256("t+jwt", "kid");
        let claims = Claims {
            a: "a".into(),
            index: 7,
            z: None,
            n: vec![],
        };
        assert!(PendingInput::new(&header, &claims, "index").is_err());
        assert!(PendingInput::new(&header, &claims, "missing").is_err());
    }

    fn key() -> SigningKey {
        SigningKey::from_slice(&[7u8; 32]).unwrap()
    }

    #[test]
    fn rfc7638_member_order_and_roundtrip() {
        let sk = key();
        let pk = PublicKey::from_sec1(sk.verifying_key().to_sec1_point(false).as_bytes()).unwrap();
        let jwk = pk.to_jwk();
        assert_eq!(jwk.to_public_key().unwrap(), pk);
        assert_eq!(jwk.kid.as_deref(), Some(pk.thumbprint().as_str()));
        assert_eq!(pk.thumbprint().len(), 43);
    }

    #[test]
    fn sign_and_verify_compact() {
        let sk = key();
        let pk = PublicKey::from_sec1(sk.verifying_key().to_sec1_point(false).as_bytes()).unwrap();
        let input = SigningInput::new(
            &Header::es256("t", &pk.thumbprint()),
            &serde_json::json!({"a":1}),
        )
        .unwrap();
        let sig: Signature = sk.sign_prehash(&input.digest()).unwrap();
        let jws = input.finish(&sig.to_bytes());
        let v: Verified<serde_json::Value> = verify(&jws, &pk, "t").unwrap();
        assert_eq!(v.payload["a"], 1);
        assert!(matches!(
            verify::<serde_json::Value>(&jws, &pk, "u"),
            Err(JoseError::Type { .. })
        ));
        let mut bad = jws.clone();
        bad.insert(bad.len() - 3, 'A');
        assert!(verify::<serde_json::Value>(&bad, &pk, "t").is_err());
        assert_eq!(
            verify::<serde_json::Value>("a.b", &pk, "t").unwrap_err(),
            JoseError::Segments
        );
    }

    #[test]
    fn private_jwk_refused() {
        let text = r#"{"kty":"EC","crv":"P-256","x":"AA","y":"AA","d":"AA"}"#;
        assert!(matches!(Jwk::from_json(text), Err(JoseError::Jwk(_))));
    }
}
