//! What the daemon counts and times, for `arictl metrics`.
//!
//! The exposition is the Prometheus text format (version 0.0.4), the one a node_exporter
//! textfile collector, `promtool check metrics` and Prometheus's own scrape parser read: every
//! family has its `# HELP` and `# TYPE` lines under the name its samples carry (counters end in
//! `_total`, durations in `_seconds`). It is not OpenMetrics: no `# EOF`, no `# UNIT`.
//!
//! One process-wide set of metrics: the socket servers count calls per method and outcome, the
//! key stores time each operation on their own threads (queue wait included, since that is what
//! a caller feels), and the ledger records how many jobs each group commit carried and how long
//! the commit took. Gauges that describe state (queue depths, agents, log size, uptime) are set
//! when the metrics are read, not kept up to date on every change.
//!
//! Label values come from fixed tables (method names, error reasons, backend operations), never
//! from what a client sent, so a hostile client cannot make the label sets grow.

use prometheus::core::Collector;
use prometheus::{
    Gauge, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use std::sync::LazyLock;
use std::time::Duration;

/// Everything the daemon measures.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    request_seconds: HistogramVec,
    backend_seconds: HistogramVec,
    commit_jobs: Histogram,
    commit_seconds: Histogram,
    connections: IntGaugeVec,
    refused_busy: IntCounterVec,
    refused_uid_share: IntCounterVec,
    reloads: IntCounterVec,
    queue_depth: IntGaugeVec,
    agents: IntGaugeVec,
    log_entries: IntGauge,
    checkpoint_size: IntGauge,
    uptime: Gauge,
}

/// 50 µs to about 1.6 s, doubling.
fn latency_buckets() -> prometheus::Result<Vec<f64>> {
    prometheus::exponential_buckets(0.000_05, 2.0, 16)
}

/// Jobs per group commit: 1 to 256, doubling.
fn job_buckets() -> prometheus::Result<Vec<f64>> {
    prometheus::exponential_buckets(1.0, 2.0, 9)
}

/// Builds one collector and registers it. The names, label names and buckets are this file's
/// constants, each registered once, so a failure here is a programming error caught by the
/// unit test below, not something an operator can cause.
fn add<C: Collector + Clone + 'static>(
    registry: &Registry,
    made: prometheus::Result<C>,
) -> prometheus::Result<C> {
    let collector = made?;
    registry.register(Box::new(collector.clone()))?;
    Ok(collector)
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help).namespace("ari")
}

fn histogram(name: &str, help: &str, buckets: Vec<f64>) -> HistogramOpts {
    HistogramOpts::new(name, help)
        .namespace("ari")
        .buckets(buckets)
}

impl Metrics {
    fn new() -> prometheus::Result<Self> {
        let r = Registry::new();
        const CALL: &[&str] = &["method", "outcome"];
        const SOCKET: &[&str] = &["socket"];
        Ok(Self {
            requests: add(
                &r,
                IntCounterVec::new(
                    opts("requests_total", "Calls answered, by method and outcome"),
                    CALL,
                ),
            )?,
            request_seconds: add(
                &r,
                HistogramVec::new(
                    histogram(
                        "request_duration_seconds",
                        "Time from a parsed call to its answer, by method and outcome",
                        latency_buckets()?,
                    ),
                    CALL,
                ),
            )?,
            backend_seconds: add(
                &r,
                HistogramVec::new(
                    histogram(
                        "backend_operation_duration_seconds",
                        "Key store operations, queue wait included, by backend, operation and outcome",
                        latency_buckets()?,
                    ),
                    &["backend", "operation", "outcome"],
                ),
            )?,
            commit_jobs: add(
                &r,
                Histogram::with_opts(histogram(
                    "ledger_group_commit_jobs",
                    "Jobs carried by each ledger group commit",
                    job_buckets()?,
                )),
            )?,
            commit_seconds: add(
                &r,
                Histogram::with_opts(histogram(
                    "ledger_group_commit_duration_seconds",
                    "Time to run and durably commit one ledger group",
                    latency_buckets()?,
                )),
            )?,
            connections: add(
                &r,
                IntGaugeVec::new(
                    opts("connections", "Open client connections, by socket"),
                    SOCKET,
                ),
            )?,
            refused_busy: add(
                &r,
                IntCounterVec::new(
                    opts(
                        "in_flight_refusals_total",
                        "Calls answered busy unrun because their connection had the most calls in flight, by socket",
                    ),
                    SOCKET,
                ),
            )?,
            refused_uid_share: add(
                &r,
                IntCounterVec::new(
                    opts(
                        "uid_share_refusals_total",
                        "Connections answered busy and closed at once because their uid held its share of the socket, by socket",
                    ),
                    SOCKET,
                ),
            )?,
            reloads: add(
                &r,
                IntCounterVec::new(
                    opts(
                        "config_reloads_total",
                        "Configuration reloads (SIGHUP), by outcome",
                    ),
                    &["outcome"],
                ),
            )?,
            queue_depth: add(
                &r,
                IntGaugeVec::new(
                    opts("queue_depth", "Work waiting for a worker thread, by queue"),
                    &["queue"],
                ),
            )?,
            agents: add(
                &r,
                IntGaugeVec::new(opts("agents", "Agents, by status"), &["status"]),
            )?,
            log_entries: add(
                &r,
                IntGauge::with_opts(opts("evidence_log_entries", "Entries in the evidence log")),
            )?,
            checkpoint_size: add(
                &r,
                IntGauge::with_opts(opts(
                    "evidence_checkpoint_size",
                    "Entries covered by the newest signed checkpoint",
                )),
            )?,
            uptime: add(
                &r,
                Gauge::with_opts(opts("uptime_seconds", "Time since the daemon started")),
            )?,
            registry: r,
        })
    }

    /// Counts and times one answered call.
    pub fn call(&self, method: &'static str, outcome: &'static str, took: Duration) {
        let labels = [method, outcome];
        self.requests.with_label_values(&labels).inc();
        self.request_seconds
            .with_label_values(&labels)
            .observe(took.as_secs_f64());
    }

    /// Times one key store operation.
    pub fn backend_op(
        &self,
        backend: &'static str,
        operation: &'static str,
        outcome: &'static str,
        took: Duration,
    ) {
        self.backend_seconds
            .with_label_values(&[backend, operation, outcome])
            .observe(took.as_secs_f64());
    }

    /// Records one group commit.
    pub fn group_commit(&self, jobs: usize, took: Duration) {
        self.commit_jobs.observe(jobs as f64);
        self.commit_seconds.observe(took.as_secs_f64());
    }

    /// A connection opened (`+1`) or closed (`-1`) on `socket`.
    pub fn connection(&self, socket: &'static str, delta: i64) {
        self.connections.with_label_values(&[socket]).add(delta);
    }

    /// A call arrived on `socket` while its connection was at the in-flight cap and was
    /// answered `busy` without running.
    pub fn refused_busy(&self, socket: &'static str) {
        self.refused_busy.with_label_values(&[socket]).inc();
    }

    /// A connection on `socket` was refused because its uid held
    /// `limits.max_connections_per_uid` there already.
    pub fn refused_uid_share(&self, socket: &'static str) {
        self.refused_uid_share.with_label_values(&[socket]).inc();
    }

    /// A reload finished with `outcome` (`ok` or `failed`).
    pub fn reload(&self, outcome: &'static str) {
        self.reloads.with_label_values(&[outcome]).inc();
    }

    /// Sets the state gauges, just before the metrics are read.
    pub fn set_state(&self, state: &State<'_>) {
        let clamp = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.log_entries.set(clamp(state.log_entries));
        self.checkpoint_size.set(clamp(state.checkpoint_size));
        for &(queue, waiting) in state.queues {
            self.queue_depth
                .with_label_values(&[queue])
                .set(clamp(waiting));
        }
        for &(status, count) in state.agents {
            self.agents.with_label_values(&[status]).set(clamp(count));
        }
        self.uptime.set(state.uptime.as_secs_f64());
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // The text encoder fails only on a family without a metric or of an unknown type,
        // neither of which this registry can hold.
        let _ = TextEncoder::new().encode_utf8(&self.registry.gather(), &mut out);
        out
    }
}

/// The daemon's state as the gauges show it, gathered when the metrics are read.
#[derive(Debug)]
pub struct State<'a> {
    /// Entries in the evidence log.
    pub log_entries: u64,
    /// Entries covered by the newest signed checkpoint (0 before the first).
    pub checkpoint_size: u64,
    /// Work waiting, by queue (`backend`, `ledger`).
    pub queues: &'a [(&'static str, u64)],
    /// Agents, by status.
    pub agents: &'a [(&'static str, u64)],
    /// Time since the daemon started.
    pub uptime: Duration,
}

#[expect(
    clippy::expect_used,
    reason = "the definitions are this file's constants, checked by the unit test below"
)]
static METRICS: LazyLock<Metrics> =
    LazyLock::new(|| Metrics::new().expect("the metric definitions are valid"));

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_family_has_help_and_type_under_its_sample_name() {
        let m = Metrics::new().unwrap();
        m.call("payment.authorize", "ok", Duration::from_micros(700));
        m.call(
            "payment.authorize",
            "budget_exceeded",
            Duration::from_micros(300),
        );
        m.backend_op("pkcs11", "sign", "ok", Duration::from_micros(400));
        m.group_commit(12, Duration::from_millis(1));
        m.connection("agent", 1);
        m.refused_busy("agent");
        m.refused_uid_share("admin");
        m.reload("ok");
        m.set_state(&State {
            log_entries: 7,
            checkpoint_size: 5,
            queues: &[("backend", 0), ("ledger", 1)],
            agents: &[("active", 2)],
            uptime: Duration::from_secs(3),
        });
        let text = m.render();
        assert!(text.contains("ari_requests_total{method=\"payment.authorize\",outcome=\"ok\"} 1"));
        assert!(text.contains("# TYPE ari_requests_total counter"));
        assert!(text.contains("# TYPE ari_request_duration_seconds histogram"));
        assert!(text.contains("ari_ledger_group_commit_jobs_sum 12"));
        assert!(text.contains("ari_connections{socket=\"agent\"} 1"));
        assert!(!text.contains("# EOF"), "Prometheus text, not OpenMetrics");

        // Each sample's family (its name, less a histogram's suffix) was introduced by HELP
        // and TYPE lines under exactly that name.
        let mut described = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let name = rest.split(' ').next().unwrap();
                assert!(
                    text.contains(&format!("# HELP {name} ")),
                    "{name} has no help"
                );
                described.insert(name.to_owned());
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s).filter(|f| described.contains(*f)))
                    .unwrap_or(name);
                assert!(described.contains(family), "{name} has no TYPE line");
            }
        }
        assert_eq!(described.len(), 14, "every family shows once used:\n{text}");
    }
}
