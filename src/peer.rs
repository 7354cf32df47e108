//! The kernel's account of a caller: who is on the other end of a socket, and that it stays the
//! same process.
//!
//! The kernel's SO_PEERCRED gives pid, uid and gid; everything else comes from `/proc/PID`:
//! the start time, the executable's SHA-256 and the cgroup. This module only reads what the
//! kernel and `/proc` say; it never trusts anything the client sends, and it knows nothing of
//! sockets' roles, agents or methods (the server pins connections with it, the service measures
//! callers with it).
//!
//! The digest is of the file the process runs: `/proc/PID/exe` is opened, and that open file is
//! both hashed and `fstat`ed; no path is looked up twice. Digests are cached by what the file's
//! owner cannot set back: device, inode, size, mtime and ctime (both to the nanosecond). A
//! rewrite in place at the same size with the mtime restored (`utime`) still moves the ctime, so
//! the rewritten file is hashed again. Files changed within the last second are not cached at
//! all, because the ctime clock may advance only once per tick; and a file that changes while it
//! is being hashed gets no digest. A process is thus hashed once per version of its binary, not
//! once per call. What this does not cover (the program's memory, interpreters, the uid's own
//! files) is in docs/operations.md, "What the executable digest proves".
//!
//! **A connection is one process for its whole life.** When a connection is accepted, the
//! process that connected is pinned to it ([`Pin`]): host boot id, pid and start time. A pid
//! names a process only while that process lives; once it exits the number is free for the
//! next process, and a socket can outlive the process that opened it (inherited by a child,
//! passed over another socket). So the pin is taken from the process that called `connect`,
//! not from whoever makes the first call: where the kernel offers `SO_PEERPIDFD` (Linux 6.5),
//! a pidfd of the connecting process confirms that it still holds the pid when its start time
//! is read; on older kernels the start time is read at accept, which leaves the time the
//! connection waited in the listen backlog as a window for reuse. Every later measurement
//! checks, *after* reading the other facts, that the pinned process still holds its pid: with
//! the pidfd (kept for the connection's life, so each connection costs two descriptors), one
//! `poll` that says whether that very process has exited; without it, `/proc/PID/stat` read
//! again and its start time compared with the pin. The pinned process held the pid from before
//! the pin until that last check (a process never comes back), so every fact read in between
//! was the pinned process's. A different start time, or a pid that is gone, means the connection now
//! belongs to whatever inherited the socket: the call is refused (`unknown_caller`) and the
//! connection is closed after that answer. The boot id makes the pin a name no other process
//! of any boot can have, for the logs; it is not re-read, since the daemon does not outlive
//! its boot.
//!
//! A pinned process that has exited counts as gone even while it is a zombie (not yet reaped,
//! so still holding its pid): it makes no more calls, so whatever calls on its connection is
//! another process.
//!
//! Without a pidfd, start times are all there is, and they count clock ticks (`CLK_TCK`, 100 a
//! second): a process that reused the pid
//! within the very tick in which the pinned process started could not be told apart by its
//! start time. For that the pinned process would have to start, connect, hand its socket on
//! and exit, and the kernel hand the same pid out again, all within 10 ms; handing out a given
//! pid again takes cycling through the whole pid space (`pid_max`), or root (`ns_last_pid`),
//! which is out of scope.
//!
//! A connection keeps its peer's last full measurement. Every call revalidates it with the
//! same key, from one `stat` of the `/proc/PID/exe` link (which names the file the process runs,
//! as opening it would; a new measurement opens it and keys and hashes what it opened): if the
//! process has exec'd another
//! file, or its file was changed since, the key differs and the peer is measured again from
//! scratch (it is still the pinned process: exec keeps pid and start time). A process that
//! hands its open connection to another process while it still runs lends its identity: that
//! is its own choice, as much as proxying calls would be. Nothing here trusts anything the
//! client sends.

use crate::identity::CallerFacts;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

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
    /// The kernel gave no pid: the peer runs in a pid namespace the daemon cannot see.
    #[error("the kernel reported no pid for the peer")]
    NoPid,
    /// The process is gone.
    #[error("process {0} is gone")]
    Gone(i32),
    /// The pid now belongs to another process than the one that opened the connection.
    #[error(
        "process {pid} is not the one that opened the connection (start time {pinned}, now {now})"
    )]
    Replaced {
        /// The pid.
        pid: i32,
        /// The start time pinned to the connection.
        pinned: u64,
        /// The start time of the process holding the pid now.
        now: u64,
    },
}

/// The process that opened a connection (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pin {
    /// This process, for the connection's whole life.
    Process(Process),
    /// The kernel gave no pid (the peer is in a pid namespace the daemon cannot see).
    NoPid,
    /// The process that connected had exited before the connection was accepted.
    Gone(i32),
}

/// A process, named so that no other process of any boot has the same name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    /// `/proc/sys/kernel/random/boot_id` of the host.
    pub boot_id: Arc<str>,
    /// Its pid.
    pub pid: i32,
    /// Its start time, clock ticks since boot.
    pub start_time: u64,
    /// Whether a pidfd from `SO_PEERPIDFD` confirmed it is the process that called `connect`
    /// (false on kernels without it: then it is whoever held the pid when the connection was
    /// accepted).
    pub confirmed: bool,
    /// That pidfd, kept for the connection's life: it names this process and no other, so
    /// whether the process still runs is one `poll`, not a read of `/proc/PID/stat`.
    pidfd: Option<PidFd>,
}

/// A pidfd shared by the clones of a [`Process`]. Two processes are compared by what names
/// them (boot, pid, start time), never by descriptor.
#[derive(Debug, Clone)]
struct PidFd(Arc<std::os::fd::OwnedFd>);

impl PartialEq for PidFd {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for PidFd {}

impl PidFd {
    /// Whether the process has exited: a pidfd polls readable once it has (all its threads).
    fn exited(&self) -> Result<bool, nix::errno::Errno> {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        let mut fds = [PollFd::new(self.0.as_fd(), PollFlags::POLLIN)];
        poll(&mut fds, PollTimeout::ZERO)?;
        Ok(fds
            .first()
            .and_then(PollFd::revents)
            .is_some_and(|r| !r.is_empty()))
    }
}

impl Pin {
    /// The process that connected on `socket`, whose kernel credentials are `cred`.
    pub fn accepted(socket: &impl AsFd, cred: PeerCred) -> Self {
        let pid = cred.pid;
        if pid <= 0 {
            return Self::NoPid;
        }
        // The start time first, then the pidfd: if the connecting process still holds the pid
        // after the read, it held it during the read.
        let Ok(start_time) = start_time(pid) else {
            return Self::Gone(pid);
        };
        let (confirmed, pidfd) = match connector(socket, pid) {
            Connector::Holds(pidfd) => (true, Some(PidFd(Arc::new(pidfd)))),
            Connector::Gone => return Self::Gone(pid),
            Connector::Unknown => (false, None),
        };
        Self::Process(Process {
            boot_id: boot_id(),
            pid,
            start_time,
            confirmed,
            pidfd,
        })
    }

    /// Whoever holds `cred.pid` now, for a connection without a socket (tests, fuzzing).
    pub fn current(cred: PeerCred) -> Self {
        if cred.pid <= 0 {
            return Self::NoPid;
        }
        match start_time(cred.pid) {
            Ok(start_time) => Self::Process(Process {
                boot_id: boot_id(),
                pid: cred.pid,
                start_time,
                confirmed: false,
                pidfd: None,
            }),
            Err(_) => Self::Gone(cred.pid),
        }
    }

    /// The pinned process, if there is one.
    pub fn process(&self) -> Result<&Process, PeerError> {
        match self {
            Self::Process(p) => Ok(p),
            Self::NoPid => Err(PeerError::NoPid),
            Self::Gone(pid) => Err(PeerError::Gone(*pid)),
        }
    }

    /// Whether the pinned process still holds its pid (one read of `/proc/PID/stat`).
    pub fn check(&self) -> Result<(), PeerError> {
        self.process()?.check()
    }
}

impl Process {
    /// Whether this process still holds its pid: with a confirmed pidfd, whether it has not
    /// exited (a process that has not exited keeps its pid); else its start time read again.
    pub fn check(&self) -> Result<(), PeerError> {
        if let Some(pidfd) = &self.pidfd {
            return match pidfd.exited() {
                Ok(false) => Ok(()),
                Ok(true) => Err(PeerError::Gone(self.pid)),
                Err(_) => self.check_start_time(),
            };
        }
        self.check_start_time()
    }

    fn check_start_time(&self) -> Result<(), PeerError> {
        let now = start_time(self.pid)?;
        if now == self.start_time {
            Ok(())
        } else {
            Err(PeerError::Replaced {
                pid: self.pid,
                pinned: self.start_time,
                now,
            })
        }
    }
}

/// What the kernel says of the process that connected on a socket.
enum Connector {
    /// It still holds the pid; its pidfd.
    Holds(std::os::fd::OwnedFd),
    /// It has exited (or another process holds the pid).
    Gone,
    /// The kernel cannot tell (no `SO_PEERPIDFD`).
    Unknown,
}

/// Whether the process that connected on `socket` still holds `pid` (`SO_PEERPIDFD`, then the
/// pidfd's `Pid:` in `/proc/self/fdinfo`, which is -1 once it has been reaped).
fn connector(socket: &impl AsFd, pid: i32) -> Connector {
    use nix::errno::Errno;
    use nix::sys::socket::{getsockopt, sockopt::PeerPidfd};
    let pidfd = match getsockopt(socket, PeerPidfd) {
        Ok(fd) => fd,
        Err(Errno::ESRCH) => return Connector::Gone,
        Err(_) => return Connector::Unknown,
    };
    let holder = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", pidfd.as_raw_fd()))
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("Pid:"))
                .and_then(|v| v.trim().parse::<i32>().ok())
        });
    match holder {
        Some(h) if h == pid => Connector::Holds(pidfd),
        Some(_) => Connector::Gone,
        None => Connector::Unknown,
    }
}

/// The host's boot id, read once.
fn boot_id() -> Arc<str> {
    static BOOT_ID: OnceLock<Arc<str>> = OnceLock::new();
    BOOT_ID
        .get_or_init(|| {
            std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
                .map(|s| s.trim().into())
                .unwrap_or_else(|_| "unknown".into())
        })
        .clone()
}

const CACHE_ENTRIES: usize = 1024;

/// How long ago a file must have last changed (its ctime) before its digest is cached. Change
/// times come from a clock that may only advance once a tick (up to 10 ms): a file changed
/// again within the tick of a change the daemon has seen could keep its ctime. A file whose
/// ctime is older than this when the daemon reads it gets a later ctime from any change after
/// that read.
const SETTLE: Duration = Duration::from_secs(1);

/// What identifies the content of an executable file to the digest caches: device, inode,
/// size, mtime and ctime, both to the nanosecond. The file's owner can rewrite it at the same
/// size and set the mtime back (`utime`), but not the ctime, which any change (that `utime`
/// included) sets to the current time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct ExeKey {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl ExeKey {
    fn of(meta: &std::fs::Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }

    /// Whether the file last changed at least [`SETTLE`] ago, so its key may be cached.
    fn settled(&self) -> bool {
        let (Ok(secs), Ok(nanos)) = (u64::try_from(self.ctime.0), u32::try_from(self.ctime.1))
        else {
            return false;
        };
        let changed = std::time::UNIX_EPOCH + Duration::new(secs, nanos);
        std::time::SystemTime::now()
            .duration_since(changed)
            .is_ok_and(|age| age >= SETTLE)
    }
}

/// An executable file as a process runs it: opened through `/proc/PID/exe` (which is the very
/// file the process was started from, even if its path now names another file), with the key
/// of that open file (`fstat` of the descriptor, never a second lookup by path).
#[derive(Debug)]
struct Exe {
    file: std::fs::File,
    key: ExeKey,
}

impl Exe {
    /// The executable of `pid`, or `None` if it cannot be opened (e.g. another user's process
    /// while the daemon is not root).
    fn of(pid: i32) -> Option<Self> {
        Self::open(std::fs::File::open(format!("/proc/{pid}/exe")).ok()?)
    }

    fn open(file: std::fs::File) -> Option<Self> {
        let key = ExeKey::of(&file.metadata().ok()?);
        Some(Self { file, key })
    }
}

/// A connection's last full measurement of its peer, with the executable it was made for.
#[derive(Debug, Default)]
pub struct MeasurementCache(Mutex<Option<(ExeKey, CallerFacts)>>);

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

    /// Measures `process`, whose kernel credentials are `cred`; fails if it no longer holds
    /// its pid.
    pub fn measure(&self, cred: PeerCred, process: &Process) -> Result<CallerFacts, PeerError> {
        self.measure_exe(cred, process, Exe::of(process.pid))
    }

    fn measure_exe(
        &self,
        cred: PeerCred,
        process: &Process,
        exe: Option<Exe>,
    ) -> Result<CallerFacts, PeerError> {
        let exe_sha256 = exe.and_then(|e| self.digest(e));
        let cgroup = cgroup(process.pid);
        // Last: the facts above are the pinned process's only if it still holds the pid.
        process.check()?;
        Ok(CallerFacts {
            pid: process.pid,
            uid: cred.uid,
            gid: cred.gid,
            start_time: process.start_time,
            exe_sha256,
            cgroup,
        })
    }

    /// The facts of the process pinned to a connection, reusing the connection's last
    /// measurement while the process still runs the same, unchanged executable file (same
    /// device, inode, size, mtime and ctime). Fails, whatever was cached, once the pinned process no longer holds its
    /// pid.
    pub fn measure_cached(
        &self,
        cred: PeerCred,
        pin: &Pin,
        cache: &MeasurementCache,
    ) -> Result<CallerFacts, PeerError> {
        let process = pin.process()?;
        // Revalidating a cached measurement needs only the executable's identity: a `stat` of
        // the `/proc/PID/exe` link names the very file the process runs, as opening it would,
        // without an open and a close on every call. A new measurement opens it, and hashes and
        // keys what it opened.
        let current = std::fs::metadata(format!("/proc/{}/exe", process.pid))
            .ok()
            .map(|m| ExeKey::of(&m))
            .filter(ExeKey::settled);
        if let (Some(current), Ok(guard)) = (current, cache.0.lock())
            && let Some((cached_key, facts)) = guard.as_ref()
            && *cached_key == current
        {
            let facts = facts.clone();
            drop(guard);
            process.check()?;
            return Ok(facts);
        }
        let exe = Exe::of(process.pid);
        let key = exe.as_ref().map(|e| e.key).filter(ExeKey::settled);
        let facts = self.measure_exe(cred, process, exe)?;
        if let (Some(key), Ok(mut guard)) = (key, cache.0.lock()) {
            *guard = Some((key, facts.clone()));
        }
        Ok(facts)
    }

    /// SHA-256 of `exe`'s content, from the cache when its key is there; `None` if it cannot
    /// be read, or changed while it was read.
    fn digest(&self, mut exe: Exe) -> Option<String> {
        let settled = exe.key.settled();
        if settled && let Some(d) = self.exe_digests.lock().ok()?.get(&exe.key) {
            return Some(d.clone());
        }
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = exe.file.read(&mut buf).ok()?;
            if n == 0 {
                break;
            }
            hasher.update(buf.get(..n)?);
        }
        // What was read is the content the key names only if nothing changed meanwhile.
        if ExeKey::of(&exe.file.metadata().ok()?) != exe.key {
            return None;
        }
        let digest = hex::encode(hasher.finalize());
        if settled {
            let mut cache = self.exe_digests.lock().ok()?;
            if cache.len() >= CACHE_ENTRIES {
                cache.clear();
            }
            cache.insert(exe.key, digest.clone());
        }
        Some(digest)
    }
}

/// Field 22 of `/proc/PID/stat`: the start time in clock ticks after boot, of a process that
/// has not exited. A process that has exited but is not reaped yet (a zombie) still holds its
/// pid and start time, but makes no more calls: it counts as gone. (A process whose main
/// thread alone has exited shows as a zombie too, but with its other threads counted: it
/// still runs.)
pub fn start_time(pid: i32) -> Result<u64, PeerError> {
    let stat =
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|_| PeerError::Gone(pid))?;
    // The command name (field 2) is in parentheses and may contain spaces or ')'; fields after
    // the last ')' are the state (field 3), then plain numbers: field 20 is the number of
    // threads, field 22 the start time.
    let mut fields = stat
        .rfind(')')
        .and_then(|i| stat.get(i + 1..))
        .ok_or(PeerError::Gone(pid))?
        .split_ascii_whitespace();
    let state = fields.next();
    let threads: u64 = fields
        .nth(16)
        .and_then(|f| f.parse().ok())
        .ok_or(PeerError::Gone(pid))?;
    let exited = match state {
        Some("Z") => threads <= 1,
        Some("X" | "x") | None => true,
        Some(_) => false,
    };
    if exited {
        return Err(PeerError::Gone(pid));
    }
    fields
        .nth(1)
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
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    fn me() -> PeerCred {
        PeerCred {
            pid: i32::try_from(std::process::id()).unwrap(),
            uid: nix::unistd::getuid().as_raw(),
            gid: nix::unistd::getgid().as_raw(),
        }
    }

    #[test]
    fn measures_this_process() {
        let me = me();
        let pin = Pin::current(me);
        let process = pin.process().unwrap();
        let meter = PeerMeter::new();
        let facts = meter.measure(me, process).unwrap();
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert_eq!(
            facts.exe_sha256.as_deref(),
            Some(hex::encode(Sha256::digest(&exe)).as_str())
        );
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
        let field_22: u64 = stat
            .rsplit_once(") ")
            .unwrap()
            .1
            .split(' ')
            .nth(19)
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(facts.start_time, field_22);
        assert_eq!(
            meter.measure(me, process).unwrap(),
            facts,
            "cached digest is the same"
        );
        let gone = PeerCred {
            pid: i32::MAX,
            ..me
        };
        assert_eq!(Pin::current(gone), Pin::Gone(i32::MAX));
        assert!(matches!(
            meter.measure_cached(gone, &Pin::current(gone), &MeasurementCache::default()),
            Err(PeerError::Gone(_))
        ));
    }

    #[test]
    fn a_connection_is_pinned_to_the_process_that_connected() {
        let (ours, _theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        let pin = Pin::accepted(&ours, me());
        let Pin::Process(p) = &pin else {
            panic!("{pin:?}")
        };
        assert_eq!(p.pid, me().pid);
        assert_eq!(p.start_time, start_time(me().pid).unwrap());
        assert_eq!(p.boot_id.len(), 36, "a boot id: {}", p.boot_id);
        // This kernel's answer, for the record: with SO_PEERPIDFD the pin is confirmed.
        println!("pin confirmed by SO_PEERPIDFD: {}", p.confirmed);
        pin.check().unwrap();
        assert_eq!(
            Pin::accepted(&ours, PeerCred { pid: 0, ..me() }),
            Pin::NoPid
        );
    }

    #[test]
    fn a_pid_held_by_another_process_is_refused_even_from_the_cache() {
        let me = me();
        // A test binary linked moments ago is not cached until its ctime has settled.
        while !Exe::of(me.pid).unwrap().key.settled() {
            std::thread::sleep(Duration::from_millis(100));
        }
        let meter = PeerMeter::new();
        let cache = MeasurementCache::default();
        let pin = Pin::current(me);
        let facts = meter.measure_cached(me, &pin, &cache).unwrap();
        // The same pid with another start time: what a connection sees once the process that
        // opened it has exited and its pid went to another process.
        let Pin::Process(mut other) = pin else {
            panic!("pinned")
        };
        other.start_time += 1;
        let replaced = Pin::Process(other);
        assert!(
            cache.0.lock().unwrap().is_some(),
            "the first measurement is cached"
        );
        match meter.measure_cached(me, &replaced, &cache) {
            Err(PeerError::Replaced { pid, pinned, now }) => {
                assert_eq!(
                    (pid, pinned, now),
                    (me.pid, facts.start_time + 1, facts.start_time)
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            meter.measure_cached(me, &Pin::NoPid, &cache),
            Err(PeerError::NoPid)
        ));
    }

    #[test]
    fn a_same_size_rewrite_with_mtime_restored_is_hashed_again() {
        use std::os::unix::fs::FileExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("program");
        std::fs::write(&path, b"the program as registered").unwrap();
        let digest_now = |meter: &PeerMeter| {
            meter
                .digest(Exe::open(std::fs::File::open(&path).unwrap()).unwrap())
                .unwrap()
        };
        // Measured once its last change has settled, so its digest is cached.
        std::thread::sleep(SETTLE + Duration::from_millis(100));
        let meter = PeerMeter::new();
        let registered = digest_now(&meter);
        assert_eq!(
            registered,
            hex::encode(Sha256::digest(b"the program as registered"))
        );
        assert_eq!(meter.exe_digests.lock().unwrap().len(), 1, "cached");

        // Its owner rewrites it in place at the same size and sets the times back.
        let before = std::fs::metadata(&path).unwrap();
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.write_all_at(b"the program, now tampered", 0).unwrap();
        file.set_times(
            std::fs::FileTimes::new()
                .set_accessed(before.accessed().unwrap())
                .set_modified(before.modified().unwrap()),
        )
        .unwrap();
        drop(file);
        let after = std::fs::metadata(&path).unwrap();
        let old_key =
            |m: &std::fs::Metadata| (m.dev(), m.ino(), m.size(), m.mtime(), m.mtime_nsec());
        assert_eq!(
            old_key(&before),
            old_key(&after),
            "device, inode, size and mtime (the key before ctime was added) are all the same"
        );
        assert_ne!(ExeKey::of(&before), ExeKey::of(&after), "the ctime moved");

        // Once settled again it is cacheable, and measured as what it now is.
        std::thread::sleep(SETTLE + Duration::from_millis(100));
        let now = digest_now(&meter);
        assert_eq!(
            now,
            hex::encode(Sha256::digest(b"the program, now tampered"))
        );
        assert_ne!(now, registered);
    }

    #[test]
    fn a_file_changed_moments_ago_is_hashed_every_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fresh");
        std::fs::write(&path, b"just written").unwrap();
        let meter = PeerMeter::new();
        let exe = Exe::open(std::fs::File::open(&path).unwrap()).unwrap();
        assert!(!exe.key.settled());
        assert_eq!(
            meter.digest(exe).unwrap(),
            hex::encode(Sha256::digest(b"just written"))
        );
        assert!(
            meter.exe_digests.lock().unwrap().is_empty(),
            "a digest whose ctime may still be shared by a later change is not cached"
        );
    }

    #[test]
    fn a_process_that_exited_is_gone_while_still_a_zombie() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = i32::try_from(child.id()).unwrap();
        // Not waited for yet: once it has exited it is a zombie, still holding its pid.
        let zombie = |pid: i32| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
                s.rsplit_once(')')
                    .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
            })
        };
        while !zombie(pid) {
            std::thread::sleep(Duration::from_millis(5));
        }
        let cred = PeerCred { pid, ..me() };
        assert!(matches!(start_time(pid), Err(PeerError::Gone(p)) if p == pid));
        assert_eq!(Pin::current(cred), Pin::Gone(pid));
        child.wait().unwrap();
    }
}
