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
//! [`verify_dir`] streams the entries once: each parses strictly and names its log and index,
//! links to the leaf hash before it, statements verify under their agent's key, authorization
//! entries name their own index; after each entry the root is compared with any checkpoint of
//! that size, whose signature is checked first. Failures name the entry (or checkpoint) and the
//! check. Memory stays O(log n) plus the agents' keys.

use super::checkpoint::{self, Checkpoint};
use super::entry::{self, Kind, VERSION};
use super::log::{self, StoredCheckpoint, StoredNodes};
use super::statement::{self, StatementFact};
use super::tree::{self, Frontier, Hash};
use crate::jose::{self, Jwk, PublicKey};
use crate::store::StoreError;
use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::{BufRead, Write};
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

/// Reads a page of at most `limit` entries from `from`, of an export that ends at `end`.
pub fn read_page(
    conn: &Connection,
    origin: &str,
    log_key: &PublicKey,
    from: u64,
    end: u64,
    limit: u64,
) -> Result<Page, StoreError> {
    let to = end.min(from.saturating_add(limit.max(1)));
    let frontier = Frontier::read(&StoredNodes(conn), from)?;
    let lower = if from == 0 { 0 } else { from + 1 };
    let entries = log::entries(conn, from, to)?
        .into_iter()
        .map(|b| {
            String::from_utf8(b).map_err(|_| StoreError::Corrupt("an entry is not UTF-8".into()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let checkpoints = log::checkpoints(conn, lower, to)?
        .into_iter()
        .map(|StoredCheckpoint { size, note, .. }| PageCheckpoint { size, note })
        .collect();
    Ok(Page {
        origin: origin.to_string(),
        from,
        to,
        end,
        frontier: frontier.hashes().iter().map(|h| jose::b64url(h)).collect(),
        entries,
        checkpoints,
        log_key: log_key.to_jwk(),
    })
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

/// Writes an export directory page by page.
#[derive(Debug)]
pub struct DirWriter {
    dir: std::path::PathBuf,
    entries: std::io::BufWriter<std::fs::File>,
    manifest: Option<Manifest>,
}

impl DirWriter {
    /// Creates `dir` (which must not hold an export already).
    pub fn create(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir.join("checkpoints"))?;
        let entries = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(dir.join("entries.jsonl"))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            entries: std::io::BufWriter::new(entries),
            manifest: None,
        })
    }

    /// Appends a page; pages must follow each other.
    pub fn add(&mut self, page: &Page) -> std::io::Result<()> {
        let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
        match &mut self.manifest {
            None => {
                self.manifest = Some(Manifest {
                    origin: page.origin.clone(),
                    from: page.from,
                    to: page.to,
                    frontier: page.frontier.clone(),
                });
                let jwk =
                    serde_json::to_string_pretty(&page.log_key).map_err(|e| bad(&e.to_string()))?;
                std::fs::write(self.dir.join("log-key.jwk"), jwk + "\n")?;
            }
            Some(m) if m.to == page.from && m.origin == page.origin => m.to = page.to,
            Some(_) => return Err(bad("pages out of order")),
        }
        for e in &page.entries {
            if e.contains('\n') {
                return Err(bad("an entry holds a newline"));
            }
            self.entries.write_all(e.as_bytes())?;
            self.entries.write_all(b"\n")?;
        }
        for c in &page.checkpoints {
            std::fs::write(
                self.dir.join(format!("checkpoints/{:012}.note", c.size)),
                &c.note,
            )?;
        }
        Ok(())
    }

    /// Writes the manifest; returns it.
    pub fn finish(mut self) -> std::io::Result<Manifest> {
        self.entries.flush()?;
        self.entries.get_ref().sync_all()?;
        let m = self
            .manifest
            .take()
            .ok_or_else(|| std::io::Error::other("nothing was exported"))?;
        let text = serde_json::to_string_pretty(&m).map_err(std::io::Error::other)?;
        std::fs::write(self.dir.join("log.json"), text + "\n")?;
        Ok(m)
    }
}

/// Why an export (or a proof) does not verify. `at` names the entry or checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{at}: {check}: {detail}")]
pub struct VerifyError {
    /// `entry N`, `checkpoint of size N`, or a file.
    pub at: String,
    /// The check that failed: `format`, `version`, `log`, `index`, `prev`, `statement`,
    /// `mandate`, `signature`, `root`, `missing`, `consistency`, `proof`.
    pub check: &'static str,
    pub detail: String,
}

fn err(at: impl Into<String>, check: &'static str, detail: impl Into<String>) -> VerifyError {
    VerifyError {
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
    pub from: u64,
    pub to: u64,
    /// Checkpoints whose signature and root were checked.
    pub checkpoints: usize,
    /// The largest checked checkpoint's size.
    pub latest: Option<u64>,
    /// Entries of each kind.
    pub kinds: std::collections::BTreeMap<String, u64>,
}

fn decode_hash(text: &str) -> Option<Hash> {
    jose::b64url_decode(text)
        .ok()
        .and_then(|b| Hash::try_from(b.as_slice()).ok())
}

/// Verifies the export in `dir` with the log key; `since` is a signed checkpoint seen earlier
/// that the log must extend.
pub fn verify_dir(
    dir: &Path,
    key: &PublicKey,
    since: Option<&str>,
) -> Result<Summary, VerifyError> {
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(name)).map_err(|e| err(name, "missing", e.to_string()))
    };
    let manifest: Manifest = serde_json::from_str(&read("log.json")?)
        .map_err(|e| err("log.json", "format", e.to_string()))?;
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

    // Checkpoints: every signature first, then each root as the stream reaches its size.
    let mut checkpoints: HashMap<u64, Checkpoint> = HashMap::new();
    let listing = std::fs::read_dir(dir.join("checkpoints"))
        .map_err(|e| err("checkpoints", "missing", e.to_string()))?;
    for item in listing {
        let path = item
            .map_err(|e| err("checkpoints", "missing", e.to_string()))?
            .path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let note =
            std::fs::read_to_string(&path).map_err(|e| err(&name, "missing", e.to_string()))?;
        let cp = checkpoint::verify(&note, origin, key)
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
        checkpoints.insert(cp.size, cp);
    }
    let since = since
        .map(|note| {
            checkpoint::verify(note, origin, key)
                .map_err(|e| err("the --since checkpoint", "signature", e.to_string()))
        })
        .transpose()?;
    if let Some(s) = &since
        && (s.size < manifest.from || s.size > manifest.to)
    {
        return Err(err(
            format!("the --since checkpoint (size {})", s.size),
            "consistency",
            format!(
                "the export holds entries {}..{}; export a range that covers it",
                manifest.from, manifest.to
            ),
        ));
    }

    let mut summary = Summary {
        origin: origin.to_string(),
        from: manifest.from,
        to: manifest.to,
        checkpoints: 0,
        latest: None,
        kinds: Default::default(),
    };
    let check_root = |frontier: &Frontier, summary: &mut Summary| -> Result<(), VerifyError> {
        let size = frontier.size();
        let root = frontier.root();
        if let Some(cp) = checkpoints.get(&size) {
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
            summary.checkpoints += 1;
            summary.latest = Some(size);
        }
        if let Some(s) = &since
            && s.size == size
            && s.root != root
        {
            return Err(err(
                format!("the --since checkpoint (size {size})"),
                "consistency",
                "this log does not extend the checkpoint seen earlier: it was rewritten",
            ));
        }
        Ok(())
    };
    check_root(&frontier, &mut summary)?;

    let file = std::fs::File::open(dir.join("entries.jsonl"))
        .map_err(|e| err("entries.jsonl", "missing", e.to_string()))?;
    let mut prev: Option<Hash> = None;
    let mut keys: HashMap<String, Jwk> = HashMap::new();
    let mut index = manifest.from;
    for line in std::io::BufReader::new(file).split(b'\n') {
        let bytes = line.map_err(|e| err("entries.jsonl", "format", e.to_string()))?;
        let at = entry_at(index);
        if index >= manifest.to {
            return Err(err(
                at,
                "index",
                format!("the export says it ends at {}", manifest.to),
            ));
        }
        let e = entry::parse(&bytes).map_err(|d| err(&at, "format", d))?;
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
        check_fact(index, &e, &mut keys)?;
        *summary.kinds.entry(e.kind.name().to_string()).or_default() += 1;
        let leaf = tree::leaf_hash(&bytes);
        frontier.push(leaf);
        prev = Some(leaf);
        index += 1;
        check_root(&frontier, &mut summary)?;
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
    Ok(summary)
}

/// The checks an entry's fact gets beyond its format.
fn check_fact(
    index: u64,
    e: &entry::Entry,
    keys: &mut HashMap<String, Jwk>,
) -> Result<(), VerifyError> {
    let at = entry_at(index);
    match e.kind {
        Kind::AgentProvisioned => {
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
            statement::verify(&fact, agent).map_err(|d| err(&at, "statement", d))?;
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
            let claims: crate::payment::AuthorizationClaims = jose::b64url_decode(mandate)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .ok_or_else(|| err(&at, "mandate", "not the payload of an authorization"))?;
            if claims.log_index != index {
                return Err(err(
                    at,
                    "mandate",
                    format!("names log index {}", claims.log_index),
                ));
            }
            if e.fact.get("amount").and_then(serde_json::Value::as_u64) != Some(claims.amount)
                || e.fact.get("decision").and_then(serde_json::Value::as_str)
                    != Some(claims.jti.as_str())
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
    let e = entry::parse(entry_bytes).map_err(|d| err("the entry", "format", d))?;
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
    let leaf = tree::leaf_hash(entry_bytes);
    if !tree::verify_inclusion(proof.index, cp.size, &leaf, &hashes, &cp.root) {
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
