//! FUZZING ONLY: SD-JWT chains (vouchers, payment mandates, AP2 delegations) built from a
//! description the fuzzer mutates, signed with the fixed keys, and the reverse (a real chain
//! described so that it can be a seed).
//!
//! A chain is described as a JSON array, one object per segment, root first:
//!
//! ```json
//! {"header": {...}, "payload": {...}, "disclosures": [["salt", "name", value], "raw text", ...]}
//! ```
//!
//! Every member is optional and may be any JSON. A disclosure given as a string is used as its
//! text verbatim; anything else is encoded as base64url of its JSON. The harness fills in only
//! what the fuzzer cannot compute, and only where it is absent:
//!
//! - the header's `alg` (`ES256`), `typ` (the root's [`ari::voucher::VOUCHER_TYP`], then
//!   [`ari::sdjwt::DELEGATION_TYP`] for a hop whose mandate names a further holder in `cnf`, else
//!   [`ari::sdjwt::TERMINAL_TYP`]) and `kid` (the signer's thumbprint);
//! - the payload's `delegate_payload` (naming the first disclosure) and, on a hop, `sd_hash`
//!   when the payload has neither `sd_hash` nor `issuer_jwt_hash`;
//! - digests, by reference: a string `"#<n>"` anywhere in the payload or a disclosure becomes
//!   the digest of the segment's disclosure `n`, `"#sd_hash"` and `"#issuer_jwt_hash"` the
//!   bindings to the segment before. A disclosure referring to itself, or to others in a
//!   cycle, keeps the reference as written.
//!
//! The root is signed by the issuer key, each hop by the fixed key that the segment before names
//! in a disclosed `cnf.jwk` (the issuer's when it names none of them), as holders would sign.

use crate::{Key, b64, fill, issuer, key_for, object};
use ari::sdjwt::{self, Segment};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The most segments a description may have (one past what the verifiers accept).
pub const MAX_SEGMENTS: usize = sdjwt::MAX_HOPS + 1;

/// A compact ES256 JWS with exactly this header (any JSON) over `payload`, signed by `key`.
pub fn jws_with_header(header: &Value, payload: &[u8], key: &Key) -> String {
    let mut text = b64(header.to_string().as_bytes());
    text.push('.');
    text.push_str(&b64(payload));
    let digest: [u8; 32] = Sha256::digest(text.as_bytes()).into();
    let sig = key.sign_digest(&digest);
    text.push('.');
    text.push_str(&b64(&sig));
    text
}

/// The reference `"#<n>"` a string stands for, if it is one.
fn reference(s: &str) -> Option<usize> {
    let digits = s.strip_prefix('#')?;
    if digits.is_empty() || digits.len() > 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The disclosure indexes `v` refers to.
fn references(v: &Value, out: &mut Vec<usize>) {
    match v {
        Value::String(s) => out.extend(reference(s)),
        Value::Array(items) => items.iter().for_each(|i| references(i, out)),
        Value::Object(m) => m.values().for_each(|i| references(i, out)),
        _ => {}
    }
}

/// Replaces every reference whose value `lookup` knows.
fn substitute(v: &mut Value, lookup: &dyn Fn(&str) -> Option<String>) {
    match v {
        Value::String(s) => {
            if let Some(d) = lookup(s) {
                *s = d;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| substitute(i, lookup)),
        Value::Object(m) => m.values_mut().for_each(|i| substitute(i, lookup)),
        _ => {}
    }
}

/// What a disclosure value discloses: the last element of its `[salt, (name,) value]` array.
fn disclosed(d: &Value) -> Option<&Value> {
    d.as_array().and_then(|a| a.last())
}

/// The fixed key a segment's disclosures name as the next holder, if any: a disclosed
/// object's `cnf.jwk`, or a disclosed member `cnf`'s `jwk`.
fn next_holder(disclosures: &[Value]) -> Option<&'static Key> {
    disclosures.iter().find_map(|d| {
        let named_cnf = d
            .as_array()
            .filter(|a| a.len() == 3 && a.get(1).and_then(Value::as_str) == Some("cnf"))
            .and_then(|a| a.get(2));
        let cnf = named_cnf.or_else(|| disclosed(d).and_then(|v| v.get("cnf")))?;
        key_for(cnf.get("jwk")?)
    })
}

/// The disclosures of a description, as given.
fn disclosures_of(desc: &Value) -> Vec<Value> {
    match desc.get("disclosures") {
        Some(Value::Array(d)) => d.clone(),
        _ => Vec::new(),
    }
}

/// Signs one described segment as segment `index`, after `previous`, by `signer`.
pub fn sign_segment(
    desc: &Value,
    index: usize,
    previous: Option<&Segment>,
    signer: &Key,
) -> Segment {
    let bindings = |s: &str| -> Option<String> {
        match s {
            "#sd_hash" => previous.map(Segment::sd_hash),
            "#issuer_jwt_hash" => previous.map(Segment::issuer_jwt_hash),
            _ => None,
        }
    };
    let given = disclosures_of(desc);
    // Encode the disclosures in an order where each one's references are known before it is
    // written (it digests as it is written); what a cycle leaves is written as it stands.
    let mut texts: Vec<Option<String>> = vec![None; given.len()];
    let write = |d: &Value, texts: &[Option<String>]| -> String {
        match d {
            Value::String(s) => s.clone(),
            other => {
                let mut v = other.clone();
                substitute(&mut v, &|s| {
                    bindings(s).or_else(|| {
                        let n = reference(s)?;
                        texts.get(n)?.as_deref().map(sdjwt::digest)
                    })
                });
                b64(v.to_string().as_bytes())
            }
        }
    };
    loop {
        let mut progress = false;
        for (i, d) in given.iter().enumerate() {
            if texts.get(i).is_some_and(Option::is_some) {
                continue;
            }
            let mut refs = Vec::new();
            references(d, &mut refs);
            let ready = refs
                .iter()
                .all(|r| *r != i && (*r >= texts.len() || texts[*r].is_some()));
            if ready {
                texts[i] = Some(write(d, &texts));
                progress = true;
            }
        }
        if !progress {
            break;
        }
    }
    for (i, d) in given.iter().enumerate() {
        if texts[i].is_none() {
            texts[i] = Some(write(d, &texts));
        }
    }
    let disclosures: Vec<String> = texts.into_iter().flatten().collect();
    let digest_of = |s: &str| -> Option<String> {
        bindings(s).or_else(|| disclosures.get(reference(s)?).map(|d| sdjwt::digest(d)))
    };

    let mut payload = desc.get("payload").cloned().unwrap_or_else(object);
    substitute(&mut payload, &digest_of);
    if let Some(first) = disclosures.first() {
        fill(&mut payload, "delegate_payload", || {
            let mut item = Map::new();
            item.insert("...".into(), sdjwt::digest(first).into());
            Value::Array(vec![Value::Object(item)])
        });
    }
    if let (Some(prev), Value::Object(m)) = (previous, &mut payload)
        && !m.contains_key("sd_hash")
        && !m.contains_key("issuer_jwt_hash")
    {
        m.insert("sd_hash".into(), prev.sd_hash().into());
    }

    let mut header = match desc.get("header") {
        Some(Value::Object(h)) => Value::Object(h.clone()),
        _ => object(),
    };
    fill(&mut header, "alg", || "ES256".into());
    fill(&mut header, "typ", || {
        let delegates = given
            .first()
            .and_then(disclosed)
            .is_some_and(|m| m.get("cnf").is_some());
        let typ = match (index, delegates) {
            (0, _) => ari::voucher::VOUCHER_TYP,
            (_, true) => sdjwt::DELEGATION_TYP,
            (_, false) => sdjwt::TERMINAL_TYP,
        };
        typ.into()
    });
    fill(&mut header, "kid", || signer.kid.clone().into());
    let payload = serde_json::to_vec(&payload).unwrap_or_default();
    Segment {
        jwt: jws_with_header(&header, &payload, signer),
        disclosures,
    }
}

/// The key that signs the segment after the one `desc` describes.
pub fn signer_after(desc: &Value) -> &'static Key {
    next_holder(&disclosures_of(desc)).unwrap_or(issuer())
}

/// Signs a described chain (see the module's header), root first.
pub fn sign_segments(descs: &[Value]) -> Vec<Segment> {
    sign_after(&[], descs, issuer())
}

/// Signs described segments after `before` (already signed), the first by `signer`.
pub fn sign_after(before: &[Segment], descs: &[Value], signer: &'static Key) -> Vec<Segment> {
    let mut out: Vec<Segment> = before.to_vec();
    let mut signer = signer;
    for desc in descs {
        let seg = sign_segment(desc, out.len(), out.last(), signer);
        out.push(seg);
        signer = signer_after(desc);
    }
    out.split_off(before.len())
}

/// The JSON a base64url text decodes to, if it does.
pub fn decode_json(text: &str) -> Option<Value> {
    let bytes = ari::jose::b64url_decode(text).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Describes real segments the way [`sign_segments`] reads them back: header without `alg` and
/// `kid`, digests of the segment's own disclosures as references, `sd_hash` left out (it is
/// filled in again) and `issuer_jwt_hash` as its reference. Signed again with the fixed keys,
/// a description of a chain that verified verifies, once its holders are fixed keys.
pub fn describe(segments: &[Segment]) -> Vec<Value> {
    segments
        .iter()
        .enumerate()
        .map(|(i, seg)| {
            let mut parts = seg.jwt.split('.');
            let mut header = parts.next().and_then(decode_json).unwrap_or_else(object);
            let mut payload = parts.next().and_then(decode_json).unwrap_or_else(object);
            if let Value::Object(h) = &mut header {
                h.remove("alg");
                h.remove("kid");
            }
            let digests: Vec<String> = seg.disclosures.iter().map(|d| sdjwt::digest(d)).collect();
            let as_reference = |s: &str| -> Option<String> {
                digests.iter().position(|d| d == s).map(|n| format!("#{n}"))
            };
            let mut disclosures: Vec<Value> = seg
                .disclosures
                .iter()
                .map(|d| decode_json(d).unwrap_or_else(|| Value::String(d.clone())))
                .collect();
            for d in disclosures.iter_mut().filter(|d| !d.is_string()) {
                substitute(d, &as_reference);
            }
            substitute(&mut payload, &as_reference);
            if let (true, Value::Object(p)) = (i > 0, &mut payload) {
                p.remove("sd_hash");
                if p.contains_key("issuer_jwt_hash") {
                    p.insert("issuer_jwt_hash".into(), "#issuer_jwt_hash".into());
                }
            }
            serde_json::json!({"header": header, "payload": payload, "disclosures": disclosures})
        })
        .collect()
}
