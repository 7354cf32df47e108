//! `arictl bench log`: durable `evidence.record` (signed agent statements) over the socket:
//! entries per second, latency, checkpoints per batch and bytes per entry on disk, against raw
//! SQLite appends ([`super::sqlite`]) with the same durability and commits per entry, and the
//! floor the socket and the disk alone leave ([`LogFloor`]).
//!
//! Each client count gets its own baseline run, sized from that count's socket run (rows per
//! commit, bytes per row). The daemon's database is only read.

use super::daemon::Target;
use super::drive::{Workload, drive_measured};
use super::{BenchError, Costs, Figures, Plan, process, ratio, sqlite, sweep_header, sweep_row};
use crate::protocol::call;
use crate::protocol::daemon::NoParams;
use serde::Serialize;
use std::path::Path;
use std::time::Duration;

/// Runs `bench log` at each of the plan's client counts on one daemon: one report per count.
pub fn run(plan: &Plan) -> Result<Vec<LogReport>, BenchError> {
    let target = Target::open(plan)?;
    target.check_clients(&plan.clients)?;
    let pid = target.pid();
    let agent = target.bench_agent()?;
    let layout = &target.layout;
    let db = layout.dir.join("state/ari.db");
    let mut reports = Vec::new();
    for &clients in &plan.clients {
        plan.say(&format!(
            "driving evidence.record as agent {agent} with {clients} clients for {} s ...",
            plan.seconds
        ));
        let before = log_footprint(&db)?;
        let commits_before = daemon_group_commits(&target)?;
        let (figures, costs) = drive_measured(
            &layout.agent_socket,
            &Workload::Record,
            clients.max(1),
            plan.seconds,
            pid,
            None,
        )?;
        // Let the last checkpoint land before counting.
        std::thread::sleep(Duration::from_millis(300));
        let after = log_footprint(&db)?;
        let commits_after = daemon_group_commits(&target)?;
        let entries = after.0.saturating_sub(before.0);
        // Entries, not jobs: one job writes a whole batch of statements.
        let groups = commits_after.1 - commits_before.1;
        let entries_per_commit = if groups > 0.0 {
            entries as f64 / groups
        } else {
            0.0
        };
        let bytes_per_entry = after.2.saturating_sub(before.2) as f64 / entries.max(1) as f64;
        let group = (entries_per_commit.round() as usize).max(1);
        let row_bytes = (bytes_per_entry.round() as usize).max(1);
        plan.say(&format!(
            "raw SQLite appends, {group} rows of {row_bytes} bytes per commit, for {} s ...",
            plan.seconds
        ));
        let scratch = layout
            .dir
            .join(format!("bench-raw-{}.db", std::process::id()));
        // The client threads are done: the process's CPU is now the baseline's.
        let cpu_before = process::Usage::current();
        let raw = sqlite::raw_append(&scratch, row_bytes, group, plan.seconds)
            .map_err(BenchError::baseline("raw SQLite appends"))?;
        let baseline_cpu = cpu_before
            .zip(process::Usage::current())
            .and_then(|(a, b)| a.cpu_us_per_op(&b, raw.ops))
            .unwrap_or(0.0);
        plan.say(&format!(
            "floor: agent.identity with {clients} clients for {} s ...",
            plan.seconds
        ));
        let floor = drive_measured(
            &layout.agent_socket,
            &Workload::Identity,
            clients.max(1),
            plan.seconds,
            pid,
            None,
        )?;
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        reports.push(LogReport {
            clients,
            seconds: plan.seconds,
            ops_per_s: figures.ops_per_s,
            p50_us: figures.p50_us,
            p99_us: figures.p99_us,
            entries,
            checkpoints: after.1.saturating_sub(before.1),
            bytes_per_entry,
            group_commits: groups.max(0.0) as u64,
            entries_per_commit,
            baseline_group: group,
            baseline_row_bytes: row_bytes,
            baseline_ops_per_s: raw.ops_per_s,
            baseline_p50_us: raw.p50_us,
            baseline_p99_us: raw.p99_us,
            ratio: ratio(figures.ops_per_s, raw.ops_per_s),
            costs,
            floor: LogFloor::new((&floor.0, &floor.1), baseline_cpu, cores),
        });
    }
    Ok(reports)
}

/// The ledger writer's (jobs, group commits) so far, from the daemon's `admin.metrics`.
fn daemon_group_commits(target: &Target) -> Result<(f64, f64), BenchError> {
    let v = target.admin::<call::AdminMetrics>(&NoParams {})?;
    group_commits(&v.text).ok_or(BenchError::Answer(
        "the daemon's metrics have no ledger group commits",
    ))
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
    let size = crate::ledger::log::size(&conn)?;
    let checkpoints: i64 =
        conn.query_row("SELECT count(*) FROM evidence_checkpoint", [], |r| r.get(0))?;
    let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    let free: i64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
    let page: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    let bytes = u64::try_from((pages - free) * page).unwrap_or(0);
    Ok((size, u64::try_from(checkpoints).unwrap_or(0), bytes))
}
