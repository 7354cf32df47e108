//! `arictl bench`: how fast the daemon and the offline verifier are, each against a baseline
//! measured in the same run: what the same work costs with nothing of ours in the way.
//!
//! | bench | measured | baseline (same run) | module |
//! | --- | --- | --- | --- |
//! | `attest` | `agent.attest` over the socket | raw `CKM_ECDSA` signing on the same token and key | [`signing`] |
//! | `authorize` | durable `payment.authorize` over the socket | the same raw signing | [`signing`] |
//! | `authorize --backend tpm` | `payment.authorize` on swtpm, batched quotes and one quote each | raw TPM2_Sign on a software TPM of its own | [`tpm`] |
//! | `log` | durable `evidence.record` over the socket | raw SQLite appends with the same durability and fsyncs per entry ([`sqlite`]) | [`log`] |
//! | `proof` | inclusion and consistency proofs from a log of N entries | reading again, warm, exactly the tree nodes each proof read | [`proof`] |
//! | `verify` | the offline verifier on a receipt and an inclusion proof | raw P-256 verification of as many signatures | [`verify`] |
//!
//! The socket side ([`drive`]) runs N client connections, driven from one thread, each calling
//! the method back to back for the given time (for `authorize`: distinct checkouts against one
//! L5 voucher whose budget cannot run out, so every call is a committed debit and a signature),
//! on the daemon a [`daemon::Target`] names: a throwaway dev daemon started for the run, or a
//! running dev daemon. A list of client counts sweeps them on one daemon, one row each.
//!
//! Around each timed socket run the daemon's CPU time and resident memory are read from `/proc`
//! ([`process`]), and the driving process's own CPU time: CPU per operation is the process's
//! whole CPU time over the run divided by the operations completed. On a machine with few cores
//! the clients compete with the daemon for them; the client figure says how much.
//!
//! Figures are returned and printed, never asserted; the ratio is always measured throughput
//! over baseline throughput. A bench never touches a daemon other than the one it started or was
//! pointed at, and removes what it created. The figures measured on the project's machines are
//! in `docs/performance.md`, not here.

pub mod daemon;
pub mod drive;
pub mod log;
pub mod process;
pub mod proof;
pub mod signing;
pub mod sqlite;
pub mod tpm;
pub mod verify;

use crate::client::ClientError;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Why a bench could not run to the end.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// A call to the daemon failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The daemon's dev directory is not usable, or SoftHSM is missing.
    #[error(transparent)]
    Dev(#[from] super::dev::DevError),
    /// The daemon's configuration could not be read.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// A database (the daemon's, or a bench's own) could not be read or written.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// A bench's own SQLite database failed.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// The key store of a raw baseline failed.
    #[error(transparent)]
    Backend(#[from] crate::backend::BackendError),
    /// A PKCS#11 call of the raw signing baseline failed.
    #[error(transparent)]
    Token(#[from] cryptoki::error::Error),
    /// The software TPM of a baseline would not run.
    #[error(transparent)]
    Swtpm(#[from] super::swtpm::SwtpmError),
    /// A Merkle tree read failed.
    #[error(transparent)]
    Tree(#[from] crate::merkle::TreeError),
    /// A key the daemon published is not a P-256 public key.
    #[error(transparent)]
    Jose(#[from] crate::jose::JoseError),
    /// A signature of the verification baseline could not be made.
    #[error(transparent)]
    Signature(#[from] p256::ecdsa::Error),
    /// A JSON document (an answer, a report) could not be read or written.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// A file, directory or process could not be used.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A path could not be created or a program started.
    #[error("cannot {action} {}", path.display())]
    Path {
        /// `create`, `start`.
        action: &'static str,
        /// What could not be.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// No randomness for a scratch directory's name or a key.
    #[error("no randomness: {0}")]
    Random(getrandom::Error),
    /// No client count was given.
    #[error("--clients needs at least one count")]
    NoClients,
    /// More clients than the daemon accepts from one uid: they would wait in the backlog.
    #[error(
        "--clients {clients} is more than the daemon's limits.{key} ({cap}); raise it in {} and restart the daemon (with --state-dir) first",
        config.display()
    )]
    TooManyClients {
        /// The count asked for.
        clients: usize,
        /// The limit's key in the configuration.
        key: &'static str,
        /// Its value.
        cap: usize,
        /// The configuration file.
        config: PathBuf,
    },
    /// The throwaway daemon did not answer.
    #[error("the throwaway daemon did not come up; see {}", log.display())]
    DaemonDown {
        /// Its log file.
        log: PathBuf,
    },
    /// The daemon's answer lacks what the bench needs.
    #[error("{0}")]
    Answer(&'static str),
    /// A token or key of a baseline is not there.
    #[error("{0}")]
    Missing(String),
    /// The raw signing child process failed.
    #[error("raw signing failed: {stderr}")]
    RawSigner {
        /// What it wrote to stderr.
        stderr: String,
    },
    /// A baseline failed.
    #[error("{what} failed")]
    Baseline {
        /// `raw SQLite appends`, `raw TPM signing`.
        what: &'static str,
        /// Why.
        #[source]
        source: Box<BenchError>,
    },
    /// An artifact made for the run does not verify: a bug, not a measurement.
    #[error("{0} does not verify")]
    Unverified(String),
    /// The receipt made for `bench verify` does not verify.
    #[error("the receipt does not verify")]
    Receipt(#[source] crate::payment::PaymentError),
    /// The inclusion proof made for `bench verify` does not verify.
    #[error("the inclusion proof does not verify")]
    Inclusion(#[source] crate::evidence::export::VerifyError),
}

impl BenchError {
    /// Wraps the failure of the baseline `what`.
    fn baseline(what: &'static str) -> impl FnOnce(BenchError) -> BenchError {
        move |e| BenchError::Baseline {
            what,
            source: Box::new(e),
        }
    }
}

/// How `arictl bench` asked for a socket bench to run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Concurrent client connections (verifier threads for `bench verify`), one row per count.
    pub clients: Vec<usize>,
    /// Seconds to run each side.
    pub seconds: f64,
    /// The running dev daemon of this directory instead of a throwaway one.
    pub state_dir: Option<PathBuf>,
    /// The running program (`arictl`): `arid` is looked for beside it, and it is run again as
    /// `bench raw` for the raw signing baseline (see [`signing::RawJob`]).
    pub program: PathBuf,
    /// Where progress lines go (stderr, or nowhere when the output is JSON).
    pub progress: fn(&str),
}

impl Plan {
    /// Reports progress.
    fn say(&self, line: &str) {
        (self.progress)(line)
    }
}

/// Throughput and latency of one side.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Figures {
    /// Completed operations per second.
    pub ops_per_s: f64,
    /// Median latency, microseconds.
    pub p50_us: f64,
    /// 99th percentile latency, microseconds.
    pub p99_us: f64,
    /// Operations counted.
    pub ops: u64,
    /// CPU time of the process that did the work, per operation, microseconds (when measured).
    #[serde(default)]
    pub cpu_us_per_op: Option<f64>,
}

/// `measured / baseline`, or 0 when the baseline did nothing.
pub fn ratio(measured: f64, baseline: f64) -> f64 {
    if baseline > 0.0 {
        measured / baseline
    } else {
        0.0
    }
}

impl Figures {
    fn from_latencies(mut lat_us: Vec<f64>, elapsed: Duration) -> Self {
        lat_us.sort_by(f64::total_cmp);
        let pick = |q: f64| {
            let i = ((lat_us.len() as f64 - 1.0) * q).round() as usize;
            lat_us.get(i).copied().unwrap_or(0.0)
        };
        Self {
            ops_per_s: lat_us.len() as f64 / elapsed.as_secs_f64().max(1e-9),
            p50_us: pick(0.50),
            p99_us: pick(0.99),
            ops: lat_us.len() as u64,
            cpu_us_per_op: None,
        }
    }
}

/// What the daemon and the driving process spent during a timed run.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Costs {
    /// The daemon's CPU time per operation, microseconds.
    pub daemon_cpu_us_per_op: Option<f64>,
    /// The driving process's CPU time per operation, microseconds.
    pub client_cpu_us_per_op: Option<f64>,
    /// The daemon's resident memory before the clients connected, KiB.
    pub daemon_rss_kib_before: Option<u64>,
    /// The daemon's resident memory at the end of the run, clients still connected, KiB.
    pub daemon_rss_kib_after: Option<u64>,
    /// The software TPM's CPU time per operation, microseconds, when the daemon runs on one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tpm_cpu_us_per_op: Option<f64>,
}

impl Costs {
    fn text(&self) -> String {
        let us = |v: Option<f64>| v.map_or("?".into(), |v| format!("{v:.0} µs"));
        let mib =
            |v: Option<u64>| v.map_or("?".into(), |v| format!("{:.1} MiB", v as f64 / 1024.0));
        format!(
            "CPU per op (daemon)           {daemon}  (clients {client})\n\
             daemon VmRSS                  {before} before the clients connected, {after} after the run\n",
            daemon = us(self.daemon_cpu_us_per_op),
            client = us(self.client_cpu_us_per_op),
            before = mib(self.daemon_rss_kib_before),
            after = mib(self.daemon_rss_kib_after),
        )
    }
}

/// Runs `op` back to back on one thread per worker for `duration` and times every call.
/// `op` gets the worker, its index and the call's sequence number.
fn timed_loop<W: Send, E: Send>(
    workers: Vec<W>,
    duration: Duration,
    op: impl Fn(&mut W, usize, u64) -> Result<(), E> + Sync,
) -> Result<Figures, E> {
    let start = Instant::now();
    let deadline = start + duration;
    let op = &op;
    let results: Vec<Option<Result<Vec<f64>, E>>> = std::thread::scope(|s| {
        let handles: Vec<_> = workers
            .into_iter()
            .enumerate()
            .map(|(n, mut w)| {
                s.spawn(move || {
                    let mut lat = Vec::new();
                    let mut i = 0u64;
                    while Instant::now() < deadline {
                        let t = Instant::now();
                        op(&mut w, n, i)?;
                        lat.push(t.elapsed().as_secs_f64() * 1e6);
                        i += 1;
                    }
                    Ok(lat)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().ok()).collect()
    });
    let elapsed = start.elapsed();
    let mut all = Vec::new();
    for r in results.into_iter().flatten() {
        all.extend(r?);
    }
    Ok(Figures::from_latencies(all, elapsed))
}

/// The header of a sweep table: one row per client count ([`sweep_row`]).
fn sweep_header() -> &'static str {
    "clients      ops/s   p50 µs   p99 µs   ratio  daemon CPU µs/op  client CPU µs/op  daemon RSS MiB"
}

/// One row of a sweep table: the socket figures, the ratio and the costs at one client count.
fn sweep_row(clients: usize, ops: f64, p50: f64, p99: f64, ratio: f64, c: &Costs) -> String {
    let us = |v: Option<f64>| v.map_or("?".into(), |v| format!("{v:.0}"));
    format!(
        "{clients:>7}  {ops:>9.0}  {p50:>7.0}  {p99:>7.0}  {ratio:>6.2}  {d:>16}  {cl:>16}  {rss:>14}\n",
        d = us(c.daemon_cpu_us_per_op),
        cl = us(c.client_cpu_us_per_op),
        rss = c
            .daemon_rss_kib_after
            .map_or("?".into(), |v| format!("{:.1}", v as f64 / 1024.0)),
    )
}
