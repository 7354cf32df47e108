//! The wire protocol: JSON-RPC 2.0 messages, one per line; the table of methods with the types
//! of their params and results; and the table of error codes.
//!
//! This module is pure: it parses bytes into requests and renders responses, and it never does
//! I/O or looks at daemon state. Everything a client can observe about framing, errors and each
//! method's members is decided here, once, in types ([`Call`], one marker per method in
//! [`call`]): the daemon decodes and answers them, the Rust client sends and reads them, and a
//! test holds `docs/protocol.md` to them. Invariants: every response carries the id of its
//! request (or `null` when the request could not be read far enough to find one); no message is
//! ever answered twice; notifications (requests without an id) are refused because every call in
//! this protocol has a result the caller must see.
//!
//! The types are grouped by domain: [`agent`], [`daemon`] (its own status, metrics and TPM),
//! [`voucher`], [`payment`], [`spending`], [`evidence`], [`keys`].

pub mod agent;
mod code;
pub mod counterparty;
pub mod daemon;
#[cfg(test)]
mod document;
pub mod evidence;
pub mod keys;
mod method;
pub mod payment;
#[cfg(test)]
mod sample;
pub mod spending;
pub mod voucher;

pub use code::ErrorCode;
pub use method::{Call, Method, Role, Surface, call};

use serde::Serialize;
use serde_json::{Map, Value};

/// A value's wire form as text (a status, a level, a frequency), for views and status lines.
pub fn wire_name(value: &impl Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => "?".into(),
    }
}

/// The largest batch accepted in one line.
pub const MAX_BATCH: usize = 64;

/// A request id: JSON-RPC allows a string or a number; fractions and `null` are refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Id {
    /// An integer id.
    Number(i64),
    /// A string id.
    String(String),
    /// No usable id was found; only ever used in error responses.
    Null,
}

/// A well-formed call: a known shape, not yet a known method.
#[derive(Debug, Clone)]
pub struct Request {
    /// Echoed back in the response.
    pub id: Id,
    /// The method name as sent.
    pub method: String,
    /// The params object; absent params read as an empty object.
    pub params: Value,
}

/// The error object of a response.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RpcError {
    /// Stable numeric code.
    pub code: i64,
    /// A human-readable sentence; not stable.
    pub message: String,
    /// `{"reason": "...", "retryable": bool}`: the stable name and the retry advice.
    pub data: ErrorData,
}

/// The machine-readable part of an error.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorData {
    /// The code's stable name, e.g. `unknown_caller`.
    pub reason: &'static str,
    /// Whether the same request may succeed if sent again later.
    pub retryable: bool,
    /// For a payment denial: the id of the recorded decision.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<String>,
}

impl RpcError {
    /// An error of the given code with a message for humans.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code: code.code(),
            message: message.into(),
            data: ErrorData {
                reason: code.reason(),
                retryable: code.retryable(),
                decision: None,
            },
        }
    }

    /// Names the recorded decision this error reports.
    pub fn with_decision(mut self, decision: Option<String>) -> Self {
        self.data.decision = decision;
        self
    }
}

/// One response object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Response {
    jsonrpc: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<RpcError>,
    id: Id,
}

impl Response {
    /// A successful response.
    pub fn result(id: Id, result: Value) -> Self {
        Self {
            jsonrpc: "2.0",
            result: Some(result),
            error: None,
            id,
        }
    }

    /// An error response.
    pub fn error(id: Id, error: RpcError) -> Self {
        Self {
            jsonrpc: "2.0",
            result: None,
            error: Some(error),
            id,
        }
    }

    /// The error, if this is an error response.
    pub fn rpc_error(&self) -> Option<&RpcError> {
        self.error.as_ref()
    }
}

/// What one line holds after parsing.
#[derive(Debug)]
pub enum Incoming {
    /// A single message: a call, or the error that answers it.
    Single(Result<Request, Response>),
    /// A batch: each element is a call or the error that answers it, in order.
    Batch(Vec<Result<Request, Response>>),
}

/// Parses one line (without its newline).
pub fn parse_line(line: &[u8]) -> Incoming {
    let value: Value = match serde_json::from_slice(line) {
        Ok(v) => v,
        Err(e) => {
            let msg = if std::str::from_utf8(line).is_err() {
                "the line is not UTF-8 text".to_string()
            } else {
                format!("the line is not JSON: {e}")
            };
            return Incoming::Single(Err(Response::error(
                Id::Null,
                RpcError::new(ErrorCode::ParseError, msg),
            )));
        }
    };
    match value {
        Value::Array(items) if items.is_empty() => {
            Incoming::Single(Err(invalid(Id::Null, "an empty batch")))
        }
        Value::Array(items) if items.len() > MAX_BATCH => Incoming::Single(Err(invalid(
            Id::Null,
            format!("a batch holds at most {MAX_BATCH} calls"),
        ))),
        Value::Array(items) => Incoming::Batch(items.into_iter().map(parse_message).collect()),
        other => Incoming::Single(parse_message(other)),
    }
}

fn invalid(id: Id, msg: impl Into<String>) -> Response {
    Response::error(id, RpcError::new(ErrorCode::InvalidRequest, msg))
}

fn parse_id(value: Option<&Value>) -> Result<Id, &'static str> {
    match value {
        None => Err("the call has no id; notifications are not supported"),
        Some(Value::String(s)) if s.len() <= 256 => Ok(Id::String(s.clone())),
        Some(Value::String(_)) => Err("the id is longer than 256 bytes"),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(Id::Number)
            .ok_or("a numeric id must be an integer"),
        Some(_) => Err("the id must be a string or an integer"),
    }
}

#[expect(
    clippy::result_large_err,
    reason = "the error is the response to send; it is built once per bad message"
)]
fn parse_message(value: Value) -> Result<Request, Response> {
    let Value::Object(mut obj) = value else {
        return Err(invalid(Id::Null, "a call is a JSON object"));
    };
    let id = parse_id(obj.get("id")).map_err(|m| invalid(Id::Null, m))?;
    match obj.get("jsonrpc") {
        Some(Value::String(v)) if v == "2.0" => {}
        _ => return Err(invalid(id, r#"the member "jsonrpc" must be "2.0""#)),
    }
    let method = match obj.remove("method") {
        Some(Value::String(m)) => m,
        Some(_) => return Err(invalid(id, "the method must be a string")),
        None => return Err(invalid(id, "the call has no method")),
    };
    let params = match obj.remove("params") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(p @ Value::Object(_)) => p,
        Some(_) => {
            return Err(Response::error(
                id,
                RpcError::new(
                    ErrorCode::InvalidParams,
                    "params must be an object (by-name)",
                ),
            ));
        }
    };
    if let Some(extra) = obj.keys().find(|k| !matches!(k.as_str(), "jsonrpc" | "id")) {
        return Err(invalid(id, format!("unknown member {extra:?} in the call")));
    }
    Ok(Request { id, method, params })
}

/// Renders a response line, newline included.
pub fn render(response: &Response) -> Vec<u8> {
    render_value(response)
}

/// Renders a batch of responses as one line, newline included.
pub fn render_batch(responses: &[Response]) -> Vec<u8> {
    render_value(&responses)
}

fn render_value<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing these types cannot fail: every key is a string and no map has non-string keys.
    let mut out = serde_json::to_vec(value).unwrap_or_else(|_| {
        br#"{"jsonrpc":"2.0","error":{"code":-32603,"message":"response could not be encoded","data":{"reason":"internal_error","retryable":false}},"id":null}"#.to_vec()
    });
    out.push(b'\n');
    out
}

/// Decodes `params` into the method's parameter type, answering `invalid_params` on mismatch.
pub fn params<T: serde::de::DeserializeOwned>(params: Value) -> Result<T, RpcError> {
    serde_json::from_value(params)
        .map_err(|e| RpcError::new(ErrorCode::InvalidParams, e.to_string()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]
    use super::*;

    fn single_err(line: &str) -> RpcError {
        match parse_line(line.as_bytes()) {
            Incoming::Single(Err(r)) => r.error.unwrap(),
            other => panic!("expected an error for {line}, got {other:?}"),
        }
    }

    #[test]
    fn framing_errors_have_their_codes() {
        assert_eq!(single_err("{").code, -32700);
        assert_eq!(single_err("[]").code, -32600);
        assert_eq!(single_err(r#"{"jsonrpc":"2.0","method":"x"}"#).code, -32600);
        assert_eq!(
            single_err(r#"{"jsonrpc":"1.0","method":"x","id":1}"#).code,
            -32600
        );
        assert_eq!(
            single_err(r#"{"jsonrpc":"2.0","method":"x","id":1.5}"#).code,
            -32600
        );
        assert_eq!(
            single_err(r#"{"jsonrpc":"2.0","method":"x","id":1,"params":[1]}"#).code,
            -32602
        );
    }

    #[test]
    fn good_call_parses_with_empty_params() {
        match parse_line(br#"{"jsonrpc":"2.0","method":"any.name","id":"a"}"#) {
            Incoming::Single(Ok(r)) => {
                assert_eq!(r.id, Id::String("a".into()));
                assert_eq!(r.params, Value::Object(Map::new()));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_code_has_a_distinct_number_and_reason() {
        let codes: std::collections::HashSet<_> = ErrorCode::ALL.iter().map(|c| c.code()).collect();
        let reasons: std::collections::HashSet<_> =
            ErrorCode::ALL.iter().map(|c| c.reason()).collect();
        assert_eq!(codes.len(), ErrorCode::ALL.len());
        assert_eq!(reasons.len(), ErrorCode::ALL.len());
        for c in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_reason(c.reason()), Some(*c));
        }
    }
}
