//! A small blocking client for the daemon's sockets, used by `arictl`, tests and benchmarks, and
//! embeddable by any Rust program that speaks to `arid`.
//!
//! One call at a time per client; each call waits for its answer (with a deadline, so a stuck
//! daemon cannot hang a script forever). Wire errors come back as [`RemoteError`] with the stable
//! reason and the retry advice.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a client waits for one answer before it gives up on the daemon.
pub const ANSWER_WAIT: Duration = Duration::from_secs(60);

/// The agent socket of a system installation.
pub const DEFAULT_AGENT_SOCKET: &str = "/run/ari/agent.sock";
/// The admin socket of a system installation.
pub const DEFAULT_ADMIN_SOCKET: &str = "/run/ari/admin.sock";

/// An error the daemon returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} ({reason})")]
pub struct RemoteError {
    /// JSON-RPC code.
    pub code: i64,
    /// Stable reason name.
    pub reason: String,
    /// Human-readable message.
    pub message: String,
    /// Whether retrying may succeed.
    pub retryable: bool,
    /// For a payment denial: the recorded decision's id.
    pub decision: Option<String>,
}

/// Why a call did not produce a result.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The socket could not be reached.
    #[error("cannot connect to {path}: {source}")]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The connection failed mid-call.
    #[error("connection to the daemon failed: {0}")]
    Io(#[from] std::io::Error),
    /// The daemon answered something that is not a JSON-RPC response to this call.
    #[error("unexpected answer from the daemon: {0}")]
    Protocol(String),
    /// The daemon refused the call.
    #[error(transparent)]
    Remote(#[from] RemoteError),
}

/// A connection to one socket.
#[derive(Debug)]
pub struct Client {
    writer: UnixStream,
    reader: BufReader<UnixStream>,
    next_id: u64,
    line: String,
}

impl Client {
    /// Connects to the socket at `path`.
    pub fn connect(path: &Path) -> Result<Self, ClientError> {
        let stream = UnixStream::connect(path).map_err(|source| ClientError::Connect {
            path: path.into(),
            source,
        })?;
        stream.set_read_timeout(Some(ANSWER_WAIT))?;
        let reader = BufReader::new(stream.try_clone()?);
        Ok(Self {
            writer: stream,
            reader,
            next_id: 1,
            line: String::new(),
        })
    }

    /// Calls `method` with `params` and returns its result.
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value, ClientError> {
        let id = self.send(method, params)?;
        self.decode(id)
    }

    /// Calls `method` and only checks that it succeeded, skipping over the result without
    /// building it: for load generators, whose own cost shares the machine with the daemon.
    pub fn call_unparsed(&mut self, method: &str, params: Value) -> Result<(), ClientError> {
        let id = self.send(method, params)?;
        check_response(&self.line, id)
    }

    /// Writes one call and reads one response line into `self.line`; returns the call's id.
    fn send(&mut self, method: &str, params: Value) -> Result<u64, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        self.writer.write_all(&request_line(id, method, params)?)?;
        self.line.clear();
        if self.reader.read_line(&mut self.line)? == 0 {
            return Err(ClientError::Protocol(
                "the daemon closed the connection".into(),
            ));
        }
        Ok(id)
    }

    /// Decodes the response line in `self.line` as the answer to call `id`.
    fn decode(&self, id: u64) -> Result<Value, ClientError> {
        decode_response(&self.line, id)
    }
}

/// The wire line (newline included) of call `id` of `method` with `params`.
pub fn request_line(id: u64, method: &str, params: Value) -> Result<Vec<u8>, ClientError> {
    let call = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    let mut line = serde_json::to_vec(&call).map_err(|e| ClientError::Protocol(e.to_string()))?;
    line.push(b'\n');
    Ok(line)
}

/// Checks that the response `line` answers call `id` with a result, skipping over the result
/// without building it.
pub fn check_response(line: &str, id: u64) -> Result<(), ClientError> {
    #[derive(serde::Deserialize)]
    struct Reply {
        id: Option<u64>,
        result: Option<serde::de::IgnoredAny>,
        error: Option<serde::de::IgnoredAny>,
    }
    match serde_json::from_str::<Reply>(line) {
        Ok(Reply {
            id: Some(got),
            result: Some(_),
            error: None,
        }) if got == id => Ok(()),
        // Anything else is decoded fully, for a precise error.
        _ => decode_response(line, id).map(drop),
    }
}

/// Decodes the response `line` as the answer to call `id`: its result, or the daemon's error.
pub fn decode_response(line: &str, id: u64) -> Result<Value, ClientError> {
    let mut response: Value =
        serde_json::from_str(line).map_err(|e| ClientError::Protocol(e.to_string()))?;
    // An error with a null id answers a line the daemon could not read as a call (too long,
    // too slow, not JSON); with one call in flight, it is this call's.
    let unattributed = response.get("id") == Some(&Value::Null) && response.get("error").is_some();
    if response.get("id") != Some(&json!(id)) && !unattributed {
        return Err(ClientError::Protocol(format!(
            "answer for another call: {}",
            line.trim_end()
        )));
    }
    if let Some(err) = response.get("error") {
        let text = |ptr: &str| {
            err.pointer(ptr)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        return Err(ClientError::Remote(RemoteError {
            code: err.get("code").and_then(Value::as_i64).unwrap_or(0),
            reason: text("/data/reason"),
            message: text("/message"),
            retryable: err
                .pointer("/data/retryable")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            decision: err
                .pointer("/data/decision")
                .and_then(Value::as_str)
                .map(str::to_owned),
        }));
    }
    response
        .get_mut("result")
        .map(Value::take)
        .ok_or_else(|| ClientError::Protocol("a response with neither result nor error".into()))
}
