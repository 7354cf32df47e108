//! SD-JWT (RFC 9901) and delegation chains of them, as AP2 v0.2 mandates use them
//! (draft-gco-oauth-delegate-sd-jwt-00).
//!
//! An SD-JWT segment is an ES256 compact JWS followed by its disclosures, each ending in `~`:
//! `<jwt>~<disclosure>~…~`. A disclosure is base64url JSON, `[salt, name, value]` for an object
//! member or `[salt, value]` for an array element; the signed payload names it by its digest,
//! base64url SHA-256 of the disclosure's text (in an object's `_sd` array, or as an array
//! element `{"...": digest}`), so a holder can leave any of them out.
//!
//! A delegation chain joins segments with `~~` (each but the last losing its final `~` to the
//! join): the root, signed by an issuer, then hops each signed by the key the previous hop's
//! resolved payload names in `cnf.jwk`. A hop binds to the segment before it, exactly as that
//! segment is presented, by `sd_hash` (SHA-256 of `<jwt>~<disclosures>~`), or, where the
//! holder may drop disclosures, by `issuer_jwt_hash` (SHA-256 of the JWS alone). A hop's `typ`
//! is `kb+sd-jwt+kb` when it delegates further (and then names the next holder's `cnf`) and
//! `kb+sd-jwt` when it is the last (no `cnf`, and it answers the verifier's `aud` and
//! `nonce`). Each segment's payload carries its mandate as the one disclosed item of its
//! `delegate_payload` array.
//!
//! This module reads and checks such chains; what a mandate may contain is the payment
//! module's concern.

use crate::jose::{self, Jwk, PublicKey};
use base64ct::{Base64UrlUnpadded, Encoding};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// `typ` of a hop that delegates further.
pub const DELEGATION_TYP: &str = "kb+sd-jwt+kb";
/// `typ` of the last hop.
pub const TERMINAL_TYP: &str = "kb+sd-jwt";
/// The hash algorithm of every digest here.
pub const SD_ALG: &str = "sha-256";

/// Longest chain accepted, in segments.
pub const MAX_HOPS: usize = 16;
/// Most disclosures one segment may carry.
pub const MAX_DISCLOSURES: usize = 256;

/// Why a chain was refused; names the segment where it can.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SdJwtError {
    /// Not well formed (says what).
    #[error("malformed SD-JWT: {0}")]
    Format(String),
    /// A segment's JWS failed.
    #[error("segment {segment}: {source}")]
    Jose {
        segment: usize,
        #[source]
        source: jose::JoseError,
    },
    /// A hop's `typ` is not the one its place requires.
    #[error("segment {segment}: typ {found:?} where {expected} was required")]
    Type {
        segment: usize,
        expected: &'static str,
        found: String,
    },
    /// A hop is not bound to the segment before it.
    #[error("segment {0}: sd_hash / issuer_jwt_hash does not match the segment before it")]
    Binding(usize),
    /// The previous segment names no key for this hop.
    #[error("segment {0}: the segment before it names no holder key (cnf.jwk)")]
    NoHolderKey(usize),
    /// The last hop names a further holder, or a middle one names none.
    #[error("segment {0}: {1}")]
    Holder(usize, &'static str),
    /// The last hop's `aud` or `nonce` is not the verifier's.
    #[error("the last hop's {0} is not the one expected")]
    Audience(&'static str),
    /// A time claim fails at the time of verification.
    #[error("segment {segment}: {claim} fails at {at}")]
    Time {
        segment: usize,
        claim: &'static str,
        at: i64,
    },
}

fn format(message: impl Into<String>) -> SdJwtError {
    SdJwtError::Format(message.into())
}

/// base64url SHA-256 of `text`.
pub fn digest(text: &str) -> String {
    jose::b64url(&Sha256::digest(text.as_bytes()))
}

/// One disclosure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disclosure {
    /// Its text, as presented.
    pub encoded: String,
    /// The member name, for an object member; `None` for an array element.
    pub name: Option<String>,
    /// The disclosed value.
    pub value: Value,
}

impl Disclosure {
    /// An object member `name: value` with this salt.
    pub fn member(salt: &str, name: &str, value: Value) -> Self {
        let json = Value::Array(vec![salt.into(), name.into(), value.clone()]);
        Self {
            encoded: jose::b64url(json.to_string().as_bytes()),
            name: Some(name.to_string()),
            value,
        }
    }

    /// An array element with this salt.
    pub fn element(salt: &str, value: Value) -> Self {
        let json = Value::Array(vec![salt.into(), value.clone()]);
        Self {
            encoded: jose::b64url(json.to_string().as_bytes()),
            name: None,
            value,
        }
    }

    /// Reads a disclosure's text.
    pub fn parse(encoded: &str) -> Result<Self, SdJwtError> {
        let bytes = Base64UrlUnpadded::decode_vec(encoded)
            .map_err(|_| format("a disclosure is not base64url"))?;
        let json: Value =
            serde_json::from_slice(&bytes).map_err(|_| format("a disclosure is not JSON"))?;
        let (name, value) = match json.as_array().map(Vec::as_slice) {
            Some([Value::String(_), Value::String(name), value]) => {
                if name == "_sd" || name == "..." {
                    return Err(format("a disclosure may not name _sd or ..."));
                }
                (Some(name.clone()), value.clone())
            }
            Some([Value::String(_), value]) => (None, value.clone()),
            _ => {
                return Err(format(
                    "a disclosure is [salt, name, value] or [salt, value]",
                ));
            }
        };
        Ok(Self {
            encoded: encoded.to_string(),
            name,
            value,
        })
    }

    /// Its digest, as the payload names it.
    pub fn digest(&self) -> String {
        digest(&self.encoded)
    }
}

/// One segment of a chain: the JWS and its disclosures' texts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub jwt: String,
    pub disclosures: Vec<String>,
}

impl Segment {
    /// The segment as presented: `<jwt>~<d>~…~`.
    pub fn presented(&self) -> String {
        let mut s = self.jwt.clone();
        s.push('~');
        for d in &self.disclosures {
            s.push_str(d);
            s.push('~');
        }
        s
    }

    /// What a hop after it puts in `sd_hash`.
    pub fn sd_hash(&self) -> String {
        digest(&self.presented())
    }

    /// What a hop after it puts in `issuer_jwt_hash`.
    pub fn issuer_jwt_hash(&self) -> String {
        digest(&self.jwt)
    }

    fn parse(text: &str) -> Result<Self, SdJwtError> {
        let body = text
            .strip_suffix('~')
            .ok_or_else(|| format("a segment ends with '~'"))?;
        let mut parts = body.split('~');
        let jwt = parts.next().unwrap_or_default().to_string();
        if jwt.split('.').count() != 3 {
            return Err(format("a segment starts with a compact JWS"));
        }
        let disclosures: Vec<String> = parts.map(str::to_string).collect();
        if disclosures.len() > MAX_DISCLOSURES {
            return Err(format("too many disclosures"));
        }
        if disclosures.iter().any(String::is_empty) {
            return Err(format("an empty disclosure"));
        }
        Ok(Self { jwt, disclosures })
    }
}

/// Splits a chain into its segments: `~~` joins them, and each ends in `~`.
pub fn split(chain: &str) -> Result<Vec<Segment>, SdJwtError> {
    let texts: Vec<&str> = chain.split("~~").collect();
    if texts.len() > MAX_HOPS {
        return Err(format("too many segments"));
    }
    let last = texts.len() - 1;
    texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            if i < last {
                Segment::parse(&format!("{t}~"))
            } else {
                Segment::parse(t)
            }
        })
        .collect()
}

/// Joins segments into a chain.
pub fn join(segments: &[Segment]) -> String {
    let mut out = String::new();
    for (i, s) in segments.iter().enumerate() {
        let p = s.presented();
        if i + 1 < segments.len() {
            out.push_str(p.strip_suffix('~').unwrap_or(&p));
            out.push_str("~~");
        } else {
            out.push_str(&p);
        }
    }
    out
}

/// Replaces the members `names` of `object` by digests in its `_sd` array: the disclosures a
/// holder may later withhold, one salt each (16 random bytes, base64url, from the caller).
pub fn conceal(
    object: &mut Map<String, Value>,
    names: &[&str],
    salts: &[String],
) -> Result<Vec<Disclosure>, SdJwtError> {
    if salts.len() < names.len() {
        return Err(format("a salt for each concealed member"));
    }
    let mut out = Vec::new();
    let mut digests: Vec<Value> = object
        .get("_sd")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (name, salt) in names.iter().zip(salts) {
        let Some(value) = object.remove(*name) else {
            continue;
        };
        let d = Disclosure::member(salt, name, value);
        digests.push(Value::String(d.digest()));
        out.push(d);
    }
    if !digests.is_empty() {
        // Sorted, so the order of the digests says nothing about the claims' order.
        digests.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
        object.insert("_sd".into(), Value::Array(digests));
    }
    Ok(out)
}

/// How a hop binds to the segment before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Binding {
    /// `sd_hash`: the segment as presented, disclosures and all.
    SdHash(String),
    /// `issuer_jwt_hash`: the JWS alone, so a later holder may drop disclosures.
    IssuerJwtHash(String),
}

impl Binding {
    /// The binding to `previous` as presented.
    pub fn sd_hash(previous: &Segment) -> Self {
        Self::SdHash(previous.sd_hash())
    }

    /// The binding to `previous`'s JWS alone.
    pub fn issuer_jwt_hash(previous: &Segment) -> Self {
        Self::IssuerJwtHash(previous.issuer_jwt_hash())
    }
}

/// The claims of a segment's payload that may not come from a disclosure.
pub const PROTOCOL_CLAIMS: &[&str] = &[
    "sd_hash",
    "issuer_jwt_hash",
    "aud",
    "nonce",
    "iat",
    "exp",
    "nbf",
    "cnf",
    "delegate_payload",
    "iss",
    "sub",
    "jti",
    "agent",
    "status",
    "log_index",
];

/// A segment to be signed: its payload names `mandate` as the one disclosed item of
/// `delegate_payload` (salted with `salt`), beside `claims`; `disclosures` are the mandate's
/// own concealed members ([`conceal`]) and go out after the mandate's disclosure.
#[derive(Debug, Clone)]
pub struct Draft {
    pub typ: String,
    pub kid: String,
    pub claims: Map<String, Value>,
    pub item: Disclosure,
    pub disclosures: Vec<Disclosure>,
}

impl Draft {
    /// A root, signed by an issuer (`typ` e.g. `dc+sd-jwt`).
    pub fn root(
        typ: &str,
        kid: &str,
        salt: &str,
        mandate: Value,
        disclosures: Vec<Disclosure>,
    ) -> Self {
        Self {
            typ: typ.into(),
            kid: kid.into(),
            claims: Map::new(),
            item: Disclosure::element(salt, mandate),
            disclosures,
        }
    }

    /// A hop signed by the holder named in the segment before: [`DELEGATION_TYP`] if `mandate`
    /// names a further holder in `cnf`, else [`TERMINAL_TYP`].
    #[allow(clippy::too_many_arguments)]
    pub fn hop(
        kid: &str,
        salt: &str,
        mandate: Value,
        disclosures: Vec<Disclosure>,
        binding: Binding,
        iat: i64,
        aud: &str,
        nonce: &str,
    ) -> Self {
        let typ = if mandate.get("cnf").is_some() {
            DELEGATION_TYP
        } else {
            TERMINAL_TYP
        };
        let mut claims = Map::new();
        claims.insert("iat".into(), iat.into());
        claims.insert("aud".into(), aud.into());
        claims.insert("nonce".into(), nonce.into());
        let (name, hash) = match binding {
            Binding::SdHash(h) => ("sd_hash", h),
            Binding::IssuerJwtHash(h) => ("issuer_jwt_hash", h),
        };
        claims.insert(name.into(), hash.into());
        Self {
            typ: typ.into(),
            kid: kid.into(),
            claims,
            item: Disclosure::element(salt, mandate),
            disclosures,
        }
    }

    /// The JWS's signing input: what the signer's key signs (its digest).
    pub fn signing_input(&self) -> Result<jose::SigningInput, jose::JoseError> {
        let mut payload = Map::new();
        let mut item = Map::new();
        item.insert("...".into(), self.item.digest().into());
        payload.insert(
            "delegate_payload".into(),
            Value::Array(vec![Value::Object(item)]),
        );
        for (k, v) in &self.claims {
            payload.insert(k.clone(), v.clone());
        }
        payload.insert("_sd_alg".into(), SD_ALG.into());
        jose::SigningInput::new(&jose::Header::es256(&self.typ, &self.kid), &payload)
    }

    /// The signed segment, from the signing input and the raw `r||s` signature over its
    /// digest.
    pub fn finish(&self, input: jose::SigningInput, signature: &[u8]) -> Segment {
        let mut disclosures = vec![self.item.encoded.clone()];
        disclosures.extend(self.disclosures.iter().map(|d| d.encoded.clone()));
        Segment {
            jwt: input.finish(signature),
            disclosures,
        }
    }
}

/// Checks an ES256 compact JWS under `key`: its header and payload.
fn verify_jws(jwt: &str, key: &PublicKey) -> Result<(Map<String, Value>, Value), jose::JoseError> {
    let (header, payload) = jose::verify_with(jwt, key, |_| Ok(()))?;
    let payload = serde_json::from_slice(&payload)
        .map_err(|e| jose::JoseError::Json("payload", e.to_string()))?;
    Ok((header, payload))
}

/// Replaces every digest in `value` that one of `disclosures` answers with what it discloses
/// (recursively, as RFC 9901 §7.1 says), drops `_sd`, `_sd_alg` and digests nobody disclosed
/// (decoys or withheld claims), and refuses a disclosure used twice or not at all.
pub fn resolve(value: &Value, disclosures: &[Disclosure]) -> Result<Value, SdJwtError> {
    let by_digest: std::collections::HashMap<String, &Disclosure> =
        disclosures.iter().map(|d| (d.digest(), d)).collect();
    if by_digest.len() != disclosures.len() {
        return Err(format("the same disclosure twice"));
    }
    let mut used = std::collections::HashSet::new();
    let out = resolve_in(value, &by_digest, &mut used, 0)?;
    if used.len() != disclosures.len() {
        return Err(format("a disclosure no digest in the payload names"));
    }
    Ok(out)
}

/// The disclosure with digest `d`, marked used; `None` for a digest nobody disclosed.
fn take<'d>(
    by_digest: &std::collections::HashMap<String, &'d Disclosure>,
    used: &mut std::collections::HashSet<String>,
    d: &str,
) -> Result<Option<&'d Disclosure>, SdJwtError> {
    match by_digest.get(d) {
        Some(found) => {
            if !used.insert(d.to_string()) {
                return Err(format("a digest named twice"));
            }
            Ok(Some(*found))
        }
        None => Ok(None),
    }
}

fn resolve_in(
    value: &Value,
    by_digest: &std::collections::HashMap<String, &Disclosure>,
    used: &mut std::collections::HashSet<String>,
    depth: usize,
) -> Result<Value, SdJwtError> {
    if depth > 32 {
        return Err(format("nested too deep"));
    }
    match value {
        Value::Object(map) => {
            let mut out = Map::new();
            if let Some(sd) = map.get("_sd") {
                let digests = sd
                    .as_array()
                    .ok_or_else(|| format("_sd is an array of digests"))?;
                for d in digests {
                    let d = d.as_str().ok_or_else(|| format("a digest is a string"))?;
                    if let Some(found) = take(by_digest, used, d)? {
                        let name = found
                            .name
                            .as_ref()
                            .ok_or_else(|| format("an element disclosure named in _sd"))?;
                        if map.contains_key(name) || out.contains_key(name) {
                            return Err(format(format!("claim {name} disclosed twice")));
                        }
                        let v = found.value.clone();
                        out.insert(name.clone(), resolve_in(&v, by_digest, used, depth + 1)?);
                    }
                }
            }
            for (k, v) in map {
                if k == "_sd" || k == "_sd_alg" {
                    continue;
                }
                out.insert(k.clone(), resolve_in(v, by_digest, used, depth + 1)?);
            }
            Ok(Value::Object(out))
        }
        Value::Array(items) => {
            let mut out = Vec::new();
            for item in items {
                let digest_only = item
                    .as_object()
                    .filter(|o| o.len() == 1)
                    .and_then(|o| o.get("..."));
                match digest_only {
                    Some(d) => {
                        let d = d.as_str().ok_or_else(|| format("a digest is a string"))?;
                        if let Some(found) = take(by_digest, used, d)? {
                            if found.name.is_some() {
                                return Err(format("a member disclosure named as an element"));
                            }
                            let v = found.value.clone();
                            out.push(resolve_in(&v, by_digest, used, depth + 1)?);
                        }
                    }
                    None => out.push(resolve_in(item, by_digest, used, depth + 1)?),
                }
            }
            Ok(Value::Array(out))
        }
        other => Ok(other.clone()),
    }
}

/// What the verifier of a chain expects of its last hop.
#[derive(Debug, Clone, Copy, Default)]
pub struct Expect<'a> {
    /// The last hop's `aud`, if the verifier checks it.
    pub aud: Option<&'a str>,
    /// The last hop's `nonce`, if the verifier checks it.
    pub nonce: Option<&'a str>,
    /// Verification time, Unix seconds; `None` skips the time checks (the caller makes its own).
    pub at: Option<i64>,
    /// Allowed clock skew, seconds.
    pub skew: i64,
    /// The chain is open-ended: every hop delegates (`kb+sd-jwt+kb`, naming a further holder)
    /// and none answers a verifier, as in a voucher chain before a payment.
    pub open: bool,
}

/// A checked chain: each segment's header and resolved payload, and the mandate each carries
/// (its one disclosed `delegate_payload` item).
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    pub headers: Vec<Map<String, Value>>,
    pub payloads: Vec<Value>,
    pub mandates: Vec<Value>,
    /// Each mandate as its disclosure holds it, before its own concealed parts are resolved.
    pub raw_mandates: Vec<Value>,
}

/// Verifies a chain: the root under `root`, each hop under the key the mandate before it names
/// in `cnf.jwk`, each binding, the hops' types and holders, the time claims, and the last hop's
/// `aud` and `nonce` where `expect` gives them.
pub fn verify(chain: &str, root: &PublicKey, expect: &Expect) -> Result<Verified, SdJwtError> {
    verify_segments(&split(chain)?, root, expect)
}

/// As [`verify`], on a chain already split.
pub fn verify_segments(
    segments: &[Segment],
    root: &PublicKey,
    expect: &Expect,
) -> Result<Verified, SdJwtError> {
    let last = segments
        .len()
        .checked_sub(1)
        .ok_or_else(|| format("an empty chain"))?;
    // Where the chain ends in a payment, its last hop is terminal; an open chain has none.
    let terminal = if expect.open { None } else { Some(last) };
    let mut out = Verified {
        headers: Vec::new(),
        payloads: Vec::new(),
        mandates: Vec::new(),
        raw_mandates: Vec::new(),
    };
    let mut key = *root;
    for (i, seg) in segments.iter().enumerate() {
        let (header, payload) =
            verify_jws(&seg.jwt, &key).map_err(|source| SdJwtError::Jose { segment: i, source })?;
        if i > 0 {
            let typ = header
                .get("typ")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let (expected, accepted): (&'static str, [&str; 2]) = if Some(i) == terminal {
                (TERMINAL_TYP, [TERMINAL_TYP, "kb-sd-jwt"])
            } else {
                (DELEGATION_TYP, [DELEGATION_TYP, "kb-sd-jwt+kb"])
            };
            if !accepted.contains(&typ) {
                return Err(SdJwtError::Type {
                    segment: i,
                    expected,
                    found: typ.to_string(),
                });
            }
            let previous = segments
                .get(i - 1)
                .ok_or_else(|| format("a hop with nothing before it"))?;
            bound(&payload, previous, i)?;
        }
        if let Some(alg) = payload.get("_sd_alg")
            && alg != SD_ALG
        {
            return Err(format(format!("segment {i}: _sd_alg must be {SD_ALG}")));
        }
        let disclosures = seg
            .disclosures
            .iter()
            .map(|d| Disclosure::parse(d))
            .collect::<Result<Vec<_>, _>>()?;
        let item = payload
            .get("delegate_payload")
            .and_then(|p| p.get(0))
            .and_then(|i| i.get("..."))
            .and_then(Value::as_str);
        let raw = disclosures
            .iter()
            .find(|d| item == Some(d.digest().as_str()))
            .map(|d| d.value.clone())
            .unwrap_or(Value::Null);
        let resolved = resolve(&payload, &disclosures)?;
        // What binds, answers or times a segment is signed in the clear: a holder could leave
        // out a disclosed one, or a signer pass one claim for another.
        if let Some(name) = PROTOCOL_CLAIMS
            .iter()
            .find(|n| resolved.get(**n).is_some() && payload.get(**n).is_none())
        {
            return Err(format(format!(
                "segment {i}: {name} may not be selectively disclosed"
            )));
        }
        let items = resolved
            .get("delegate_payload")
            .and_then(Value::as_array)
            .ok_or_else(|| format(format!("segment {i}: no delegate_payload array")))?;
        let [mandate] = items.as_slice() else {
            return Err(format(format!(
                "segment {i}: delegate_payload discloses {} items, not one",
                items.len()
            )));
        };
        times(&resolved, i, expect)?;
        times(mandate, i, expect)?;
        if i > 0 && Some(i) == terminal {
            if resolved.get("iat").is_none() {
                return Err(format("the last hop has no iat"));
            }
            for (claim, want) in [("aud", expect.aud), ("nonce", expect.nonce)] {
                if let Some(want) = want
                    && resolved.get(claim).and_then(Value::as_str) != Some(want)
                {
                    return Err(SdJwtError::Audience(claim));
                }
            }
        }
        let cnf = mandate.get("cnf").and_then(|c| c.get("jwk"));
        match (Some(i) == terminal, cnf) {
            (true, Some(_)) if i > 0 => {
                return Err(SdJwtError::Holder(i, "the last hop names a further holder"));
            }
            (false, None) => return Err(SdJwtError::NoHolderKey(i + 1)),
            (false, Some(jwk)) => {
                key = serde_json::from_value::<Jwk>(jwk.clone())
                    .map_err(|_| SdJwtError::NoHolderKey(i + 1))?
                    .to_public_key()
                    .map_err(|_| SdJwtError::NoHolderKey(i + 1))?;
            }
            _ => {}
        }
        out.headers.push(header);
        out.mandates.push(mandate.clone());
        out.raw_mandates.push(raw);
        out.payloads.push(resolved);
    }
    Ok(out)
}

/// A hop's binding to the segment before it: exactly one of `sd_hash`, `issuer_jwt_hash`.
fn bound(payload: &Value, previous: &Segment, segment: usize) -> Result<(), SdJwtError> {
    let sd = payload.get("sd_hash").and_then(Value::as_str);
    let jwt = payload.get("issuer_jwt_hash").and_then(Value::as_str);
    let ok = match (sd, jwt) {
        (Some(h), None) => h == previous.sd_hash(),
        (None, Some(h)) => h == previous.issuer_jwt_hash(),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(SdJwtError::Binding(segment))
    }
}

/// `exp` not passed and `iat` not in the future, with the skew.
fn times(v: &Value, segment: usize, expect: &Expect) -> Result<(), SdJwtError> {
    let Some(at) = expect.at else {
        return Ok(());
    };
    if let Some(exp) = v.get("exp").and_then(Value::as_i64)
        && at > exp.saturating_add(expect.skew)
    {
        return Err(SdJwtError::Time {
            segment,
            claim: "exp",
            at,
        });
    }
    if let Some(iat) = v.get("iat").and_then(Value::as_i64)
        && iat > at.saturating_add(expect.skew)
    {
        return Err(SdJwtError::Time {
            segment,
            claim: "iat",
            at,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
    use super::*;
    use serde_json::json;

    /// AP2's golden vectors for delegate SD-JWT chains (tests/vectors/ap2/).
    fn vectors() -> Value {
        serde_json::from_str(include_str!(
            "../../tests/vectors/ap2/delegate_sd_jwt_vectors.json"
        ))
        .unwrap()
    }

    fn at_path<'v>(payloads: &'v [Value], path: &[Value]) -> Option<&'v Value> {
        let mut v = payloads.get(path[0].as_u64()? as usize)?;
        for p in &path[1..] {
            v = v.get(p.as_str()?)?;
        }
        Some(v)
    }

    #[test]
    fn the_ap2_golden_vectors_verify_and_say_what_they_should() {
        let set = vectors();
        for v in set["vectors"].as_array().unwrap() {
            let id = v["id"].as_str().unwrap();
            let token = v["compact_serialization"].as_str().unwrap();
            let root: Jwk = serde_json::from_value(v["root_public_jwk"].clone()).unwrap();
            let expect = Expect {
                aud: v["verification"]["expected_aud"].as_str(),
                nonce: v["verification"]["expected_nonce"].as_str(),
                at: Some(1_785_268_700),
                skew: 300,
                open: false,
            };
            let got = verify(token, &root.to_public_key().unwrap(), &expect)
                .unwrap_or_else(|e| panic!("{id}: {e}"));
            assert_eq!(
                got.mandates.len() as u64,
                v["expected"]["hop_count"].as_u64().unwrap(),
                "{id}"
            );
            for a in v["expected"]["payload_assertions"].as_array().unwrap() {
                let path = a["path"].as_array().unwrap();
                let found = at_path(&got.mandates, path);
                if let Some(want) = a.get("equals") {
                    assert_eq!(found, Some(want), "{id} {path:?}");
                }
                if a.get("absent").is_some() {
                    assert_eq!(found, None, "{id} {path:?}");
                }
                if a.get("present").is_some() {
                    assert!(found.is_some(), "{id} {path:?}");
                }
            }
            // The segments split and join back to the very bytes.
            assert_eq!(join(&split(token).unwrap()), token, "{id}");
        }
    }

    #[test]
    fn tampering_with_a_vector_is_caught_where_it_happens() {
        let set = vectors();
        let v = &set["vectors"][2];
        let token = v["compact_serialization"].as_str().unwrap();
        let root: Jwk = serde_json::from_value(v["root_public_jwk"].clone()).unwrap();
        let root = root.to_public_key().unwrap();
        let expect = Expect {
            aud: Some("merchant"),
            nonce: Some("merchant-nonce-456"),
            at: Some(1_785_268_700),
            skew: 300,
            open: false,
        };
        // Another verifier's audience or nonce.
        let other = Expect {
            aud: Some("someone-else"),
            ..expect
        };
        assert_eq!(
            verify(token, &root, &other),
            Err(SdJwtError::Audience("aud"))
        );
        let other = Expect {
            nonce: Some("replayed"),
            ..expect
        };
        assert_eq!(
            verify(token, &root, &other),
            Err(SdJwtError::Audience("nonce"))
        );
        // A disclosure of the root left out: the middle hop's sd_hash no longer matches.
        let mut segs = split(token).unwrap();
        segs[0].disclosures.remove(0);
        assert_eq!(
            verify(&join(&segs), &root, &expect),
            Err(SdJwtError::Binding(1))
        );
        // The hops swapped in place: types and keys no longer line up.
        let mut segs = split(token).unwrap();
        segs.swap(1, 2);
        assert!(verify(&join(&segs), &root, &expect).is_err());
        // Cut after the middle hop: its typ says it delegates, so it cannot be last.
        let segs = split(token).unwrap();
        assert!(matches!(
            verify(&join(&segs[..2]), &root, &expect),
            Err(SdJwtError::Type { segment: 1, .. })
        ));
        // Another root key, or a time before the hops were made.
        let other_root: Jwk =
            serde_json::from_value(set["keys"]["pinned"]["agent-sa"].clone()).unwrap();
        assert!(matches!(
            verify(token, &other_root.to_public_key().unwrap(), &expect),
            Err(SdJwtError::Jose { segment: 0, .. })
        ));
        let early = Expect {
            at: Some(1_700_000_000),
            ..expect
        };
        assert!(matches!(
            verify(token, &root, &early),
            Err(SdJwtError::Time { claim: "iat", .. })
        ));
    }

    fn pinned(set: &Value, name: &str) -> (p256::ecdsa::SigningKey, PublicKey) {
        let d = jose::b64url_decode(set["keys"]["pinned"][name]["d"].as_str().unwrap()).unwrap();
        let sk = p256::ecdsa::SigningKey::from_slice(&d).unwrap();
        let pk = PublicKey::from_sec1(sk.verifying_key().to_sec1_point(false).as_bytes()).unwrap();
        (sk, pk)
    }

    fn sign(draft: &Draft, sk: &p256::ecdsa::SigningKey) -> Segment {
        use p256::ecdsa::signature::hazmat::PrehashSigner;
        let input = draft.signing_input().unwrap();
        let sig: p256::ecdsa::Signature = sk.sign_prehash(&input.digest()).unwrap();
        draft.finish(input, &sig.to_bytes())
    }

    /// A chain made here, with AP2's pinned keys: root by user-root, a delegating hop by
    /// agent-sa, the last by provider-cp. Printed with `--nocapture` for checking it by hand
    /// with AP2's SDK.
    fn made_here(set: &Value, binding_by_jwt: bool) -> (String, PublicKey) {
        made_here_paying(set, binding_by_jwt, "m-1", json!([]))
    }

    /// As [`made_here`], the middle hop with `middle_constraints` and the payment to `payee`.
    fn made_here_paying(
        set: &Value,
        binding_by_jwt: bool,
        payee: &str,
        middle_constraints: Value,
    ) -> (String, PublicKey) {
        let (root_sk, root_pk) = pinned(set, "user-root");
        let (agent_sk, agent_pk) = pinned(set, "agent-sa");
        let (cp_sk, cp_pk) = pinned(set, "provider-cp");
        let mut open = serde_json::json!({
            "vct": "mandate.payment.open.1",
            "constraints": [],
            "payee": {"id": "m-1", "name": "Acme Store"},
            "payment_amount": {"amount": 2500, "currency": "USD"},
            "cnf": {"jwk": agent_pk.to_jwk(), "kid": agent_pk.thumbprint()},
        });
        let concealed = conceal(
            open.as_object_mut().unwrap(),
            &["payee", "payment_amount"],
            &[
                "c2FsdC1wYXllZS0wMDAwMA".into(),
                "c2FsdC1hbW91bnQtMDAwMA".into(),
            ],
        )
        .unwrap();
        let root = sign(
            &Draft::root(
                "dc+sd-jwt",
                &root_pk.thumbprint(),
                "c2FsdC1yb290LTAwMDAwMA",
                open,
                concealed,
            ),
            &root_sk,
        );
        let binding = |s: &Segment| {
            if binding_by_jwt {
                Binding::issuer_jwt_hash(s)
            } else {
                Binding::sd_hash(s)
            }
        };
        let middle_mandate = serde_json::json!({
            "vct": "mandate.payment.open.1",
            "constraints": middle_constraints,
            "cnf": {"jwk": cp_pk.to_jwk()},
        });
        let middle = sign(
            &Draft::hop(
                &agent_pk.thumbprint(),
                "c2FsdC1taWRkbGUtMDAwMA",
                middle_mandate,
                Vec::new(),
                binding(&root),
                1_785_268_602,
                "cp-agent",
                "cp-nonce-123",
            ),
            &agent_sk,
        );
        let closed = serde_json::json!({
            "vct": "mandate.payment.1",
            "transaction_id": "tx_made_here",
            "payee": {"id": payee, "name": "Acme Store"},
            "payment_amount": {"amount": 2500, "currency": "USD"},
            "payment_instrument": {"id": "pi-1", "type": "credit"},
        });
        let last = sign(
            &Draft::hop(
                &cp_pk.thumbprint(),
                "c2FsdC1sYXN0LTAwMDAwMA",
                closed,
                Vec::new(),
                binding(&middle),
                1_785_268_602,
                "merchant",
                "merchant-nonce-789",
            ),
            &cp_sk,
        );
        (join(&[root, middle, last]), root_pk)
    }

    #[test]
    fn chains_made_here_verify_in_both_binding_modes() {
        let set = vectors();
        for by_jwt in [false, true] {
            let (chain, root) = made_here(&set, by_jwt);
            println!("made here (issuer_jwt_hash: {by_jwt}): {chain}");
            let expect = Expect {
                aud: Some("merchant"),
                nonce: Some("merchant-nonce-789"),
                at: Some(1_785_268_700),
                skew: 300,
                open: false,
            };
            let got = verify(&chain, &root, &expect).unwrap();
            assert_eq!(got.mandates.len(), 3);
            assert_eq!(got.mandates[0]["payee"]["name"], "Acme Store");
            assert_eq!(got.mandates[2]["transaction_id"], "tx_made_here");
            assert_eq!(got.headers[1]["typ"], DELEGATION_TYP);
            assert_eq!(got.headers[2]["typ"], TERMINAL_TYP);
            // The root's concealed payee withheld: only issuer_jwt_hash lets that pass.
            let mut segs = split(&chain).unwrap();
            let payee = segs[0]
                .disclosures
                .iter()
                .position(|d| Disclosure::parse(d).unwrap().name.as_deref() == Some("payee"))
                .unwrap();
            segs[0].disclosures.remove(payee);
            let withheld = verify(&join(&segs), &root, &expect);
            if by_jwt {
                let got = withheld.unwrap();
                assert!(got.mandates[0].get("payee").is_none());
            } else {
                assert_eq!(withheld, Err(SdJwtError::Binding(1)));
            }
        }
    }

    /// AP2's rules for a chain: every open mandate's constraints and pre-set claims hold for the
    /// payment, the root's as much as the last's.
    #[test]
    fn every_open_mandate_of_a_chain_is_checked_not_only_the_last() {
        let set = vectors();
        let expect = Expect {
            aud: Some("merchant"),
            nonce: Some("merchant-nonce-789"),
            at: Some(1_785_268_700),
            skew: 300,
            open: false,
        };
        let (fine, root) = made_here(&set, false);
        let got = crate::mandate::verify_chain(&fine, &[root], &expect, None).unwrap();
        assert_eq!(got.violations, vec![]);
        // The root pre-sets the payee m-1; the middle hop says nothing of payees.
        let (elsewhere, root) = made_here_paying(&set, false, "m-evil", json!([]));
        let got = crate::mandate::verify_chain(&elsewhere, &[root], &expect, None).unwrap();
        assert_eq!(
            got.violations,
            vec![crate::mandate::Violation::PresetMismatch("payee")]
        );
        // The middle hop's own limit counts too.
        let (over, root) = made_here_paying(
            &set,
            false,
            "m-1",
            json!([{"type": "payment.amount_range", "currency": "USD", "max": 100}]),
        );
        let got = crate::mandate::verify_chain(&over, &[root], &expect, None).unwrap();
        assert!(matches!(
            got.violations.as_slice(),
            [crate::mandate::Violation::AmountOutOfRange { .. }]
        ));
    }

    /// Protocol claims are signed in the clear: one that comes from a disclosure is refused.
    #[test]
    fn a_disclosed_protocol_claim_is_refused() {
        let set = vectors();
        let (root_sk, root_pk) = pinned(&set, "user-root");
        let (_, agent_pk) = pinned(&set, "agent-sa");
        let mandate = json!({"vct": "mandate.payment.open.1", "constraints": [],
                             "cnf": {"jwk": agent_pk.to_jwk()}});
        let mut draft = Draft::root(
            "dc+sd-jwt",
            &root_pk.thumbprint(),
            "c2FsdA",
            mandate,
            Vec::new(),
        );
        let mut claims = Map::new();
        claims.insert("exp".into(), json!(1));
        let hidden = conceal(&mut claims, &["exp"], &["c2FsdC1leHA".into()]).unwrap();
        draft.claims.extend(claims);
        draft.disclosures.extend(hidden);
        let root = sign(&draft, &root_sk);
        let open = Expect {
            open: true,
            ..Expect::default()
        };
        match verify(&join(&[root]), &root_pk, &open) {
            Err(SdJwtError::Format(m)) => assert!(m.contains("exp"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn disclosures_round_trip_and_are_resolved_once() {
        let d = Disclosure::member("c2FsdA", "payee", serde_json::json!({"name": "Acme"}));
        assert_eq!(Disclosure::parse(&d.encoded).unwrap(), d);
        let e = Disclosure::element("c2FsdA", serde_json::json!(7));
        let payload = serde_json::json!({
            "_sd": [d.digest(), "decoy"],
            "_sd_alg": "sha-256",
            "list": [{"...": e.digest()}, 1],
        });
        let r = resolve(&payload, &[d.clone(), e.clone()]).unwrap();
        assert_eq!(
            r,
            serde_json::json!({"payee": {"name": "Acme"}, "list": [7, 1]})
        );
        // Withheld: not there. Unreferenced or repeated: refused.
        assert_eq!(
            resolve(&payload, std::slice::from_ref(&d)).unwrap(),
            serde_json::json!({"payee": {"name": "Acme"}, "list": [1]})
        );
        let stray = Disclosure::member("b3RoZXI", "x", Value::Null);
        assert!(resolve(&payload, &[d.clone(), stray]).is_err());
        assert!(resolve(&payload, &[d.clone(), d]).is_err());
        for bad in [
            "",
            "!!",
            &jose::b64url(b"[1,2,3,4]"),
            &jose::b64url(b"[\"s\",\"_sd\",1]"),
        ] {
            assert!(Disclosure::parse(bad).is_err(), "{bad}");
        }
    }
}
