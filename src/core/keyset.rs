//! Key sets: every public key a verifier needs, as one RFC 7517 JWK Set (`{"keys": [...]}`).
//!
//! Each member is a public JWK whose `kid` is its RFC 7638 thumbprint, with `use` `sig`, its
//! `alg`, and members of ARI's own (RFC 7517 allows extra members) that tell roles and validity
//! apart: `ari_role` (what the key signs), `ari_status` (`active`, `overlap`, `retired`),
//! `ari_not_before` and `ari_not_after` (Unix seconds: when the key began and stopped
//! signing), `ari_overlap_until` (until when a rotated key is still accepted like the active
//! one), `ari_log_index` (the evidence entry that rotated or retired it), and for agents'
//! keys `ari_agent` and `ari_instance`, for external issuers `ari_name`.
//!
//! A set is built from keys through [`SetKey`], a JWK value plus its thumbprint and algorithm,
//! so a key type other than P-256 (an Ed25519 `OKP` key, RFC 8037) joins by implementing it.
//! Reading a set never trusts a `kid`: [`Member::public_key`] recomputes the thumbprint.
//! [`KeySet::key_at`] is how old artefacts keep verifying: a retired key still verifies what
//! was made inside its validity window.

use crate::jose::{Jwk, PublicKey};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What a key signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Role {
    /// The daemon's voucher issuer key: root vouchers and revocation lists.
    Issuer,
    /// The daemon's evidence log key: checkpoints.
    Log,
    /// An agent's ARI key: its authorizations, delegations, statements, attestations.
    Agent,
    /// The TPM's attestation key: quotes and certifications.
    Attestation,
    /// A registered external voucher issuer.
    ExternalIssuer,
}

/// Where a key stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Status {
    /// The key signs now.
    Active,
    /// The key was rotated out at `ari_not_after` and signs nothing since, but until
    /// `ari_overlap_until` verifiers accept it as they accept the active key.
    Overlap,
    /// The key signs nothing and is kept for history: it verifies only artefacts made between
    /// `ari_not_before` and `ari_not_after`.
    Retired,
}

/// An Ed25519 key (the log's note key) as an RFC 8037 `OKP` JWK: `alg` `EdDSA`.
impl SetKey for ed25519_dalek::VerifyingKey {
    fn jwk_members(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("kty".into(), Value::String("OKP".into()));
        m.insert("crv".into(), Value::String("Ed25519".into()));
        m.insert(
            "x".into(),
            Value::String(crate::jose::b64url(self.as_bytes())),
        );
        m
    }

    fn thumbprint(&self) -> String {
        okp_thumbprint(&crate::jose::b64url(self.as_bytes()))
    }

    fn alg(&self) -> &'static str {
        "EdDSA"
    }
}

/// The RFC 7638 thumbprint of an Ed25519 `OKP` JWK with this `x`: SHA-256 of
/// `{"crv":"Ed25519","kty":"OKP","x":"<x>"}`, base64url.
fn okp_thumbprint(x: &str) -> String {
    use sha2::{Digest, Sha256};
    let members = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    crate::jose::b64url(&Sha256::digest(members.as_bytes()))
}

/// A public key that can be a member of a set.
pub trait SetKey {
    /// The JWK's key members (`kty`, `crv`, `x`, ...), without `kid`, `use` or `alg`.
    fn jwk_members(&self) -> Map<String, Value>;
    /// The RFC 7638 thumbprint, base64url.
    fn thumbprint(&self) -> String;
    /// The JOSE algorithm the key signs with.
    fn alg(&self) -> &'static str;
}

impl SetKey for PublicKey {
    fn jwk_members(&self) -> Map<String, Value> {
        let jwk = self.to_jwk();
        let mut m = Map::new();
        m.insert("kty".into(), Value::String(jwk.kty));
        m.insert("crv".into(), Value::String(jwk.crv));
        m.insert("x".into(), Value::String(jwk.x));
        m.insert("y".into(), Value::String(jwk.y));
        m
    }

    fn thumbprint(&self) -> String {
        PublicKey::thumbprint(self)
    }

    fn alg(&self) -> &'static str {
        "ES256"
    }
}

/// One key of a set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    /// The RFC 7638 thumbprint.
    pub kid: String,
    /// Always `sig`.
    #[serde(rename = "use")]
    pub use_: String,
    /// `ES256`.
    pub alg: String,
    /// What the key signs.
    pub ari_role: Role,
    /// Where it stands.
    pub ari_status: Status,
    /// Unix seconds: when it began signing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ari_not_before: Option<i64>,
    /// Unix seconds: when it stopped signing (rotated or retired keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ari_not_after: Option<i64>,
    /// Unix seconds: the end of a rotated key's overlap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ari_overlap_until: Option<i64>,
    /// The evidence entry that rotated or retired the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ari_log_index: Option<u64>,
    /// An agent key's agent id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ari_agent: Option<String>,
    /// An agent key's instance id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ari_instance: Option<String>,
    /// An external issuer's registered name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ari_name: Option<String>,
    /// The JWK's key members (`kty`, `crv`, `x`, `y` for P-256).
    #[serde(flatten)]
    pub key: Map<String, Value>,
}

impl Member {
    /// A member for `key` in `role`, `status`, with no times or names yet.
    pub fn new(key: &impl SetKey, role: Role, status: Status) -> Self {
        Self {
            kid: key.thumbprint(),
            use_: "sig".into(),
            alg: key.alg().into(),
            ari_role: role,
            ari_status: status,
            ari_not_before: None,
            ari_not_after: None,
            ari_overlap_until: None,
            ari_log_index: None,
            ari_agent: None,
            ari_instance: None,
            ari_name: None,
            key: key.jwk_members(),
        }
    }

    /// The validity window: began signing at `not_before`, stopped at `not_after`.
    pub fn window(mut self, not_before: Option<i64>, not_after: Option<i64>) -> Self {
        self.ari_not_before = not_before;
        self.ari_not_after = not_after;
        self
    }

    /// The P-256 key, after checking that `kid` is its thumbprint and `alg` is `ES256`.
    pub fn public_key(&self) -> Result<PublicKey, KeySetError> {
        if self.alg != "ES256" {
            return Err(KeySetError::Algorithm(self.alg.clone()));
        }
        let jwk: Jwk = serde_json::from_value(Value::Object(self.key.clone()))
            .map_err(|e| KeySetError::Jwk(e.to_string()))?;
        let key = jwk
            .to_public_key()
            .map_err(|e| KeySetError::Jwk(e.to_string()))?;
        if key.thumbprint() != self.kid {
            return Err(KeySetError::Kid(self.kid.clone()));
        }
        Ok(key)
    }

    /// The Ed25519 key of an `EdDSA` member, after checking that `kid` is its thumbprint.
    pub fn ed25519_key(&self) -> Result<ed25519_dalek::VerifyingKey, KeySetError> {
        if self.alg != "EdDSA" {
            return Err(KeySetError::Algorithm(self.alg.clone()));
        }
        let member = |name: &str| self.key.get(name).and_then(Value::as_str);
        if member("kty") != Some("OKP") || member("crv") != Some("Ed25519") {
            return Err(KeySetError::Jwk(
                "an EdDSA key is an OKP key on Ed25519".into(),
            ));
        }
        let x = member("x").ok_or_else(|| KeySetError::Jwk("no x".into()))?;
        let bytes: [u8; 32] = crate::jose::b64url_decode(x)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| KeySetError::Jwk("x is not 32 bytes of base64url".into()))?;
        let key = ed25519_dalek::VerifyingKey::from_bytes(&bytes)
            .map_err(|_| KeySetError::Jwk("x is not an Ed25519 point".into()))?;
        if okp_thumbprint(x) != self.kid {
            return Err(KeySetError::Kid(self.kid.clone()));
        }
        Ok(key)
    }

    /// Whether an artefact made at `at` (Unix seconds) falls in the key's validity window:
    /// after it began signing and before it stopped.
    pub fn valid_at(&self, at: i64) -> bool {
        self.ari_not_before.is_none_or(|nbf| nbf <= at)
            && self.ari_not_after.is_none_or(|end| at < end)
    }
}

/// A JWK Set.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct KeySet {
    /// The keys, in no particular order.
    pub keys: Vec<Member>,
}

/// Why a key set, or a key in it, was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeySetError {
    /// The member's algorithm is not one this verifier knows.
    #[error("algorithm {0:?} is not supported")]
    Algorithm(String),
    /// The member's key members are not a P-256 public JWK.
    #[error("not a P-256 public JWK: {0}")]
    Jwk(String),
    /// The member's `kid` is not its key's thumbprint.
    #[error("kid {0} is not the RFC 7638 thumbprint of its key")]
    Kid(String),
    /// No member has this `kid` (in this role).
    #[error("no key {0} in the set")]
    Unknown(String),
    /// The key is retired and the artefact was not made inside its validity window.
    #[error("key {kid} is retired and signed nothing at {at}")]
    Outside { kid: String, at: i64 },
    /// Two members share a `kid`.
    #[error("kid {0} appears twice")]
    Duplicate(String),
}

impl KeySet {
    /// Adds a member.
    pub fn push(&mut self, member: Member) {
        self.keys.push(member);
    }

    /// The member with this `kid`.
    pub fn get(&self, kid: &str) -> Option<&Member> {
        self.keys.iter().find(|m| m.kid == kid)
    }

    /// Members of `role`.
    pub fn role(&self, role: Role) -> impl Iterator<Item = &Member> {
        self.keys.iter().filter(move |m| m.ari_role == role)
    }

    /// Checks every member: each `kid` is its key's thumbprint (members of an algorithm this
    /// verifier does not know are skipped), and no `kid` appears twice.
    pub fn check(&self) -> Result<(), KeySetError> {
        let mut seen = std::collections::BTreeSet::new();
        for m in &self.keys {
            if !seen.insert(m.kid.as_str()) {
                return Err(KeySetError::Duplicate(m.kid.clone()));
            }
            let checked = match m.alg.as_str() {
                "EdDSA" => m.ed25519_key().map(|_| ()),
                _ => m.public_key().map(|_| ()),
            };
            match checked {
                Ok(()) | Err(KeySetError::Algorithm(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The key `kid` of `role` that verifies an artefact made at `at` (Unix seconds): an active
    /// or overlapping key, or a retired one whose window holds `at`.
    pub fn key_at(&self, kid: &str, role: Role, at: i64) -> Result<PublicKey, KeySetError> {
        let m = self
            .role(role)
            .find(|m| m.kid == kid)
            .ok_or_else(|| KeySetError::Unknown(kid.to_string()))?;
        if m.ari_status == Status::Retired && !m.valid_at(at) {
            return Err(KeySetError::Outside {
                kid: kid.to_string(),
                at,
            });
        }
        m.public_key()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use p256::ecdsa::SigningKey;

    fn key(seed: u8) -> PublicKey {
        let sk = SigningKey::from_slice(&[seed; 32]).unwrap();
        PublicKey::from_sec1(sk.verifying_key().to_sec1_point(false).as_bytes()).unwrap()
    }

    #[test]
    fn a_member_is_a_jwk_with_its_thumbprint_and_reads_back() {
        let k = key(1);
        let mut m = Member::new(&k, Role::Agent, Status::Active).window(Some(10), None);
        m.ari_agent = Some("shop-bot".into());
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(json["kid"], k.thumbprint());
        assert_eq!(json["use"], "sig");
        assert_eq!(json["alg"], "ES256");
        assert_eq!(json["kty"], "EC");
        assert_eq!(json["crv"], "P-256");
        assert_eq!(json["ari_role"], "agent");
        assert_eq!(json["ari_status"], "active");
        assert_eq!(json["ari_agent"], "shop-bot");
        assert!(json.get("ari_not_after").is_none());
        let back: Member = serde_json::from_value(json).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.public_key().unwrap(), k);
        // The generic JWK decoder reads the member as a JWK.
        let jwk: Jwk = serde_json::from_value(serde_json::to_value(&m).unwrap()).unwrap();
        assert_eq!(jwk.to_public_key().unwrap(), k);
    }

    #[test]
    fn the_log_ed25519_key_is_an_okp_member_with_its_rfc8037_thumbprint() {
        // RFC 8037, appendix A.1 and A.3: the example Ed25519 key and its thumbprint.
        let x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
        let bytes: [u8; 32] = crate::jose::b64url_decode(x).unwrap().try_into().unwrap();
        let key = ed25519_dalek::VerifyingKey::from_bytes(&bytes).unwrap();
        assert_eq!(
            SetKey::thumbprint(&key),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
        let m = Member::new(&key, Role::Log, Status::Active);
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(json["kty"], "OKP");
        assert_eq!(json["alg"], "EdDSA");
        let back: Member = serde_json::from_value(json).unwrap();
        assert_eq!(back.ed25519_key().unwrap(), key);
        let mut set = KeySet::default();
        set.push(back.clone());
        set.check().unwrap();
        set.keys[0].kid = key_thumbprint_of_other();
        assert!(matches!(set.check(), Err(KeySetError::Kid(_))));
    }

    fn key_thumbprint_of_other() -> String {
        key(9).thumbprint()
    }

    #[test]
    fn a_wrong_kid_or_a_duplicate_is_refused() {
        let mut set = KeySet::default();
        set.push(Member::new(&key(1), Role::Issuer, Status::Active));
        set.push(Member::new(&key(2), Role::Log, Status::Active));
        set.check().unwrap();
        let mut lying = set.clone();
        lying.keys[1].kid = key(3).thumbprint();
        assert!(matches!(lying.check(), Err(KeySetError::Kid(_))));
        let mut twice = set.clone();
        twice.keys.push(set.keys[0].clone());
        assert!(matches!(twice.check(), Err(KeySetError::Duplicate(_))));
        // A key of another algorithm is not judged by this verifier.
        let mut pq = set.clone();
        let mut m = set.keys[0].clone();
        m.alg = "ML-DSA-44".into();
        m.kid = "other".into();
        pq.keys.push(m);
        pq.check().unwrap();
    }

    #[test]
    fn a_retired_key_verifies_only_inside_its_window() {
        let (old, new) = (key(1), key(2));
        let mut set = KeySet::default();
        set.push(Member::new(&old, Role::Issuer, Status::Retired).window(Some(100), Some(200)));
        set.push(Member::new(&new, Role::Issuer, Status::Active).window(Some(200), None));
        assert_eq!(
            set.key_at(&old.thumbprint(), Role::Issuer, 150).unwrap(),
            old
        );
        assert!(matches!(
            set.key_at(&old.thumbprint(), Role::Issuer, 250),
            Err(KeySetError::Outside { .. })
        ));
        assert!(matches!(
            set.key_at(&old.thumbprint(), Role::Issuer, 99),
            Err(KeySetError::Outside { .. })
        ));
        assert_eq!(
            set.key_at(&new.thumbprint(), Role::Issuer, 250).unwrap(),
            new
        );
        // The right kid in the wrong role is no key at all.
        assert!(matches!(
            set.key_at(&new.thumbprint(), Role::Log, 250),
            Err(KeySetError::Unknown(_))
        ));
    }
}
