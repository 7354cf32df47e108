//! One client connection: framing, limits, pipelining and draining.
//!
//! Lines are read with a hard cap ([`LineReader`]); the read deadline runs from the first byte
//! of a line and the idle deadline from the end of the previous one. Calls are handled
//! concurrently, up to the per-connection in-flight cap; at the cap the daemon simply stops
//! reading, so a fast writer is slowed down by the kernel's socket buffer rather than by an
//! unbounded queue in the daemon. Responses are written by one writer task in completion order
//! (JSON-RPC ids pair them). On shutdown, or once a call asked for the connection to end (see
//! [`ConnInfo::close_after_answer`]), the connection stops reading, lets its in-flight calls
//! finish and writes their responses before closing.

use super::{ConnInfo, Shutdown};
use crate::config::Limits;
use crate::protocol::{self, ErrorCode, Id, Response, RpcError};
use crate::service::Service;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::time::Instant;

/// Why no line could be read.
#[derive(Debug)]
pub enum LineError {
    /// The line exceeds the cap.
    TooLong,
    /// A started line did not finish before the read deadline.
    ReadTimeout,
    /// Nothing arrived before the idle deadline.
    Idle,
    /// The peer closed in the middle of a line.
    Truncated,
    /// The socket failed.
    Io(std::io::Error),
}

/// Reads newline-terminated lines with a size cap and deadlines. Cancel-safe: a partly read line
/// is kept in `self`, so dropping a pending `next_line` loses nothing.
#[derive(Debug)]
pub struct LineReader<R> {
    inner: BufReader<R>,
    line: Vec<u8>,
    started: Option<Instant>,
    last_line: Instant,
    max: usize,
    read_timeout: Duration,
    idle_timeout: Duration,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    /// A reader with the given limits.
    pub fn new(inner: R, limits: &Limits) -> Self {
        Self {
            inner: BufReader::with_capacity(16 * 1024, inner),
            line: Vec::new(),
            started: None,
            last_line: Instant::now(),
            max: limits.max_line_bytes,
            read_timeout: Duration::from_millis(limits.read_timeout_ms),
            idle_timeout: Duration::from_millis(limits.idle_timeout_ms),
        }
    }

    /// Applies new limits from the next line on.
    pub fn set_limits(&mut self, limits: &Limits) {
        self.max = limits.max_line_bytes;
        self.read_timeout = Duration::from_millis(limits.read_timeout_ms);
        self.idle_timeout = Duration::from_millis(limits.idle_timeout_ms);
    }

    /// The next line without its newline (and without a trailing `\r`); `None` at a clean end.
    pub async fn next_line(&mut self) -> Result<Option<Vec<u8>>, LineError> {
        loop {
            let deadline = match self.started {
                Some(t) => t + self.read_timeout,
                None => self.last_line + self.idle_timeout,
            };
            let chunk = match tokio::time::timeout_at(deadline, self.inner.fill_buf()).await {
                Err(_) if self.started.is_some() => return Err(LineError::ReadTimeout),
                Err(_) => return Err(LineError::Idle),
                Ok(Err(e)) => return Err(LineError::Io(e)),
                Ok(Ok(chunk)) => chunk,
            };
            if chunk.is_empty() {
                return if self.started.is_some() {
                    Err(LineError::Truncated)
                } else {
                    Ok(None)
                };
            }
            if self.started.is_none() {
                self.started = Some(Instant::now());
            }
            match chunk.iter().position(|&b| b == b'\n') {
                Some(pos) => {
                    if self.line.len() + pos > self.max {
                        return Err(LineError::TooLong);
                    }
                    self.line
                        .extend_from_slice(chunk.get(..pos).unwrap_or_default());
                    self.inner.consume(pos + 1);
                    self.started = None;
                    self.last_line = Instant::now();
                    let mut line = std::mem::take(&mut self.line);
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    return Ok(Some(line));
                }
                None => {
                    let n = chunk.len();
                    if self.line.len() + n > self.max {
                        return Err(LineError::TooLong);
                    }
                    self.line.extend_from_slice(chunk);
                    self.inner.consume(n);
                }
            }
        }
    }
}

/// Most lines a stopping connection answers with `shutting_down` before it closes.
const SHUTDOWN_REFUSALS: usize = 1024;

/// The answer to every call in `line`: not run, because the daemon is stopping.
fn refuse_for_shutdown(line: &[u8]) -> Vec<u8> {
    refuse(
        line,
        ErrorCode::ShuttingDown,
        "the daemon is stopping and did not run this call; send it again once it is back",
    )
}

/// Answers every call on `line` with `code` without running it (a line that does not parse
/// gets the parse error it would have had anyway).
fn refuse(line: &[u8], code: ErrorCode, message: &str) -> Vec<u8> {
    let refuse = |call: Result<protocol::Request, Response>| match call {
        Ok(req) => Response::error(req.id, RpcError::new(code, message)),
        Err(answer) => answer,
    };
    match protocol::parse_line(line) {
        protocol::Incoming::Single(call) => protocol::render(&refuse(call)),
        protocol::Incoming::Batch(calls) => {
            protocol::render_batch(&calls.into_iter().map(refuse).collect::<Vec<_>>())
        }
    }
}

fn closing_error(code: ErrorCode, message: &str) -> Vec<u8> {
    protocol::render(&Response::error(Id::Null, RpcError::new(code, message)))
}

/// Serves one connection until the peer leaves, a limit is hit, or shutdown.
pub async fn serve(
    stream: UnixStream,
    info: ConnInfo,
    service: Arc<Service>,
    mut live_limits: watch::Receiver<Limits>,
    mut shutdown: Shutdown,
    _connection_permit: OwnedSemaphorePermit,
) {
    let _counted = Counted::new(info.role.name());
    let mut limits = *live_limits.borrow_and_update();
    let (rd, wr) = stream.into_split();
    let (tx, rx) = mpsc::channel::<Vec<u8>>(limits.max_in_flight_per_connection + 1);
    let writer = tokio::spawn(write_loop(wr, rx));
    let in_flight_cap = u32::try_from(limits.max_in_flight_per_connection).unwrap_or(u32::MAX);
    let in_flight = Arc::new(Semaphore::new(in_flight_cap as usize));
    let info = Arc::new(info);
    let mut reader = LineReader::new(rd, &limits);
    loop {
        // A reload applies from the next line on; the in-flight cap stays as it was when the
        // connection opened.
        if live_limits.has_changed().unwrap_or(false) {
            limits = *live_limits.borrow_and_update();
            reader.set_limits(&limits);
        }
        let line = tokio::select! {
            biased;
            _ = shutdown.wait() => break,
            // A call's answer was to be the last (its caller is not, or no longer, who the
            // connection was opened by): it and the calls already running are answered below.
            () = info.closed() => break,
            line = reader.next_line() => line,
        };
        match line {
            Ok(Some(line)) if line.iter().all(u8::is_ascii_whitespace) => {}
            Ok(Some(line)) => match in_flight.clone().try_acquire_owned() {
                Ok(permit) => {
                    let (service, info, tx) = (service.clone(), info.clone(), tx.clone());
                    tokio::spawn(async move {
                        let out = service.handle_line(&info, &line).await;
                        // If the writer is gone the peer left; the answer has nowhere to go.
                        let _ = tx.send(out).await;
                        drop(permit);
                    });
                }
                Err(tokio::sync::TryAcquireError::NoPermits) => {
                    // Over the in-flight cap: answered `busy` at once and not run. The answer
                    // waits for room in the bounded outgoing queue, so a peer that floods
                    // without reading its answers simply stops being read.
                    crate::metrics::metrics().refused_busy(info.role.name());
                    let busy = refuse(
                        &line,
                        ErrorCode::Busy,
                        "too many calls in flight on this connection; wait for answers or retry shortly",
                    );
                    if tx.send(busy).await.is_err() {
                        break;
                    }
                }
                Err(tokio::sync::TryAcquireError::Closed) => break,
            },
            Ok(None) => break,
            Err(LineError::TooLong) => {
                let msg = format!(
                    "a line may hold at most {} bytes; closing",
                    limits.max_line_bytes
                );
                let _ = tx.send(closing_error(ErrorCode::LineTooLong, &msg)).await;
                tracing::debug!(peer = info.cred.pid, "line too long; connection closed");
                break;
            }
            Err(LineError::ReadTimeout) => {
                let msg = format!(
                    "the line did not arrive within {} ms; closing",
                    limits.read_timeout_ms
                );
                let _ = tx.send(closing_error(ErrorCode::ReadTimeout, &msg)).await;
                break;
            }
            Err(LineError::Idle) => {
                tracing::debug!(peer = info.cred.pid, "idle connection closed");
                break;
            }
            Err(LineError::Truncated) => {
                tracing::debug!(peer = info.cred.pid, "peer closed in the middle of a line");
                break;
            }
            Err(LineError::Io(e)) => {
                tracing::debug!(peer = info.cred.pid, error = %e, "connection read failed");
                break;
            }
        }
    }
    if shutdown.is_triggered() {
        // Calls that already arrived but were not started are answered `shutting_down`
        // (retryable, nothing was run), so a client never waits for an answer that cannot come.
        for _ in 0..SHUTDOWN_REFUSALS {
            match tokio::time::timeout(Duration::from_millis(5), reader.next_line()).await {
                Ok(Ok(Some(line))) if line.iter().all(u8::is_ascii_whitespace) => {}
                Ok(Ok(Some(line))) => {
                    if tx.send(refuse_for_shutdown(&line)).await.is_err() {
                        break;
                    }
                }
                _ => break,
            }
        }
    }
    // Let every call in flight finish and queue its answer, then close the writer.
    let _ = in_flight.acquire_many(in_flight_cap).await;
    drop(tx);
    let _ = writer.await;
}

/// Counts a connection as open for as long as it lives, however its task ends (a panic, or an
/// abort after the shutdown grace period, included).
struct Counted(&'static str);

impl Counted {
    fn new(socket: &'static str) -> Self {
        crate::metrics::metrics().connection(socket, 1);
        Self(socket)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        crate::metrics::metrics().connection(self.0, -1);
    }
}

async fn write_loop(mut wr: OwnedWriteHalf, mut rx: mpsc::Receiver<Vec<u8>>) {
    while let Some(mut out) = rx.recv().await {
        // Coalesce answers that are already waiting into one write.
        while let Ok(more) = rx.try_recv() {
            out.extend_from_slice(&more);
        }
        if wr.write_all(&out).await.is_err() {
            return;
        }
    }
    let _ = wr.shutdown().await;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    fn limits(max: usize) -> Limits {
        Limits {
            max_line_bytes: max,
            read_timeout_ms: 1000,
            idle_timeout_ms: 5000,
            ..Limits::default()
        }
    }

    #[tokio::test]
    async fn lines_split_and_capped() {
        let data: &[u8] = b"abc\r\ndef\n0123456789ABCDEF\n";
        let mut r = LineReader::new(data, &limits(10));
        assert_eq!(r.next_line().await.unwrap().unwrap(), b"abc");
        assert_eq!(r.next_line().await.unwrap().unwrap(), b"def");
        assert!(matches!(r.next_line().await, Err(LineError::TooLong)));
    }

    #[tokio::test]
    async fn half_line_then_eof_is_truncated() {
        let data: &[u8] = b"{\"jsonrpc\"";
        let mut r = LineReader::new(data, &limits(100));
        assert!(matches!(r.next_line().await, Err(LineError::Truncated)));
        let mut empty = LineReader::new(&b""[..], &limits(100));
        assert!(empty.next_line().await.unwrap().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn slow_line_hits_the_read_deadline() {
        let (client, server) = tokio::io::duplex(64);
        let mut r = LineReader::new(server, &limits(100));
        let mut client = client;
        client.write_all(b"{\"half").await.unwrap();
        assert!(matches!(r.next_line().await, Err(LineError::ReadTimeout)));
        let (_c2, server2) = tokio::io::duplex(64);
        let mut r2 = LineReader::new(server2, &limits(100));
        assert!(matches!(r2.next_line().await, Err(LineError::Idle)));
    }
}
