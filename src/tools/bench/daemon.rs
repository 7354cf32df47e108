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
use crate::protocol::agent::ProvisionParams;
use crate::protocol::daemon::NoParams;
use crate::protocol::voucher::IssueParams;
use crate::protocol::{Call, ErrorCode, call};
use crate::tools::dev::DevLayout;
use crate::voucher::constraint::AutonomyLevel;
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
            if request::<call::AdminStatus>(&admin, &NoParams {}).is_ok() {
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

    /// A call of method `C` on the admin socket.
    pub fn admin<C: Call>(&self, params: &C::Params) -> Result<C::Result, BenchError> {
        Ok(request::<C>(&self.layout.admin_socket, params)?)
    }

    /// A call of method `C` on the agent socket, as this process.
    pub fn agent<C: Call>(&self, params: &C::Params) -> Result<C::Result, BenchError> {
        Ok(request::<C>(&self.layout.agent_socket, params)?)
    }

    /// The id of the agent this process is, provisioned first if the daemon does not know it.
    pub fn bench_agent(&self) -> Result<String, BenchError> {
        match self.agent::<call::AgentIdentity>(&NoParams {}) {
            Ok(me) => return Ok(me.agent),
            Err(BenchError::Client(ClientError::Remote(e)))
                if e.error == ErrorCode::UnknownCaller => {}
            Err(e) => return Err(e),
        }
        let exe = std::env::current_exe()?;
        let bytes = std::fs::read(&exe).map_err(|source| BenchError::Path {
            action: "read",
            path: exe,
            source,
        })?;
        let digest = hex::encode(Sha256::digest(&bytes));
        let id = format!("bench-{}", digest.get(..12).unwrap_or("0"));
        self.admin::<call::AdminAgentProvision>(&ProvisionParams {
            agent: id.clone(),
            user: "bench".into(),
            uid: nix::unistd::getuid().as_raw(),
            gid: None,
            exe_sha256: Some(digest),
            cgroup: None,
            rotate: false,
        })?;
        Ok(id)
    }

    /// Issues `agent` a voucher that will not run out during a bench; returns its id.
    pub fn bench_voucher(&self, agent: &str) -> Result<String, BenchError> {
        let issued = self.admin::<call::AdminVoucherIssue>(&IssueParams {
            agent: agent.to_owned(),
            level: AutonomyLevel::L5,
            currency: "CNY".into(),
            min_amount: None,
            max_amount: Some(100),
            budget: Some(crate::voucher::constraint::MAX_BUDGET),
            max_payments: None,
            period: None,
            payees: Vec::new(),
            categories: Vec::new(),
            funds_carrier: None,
            not_before: None,
            expires_at: unix_now() + 86_400,
            report_within_s: None,
            conditions: Vec::new(),
            not_after_execution: None,
            not_before_execution: None,
        })?;
        Ok(issued.id)
    }
}

/// One call: every call a bench makes outside its timed runs goes through here.
fn request<C: Call>(socket: &Path, params: &C::Params) -> Result<C::Result, ClientError> {
    Client::connect(socket)?.request::<C>(params)
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
