//! The evidence log read straight from a copy of the daemon's state database (a backup, or the
//! file of a stopped daemon), without the daemon: what `arictl log export --db` exports.
//!
//! The database is opened read-only and only read, through the same queries the daemon's log
//! uses, so an archive's pages are exactly the pages the daemon would hand out. Nothing here can
//! sign: an export from an archive may end only on a checkpoint the database already holds, and
//! [`Archive::signed_end`] refuses any other end, naming the nearest sizes that have one. This
//! module must never write to the database, create one, or hold a key that signs.

use crate::evidence::export::Page;
use crate::jose::{JoseError, PublicKey};
use crate::ledger::log::{self, StoredCheckpoint};
use crate::store::StoreError;
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};

/// Entries in one page of an archive's export.
const PAGE_ENTRIES: u64 = 5_000;

/// Why an archive could not be read, or an export from it cannot end where asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveError {
    /// The file is missing or not a database.
    #[error("cannot open {}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },
    /// The database holds no log key (not a state database, or one from before the log).
    #[error("the database has no log key")]
    NoLogKey(#[source] rusqlite::Error),
    /// The stored log key is not a P-256 public key.
    #[error(transparent)]
    Key(#[from] JoseError),
    /// The log's tables could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The database holds no checkpoint at all, so nothing in it is signed.
    #[error("the database holds no checkpoint")]
    NoCheckpoint,
    /// The export's end has no stored checkpoint, and nothing offline can sign one.
    #[error(
        "the database holds no checkpoint of size {end}, and an export must end on a signed \
         checkpoint (offline, nothing can sign one)"
    )]
    UnsignedEnd {
        /// The end asked for.
        end: u64,
        /// The largest size below it with a checkpoint.
        below: Option<u64>,
        /// The smallest size above it with a checkpoint.
        above: Option<u64>,
    },
}

/// A state database opened read-only, with its log's origin and public key.
#[derive(Debug)]
pub struct Archive {
    conn: Connection,
    origin: String,
    key: PublicKey,
}

impl Archive {
    /// Opens the database at `path` read-only and reads the log's key and origin (from its
    /// newest checkpoint).
    pub fn open(path: &Path) -> Result<Self, ArchiveError> {
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(
            |source| ArchiveError::Open {
                path: path.to_path_buf(),
                source,
            },
        )?;
        let key: Vec<u8> = conn
            .query_row(
                "SELECT public_key FROM daemon_key WHERE role = 'log'",
                [],
                |r| r.get(0),
            )
            .map_err(ArchiveError::NoLogKey)?;
        let key = PublicKey::from_sec1(&key)?;
        let latest = log::latest_checkpoint(&conn)?.ok_or(ArchiveError::NoCheckpoint)?;
        let origin = latest.note.lines().next().unwrap_or_default().to_string();
        Ok(Self { conn, origin, key })
    }

    /// The end of an export from `from`: `to`, or the newest checkpoint's size; refused when no
    /// checkpoint of that size is stored (an export must end on a signed checkpoint).
    pub fn signed_end(&self, from: u64, to: Option<u64>) -> Result<u64, ArchiveError> {
        let end = self.end(to)?;
        if end <= from || !log::checkpoints(&self.conn, end, end)?.is_empty() {
            return Ok(end);
        }
        let size = |c: &StoredCheckpoint| c.size;
        Err(ArchiveError::UnsignedEnd {
            end,
            below: log::checkpoints(&self.conn, 0, end)?.last().map(size),
            above: log::checkpoints(&self.conn, end, u64::MAX)?
                .first()
                .map(size),
        })
    }

    /// The page of the export ending at `to` (or the newest checkpoint) that starts at `from`.
    pub fn page(&self, from: u64, to: Option<u64>) -> Result<Page, ArchiveError> {
        let end = self.end(to)?;
        Ok(crate::ledger::export::read_page(
            &self.conn,
            &self.origin,
            &self.key,
            from,
            end,
            PAGE_ENTRIES,
        )?)
    }

    /// `to`, or the newest checkpoint's size (0 without one).
    fn end(&self, to: Option<u64>) -> Result<u64, ArchiveError> {
        Ok(match to {
            Some(n) => n,
            None => log::latest_checkpoint(&self.conn)?.map_or(0, |c| c.size),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    #[test]
    fn a_missing_file_is_refused_and_never_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.db");
        match Archive::open(&path) {
            Err(ArchiveError::Open { path: p, .. }) => assert_eq!(p, path),
            other => panic!("{other:?}"),
        }
        assert!(!path.exists());
    }

    #[test]
    fn a_database_without_a_log_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ari.db");
        crate::store::Store::open(&path).unwrap();
        assert!(matches!(
            Archive::open(&path),
            Err(ArchiveError::NoLogKey(_))
        ));
    }
}
