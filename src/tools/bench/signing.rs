//! `arictl bench attest` and `bench authorize` on a PKCS#11 token: `agent.attest`, or durable
//! `payment.authorize` on an L5 voucher whose budget cannot run out, over the socket, against
//! raw signing on the same token and key.
//!
//! The baseline runs in a separate process ([`RawJob`]: SoftHSM reads `SOFTHSM2_CONF` at load
//! time, and this process must not change its own environment) that signs SHA-256 digests with
//! `CKM_ECDSA` on the agent's key, one thread per core with a long-lived session each: the best
//! the token can do with no daemon in the way. A sweep of client counts runs on one daemon
//! against one baseline run.

use super::daemon::Target;
use super::drive::{Workload, drive_measured};
use super::{
    BenchError, Costs, Figures, Plan, process, ratio, sweep_header, sweep_row, timed_loop,
};
use crate::backend::pkcs11;
use crate::tools::dev;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The method a signing bench drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `agent.attest`.
    Attest,
    /// `payment.authorize` on an L5 voucher.
    Authorize,
}

/// Drives `method` at each of the plan's client counts on one daemon, then runs the raw
/// signing baseline once: one report per client count.
pub fn run(plan: &Plan, method: Method) -> Result<Vec<Report>, BenchError> {
    let target = Target::open(plan)?;
    target.check_clients(&plan.clients)?;
    let pid = target.pid();
    let agent = target.bench_agent()?;
    let workload = match method {
        Method::Attest => Workload::Attest,
        Method::Authorize => Workload::Authorize(target.bench_voucher(&agent)?),
    };
    let mut socket = Vec::new();
    for &clients in &plan.clients {
        plan.say(&format!(
            "driving {} as agent {agent} with {clients} clients for {} s ...",
            workload.method(),
            plan.seconds
        ));
        let run = drive_measured(
            &target.layout.agent_socket,
            &workload,
            clients.max(1),
            plan.seconds,
            pid,
            None,
        )?;
        socket.push((clients, run));
    }
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    plan.say(&format!(
        "raw CKM_ECDSA signing with {threads} threads for {} s ...",
        plan.seconds
    ));
    let job = RawJob {
        state_dir: target.layout.dir.clone(),
        key_label: format!("ari-agent:{agent}"),
        threads,
        seconds: plan.seconds,
    };
    let raw = job.spawn(&plan.program, &target.layout.softhsm_conf)?;
    Ok(socket
        .into_iter()
        .map(|(clients, run)| {
            Report::new(
                workload.method().name(),
                clients,
                plan.seconds,
                run,
                raw,
                threads,
            )
        })
        .collect())
}

/// The raw signing baseline's work: sign with the agent key of a dev directory's token.
#[derive(Debug, Clone, PartialEq)]
pub struct RawJob {
    /// The dev directory (its PIN file and token).
    pub state_dir: PathBuf,
    /// The label of the private key to sign with.
    pub key_label: String,
    /// Signing threads, one session each.
    pub threads: usize,
    /// Seconds to sign for.
    pub seconds: f64,
}

impl RawJob {
    /// Runs the job in a child process, `program bench raw ...` with the token's SoftHSM
    /// configuration, and reads the figures it prints.
    pub fn spawn(&self, program: &Path, softhsm_conf: &Path) -> Result<Figures, BenchError> {
        let out = std::process::Command::new(program)
            .args(["bench", "raw", "--state-dir"])
            .arg(&self.state_dir)
            .args(["--key-label", &self.key_label])
            .args([
                "--threads",
                &self.threads.to_string(),
                "--seconds",
                &self.seconds.to_string(),
            ])
            .env("SOFTHSM2_CONF", softhsm_conf)
            .output()?;
        if !out.status.success() {
            return Err(BenchError::RawSigner {
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        Ok(serde_json::from_slice(&out.stdout)?)
    }

    /// Runs the job in this process (the child [`RawJob::spawn`] starts), which must have been
    /// started with the token's `SOFTHSM2_CONF`.
    pub fn run_here(&self) -> Result<Figures, BenchError> {
        let layout = dev::DevLayout::new(&self.state_dir)?;
        let module = dev::check_softhsm()?;
        raw_sign(
            &module,
            dev::DEV_TOKEN_LABEL,
            &layout.pin,
            &self.key_label,
            self.threads,
            self.seconds,
        )
    }
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
) -> Result<Figures, BenchError> {
    let ctx = pkcs11::load_module(module)?;
    let slot = pkcs11::find_token(&ctx, token_label)?
        .ok_or_else(|| BenchError::Missing(format!("no token {token_label:?}")))?;
    let pin = pkcs11::read_pin(&pkcs11::PinSource::File(pin_file.into()))?;
    let mut sessions = Vec::new();
    for _ in 0..threads.max(1) {
        sessions.push(ctx.open_rw_session(slot)?);
    }
    let first = sessions
        .first()
        .ok_or_else(|| BenchError::Missing("no session".into()))?;
    first.login(cryptoki::session::UserType::User, Some(&pin))?;
    let key = first
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Label(key_label.as_bytes().to_vec()),
        ])?
        .first()
        .copied()
        .ok_or_else(|| BenchError::Missing(format!("no private key labelled {key_label:?}")))?;
    let before = process::Usage::current();
    let mut figures = timed_loop(
        sessions,
        Duration::from_secs_f64(seconds),
        |session, n, i| {
            let digest = Sha256::digest(format!("raw-{n}-{i}").as_bytes());
            session.sign(&Mechanism::Ecdsa, key, &digest).map(drop)
        },
    )?;
    if let (Some(a), Some(b)) = (before, process::Usage::current()) {
        figures.cpu_us_per_op = a.cpu_us_per_op(&b, figures.ops);
    }
    Ok(figures)
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
