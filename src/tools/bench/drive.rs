//! The socket side of a bench: client connections calling one method back to back on the
//! agent socket, with each call's latency and what the daemon, its software TPM and the driving
//! process spent over the timed run.
//!
//! Every call is a fresh one: nonces and checkouts never repeat within a process, so a sweep can
//! run again on the same voucher. Nothing here judges a figure; a failed call fails the run.

use super::{Costs, Figures, process};
use crate::client::{Client, ClientError};
use crate::protocol::agent::AttestParams;
use crate::protocol::daemon::NoParams;
use crate::protocol::evidence::RecordParams;
use crate::protocol::payment::{AuthorizeParams, PaymentParams};
use crate::protocol::{Method, call};
use serde::Serialize;
use std::path::Path;
use std::time::{Duration, Instant};

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
pub fn authorize_params(voucher: &str, nonce: &str) -> AuthorizeParams {
    AuthorizeParams {
        voucher: voucher.to_owned(),
        payment: PaymentParams {
            amount: 1,
            currency: "CNY".into(),
            payee: "bench.example".into(),
            category: None,
            transaction_id: Some(format!("tx-{nonce}")),
        },
        aud: "bench.example".into(),
        nonce: nonce.to_owned(),
        facts: serde_json::Map::new(),
        proof: false,
        checkout_jwt: None,
    }
}

/// The params of one `evidence.record`: a chosen offer named `offer`.
fn record_params(offer: String) -> RecordParams {
    let mut body = serde_json::Map::new();
    body.insert("offer".into(), offer.into());
    body.insert("price".into(), 1999.into());
    body.insert("currency".into(), "CNY".into());
    body.insert("why".into(), "cheapest of three offers in stock".into());
    RecordParams {
        kind: "offer.chosen".into(),
        body,
    }
}

/// The nonce (and offer) of call `i` of connection `n` in run `run`.
fn nonce(run: u64, n: usize, i: u64) -> String {
    format!("bench-{run}-{n:04}-{i:012}")
}

/// The params of one call of a [`Workload`], each its method's own type.
#[derive(Serialize)]
#[serde(untagged)]
enum Params {
    Attest(AttestParams),
    Authorize(AuthorizeParams),
    Record(RecordParams),
    Identity(NoParams),
}

impl Workload {
    /// The method.
    pub fn method(&self) -> Method {
        match self {
            Self::Attest => Method::AgentAttest,
            Self::Authorize(_) => Method::PaymentAuthorize,
            Self::Record => Method::EvidenceRecord,
            Self::Identity => Method::AgentIdentity,
        }
    }

    /// The params of call `i` of connection `n` in run `run`: nonces and checkouts never repeat
    /// within a process, so a sweep can run again on the same voucher.
    fn params(&self, run: u64, n: usize, i: u64) -> Params {
        let nonce = nonce(run, n, i);
        match self {
            Self::Attest => Params::Attest(AttestParams { nonce }),
            Self::Authorize(voucher) => Params::Authorize(authorize_params(voucher, &nonce)),
            Self::Record => Params::Record(record_params(nonce)),
            Self::Identity => Params::Identity(NoParams {}),
        }
    }
}

/// A number for each run of calls in this process.
fn next_run() -> u64 {
    static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
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
    async fn send(&mut self, method: Method, params: Params) -> Result<u64, ClientError> {
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

    async fn call(&mut self, method: Method, params: Params) -> Result<(), ClientError> {
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
                        c.request_unparsed::<call::EvidenceRecord>(&record_params(nonce(
                            run, n, i,
                        )))?;
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
