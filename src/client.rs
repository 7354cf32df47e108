//! A small blocking client for the daemon's sockets, used by `arictl`, tests and benchmarks, and
//! embeddable by any Rust program that speaks to `arid`.
//!
//! One call at a time per client; each call waits for its answer (with a deadline, so a stuck
//! daemon cannot hang a script forever). Calls are typed: [`Client::request`] takes a method's
//! marker from [`crate::protocol::call`], sends its params type and returns its result type, so
//! the client and the daemon read the same contract. Wire errors come back as [`RemoteError`]
//! with their [`ErrorCode`].

use crate::protocol::{Call, ErrorCode, Method};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
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
#[error("{message} ({})", error.reason())]
pub struct RemoteError {
    /// What went wrong: its number, stable reason and retry advice are the code's.
    pub error: ErrorCode,
    /// Human-readable message.
    pub message: String,
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

    /// Calls method `C` with `params` and returns its result.
    pub fn request<C: Call>(&mut self, params: &C::Params) -> Result<C::Result, ClientError> {
        let id = self.send(C::METHOD, params)?;
        decode_response_as(&self.line, id)
    }

    /// Calls `method` with params and a result left untyped: for tests of the wire itself,
    /// which send what the params type could not hold (unknown members, wrong types) and read
    /// the answer as it travelled.
    pub fn call(&mut self, method: Method, params: Value) -> Result<Value, ClientError> {
        let id = self.send(method, params)?;
        decode_response(&self.line, id)
    }

    /// Calls method `C` and only checks that it succeeded, skipping over the result without
    /// building it: for load generators, whose own cost shares the machine with the daemon.
    pub fn request_unparsed<C: Call>(&mut self, params: &C::Params) -> Result<(), ClientError> {
        let id = self.send(C::METHOD, params)?;
        check_response(&self.line, id)
    }

    /// Writes one call and reads one response line into `self.line`; returns the call's id.
    fn send(&mut self, method: Method, params: impl Serialize) -> Result<u64, ClientError> {
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
}

/// The wire line (newline included) of call `id` of `method` with `params`.
pub fn request_line(
    id: u64,
    method: Method,
    params: impl Serialize,
) -> Result<Vec<u8>, ClientError> {
    #[derive(Serialize)]
    struct Line<P> {
        jsonrpc: &'static str,
        id: u64,
        method: &'static str,
        params: P,
    }
    let call = Line {
        jsonrpc: "2.0",
        id,
        method: method.name(),
        params,
    };
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
    decode_response_as(line, id)
}

/// Decodes the response `line` as the answer to call `id`, its result as a `T`; or the daemon's
/// error.
pub fn decode_response_as<T: DeserializeOwned>(line: &str, id: u64) -> Result<T, ClientError> {
    /// A response as it travels; `id` stays raw, and a `null` id is told from a missing one.
    #[derive(Deserialize)]
    struct Reply<T> {
        #[serde(default, deserialize_with = "present")]
        id: Option<Value>,
        result: Option<T>,
        error: Option<WireError>,
    }
    let reply: Reply<T> =
        serde_json::from_str(line).map_err(|e| ClientError::Protocol(e.to_string()))?;
    // An error with a null id answers a line the daemon could not read as a call (too long,
    // too slow, not JSON); with one call in flight, it is this call's.
    let unattributed = reply.id.as_ref() == Some(&Value::Null) && reply.error.is_some();
    if reply.id != Some(Value::from(id)) && !unattributed {
        return Err(ClientError::Protocol(format!(
            "answer for another call: {}",
            line.trim_end()
        )));
    }
    match (reply.result, reply.error) {
        (_, Some(error)) => Err(error.into_client_error()),
        (Some(result), None) => Ok(result),
        (None, None) => Err(ClientError::Protocol(
            "a response with neither result nor error".into(),
        )),
    }
}

/// A member that is there, even as `null`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// The error object of a response, as it travels.
#[derive(Deserialize)]
struct WireError {
    #[serde(default)]
    code: i64,
    #[serde(default)]
    message: String,
    #[serde(default)]
    data: WireErrorData,
}

/// The `data` member of [`WireError`].
#[derive(Default, Deserialize)]
struct WireErrorData {
    #[serde(default)]
    reason: String,
    #[serde(default)]
    decision: Option<String>,
}

impl WireError {
    /// The daemon's refusal; a reason this client does not know is a protocol failure.
    fn into_client_error(self) -> ClientError {
        let Some(error) = ErrorCode::from_reason(&self.data.reason) else {
            return ClientError::Protocol(format!(
                "an error of unknown reason {:?} (code {}): {}",
                self.data.reason, self.code, self.message
            ));
        };
        ClientError::Remote(RemoteError {
            error,
            message: self.message,
            decision: self.data.decision,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use crate::protocol::call;
    use crate::protocol::evidence::SignedCheckpoint;

    #[test]
    fn a_call_line_names_the_method_of_its_marker() {
        let params = crate::protocol::evidence::EntryParams { index: 7 };
        let line = request_line(3, call::EvidenceEntry::METHOD, params).unwrap();
        assert_eq!(
            line,
            b"{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"evidence.entry\",\"params\":{\"index\":7}}\n"
        );
    }

    #[test]
    fn a_result_is_read_as_its_type() {
        let line =
            r#"{"jsonrpc":"2.0","result":{"origin":"o","size":2,"note":"n","vkeys":["v"]},"id":4}"#;
        let got: SignedCheckpoint = decode_response_as(line, 4).unwrap();
        assert_eq!(
            got,
            SignedCheckpoint {
                origin: "o".into(),
                size: 2,
                note: "n".into(),
                vkeys: vec!["v".into()]
            }
        );
        assert!(matches!(
            decode_response_as::<SignedCheckpoint>(line, 5),
            Err(ClientError::Protocol(_))
        ));
    }

    #[test]
    fn a_refusal_carries_its_code_even_unattributed() {
        let line = r#"{"jsonrpc":"2.0","error":{"code":-32008,"message":"too long","data":{"reason":"line_too_long","retryable":false}},"id":null}"#;
        match decode_response_as::<Value>(line, 9) {
            Err(ClientError::Remote(e)) => {
                assert_eq!(e.error, ErrorCode::LineTooLong);
                assert_eq!(e.message, "too long");
            }
            other => panic!("{other:?}"),
        }
        let unknown = line.replace("line_too_long", "no_such_reason");
        assert!(matches!(
            decode_response_as::<Value>(&unknown, 9),
            Err(ClientError::Protocol(_))
        ));
        let missing_id = line.replace(r#","id":null"#, "");
        assert!(matches!(
            decode_response_as::<Value>(&missing_id, 9),
            Err(ClientError::Protocol(_))
        ));
    }
}
