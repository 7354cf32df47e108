//! The daemon a bench drives: a throwaway dev daemon started for the run (`arid dev` in a fresh
//! 0700 directory under the temporary directory, stopped and removed when dropped), or the
//! running dev daemon of a state directory the operator names.
//!
//! The bench's client is this process: it is provisioned as an agent of the daemon (by its
//! executable's digest and uid) when the daemon does not know it yet. A bench refuses up front a
//! client count the daemon would leave waiting in its listen backlog. It never signals a daemon
//! it did not start.

use super::{BenchError, Plan};
use crate::client::{Client, ClientError};
use crate::clock::unix_now;
use crate::tools::dev::DevLayout;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// A throwaway dev daemon, stopped (and its directory removed) when dropped.
#[derive(Debug)]
pub struct ThrowawayDaemon {
    child: std::process::Child,
    dir: PathBuf,
}

impl ThrowawayDaemon {
    /// Starts `arid dev` with `extra` arguments (e.g. `--backend tpm`) in a fresh directory and
    /// waits up to 30 s for its admin socket to answer.
    pub fn start(arid: &Path, extra: &[&str]) -> Result<Self, BenchError> {
        let dir = scratch_name("")?;
        // The invoking user's alone, whatever the umask: `arid dev` refuses anything looser.
        std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o700)
            .create(&dir)
            .map_err(|source| BenchError::Path {
                action: "create",
                path: dir.clone(),
                source,
            })?;
        let log = std::fs::File::create(dir.join("arid.log"))?;
        let child = std::process::Command::new(arid)
            .arg("dev")
            .args(extra)
            .arg("--state-dir")
            .arg(&dir)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|source| BenchError::Path {
                action: "start",
                path: arid.to_path_buf(),
                source,
            })?;
        let me = Self { child, dir };
        let admin = me.dir.join("admin.sock");
        for _ in 0..300 {
            if call(&admin, "admin.status", json!({})).is_ok() {
                return Ok(me);
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Err(BenchError::DaemonDown {
            log: me.dir.join("arid.log"),
        })
    }

    /// Its state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ThrowawayDaemon {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The daemon under measurement, with the files of its dev directory.
#[derive(Debug)]
pub struct Target {
    /// The throwaway daemon, kept alive as long as the target.
    throwaway: Option<ThrowawayDaemon>,
    /// Its dev directory's files (sockets, configuration, lock).
    pub layout: DevLayout,
}

impl Target {
    /// The running dev daemon of `plan.state_dir`, or else a throwaway one.
    pub fn open(plan: &Plan) -> Result<Self, BenchError> {
        match &plan.state_dir {
            Some(dir) => Ok(Self {
                layout: DevLayout::new(&std::fs::canonicalize(dir)?)?,
                throwaway: None,
            }),
            None => Self::throwaway(plan, &[]),
        }
    }

    /// A throwaway daemon started with extra `arid dev` arguments.
    pub fn throwaway(plan: &Plan, extra: &[&str]) -> Result<Self, BenchError> {
        let daemon = ThrowawayDaemon::start(&plan.program.with_file_name("arid"), extra)?;
        Ok(Self {
            layout: DevLayout::new(daemon.dir())?,
            throwaway: Some(daemon),
        })
    }

    /// The daemon's process id: the throwaway daemon's, else the one its lock file records.
    pub fn pid(&self) -> Option<u32> {
        match &self.throwaway {
            Some(d) => Some(d.pid()),
            None => std::fs::read_to_string(&self.layout.lock)
                .ok()
                .and_then(|s| s.trim().parse().ok()),
        }
    }

    /// Refuses client counts the daemon would leave waiting in the listen backlog, or refuse as
    /// more than one uid's share.
    pub fn check_clients(&self, clients: &[usize]) -> Result<(), BenchError> {
        if clients.is_empty() {
            return Err(BenchError::NoClients);
        }
        let limits = crate::config::Config::load(&self.layout.config)?.limits;
        // Every client is this process, so one uid: its share caps the count too.
        let (key, cap) = if limits.max_connections_per_uid < limits.max_connections {
            ("max_connections_per_uid", limits.max_connections_per_uid)
        } else {
            ("max_connections", limits.max_connections)
        };
        match clients.iter().find(|&&n| n > cap) {
            Some(&n) => Err(BenchError::TooManyClients {
                clients: n,
                key,
                cap,
                config: self.layout.config.clone(),
            }),
            None => Ok(()),
        }
    }

    /// A call on the admin socket.
    pub fn admin(&self, method: &str, params: Value) -> Result<Value, BenchError> {
        Ok(call(&self.layout.admin_socket, method, params)?)
    }

    /// A call on the agent socket, as this process.
    pub fn agent(&self, method: &str, params: Value) -> Result<Value, BenchError> {
        Ok(call(&self.layout.agent_socket, method, params)?)
    }

    /// The id of the agent this process is, provisioned first if the daemon does not know it.
    pub fn bench_agent(&self) -> Result<String, BenchError> {
        match call(&self.layout.agent_socket, "agent.identity", json!({})) {
            Ok(v) => return Ok(text(&v, "/agent")),
            Err(ClientError::Remote(e)) if e.reason == "unknown_caller" => {}
            Err(e) => return Err(e.into()),
        }
        let exe = std::env::current_exe()?;
        let bytes = std::fs::read(&exe).map_err(|source| BenchError::Path {
            action: "read",
            path: exe,
            source,
        })?;
        let digest = hex::encode(Sha256::digest(&bytes));
        let id = format!("bench-{}", digest.get(..12).unwrap_or("0"));
        self.admin(
            "admin.agent_provision",
            json!({ "agent": id, "user": "bench", "uid": nix::unistd::getuid().as_raw(), "exe_sha256": digest }),
        )?;
        Ok(id)
    }

    /// Issues `agent` a voucher that will not run out during a bench; returns its id.
    pub fn bench_voucher(&self, agent: &str) -> Result<String, BenchError> {
        let v = self.admin(
            "admin.voucher_issue",
            json!({
                "agent": agent, "level": "L5", "currency": "CNY",
                "budget": i64::MAX / 2, "max_amount": 100,
                "expires_at": unix_now() + 86_400,
            }),
        )?;
        Ok(text(&v, "/id"))
    }
}

/// One call: every call a bench makes outside its timed runs goes through here.
fn call(socket: &Path, method: &str, params: Value) -> Result<Value, ClientError> {
    Client::connect(socket)?.call(method, params)
}

/// The member at a JSON pointer, or null.
pub(super) fn member<'a>(v: &'a Value, pointer: &str) -> &'a Value {
    v.pointer(pointer).unwrap_or(&Value::Null)
}

/// The text at a JSON pointer, or empty.
fn text(v: &Value, pointer: &str) -> String {
    member(v, pointer).as_str().unwrap_or_default().to_owned()
}

/// A fresh path `ari-bench[-what]-<random>` in the temporary directory, not created.
fn scratch_name(what: &str) -> Result<PathBuf, BenchError> {
    let mut raw = [0u8; 6];
    getrandom::fill(&mut raw).map_err(BenchError::Random)?;
    let sep = if what.is_empty() { "" } else { "-" };
    Ok(std::env::temp_dir().join(format!("ari-bench{sep}{what}-{}", hex::encode(raw))))
}

/// A fresh scratch directory `ari-bench-<what>-<random>` for a bench's own files; the caller
/// removes it.
pub fn scratch(what: &str) -> Result<PathBuf, BenchError> {
    let dir = scratch_name(what)?;
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
