//! `arictl bench authorize --backend tpm`: `payment.authorize` on a software TPM, once with
//! batched quotes and once with one quote per authorization, each on its own throwaway daemon
//! and software TPM, against raw TPM2_Sign on a third software TPM ([`raw_tpm_sign`]). The
//! daemon's TPM counters say how many quotes and commands an authorization cost.

use super::daemon::{Target, scratch};
use super::drive::{Workload, drive_measured};
use super::{BenchError, Figures, Plan, process, ratio, timed_loop};
use crate::protocol::call;
use crate::protocol::daemon::NoParams;
use crate::tools::swtpm::Swtpm;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::time::Duration;

/// Authorizations a daemon may cover with one quote in the batched run.
const QUOTE_BATCH: usize = 64;

/// Runs the batched and the unbatched daemon and the raw baseline at each of the plan's client
/// counts: one report per count.
pub fn run(plan: &Plan) -> Result<Vec<TpmReport>, BenchError> {
    let mut reports = Vec::new();
    for &clients in &plan.clients {
        let batched = one_run(plan, clients, QUOTE_BATCH)?;
        let unbatched = one_run(plan, clients, 1)?;
        plan.say(&format!(
            "raw TPM2_Sign on a software TPM of its own, {clients} threads for {} s ...",
            plan.seconds
        ));
        let scratch = scratch("tpm")?;
        let raw = raw_tpm_sign(&scratch, clients, plan.seconds);
        let _ = std::fs::remove_dir_all(&scratch);
        let raw = raw.map_err(BenchError::baseline("raw TPM signing"))?;
        reports.push(TpmReport::new(
            clients,
            plan.seconds,
            batched,
            unbatched,
            raw,
        ));
    }
    Ok(reports)
}

/// One daemon's run, on its own software TPM, with `quote_batch` authorizations per quote.
fn one_run(plan: &Plan, clients: usize, quote_batch: usize) -> Result<TpmRun, BenchError> {
    let target = Target::throwaway(
        plan,
        &[
            "--backend",
            "tpm",
            "--quote-batch",
            &quote_batch.to_string(),
        ],
    )?;
    target.check_clients(&[clients])?;
    let agent = target.bench_agent()?;
    let voucher = target.bench_voucher(&agent)?;
    let counters = || -> Result<(u64, u64), BenchError> {
        let s = target.admin::<call::AdminStatus>(&NoParams {})?;
        let c = s.tpm.map(|t| t.counters).unwrap_or_default();
        Ok((c.quotes, c.commands))
    };
    plan.say(&format!(
        "driving payment.authorize on swtpm ({}) with {clients} clients for {} s ...",
        if quote_batch > 1 {
            "batched quotes"
        } else {
            "one quote per authorization"
        },
        plan.seconds
    ));
    let pid = target.pid();
    let before = counters()?;
    let (figures, costs) = drive_measured(
        &target.layout.agent_socket,
        &Workload::Authorize(voucher),
        clients.max(1),
        plan.seconds,
        pid,
        pid.and_then(|p| process::child_named(p, "swtpm")),
    )?;
    let after = counters()?;
    Ok(TpmRun {
        figures,
        quotes: after.0.saturating_sub(before.0),
        commands: after.1.saturating_sub(before.1),
        daemon_cpu_us_per_op: costs.daemon_cpu_us_per_op,
        tpm_cpu_us_per_op: costs.tpm_cpu_us_per_op,
    })
}

/// Signs digests with TPM2_Sign on a software TPM started for the purpose in `dir` (a fresh
/// swtpm, a fresh key under its storage key), through the daemon's own TPM backend in this
/// process: the one thread that owns the TPM context, as in the daemon, with no socket, policy,
/// ledger or quote. `threads` callers queue on it for `seconds`. The returned CPU per operation
/// is the software TPM's.
pub fn raw_tpm_sign(dir: &Path, threads: usize, seconds: f64) -> Result<Figures, BenchError> {
    use crate::backend::Backend;
    use crate::backend::tpm::{TpmBackend, TpmOptions};
    let sim = Swtpm::start(&dir.join("tpm"))?;
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
    })?;
    let runtimes = (0..threads)
        .map(|_| tokio::runtime::Builder::new_current_thread().build())
        .collect::<Result<Vec<_>, _>>()?;
    let first = runtimes
        .first()
        .ok_or_else(|| BenchError::Missing("no runtime".into()))?;
    let key = first.block_on(backend.generate_key("ari-bench-raw".into()))?;
    // One sign outside the timing loads the key.
    first.block_on(backend.sign_digest(key.id.clone(), [0; 32]))?;
    let tpm = || sim.pid().and_then(process::Usage::of);
    let before = tpm();
    let mut figures = timed_loop(runtimes, Duration::from_secs_f64(seconds), |rt, n, i| {
        let digest: [u8; 32] = Sha256::digest(format!("raw-{n}-{i}").as_bytes()).into();
        rt.block_on(backend.sign_digest(key.id.clone(), digest))
            .map(drop)
    })?;
    if let (Some(a), Some(b)) = (before, tpm()) {
        figures.cpu_us_per_op = a.cpu_us_per_op(&b, figures.ops);
    }
    Ok(figures)
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
