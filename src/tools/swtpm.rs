//! A software TPM (`swtpm`) for dev mode, tests and benchmarks.
//!
//! It listens on loopback only, on a free pair of ports (commands on `port`, control on
//! `port + 1`), and keeps its state in a directory, so it can be killed and started again on the
//! same ports with the same seeds, as a machine that reboots. It is stopped when dropped.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Why the simulator could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SwtpmError {
    /// swtpm is not installed.
    #[error(
        "swtpm is not installed. Install it with:\n    sudo apt-get install -y swtpm swtpm-tools"
    )]
    Missing,
    /// It would not start or answer.
    #[error("swtpm: {0}")]
    Start(String),
}

/// A running software TPM.
#[derive(Debug)]
pub struct Swtpm {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    /// Killed with the thread that started it.
    terminate: bool,
}

impl Swtpm {
    /// Starts one with its state in `dir` (created if missing) on free loopback ports.
    pub fn start(dir: &Path) -> Result<Self, SwtpmError> {
        Self::start_with(dir, false)
    }

    /// As [`Swtpm::start`], but the kernel kills the simulator when the calling thread dies, so
    /// a daemon killed outright does not leave it behind. Call it from a thread that lives as
    /// long as the simulator should (the main thread).
    pub fn start_for_one_client(dir: &Path) -> Result<Self, SwtpmError> {
        Self::start_with(dir, true)
    }

    fn start_with(dir: &Path, terminate: bool) -> Result<Self, SwtpmError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| SwtpmError::Start(format!("cannot create {}: {e}", dir.display())))?;
        let mut last = String::new();
        // Another process can take a port between our probe and swtpm's bind: try a few pairs.
        for _ in 0..10 {
            let port = free_port_pair()?;
            let mut s = Self {
                child: None,
                port,
                dir: dir.to_path_buf(),
                terminate,
            };
            match s.spawn() {
                Ok(()) => return Ok(s),
                Err(e) => last = e.to_string(),
            }
        }
        Err(SwtpmError::Start(last))
    }

    /// The TCTI string that reaches it.
    pub fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    /// The command port (the control port is the next one).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills it at once (SIGKILL), as a crash or a pulled plug.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same ports with the same state: the TPM comes up reset, its seeds
    /// (and so its primary keys) unchanged.
    pub fn restart(&mut self) -> Result<(), SwtpmError> {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.spawn() {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    fn spawn(&mut self) -> Result<(), SwtpmError> {
        let port = self.port;
        let control = port
            .checked_add(1)
            .ok_or_else(|| SwtpmError::Start("no control port above 65535".into()))?;
        // With `terminate`, setpriv (util-linux) makes the kernel kill the simulator when the
        // thread that started it dies, however it dies.
        let mut cmd = if self.terminate {
            let mut c = Command::new("setpriv");
            c.args(["--pdeathsig", "KILL", "--", "swtpm"]);
            c
        } else {
            Command::new("swtpm")
        };
        let mut child = cmd
            .arg("socket")
            .arg("--tpm2")
            .arg("--server")
            .arg(format!("type=tcp,port={port},bindaddr=127.0.0.1"))
            .arg("--ctrl")
            .arg(format!("type=tcp,port={control},bindaddr=127.0.0.1"))
            .arg("--flags")
            .arg("not-need-init,startup-clear")
            .arg("--tpmstate")
            .arg(format!("dir={}", self.dir.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => SwtpmError::Missing,
                _ => SwtpmError::Start(format!("cannot run swtpm: {e}")),
            })?;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                return Err(SwtpmError::Start(format!(
                    "exited with {status}: {}",
                    err.trim()
                )));
            }
            if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(SwtpmError::Start(format!(
                    "did not listen on 127.0.0.1:{port} within 5 s"
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(i32::try_from(c.id()).unwrap_or(0)),
                nix::sys::signal::Signal::SIGTERM,
            );
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A loopback port `p` such that `p` and `p + 1` are both free now. Ports are drawn at random
/// below the kernel's ephemeral range, so outgoing connections (which take ephemeral ports) do
/// not land on them between this probe and the simulator's bind.
fn free_port_pair() -> Result<u16, SwtpmError> {
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .next()
                .and_then(|p| p.parse::<u16>().ok())
        })
        .unwrap_or(32768);
    let (from, to) = (10_000u16, low.clamp(12_000, 32_768));
    for _ in 0..200 {
        let mut raw = [0u8; 2];
        getrandom::fill(&mut raw).map_err(|e| SwtpmError::Start(format!("no randomness: {e}")))?;
        let port = from + (u16::from_le_bytes(raw) % (to - from - 1));
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
            && TcpListener::bind((Ipv4Addr::LOCALHOST, port + 1)).is_ok()
        {
            return Ok(port);
        }
    }
    Err(SwtpmError::Start("no free pair of loopback ports".into()))
}
