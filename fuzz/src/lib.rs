//! Shared pieces of the fuzz targets: fixed keys, a JWS signer, a TPM signature encoder and the
//! "fill in what is absent" rewrites that let mutated inputs reach past signature and digest
//! checks.
//!
//! FUZZING ONLY. The keys here are fixed, public scalars (1, 2, 3 and 4 repeated): nothing signed
//! with them means anything outside a fuzz run.
//!
//! Most verifiers in `ari` check a signature before they parse what it covers, so a mutated
//! signed object stops at the signature. The targets therefore take the *unsigned* content
//! (a JSON payload, a TPMS_ATTEST, the segments of an SD-JWT chain: see [`chain`]) from the
//! fuzzer and sign it here with the fixed keys the verifier trusts; the fuzzer then explores the parsers and checks behind the signature. Each
//! target also feeds the raw bytes to the verifier unchanged, for the parsing done before the
//! signature check.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use ari::jose::{Jwk, PublicKey};
use base64ct::{Base64UrlUnpadded, Encoding};
use p256::ecdsa::signature::hazmat::PrehashSigner;
use p256::ecdsa::{Signature, SigningKey};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

pub mod chain;
pub mod service;
pub mod vectors;

/// The fixed time every target verifies at (2026-01-01T00:00:00Z).
pub const NOW: i64 = 1_767_225_600;

/// A fixed key pair.
pub struct Key {
    pub sk: SigningKey,
    pub pk: PublicKey,
    pub kid: String,
}

impl Key {
    fn new(seed: u8) -> Self {
        let sk = SigningKey::from_slice(&[seed; 32]).expect("a valid scalar");
        let pk = PublicKey::from_sec1(sk.verifying_key().to_sec1_point(false).as_bytes())
            .expect("a valid point");
        let kid = pk.thumbprint();
        Self { sk, pk, kid }
    }

    /// The public JWK, `kid` included.
    pub fn jwk(&self) -> Jwk {
        self.pk.to_jwk()
    }

    /// Raw `r||s` over a SHA-256 digest (RFC 6979: deterministic).
    pub fn sign_digest(&self, digest: &[u8; 32]) -> [u8; 64] {
        let sig: Signature = self.sk.sign_prehash(digest).expect("signing cannot fail");
        sig.to_bytes().into()
    }
}

/// The fixed keys: 0 is the trusted issuer (and the daemon, and the TPM's AK), 1..3 agents.
pub fn keys() -> &'static [Key; 4] {
    static KEYS: OnceLock<[Key; 4]> = OnceLock::new();
    KEYS.get_or_init(|| [Key::new(1), Key::new(2), Key::new(3), Key::new(4)])
}

/// The issuer key.
pub fn issuer() -> &'static Key {
    &keys()[0]
}

/// The fixed key whose public half `jwk` is, if any.
pub fn key_for(jwk: &Value) -> Option<&'static Key> {
    let jwk: Jwk = serde_json::from_value(jwk.clone()).ok()?;
    let pk = jwk.to_public_key().ok()?;
    keys().iter().find(|k| k.pk == pk)
}

/// base64url without padding.
pub fn b64(bytes: &[u8]) -> String {
    Base64UrlUnpadded::encode_string(bytes)
}

/// A compact ES256 JWS over `payload` exactly as given (any bytes), signed by `key`.
pub fn jws(typ: &str, kid: &str, payload: &[u8], key: &Key) -> String {
    let header = serde_json::json!({"alg": "ES256", "typ": typ, "kid": kid});
    chain::jws_with_header(&header, payload, key)
}

/// A `TPMT_SIGNATURE` (ECDSA, SHA-256) by `key` over SHA-256(`message`), as a TPM makes it.
pub fn tpm_signature(message: &[u8], key: &Key) -> Vec<u8> {
    let digest: [u8; 32] = Sha256::digest(message).into();
    let rs = key.sign_digest(&digest);
    let mut out = Vec::with_capacity(4 + 2 * 34);
    out.extend_from_slice(&0x0018u16.to_be_bytes()); // TPM_ALG_ECDSA
    out.extend_from_slice(&0x000bu16.to_be_bytes()); // TPM_ALG_SHA256
    for half in [&rs[..32], &rs[32..]] {
        out.extend_from_slice(&32u16.to_be_bytes());
        out.extend_from_slice(half);
    }
    out
}

/// Splits `data` at the first `sep`: (before, after); all of it before when there is none.
pub fn split_once(data: &[u8], sep: u8) -> (&[u8], &[u8]) {
    match data.iter().position(|b| *b == sep) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

/// Sets `obj[key] = value` when `obj` is an object without `key`.
pub fn fill(obj: &mut Value, key: &str, value: impl FnOnce() -> Value) {
    if let Value::Object(m) = obj
        && !m.contains_key(key)
    {
        let v = value();
        m.insert(key.to_string(), v);
    }
}

/// An empty JSON object.
pub fn object() -> Value {
    Value::Object(Map::new())
}

/// A TPM2B: big-endian u16 size, then the bytes.
pub fn tpm2b(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// The header every TPMS_ATTEST shares, as a TPM marshals it.
#[derive(Debug, Clone, Default)]
pub struct AttestHeader {
    pub signer: Vec<u8>,
    pub extra: Vec<u8>,
    pub clock: u64,
    pub reset: u32,
    pub restart: u32,
    pub safe: bool,
    pub firmware: u64,
}

impl AttestHeader {
    fn write(&self, kind: u16) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&ari::attest::tpm::TPM_GENERATED.to_be_bytes());
        out.extend_from_slice(&kind.to_be_bytes());
        tpm2b(&mut out, &self.signer);
        tpm2b(&mut out, &self.extra);
        out.extend_from_slice(&self.clock.to_be_bytes());
        out.extend_from_slice(&self.reset.to_be_bytes());
        out.extend_from_slice(&self.restart.to_be_bytes());
        out.push(u8::from(self.safe));
        out.extend_from_slice(&self.firmware.to_be_bytes());
        out
    }

    /// A quote's TPMS_ATTEST over the sha256 PCRs set in `select` (3 bytes of bitmap).
    pub fn quote(&self, select: [u8; 3], pcr_digest: &[u8]) -> Vec<u8> {
        let mut out = self.write(ari::attest::tpm::ST_ATTEST_QUOTE);
        out.extend_from_slice(&1u32.to_be_bytes()); // one TPMS_PCR_SELECTION
        out.extend_from_slice(&0x000bu16.to_be_bytes());
        out.push(3);
        out.extend_from_slice(&select);
        tpm2b(&mut out, pcr_digest);
        out
    }

    /// A certification's TPMS_ATTEST naming the certified key.
    pub fn certify(&self, name: &[u8], qualified_name: &[u8]) -> Vec<u8> {
        let mut out = self.write(ari::attest::tpm::ST_ATTEST_CERTIFY);
        tpm2b(&mut out, name);
        tpm2b(&mut out, qualified_name);
        out
    }
}

/// The object attributes of an ARI key in a TPM: fixedTPM, fixedParent, sensitiveDataOrigin,
/// userWithAuth, sign.
pub const ARI_KEY_ATTRIBUTES: u32 = 0x0004_0072;

/// The `TPMT_PUBLIC` of a P-256 ECDSA signing key with these attributes.
pub fn tpm_public(key: &Key, attributes: u32) -> Vec<u8> {
    let point = key.pk.to_sec1();
    let mut out = Vec::new();
    out.extend_from_slice(&0x0023u16.to_be_bytes()); // TPM_ALG_ECC
    out.extend_from_slice(&0x000bu16.to_be_bytes()); // nameAlg SHA-256
    out.extend_from_slice(&attributes.to_be_bytes());
    tpm2b(&mut out, &[]); // authPolicy
    out.extend_from_slice(&0x0010u16.to_be_bytes()); // symmetric: TPM_ALG_NULL
    out.extend_from_slice(&0x0018u16.to_be_bytes()); // scheme: ECDSA
    out.extend_from_slice(&0x000bu16.to_be_bytes()); // with SHA-256
    out.extend_from_slice(&0x0003u16.to_be_bytes()); // TPM_ECC_NIST_P256
    out.extend_from_slice(&0x0010u16.to_be_bytes()); // kdf: TPM_ALG_NULL
    tpm2b(&mut out, &point[1..33]);
    tpm2b(&mut out, &point[33..65]);
    out
}

fn hex_field(v: &Value, key: &str) -> Option<Vec<u8>> {
    v.get(key)
        .and_then(Value::as_str)
        .and_then(|s| hex::decode(s).ok())
}

fn u64_field(v: &Value, key: &str) -> u64 {
    v.get(key).and_then(Value::as_u64).unwrap_or(0)
}

fn header_of(fields: &Value, default_extra: Vec<u8>) -> AttestHeader {
    AttestHeader {
        signer: hex_field(fields, "signer").unwrap_or_else(|| ari::attest::tpm::name_of(b"ak")),
        extra: hex_field(fields, "extra").unwrap_or(default_extra),
        clock: u64_field(fields, "clock"),
        reset: u64_field(fields, "reset") as u32,
        restart: u64_field(fields, "restart") as u32,
        safe: fields.get("safe").and_then(Value::as_bool).unwrap_or(true),
        firmware: u64_field(fields, "firmware"),
    }
}

/// A TPM attestation bundle as the daemon makes it on a TPM, for the ARI key `keys()[1]`, with
/// the AK `issuer()`, bound to SHA-256("binding"), quoting PCRs 0 and 7.
pub fn tpm_bundle_template() -> Value {
    let ari_key = &keys()[1];
    let binding = b64(&Sha256::digest(b"binding"));
    let pcrs = serde_json::json!({"0": hex::encode([0u8; 32]), "7": hex::encode([7u8; 32])});
    serde_json::json!({
        "typ": ari::attest::BUNDLE_TYP,
        "iat": NOW,
        "binding": binding,
        "agent": {"id": "shop-bot", "instance": "i-1", "user": "alice"},
        "runtime": {"uid": 1000, "gid": 1000, "pid": 4242, "start_time": 123456,
                    "exe_sha256": hex::encode([0xabu8; 32]), "cgroup": "/user.slice/agent.service"},
        "host": {"boot_id": "3f1c7d2e-0000-4000-8000-000000000001"},
        "daemon": {"version": "0.1.0", "config_sha256": hex::encode([1u8; 32])},
        "key": {"kid": ari_key.kid, "store": "tpm", "uri": "tpm:handle=0x81000010",
                "attributes": {"token": true, "private": true, "sensitive": true,
                               "always_sensitive": true, "extractable": false,
                               "never_extractable": true, "local": true, "sign": true,
                               "decrypt": false, "derive": false, "unwrap": false}},
        "tpm": {"present": true, "quote": {"pcr_bank": "sha256", "pcrs": pcrs},
                "certification": {}},
    })
}

/// Completes a TPM bundle the way the daemon and its TPM would, filling in only what is
/// absent: the AK (`issuer()`); a quote's `attest` (built from the sibling `fields` object:
/// header fields, `select`, `digest`; the qualifying data defaults to the binding, the PCR
/// selection and digest to the bundle's PCR values) and `signature` (by the AK); a
/// certification's `public` (the ARI key `keys()[1]`), `attest` (`fields`: header fields,
/// `name`, defaulting to the public area's name, `qname`) and `signature`.
pub fn complete_tpm_bundle(bundle: &mut Value) {
    let binding = bundle
        .get("binding")
        .and_then(Value::as_str)
        .and_then(|b| ari::jose::b64url_decode(b).ok())
        .unwrap_or_default();
    let Some(tpm) = bundle.get_mut("tpm") else {
        return;
    };
    fill(tpm, "ak", || {
        serde_json::to_value(issuer().jwk()).unwrap_or_default()
    });
    if let Some(quote) = tpm.get_mut("quote") {
        let fields = quote.get("fields").cloned().unwrap_or_else(object);
        let pcrs: std::collections::BTreeMap<u8, Vec<u8>> = quote
            .get("pcrs")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| {
                        Some((k.parse::<u8>().ok()?, hex::decode(v.as_str()?).ok()?))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let select = hex_field(&fields, "select")
            .and_then(|s| <[u8; 3]>::try_from(s).ok())
            .unwrap_or_else(|| {
                let mut s = [0u8; 3];
                for i in pcrs.keys().filter(|i| **i < 24) {
                    s[usize::from(*i / 8)] |= 1 << (i % 8);
                }
                s
            });
        let digest = hex_field(&fields, "digest").unwrap_or_else(|| {
            ari::attest::tpm::pcr_digest(pcrs.values().map(Vec::as_slice)).to_vec()
        });
        let attest = header_of(&fields, binding).quote(select, &digest);
        if let Value::Object(m) = quote {
            m.remove("fields");
        }
        fill(quote, "attest", || Value::String(b64(&attest)));
        sign_attest(quote);
    }
    if let Some(cert) = tpm.get_mut("certification") {
        let fields = cert.get("fields").cloned().unwrap_or_else(object);
        fill(cert, "public", || {
            Value::String(b64(&tpm_public(&keys()[1], ARI_KEY_ATTRIBUTES)))
        });
        let public = cert
            .get("public")
            .and_then(Value::as_str)
            .and_then(|p| ari::jose::b64url_decode(p).ok())
            .unwrap_or_default();
        let name = hex_field(&fields, "name").unwrap_or_else(|| ari::attest::tpm::name_of(&public));
        let qname = hex_field(&fields, "qname").unwrap_or_default();
        let attest = header_of(&fields, Vec::new()).certify(&name, &qname);
        if let Value::Object(m) = cert {
            m.remove("fields");
        }
        fill(cert, "attest", || Value::String(b64(&attest)));
        sign_attest(cert);
    }
}

/// Fills an absent `signature` with the AK's TPMT_SIGNATURE over the (base64url) `attest`.
fn sign_attest(obj: &mut Value) {
    let attest = obj
        .get("attest")
        .and_then(Value::as_str)
        .and_then(|a| ari::jose::b64url_decode(a).ok())
        .unwrap_or_default();
    fill(obj, "signature", || {
        Value::String(b64(&tpm_signature(&attest, issuer())))
    });
}

/// The payment target's receipt builder. `input` is `{"chain": [segment descriptions],
/// "authorization": segment description, "bundle": attestation bundle, "status": Status List
/// Token claims}`, all optional and any JSON; descriptions as [`chain`] reads them. Signs the
/// voucher chain, then, filling in only what is absent: the bundle's `binding` (from the
/// payment fields of the authorization's first disclosure and its payload's `aud` and `nonce`,
/// bound to the last voucher and the holder's key), and the closed mandate's
/// `risk_data.ari.attestation` and `attestation_sha256` (the bundle and its digest); then signs
/// the authorization as the last hop, by the key the last voucher names. The status token is
/// signed by the issuer here and kept if it verifies.
pub fn build_receipt(
    input: &mut Value,
) -> (
    ari::payment::Receipt,
    Option<ari::voucher::status::Verified>,
) {
    use ari::payment::{self, Binding, Receipt};
    use ari::sdjwt::Segment;
    let descs = match input.get("chain") {
        Some(Value::Array(c)) if c.len() <= chain::MAX_SEGMENTS => c.clone(),
        _ => Vec::new(),
    };
    let vouchers = chain::sign_segments(&descs);
    let holder = descs.last().map_or(issuer(), chain::signer_after);
    let mut auth = input
        .get_mut("authorization")
        .map(Value::take)
        .unwrap_or_else(object);
    let mut bundle = input
        .get_mut("bundle")
        .map(Value::take)
        .unwrap_or_else(object);
    let closed = auth
        .pointer("/disclosures/0")
        .and_then(Value::as_array)
        .and_then(|d| d.last());
    fn text(v: Option<&Value>) -> Option<&str> {
        v.and_then(Value::as_str)
    }
    if let (Some(leaf), Some(c), Some(p)) = (vouchers.last(), closed, auth.get("payload"))
        && let (Some(tx), Some(amount), Some(currency), Some(payee), Some(aud), Some(nonce)) = (
            text(c.get("transaction_id")),
            c.pointer("/payment_amount/amount").and_then(Value::as_u64),
            text(c.pointer("/payment_amount/currency")),
            text(c.pointer("/payee/id")),
            text(p.get("aud")),
            text(p.get("nonce")),
        )
    {
        let binding = payment::binding_digest(&Binding {
            voucher: &leaf.sd_hash(),
            transaction_id: tx,
            amount,
            currency,
            payee,
            aud,
            nonce,
            kid: &holder.kid,
        });
        fill(&mut bundle, "binding", || Value::String(binding));
    }
    let bundle_bytes = match &bundle {
        Value::String(s) => s.as_bytes().to_vec(),
        other => serde_json::to_vec(other).unwrap_or_default(),
    };
    let attestation = b64(&bundle_bytes);
    if let Some(risk) = auth
        .pointer_mut("/disclosures/0")
        .and_then(Value::as_array_mut)
        .and_then(|d| d.last_mut())
        .and_then(|c| c.pointer_mut("/risk_data/ari"))
    {
        // Unless a disclosure of its own carries the bundle (`_sd`), as the daemon writes it.
        if risk.get("_sd").is_none() {
            fill(risk, "attestation", || Value::String(attestation.clone()));
        }
        fill(risk, "attestation_sha256", || {
            Value::String(b64(&Sha256::digest(&bundle_bytes)))
        });
    }
    let terminal = chain::sign_after(&vouchers, std::slice::from_ref(&auth), holder);
    let authorization = terminal.first().map(Segment::presented).unwrap_or_default();
    let presented: Vec<String> = vouchers.iter().map(Segment::presented).collect();
    let receipt = Receipt::new(&presented, authorization, attestation);
    let status = input.get("status").and_then(|claims| {
        use ari::voucher::status::{self, STATUS_LIST_TYP};
        let payload = serde_json::to_vec(claims).unwrap_or_default();
        let token = jws(STATUS_LIST_TYP, &issuer().kid, &payload, issuer());
        status::verify(&token, &[issuer().pk], None).ok()
    });
    (receipt, status)
}
