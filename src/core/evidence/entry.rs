//! Evidence entries: one fact each, as the exact JSON bytes a leaf hash covers.
//!
//! An entry names its log, its own leaf index, the leaf hash of the entry before it (`prev`,
//! empty for the first), when it was written, what kind of fact it records, who the fact is
//! about (agent and user, when there is one), the digest of the caller's runtime claims when
//! the fact came from an agent's call, and the fact itself. The bytes are produced once, by
//! [`Draft::encode`], and stored as they are: a verifier hashes the stored bytes and never
//! re-serializes, so no canonical JSON is needed. [`check_chain`] is the offline check of a run
//! of entries: each parses strictly, names the right log and index, and links to the one before.

use crate::jose;
use crate::merkle::{Hash, MemoryTree, leaf_hash};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Format version of entries written now.
pub const VERSION: u32 = 1;

/// The longest entry accepted: what a C2SP `tlog-tiles` entry bundle's 16-bit length can carry.
pub const MAX_ENTRY_BYTES: usize = u16::MAX as usize;

/// What kind of fact an entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Kind {
    #[serde(rename = "agent.provisioned")]
    AgentProvisioned,
    #[serde(rename = "agent.frozen")]
    AgentFrozen,
    #[serde(rename = "agent.unfrozen")]
    AgentUnfrozen,
    #[serde(rename = "agent.retired")]
    AgentRetired,
    #[serde(rename = "voucher.issued")]
    VoucherIssued,
    #[serde(rename = "voucher.delegated")]
    VoucherDelegated,
    #[serde(rename = "voucher.revoked")]
    VoucherRevoked,
    #[serde(rename = "payment.authorized")]
    PaymentAuthorized,
    #[serde(rename = "payment.denied")]
    PaymentDenied,
    #[serde(rename = "payment.pending")]
    PaymentPending,
    #[serde(rename = "payment.confirmed")]
    PaymentConfirmed,
    #[serde(rename = "payment.rejected")]
    PaymentRejected,
    #[serde(rename = "payment.voided")]
    PaymentVoided,
    #[serde(rename = "payment.reported")]
    PaymentReported,
    #[serde(rename = "agent.statement")]
    AgentStatement,
    #[serde(rename = "agent.attested")]
    AgentAttested,
    #[serde(rename = "agent.csr_signed")]
    AgentCsrSigned,
    #[serde(rename = "agent.certificate_imported")]
    AgentCertificateImported,
    #[serde(rename = "issuer.added")]
    IssuerAdded,
    #[serde(rename = "issuer.removed")]
    IssuerRemoved,
    /// A merchant's or payment provider's key registered ([`Kind::CounterpartyRemoved`] undoes
    /// it).
    #[serde(rename = "counterparty.added")]
    CounterpartyAdded,
    #[serde(rename = "counterparty.removed")]
    CounterpartyRemoved,
    /// An agent provisioned again with a new key (a new instance); its old key is destroyed.
    #[serde(rename = "agent.rotated")]
    AgentRotated,
    /// One of the daemon's keys (`issuer`, `log`) handed over to a new key, signed by both
    /// ([`super::rotation`]).
    #[serde(rename = "key.rotated")]
    KeyRotated,
}

impl Kind {
    /// The kind's name as it appears in entries and in the `kind` column.
    pub fn name(self) -> &'static str {
        match self {
            Kind::AgentProvisioned => "agent.provisioned",
            Kind::AgentFrozen => "agent.frozen",
            Kind::AgentUnfrozen => "agent.unfrozen",
            Kind::AgentRetired => "agent.retired",
            Kind::VoucherIssued => "voucher.issued",
            Kind::VoucherDelegated => "voucher.delegated",
            Kind::VoucherRevoked => "voucher.revoked",
            Kind::PaymentAuthorized => "payment.authorized",
            Kind::PaymentDenied => "payment.denied",
            Kind::PaymentPending => "payment.pending",
            Kind::PaymentConfirmed => "payment.confirmed",
            Kind::PaymentRejected => "payment.rejected",
            Kind::PaymentVoided => "payment.voided",
            Kind::PaymentReported => "payment.reported",
            Kind::AgentStatement => "agent.statement",
            Kind::AgentAttested => "agent.attested",
            Kind::AgentCsrSigned => "agent.csr_signed",
            Kind::AgentCertificateImported => "agent.certificate_imported",
            Kind::IssuerAdded => "issuer.added",
            Kind::IssuerRemoved => "issuer.removed",
            Kind::CounterpartyAdded => "counterparty.added",
            Kind::CounterpartyRemoved => "counterparty.removed",
            Kind::AgentRotated => "agent.rotated",
            Kind::KeyRotated => "key.rotated",
        }
    }
}

/// An entry as it is read back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub v: u32,
    pub log: String,
    pub index: u64,
    /// base64url leaf hash of the previous entry; empty for index 0.
    pub prev: String,
    pub time: i64,
    pub kind: Kind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// base64url SHA-256 of the runtime claims measured for the call that caused the fact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    pub fact: Value,
}

/// [`Entry`] as [`Draft::encode`] writes it, borrowing the draft: the same fields in the same
/// order (a test checks that both serialize alike).
#[derive(Serialize)]
struct Encoded<'a> {
    v: u32,
    log: &'a str,
    index: u64,
    prev: String,
    time: i64,
    kind: Kind,
    #[serde(skip_serializing_if = "Option::is_none")]
    agent: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    runtime: Option<&'a str>,
    fact: &'a Value,
}

/// A fact about to be logged; the log supplies the rest.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    pub kind: Kind,
    pub agent: Option<String>,
    pub user: Option<String>,
    pub runtime: Option<String>,
    pub fact: Value,
}

impl Draft {
    /// A fact of `kind` with nobody named yet.
    pub fn new(kind: Kind, fact: Value) -> Self {
        Self {
            kind,
            agent: None,
            user: None,
            runtime: None,
            fact,
        }
    }

    /// Names the agent and its user.
    pub fn about(mut self, agent: &str, user: &str) -> Self {
        self.agent = Some(agent.to_string());
        self.user = Some(user.to_string());
        self
    }

    /// Records the digest of the caller's runtime claims.
    pub fn runtime(mut self, digest: Option<String>) -> Self {
        self.runtime = digest.filter(|d| !d.is_empty());
        self
    }

    /// The entry's bytes as leaf `index` of the log `log`, after the leaf `prev`.
    pub fn encode(
        &self,
        log: &str,
        index: u64,
        prev: Option<&Hash>,
        time: i64,
    ) -> Result<Vec<u8>, EntryError> {
        let entry = Encoded {
            v: VERSION,
            log,
            index,
            prev: prev.map(|h| jose::b64url(h)).unwrap_or_default(),
            time,
            kind: self.kind,
            agent: self.agent.as_deref(),
            user: self.user.as_deref(),
            runtime: self.runtime.as_deref(),
            fact: &self.fact,
        };
        let bytes = serde_json::to_vec(&entry).map_err(|e| EntryError::Encode(e.to_string()))?;
        if bytes.len() > MAX_ENTRY_BYTES {
            return Err(EntryError::TooLarge(bytes.len()));
        }
        Ok(bytes)
    }
}

/// Why an entry could not be written, or why a run of entries does not check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EntryError {
    /// The fact cannot be encoded.
    #[error("cannot encode the entry: {0}")]
    Encode(String),
    /// The entry would be larger than [`MAX_ENTRY_BYTES`].
    #[error("the entry would be {0} bytes, over the limit of {MAX_ENTRY_BYTES}")]
    TooLarge(usize),
    /// Entry `index` fails `check`.
    #[error("entry {index}: {check}: {detail}")]
    Check {
        index: u64,
        check: &'static str,
        detail: String,
    },
}

fn fail(index: u64, check: &'static str, detail: impl Into<String>) -> EntryError {
    EntryError::Check {
        index,
        check,
        detail: detail.into(),
    }
}

/// Why bytes are not an entry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// Longer than any entry may be.
    #[error("{0} bytes, over the limit of {MAX_ENTRY_BYTES}")]
    TooLarge(usize),
    /// Not an entry's JSON (strictly: unknown members are refused).
    #[error("{0}")]
    Json(#[from] serde_json::Error),
}

/// Parses one stored entry strictly.
pub fn parse(bytes: &[u8]) -> Result<Entry, ParseError> {
    if bytes.len() > MAX_ENTRY_BYTES {
        return Err(ParseError::TooLarge(bytes.len()));
    }
    Ok(serde_json::from_slice(bytes)?)
}

/// Checks a run of entries that starts at leaf `first`, after the leaf `prev` (`None` only
/// when `first` is 0), for the log `log`, and returns them parsed with the tree of their leaf
/// hashes. The first failure names the entry and the check: `format`, `version`, `log`,
/// `index`, `prev`.
///
/// This is the shape of a run, not evidence: anyone can write entries that pass it. Only a
/// checkpoint signed by the log key whose root the returned tree matches vouches for them
/// (as [`super::export::verify_dir`] requires of an export's last entry).
pub fn check_chain(
    log: &str,
    first: u64,
    prev: Option<Hash>,
    entries: &[Vec<u8>],
) -> Result<(Vec<Entry>, MemoryTree), EntryError> {
    let mut tree = MemoryTree::new();
    let mut parsed = Vec::with_capacity(entries.len());
    let mut prev = prev;
    for (offset, bytes) in entries.iter().enumerate() {
        let index = first + offset as u64;
        let entry = parse(bytes).map_err(|e| fail(index, "format", e.to_string()))?;
        if entry.v != VERSION {
            return Err(fail(index, "version", format!("version {}", entry.v)));
        }
        if entry.log != log {
            return Err(fail(
                index,
                "log",
                format!("written for log {:?}", entry.log),
            ));
        }
        if entry.index != index {
            return Err(fail(
                index,
                "index",
                format!("says it is entry {}", entry.index),
            ));
        }
        let expected = prev.map(|h| jose::b64url(&h)).unwrap_or_default();
        if entry.prev != expected {
            return Err(fail(
                index,
                "prev",
                "does not name the leaf hash of the entry before it",
            ));
        }
        let leaf = leaf_hash(bytes);
        tree.push(leaf);
        prev = Some(leaf);
        parsed.push(entry);
    }
    Ok((parsed, tree))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
    use super::*;
    use serde_json::json;

    const LOG: &str = "ari.example/host-1";

    fn chain(n: u64) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut prev = None;
        for i in 0..n {
            let d = Draft {
                kind: Kind::PaymentAuthorized,
                agent: Some("shop-bot".into()),
                user: Some("alice".into()),
                runtime: Some("digest".into()),
                fact: json!({"amount": 100 + i, "currency": "CNY"}),
            };
            let bytes = d.encode(LOG, i, prev.as_ref(), 1_700_000_000).unwrap();
            prev = Some(leaf_hash(&bytes));
            out.push(bytes);
        }
        out
    }

    #[test]
    fn an_encoded_draft_is_the_entry_it_parses_to_byte_for_byte() {
        for (agent, runtime) in [(None, None), (Some("bot"), Some("d")), (Some("bot"), None)] {
            let d = Draft {
                kind: Kind::AgentStatement,
                agent: agent.map(String::from),
                user: agent.map(|_| "alice".to_string()),
                runtime: runtime.map(String::from),
                fact: json!({"statement": "eyJ\"é\n", "batch": {"index": 1, "path": []}}),
            };
            let bytes = d.encode(LOG, 7, Some(&[3; 32]), 1_700_000_000).unwrap();
            let parsed = parse(&bytes).unwrap();
            assert_eq!(serde_json::to_vec(&parsed).unwrap(), bytes);
            assert_eq!(parsed.agent.as_deref(), agent);
            assert_eq!(parsed.fact, d.fact);
        }
    }

    #[test]
    fn kinds_serialize_by_name() {
        for k in [
            Kind::AgentProvisioned,
            Kind::VoucherRevoked,
            Kind::PaymentReported,
            Kind::AgentStatement,
            Kind::AgentRotated,
            Kind::KeyRotated,
        ] {
            assert_eq!(serde_json::to_value(k).unwrap(), json!(k.name()));
        }
    }

    #[test]
    fn a_chain_checks_and_each_break_is_named() {
        let entries = chain(6);
        let (parsed, tree) = check_chain(LOG, 0, None, &entries).unwrap();
        assert_eq!(parsed.len(), 6);
        assert_eq!(tree.size(), 6);
        // A later run checks given the leaf before it.
        let before = leaf_hash(&entries[2]);
        check_chain(LOG, 3, Some(before), &entries[3..]).unwrap();

        let named = |entries: &[Vec<u8>]| match check_chain(LOG, 0, None, entries) {
            Err(EntryError::Check { index, check, .. }) => (index, check),
            other => panic!("expected a failed check, got {other:?}"),
        };
        // An edited fact breaks the next entry's link.
        let mut edited = entries.clone();
        edited[2] = String::from_utf8(edited[2].clone())
            .unwrap()
            .replace("102", "999")
            .into_bytes();
        assert_eq!(named(&edited), (3, "prev"));
        // A deleted entry, and two swapped ones, break the index.
        let mut deleted = entries.clone();
        deleted.remove(1);
        assert_eq!(named(&deleted), (1, "index"));
        let mut swapped = entries.clone();
        swapped.swap(3, 4);
        assert_eq!(named(&swapped), (3, "index"));
        // Garbage, an unknown field, another log.
        let mut garbage = entries.clone();
        garbage[4] = b"{not json".to_vec();
        assert_eq!(named(&garbage), (4, "format"));
        let mut extra = entries.clone();
        extra[0] = String::from_utf8(extra[0].clone())
            .unwrap()
            .replacen('{', "{\"x\":1,", 1)
            .into_bytes();
        assert_eq!(named(&extra), (0, "format"));
        let other: Vec<Vec<u8>> = entries
            .iter()
            .map(|e| {
                String::from_utf8(e.clone())
                    .unwrap()
                    .replace(LOG, "elsewhere")
                    .into_bytes()
            })
            .collect();
        assert_eq!(named(&other), (0, "log"));
    }

    #[test]
    fn oversized_facts_are_refused() {
        let d = Draft {
            kind: Kind::AgentStatement,
            agent: None,
            user: None,
            runtime: None,
            fact: json!({"text": "x".repeat(MAX_ENTRY_BYTES)}),
        };
        assert!(matches!(
            d.encode(LOG, 0, None, 0),
            Err(EntryError::TooLarge(_))
        ));
    }
}
