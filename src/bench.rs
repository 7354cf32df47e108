//! `arictl bench attest` and `arictl bench authorize`: how fast the daemon answers
//! `agent.attest`, or a durable `payment.authorize`, compared with raw signing on the same token.
//!
//! The socket side runs N client threads, each with its own connection, calling the method back
//! to back for the given time (for `authorize`: distinct checkouts against one L5 voucher whose
//! budget cannot run out, so every call is a committed debit and a signature). The baseline runs in a separate process (SoftHSM reads
//! `SOFTHSM2_CONF` at load time) that signs SHA-256 digests with `CKM_ECDSA` on the same key,
//! one thread per core with a long-lived session each: the best the token can do with no daemon
//! in the way. Figures are printed, never asserted.

use crate::backend::pkcs11;
use crate::client::{Client, ClientError};
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
}

impl Workload {
    /// The method name.
    pub fn method(&self) -> &'static str {
        match self {
            Self::Attest => "agent.attest",
            Self::Authorize(_) => "payment.authorize",
        }
    }

    fn params(&self, n: usize, i: u64) -> serde_json::Value {
        let nonce = format!("bench-{n:04}-{i:012}");
        match self {
            Self::Attest => serde_json::json!({ "nonce": nonce }),
            Self::Authorize(voucher) => serde_json::json!({
                "voucher": voucher,
                "payment": {
                    "amount": 1, "currency": "CNY", "payee": "bench.example",
                    "transaction_id": format!("tx-{nonce}"),
                },
                "aud": "bench.example",
                "nonce": nonce,
            }),
        }
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
    let deadline_in = Duration::from_secs_f64(seconds);
    let mut conns = Vec::with_capacity(clients);
    for n in 0..clients {
        let mut c = Client::connect(agent_socket)?;
        c.call(workload.method(), workload.params(n, u64::MAX))?;
        conns.push(c);
    }
    timed_loop(conns, deadline_in, |c, n, i| {
        c.call_unparsed(workload.method(), workload.params(n, i))
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
    timed_loop(
        sessions,
        Duration::from_secs_f64(seconds),
        |session, n, i| {
            let digest = Sha256::digest(format!("raw-{n}-{i}").as_bytes());
            session
                .sign(&Mechanism::Ecdsa, key, &digest)
                .map(drop)
                .map_err(|e| e.to_string())
        },
    )
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

/// The report of one `bench attest` or `bench authorize` run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The method measured.
    pub method: &'static str,
    /// Client threads.
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
    /// `ops_per_s / baseline_ops_per_s`.
    pub ratio: f64,
}

impl Report {
    /// Combines the two sides.
    pub fn new(
        method: &'static str,
        clients: usize,
        seconds: f64,
        socket: Figures,
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
            ratio: if raw.ops_per_s > 0.0 {
                socket.ops_per_s / raw.ops_per_s
            } else {
                0.0
            },
        }
    }

    /// The human-readable report.
    pub fn text(&self) -> String {
        format!(
            "{method:<17} over the socket {clients:>3} clients  {ops:>9.0} ops/s  p50 {p50:>7.0} µs  p99 {p99:>7.0} µs\n\
             raw CKM_ECDSA in process      {threads:>3} threads  {bops:>9.0} ops/s  p50 {bp50:>7.0} µs  p99 {bp99:>7.0} µs\n\
             ratio (socket / raw)          {ratio:.2}\n",
            method = self.method,
            clients = self.clients,
            ops = self.ops_per_s,
            p50 = self.p50_us,
            p99 = self.p99_us,
            threads = self.baseline_threads,
            bops = self.baseline_ops_per_s,
            bp50 = self.baseline_p50_us,
            bp99 = self.baseline_p99_us,
            ratio = self.ratio,
        )
    }
}
