//! Who is on the other end of a socket.
//!
//! The kernel's SO_PEERCRED gives pid, uid and gid; everything else comes from `/proc/PID`:
//! the start time (to detect pid reuse), the executable's SHA-256 and the cgroup. The start time
//! is read before and after measuring; if it changed, the pid now belongs to another process and
//! the measurement is thrown away. Executable digests are cached by (device, inode, size, mtime)
//! of the open executable, so a process is hashed once per binary version, not once per call.
//!
//! A connection keeps its peer's last full measurement. Every call revalidates it with one
//! `stat` of `/proc/PID/exe`: if the process has exec'd another file the identity of the
//! executable differs and the peer is measured again from scratch, start-time check included.
//! The start time itself is not re-read on every call: the pid can only be reused while the
//! connection is open if the socket outlived its process (inherited or passed to another
//! process), and a socket handed over that way is beyond what kernel credentials describe in
//! any case. Nothing here trusts anything the client sends.

use crate::identity::CallerFacts;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::sync::Mutex;

/// Credentials the kernel reported for a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCred {
    /// Process id at connect time.
    pub pid: i32,
    /// Effective uid.
    pub uid: u32,
    /// Effective gid.
    pub gid: u32,
}

/// Why a peer could not be measured.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The kernel gave no pid (should not happen on Linux).
    #[error("the kernel reported no pid for the peer")]
    NoPid,
    /// The process is gone.
    #[error("process {0} is gone")]
    Gone(i32),
    /// The pid was reused while measuring.
    #[error("process {0} changed while being measured (pid reuse)")]
    PidReused(i32),
}

const CACHE_ENTRIES: usize = 1024;

type ExeKey = (u64, u64, u64, i64, i64);

/// A connection's last full measurement of its peer, with the executable identity it was made for.
#[derive(Debug, Default)]
pub struct MeasurementCache(Mutex<Option<(ExeKey, CallerFacts)>>);

fn exe_key(meta: &std::fs::Metadata) -> ExeKey {
    (
        meta.dev(),
        meta.ino(),
        meta.size(),
        meta.mtime(),
        meta.mtime_nsec(),
    )
}

/// Measures peers; holds the executable digest cache.
#[derive(Debug, Default)]
pub struct PeerMeter {
    exe_digests: Mutex<HashMap<ExeKey, String>>,
}

impl PeerMeter {
    /// A meter with an empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Measures the process behind `cred`.
    pub fn measure(&self, cred: PeerCred) -> Result<CallerFacts, PeerError> {
        let pid = cred.pid;
        if pid <= 0 {
            return Err(PeerError::NoPid);
        }
        let start_time = start_time(pid)?;
        let exe_sha256 = self.exe_digest(pid);
        let cgroup = cgroup(pid);
        if start_time != self::start_time(pid)? {
            return Err(PeerError::PidReused(pid));
        }
        Ok(CallerFacts {
            pid,
            uid: cred.uid,
            gid: cred.gid,
            start_time,
            exe_sha256,
            cgroup,
        })
    }

    /// The facts of the peer behind `cred`, reusing the connection's last measurement while the
    /// process still runs the same executable file.
    pub fn measure_cached(
        &self,
        cred: PeerCred,
        cache: &MeasurementCache,
    ) -> Result<CallerFacts, PeerError> {
        let current = std::fs::metadata(format!("/proc/{}/exe", cred.pid))
            .ok()
            .map(|m| exe_key(&m));
        if let (Some(key), Ok(guard)) = (current, cache.0.lock())
            && let Some((cached_key, facts)) = guard.as_ref()
            && *cached_key == key
        {
            return Ok(facts.clone());
        }
        let facts = self.measure(cred)?;
        if let (Some(key), Ok(mut guard)) = (current, cache.0.lock()) {
            *guard = Some((key, facts.clone()));
        }
        Ok(facts)
    }

    /// SHA-256 of the process's executable, or `None` if it cannot be opened (e.g. another
    /// user's process while the daemon is not root).
    fn exe_digest(&self, pid: i32) -> Option<String> {
        let mut file = std::fs::File::open(format!("/proc/{pid}/exe")).ok()?;
        let meta = file.metadata().ok()?;
        let key = (
            meta.dev(),
            meta.ino(),
            meta.size(),
            meta.mtime(),
            meta.mtime_nsec(),
        );
        if let Some(d) = self.exe_digests.lock().ok()?.get(&key) {
            return Some(d.clone());
        }
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = file.read(&mut buf).ok()?;
            if n == 0 {
                break;
            }
            hasher.update(buf.get(..n)?);
        }
        let digest = hex::encode(hasher.finalize());
        let mut cache = self.exe_digests.lock().ok()?;
        if cache.len() >= CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(key, digest.clone());
        Some(digest)
    }
}

/// Field 22 of `/proc/PID/stat`: start time in clock ticks after boot.
pub fn start_time(pid: i32) -> Result<u64, PeerError> {
    let stat =
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|_| PeerError::Gone(pid))?;
    // The command name (field 2) is in parentheses and may contain spaces or ')'; fields after
    // the last ')' are plain numbers. Field 22 is the 20th field after it.
    let rest = stat
        .rfind(')')
        .and_then(|i| stat.get(i + 1..))
        .ok_or(PeerError::Gone(pid))?;
    rest.split_ascii_whitespace()
        .nth(19)
        .and_then(|f| f.parse().ok())
        .ok_or(PeerError::Gone(pid))
}

/// The cgroup v2 path of a process (the `0::` line), or `None`.
fn cgroup(pid: i32) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::to_owned)
}

/// Supplementary groups of a process (`Groups:` in `/proc/PID/status`).
pub fn groups(pid: i32) -> Vec<u32> {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return Vec::new();
    };
    text.lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .map(|g| {
            g.split_ascii_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn measures_this_process() {
        let me = PeerCred {
            pid: i32::try_from(std::process::id()).unwrap(),
            uid: nix::unistd::getuid().as_raw(),
            gid: nix::unistd::getgid().as_raw(),
        };
        let meter = PeerMeter::new();
        let facts = meter.measure(me).unwrap();
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert_eq!(
            facts.exe_sha256.as_deref(),
            Some(hex::encode(Sha256::digest(&exe)).as_str())
        );
        assert_eq!(
            meter.measure(me).unwrap(),
            facts,
            "cached digest is the same"
        );
        assert!(matches!(
            meter.measure(PeerCred {
                pid: i32::MAX,
                ..me
            }),
            Err(PeerError::Gone(_))
        ));
    }
}
