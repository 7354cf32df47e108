//! What the daemon counts and times, for `arictl metrics` (Prometheus text exposition).
//!
//! One process-wide set of metrics: the socket servers count calls per method and outcome, the
//! key stores time each operation on their own threads (queue wait included, since that is what
//! a caller feels), and the ledger records how many jobs each group commit carried and how long
//! the commit took. Gauges that describe state (queue depths, agents, log size, uptime) are set
//! when the metrics are read, not kept up to date on every change.
//!
//! Label values come from fixed tables (method names, error reasons, backend operations), never
//! from what a client sent, so a hostile client cannot make the label sets grow.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use std::sync::LazyLock;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

/// A call's method and how it ended (`ok` or the error's stable reason).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    /// JSON-RPC method name, or `unknown` for a name the daemon does not serve.
    pub method: &'static str,
    /// `ok` or an error reason from the protocol's table.
    pub outcome: &'static str,
}

/// A key store operation and how it ended.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BackendLabels {
    /// `pkcs11` or `tpm`.
    pub backend: &'static str,
    /// `sign`, `quote`, `generate`, ...
    pub operation: &'static str,
    /// `ok`, `busy` or `error`.
    pub outcome: &'static str,
}

macro_rules! one_label {
    ($(#[$doc:meta])* $name:ident, $field:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
        pub struct $name {
            /// The label's value.
            pub $field: &'static str,
        }
    };
}

one_label!(
    /// Which socket: `agent` or `admin`.
    SocketLabel,
    socket
);
one_label!(
    /// Which work queue: `backend` or `ledger`.
    QueueLabel,
    queue
);
one_label!(
    /// An agent status.
    StatusLabel,
    status
);
one_label!(
    /// `ok` or `failed`.
    OutcomeLabel,
    outcome
);

/// Everything the daemon measures.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<CallLabels, Counter>,
    request_seconds: Family<CallLabels, Histogram>,
    backend_seconds: Family<BackendLabels, Histogram>,
    commit_jobs: Histogram,
    commit_seconds: Histogram,
    connections: Family<SocketLabel, Gauge>,
    refused_busy: Family<SocketLabel, Counter>,
    refused_uid_share: Family<SocketLabel, Counter>,
    reloads: Family<OutcomeLabel, Counter>,
    /// Set when read: queue depths, by queue.
    pub queue_depth: Family<QueueLabel, Gauge>,
    /// Set when read: agents, by status.
    pub agents: Family<StatusLabel, Gauge>,
    /// Set when read: entries in the evidence log.
    pub log_entries: Gauge,
    /// Set when read: entries covered by the newest signed checkpoint.
    pub checkpoint_size: Gauge,
    /// Set when read: seconds since the daemon started.
    pub uptime: Gauge<f64, AtomicU64>,
}

fn latency() -> Histogram {
    // 50 µs to about 1.6 s.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("ari");
        let m = Self {
            registry: Registry::default(),
            requests: Family::default(),
            request_seconds: Family::new_with_constructor(latency),
            backend_seconds: Family::new_with_constructor(latency),
            commit_jobs: Histogram::new(exponential_buckets(1.0, 2.0, 9)),
            commit_seconds: latency(),
            connections: Family::default(),
            refused_busy: Family::default(),
            refused_uid_share: Family::default(),
            reloads: Family::default(),
            queue_depth: Family::default(),
            agents: Family::default(),
            log_entries: Gauge::default(),
            checkpoint_size: Gauge::default(),
            uptime: Gauge::default(),
        };
        registry.register(
            "requests",
            "Calls answered, by method and outcome",
            m.requests.clone(),
        );
        registry.register_with_unit(
            "request_duration",
            "Time from a parsed call to its answer, by method and outcome",
            Unit::Seconds,
            m.request_seconds.clone(),
        );
        registry.register_with_unit(
            "backend_operation_duration",
            "Key store operations, queue wait included, by backend, operation and outcome",
            Unit::Seconds,
            m.backend_seconds.clone(),
        );
        registry.register(
            "ledger_group_commit_jobs",
            "Jobs carried by each ledger group commit",
            m.commit_jobs.clone(),
        );
        registry.register_with_unit(
            "ledger_group_commit_duration",
            "Time to run and durably commit one ledger group",
            Unit::Seconds,
            m.commit_seconds.clone(),
        );
        registry.register(
            "connections",
            "Open client connections, by socket",
            m.connections.clone(),
        );
        registry.register(
            "in_flight_refusals",
            "Calls answered busy unrun because their connection had the most calls in flight, by socket",
            m.refused_busy.clone(),
        );
        registry.register(
            "uid_share_refusals",
            "Connections answered busy and closed at once because their uid held its share of the socket, by socket",
            m.refused_uid_share.clone(),
        );
        registry.register(
            "config_reloads",
            "Configuration reloads (SIGHUP), by outcome",
            m.reloads.clone(),
        );
        registry.register(
            "queue_depth",
            "Work waiting for a worker thread, by queue",
            m.queue_depth.clone(),
        );
        registry.register("agents", "Agents, by status", m.agents.clone());
        registry.register(
            "evidence_log_entries",
            "Entries in the evidence log",
            m.log_entries.clone(),
        );
        registry.register(
            "evidence_checkpoint_size",
            "Entries covered by the newest signed checkpoint",
            m.checkpoint_size.clone(),
        );
        registry.register_with_unit(
            "uptime",
            "Time since the daemon started",
            Unit::Seconds,
            m.uptime.clone(),
        );
        Self { registry, ..m }
    }

    /// Counts and times one answered call.
    pub fn call(&self, method: &'static str, outcome: &'static str, took: Duration) {
        let labels = CallLabels { method, outcome };
        self.requests.get_or_create(&labels).inc();
        self.request_seconds
            .get_or_create(&labels)
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
            .get_or_create(&BackendLabels {
                backend,
                operation,
                outcome,
            })
            .observe(took.as_secs_f64());
    }

    /// Records one group commit.
    pub fn group_commit(&self, jobs: usize, took: Duration) {
        self.commit_jobs.observe(jobs as f64);
        self.commit_seconds.observe(took.as_secs_f64());
    }

    /// A connection opened (`+1`) or closed (`-1`) on `socket`.
    pub fn connection(&self, socket: &'static str, delta: i64) {
        self.connections
            .get_or_create(&SocketLabel { socket })
            .inc_by(delta);
    }

    /// A call arrived on `socket` while its connection was at the in-flight cap and was
    /// answered `busy` without running.
    pub fn refused_busy(&self, socket: &'static str) {
        self.refused_busy
            .get_or_create(&SocketLabel { socket })
            .inc();
    }

    /// A connection on `socket` was refused because its uid held
    /// `limits.max_connections_per_uid` there already.
    pub fn refused_uid_share(&self, socket: &'static str) {
        self.refused_uid_share
            .get_or_create(&SocketLabel { socket })
            .inc();
    }

    /// A reload finished with `outcome` (`ok` or `failed`).
    pub fn reload(&self, outcome: &'static str) {
        self.reloads.get_or_create(&OutcomeLabel { outcome }).inc();
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn calls_and_commits_show_in_the_exposition() {
        let m = Metrics::new();
        m.call("payment.authorize", "ok", Duration::from_micros(700));
        m.call(
            "payment.authorize",
            "budget_exceeded",
            Duration::from_micros(300),
        );
        m.group_commit(12, Duration::from_millis(1));
        m.connection("agent", 1);
        let text = m.render();
        assert!(text.contains("ari_requests_total{method=\"payment.authorize\",outcome=\"ok\"} 1"));
        assert!(text.contains("# TYPE ari_request_duration_seconds histogram"));
        assert!(text.contains("ari_ledger_group_commit_jobs_sum 12.0"));
        assert!(text.contains("ari_connections{socket=\"agent\"} 1"));
    }
}
