//! Agent statements: an execution decision an agent asks the log to keep ("chose offer X at
//! price Y because ..."), signed with the agent's ARI key inside the token.
//!
//! A statement is the exact JSON bytes of [`StatementClaims`]: the agent, its user, when the
//! daemon took it, a random id, the agent's own label and its body. The agent's key does not
//! sign each statement on its own: statements of one agent that arrive together are the leaves
//! of a small RFC 9162 tree (leaf SHA-256(0x00||statement bytes)) and the key signs its root
//! once, as an ES256 compact JWS of type [`BATCH_TYP`] whose payload is [`BatchClaims`]. A
//! statement that arrived alone is a tree of one leaf: its root is its leaf hash and its path is
//! empty. One token signature then serves a whole burst of statements, which is what lets the
//! log take statements faster than the token signs.
//!
//! The `agent.statement` entry carries the statement, the signed root, the statement's place in
//! the tree and the agent's public JWK, so the entry can be checked on its own; a verifier with
//! the whole log also checks that the JWK is the one the agent was provisioned with.

use crate::attest::tpm::BatchPath;
use crate::jose::{self, JoseError, Jwk, PublicKey};
use crate::merkle::{self, Hash, MemoryTree, leaf_hash};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// JWS `typ` of the signed root of a batch of statements.
pub const BATCH_TYP: &str = "ari-statements+jwt";

/// Most statements under one signature.
pub const MAX_BATCH: usize = 256;

/// Longest label, in bytes.
pub const MAX_LABEL: usize = 64;

/// Longest body, as JSON, in bytes.
pub const MAX_BODY: usize = 16 * 1024;

/// The payload of a statement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatementClaims {
    /// `urn:ari:agent:<agent id>`.
    pub iss: String,
    /// The user the agent acts for.
    pub sub: String,
    /// Signed at, Unix seconds.
    pub iat: i64,
    /// Random id.
    pub jti: String,
    /// The agent's label for what it states, e.g. `offer.chosen`.
    pub kind: String,
    /// What it states.
    pub body: Map<String, Value>,
}

/// What the agent's key signs: the root of the statements signed together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchClaims {
    /// `urn:ari:agent:<agent id>`.
    pub iss: String,
    /// Signed at, Unix seconds.
    pub iat: i64,
    /// Number of statements.
    pub size: u64,
    /// RFC 9162 root of their leaves, base64url.
    pub root: String,
}

/// The `fact` of an `agent.statement` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatementFact {
    /// The statement's JSON bytes ([`StatementClaims`]), base64url.
    pub statement: String,
    /// The compact JWS over the batch's root ([`BatchClaims`]).
    pub signature: String,
    /// Where the statement sits in the batch.
    pub batch: BatchPath,
    /// The signing key.
    pub jwk: Jwk,
    /// base64url SHA-256 of the signature's signing input, as every entry that accompanies a
    /// signature names what the key signed; checked when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed: Option<String>,
}

/// The root of statements signed together and each one's place under it (leaves in order).
pub fn batch(statements: &[&[u8]]) -> (Hash, Vec<BatchPath>) {
    let mut t = MemoryTree::new();
    for s in statements {
        t.push(leaf_hash(s));
    }
    let size = t.size();
    let root = t.root(size).unwrap_or_else(|_| merkle::empty_root());
    let paths = (0..size)
        .map(|index| BatchPath {
            index,
            size,
            path: merkle::inclusion_proof(&t, index, size)
                .unwrap_or_default()
                .iter()
                .map(|h| jose::b64url(h))
                .collect(),
        })
        .collect();
    (root, paths)
}

/// Why an agent's request to record a statement is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The kind is empty, too long, or holds other characters.
    #[error("kind must be 1 to {MAX_LABEL} characters of letters, digits and . _ - :")]
    Kind,
    /// The body is too large.
    #[error("body is {size} bytes as JSON, over the limit of {MAX_BODY}")]
    TooLarge {
        /// Its size as JSON.
        size: usize,
    },
}

/// Why a statement fact does not verify.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StatementError {
    /// The JWK the fact names is not a P-256 key.
    #[error("the statement's key: {0}")]
    Key(#[source] JoseError),
    /// The batch signature does not verify under that key.
    #[error("the batch signature: {0}")]
    Signature(#[source] JoseError),
    /// The signature's `kid` is not the key's thumbprint.
    #[error("the signature's kid is not the key's thumbprint")]
    Kid,
    /// The entry's `signed` digest is not the signature's.
    #[error("the entry's signed digest is not the signature's")]
    SignedDigest,
    /// The batch is signed by another agent.
    #[error("the signature is by {0:?}")]
    Signer(String),
    /// The statement is not base64url.
    #[error("the statement is not base64url")]
    Encoding,
    /// The statement is not a statement's claims.
    #[error("the statement: {0}")]
    Claims(#[source] serde_json::Error),
    /// The statement is by another agent.
    #[error("the statement is by {0:?}")]
    Author(String),
    /// The path is for another batch size than the signature covers.
    #[error("the statement's path is for {path} statements, the signature covers {signed}")]
    BatchSize {
        /// The size the path is for.
        path: u64,
        /// The size the signature covers.
        signed: u64,
    },
    /// The signed root or a path hash is not a SHA-256 hash.
    #[error("the {0} is not a SHA-256 hash")]
    Hash(&'static str),
    /// The statement is not the leaf its path says.
    #[error("the statement is not leaf {index} of the {size} statements whose root was signed")]
    NotInBatch {
        /// The leaf index the fact claims.
        index: u64,
        /// The batch size.
        size: u64,
    },
}

/// Checks a label and body an agent sent.
pub fn check_request(kind: &str, body: &Map<String, Value>) -> Result<(), RequestError> {
    let label_ok = !kind.is_empty()
        && kind.len() <= MAX_LABEL
        && kind
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-:".contains(&b));
    if !label_ok {
        return Err(RequestError::Kind);
    }
    let size = serde_json::to_vec(body).map_or(usize::MAX, |b| b.len());
    if size > MAX_BODY {
        return Err(RequestError::TooLarge { size });
    }
    Ok(())
}

/// Verifies a statement fact: the signed root under the JWK it names, of the right type, by
/// `agent`; the statement is by `agent` too and is the leaf its path says under that root.
pub fn verify(fact: &StatementFact, agent: &str) -> Result<StatementClaims, StatementError> {
    let iss = format!("urn:ari:agent:{agent}");
    let key: PublicKey = fact.jwk.to_public_key().map_err(StatementError::Key)?;
    let v = jose::verify::<BatchClaims>(&fact.signature, &key, BATCH_TYP)
        .map_err(StatementError::Signature)?;
    if v.header.kid != key.thumbprint() {
        return Err(StatementError::Kid);
    }
    if let Some(signed) = &fact.signed {
        let input = fact.signature.rsplit_once('.').map_or("", |(i, _)| i);
        if *signed != jose::b64url(&Sha256::digest(input.as_bytes())) {
            return Err(StatementError::SignedDigest);
        }
    }
    if v.payload.iss != iss {
        return Err(StatementError::Signer(v.payload.iss));
    }
    let bytes = jose::b64url_decode(&fact.statement).map_err(|_| StatementError::Encoding)?;
    let claims: StatementClaims = serde_json::from_slice(&bytes).map_err(StatementError::Claims)?;
    if claims.iss != iss {
        return Err(StatementError::Author(claims.iss));
    }
    if fact.batch.size != v.payload.size {
        return Err(StatementError::BatchSize {
            path: fact.batch.size,
            signed: v.payload.size,
        });
    }
    let hash = |text: &str| {
        jose::b64url_decode(text)
            .ok()
            .and_then(|b| Hash::try_from(b.as_slice()).ok())
    };
    let root = hash(&v.payload.root).ok_or(StatementError::Hash("signed root"))?;
    let path = fact
        .batch
        .path
        .iter()
        .map(|h| hash(h))
        .collect::<Option<Vec<_>>>()
        .ok_or(StatementError::Hash("statement's path"))?;
    if !merkle::verify_inclusion(
        fact.batch.index,
        fact.batch.size,
        &leaf_hash(&bytes),
        &path,
        &root,
    ) {
        return Err(StatementError::NotInBatch {
            index: fact.batch.index,
            size: fact.batch.size,
        });
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::jose::{Header, SigningInput};
    use p256::ecdsa::signature::hazmat::PrehashSigner;
    use p256::ecdsa::{Signature, SigningKey};

    fn statement(agent: &str, n: usize) -> Vec<u8> {
        serde_json::to_vec(&StatementClaims {
            iss: format!("urn:ari:agent:{agent}"),
            sub: "alice".into(),
            iat: 1_700_000_000,
            jti: format!("{n:032x}"),
            kind: "offer.chosen".into(),
            body: serde_json::json!({ "n": n }).as_object().unwrap().clone(),
        })
        .unwrap()
    }

    /// Signs a batch of `statements` by `agent` as the daemon does; one fact per statement.
    fn sign(agent: &str, statements: &[Vec<u8>]) -> Vec<StatementFact> {
        let sk = SigningKey::from_slice(&[5; 32]).unwrap();
        let pk = PublicKey::from_sec1(sk.verifying_key().to_sec1_point(false).as_bytes()).unwrap();
        let slices: Vec<&[u8]> = statements.iter().map(Vec::as_slice).collect();
        let (root, paths) = batch(&slices);
        let claims = BatchClaims {
            iss: format!("urn:ari:agent:{agent}"),
            iat: 1_700_000_000,
            size: statements.len() as u64,
            root: jose::b64url(&root),
        };
        let input =
            SigningInput::new(&Header::es256(BATCH_TYP, &pk.thumbprint()), &claims).unwrap();
        let sig: Signature = sk.sign_prehash(&input.digest()).unwrap();
        let jws = input.finish(&sig.to_bytes());
        statements
            .iter()
            .zip(paths)
            .map(|(s, batch)| StatementFact {
                statement: jose::b64url(s),
                signature: jws.clone(),
                batch,
                jwk: pk.to_jwk(),
                signed: None,
            })
            .collect()
    }

    #[test]
    fn every_statement_of_every_batch_size_verifies_and_only_in_its_place() {
        for n in 1..=17 {
            let statements: Vec<Vec<u8>> = (0..n).map(|i| statement("bot", i)).collect();
            let facts = sign("bot", &statements);
            for (i, fact) in facts.iter().enumerate() {
                let claims = verify(fact, "bot").unwrap();
                assert_eq!(claims.body["n"], i);
                if n == 1 {
                    assert!(fact.batch.path.is_empty(), "one statement is its own root");
                }
                // Another statement of the batch does not fit this place.
                let mut moved = fact.clone();
                moved.statement = facts[(i + 1) % n].statement.clone();
                if n > 1 {
                    assert!(matches!(
                        verify(&moved, "bot"),
                        Err(StatementError::NotInBatch { .. })
                    ));
                }
                let mut wrong_index = fact.clone();
                wrong_index.batch.index = (fact.batch.index + 1) % n as u64;
                if n > 1 {
                    assert!(verify(&wrong_index, "bot").is_err());
                }
                let mut wrong_size = fact.clone();
                wrong_size.batch.size += 1;
                assert!(matches!(
                    verify(&wrong_size, "bot"),
                    Err(StatementError::BatchSize { .. })
                ));
            }
        }
    }

    #[test]
    fn a_statement_or_signature_by_another_agent_or_altered_fails() {
        let facts = sign("bot", &[statement("bot", 0), statement("bot", 1)]);
        assert!(matches!(
            verify(&facts[0], "other"),
            Err(StatementError::Signer(_))
        ));
        // A statement naming another agent, under this agent's signature.
        let foreign = sign("bot", &[statement("other", 0)]);
        assert!(matches!(
            verify(&foreign[0], "bot"),
            Err(StatementError::Author(_))
        ));
        let mut edited = facts[1].clone();
        let mut bytes = jose::b64url_decode(&edited.statement).unwrap();
        let at = bytes.len() - 3;
        bytes[at] ^= 1;
        edited.statement = jose::b64url(&bytes);
        assert!(verify(&edited, "bot").is_err());
        let mut forged = facts[0].clone();
        let mut parts: Vec<String> = forged.signature.split('.').map(String::from).collect();
        parts[2] = jose::b64url(&[7u8; 64]);
        forged.signature = parts.join(".");
        assert!(verify(&forged, "bot").is_err());
    }
}
