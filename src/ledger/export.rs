//! Exports of the evidence log: pages read from the store, and the directory a verifier checks.
//!
//! The daemon hands its log out a page at a time ([`read_page`], `admin.log_export`); `arictl`
//! writes the pages into an export directory ([`DirWriter`]) that `ari_core`'s
//! [`verify_dir`](crate::evidence::export::verify_dir) checks offline. The writer never follows
//! a link nor writes over a file: an export directory is new, or an empty one of the caller's.

use super::log::{self, StoredCheckpoint, StoredNodes};
use crate::evidence::export::{Manifest, Page, PageCheckpoint};
use crate::jose::{self, PublicKey};
use crate::merkle::Frontier;
use crate::store::StoreError;
use rusqlite::Connection;
use std::io::Write;
use std::path::Path;

/// Reads a page of at most `limit` entries from `from`, of an export that ends at `end`. The
/// page's log key is the one in force at `from`: `log_key` (the current one) unless a rotation
/// recorded at `from` or later replaced an older one (a database from before key rotations
/// existed has no history, and no rotation).
pub fn read_page(
    conn: &Connection,
    origin: &str,
    log_key: &PublicKey,
    from: u64,
    end: u64,
    limit: u64,
) -> Result<Page, StoreError> {
    let log_key = match crate::store::log_key_at(conn, from) {
        Ok(k) => k.unwrap_or(*log_key),
        Err(StoreError::Sqlite(e)) if e.to_string().contains("no such table") => *log_key,
        Err(e) => return Err(e),
    };
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

/// Writes an export directory page by page.
#[derive(Debug)]
pub struct DirWriter {
    dir: std::path::PathBuf,
    entries: std::io::BufWriter<std::fs::File>,
    manifest: Option<Manifest>,
}

/// Writes a new file, never through a link nor over an existing file (`O_EXCL`).
fn write_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    f.write_all(bytes)
}

impl DirWriter {
    /// Creates `dir`, or takes it when it is an empty directory of the invoking user's (not a
    /// link). Every file is then created new inside it, so a directory or a link someone else
    /// planted at the path (say under `/tmp`) is never written through.
    pub fn create(dir: &Path) -> std::io::Result<Self> {
        use std::os::unix::fs::MetadataExt;
        match std::fs::create_dir(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(parent) = dir.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::create_dir(dir)?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let meta = std::fs::symlink_metadata(dir)?;
                let usable = meta.is_dir()
                    && meta.uid() == nix::unistd::geteuid().as_raw()
                    && std::fs::read_dir(dir)?.next().is_none();
                if !usable {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::AlreadyExists,
                        "the path exists and is not an empty directory of yours; give a new one",
                    ));
                }
            }
            Err(e) => return Err(e),
        }
        std::fs::create_dir(dir.join("checkpoints"))?;
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
                write_new(&self.dir.join("log-key.jwk"), (jwk + "\n").as_bytes())?;
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
            write_new(
                &self.dir.join(format!("checkpoints/{:012}.note", c.size)),
                c.note.as_bytes(),
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
        write_new(&self.dir.join("log.json"), (text + "\n").as_bytes())?;
        Ok(m)
    }
}
#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn an_export_is_written_only_into_a_new_or_empty_directory_of_ours() {
        let tmp = tempfile::tempdir().unwrap();
        let planted = tmp.path().join("planted");
        std::fs::create_dir(&planted).unwrap();
        std::fs::create_dir(planted.join("checkpoints")).unwrap();
        assert!(
            DirWriter::create(&planted).is_err(),
            "a non-empty directory"
        );
        let link = tmp.path().join("link");
        let empty = tmp.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        std::os::unix::fs::symlink(&empty, &link).unwrap();
        assert!(DirWriter::create(&link).is_err(), "a link");
        assert!(std::fs::read_dir(&empty).unwrap().next().is_none());
        DirWriter::create(&empty).unwrap();
        DirWriter::create(&tmp.path().join("a/b")).unwrap();
    }
}
