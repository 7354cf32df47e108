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
    /// `evidence.record`: a signed agent statement, one durable entry per call.
    Record,
}

impl Workload {
    /// The method name.
    pub fn method(&self) -> &'static str {
        match self {
            Self::Attest => "agent.attest",
            Self::Authorize(_) => "payment.authorize",
            Self::Record => "evidence.record",
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
            Self::Record => serde_json::json!({
                "kind": "offer.chosen",
                "body": {"offer": nonce, "price": 1999, "currency": "CNY",
                         "why": "cheapest of three offers in stock"},
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

/// What `bench log` measured.
#[derive(Debug, Clone, Serialize)]
pub struct LogReport {
    /// Client threads.
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
}

impl LogReport {
    /// The human-readable report.
    pub fn text(&self) -> String {
        format!(
            "evidence.record  {clients:>3} clients  {ops:>9.0} entries/s  p50 {p50:>7.0} µs  p99 {p99:>7.0} µs\n\
             {entries} entries, {cps} checkpoints ({per:.1} entries per checkpoint), {bytes:.0} bytes per entry on disk\n",
            clients = self.clients,
            ops = self.ops_per_s,
            p50 = self.p50_us,
            p99 = self.p99_us,
            entries = self.entries,
            cps = self.checkpoints,
            per = self.entries as f64 / (self.checkpoints.max(1)) as f64,
            bytes = self.bytes_per_entry,
        )
    }
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
    /// Median time to generate one inclusion proof from SQLite, microseconds.
    pub inclusion_p50_us: f64,
    /// 99th percentile, microseconds.
    pub inclusion_p99_us: f64,
    /// Median time for a consistency proof between two random sizes, microseconds.
    pub consistency_p50_us: f64,
    /// 99th percentile, microseconds.
    pub consistency_p99_us: f64,
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
             inclusion proof    p50 {ip50:>7.1} µs  p99 {ip99:>7.1} µs  ({proofs} proofs, up to {hashes} hashes)\n\
             consistency proof  p50 {cp50:>7.1} µs  p99 {cp99:>7.1} µs\n",
            n = self.entries,
            build = self.build_entries_per_s,
            bytes = self.bytes_per_entry,
            ip50 = self.inclusion_p50_us,
            ip99 = self.inclusion_p99_us,
            proofs = self.proofs,
            hashes = self.proof_hashes,
            cp50 = self.consistency_p50_us,
            cp99 = self.consistency_p99_us,
        )
    }
}

/// Builds a log of `entries` payment-sized entries in a fresh database under `dir`, then times
/// inclusion and consistency proofs read from it. Every proof is checked against the root.
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
    let nodes = log::StoredNodes(&conn);
    let root = tree::root(&nodes, entries).map_err(|x| x.to_string())?;
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n.max(1)
    };
    let (mut inclusion, mut consistency) = (Vec::new(), Vec::new());
    let mut longest = 0;
    for _ in 0..samples {
        let index = next(entries);
        let t = Instant::now();
        let proof = tree::inclusion_proof(&nodes, index, entries).map_err(|x| x.to_string())?;
        inclusion.push(t.elapsed().as_secs_f64() * 1e6);
        longest = longest.max(proof.len());
        let leaf = tree::Nodes::node(&nodes, 0, index).map_err(|x| x.to_string())?;
        if !tree::verify_inclusion(index, entries, &leaf, &proof, &root) {
            return Err(format!(
                "the inclusion proof of entry {index} does not verify"
            ));
        }
        let old = 1 + next(entries - 1);
        let t = Instant::now();
        let proof = tree::consistency_proof(&nodes, old, entries).map_err(|x| x.to_string())?;
        consistency.push(t.elapsed().as_secs_f64() * 1e6);
        let old_root = tree::root(&nodes, old).map_err(|x| x.to_string())?;
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
    let pick = |v: &mut Vec<f64>, q: f64| {
        v.sort_by(f64::total_cmp);
        let i = ((v.len() as f64 - 1.0) * q).round() as usize;
        v.get(i).copied().unwrap_or(0.0)
    };
    Ok(ProofReport {
        entries,
        build_entries_per_s: build,
        proofs: samples,
        inclusion_p50_us: pick(&mut inclusion, 0.5),
        inclusion_p99_us: pick(&mut inclusion, 0.99),
        consistency_p50_us: pick(&mut consistency, 0.5),
        consistency_p99_us: pick(&mut consistency, 0.99),
        proof_hashes: longest,
        bytes_per_entry: (pages * page) as f64 / entries.max(1) as f64,
    })
}

/// What `bench authorize --backend tpm` measured: batched quotes against one quote per
/// authorization, each on its own daemon and software TPM.
#[derive(Debug, Clone, Serialize)]
pub struct TpmReport {
    /// Client threads.
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
    /// Authorizations per second with one quote each.
    pub unbatched_ops_per_s: f64,
    /// Median latency with one quote each.
    pub unbatched_p50_us: f64,
    /// p99 latency with one quote each.
    pub unbatched_p99_us: f64,
    /// TPM commands per authorization with one quote each.
    pub unbatched_tpm_commands_per_authorization: f64,
    /// `ops_per_s / unbatched_ops_per_s`.
    pub speedup: f64,
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
}

impl TpmReport {
    /// Combines the batched and the unbatched run.
    pub fn new(clients: usize, seconds: f64, batched: TpmRun, unbatched: TpmRun) -> Self {
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
            unbatched_ops_per_s: unbatched.figures.ops_per_s,
            unbatched_p50_us: unbatched.figures.p50_us,
            unbatched_p99_us: unbatched.figures.p99_us,
            unbatched_tpm_commands_per_authorization: per(unbatched.commands, &unbatched),
            speedup: if unbatched.figures.ops_per_s > 0.0 {
                batched.figures.ops_per_s / unbatched.figures.ops_per_s
            } else {
                0.0
            },
        }
    }

    /// The human-readable report.
    pub fn text(&self) -> String {
        format!(
            "payment.authorize on swtpm, {clients} clients, {seconds} s per run\n\
             batched quotes    {ops:>8.0} ops/s  p50 {p50:>7.0} µs  p99 {p99:>7.0} µs  {q:.3} quotes/auth  {c:.3} TPM commands/auth\n\
             one quote each    {uops:>8.0} ops/s  p50 {up50:>7.0} µs  p99 {up99:>7.0} µs  1.000 quotes/auth  {uc:.3} TPM commands/auth\n\
             speedup           {speedup:.2}x\n",
            clients = self.clients,
            seconds = self.seconds,
            ops = self.ops_per_s,
            p50 = self.p50_us,
            p99 = self.p99_us,
            q = self.quotes_per_authorization,
            c = self.tpm_commands_per_authorization,
            uops = self.unbatched_ops_per_s,
            up50 = self.unbatched_p50_us,
            up99 = self.unbatched_p99_us,
            uc = self.unbatched_tpm_commands_per_authorization,
            speedup = self.speedup,
        )
    }
}
