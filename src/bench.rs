//! `arictl bench`: how fast the daemon and the offline verifier are, each against a baseline
//! measured in the same run: what the same work costs with nothing of ours in the way.
//!
//! | bench | measured | baseline (same run) |
//! | --- | --- | --- |
//! | `attest` | `agent.attest` over the socket | raw `CKM_ECDSA` signing on the same token and key |
//! | `authorize` | durable `payment.authorize` over the socket | the same raw signing |
//! | `authorize --backend tpm` | `payment.authorize` on swtpm, batched quotes and one quote each | raw TPM2_Sign on a software TPM of its own ([`raw_tpm_sign`]) |
//! | `log` | durable `evidence.record` over the socket | raw SQLite appends with the same durability and fsyncs per entry ([`sqlite`]) |
//! | `proof` | inclusion and consistency proofs from a log of N entries | reading again, warm, exactly the tree nodes each proof read |
//! | `verify` | the offline verifier on a receipt and an inclusion proof | raw P-256 verification of as many signatures ([`verify`]) |
//!
//! The socket side runs N client connections, driven from one thread, each calling the method
//! back to back for the given time (for `authorize`: distinct checkouts against one L5 voucher whose
//! budget cannot run out, so every call is a committed debit and a signature). The signing
//! baseline runs in a separate process (SoftHSM reads `SOFTHSM2_CONF` at load time) that signs
//! SHA-256 digests with `CKM_ECDSA` on the same key, one thread per core with a long-lived session
//! each: the best the token can do with no daemon in the way. A list of client counts sweeps
//! them on one daemon, one row each, against one baseline run.
//!
//! Around each timed socket run the daemon's CPU time and resident memory are read from `/proc`
//! ([`process`]), and the driving process's own CPU time: CPU per operation is the process's
//! whole CPU time over the run divided by the operations completed. On a machine with few cores
//! the clients compete with the daemon for them; the client figure says how much.
//!
//! Figures are printed, never asserted; the ratio is always measured throughput over baseline
//! throughput.

pub mod process;
pub mod sqlite;
pub mod verify;

use crate::backend::pkcs11;
use crate::client::{Client, ClientError};
use crate::protocol::Method;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::time::{Duration, Instant};

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

/// What the socket side asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Workload {
    /// `agent.attest`.
    Attest,
    /// `payment.authorize` against this voucher id (issued by the caller of [`drive`]).
    Authorize(String),
    /// `evidence.record`: a signed agent statement, one durable entry per call.
    Record,
    /// `agent.identity`: the socket round trip with nothing behind it but finding the caller,
    /// the least any agent call costs.
    Identity,
}

/// The params of a one-minor-unit `payment.authorize` on `voucher` with `nonce`; the checkout is
/// derived from the nonce, so distinct nonces make distinct checkouts.
pub fn authorize_params(voucher: &str, nonce: &str) -> serde_json::Value {
    serde_json::json!({
        "voucher": voucher,
        "payment": {
            "amount": 1, "currency": "CNY", "payee": "bench.example",
            "transaction_id": format!("tx-{nonce}"),
        },
        "aud": "bench.example",
        "nonce": nonce,
    })
}

impl Workload {
    /// The method name.
    pub fn method(&self) -> &'static str {
        match self {
            Self::Attest => Method::AgentAttest.name(),
            Self::Authorize(_) => Method::PaymentAuthorize.name(),
            Self::Record => Method::EvidenceRecord.name(),
            Self::Identity => Method::AgentIdentity.name(),
        }
    }

    /// The params of call `i` of connection `n` in run `run`: nonces and checkouts never repeat
    /// within a process, so a sweep can run again on the same voucher.
    fn params(&self, run: u64, n: usize, i: u64) -> serde_json::Value {
        let nonce = format!("bench-{run}-{n:04}-{i:012}");
        match self {
            Self::Attest => serde_json::json!({ "nonce": nonce }),
            Self::Authorize(voucher) => authorize_params(voucher, &nonce),
            Self::Record => serde_json::json!({
                "kind": "offer.chosen",
                "body": {"offer": nonce, "price": 1999, "currency": "CNY",
                         "why": "cheapest of three offers in stock"},
            }),
            Self::Identity => serde_json::json!({}),
        }
    }
}

/// A number for each run of calls in this process.
fn next_run() -> u64 {
    static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
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

/// Drives `workload` from `clients` threads for `seconds`, after one warm-up call per
/// connection.
pub fn drive(
    agent_socket: &Path,
    workload: &Workload,
    clients: usize,
    seconds: f64,
) -> Result<Figures, ClientError> {
    drive_measured(agent_socket, workload, clients, seconds, None, None).map(|(f, _)| f)
}

/// [`drive`], reading the daemon `daemon_pid` (if known), its software TPM `tpm_pid` (if any)
/// and this process from `/proc` around the timed run.
///
/// The connections are driven from one thread that waits on all of them at once (epoll), as
/// an async agent runtime would, each connection with one call in flight at a time. A thread
/// per connection blocked in `read` costs more on both sides: the kernel wakes a reader
/// blocked on a Unix socket whenever the peer consumes what it wrote, not only when an answer
/// arrives, so each call wakes its client twice and the daemon pays for the extra wakeup.
pub fn drive_measured(
    agent_socket: &Path,
    workload: &Workload,
    clients: usize,
    seconds: f64,
    daemon_pid: Option<u32>,
    tpm_pid: Option<u32>,
) -> Result<(Figures, Costs), ClientError> {
    let daemon = || daemon_pid.and_then(process::Usage::of);
    let tpm = || tpm_pid.and_then(process::Usage::of);
    let idle = daemon();
    let run = next_run();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    rt.block_on(async {
        let mut conns = Vec::with_capacity(clients);
        for n in 0..clients {
            let mut c = AsyncConn::connect(agent_socket).await?;
            c.call(workload.method(), workload.params(run, n, u64::MAX))
                .await?;
            conns.push(c);
        }
        let (d0, c0, t0) = (daemon(), process::Usage::current(), tpm());
        let start = Instant::now();
        let deadline = start + Duration::from_secs_f64(seconds);
        let mut tasks = tokio::task::JoinSet::new();
        for (n, c) in conns.into_iter().enumerate() {
            tasks.spawn(c.timed_calls(workload.clone(), run, n, deadline));
        }
        let mut all = Vec::new();
        while let Some(done) = tasks.join_next().await {
            let lat = done.map_err(|e| ClientError::Protocol(format!("a client stopped: {e}")))?;
            all.extend(lat?);
        }
        let figures = Figures::from_latencies(all, start.elapsed());
        let (d1, c1, t1) = (daemon(), process::Usage::current(), tpm());
        let per_op = |a: Option<process::Usage>, b: Option<process::Usage>| match (a, b) {
            (Some(a), Some(b)) => a.cpu_us_per_op(&b, figures.ops),
            _ => None,
        };
        let costs = Costs {
            daemon_cpu_us_per_op: per_op(d0, d1),
            client_cpu_us_per_op: per_op(c0, c1),
            daemon_rss_kib_before: idle.map(|u| u.rss_kib),
            daemon_rss_kib_after: d1.map(|u| u.rss_kib),
            tpm_cpu_us_per_op: per_op(t0, t1),
        };
        Ok((figures, costs))
    })
}

/// One non-blocking client connection of [`drive_measured`].
struct AsyncConn {
    reader: tokio::io::BufReader<tokio::net::unix::OwnedReadHalf>,
    writer: tokio::net::unix::OwnedWriteHalf,
    next_id: u64,
    line: String,
}

impl AsyncConn {
    async fn connect(path: &Path) -> Result<Self, ClientError> {
        let stream = tokio::net::UnixStream::connect(path)
            .await
            .map_err(|source| ClientError::Connect {
                path: path.into(),
                source,
            })?;
        let (rd, writer) = stream.into_split();
        Ok(Self {
            reader: tokio::io::BufReader::new(rd),
            writer,
            next_id: 1,
            line: String::new(),
        })
    }

    /// Writes call `method` and reads its answer into `self.line`; returns the call's id.
    async fn send(&mut self, method: &str, params: serde_json::Value) -> Result<u64, ClientError> {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
        let id = self.next_id;
        self.next_id += 1;
        let request = crate::client::request_line(id, method, params)?;
        self.writer.write_all(&request).await?;
        self.line.clear();
        // As long as the blocking client waits: a stuck daemon fails the run, never hangs it.
        let read = tokio::time::timeout(
            crate::client::ANSWER_WAIT,
            self.reader.read_line(&mut self.line),
        )
        .await
        .map_err(|_| {
            ClientError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "no answer from the daemon within {} s",
                    crate::client::ANSWER_WAIT.as_secs()
                ),
            ))
        })?;
        if read? == 0 {
            return Err(ClientError::Protocol(
                "the daemon closed the connection".into(),
            ));
        }
        Ok(id)
    }

    async fn call(&mut self, method: &str, params: serde_json::Value) -> Result<(), ClientError> {
        let id = self.send(method, params).await?;
        crate::client::decode_response(&self.line, id).map(drop)
    }

    /// Calls `workload` back to back until `deadline`: the latency of each call, microseconds.
    async fn timed_calls(
        mut self,
        workload: Workload,
        run: u64,
        n: usize,
        deadline: Instant,
    ) -> Result<Vec<f64>, ClientError> {
        let mut lat = Vec::new();
        let mut i = 0u64;
        while Instant::now() < deadline {
            let t = Instant::now();
            let id = self
                .send(workload.method(), workload.params(run, n, i))
                .await?;
            crate::client::check_response(&self.line, id)?;
            lat.push(t.elapsed().as_secs_f64() * 1e6);
            i += 1;
        }
        Ok(lat)
    }
}

/// Records `entries` agent statements from `threads` connections, to grow the log.
pub fn fill(agent_socket: &Path, entries: u64, threads: usize) -> Result<(), ClientError> {
    let threads = threads.max(1);
    let per = entries.div_ceil(threads as u64);
    let run = next_run();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|n| {
                s.spawn(move || -> Result<(), ClientError> {
                    let mut c = Client::connect(agent_socket)?;
                    let first = per * n as u64;
                    for i in first..(first + per).min(entries) {
                        c.call_unparsed(
                            Workload::Record.method(),
                            Workload::Record.params(run, n, i),
                        )?;
                    }
                    Ok(())
                })
            })
            .collect();
        handles.into_iter().try_for_each(|h| {
            h.join()
                .unwrap_or_else(|_| Err(ClientError::Protocol("a client thread stopped".into())))
        })
    })
}

/// Signs digests directly through the module with the key labelled `key_label`, one thread per
/// `threads`, each with its own session, for `seconds`. The process must have been started
/// with the token's `SOFTHSM2_CONF` (for SoftHSM).
pub fn raw_sign(
    module: &Path,
    token_label: &str,
    pin_file: &Path,
    key_label: &str,
    threads: usize,
    seconds: f64,
) -> Result<Figures, String> {
    let ctx = pkcs11::load_module(module).map_err(|e| e.to_string())?;
    let slot = pkcs11::find_token(&ctx, token_label)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no token {token_label:?}"))?;
    let pin =
        pkcs11::read_pin(&pkcs11::PinSource::File(pin_file.into())).map_err(|e| e.to_string())?;
    let mut sessions = Vec::new();
    for _ in 0..threads.max(1) {
        sessions.push(ctx.open_rw_session(slot).map_err(|e| e.to_string())?);
    }
    let first = sessions.first().ok_or("no session")?;
    first
        .login(cryptoki::session::UserType::User, Some(&pin))
        .map_err(|e| e.to_string())?;
    let key = first
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Label(key_label.as_bytes().to_vec()),
        ])
        .map_err(|e| e.to_string())?
        .first()
        .copied()
        .ok_or_else(|| format!("no private key labelled {key_label:?}"))?;
    let before = process::Usage::current();
    let mut figures = timed_loop(
        sessions,
        Duration::from_secs_f64(seconds),
        |session, n, i| {
            let digest = Sha256::digest(format!("raw-{n}-{i}").as_bytes());
            session
                .sign(&Mechanism::Ecdsa, key, &digest)
                .map(drop)
                .map_err(|e| e.to_string())
        },
    )?;
    if let (Some(a), Some(b)) = (before, process::Usage::current()) {
        figures.cpu_us_per_op = a.cpu_us_per_op(&b, figures.ops);
    }
    Ok(figures)
}

/// Signs digests with TPM2_Sign on a software TPM started for the purpose in `dir` (a fresh
/// swtpm, a fresh key under its storage key), through the daemon's own TPM backend in this
/// process: the one thread that owns the TPM context, as in the daemon, with no socket, policy,
/// ledger or quote. `threads` callers queue on it for `seconds`. The returned CPU per operation
/// is the software TPM's.
pub fn raw_tpm_sign(dir: &Path, threads: usize, seconds: f64) -> Result<Figures, String> {
    use crate::backend::Backend;
    use crate::backend::tpm::{TpmBackend, TpmOptions};
    let e = |e: crate::backend::BackendError| e.to_string();
    let sim = crate::swtpm::Swtpm::start(&dir.join("tpm")).map_err(|e| e.to_string())?;
    let threads = threads.max(1);
    let backend = TpmBackend::start(TpmOptions {
        tcti: sim.tcti(),
        owner_auth: None,
        endorsement_auth: None,
        key_auth: None,
        pcrs: (0..8).collect(),
        queue_depth: threads.max(16),
        quote_batch: 1,
        max_loaded: 3,
    })
    .map_err(e)?;
    let runtimes = (0..threads)
        .map(|_| tokio::runtime::Builder::new_current_thread().build())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let first = runtimes.first().ok_or("no runtime")?;
    let key = first
        .block_on(backend.generate_key("ari-bench-raw".into()))
        .map_err(e)?;
    // One sign outside the timing loads the key.
    first
        .block_on(backend.sign_digest(key.id.clone(), [0; 32]))
        .map_err(e)?;
    let tpm = || sim.pid().and_then(process::Usage::of);
    let before = tpm();
    let mut figures = timed_loop(runtimes, Duration::from_secs_f64(seconds), |rt, n, i| {
        let digest: [u8; 32] = Sha256::digest(format!("raw-{n}-{i}").as_bytes()).into();
        rt.block_on(backend.sign_digest(key.id.clone(), digest))
            .map(drop)
            .map_err(e)
    })?;
    if let (Some(a), Some(b)) = (before, tpm()) {
        figures.cpu_us_per_op = a.cpu_us_per_op(&b, figures.ops);
    }
    Ok(figures)
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

/// The report of one `bench attest` or `bench authorize` run, at one client count.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The method measured.
    pub method: &'static str,
    /// Client connections.
    pub clients: usize,
    /// Seconds per side.
    pub seconds: f64,
    /// Socket throughput.
    pub ops_per_s: f64,
    /// Socket median latency.
    pub p50_us: f64,
    /// Socket p99 latency.
    pub p99_us: f64,
    /// Raw signing throughput.
    pub baseline_ops_per_s: f64,
    /// Raw signing median latency.
    pub baseline_p50_us: f64,
    /// Raw signing p99 latency.
    pub baseline_p99_us: f64,
    /// Baseline threads.
    pub baseline_threads: usize,
    /// CPU time of the raw signing process per signature, microseconds.
    pub baseline_cpu_us_per_op: Option<f64>,
    /// `ops_per_s / baseline_ops_per_s`.
    pub ratio: f64,
    /// The daemon's and the clients' CPU and memory over the socket run.
    #[serde(flatten)]
    pub costs: Costs,
}

impl Report {
    /// Combines the two sides.
    pub fn new(
        method: &'static str,
        clients: usize,
        seconds: f64,
        (socket, costs): (Figures, Costs),
        raw: Figures,
        raw_threads: usize,
    ) -> Self {
        Self {
            method,
            clients,
            seconds,
            ops_per_s: socket.ops_per_s,
            p50_us: socket.p50_us,
            p99_us: socket.p99_us,
            baseline_ops_per_s: raw.ops_per_s,
            baseline_p50_us: raw.p50_us,
            baseline_p99_us: raw.p99_us,
            baseline_threads: raw_threads,
            baseline_cpu_us_per_op: raw.cpu_us_per_op,
            ratio: ratio(socket.ops_per_s, raw.ops_per_s),
            costs,
        }
    }

    /// The human-readable report.
    pub fn text(&self) -> String {
        format!(
            "{method:<17} over the socket {clients:>3} clients  {ops:>9.0} ops/s  p50 {p50:>7.0} µs  p99 {p99:>7.0} µs\n\
             raw CKM_ECDSA in process      {threads:>3} threads  {bops:>9.0} ops/s  p50 {bp50:>7.0} µs  p99 {bp99:>7.0} µs  CPU {bcpu} per signature\n\
             ratio (socket / raw)          {ratio:.2}\n{costs}",
            method = self.method,
            clients = self.clients,
            ops = self.ops_per_s,
            p50 = self.p50_us,
            p99 = self.p99_us,
            threads = self.baseline_threads,
            bops = self.baseline_ops_per_s,
            bp50 = self.baseline_p50_us,
            bp99 = self.baseline_p99_us,
            bcpu = self
                .baseline_cpu_us_per_op
                .map_or("?".into(), |v| format!("{v:.0} µs")),
            ratio = self.ratio,
            costs = self.costs.text(),
        )
    }

    /// One table for a sweep of client counts on one daemon against one baseline run.
    pub fn sweep_text(rows: &[Self]) -> String {
        let Some(first) = rows.first() else {
            return String::new();
        };
        let mut out = format!(
            "{method} over the socket, {seconds} s per client count\n\
             {h}\n",
            method = first.method,
            seconds = first.seconds,
            h = sweep_header(),
        );
        for r in rows {
            out.push_str(&sweep_row(
                r.clients,
                r.ops_per_s,
                r.p50_us,
                r.p99_us,
                r.ratio,
                &r.costs,
            ));
        }
        out.push_str(&format!(
            "baseline: raw CKM_ECDSA in process, {threads} threads, {bops:.0} ops/s, p50 {bp50:.0} µs, p99 {bp99:.0} µs, CPU {bcpu} per signature\n",
            threads = first.baseline_threads,
            bops = first.baseline_ops_per_s,
            bp50 = first.baseline_p50_us,
            bp99 = first.baseline_p99_us,
            bcpu = first
                .baseline_cpu_us_per_op
                .map_or("?".into(), |v| format!("{v:.0} µs")),
        ));
        out
    }
}

fn sweep_header() -> &'static str {
    "clients      ops/s   p50 µs   p99 µs   ratio  daemon CPU µs/op  client CPU µs/op  daemon RSS MiB"
}

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

/// What `bench log` measured, at one client count.
#[derive(Debug, Clone, Serialize)]
pub struct LogReport {
    /// Client connections.
    pub clients: usize,
    /// Seconds run.
    pub seconds: f64,
    /// Durable entries per second.
    pub ops_per_s: f64,
    /// Median latency of one `evidence.record`, microseconds.
    pub p50_us: f64,
    /// 99th percentile latency, microseconds.
    pub p99_us: f64,
    /// Entries appended during the run (statements, and nothing else).
    pub entries: u64,
    /// Checkpoints signed during the run.
    pub checkpoints: u64,
    /// Database growth (entries, subtree hashes, checkpoints, indexes) per entry, in bytes.
    pub bytes_per_entry: f64,
    /// Group commits of the daemon's writer during the run.
    pub group_commits: u64,
    /// Mean jobs per group commit during the run.
    pub entries_per_commit: f64,
    /// Baseline: rows per commit (the run's mean group, rounded, at least 1).
    pub baseline_group: usize,
    /// Baseline: bytes per row (the run's database growth per entry, rounded).
    pub baseline_row_bytes: usize,
    /// Baseline: raw SQLite appends per second.
    pub baseline_ops_per_s: f64,
    /// Baseline median latency (an entry's group, start to commit), microseconds.
    pub baseline_p50_us: f64,
    /// Baseline p99 latency, microseconds.
    pub baseline_p99_us: f64,
    /// `ops_per_s / baseline_ops_per_s`.
    pub ratio: f64,
    /// The daemon's and the clients' CPU and memory over the socket run.
    #[serde(flatten)]
    pub costs: Costs,
    /// What the socket and the disk cost on their own, and the most they leave room for.
    #[serde(flatten)]
    pub floor: LogFloor,
}

/// The least an entry can cost on this machine: the socket round trip with no work behind it
/// (`agent.identity` from as many clients), plus the CPU the raw SQLite baseline spent per row.
/// A daemon that did nothing else per entry (no JSON, no hashing, no signature) would still
/// spend that, on the same cores as its clients.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct LogFloor {
    /// `agent.identity` calls per second, same clients.
    pub floor_ops_per_s: f64,
    /// The daemon's CPU per `agent.identity` call, microseconds.
    pub floor_daemon_cpu_us_per_op: f64,
    /// The clients' CPU per `agent.identity` call, microseconds.
    pub floor_client_cpu_us_per_op: f64,
    /// The raw SQLite baseline's CPU per row (its thread, fsync waits excluded), microseconds.
    pub baseline_cpu_us_per_op: f64,
    /// CPUs the run had.
    pub cores: usize,
    /// `cores` seconds of CPU per second over the sum of the three costs above: entries per
    /// second that this machine's cores could not exceed even then.
    pub ceiling_ops_per_s: f64,
}

impl LogFloor {
    /// The floor from its three measured parts.
    pub fn new(identity: (&Figures, &Costs), baseline_cpu_us: f64, cores: usize) -> Self {
        let (figures, costs) = identity;
        let daemon = costs.daemon_cpu_us_per_op.unwrap_or(0.0);
        let client = costs.client_cpu_us_per_op.unwrap_or(0.0);
        let per_entry = daemon + client + baseline_cpu_us;
        Self {
            floor_ops_per_s: figures.ops_per_s,
            floor_daemon_cpu_us_per_op: daemon,
            floor_client_cpu_us_per_op: client,
            baseline_cpu_us_per_op: baseline_cpu_us,
            cores,
            ceiling_ops_per_s: if per_entry > 0.0 {
                cores as f64 * 1e6 / per_entry
            } else {
                0.0
            },
        }
    }

    fn text(&self) -> String {
        format!(
            "floor: agent.identity {ops:.0} calls/s, daemon {d:.0} µs + clients {c:.0} µs CPU per call; raw SQLite {b:.0} µs CPU per row\n\
             ceiling (socket and disk alone on {cores} cores): {ceiling:.0} entries/s\n",
            ops = self.floor_ops_per_s,
            d = self.floor_daemon_cpu_us_per_op,
            c = self.floor_client_cpu_us_per_op,
            b = self.baseline_cpu_us_per_op,
            cores = self.cores,
            ceiling = self.ceiling_ops_per_s,
        )
    }
}

impl LogReport {
    /// The human-readable report.
    pub fn text(&self) -> String {
        format!(
            "evidence.record  {clients:>3} clients  {ops:>9.0} entries/s  p50 {p50:>7.0} µs  p99 {p99:>7.0} µs\n\
             {entries} entries, {cps} checkpoints ({per:.1} entries per checkpoint), {bytes:.0} bytes per entry on disk, {epc:.1} entries per group commit\n\
             raw SQLite append  1 thread   {bops:>9.0} entries/s  p50 {bp50:>7.0} µs  p99 {bp99:>7.0} µs  (WAL, synchronous=FULL, {group} rows of {row} bytes per commit)\n\
             ratio (socket / raw)          {ratio:.2}\n{costs}{floor}",
            clients = self.clients,
            ops = self.ops_per_s,
            p50 = self.p50_us,
            p99 = self.p99_us,
            entries = self.entries,
            cps = self.checkpoints,
            per = self.entries as f64 / (self.checkpoints.max(1)) as f64,
            bytes = self.bytes_per_entry,
            epc = self.entries_per_commit,
            bops = self.baseline_ops_per_s,
            bp50 = self.baseline_p50_us,
            bp99 = self.baseline_p99_us,
            group = self.baseline_group,
            row = self.baseline_row_bytes,
            ratio = self.ratio,
            costs = self.costs.text(),
            floor = self.floor.text(),
        )
    }

    /// One table for a sweep of client counts; each row has its own baseline run.
    pub fn sweep_text(rows: &[Self]) -> String {
        let Some(first) = rows.first() else {
            return String::new();
        };
        let mut out = format!(
            "evidence.record over the socket, {seconds} s per client count; baseline per row: raw SQLite appends (WAL, synchronous=FULL) in groups of the row's mean group commit\n\
             floor µs/op: daemon and client CPU of agent.identity from as many clients, plus the baseline's CPU per row; ceiling: the cores' CPU time over that floor\n\
             {h}  entries/commit  baseline ops/s  floor µs/op  ceiling ops/s\n",
            seconds = first.seconds,
            h = sweep_header(),
        );
        for r in rows {
            let line = sweep_row(
                r.clients,
                r.ops_per_s,
                r.p50_us,
                r.p99_us,
                r.ratio,
                &r.costs,
            );
            let f = &r.floor;
            out.push_str(&format!(
                "{}  {:>14.1}  {:>14.0}  {:>11.0}  {:>13.0}\n",
                line.trim_end(),
                r.entries_per_commit,
                r.baseline_ops_per_s,
                f.floor_daemon_cpu_us_per_op
                    + f.floor_client_cpu_us_per_op
                    + f.baseline_cpu_us_per_op,
                f.ceiling_ops_per_s,
            ));
        }
        out
    }
}

/// Jobs and group commits the daemon's ledger writer has done, from `admin.metrics` text
/// (the `ari_ledger_group_commit_jobs` histogram's sum and count).
pub fn group_commits(metrics_text: &str) -> Option<(f64, f64)> {
    let value = |name: &str| {
        metrics_text.lines().find_map(|l| {
            l.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix(' '))
                .and_then(|v| v.trim().parse::<f64>().ok())
        })
    };
    Some((
        value("ari_ledger_group_commit_jobs_sum")?,
        value("ari_ledger_group_commit_jobs_count")?,
    ))
}

/// The log's size, checkpoint count and the database's bytes (after folding in the WAL), read
/// from the state database at `db`.
pub fn log_footprint(db: &Path) -> Result<(u64, u64, u64), crate::store::StoreError> {
    let conn = rusqlite::Connection::open(db)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    // Copy what the log holds into the database file so page counts are honest.
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
    let size = crate::evidence::log::size(&conn)?;
    let checkpoints: i64 =
        conn.query_row("SELECT count(*) FROM evidence_checkpoint", [], |r| r.get(0))?;
    let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    let free: i64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
    let page: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    let bytes = u64::try_from((pages - free) * page).unwrap_or(0);
    Ok((size, u64::try_from(checkpoints).unwrap_or(0), bytes))
}

/// What `bench proof` measured.
#[derive(Debug, Clone, Serialize)]
pub struct ProofReport {
    /// Entries in the log.
    pub entries: u64,
    /// Appends per second while building it (one transaction per 10 000, no signing).
    pub build_entries_per_s: f64,
    /// Inclusion proofs generated.
    pub proofs: u64,
    /// Inclusion proofs per second, one thread (samples over their total time).
    pub inclusion_ops_per_s: f64,
    /// Median time to generate one inclusion proof from SQLite, microseconds.
    pub inclusion_p50_us: f64,
    /// 99th percentile, microseconds.
    pub inclusion_p99_us: f64,
    /// Tree nodes read per inclusion proof, on average.
    pub inclusion_node_reads: f64,
    /// Baseline: the same node rows read again per operation, per second.
    pub inclusion_baseline_ops_per_s: f64,
    /// Baseline median, microseconds.
    pub inclusion_baseline_p50_us: f64,
    /// Baseline p99, microseconds.
    pub inclusion_baseline_p99_us: f64,
    /// `inclusion_ops_per_s / inclusion_baseline_ops_per_s`.
    pub inclusion_ratio: f64,
    /// Consistency proofs per second, one thread.
    pub consistency_ops_per_s: f64,
    /// Median time for a consistency proof between two random sizes, microseconds.
    pub consistency_p50_us: f64,
    /// 99th percentile, microseconds.
    pub consistency_p99_us: f64,
    /// Tree nodes read per consistency proof, on average.
    pub consistency_node_reads: f64,
    /// Baseline: the same node rows read again per operation, per second.
    pub consistency_baseline_ops_per_s: f64,
    /// Baseline median, microseconds.
    pub consistency_baseline_p50_us: f64,
    /// Baseline p99, microseconds.
    pub consistency_baseline_p99_us: f64,
    /// `consistency_ops_per_s / consistency_baseline_ops_per_s`.
    pub consistency_ratio: f64,
    /// Hashes in a proof at this size (inclusion, at most).
    pub proof_hashes: usize,
    /// Database bytes per entry.
    pub bytes_per_entry: f64,
}

impl ProofReport {
    /// The human-readable report.
    pub fn text(&self) -> String {
        format!(
            "log of {n} entries built at {build:.0} entries/s, {bytes:.0} bytes per entry\n\
             inclusion proof    {iops:>8.0} ops/s  p50 {ip50:>7.1} µs  p99 {ip99:>7.1} µs  ({proofs} proofs, up to {hashes} hashes, {ir:.1} node reads each)\n\
             same nodes again   {ibops:>8.0} ops/s  p50 {ibp50:>7.1} µs  p99 {ibp99:>7.1} µs  ratio {iratio:.2}\n\
             consistency proof  {cops:>8.0} ops/s  p50 {cp50:>7.1} µs  p99 {cp99:>7.1} µs  ({cr:.1} node reads each)\n\
             same nodes again   {cbops:>8.0} ops/s  p50 {cbp50:>7.1} µs  p99 {cbp99:>7.1} µs  ratio {cratio:.2}\n",
            n = self.entries,
            build = self.build_entries_per_s,
            bytes = self.bytes_per_entry,
            iops = self.inclusion_ops_per_s,
            ip50 = self.inclusion_p50_us,
            ip99 = self.inclusion_p99_us,
            proofs = self.proofs,
            hashes = self.proof_hashes,
            ir = self.inclusion_node_reads,
            ibops = self.inclusion_baseline_ops_per_s,
            ibp50 = self.inclusion_baseline_p50_us,
            ibp99 = self.inclusion_baseline_p99_us,
            iratio = self.inclusion_ratio,
            cops = self.consistency_ops_per_s,
            cp50 = self.consistency_p50_us,
            cp99 = self.consistency_p99_us,
            cr = self.consistency_node_reads,
            cbops = self.consistency_baseline_ops_per_s,
            cbp50 = self.consistency_baseline_p50_us,
            cbp99 = self.consistency_baseline_p99_us,
            cratio = self.consistency_ratio,
        )
    }
}

/// A node source that records which nodes it read.
struct Counted<'n, N> {
    inner: &'n N,
    read: std::cell::RefCell<Vec<(u32, u64)>>,
}

impl<N: crate::evidence::tree::Nodes> crate::evidence::tree::Nodes for Counted<'_, N> {
    fn node(
        &self,
        level: u32,
        index: u64,
    ) -> Result<crate::evidence::tree::Hash, crate::evidence::tree::TreeError> {
        self.read.borrow_mut().push((level, index));
        self.inner.node(level, index)
    }
}

/// Latencies of one side of `bench proof`, with the mean rate over their sum.
#[derive(Default)]
struct Samples {
    us: Vec<f64>,
    reads: u64,
}

impl Samples {
    fn push(&mut self, since: Instant) {
        self.us.push(since.elapsed().as_secs_f64() * 1e6);
    }

    fn ops_per_s(&self) -> f64 {
        self.us.len() as f64 * 1e6 / self.us.iter().sum::<f64>().max(1e-9)
    }

    fn pick(&mut self, q: f64) -> f64 {
        self.us.sort_by(f64::total_cmp);
        let i = ((self.us.len() as f64 - 1.0) * q).round() as usize;
        self.us.get(i).copied().unwrap_or(0.0)
    }

    fn reads_per_op(&self) -> f64 {
        self.reads as f64 / self.us.len().max(1) as f64
    }
}

/// Builds a log of `entries` payment-sized entries in a fresh database under `dir`, then times
/// inclusion and consistency proofs read from it. Every proof is checked against the root. After
/// each proof, exactly the node rows it read are read again through the same query: the
/// baseline, the cost of fetching those rows alone (from a warm cache, so a floor); what the
/// proof adds is the tree walk and the hashes of incomplete subtrees.
pub fn proofs(dir: &Path, entries: u64, samples: u64) -> Result<ProofReport, String> {
    use crate::evidence::entry::{Draft, Kind};
    use crate::evidence::{log, tree};
    let e = |e: crate::store::StoreError| e.to_string();
    let path = dir.join("ari.db");
    crate::store::Store::open(&path).map_err(e)?;
    let mut conn = rusqlite::Connection::open(&path).map_err(|x| x.to_string())?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(|x| x.to_string())?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(|x| x.to_string())?;
    let start = Instant::now();
    let mut written = 0u64;
    while written < entries {
        let tx = conn.transaction().map_err(|x| x.to_string())?;
        let batch = (entries - written).min(10_000);
        for i in written..written + batch {
            let draft = Draft::new(
                Kind::PaymentDenied,
                serde_json::json!({
                    "decision": format!("{i:032x}"),
                    "voucher": "BfyGAohPhxJA8fuOFjkgMKkz5Iae63BBbRx79VgQOGU",
                    "transaction_id": format!("tx-{i}"),
                    "amount": 1999, "currency": "CNY", "payee": "shop.example",
                    "reason": "budget_exhausted",
                }),
            )
            .about("shop-bot", "alice@example.com");
            log::append_entry(&tx, "bench.example/ari", &draft, 1_795_000_000).map_err(e)?;
        }
        tx.commit().map_err(|x| x.to_string())?;
        written += batch;
    }
    let build = written as f64 / start.elapsed().as_secs_f64().max(1e-9);
    let stored = log::StoredNodes(&conn);
    let nodes = Counted {
        inner: &stored,
        read: std::cell::RefCell::new(Vec::new()),
    };
    let root = tree::root(&stored, entries).map_err(|x| x.to_string())?;
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n.max(1)
    };
    let raw_reads = |read: Vec<(u32, u64)>, samples: &mut Samples| {
        let t = Instant::now();
        for (level, index) in read {
            tree::Nodes::node(&stored, level, index).map_err(|x| x.to_string())?;
        }
        samples.push(t);
        Ok::<(), String>(())
    };
    let (mut inclusion, mut consistency) = (Samples::default(), Samples::default());
    let (mut inclusion_raw, mut consistency_raw) = (Samples::default(), Samples::default());
    let mut longest = 0;
    for _ in 0..samples {
        let index = next(entries);
        let t = Instant::now();
        let proof = tree::inclusion_proof(&nodes, index, entries).map_err(|x| x.to_string())?;
        inclusion.push(t);
        let read = nodes.read.take();
        inclusion.reads += read.len() as u64;
        raw_reads(read, &mut inclusion_raw)?;
        longest = longest.max(proof.len());
        let leaf = tree::Nodes::node(&stored, 0, index).map_err(|x| x.to_string())?;
        if !tree::verify_inclusion(index, entries, &leaf, &proof, &root) {
            return Err(format!(
                "the inclusion proof of entry {index} does not verify"
            ));
        }
        let old = 1 + next(entries - 1);
        let t = Instant::now();
        let proof = tree::consistency_proof(&nodes, old, entries).map_err(|x| x.to_string())?;
        consistency.push(t);
        let read = nodes.read.take();
        consistency.reads += read.len() as u64;
        raw_reads(read, &mut consistency_raw)?;
        let old_root = tree::root(&stored, old).map_err(|x| x.to_string())?;
        if !tree::verify_consistency(old, entries, &old_root, &root, &proof) {
            return Err(format!(
                "the consistency proof {old}..{entries} does not verify"
            ));
        }
    }
    let (pages, page): (i64, i64) = (
        conn.query_row("PRAGMA page_count", [], |r| r.get(0))
            .map_err(|x| x.to_string())?,
        conn.query_row("PRAGMA page_size", [], |r| r.get(0))
            .map_err(|x| x.to_string())?,
    );
    let (iops, ibops) = (inclusion.ops_per_s(), inclusion_raw.ops_per_s());
    let (cops, cbops) = (consistency.ops_per_s(), consistency_raw.ops_per_s());
    Ok(ProofReport {
        entries,
        build_entries_per_s: build,
        proofs: samples,
        inclusion_ops_per_s: iops,
        inclusion_p50_us: inclusion.pick(0.5),
        inclusion_p99_us: inclusion.pick(0.99),
        inclusion_node_reads: inclusion.reads_per_op(),
        inclusion_baseline_ops_per_s: ibops,
        inclusion_baseline_p50_us: inclusion_raw.pick(0.5),
        inclusion_baseline_p99_us: inclusion_raw.pick(0.99),
        inclusion_ratio: ratio(iops, ibops),
        consistency_ops_per_s: cops,
        consistency_p50_us: consistency.pick(0.5),
        consistency_p99_us: consistency.pick(0.99),
        consistency_node_reads: consistency.reads_per_op(),
        consistency_baseline_ops_per_s: cbops,
        consistency_baseline_p50_us: consistency_raw.pick(0.5),
        consistency_baseline_p99_us: consistency_raw.pick(0.99),
        consistency_ratio: ratio(cops, cbops),
        proof_hashes: longest,
        bytes_per_entry: (pages * page) as f64 / entries.max(1) as f64,
    })
}

/// What `bench authorize --backend tpm` measured: batched quotes against one quote per
/// authorization, each on its own daemon and software TPM, and raw TPM2_Sign on a third
/// software TPM as the baseline.
#[derive(Debug, Clone, Serialize)]
pub struct TpmReport {
    /// Client connections.
    pub clients: usize,
    /// Seconds per run.
    pub seconds: f64,
    /// Authorizations per second with batching.
    pub ops_per_s: f64,
    /// Median latency with batching, microseconds.
    pub p50_us: f64,
    /// p99 latency with batching, microseconds.
    pub p99_us: f64,
    /// TPM2_Quote commands per authorization with batching.
    pub quotes_per_authorization: f64,
    /// Every TPM command (signs, quotes, loads, checkpoint signatures) per authorization.
    pub tpm_commands_per_authorization: f64,
    /// The daemon's CPU per authorization with batching, microseconds.
    pub daemon_cpu_us_per_op: Option<f64>,
    /// The software TPM's CPU per authorization with batching, microseconds.
    pub tpm_cpu_us_per_op: Option<f64>,
    /// Authorizations per second with one quote each.
    pub unbatched_ops_per_s: f64,
    /// Median latency with one quote each.
    pub unbatched_p50_us: f64,
    /// p99 latency with one quote each.
    pub unbatched_p99_us: f64,
    /// TPM commands per authorization with one quote each.
    pub unbatched_tpm_commands_per_authorization: f64,
    /// The daemon's CPU per authorization with one quote each, microseconds.
    pub unbatched_daemon_cpu_us_per_op: Option<f64>,
    /// The software TPM's CPU per authorization with one quote each, microseconds.
    pub unbatched_tpm_cpu_us_per_op: Option<f64>,
    /// `ops_per_s / unbatched_ops_per_s`.
    pub speedup: f64,
    /// Raw TPM2_Sign per second ([`raw_tpm_sign`], as many threads as clients).
    pub baseline_ops_per_s: f64,
    /// Raw TPM2_Sign median latency, microseconds.
    pub baseline_p50_us: f64,
    /// Raw TPM2_Sign p99 latency, microseconds.
    pub baseline_p99_us: f64,
    /// The software TPM's CPU per raw TPM2_Sign, microseconds.
    pub baseline_tpm_cpu_us_per_op: Option<f64>,
    /// `ops_per_s / baseline_ops_per_s` (batched quotes).
    pub ratio: f64,
}

/// One side of a [`TpmReport`]: the socket figures and the TPM's counters over the run.
#[derive(Debug, Clone, Copy)]
pub struct TpmRun {
    /// Socket throughput and latency.
    pub figures: Figures,
    /// TPM2_Quote commands during the run.
    pub quotes: u64,
    /// TPM commands during the run.
    pub commands: u64,
    /// The daemon's CPU per authorization, microseconds.
    pub daemon_cpu_us_per_op: Option<f64>,
    /// The software TPM's CPU per authorization, microseconds.
    pub tpm_cpu_us_per_op: Option<f64>,
}

impl TpmReport {
    /// Combines the batched and the unbatched run and the raw baseline.
    pub fn new(
        clients: usize,
        seconds: f64,
        batched: TpmRun,
        unbatched: TpmRun,
        raw: Figures,
    ) -> Self {
        let per = |n: u64, r: &TpmRun| {
            if r.figures.ops == 0 {
                0.0
            } else {
                n as f64 / r.figures.ops as f64
            }
        };
        Self {
            clients,
            seconds,
            ops_per_s: batched.figures.ops_per_s,
            p50_us: batched.figures.p50_us,
            p99_us: batched.figures.p99_us,
            quotes_per_authorization: per(batched.quotes, &batched),
            tpm_commands_per_authorization: per(batched.commands, &batched),
            daemon_cpu_us_per_op: batched.daemon_cpu_us_per_op,
            tpm_cpu_us_per_op: batched.tpm_cpu_us_per_op,
            unbatched_ops_per_s: unbatched.figures.ops_per_s,
            unbatched_p50_us: unbatched.figures.p50_us,
            unbatched_p99_us: unbatched.figures.p99_us,
            unbatched_tpm_commands_per_authorization: per(unbatched.commands, &unbatched),
            unbatched_daemon_cpu_us_per_op: unbatched.daemon_cpu_us_per_op,
            unbatched_tpm_cpu_us_per_op: unbatched.tpm_cpu_us_per_op,
            speedup: ratio(batched.figures.ops_per_s, unbatched.figures.ops_per_s),
            baseline_ops_per_s: raw.ops_per_s,
            baseline_p50_us: raw.p50_us,
            baseline_p99_us: raw.p99_us,
            baseline_tpm_cpu_us_per_op: raw.cpu_us_per_op,
            ratio: ratio(batched.figures.ops_per_s, raw.ops_per_s),
        }
    }

    /// The human-readable report.
    pub fn text(&self) -> String {
        let us = |v: Option<f64>| v.map_or("?".into(), |v| format!("{v:.0}"));
        format!(
            "payment.authorize on swtpm, {clients} clients, {seconds} s per run\n\
             batched quotes    {ops:>8.0} ops/s  p50 {p50:>7.0} µs  p99 {p99:>7.0} µs  {q:.3} quotes/auth  {c:.3} TPM commands/auth  CPU/op µs: daemon {dc}, swtpm {tc}\n\
             one quote each    {uops:>8.0} ops/s  p50 {up50:>7.0} µs  p99 {up99:>7.0} µs  1.000 quotes/auth  {uc:.3} TPM commands/auth  CPU/op µs: daemon {udc}, swtpm {utc}\n\
             raw TPM2_Sign     {bops:>8.0} ops/s  p50 {bp50:>7.0} µs  p99 {bp99:>7.0} µs  (own swtpm, no daemon)  CPU/op µs: swtpm {btc}\n\
             speedup           {speedup:.2}x (batched / one quote each)\n\
             ratio             {ratio:.2} (batched / raw TPM2_Sign)\n",
            clients = self.clients,
            seconds = self.seconds,
            ops = self.ops_per_s,
            p50 = self.p50_us,
            p99 = self.p99_us,
            q = self.quotes_per_authorization,
            c = self.tpm_commands_per_authorization,
            dc = us(self.daemon_cpu_us_per_op),
            tc = us(self.tpm_cpu_us_per_op),
            uops = self.unbatched_ops_per_s,
            up50 = self.unbatched_p50_us,
            up99 = self.unbatched_p99_us,
            uc = self.unbatched_tpm_commands_per_authorization,
            udc = us(self.unbatched_daemon_cpu_us_per_op),
            utc = us(self.unbatched_tpm_cpu_us_per_op),
            bops = self.baseline_ops_per_s,
            bp50 = self.baseline_p50_us,
            bp99 = self.baseline_p99_us,
            btc = us(self.baseline_tpm_cpu_us_per_op),
            speedup = self.speedup,
            ratio = self.ratio,
        )
    }
}
