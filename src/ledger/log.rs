//! The log's storage: entries and perfect-subtree hashes in SQLite (schema steps 4 and 6).
//!
//! Appends run on the ledger's connection inside a ledger job, so an entry commits in the same
//! transaction as the change it records, or not at all. Leaf `i` is row `idx = i` of
//! `evidence_entry`; its bytes are exactly what the leaf hash covers. `evidence_hash` holds each
//! perfect subtree's hash once its last leaf is in (level 0 are the leaf hashes themselves), so
//! a root or a proof reads O(log n) rows whatever the log's size. A hash's row is its subtree's
//! place in post-order ([`merkle::postorder`]): the hashes an append completes are the next rows,
//! so a group commit writes them onto the table's last page or two instead of onto one page per
//! tree level. Nothing here ever updates or deletes a row.

use crate::evidence::entry::Draft;
use crate::merkle::{self, Hash, Nodes, TreeError};
use crate::store::StoreError;
use rusqlite::{Connection, OptionalExtension, params};

/// The perfect-subtree hashes stored beside the entries.
#[derive(Debug, Clone, Copy)]
pub struct StoredNodes<'c>(pub &'c Connection);

impl Nodes for StoredNodes<'_> {
    fn node(&self, level: u32, index: u64) -> Result<Hash, TreeError> {
        let missing = TreeError::Missing { level, index };
        let pos = row_of(level, index).ok_or_else(|| missing.clone())?;
        let mut q = self
            .0
            .prepare_cached("SELECT hash FROM evidence_hash WHERE pos = ?1")
            .map_err(|e| TreeError::Store(std::sync::Arc::new(e)))?;
        let hash: Option<Vec<u8>> = q
            .query_row([pos], |r| r.get(0))
            .optional()
            .map_err(|e| TreeError::Store(std::sync::Arc::new(e)))?;
        hash.and_then(|h| Hash::try_from(h.as_slice()).ok())
            .ok_or(missing)
    }
}

/// The `evidence_hash` row of a perfect subtree.
fn row_of(level: u32, index: u64) -> Option<i64> {
    merkle::postorder(level, index).and_then(|p| i64::try_from(p).ok())
}

/// Number of entries in the log.
pub fn size(conn: &Connection) -> Result<u64, StoreError> {
    let mut q = conn.prepare_cached("SELECT coalesce(max(idx) + 1, 0) FROM evidence_entry")?;
    let n: i64 = q.query_row([], |r| r.get(0))?;
    u64::try_from(n).map_err(|_| StoreError::Corrupt("negative log size".into()))
}

/// The leaf hash of the last entry, if any: the next entry's `prev`.
pub fn last_leaf(conn: &Connection) -> Result<Option<Hash>, StoreError> {
    match size(conn)? {
        0 => Ok(None),
        n => Ok(Some(StoredNodes(conn).node(0, n - 1)?)),
    }
}

/// Where an appended entry landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Its leaf index.
    pub index: u64,
    /// Its leaf hash.
    pub leaf: Hash,
}

/// Appends `entry` (the exact bytes to be hashed) of `kind` as the next leaf, with the subtree
/// hashes it completes.
pub fn append(conn: &Connection, kind: &str, entry: &[u8]) -> Result<Appended, StoreError> {
    append_at(conn, size(conn)?, kind, entry)
}

/// [`append`] when the caller already read the log's size (`index`).
fn append_at(
    conn: &Connection,
    index: u64,
    kind: &str,
    entry: &[u8],
) -> Result<Appended, StoreError> {
    let leaf = merkle::leaf_hash(entry);
    let completed = merkle::completed_by(&StoredNodes(conn), index, leaf)?;
    insert(conn, kind, entry, &completed)?;
    Ok(Appended { index, leaf })
}

/// Inserts an entry and the subtree hashes it completes (its leaf hash first).
fn insert(
    conn: &Connection,
    kind: &str,
    entry: &[u8],
    completed: &[(u32, u64, Hash)],
) -> Result<(), StoreError> {
    let too_large = || StoreError::Corrupt("log too large".into());
    let idx = i64::try_from(completed.first().map_or(0, |c| c.1)).map_err(|_| too_large())?;
    conn.prepare_cached("INSERT INTO evidence_entry (idx, kind, entry) VALUES (?1, ?2, ?3)")?
        .execute(params![idx, kind, entry])?;
    let mut node = conn.prepare_cached("INSERT INTO evidence_hash (pos, hash) VALUES (?1, ?2)")?;
    for (level, i, hash) in completed {
        node.execute(params![
            row_of(*level, *i).ok_or_else(too_large)?,
            hash.as_slice()
        ])?;
    }
    Ok(())
}

/// The end of the log as the writer keeps it between appends: the frontier of the tree (its
/// size and root) and the last leaf hash (the next entry's `prev`), so an append reads nothing
/// back from the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tip {
    frontier: merkle::Frontier,
    last: Option<Hash>,
}

impl Tip {
    /// Reads the tip of the stored log.
    pub fn read(conn: &Connection) -> Result<Self, StoreError> {
        let size = size(conn)?;
        Ok(Self {
            frontier: merkle::Frontier::read(&StoredNodes(conn), size)?,
            last: match size {
                0 => None,
                n => Some(StoredNodes(conn).node(0, n - 1)?),
            },
        })
    }

    /// Entries in the log.
    pub fn size(&self) -> u64 {
        self.frontier.size()
    }

    /// The log's root.
    pub fn root(&self) -> Hash {
        self.frontier.root()
    }
}

/// Writes `draft` as the next entry of the log `origin` after `tip`, linked to the entry before
/// it, and moves `tip` past it. `tip` is unchanged if the entry cannot be written.
pub fn append_after(
    conn: &Connection,
    tip: &mut Tip,
    origin: &str,
    draft: &Draft,
    now: i64,
) -> Result<Appended, StoreError> {
    let index = tip.size();
    let bytes = draft
        .encode(origin, index, tip.last.as_ref(), now)
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let leaf = merkle::leaf_hash(&bytes);
    let mut next = tip.frontier.clone();
    let completed = next.append(leaf);
    insert(conn, draft.kind.name(), &bytes, &completed)?;
    *tip = Tip {
        frontier: next,
        last: Some(leaf),
    };
    Ok(Appended { index, leaf })
}

/// Writes `draft` as the next entry of the log `origin`, linked to the entry before it.
pub fn append_entry(
    conn: &Connection,
    origin: &str,
    draft: &Draft,
    now: i64,
) -> Result<Appended, StoreError> {
    append_after(conn, &mut Tip::read(conn)?, origin, draft, now)
}

/// Entries `from..to` (clamped to the log), in order.
pub fn entries(conn: &Connection, from: u64, to: u64) -> Result<Vec<Vec<u8>>, StoreError> {
    let clamp = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let (from, to) = (clamp(from), clamp(to));
    let mut q = conn.prepare_cached(
        "SELECT entry FROM evidence_entry WHERE idx >= ?1 AND idx < ?2 ORDER BY idx",
    )?;
    let rows = q.query_map([from, to], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A signed checkpoint as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheckpoint {
    /// Tree size it covers.
    pub size: u64,
    /// The signed note.
    pub note: String,
    /// Unix seconds.
    pub signed_at: i64,
}

/// Keeps a signed checkpoint (a second one for the same size is ignored).
pub fn put_checkpoint(
    conn: &Connection,
    size: u64,
    root: &Hash,
    note: &str,
    signed_at: i64,
) -> Result<(), StoreError> {
    let size = i64::try_from(size).map_err(|_| StoreError::Corrupt("log too large".into()))?;
    conn.prepare_cached(
        "INSERT OR IGNORE INTO evidence_checkpoint (size, root, note, signed_at)
         VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![size, root.as_slice(), note, signed_at])?;
    Ok(())
}

/// Replaces the note of the checkpoint of `size` with one that carries more signatures (a
/// witness's cosignature); the caller has checked that the text is the same.
pub fn put_cosigned(conn: &Connection, size: u64, note: &str) -> Result<(), StoreError> {
    let size = i64::try_from(size).map_err(|_| StoreError::Corrupt("log too large".into()))?;
    conn.prepare_cached("UPDATE evidence_checkpoint SET note = ?2 WHERE size = ?1")?
        .execute(params![size, note])?;
    Ok(())
}

/// The size the witness `name` last cosigned, as far as this log knows (0 if never).
pub fn witness_size(conn: &Connection, name: &str) -> Result<u64, StoreError> {
    let size: Option<i64> = conn
        .prepare_cached("SELECT size FROM witness_state WHERE name = ?1")?
        .query_row([name], |r| r.get(0))
        .optional()?;
    Ok(size.and_then(|s| u64::try_from(s).ok()).unwrap_or(0))
}

/// Records the size the witness `name` has cosigned.
pub fn put_witness_size(
    conn: &Connection,
    name: &str,
    size: u64,
    at: i64,
) -> Result<(), StoreError> {
    let size = i64::try_from(size).map_err(|_| StoreError::Corrupt("log too large".into()))?;
    conn.prepare_cached(
        "INSERT INTO witness_state (name, size, cosigned_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (name) DO UPDATE SET size = ?2, cosigned_at = ?3",
    )?
    .execute(params![name, size, at])?;
    Ok(())
}

/// Checkpoints of sizes `from..=to`, smallest first.
pub fn checkpoints(
    conn: &Connection,
    from: u64,
    to: u64,
) -> Result<Vec<StoredCheckpoint>, StoreError> {
    let clamp = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let mut q = conn.prepare_cached(
        "SELECT size, note, signed_at FROM evidence_checkpoint
         WHERE size >= ?1 AND size <= ?2 ORDER BY size",
    )?;
    let rows = q.query_map([clamp(from), clamp(to)], |r| {
        Ok(StoredCheckpoint {
            size: u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
            note: r.get(1)?,
            signed_at: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The checkpoint of the largest size.
pub fn latest_checkpoint(conn: &Connection) -> Result<Option<StoredCheckpoint>, StoreError> {
    let mut q = conn.prepare_cached(
        "SELECT size, note, signed_at FROM evidence_checkpoint ORDER BY size DESC LIMIT 1",
    )?;
    Ok(q.query_row([], |r| {
        Ok(StoredCheckpoint {
            size: u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
            note: r.get(1)?,
            signed_at: r.get(2)?,
        })
    })
    .optional()?)
}

/// The entry at `index`: its kind and bytes.
pub fn entry(conn: &Connection, index: u64) -> Result<Option<(String, Vec<u8>)>, StoreError> {
    let Ok(idx) = i64::try_from(index) else {
        return Ok(None);
    };
    let mut q = conn.prepare_cached("SELECT kind, entry FROM evidence_entry WHERE idx = ?1")?;
    Ok(q.query_row([idx], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::merkle::MemoryTree;

    fn db() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ari.db");
        crate::store::Store::open(&path).unwrap();
        let conn = Connection::open(&path).unwrap();
        (dir, conn)
    }

    #[test]
    fn stored_tree_matches_the_memory_tree() {
        let (_dir, mut conn) = db();
        let mut mem = MemoryTree::new();
        let tx = conn.transaction().unwrap();
        assert_eq!(last_leaf(&tx).unwrap(), None);
        for i in 0..130u64 {
            let bytes = format!("{{\"n\":{i}}}");
            let a = append(&tx, "test", bytes.as_bytes()).unwrap();
            assert_eq!(a.index, mem.push(merkle::leaf_hash(bytes.as_bytes())));
            assert_eq!(last_leaf(&tx).unwrap(), Some(a.leaf));
        }
        tx.commit().unwrap();
        let stored = StoredNodes(&conn);
        assert_eq!(size(&conn).unwrap(), 130);
        for n in 1..=130u64 {
            let root = merkle::root(&stored, n).unwrap();
            assert_eq!(root, mem.root(n).unwrap());
            for m in [0, n / 2, n - 1] {
                let proof = merkle::inclusion_proof(&stored, m, n).unwrap();
                assert_eq!(proof, merkle::inclusion_proof(&mem, m, n).unwrap());
                let (_, bytes) = entry(&conn, m).unwrap().unwrap();
                assert!(merkle::verify_inclusion(
                    m,
                    n,
                    &merkle::leaf_hash(&bytes),
                    &proof,
                    &root
                ));
            }
            let proof = merkle::consistency_proof(&stored, n / 2 + 1, n).unwrap();
            assert_eq!(
                proof,
                merkle::consistency_proof(&mem, n / 2 + 1, n).unwrap()
            );
        }
        // Two nodes per leaf at most: the log's index overhead stays linear.
        let nodes: i64 = conn
            .query_row("SELECT count(*) FROM evidence_hash", [], |r| r.get(0))
            .unwrap();
        assert!(nodes < 2 * 130);
    }

    #[test]
    fn entries_written_here_check_offline() {
        use crate::evidence::entry::{Kind, check_chain};
        let (_dir, conn) = db();
        for i in 0..40 {
            let draft = Draft {
                kind: Kind::PaymentDenied,
                agent: Some("bot".into()),
                user: Some("alice".into()),
                runtime: None,
                fact: serde_json::json!({ "reason": "budget_exhausted", "n": i }),
            };
            append_entry(&conn, "ari.example/t", &draft, 1_700_000_000 + i).unwrap();
        }
        let all = entries(&conn, 0, u64::MAX).unwrap();
        assert_eq!(all.len(), 40);
        let (_, tree) = check_chain("ari.example/t", 0, None, &all).unwrap();
        assert_eq!(
            tree.root(40).unwrap(),
            merkle::root(&StoredNodes(&conn), 40).unwrap()
        );
        let tail = entries(&conn, 30, 45).unwrap();
        let before = StoredNodes(&conn).node(0, 29).unwrap();
        check_chain("ari.example/t", 30, Some(before), &tail).unwrap();
    }

    #[test]
    fn a_missing_node_is_reported_not_guessed() {
        let (_dir, conn) = db();
        for i in 0..4 {
            append(&conn, "test", &[i]).unwrap();
        }
        conn.execute(
            "DELETE FROM evidence_hash WHERE pos = ?1",
            [row_of(1, 0).unwrap()],
        )
        .unwrap();
        assert!(matches!(
            merkle::root(&StoredNodes(&conn), 3),
            Err(TreeError::Missing { level: 1, index: 0 })
        ));
    }
}
