//! Keeps the publish directory's copy of the evidence log current: C2SP `tlog-tiles` (hash
//! tiles and entry bundles) and the newest signed checkpoint, served as `checkpoint`.
//!
//! Publishing runs on its own task, behind the signed checkpoints, at most once a second: it
//! skips to the newest checkpoint, so it never holds up a payment or a commit, and a busy log's
//! right edge (a partial tile and its entry bundle, rewritten whole) costs one write a second. Tiles go first and the checkpoint last, so a reader never sees a checkpoint whose
//! tiles are missing. At start the task reads the size of the checkpoint already published and
//! writes only what came after.

use super::{Service, blocking};
use crate::error::Error;
use crate::evidence::checkpoint::{Checkpoint, MAX_NOTE_BYTES};
use crate::evidence::tiles::{self, Tile};
use crate::ledger::log::{self, StoredNodes};
use crate::merkle::Nodes;
use crate::publish::Publication;
use crate::store::StoreError;
use std::sync::Arc;
use std::time::Duration;

/// Least time between two publications of the log.
const PUBLISH_SPACING: Duration = Duration::from_secs(1);

/// The published checkpoint's file name.
pub const CHECKPOINT_FILE: &str = "checkpoint";

impl Service {
    /// Publishes each newly signed checkpoint with its tiles, until the daemon stops.
    pub async fn keep_published(self: Arc<Self>) {
        let mut signed = self.signed.subscribe();
        let publication = self.publication.clone();
        let mut published = blocking(move || Ok::<_, Error>(published_size(&publication)))
            .await
            .unwrap_or(0);
        let mut published_note = String::new();
        let mut last: Option<tokio::time::Instant> = None;
        loop {
            // At most once a second: a partial tile and its entry bundle are rewritten whole
            // each time, and a mirror gains nothing from fresher copies.
            if let Some(at) = last {
                tokio::time::sleep_until(at + PUBLISH_SPACING).await;
            }
            let newest = signed.borrow_and_update().clone();
            if let Some(s) = newest
                && s.note != published_note
            {
                match self.publish(published, s.size, s.note.clone()).await {
                    Ok(()) => {
                        published = s.size;
                        published_note = s.note;
                        last = Some(tokio::time::Instant::now());
                    }
                    Err(e) => {
                        tracing::error!(error = %e, size = s.size, "cannot publish the log; retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                }
            }
            if signed.changed().await.is_err() {
                return;
            }
        }
    }

    /// Writes the tiles a tree of `size` has beyond one of `from`, then the checkpoint.
    async fn publish(&self, from: u64, size: u64, note: String) -> Result<(), Error> {
        let from = from.min(size);
        for tile in tiles::new_tiles(from, size) {
            let (store, publication) = (self.store.clone(), self.publication.clone());
            blocking(move || write_tile(&store, &publication, tile)).await?;
        }
        let publication = self.publication.clone();
        blocking(move || publication.write(CHECKPOINT_FILE, note.as_bytes())).await?;
        Ok(())
    }
}

/// The size of the checkpoint in the publish directory, 0 if there is none readable.
fn published_size(publication: &Publication) -> u64 {
    publication
        .read(CHECKPOINT_FILE)
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|note| {
            let (text, _) = crate::evidence::note::split(&note, MAX_NOTE_BYTES).ok()?;
            Checkpoint::parse_text(text).ok()
        })
        .filter(|cp| cp.origin == publication.origin)
        .map_or(0, |cp| cp.size)
}

/// Writes one hash tile and, at level 0, its entry bundle; a full tile replaces the partial
/// ones that preceded it.
fn write_tile(
    store: &crate::store::Store,
    publication: &Publication,
    tile: Tile,
) -> Result<(), Error> {
    let (hashes, bundle) = store.read(|c| {
        let nodes = StoredNodes(c);
        let mut hashes = Vec::with_capacity(32 * tile.width as usize);
        for (height, index) in tile.subtrees() {
            hashes.extend_from_slice(&nodes.node(height, index)?);
        }
        let bundle = if tile.level == 0 {
            let mut entries = Vec::new();
            for (_, index) in tile.subtrees() {
                let (_, bytes) = log::entry(c, index)?.ok_or_else(|| {
                    StoreError::Corrupt(format!("evidence entry {index} is missing"))
                })?;
                entries.push(bytes);
            }
            Some(
                tiles::bundle(entries.iter().map(Vec::as_slice)).ok_or_else(|| {
                    StoreError::Corrupt("an evidence entry is longer than 65535 bytes".into())
                })?,
            )
        } else {
            None
        };
        Ok((hashes, bundle))
    })?;
    publication.write(&tile.path(), &hashes)?;
    if let Some(bundle) = bundle {
        publication.write(&tile.entries_path(), &bundle)?;
    }
    if tile.is_full() {
        publication.remove_dir(&format!("{}.p", tile.path()))?;
        if tile.level == 0 {
            publication.remove_dir(&format!("{}.p", tile.entries_path()))?;
        }
    }
    Ok(())
}
