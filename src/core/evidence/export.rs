//! Exported logs and their offline verification.
//!
//! An export is a directory anyone can check without the daemon:
//!
//! - `log.json`: `{origin, from, to, frontier}`: the range of entries held (`from..to`) and the
//!   hashes of the perfect subtrees covering entries `0..from` (largest first, base64url), so
//!   that roots can be recomputed when the export does not start at 0;
//! - `entries.jsonl`: entry `from + i` on line `i`, exactly the bytes the leaf hash covers;
//! - `checkpoints/<size>.note`: every signed checkpoint of a size in `from..=to`;
//! - `log-key.jwk`: the log's public key, for convenience (a verifier should get it from
//!   somewhere it trusts, and pass it with `--log-key`).
//!
//! [`verify`] reads these parts through [`Files`], so they can come from a directory ([`Dir`],
//! [`verify_dir`]) or from memory ([`InMemory`]: a browser handed the files). It streams the
//! entries once: each parses strictly and names its log and index,
//! links to the leaf hash before it, statements verify under their agent's key, authorization
//! entries name their own index, key rotations carry both keys' signatures; after each entry
//! the root is compared with any checkpoint of that size, whose signature must be by the log
//! key in force at that size. The key given is the one in force at the export's first entry;
//! a `key.rotated` entry of role `log` hands it to the next key, so checkpoints past the
//! rotation must be signed by the new key and the old key's are refused there. Failures name the entry (or checkpoint) and the
//! check. Memory stays O(log n) plus the agents' keys.
//!
//! The invariant: a verification never says OK for an entry no signature covers. Formats,
//! indexes and links can be forged by anyone who rewrites the files; only a checkpoint signed by
//! the log key binds the entries, so an export verifies only when one covers its last entry
//! (check `signed-tail`, [`VerifyError::NoCheckpoint`], [`VerifyError::UnsignedTail`]). Asked
//! to ([`Tail::Report`]), [`verify_dir_with`] reports the entries past the newest checkpoint
//! apart ([`Summary::unsigned_tail`]) instead of failing, and never counts them as verified.
//! Inclusion proofs ([`verify_inclusion`]) are always checked against a signed checkpoint.

use super::checkpoint::{self, Checkpoint, CheckpointError};
use super::entry::{self, Kind, VERSION};
use super::rotation::{self, RotationFact};
use super::statement::{self, StatementFact};
use crate::jose::{self, Jwk, PublicKey};
use crate::merkle::{self, Frontier, Hash};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::BufRead;
use std::path::Path;

/// One page of a log, as the daemon hands it out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page {
    /// The log's origin.
    pub origin: String,
    /// First entry in the page.
    pub from: u64,
    /// One past the last entry in the page.
    pub to: u64,
    /// One past the last entry of the whole export.
    pub end: u64,
    /// base64url hashes of the subtrees covering `0..from`, largest first.
    pub frontier: Vec<String>,
    /// Entries `from..to`, as text.
    pub entries: Vec<String>,
    /// Checkpoints of sizes in the page.
    pub checkpoints: Vec<PageCheckpoint>,
    /// The log key.
    pub log_key: Jwk,
}

/// A checkpoint in a page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageCheckpoint {
    pub size: u64,
    pub note: String,
}

/// The header file of an export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub origin: String,
    pub from: u64,
    pub to: u64,
    pub frontier: Vec<String>,
}

/// The name of the check that an export's last entry is covered by a signed checkpoint.
pub const SIGNED_TAIL: &str = "signed-tail";

/// Why an export (or a proof) does not verify. Each message names where and the check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// A check of one entry, checkpoint or file failed.
    #[error("{at}: {check}: {detail}")]
    Check {
        /// `entry N`, `checkpoint of size N`, or a file.
        at: String,
        /// The check that failed: `format`, `version`, `log`, `index`, `prev`, `statement`,
        /// `mandate`, `rotation`, `signature`, `root`, `missing`, `consistency`, `proof`.
        check: &'static str,
        /// What was found.
        detail: String,
    },
    /// The export holds entries `from..to` but no checkpoint signed by the log key: no
    /// signature covers any of them, whatever else checks out.
    #[error(
        "entries {from}..{to}: {SIGNED_TAIL}: the export holds no checkpoint signed by the log key, so no signature covers any of its entries"
    )]
    NoCheckpoint {
        /// The export's first entry.
        from: u64,
        /// One past its last entry.
        to: u64,
    },
    /// Entries `last_signed..size` come after the newest signed checkpoint (of size
    /// `last_signed`): no signature covers them, whatever else checks out.
    #[error(
        "entries {last_signed}..{size}: {SIGNED_TAIL}: past the newest checkpoint (size {last_signed}), so no signature covers them"
    )]
    UnsignedTail {
        /// The size of the newest checkpoint that was checked.
        last_signed: u64,
        /// One past the export's last entry.
        size: u64,
    },
}

impl VerifyError {
    /// The name of the check that failed.
    pub fn check(&self) -> &'static str {
        match self {
            Self::Check { check, .. } => check,
            Self::NoCheckpoint { .. } | Self::UnsignedTail { .. } => SIGNED_TAIL,
        }
    }
}

fn err(at: impl Into<String>, check: &'static str, detail: impl Into<String>) -> VerifyError {
    VerifyError::Check {
        at: at.into(),
        check,
        detail: detail.into(),
    }
}

fn entry_at(i: u64) -> String {
    format!("entry {i}")
}

/// What a verified export holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub origin: String,
    /// The first entry verified.
    pub from: u64,
    /// One past the last entry verified: every entry of `from..to` passed every check and is
    /// covered by a signed checkpoint.
    pub to: u64,
    /// Checkpoints whose signature and root were checked.
    pub checkpoints: usize,
    /// The largest checked checkpoint's size.
    pub latest: Option<u64>,
    /// Verified entries (`from..to`) of each kind.
    pub kinds: std::collections::BTreeMap<String, u64>,
    /// Entries the export holds past `to`, which no signature covers; only ever set by
    /// [`Tail::Report`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unsigned_tail: Option<UnsignedTail>,
}

/// Entries `from..to` an export holds past its newest signed checkpoint. They were read and
/// linked like the others, but nothing vouches for them: anyone could have written them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct UnsignedTail {
    /// The newest checked checkpoint's size (the export's first entry when there is none).
    pub from: u64,
    /// One past the export's last entry.
    pub to: u64,
}

impl UnsignedTail {
    /// How many entries no signature covers.
    pub fn len(&self) -> u64 {
        self.to.saturating_sub(self.from)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What [`verify_dir_with`] does with entries past the newest signed checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tail {
    /// Fail with [`VerifyError::NoCheckpoint`] or [`VerifyError::UnsignedTail`].
    #[default]
    Refuse,
    /// Check them as far as can be done without a signature and report them in
    /// [`Summary::unsigned_tail`], outside the verified range.
    Report,
}

fn decode_hash(text: &str) -> Option<Hash> {
    jose::b64url_decode(text)
        .ok()
        .and_then(|b| Hash::try_from(b.as_slice()).ok())
}

/// The three parts of an export, wherever they are kept: a directory ([`Dir`]), an archive, or
/// bytes a browser was handed. Errors are I/O errors of the source; the verifier reports them as
/// the part `missing`.
pub trait Files {
    /// `log.json`.
    fn manifest(&self) -> std::io::Result<String>;
    /// Every file under `checkpoints/`: its name and its text, in any order.
    fn checkpoints(&self) -> std::io::Result<Vec<(String, String)>>;
    /// `entries.jsonl`, read once, front to back.
    fn entries(&self) -> std::io::Result<Box<dyn BufRead + '_>>;
}

/// An export directory, as `arictl log export` writes it.
#[derive(Debug, Clone, Copy)]
pub struct Dir<'a>(pub &'a Path);

impl Files for Dir<'_> {
    fn manifest(&self) -> std::io::Result<String> {
        std::fs::read_to_string(self.0.join("log.json"))
    }

    fn checkpoints(&self) -> std::io::Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        for item in std::fs::read_dir(self.0.join("checkpoints"))? {
            let path = item?.path();
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            out.push((name, std::fs::read_to_string(&path)?));
        }
        Ok(out)
    }

    fn entries(&self) -> std::io::Result<Box<dyn BufRead + '_>> {
        let file = std::fs::File::open(self.0.join("entries.jsonl"))?;
        Ok(Box::new(std::io::BufReader::new(file)))
    }
}

/// An export held in memory.
#[derive(Debug, Clone, Default)]
pub struct InMemory {
    /// `log.json`.
    pub manifest: String,
    /// `checkpoints/`: names and texts.
    pub checkpoints: Vec<(String, String)>,
    /// `entries.jsonl`.
    pub entries: Vec<u8>,
}

impl Files for InMemory {
    fn manifest(&self) -> std::io::Result<String> {
        Ok(self.manifest.clone())
    }

    fn checkpoints(&self) -> std::io::Result<Vec<(String, String)>> {
        Ok(self.checkpoints.clone())
    }

    fn entries(&self) -> std::io::Result<Box<dyn BufRead + '_>> {
        Ok(Box::new(self.entries.as_slice()))
    }
}

/// Verifies the export in `dir` with the log key; `since` is a signed checkpoint seen earlier
/// that the log must extend. Fails unless a checkpoint signed by the log key (one in the export,
/// or `since`) covers the export's last entry.
pub fn verify_dir(
    dir: &Path,
    key: &PublicKey,
    since: Option<&str>,
) -> Result<Summary, VerifyError> {
    verify(&Dir(dir), key, since, Tail::Refuse)
}

/// [`verify_dir`], with the entries past the newest signed checkpoint refused or reported as
/// `tail` says.
pub fn verify_dir_with(
    dir: &Path,
    key: &PublicKey,
    since: Option<&str>,
    tail: Tail,
) -> Result<Summary, VerifyError> {
    verify(&Dir(dir), key, since, tail)
}

/// Verifies an export, wherever its files are ([`Files`]), as [`verify_dir_with`] does.
pub fn verify(
    files: &impl Files,
    key: &PublicKey,
    since: Option<&str>,
    tail: Tail,
) -> Result<Summary, VerifyError> {
    let manifest = files
        .manifest()
        .map_err(|e| err("log.json", "missing", e.to_string()))?;
    let manifest: Manifest =
        serde_json::from_str(&manifest).map_err(|e| err("log.json", "format", e.to_string()))?;
    let origin = manifest.origin.as_str();
    let frontier_hashes = manifest
        .frontier
        .iter()
        .map(|h| decode_hash(h))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| {
            err(
                "log.json",
                "format",
                "a frontier hash is not base64url SHA-256",
            )
        })?;
    let mut frontier = Frontier::from_hashes(manifest.from, &frontier_hashes)
        .ok_or_else(|| err("log.json", "format", "the frontier does not match `from`"))?;

    // Checkpoints: read first; each signature is checked when the stream reaches its size, by
    // the log key in force there (rotations in the log change it), and each root is compared.
    let mut checkpoints: HashMap<u64, (Checkpoint, String, String)> = HashMap::new();
    let listing = files
        .checkpoints()
        .map_err(|e| err("checkpoints", "missing", e.to_string()))?;
    for (name, note) in listing {
        let cp = parse_note(&note, origin)
            .map_err(|e| err(format!("checkpoint {name}"), "signature", e.to_string()))?;
        let at = format!("checkpoint of size {}", cp.size);
        if name.trim_end_matches(".note").parse::<u64>().ok() != Some(cp.size) {
            return Err(err(at, "format", format!("stored as {name}")));
        }
        if cp.size < manifest.from || cp.size > manifest.to {
            return Err(err(
                at,
                "missing",
                format!(
                    "covers entries the export does not hold ({}..{}): the log was cut short",
                    manifest.from, manifest.to
                ),
            ));
        }
        checkpoints.insert(cp.size, (cp, note, name));
    }
    let since = since
        .map(|note| {
            parse_note(note, origin)
                .map(|cp| (cp, note.to_string()))
                .map_err(|e| err("the --since checkpoint", "signature", e.to_string()))
        })
        .transpose()?;
    let since_at = |size: u64| format!("the --since checkpoint (size {size})");
    if let Some((s, _)) = &since
        && (s.size < manifest.from || s.size > manifest.to)
    {
        return Err(err(
            since_at(s.size),
            "consistency",
            format!(
                "the export holds entries {}..{}; export a range that covers it",
                manifest.from, manifest.to
            ),
        ));
    }
    let mut log_keys = LogKeys::new(origin, *key);

    // The end of what a signature covers: every root up to it is compared as the stream
    // reaches it, so by the end of the stream it is either checked or the export refused.
    let signed_end = checkpoints
        .keys()
        .copied()
        .chain(since.as_ref().map(|(s, _)| s.size))
        .max();

    let mut summary = Summary {
        origin: origin.to_string(),
        from: manifest.from,
        to: manifest.to,
        checkpoints: 0,
        latest: None,
        kinds: Default::default(),
        unsigned_tail: None,
    };
    let check_root = |frontier: &Frontier,
                      summary: &mut Summary,
                      log_keys: &mut LogKeys|
     -> Result<(), VerifyError> {
        let size = frontier.size();
        let root = frontier.root();
        if let Some((cp, note, name)) = checkpoints.get(&size) {
            if cp.root != root {
                return Err(err(
                    format!("checkpoint of size {size}"),
                    "root",
                    format!(
                        "the entries before it do not hash to its root: entry {} or one before it was altered after it was signed",
                        size.saturating_sub(1)
                    ),
                ));
            }
            log_keys.check(format!("checkpoint {name}"), note)?;
            summary.checkpoints += 1;
            summary.latest = Some(size);
        }
        if let Some((s, note)) = &since
            && s.size == size
        {
            if s.root != root {
                return Err(err(
                    since_at(size),
                    "consistency",
                    "this log does not extend the checkpoint seen earlier: it was rewritten",
                ));
            }
            log_keys.check(since_at(size), note)?;
        }
        Ok(())
    };
    check_root(&frontier, &mut summary, &mut log_keys)?;

    let stream = files
        .entries()
        .map_err(|e| err("entries.jsonl", "missing", e.to_string()))?;
    let mut prev: Option<Hash> = None;
    let mut keys: HashMap<String, Jwk> = HashMap::new();
    let mut index = manifest.from;
    for line in stream.split(b'\n') {
        let bytes = line.map_err(|e| err("entries.jsonl", "format", e.to_string()))?;
        let at = entry_at(index);
        if index >= manifest.to {
            return Err(err(
                at,
                "index",
                format!("the export says it ends at {}", manifest.to),
            ));
        }
        let e = entry::parse(&bytes).map_err(|d| err(&at, "format", d.to_string()))?;
        if e.v != VERSION {
            return Err(err(at, "version", format!("version {}", e.v)));
        }
        if e.log != origin {
            return Err(err(at, "log", format!("written for log {:?}", e.log)));
        }
        if e.index != index {
            return Err(err(
                at,
                "index",
                format!(
                    "says it is entry {}: entries were deleted, inserted or reordered",
                    e.index
                ),
            ));
        }
        let linked = match prev {
            Some(p) => e.prev == jose::b64url(&p),
            // The link into an export that starts later is vouched for by the root instead.
            None => index > 0 || e.prev.is_empty(),
        };
        if !linked {
            return Err(err(
                at,
                "prev",
                format!(
                    "does not name the hash of entry {}: entry {} was altered (or this one was)",
                    index.saturating_sub(1),
                    index.saturating_sub(1)
                ),
            ));
        }
        check_fact(index, &e, &mut keys, &mut log_keys)?;
        if signed_end.is_some_and(|end| index < end) {
            *summary.kinds.entry(e.kind.name().to_string()).or_default() += 1;
        }
        let leaf = merkle::leaf_hash(&bytes);
        frontier.push(leaf);
        prev = Some(leaf);
        index += 1;
        check_root(&frontier, &mut summary, &mut log_keys)?;
    }
    if index < manifest.to {
        return Err(err(
            entry_at(index),
            "missing",
            format!(
                "the export ends at entry {index}, not {}: the log was cut short",
                manifest.to
            ),
        ));
    }
    log_keys.finish()?;
    let covered = signed_end.unwrap_or(manifest.from).max(manifest.from);
    if covered < manifest.to {
        match (tail, signed_end) {
            (Tail::Refuse, None) => {
                return Err(VerifyError::NoCheckpoint {
                    from: manifest.from,
                    to: manifest.to,
                });
            }
            (Tail::Refuse, Some(_)) => {
                return Err(VerifyError::UnsignedTail {
                    last_signed: covered,
                    size: manifest.to,
                });
            }
            (Tail::Report, _) => {
                summary.to = covered;
                summary.unsigned_tail = Some(UnsignedTail {
                    from: covered,
                    to: manifest.to,
                });
            }
        }
    }
    Ok(summary)
}

/// Parses a signed note's checkpoint text, for the log `origin`, without judging its
/// signatures (that waits for the log key in force at its size: [`LogKeys`]).
fn parse_note(note: &str, origin: &str) -> Result<Checkpoint, CheckpointError> {
    if note.len() > checkpoint::MAX_NOTE_BYTES {
        return Err(CheckpointError::Format("the note is too long"));
    }
    let (text, _) = note.split_once("\n\n").ok_or(CheckpointError::Format(
        "no blank line before the signatures",
    ))?;
    let cp = Checkpoint::parse_text(&format!("{text}\n"))?;
    if cp.origin != origin {
        return Err(CheckpointError::Origin {
            expected: origin.to_string(),
            found: cp.origin,
        });
    }
    Ok(cp)
}

/// The log key through a log: the key given for the export's start, then each key a
/// `key.rotated` entry of role `log` hands over to. A checkpoint must be signed by the key in
/// force at its size (the old key up to a rotation's entry, the new one after it) or by a
/// later key of the chain: a checkpoint the daemon signs after a rotation over an older size
/// carries the new key's signature. A checkpoint by an earlier key past its rotation is refused.
#[derive(Debug)]
struct LogKeys<'a> {
    origin: &'a str,
    /// The key in force now.
    current: PublicKey,
    /// Checkpoints with no signature by the key in force at their size, waiting for a later
    /// key: where each was found, and its note.
    waiting: Vec<(String, String)>,
}

impl<'a> LogKeys<'a> {
    fn new(origin: &'a str, key: PublicKey) -> Self {
        Self {
            origin,
            current: key,
            waiting: Vec::new(),
        }
    }

    /// Checks `note`'s signature by the key in force, or sets it aside for a later key.
    fn check(&mut self, at: String, note: &str) -> Result<(), VerifyError> {
        match checkpoint::verify(note, self.origin, &self.current) {
            Ok(_) => Ok(()),
            Err(CheckpointError::Unsigned) => {
                self.waiting.push((at, note.to_string()));
                Ok(())
            }
            Err(e) => Err(err(at, "signature", e.to_string())),
        }
    }

    /// The rotation in entry `index` hands the log from `old` to `new`.
    fn rotate(&mut self, index: u64, old: PublicKey, new: PublicKey) -> Result<(), VerifyError> {
        if old != self.current {
            return Err(err(
                entry_at(index),
                "rotation",
                format!(
                    "rotates the log key from {}, but the log key in force is {}",
                    old.thumbprint(),
                    self.current.thumbprint()
                ),
            ));
        }
        self.current = new;
        let mut still = Vec::new();
        for (at, note) in std::mem::take(&mut self.waiting) {
            match checkpoint::verify(&note, self.origin, &new) {
                Ok(_) => {}
                Err(CheckpointError::Unsigned) => still.push((at, note)),
                Err(e) => return Err(err(at, "signature", e.to_string())),
            }
        }
        self.waiting = still;
        Ok(())
    }

    /// Fails on a checkpoint no key in force at its size or later signed.
    fn finish(&self) -> Result<(), VerifyError> {
        match self.waiting.first() {
            None => Ok(()),
            Some((at, _)) => Err(err(
                at.clone(),
                "signature",
                "carries no signature by the log key in force at its size, nor by a later one",
            )),
        }
    }
}

/// The checks an entry's fact gets beyond its format.
fn check_fact(
    index: u64,
    e: &entry::Entry,
    keys: &mut HashMap<String, Jwk>,
    log_keys: &mut LogKeys<'_>,
) -> Result<(), VerifyError> {
    let at = entry_at(index);
    match e.kind {
        Kind::KeyRotated => {
            let fact: RotationFact = serde_json::from_value(e.fact.clone())
                .map_err(|d| err(&at, "format", d.to_string()))?;
            let (old, new) =
                rotation::verify(&fact, &e.log).map_err(|d| err(&at, "rotation", d.to_string()))?;
            if fact.role == "log" {
                log_keys.rotate(index, old, new)?;
            }
        }
        Kind::AgentProvisioned | Kind::AgentRotated => {
            if let (Some(agent), Some(jwk)) = (&e.agent, e.fact.get("jwk")) {
                let jwk: Jwk = serde_json::from_value(jwk.clone())
                    .map_err(|d| err(&at, "format", d.to_string()))?;
                keys.insert(agent.clone(), jwk);
            }
        }
        Kind::AgentStatement => {
            let agent = e
                .agent
                .as_deref()
                .ok_or_else(|| err(&at, "statement", "names no agent"))?;
            let fact: StatementFact = serde_json::from_value(e.fact.clone())
                .map_err(|d| err(&at, "format", d.to_string()))?;
            statement::verify(&fact, agent).map_err(|d| err(&at, "statement", d.to_string()))?;
            if let Some(known) = keys.get(agent)
                && *known != fact.jwk
            {
                return Err(err(
                    at,
                    "statement",
                    format!("signed by a key agent {agent} was not provisioned with"),
                ));
            }
        }
        Kind::PaymentAuthorized | Kind::PaymentConfirmed => {
            let mandate = e
                .fact
                .get("mandate")
                .and_then(serde_json::Value::as_str)
                .ok_or_else(|| err(&at, "mandate", "no mandate"))?;
            let closed = e
                .fact
                .get("closed")
                .and_then(serde_json::Value::as_str)
                .ok_or_else(|| err(&at, "mandate", "no closed mandate"))?;
            let claims = crate::payment::read_logged(mandate, closed)
                .map_err(|d| err(&at, "mandate", d.to_string()))?;
            if claims.log_index != index {
                return Err(err(
                    at,
                    "mandate",
                    format!("names log index {}", claims.log_index),
                ));
            }
            let text = |k: &str| e.fact.get(k).and_then(serde_json::Value::as_str);
            if e.fact.get("amount").and_then(serde_json::Value::as_u64) != Some(claims.amount)
                || text("decision") != Some(claims.jti.as_str())
                || text("payee") != Some(claims.payee.as_str())
                || text("currency") != Some(claims.currency.as_str())
                || text("transaction_id") != Some(claims.transaction_id.as_str())
                || text("aud") != Some(claims.aud.as_str())
                || e.fact
                    .get("checkout_verified")
                    .and_then(serde_json::Value::as_bool)
                    != Some(claims.checkout_verified)
            {
                return Err(err(at, "mandate", "the entry and its mandate disagree"));
            }
        }
        _ => {}
    }
    Ok(())
}

/// An inclusion proof as `evidence.inclusion` returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InclusionProof {
    pub index: u64,
    pub tree_size: u64,
    #[serde(default)]
    pub leaf_hash: Option<String>,
    pub hashes: Vec<String>,
}

/// Verifies that `entry` (its exact bytes) is in the log whose signed checkpoint is `note`.
pub fn verify_inclusion(
    entry_bytes: &[u8],
    proof: &InclusionProof,
    note: &str,
    key: &PublicKey,
) -> Result<Checkpoint, VerifyError> {
    let e = entry::parse(entry_bytes).map_err(|d| err("the entry", "format", d.to_string()))?;
    let cp = checkpoint::verify(note, &e.log, key)
        .map_err(|d| err("the checkpoint", "signature", d.to_string()))?;
    if e.index != proof.index {
        return Err(err(
            entry_at(e.index),
            "index",
            format!("the proof is for entry {}", proof.index),
        ));
    }
    if proof.tree_size != cp.size {
        return Err(err(
            "the proof",
            "proof",
            format!(
                "is for a tree of {} entries, the checkpoint has {}",
                proof.tree_size, cp.size
            ),
        ));
    }
    let hashes = proof
        .hashes
        .iter()
        .map(|h| decode_hash(h))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| err("the proof", "format", "a hash is not base64url SHA-256"))?;
    let leaf = merkle::leaf_hash(entry_bytes);
    if !merkle::verify_inclusion(proof.index, cp.size, &leaf, &hashes, &cp.root) {
        return Err(err(
            entry_at(e.index),
            "proof",
            format!(
                "is not in the tree of {} entries the checkpoint signs",
                cp.size
            ),
        ));
    }
    Ok(cp)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
    use super::*;
    use crate::evidence::entry::Draft;
    use crate::merkle::MemoryTree;
    use p256::ecdsa::{SigningKey, signature::hazmat::PrehashSigner};

    const LOG: &str = "ari.example/export-test";

    fn log_key() -> (SigningKey, PublicKey) {
        let sk = SigningKey::from_slice(&[9; 32]).unwrap();
        let pk = PublicKey::from_sec1(sk.verifying_key().to_sec1_point(false).as_bytes()).unwrap();
        (sk, pk)
    }

    fn signed_note(size: u64, root: Hash) -> String {
        let (sk, pk) = log_key();
        let cp = Checkpoint {
            origin: LOG.into(),
            size,
            root,
        };
        let sig: p256::ecdsa::Signature = sk.sign_prehash(&cp.digest()).unwrap();
        checkpoint::note(&cp, &pk, &sig.to_bytes().into()).unwrap()
    }

    /// Writes an export of entries `0..n` with checkpoints of the sizes in `signed` into a
    /// fresh directory; returns it and the tree of the entries.
    fn export(n: u64, signed: &[u64]) -> (tempfile::TempDir, MemoryTree) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("checkpoints")).unwrap();
        let mut tree = MemoryTree::new();
        let mut prev = None;
        let mut lines = String::new();
        for i in 0..n {
            let bytes = Draft::new(Kind::AgentFrozen, serde_json::json!({ "n": i }))
                .about("bot", "alice")
                .encode(LOG, i, prev.as_ref(), 1_700_000_000)
                .unwrap();
            let leaf = merkle::leaf_hash(&bytes);
            tree.push(leaf);
            prev = Some(leaf);
            lines.push_str(std::str::from_utf8(&bytes).unwrap());
            lines.push('\n');
        }
        std::fs::write(dir.path().join("entries.jsonl"), lines).unwrap();
        for &size in signed {
            std::fs::write(
                dir.path().join(format!("checkpoints/{size:012}.note")),
                signed_note(size, tree.root(size).unwrap()),
            )
            .unwrap();
        }
        let manifest = Manifest {
            origin: LOG.into(),
            from: 0,
            to: n,
            frontier: Vec::new(),
        };
        std::fs::write(
            dir.path().join("log.json"),
            serde_json::to_string(&manifest).unwrap(),
        )
        .unwrap();
        (dir, tree)
    }

    #[test]
    fn an_export_that_ends_on_a_checkpoint_verifies() {
        let (dir, _) = export(5, &[2, 5]);
        let s = verify_dir(dir.path(), &log_key().1, None).unwrap();
        assert_eq!((s.from, s.to, s.checkpoints, s.latest), (0, 5, 2, Some(5)));
        assert_eq!(s.kinds.get("agent.frozen"), Some(&5));
        // An empty export holds nothing to vouch for.
        let (dir, _) = export(0, &[]);
        assert_eq!(verify_dir(dir.path(), &log_key().1, None).unwrap().to, 0);
    }

    #[test]
    fn an_export_without_a_checkpoint_does_not_verify() {
        let (dir, _) = export(5, &[]);
        let e = verify_dir(dir.path(), &log_key().1, None).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("signed-tail"), "{text}");
        assert!(text.contains("entries 0..5"), "{text}");
        assert!(text.contains("no checkpoint"), "{text}");
    }

    #[test]
    fn entries_past_the_newest_checkpoint_do_not_verify() {
        for signed in [&[3][..], &[1, 3], &[3, 4]] {
            let (dir, _) = export(5, signed);
            let e = verify_dir(dir.path(), &log_key().1, None).unwrap_err();
            let text = e.to_string();
            let last = signed.last().unwrap();
            assert!(text.contains("signed-tail"), "{signed:?}: {text}");
            assert!(text.contains(&format!("entries {last}..5")), "{text}");
            assert_eq!(
                e,
                VerifyError::UnsignedTail {
                    last_signed: *last,
                    size: 5
                }
            );
            assert_eq!(e.check(), SIGNED_TAIL);
        }
        let (dir, _) = export(5, &[]);
        let e = verify_dir(dir.path(), &log_key().1, None).unwrap_err();
        assert_eq!(e, VerifyError::NoCheckpoint { from: 0, to: 5 });
    }

    #[test]
    fn a_reported_tail_is_counted_apart_and_never_verified() {
        let key = log_key().1;
        let (dir, _) = export(5, &[1, 3]);
        let s = verify_dir_with(dir.path(), &key, None, Tail::Report).unwrap();
        assert_eq!((s.from, s.to, s.latest), (0, 3, Some(3)));
        assert_eq!(s.unsigned_tail, Some(UnsignedTail { from: 3, to: 5 }));
        assert_eq!(s.kinds.values().sum::<u64>(), 3, "{s:?}");
        // Without any checkpoint nothing is verified at all.
        let (dir, _) = export(4, &[]);
        let s = verify_dir_with(dir.path(), &key, None, Tail::Report).unwrap();
        assert_eq!((s.to, s.checkpoints), (0, 0));
        assert_eq!(s.unsigned_tail.map(|t| t.len()), Some(4));
        assert!(s.kinds.is_empty(), "{s:?}");
        // A reported tail is still read: a broken link in it fails as anywhere else.
        let (dir, _) = export(5, &[3]);
        let path = dir.path().join("entries.jsonl");
        let text = std::fs::read_to_string(&path).unwrap();
        let mut lines: Vec<&str> = text.lines().collect();
        lines.swap(3, 4);
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        let e = verify_dir_with(dir.path(), &key, None, Tail::Report).unwrap_err();
        assert_eq!(e.check(), "index", "{e}");
        // An export that ends on a checkpoint has no tail to report.
        let (dir, _) = export(5, &[5]);
        let s = verify_dir_with(dir.path(), &key, None, Tail::Report).unwrap();
        assert_eq!((s.to, s.unsigned_tail), (5, None));
    }

    #[test]
    fn the_since_checkpoint_covers_the_tail_it_signs() {
        let key = log_key().1;
        let (dir, tree) = export(5, &[2]);
        let since = signed_note(5, tree.root(5).unwrap());
        let s = verify_dir(dir.path(), &key, Some(&since)).unwrap();
        assert_eq!(s.to, 5);
        // A since checkpoint inside the export covers only up to its size.
        let since = signed_note(4, tree.root(4).unwrap());
        let e = verify_dir(dir.path(), &key, Some(&since)).unwrap_err();
        assert_eq!(
            e,
            VerifyError::UnsignedTail {
                last_signed: 4,
                size: 5
            }
        );
    }

    #[test]
    fn an_export_in_memory_verifies_as_its_directory_does() {
        let key = log_key().1;
        let (dir, _) = export(5, &[2, 5]);
        let mut files = InMemory {
            manifest: std::fs::read_to_string(dir.path().join("log.json")).unwrap(),
            checkpoints: Dir(dir.path()).checkpoints().unwrap(),
            entries: std::fs::read(dir.path().join("entries.jsonl")).unwrap(),
        };
        let on_disk = verify_dir(dir.path(), &key, None).unwrap();
        let in_memory = verify(&files, &key, None, Tail::Refuse).unwrap();
        assert_eq!(in_memory, on_disk);
        // One byte changed in an entry: the chain breaks wherever the files are.
        let at = files.entries.iter().position(|&b| b == b'{').unwrap() + 1;
        files.entries.insert(at, b' ');
        assert!(verify(&files, &key, None, Tail::Refuse).is_err());
    }

    /// Writes an export of `drafts` with checkpoints of the given sizes, each signed by the
    /// given keys (seeds).
    fn export_signed(drafts: &[Draft], signed: &[(u64, &[u8])]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("checkpoints")).unwrap();
        let mut tree = MemoryTree::new();
        let mut prev = None;
        let mut lines = String::new();
        for (i, d) in drafts.iter().enumerate() {
            let bytes = d
                .encode(LOG, i as u64, prev.as_ref(), 1_700_000_000)
                .unwrap();
            let leaf = merkle::leaf_hash(&bytes);
            tree.push(leaf);
            prev = Some(leaf);
            lines.push_str(std::str::from_utf8(&bytes).unwrap());
            lines.push('\n');
        }
        std::fs::write(dir.path().join("entries.jsonl"), lines).unwrap();
        for &(size, seeds) in signed {
            let cp = Checkpoint {
                origin: LOG.into(),
                size,
                root: tree.root(size).unwrap(),
            };
            let mut note = String::new();
            for &seed in seeds {
                let (sk, pk) = rotation::tests::pair(seed);
                let sig: p256::ecdsa::Signature = sk.sign_prehash(&cp.digest()).unwrap();
                let one = checkpoint::note(&cp, &pk, &sig.to_bytes().into()).unwrap();
                if note.is_empty() {
                    note = one;
                } else {
                    note.push_str(one.rsplit_once("\n\n").unwrap().1);
                }
            }
            std::fs::write(
                dir.path().join(format!("checkpoints/{size:012}.note")),
                note,
            )
            .unwrap();
        }
        let manifest = Manifest {
            origin: LOG.into(),
            from: 0,
            to: drafts.len() as u64,
            frontier: Vec::new(),
        };
        std::fs::write(
            dir.path().join("log.json"),
            serde_json::to_string(&manifest).unwrap(),
        )
        .unwrap();
        dir
    }

    /// Five entries whose third (index 2) rotates the log key from seed 1 to seed 2.
    fn rotated_log() -> Vec<Draft> {
        (0..5)
            .map(|i| {
                if i == 2 {
                    let fact = rotation::tests::fact(LOG, "log", 1, 2);
                    Draft::new(Kind::KeyRotated, serde_json::to_value(fact).unwrap())
                } else {
                    Draft::new(Kind::AgentFrozen, serde_json::json!({ "n": i }))
                }
            })
            .collect()
    }

    #[test]
    fn checkpoints_change_key_at_a_log_key_rotation() {
        let old = rotation::tests::pair(1).1;
        let new = rotation::tests::pair(2).1;
        let drafts = rotated_log();
        // The old key up to the rotation (size 2 ends before it), the new one after.
        let dir = export_signed(&drafts, &[(2, &[1]), (3, &[2]), (5, &[2])]);
        let s = verify_dir(dir.path(), &old, None).unwrap();
        assert_eq!((s.to, s.checkpoints), (5, 3));
        assert_eq!(s.kinds.get("key.rotated"), Some(&1));
        // A checkpoint of an older size signed by the new key after the rotation is accepted.
        let dir = export_signed(&drafts, &[(1, &[2]), (5, &[2])]);
        verify_dir(dir.path(), &old, None).unwrap();
        // The old key past its rotation is refused, even beside a checkpoint by the new key.
        let dir = export_signed(&drafts, &[(2, &[1]), (3, &[1]), (5, &[2])]);
        let e = verify_dir(dir.path(), &old, None).unwrap_err();
        assert_eq!(e.check(), "signature", "{e}");
        assert!(
            e.to_string().contains("checkpoint 000000000003.note"),
            "{e}"
        );
        // Starting from the new key, the rotation does not chain on: the log began elsewhere.
        let dir = export_signed(&drafts, &[(2, &[1]), (5, &[2])]);
        let e = verify_dir(dir.path(), &new, None).unwrap_err();
        assert_eq!(e.check(), "rotation", "{e}");
    }

    #[test]
    fn a_tampered_rotation_entry_does_not_verify() {
        let old = rotation::tests::pair(1).1;
        let mut drafts = rotated_log();
        // The new key's signature replaced by the old key's: only one key signed.
        let mut fact: RotationFact = serde_json::from_value(drafts[2].fact.clone()).unwrap();
        fact.signatures.new = fact.signatures.old.clone();
        drafts[2].fact = serde_json::to_value(fact).unwrap();
        let dir = export_signed(&drafts, &[(2, &[1]), (5, &[2])]);
        let e = verify_dir(dir.path(), &old, None).unwrap_err();
        assert_eq!(e.check(), "rotation", "{e}");
        assert!(e.to_string().starts_with("entry 2:"), "{e}");
        // A third key swapped in as the new one: its signature is missing.
        let mut drafts = rotated_log();
        let mut fact: RotationFact = serde_json::from_value(drafts[2].fact.clone()).unwrap();
        let third = rotation::tests::pair(3).1;
        fact.new.kid = third.thumbprint();
        fact.new.jwk = third.to_jwk();
        drafts[2].fact = serde_json::to_value(fact).unwrap();
        let dir = export_signed(&drafts, &[(2, &[1]), (5, &[3])]);
        let e = verify_dir(dir.path(), &old, None).unwrap_err();
        assert_eq!(e.check(), "rotation", "{e}");
    }
}
