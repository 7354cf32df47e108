//! The evidence log's wire types: agents' statements (`evidence.record`), checkpoints, proofs
//! and entries (`evidence.*`), and the operator's export (`admin.log_export`).
//!
//! Proofs and export pages are the formats a verifier reads offline ([`crate::evidence::export`]),
//! so they are those very types. Types only.

use crate::attest::tpm::BatchPath;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The params of `evidence.record`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordParams {
    /// The agent's label for the statement.
    pub kind: String,
    /// What it states.
    pub body: Map<String, Value>,
}

/// The result of `evidence.record`: the statement's entry and what it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedStatement {
    /// The `agent.statement` entry's index.
    pub index: u64,
    /// The entry's leaf hash, base64url.
    pub leaf_hash: String,
    /// The statement's JSON bytes, base64url.
    pub statement: String,
    /// The agent's signature over the batch the statement is in.
    pub signature: String,
    /// The statement's place in that batch.
    pub batch: BatchPath,
}

/// The params of `evidence.checkpoint`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointParams {
    /// Wait for a checkpoint of at least this size.
    #[serde(default)]
    pub at_least: u64,
    /// How long to wait, milliseconds.
    #[serde(default)]
    pub wait_ms: u64,
}

/// The result of `evidence.checkpoint`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedCheckpoint {
    /// The log's name.
    pub origin: String,
    /// The tree size it signs.
    pub size: u64,
    /// The signed note.
    pub note: String,
    /// The log's verifier keys as note vkey strings: the Ed25519 key first when the log has
    /// one, then the ECDSA key.
    pub vkeys: Vec<String>,
}

/// The params of `admin.log_witness`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessParams {
    /// The witness's submission prefix (`add-checkpoint` is posted under it).
    pub url: String,
    /// The witness's cosigning key, a note vkey of type 0x04.
    pub vkey: String,
    /// The checkpoint to submit (default: the newest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

/// The result of `admin.log_witness`: the witness cosigned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Witnessed {
    /// The witness's name.
    pub witness: String,
    /// The size it cosigned.
    pub size: u64,
    /// The size it had cosigned before (the consistency proof's start).
    pub old: u64,
    /// The time in its cosignature, Unix seconds.
    pub time: u64,
    /// The checkpoint with every cosignature it now carries.
    pub note: String,
}

/// The params of `evidence.inclusion`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InclusionParams {
    /// The entry.
    pub index: u64,
    /// The tree (default: the newest checkpoint's size).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tree_size: Option<u64>,
}

/// The params of `evidence.consistency`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyParams {
    /// The smaller tree.
    pub from: u64,
    /// The larger tree (default: the newest checkpoint's size).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<u64>,
}

/// The result of `evidence.consistency`: the RFC 9162 proof between two sizes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsistencyProof {
    /// The smaller tree.
    pub from: u64,
    /// The larger tree.
    pub to: u64,
    /// The proof's hashes, base64url.
    pub hashes: Vec<String>,
}

/// The params of `evidence.entry`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntryParams {
    /// The entry.
    pub index: u64,
}

/// The result of `evidence.entry`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Its index.
    pub index: u64,
    /// Its kind.
    pub kind: String,
    /// Its leaf hash, base64url.
    pub leaf_hash: String,
    /// Its exact text: hash it as it is.
    pub entry: String,
}

/// The params of `admin.log_export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportParams {
    /// The first entry.
    pub from: u64,
    /// One past the last entry (default: the newest checkpoint's size).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<u64>,
    /// Entries per page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
}

/// The params of `admin.log_follow`: entries from `from` on, as soon as there are any.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FollowParams {
    /// The first entry wanted.
    pub from: u64,
    /// How long to wait for one when the log ends before `from`, in milliseconds (default 0,
    /// at most [`MAX_FOLLOW_WAIT_MS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_ms: Option<u64>,
    /// At most this many entries (default and ceiling [`MAX_FOLLOW_ENTRIES`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
}

/// The longest `admin.log_follow` wait.
pub const MAX_FOLLOW_WAIT_MS: u64 = 30_000;
/// The most entries one `admin.log_follow` answer carries.
pub const MAX_FOLLOW_ENTRIES: u64 = 1_000;

/// The result of `admin.log_follow`: committed entries, checkpointed or not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Followed {
    /// The log's size when read: entries `0..size` are committed.
    pub size: u64,
    /// Where the next call starts: one past the last entry returned (`from` when none came).
    pub next: u64,
    /// Entries `from..next`, decoded.
    pub entries: Vec<crate::evidence::entry::Entry>,
}
