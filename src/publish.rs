//! The publish directory: static files for verifiers who are not on this host.
//!
//! The daemon keeps here what a stranger needs to check its output offline: the key set, the
//! voucher status list, the evidence log as tiles with its newest checkpoint. Any static web
//! server or mirror can serve the directory as it is. Each file is written whole to a temporary
//! name in its own directory, flushed, and renamed over the old one, so a reader sees either
//! the previous version or the next, never a torn file; files are world-readable (0644) and
//! directories 0755, because publishing them is the point.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

/// Why a file could not be published.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The name is not a plain relative path inside the directory.
    #[error("{0:?} is not a relative path inside the publish directory")]
    Name(String),
    /// Writing failed.
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Where the daemon publishes, and the URL it is served at.
#[derive(Debug, Clone)]
pub struct Publication {
    /// The directory.
    pub dir: PathBuf,
    /// The URL the directory is served at, without a trailing `/`.
    pub url: String,
    /// The evidence log's origin.
    pub origin: String,
}

impl Publication {
    /// The URL of the file `name` once served.
    pub fn url_of(&self, name: &str) -> String {
        format!("{}/{name}", self.url)
    }

    /// Writes `bytes` as `name` (a relative path such as `tile/0/000`), replacing the old file
    /// atomically and creating parent directories as needed.
    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<(), PublishError> {
        let rel = Path::new(name);
        if name.is_empty() || !rel.components().all(|c| matches!(c, Component::Normal(_))) {
            return Err(PublishError::Name(name.to_string()));
        }
        let path = self.dir.join(rel);
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| PublishError::Io { path, source }
        };
        let parent = path.parent().unwrap_or(&self.dir);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(parent)
            .map_err(io(parent))?;
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = parent.join(format!(".{file_name}.{}.tmp", std::process::id()));
        let written = (|| {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o644)
                .open(&tmp)?;
            f.write_all(bytes)?;
            f.sync_data()?;
            fs::rename(&tmp, &path)
        })();
        if let Err(source) = written {
            let _ = fs::remove_file(&tmp);
            return Err(PublishError::Io { path, source });
        }
        Ok(())
    }

    /// Removes a directory of the publish directory and what it holds; a missing one is fine.
    pub fn remove_dir(&self, name: &str) -> Result<(), PublishError> {
        let rel = Path::new(name);
        if name.is_empty() || !rel.components().all(|c| matches!(c, Component::Normal(_))) {
            return Err(PublishError::Name(name.to_string()));
        }
        let path = self.dir.join(rel);
        match fs::remove_dir_all(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(PublishError::Io { path, source: e })
            }
            _ => Ok(()),
        }
    }

    /// Reads back a published file, if it is there.
    pub fn read(&self, name: &str) -> Option<Vec<u8>> {
        fs::read(self.dir.join(name)).ok()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn publication(dir: &Path) -> Publication {
        Publication {
            dir: dir.join("public"),
            url: "https://pay.example.com/ari".into(),
            origin: "pay.example.com/ari".into(),
        }
    }

    #[test]
    fn files_are_replaced_whole_and_readable_by_anyone() {
        let tmp = tempfile::tempdir().unwrap();
        let p = publication(tmp.path());
        p.write("tile/0/000", b"one").unwrap();
        p.write("tile/0/000", b"two").unwrap();
        assert_eq!(p.read("tile/0/000").unwrap(), b"two");
        let mode = fs::metadata(p.dir.join("tile/0/000"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644);
        let names: Vec<_> = fs::read_dir(p.dir.join("tile/0"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names.len(),
            1,
            "no temporary file is left behind: {names:?}"
        );
        assert_eq!(
            p.url_of("checkpoint"),
            "https://pay.example.com/ari/checkpoint"
        );
    }

    #[test]
    fn a_name_outside_the_directory_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let p = publication(tmp.path());
        for name in ["", "../x", "/etc/passwd", "a/../../b", "./a"] {
            assert!(
                matches!(p.write(name, b"x"), Err(PublishError::Name(_))),
                "{name}"
            );
        }
    }
}
