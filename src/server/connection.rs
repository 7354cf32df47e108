//! One client connection: framing, limits, pipelining and draining.
//!
//! Lines are read with a hard cap ([`LineReader`]); the read deadline runs from the first byte
//! of a line and the idle deadline from the end of the previous one. A new connection must also
//! send its first request (a line that is not blank) within the first-line deadline, so a
//! client cannot take a connection and sit on it for the idle deadline without having asked
//! anything. Calls are handled
//! concurrently, up to the per-connection in-flight cap; at the cap the daemon simply stops
//! reading, so a fast writer is slowed down by the kernel's socket buffer rather than by an
//! unbounded queue in the daemon. Responses are written by one writer task in completion order
//! (JSON-RPC ids pair them). On shutdown, or once a call asked for the connection to end (see
//! [`ConnInfo::close_after_answer`]), the connection stops reading, lets its in-flight calls
//! finish and writes their responses before closing.

use super::Shutdown;
use super::quota::UidSlot;
use crate::config::Limits;
use crate::protocol::{self, ErrorCode, Id, Response, RpcError};
use crate::service::{ConnInfo, Service};
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
    /// No request (a line that is not blank) arrived within the first-line deadline of a new
    /// connection.
    NoFirstLine,
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
    /// When the connection opened; `None` once a request has arrived.
    opened: Option<Instant>,
    max: usize,
    read_timeout: Duration,
    idle_timeout: Duration,
    first_line_timeout: Duration,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    /// A reader with the given limits.
    pub fn new(inner: R, limits: &Limits) -> Self {
        Self {
            inner: BufReader::with_capacity(16 * 1024, inner),
            line: Vec::new(),
            started: None,
            last_line: Instant::now(),
            opened: Some(Instant::now()),
            max: limits.max_line_bytes,
            read_timeout: Duration::from_millis(limits.read_timeout_ms),
            idle_timeout: Duration::from_millis(limits.idle_timeout_ms),
            first_line_timeout: Duration::from_millis(limits.first_line_timeout_ms),
        }
    }

    /// Applies new limits from the next line on (a first-line deadline not yet met is counted
    /// from the connection's opening, with the new length).
    pub fn set_limits(&mut self, limits: &Limits) {
        self.max = limits.max_line_bytes;
        self.read_timeout = Duration::from_millis(limits.read_timeout_ms);
        self.idle_timeout = Duration::from_millis(limits.idle_timeout_ms);
        self.first_line_timeout = Duration::from_millis(limits.first_line_timeout_ms);
    }

    /// The next line without its newline (and without a trailing `\r`); `None` at a clean end.
    pub async fn next_line(&mut self) -> Result<Option<Vec<u8>>, LineError> {
        loop {
            let line_deadline = match self.started {
                Some(t) => t + self.read_timeout,
                None => self.last_line + self.idle_timeout,
            };
            let first_deadline = self.opened.map(|t| t + self.first_line_timeout);
            let deadline = first_deadline.map_or(line_deadline, |f| f.min(line_deadline));
            let chunk = match tokio::time::timeout_at(deadline, self.inner.fill_buf()).await {
                Err(_) if first_deadline == Some(deadline) => return Err(LineError::NoFirstLine),
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
                    if !line.iter().all(u8::is_ascii_whitespace) {
                        self.opened = None;
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

/// The answer, with a `null` id, that a connection gets just before it is closed.
pub(super) fn closing_error(code: ErrorCode, message: &str) -> Vec<u8> {
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
    _uid_slot: UidSlot,
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
    // One wait for the whole connection, not a new subscription per line.
    let closing = info.clone();
    let closed = closing.closed();
    tokio::pin!(closed);
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
            () = &mut closed => break,
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
            Err(LineError::NoFirstLine) => {
                let msg = format!(
                    "no request within {} ms of connecting; closing",
                    limits.first_line_timeout_ms
                );
                let _ = tx.send(closing_error(ErrorCode::ReadTimeout, &msg)).await;
                tracing::debug!(peer = info.cred.pid, "no first line; connection closed");
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
            first_line_timeout_ms: 60_000,
            ..Limits::default()
        }
    }

    fn first_line_limits() -> Limits {
        Limits {
            read_timeout_ms: 5_000,
            idle_timeout_ms: 300_000,
            first_line_timeout_ms: 2_000,
            ..Limits::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_that_asks_nothing_is_closed_at_the_first_line_deadline() {
        let (_client, server) = tokio::io::duplex(64);
        let opened = Instant::now();
        let mut r = LineReader::new(server, &first_line_limits());
        assert!(matches!(r.next_line().await, Err(LineError::NoFirstLine)));
        // The paused clock only moves to the next timer: the deadline that fired.
        assert_eq!(opened.elapsed(), Duration::from_millis(2_000));
    }

    #[tokio::test(start_paused = true)]
    async fn blank_lines_and_a_dribbled_line_do_not_hold_the_first_line_deadline_off() {
        let opened = Instant::now();
        let (mut client, server) = tokio::io::duplex(64);
        let mut r = LineReader::new(server, &first_line_limits());
        client.write_all(b"\r\n \n").await.unwrap();
        assert_eq!(r.next_line().await.unwrap().unwrap(), b"");
        assert_eq!(r.next_line().await.unwrap().unwrap(), b" ");
        // Then a line started but sent a byte at a time, each well within the read deadline.
        let dribble = tokio::spawn(async move {
            for _ in 0..10 {
                if client.write_all(b"{").await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            client
        });
        assert!(matches!(r.next_line().await, Err(LineError::NoFirstLine)));
        assert_eq!(opened.elapsed(), Duration::from_millis(2_000));
        drop(r);
        let _ = dribble.await;
    }

    #[tokio::test(start_paused = true)]
    async fn after_the_first_request_the_idle_deadline_holds() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut r = LineReader::new(server, &first_line_limits());
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        client.write_all(b"{\"a\":1}\n").await.unwrap();
        assert_eq!(r.next_line().await.unwrap().unwrap(), b"{\"a\":1}");
        let answered = Instant::now();
        assert!(matches!(r.next_line().await, Err(LineError::Idle)));
        assert_eq!(answered.elapsed(), Duration::from_millis(300_000));
    }

    #[tokio::test(start_paused = true)]
    async fn a_reload_applies_the_new_first_line_deadline_from_the_opening() {
        let (_client, server) = tokio::io::duplex(64);
        let opened = Instant::now();
        let mut r = LineReader::new(server, &first_line_limits());
        r.set_limits(&Limits {
            first_line_timeout_ms: 7_000,
            ..first_line_limits()
        });
        assert!(matches!(r.next_line().await, Err(LineError::NoFirstLine)));
        assert_eq!(opened.elapsed(), Duration::from_millis(7_000));
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
