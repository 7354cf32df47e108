//! The same-run baseline of `arictl bench log`: durable appends straight into SQLite, with no
//! daemon, socket, signature, JSON or Merkle tree in the way.
//!
//! One thread inserts rows of a given size (the bytes the daemon's database grew by per entry in
//! the run being compared, so the same amount goes to disk) into a fresh database next to the
//! daemon's, with the daemon's durability settings (WAL, `synchronous=FULL`, the WAL copied back
//! into the database every 4096 pages), and commits every `group` rows: the mean number of
//! entries the daemon's writer carried per group commit in that run (entries appended over its
//! `ari_ledger_group_commit_jobs` count; one job may append a whole batch of statements). So both
//! sides pay the same number of fsyncs per entry; what the ratio shows is the rest. An entry's latency here is the time from the start of
//! its group to that group's commit. The database is removed afterwards.

use super::{BenchError, Figures};
use std::path::Path;
use std::time::{Duration, Instant};

/// Appends rows of `row_bytes` bytes for `seconds`, committing every `group` rows, in a fresh
/// database at `path` (removed at the end, with its WAL).
pub fn raw_append(
    path: &Path,
    row_bytes: usize,
    group: usize,
    seconds: f64,
) -> Result<Figures, BenchError> {
    let result = run(path, row_bytes, group.max(1), seconds);
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }
    result
}

fn run(path: &Path, row_bytes: usize, group: usize, seconds: f64) -> Result<Figures, BenchError> {
    let mut conn = rusqlite::Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "wal_autocheckpoint", 4096)?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS raw_entry (idx INTEGER PRIMARY KEY, entry BLOB NOT NULL) STRICT",
    )?;
    // Distinct bytes per row, so no page compresses or repeats.
    let mut row = vec![0u8; row_bytes.max(1)];
    let mut latencies = Vec::new();
    let mut idx = 0i64;
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    while Instant::now() < deadline {
        let began = Instant::now();
        let tx = conn.transaction()?;
        {
            let mut insert =
                tx.prepare_cached("INSERT INTO raw_entry (idx, entry) VALUES (?1, ?2)")?;
            for _ in 0..group {
                for (b, x) in row.iter_mut().zip(idx.to_le_bytes().iter().cycle()) {
                    *b = b.wrapping_add(*x).rotate_left(1);
                }
                insert.execute(rusqlite::params![idx, row])?;
                idx += 1;
            }
        }
        tx.commit()?;
        let took = began.elapsed().as_secs_f64() * 1e6;
        latencies.extend(std::iter::repeat_n(took, group));
    }
    Ok(Figures::from_latencies(latencies, start.elapsed()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn appends_in_groups_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("raw.db");
        let f = raw_append(&db, 600, 4, 0.05).unwrap();
        assert!(f.ops > 0 && f.ops.is_multiple_of(4));
        assert!(f.ops_per_s > 0.0 && f.p50_us > 0.0);
        assert!(!db.exists());
    }
}
