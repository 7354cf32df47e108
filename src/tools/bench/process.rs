//! What a process costs, read from `/proc`: CPU time (user plus system, every thread, from
//! `/proc/PID/stat`) and resident memory (`VmRSS` from `/proc/PID/status`).
//!
//! The benchmarks take a [`Usage`] of the daemon (and of themselves) before and after a timed run
//! and divide the CPU time spent by the operations counted, so a figure is the whole process's
//! CPU per operation: the socket, parsing, policy, SQLite, the key store library (SoftHSM runs
//! inside the daemon) and the checkpoint signer all included. The kernel counts CPU time in clock
//! ticks (`sysconf(_SC_CLK_TCK)`, 100 per second on Linux), so a run should last long enough for
//! ticks not to matter. Nothing here writes to `/proc` or signals a process.

use std::path::Path;

/// One reading of a process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    /// User plus system CPU time of every thread so far, seconds.
    pub cpu_s: f64,
    /// Resident set size, KiB.
    pub rss_kib: u64,
}

impl Usage {
    /// Reads process `pid` now; `None` when it is gone or `/proc` is not readable.
    pub fn of(pid: u32) -> Option<Self> {
        Self::read(&Path::new("/proc").join(pid.to_string()))
    }

    /// Reads the calling process.
    pub fn current() -> Option<Self> {
        Self::read(Path::new("/proc/self"))
    }

    fn read(dir: &Path) -> Option<Self> {
        let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
        let status = std::fs::read_to_string(dir.join("status")).ok()?;
        Some(Self {
            cpu_s: cpu_ticks(&stat)? as f64 / ticks_per_second(),
            rss_kib: rss_kib(&status)?,
        })
    }

    /// CPU microseconds per operation between `self` and `later`.
    pub fn cpu_us_per_op(&self, later: &Self, ops: u64) -> Option<f64> {
        (ops > 0).then(|| (later.cpu_s - self.cpu_s).max(0.0) * 1e6 / ops as f64)
    }
}

/// The direct children of process `pid` (e.g. the software TPM a dev daemon started).
pub fn children(pid: u32) -> Vec<u32> {
    let tasks = Path::new("/proc").join(pid.to_string()).join("task");
    let Ok(dir) = std::fs::read_dir(tasks) else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|s| {
            s.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// The first direct child of `pid` whose command name is `name` (`/proc/PID/comm`).
pub fn child_named(pid: u32, name: &str) -> Option<u32> {
    children(pid).into_iter().find(|c| {
        std::fs::read_to_string(Path::new("/proc").join(c.to_string()).join("comm"))
            .is_ok_and(|comm| comm.trim() == name)
    })
}

/// `utime + stime` from a `/proc/PID/stat` line. The command name (field 2) may hold spaces
/// and parentheses, so fields are counted from the last `)`.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    // After the name: state is field 3, utime field 14, stime field 15.
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

fn rss_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

fn ticks_per_second() -> f64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(t)) if t > 0 => t as f64,
        _ => 100.0,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_name() {
        let stat = "4242 (a) b (c) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 9 0 1 2 3";
        assert_eq!(cpu_ticks(stat), Some(325));
    }

    #[test]
    fn this_process_can_be_read() {
        let u = Usage::current().unwrap();
        assert!(u.rss_kib > 0);
        assert!(u.cpu_s >= 0.0);
        assert_eq!(u.cpu_us_per_op(&u, 0), None);
    }
}
