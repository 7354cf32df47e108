//! Agent statements: an execution decision an agent asks the log to keep ("chose offer X at
//! price Y because ..."), signed with the agent's ARI key inside the token.
//!
//! The statement is an ES256 compact JWS of type [`STATEMENT_TYP`] whose payload names the agent,
//! its user, when the daemon signed it, the agent's own label for the statement and its body.
//! The `agent.statement` entry carries the JWS and the agent's public JWK, so the entry can be
//! checked on its own; a verifier with the whole log also checks that the JWK is the one the
//! agent was provisioned with.

use crate::jose::{self, Jwk, PublicKey};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// JWS `typ` of an agent statement.
pub const STATEMENT_TYP: &str = "ari-statement+jwt";

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

/// The `fact` of an `agent.statement` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatementFact {
    /// The compact JWS.
    pub statement: String,
    /// The signing key.
    pub jwk: Jwk,
}

/// Checks a label and body an agent sent.
pub fn check_request(kind: &str, body: &Map<String, Value>) -> Result<(), String> {
    let label_ok = !kind.is_empty()
        && kind.len() <= MAX_LABEL
        && kind
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-:".contains(&b));
    if !label_ok {
        return Err(format!(
            "kind must be 1 to {MAX_LABEL} characters of letters, digits and . _ - :"
        ));
    }
    let size = serde_json::to_vec(body).map_or(usize::MAX, |b| b.len());
    if size > MAX_BODY {
        return Err(format!(
            "body is {size} bytes as JSON, over the limit of {MAX_BODY}"
        ));
    }
    Ok(())
}

/// Verifies a statement fact: the JWS under the JWK it names, of the right type, by `agent`.
pub fn verify(fact: &StatementFact, agent: &str) -> Result<StatementClaims, String> {
    let key: PublicKey = fact.jwk.to_public_key().map_err(|e| e.to_string())?;
    let v = jose::verify::<StatementClaims>(&fact.statement, &key, STATEMENT_TYP)
        .map_err(|e| e.to_string())?;
    if v.header.kid != key.thumbprint() {
        return Err("the statement's kid is not the key's thumbprint".into());
    }
    if v.payload.iss != format!("urn:ari:agent:{agent}") {
        return Err(format!("the statement is by {:?}", v.payload.iss));
    }
    Ok(v.payload)
}
