//! `arictl console`: the web console, served on a loopback port to a browser on this machine.
//!
//! Why here and not in the daemon: the daemon that holds the keys listens on Unix sockets only
//! and stays that way. The console is a client of the admin socket like any other `arictl`
//! command, run by an operator who may already use that socket, so it can do nothing the
//! operator could not do with `arictl`, every action is the same admin method and leaves the
//! same evidence entry, and stopping it stops all of it. What it reads is `admin.spending`
//! (at most once every two seconds, whatever the number of tabs) and `admin.log_follow` (at most
//! [`FEED_PAGE`] entries a read, four reads a second); neither touches the ledger's writer.
//!
//! Who may use it: whoever has the secret token printed at start, a 256-bit random value that
//! lives only in this process. `GET /?token=…` trades it for an `HttpOnly`, `SameSite=Strict`
//! cookie limited to the console's pages, under a second random path (a cookie's host takes no
//! port, so without the path every other server on 127.0.0.1 would receive it); every request
//! needs the cookie (or `Authorization: Bearer`). On top of that a request
//! must name this server in `Host` (no DNS rebinding), come from this origin if it names one
//! (`Origin`, `Sec-Fetch-Site`), and a POST must be JSON from this origin, so no page elsewhere
//! can make the browser act. No response allows another origin (no CORS headers, `OPTIONS` is
//! refused), none may be framed, and the content security policy allows only this origin's own
//! script and style: the page has no inline code. Every response closes its connection.
//!
//! HTTP is parsed by `httparse` (already in the tree for the witness client); what is written
//! here is the small part around it: read one request of bounded size within a deadline, answer
//! it, close.

use crate::cli::Cli;
use crate::events::{Event, event, followed};
use crate::rpc::call;
use crate::view;
use anyhow::{Context, Result, anyhow};
use ari::client::Client;
use ari::protocol::agent::AgentParam;
use ari::protocol::call;
use ari::protocol::evidence::FollowParams;
use ari::protocol::payment::{DecisionParam, PaymentListParams, RejectParams};
use ari::protocol::spending::Spending;
use ari::protocol::voucher::VoucherParam;
use jiff::tz::TimeZone;
use serde::Deserialize;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const INDEX_HTML: &str = include_str!("console/index.html");
const APP_JS: &str = include_str!("console/app.js");
const APP_CSS: &str = include_str!("console/app.css");
const FAVICON_SVG: &str = include_str!("console/favicon.svg");

/// Sent with every response.
const SECURITY_HEADERS: &[(&str, &str)] = &[
    (
        "Content-Security-Policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
];

/// The most a request's head may take.
const MAX_HEAD: usize = 16 * 1024;
/// The most a request's body may take.
const MAX_BODY: usize = 64 * 1024;
/// Connections served at once; more are closed unanswered.
const MAX_CONNECTIONS: usize = 32;
/// How long a client may take to send its whole request, and to read the answer.
const IO_DEADLINE: Duration = Duration::from_secs(5);
/// How long `/api/events` waits for news.
const FEED_WAIT_MS: u64 = 20_000;
/// The most entries one `/api/events` answer reads; a feed further behind skips ahead.
const FEED_PAGE: u64 = 200;
/// Events shown when the page opens.
const FEED_START: usize = 50;
/// How long an `/api/state` answer is reused while the log has not grown (what changes without
/// an entry: time, and so expiries).
const STATE_TTL: Duration = Duration::from_secs(10);
/// How long it is reused whatever happens but an action: under a burst of payments the
/// figures, which read the whole payment table, are read once every two seconds, or less
/// often when reading them takes long ([`STATE_SHARE`]).
const STATE_MIN: Duration = Duration::from_secs(2);
/// Reading the figures may take at most this share of the time (one part in forty): a payment
/// table large enough to take 100 ms is read every 4 s.
const STATE_SHARE: u32 = 40;
/// The least time between two feed reads of the log.
const FEED_PACE: Duration = Duration::from_millis(250);

/// What every connection's thread shares.
struct Console {
    admin: PathBuf,
    token: String,
    /// Where the console's pages are, `/s/<random>/`, and the path its cookie is limited to:
    /// browsers send a cookie to every port of a host, and only the path keeps it from the
    /// other servers on this machine that the browser visits.
    base: String,
    port: u16,
    tz: TimeZone,
    /// The newest figures: when they were read, how long that took, and the answer.
    state: Mutex<Option<(Instant, Duration, Value)>>,
    /// Set when the feed saw new entries: the figures are read again once [`STATE_MIN`] old.
    stale: std::sync::atomic::AtomicBool,
    /// When the feed last read the log (or will, once paced).
    fed: Mutex<Instant>,
}

/// Runs the console until the process is stopped.
pub(crate) fn run(cli: &Cli, port: u16) -> Result<()> {
    // Fail now, with the usual hint, if the admin socket cannot be used.
    call::<call::AdminStatus>(&cli.admin_socket, &ari::protocol::daemon::NoParams {})?;
    let listener = TcpListener::bind(("127.0.0.1", port))
        .with_context(|| format!("cannot listen on 127.0.0.1:{port}"))?;
    let port = listener.local_addr()?.port();
    let mut secret = [0u8; 48];
    getrandom::fill(&mut secret).map_err(|e| anyhow!("no randomness for the token: {e}"))?;
    let (token, path) = secret.split_at(32);
    let console = Arc::new(Console {
        admin: cli.admin_socket.clone(),
        token: ari::jose::b64url(token),
        base: format!("/s/{}/", ari::jose::b64url(path)),
        port,
        tz: TimeZone::system(),
        state: Mutex::new(None),
        stale: std::sync::atomic::AtomicBool::new(false),
        fed: Mutex::new(Instant::now()),
    });
    println!("console: http://127.0.0.1:{port}/?token={}", console.token);
    std::io::stdout().flush()?;
    eprintln!(
        "open the URL above in a browser on this machine; anyone with it acts as you on the daemon. Stop with Ctrl-C."
    );
    let open = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        if open.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            open.fetch_sub(1, Ordering::SeqCst);
            continue;
        }
        let (console, open) = (console.clone(), open.clone());
        let spawned = std::thread::Builder::new()
            .name("console".into())
            .spawn(move || {
                let _ = console.serve(stream);
                open.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_err() {
            eprintln!("console: cannot start a thread; a request was dropped");
        }
    }
    Ok(())
}

/// One request, as far as the console reads it.
struct Request {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn param(&self, name: &str) -> Option<&str> {
        self.query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }
}

/// An answer: status, content type, body, and extra headers.
struct Response {
    status: u16,
    kind: &'static str,
    body: Vec<u8>,
    extra: Vec<(&'static str, String)>,
}

impl Response {
    fn new(status: u16, kind: &'static str, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            kind,
            body: body.into(),
            extra: Vec::new(),
        }
    }

    fn json(status: u16, v: &Value) -> Self {
        Self::new(status, "application/json", v.to_string())
    }

    fn refused(status: u16, why: &str) -> Self {
        Self::json(status, &json!({ "error": why }))
    }
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        303 => "See Other",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Content Too Large",
        502 => "Bad Gateway",
        _ => "Error",
    }
}

/// Reads from `stream` what is there, waiting no later than `deadline`.
fn read_by(stream: &mut TcpStream, buf: &mut [u8], deadline: Instant) -> std::io::Result<usize> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(std::io::ErrorKind::TimedOut.into());
    }
    stream.set_read_timeout(Some(left))?;
    stream.read(buf)
}

/// Reads one request: its head within [`MAX_HEAD`], its body within [`MAX_BODY`], the whole
/// of it within [`IO_DEADLINE`] of the connection (a client that trickles bytes does not keep
/// its place longer).
fn read_request(stream: &mut TcpStream) -> Result<Request, Response> {
    let deadline = Instant::now() + IO_DEADLINE;
    let bad = |why: &str| Response::refused(400, why);
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let head_len = loop {
        let n = read_by(stream, &mut chunk, deadline).map_err(|_| bad("unreadable request"))?;
        if n == 0 {
            return Err(bad("incomplete request"));
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => break len,
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => {}
            Ok(httparse::Status::Partial) => return Err(Response::refused(413, "head too large")),
            Err(_) => return Err(bad("malformed request")),
        }
    };
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    req.parse(&buf).map_err(|_| bad("malformed request"))?;
    let target = req.path.unwrap_or("/");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut request = Request {
        method: req.method.unwrap_or("").to_string(),
        path: path.to_string(),
        query: query.to_string(),
        headers: req
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_string(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect(),
        body: buf.get(head_len..).unwrap_or_default().to_vec(),
    };
    let length: usize = match request.header("Content-Length") {
        Some(v) => v.trim().parse().map_err(|_| bad("bad Content-Length"))?,
        None => 0,
    };
    if request.header("Transfer-Encoding").is_some() {
        return Err(bad("chunked bodies are not accepted"));
    }
    if length > MAX_BODY {
        return Err(Response::refused(413, "body too large"));
    }
    while request.body.len() < length {
        let n = read_by(stream, &mut chunk, deadline).map_err(|_| bad("unreadable body"))?;
        if n == 0 {
            return Err(bad("incomplete body"));
        }
        request
            .body
            .extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
    request.body.truncate(length);
    Ok(request)
}

/// Compares secrets in time independent of where they differ.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Console {
    fn serve(&self, mut stream: TcpStream) -> std::io::Result<()> {
        stream.set_write_timeout(Some(IO_DEADLINE))?;
        let response = match read_request(&mut stream) {
            Ok(request) => self.answer(&request),
            Err(refused) => refused,
        };
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
            response.status,
            reason_phrase(response.status),
            response.kind,
            response.body.len()
        );
        for (name, value) in SECURITY_HEADERS {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        for (name, value) in &response.extra {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes())?;
        stream.write_all(&response.body)?;
        stream.flush()
    }

    fn cookie_name(&self) -> String {
        format!("ari_console_{}", self.port)
    }

    /// Whether the request names this server, comes from its origin (if it says), and
    /// carries the token.
    fn check(&self, r: &Request) -> Result<(), Response> {
        let forbidden = |why: &str| Response::refused(403, why);
        if !self.names_this_server(r) {
            return Err(forbidden("wrong Host"));
        }
        if let Some(origin) = r.header("Origin")
            && !self.hosts().iter().any(|h| origin == format!("http://{h}"))
        {
            return Err(forbidden("cross-origin requests are refused"));
        }
        if matches!(r.header("Sec-Fetch-Site"), Some("cross-site" | "same-site")) {
            return Err(forbidden("cross-site requests are refused"));
        }
        let name = self.cookie_name();
        let cookie = r
            .header("Cookie")
            .into_iter()
            .flat_map(|c| c.split(';'))
            .filter_map(|kv| kv.trim().split_once('='))
            .any(|(k, v)| k == name && same_secret(v, &self.token));
        let bearer = r
            .header("Authorization")
            .and_then(|a| a.strip_prefix("Bearer "))
            .is_some_and(|t| same_secret(t.trim(), &self.token));
        if !(cookie || bearer) {
            return Err(forbidden(
                "the console's token is needed (the URL arictl console printed)",
            ));
        }
        Ok(())
    }

    fn answer(&self, r: &Request) -> Response {
        if r.method != "GET" && r.method != "POST" {
            let mut resp = Response::refused(405, "only GET and POST");
            resp.extra.push(("Allow", "GET, POST".into()));
            return resp;
        }
        // The token in the URL, once: traded for a cookie, and out of the address bar.
        if r.method == "GET" && r.path == "/" && r.param("token").is_some() {
            if !self.names_this_server(r)
                || !r
                    .param("token")
                    .is_some_and(|t| same_secret(t, &self.token))
            {
                return Response::refused(403, "wrong token");
            }
            let mut resp = Response::new(303, "text/plain", "");
            resp.extra.push(("Location", self.base.clone()));
            resp.extra.push((
                "Set-Cookie",
                format!(
                    "{}={}; HttpOnly; SameSite=Strict; Path={}",
                    self.cookie_name(),
                    self.token,
                    self.base
                ),
            ));
            return resp;
        }
        if let Err(refused) = self.check(r) {
            return refused;
        }
        let Some(page) = r.path.strip_prefix(self.base.as_str()) else {
            return match r.path.as_str() {
                // With the token but not the page's path (a bookmark of `/`, a script).
                "/" => {
                    let mut resp = Response::new(303, "text/plain", "");
                    resp.extra.push(("Location", self.base.clone()));
                    resp
                }
                _ => Response::refused(404, "no such page"),
            };
        };
        match (r.method.as_str(), page) {
            ("GET", "") => Response::new(200, "text/html; charset=utf-8", INDEX_HTML),
            ("GET", "app.js") => Response::new(200, "text/javascript; charset=utf-8", APP_JS),
            ("GET", "app.css") => Response::new(200, "text/css; charset=utf-8", APP_CSS),
            ("GET", "favicon.svg") => Response::new(200, "image/svg+xml", FAVICON_SVG),
            ("GET", "api/state") => self.state().unwrap_or_else(daemon_error),
            ("GET", "api/events") => self.events(r).unwrap_or_else(daemon_error),
            ("POST", "api/action") => {
                let json = r
                    .header("Content-Type")
                    .is_some_and(|t| t.starts_with("application/json"));
                if !json || r.header("Origin").is_none() {
                    return Response::refused(403, "actions are JSON posts from the console");
                }
                self.action(&r.body)
            }
            _ => Response::refused(404, "no such page"),
        }
    }

    /// The names this server answers to, with its port.
    fn hosts(&self) -> [String; 2] {
        [
            format!("127.0.0.1:{}", self.port),
            format!("localhost:{}", self.port),
        ]
    }

    /// Whether the request's `Host` is one of [`Console::hosts`] (no DNS rebinding).
    fn names_this_server(&self, r: &Request) -> bool {
        r.header("Host")
            .is_some_and(|h| self.hosts().iter().any(|x| x == h))
    }

    /// Balances, pending payments and the hourly series, shaped for the page; reused for
    /// [`STATE_TTL`], or [`STATE_MIN`] once the feed saw news.
    fn state(&self) -> Result<Response> {
        let mut cached = self
            .state
            .lock()
            .map_err(|_| anyhow!("console state lock poisoned"))?;
        if let Some((at, took, v)) = cached.as_ref() {
            let age = at.elapsed();
            let least = STATE_MIN.max(*took * STATE_SHARE);
            if age < least || age < STATE_TTL && !self.stale.load(Ordering::SeqCst) {
                return Ok(Response::json(200, v));
            }
        }
        self.stale.store(false, Ordering::SeqCst);
        let started = Instant::now();
        let spending = crate::spending::fetch_from(&self.admin, None, None, &self.tz)?;
        let pending = call::<call::AdminPaymentList>(
            &self.admin,
            &PaymentListParams {
                status: Some(ari::ledger::PaymentStatus::Pending),
                voucher: None,
                limit: Some(100),
            },
        )?;
        let v = state_json(&spending, &pending.payments, &self.tz);
        *cached = Some((Instant::now(), started.elapsed(), v.clone()));
        Ok(Response::json(200, &v))
    }

    /// The feed: decisions from `from` on, waiting for news; without `from`, the latest few.
    fn events(&self, r: &Request) -> Result<Response> {
        let mut client = Client::connect(&self.admin)?;
        let mut follow = |from: u64, wait_ms: u64, limit: u64| {
            client.request::<call::AdminLogFollow>(&FollowParams {
                from,
                wait_ms: Some(wait_ms),
                limit: Some(limit),
            })
        };
        let from = match r.param("from") {
            Some(n) => Some(
                n.parse::<u64>()
                    .map_err(|_| anyhow!("from is not a number"))?,
            ),
            None => None,
        };
        // A page past the log's end (a daemon restored from a backup) starts again at the end.
        let past_end = |e: &ari::client::ClientError| {
            matches!(e, ari::client::ClientError::Remote(r)
                if r.error == ari::protocol::ErrorCode::InvalidParams)
        };
        let first = match from {
            Some(from) => {
                self.pace();
                // The wait for news, and one entry of it: how far behind the page is.
                match follow(from, FEED_WAIT_MS, 1) {
                    Ok(first) => Some((from, first)),
                    Err(e) if past_end(&e) => None,
                    Err(e) => return Err(e.into()),
                }
            }
            None => None,
        };
        let (events, next) = match first {
            Some((from, first)) => {
                let behind = first.size.saturating_sub(from);
                if first.entries.is_empty() || behind <= 1 {
                    (shown(&first.entries, usize::MAX), first.next)
                } else if behind <= FEED_PAGE {
                    let page = follow(from, 0, FEED_PAGE)?;
                    (shown(&page.entries, usize::MAX), page.next)
                } else {
                    // Far behind (a burst): show the newest and go on from there.
                    let start = first.size.saturating_sub(FEED_START as u64);
                    let tail = follow(start, 0, FEED_START as u64)?;
                    (shown(&tail.entries, usize::MAX), tail.next)
                }
            }
            None => {
                let size = follow(0, 0, 1)?.size;
                let tail = follow(size.saturating_sub(FEED_PAGE), 0, FEED_PAGE)?;
                (shown(&tail.entries, FEED_START), tail.next)
            }
        };
        if !events.is_empty() {
            self.stale.store(true, Ordering::SeqCst);
        }
        let events: Vec<Value> = events
            .into_iter()
            .map(|e| {
                let clock = view::clock(e.time, &self.tz);
                let mut v = json!(e);
                if let Some(map) = v.as_object_mut() {
                    map.insert("clock".into(), json!(clock));
                }
                v
            })
            .collect();
        Ok(Response::json(
            200,
            &json!({ "next": next, "events": events }),
        ))
    }

    /// Keeps feed answers at least [`FEED_PACE`] apart, so a page following a burst reads the
    /// log a few times a second rather than as fast as it can.
    fn pace(&self) {
        let wait = {
            let Ok(mut last) = self.fed.lock() else {
                return;
            };
            let wait = FEED_PACE.saturating_sub(last.elapsed());
            *last = Instant::now() + wait;
            wait
        };
        std::thread::sleep(wait);
    }

    /// Runs one operator action through its admin method.
    fn action(&self, body: &[u8]) -> Response {
        #[derive(Deserialize)]
        #[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
        enum Action {
            Confirm {
                decision: String,
            },
            Reject {
                decision: String,
                reason: Option<String>,
            },
            Freeze {
                agent: String,
            },
            Unfreeze {
                agent: String,
            },
            Revoke {
                voucher: String,
            },
        }
        let action: Action = match serde_json::from_slice(body) {
            Ok(a) => a,
            Err(e) => return Response::refused(400, &format!("not an action: {e}")),
        };
        let admin = &self.admin;
        let done = match action {
            Action::Confirm { decision } => {
                call::<call::AdminPaymentConfirm>(admin, &DecisionParam { decision }).map(drop)
            }
            Action::Reject { decision, reason } => call::<call::AdminPaymentReject>(
                admin,
                &RejectParams {
                    decision,
                    note: reason,
                },
            )
            .map(drop),
            Action::Freeze { agent } => {
                call::<call::AdminAgentFreeze>(admin, &AgentParam { agent }).map(drop)
            }
            Action::Unfreeze { agent } => {
                call::<call::AdminAgentUnfreeze>(admin, &AgentParam { agent }).map(drop)
            }
            Action::Revoke { voucher } => {
                call::<call::AdminVoucherRevoke>(admin, &VoucherParam { voucher }).map(drop)
            }
        };
        if let Ok(mut cached) = self.state.lock() {
            *cached = None;
        }
        match done {
            Ok(()) => Response::json(200, &json!({ "ok": true })),
            Err(e) => Response::refused(409, &format!("{e:#}")),
        }
    }
}

/// The followed entries of a page, at most the last `keep`.
fn shown(entries: &[ari::evidence::entry::Entry], keep: usize) -> Vec<Event> {
    let all: Vec<Event> = entries
        .iter()
        .filter(|e| followed(e.kind))
        .map(event)
        .collect();
    let skip = all.len().saturating_sub(keep);
    all.into_iter().skip(skip).collect()
}

/// The daemon could not answer: the page shows why and tries again.
fn daemon_error(e: anyhow::Error) -> Response {
    Response::refused(502, &format!("the daemon did not answer: {e:#}"))
}

/// Hours in the chart.
const CHART_HOURS: i64 = 24;

/// `/api/state`'s answer: the daemon's figures with every amount and time also written out.
fn state_json(
    s: &Spending,
    pending: &[ari::protocol::payment::DecisionView],
    tz: &TimeZone,
) -> Value {
    let money = |minor: u64, cur: Option<&str>| match cur {
        Some(c) => view::money(minor, c),
        None => minor.to_string(),
    };
    let vouchers: Vec<Value> = s
        .vouchers
        .iter()
        .map(|v| {
            let cur = v.currency.as_deref();
            let mut o = json!(v);
            if let Some(map) = o.as_object_mut() {
                map.insert("state".into(), json!(view::state(v.state)));
                map.insert(
                    "budget_display".into(),
                    json!(v.budget.map_or_else(|| "none".into(), |b| money(b, cur))),
                );
                map.insert("spent_display".into(), json!(money(v.spent, cur)));
                map.insert("held_display".into(), json!(money(v.held, cur)));
                map.insert(
                    "remaining_display".into(),
                    json!(
                        v.remaining
                            .map_or_else(|| "no budget".into(), |r| money(r, cur))
                    ),
                );
                map.insert("expires".into(), json!(view::when(v.expires_at, s.now, tz)));
            }
            o
        })
        .collect();
    let agents: Vec<Value> = s
        .agents
        .iter()
        .map(|a| json!({ "id": a.id, "user": a.user, "status": a.status }))
        .collect();
    let pending: Vec<Value> = pending
        .iter()
        .map(|p| {
            json!({
                "decision": p.decision,
                "agent": p.agent,
                "voucher": p.voucher,
                "amount": p.amount,
                "currency": p.currency,
                "amount_display": view::money(p.amount, &p.currency),
                "payee": p.payee,
                "category": p.category,
                "created_at": p.created_at,
                "created": view::when(p.created_at, s.now, tz),
            })
        })
        .collect();
    let first = s.now - s.now.rem_euclid(3_600) - (CHART_HOURS - 1) * 3_600;
    let mut currencies: Vec<&str> = s.hourly.iter().map(|h| h.currency.as_str()).collect();
    currencies.dedup();
    let series: Vec<Value> = currencies
        .into_iter()
        .map(|cur| {
            let points: Vec<Value> = (0..CHART_HOURS)
                .map(|i| {
                    let t = first + i * 3_600;
                    let amount: u64 = s
                        .hourly
                        .iter()
                        .filter(|h| h.currency == cur && h.hour == t)
                        .map(|h| h.amount)
                        .sum();
                    json!({ "t": t, "label": view::clock(t, tz).get(..5).unwrap_or(""), "amount": amount, "display": view::money(amount, cur) })
                })
                .collect();
            json!({ "currency": cur, "points": points })
        })
        .collect();
    json!({
        "now": s.now,
        "agents": agents,
        "vouchers": vouchers,
        "pending": pending,
        "series": series,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn console() -> Console {
        Console {
            admin: PathBuf::from("/nonexistent/admin.sock"),
            token: "secret-token".into(),
            base: "/s/page/".into(),
            port: 8470,
            tz: TimeZone::UTC,
            state: Mutex::new(None),
            stale: std::sync::atomic::AtomicBool::new(false),
            fed: Mutex::new(Instant::now()),
        }
    }

    fn request(method: &str, target: &str, headers: &[(&str, &str)]) -> Request {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        Request {
            method: method.into(),
            path: path.into(),
            query: query.into(),
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).to_string(), (*v).to_string()))
                .collect(),
            body: Vec::new(),
        }
    }

    const HOST: (&str, &str) = ("Host", "127.0.0.1:8470");
    const COOKIE: (&str, &str) = ("Cookie", "other=1; ari_console_8470=secret-token");

    #[test]
    fn the_token_is_traded_for_a_strict_cookie_and_needed_everywhere() {
        let c = console();
        let r = c.answer(&request("GET", "/?token=secret-token", &[HOST]));
        assert_eq!(r.status, 303);
        let cookie = &r.extra.iter().find(|(n, _)| *n == "Set-Cookie").unwrap().1;
        assert_eq!(
            cookie,
            "ari_console_8470=secret-token; HttpOnly; SameSite=Strict; Path=/s/page/"
        );
        assert_eq!(
            c.answer(&request("GET", "/?token=guess", &[HOST])).status,
            403
        );
        for path in [
            "/",
            "/s/page/app.js",
            "/s/page/app.css",
            "/s/page/api/state",
            "/s/page/api/events",
            "/nope",
        ] {
            assert_eq!(
                c.answer(&request("GET", path, &[HOST])).status,
                403,
                "{path}"
            );
        }
        assert_eq!(
            c.answer(&request("GET", "/s/page/app.js", &[HOST, COOKIE]))
                .status,
            200
        );
        let bearer = ("Authorization", "Bearer secret-token");
        assert_eq!(
            c.answer(&request("GET", "/s/page/", &[HOST, bearer]))
                .status,
            200
        );
        // `/` with the token leads to the page; another path is no page.
        assert_eq!(c.answer(&request("GET", "/", &[HOST, bearer])).status, 303);
        assert_eq!(
            c.answer(&request("GET", "/app.js", &[HOST, bearer])).status,
            404
        );
        let wrong = ("Cookie", "ari_console_8470=secret-tokem");
        assert_eq!(
            c.answer(&request("GET", "/s/page/", &[HOST, wrong])).status,
            403
        );
    }

    #[test]
    fn other_hosts_origins_and_methods_are_refused_even_with_the_token() {
        let c = console();
        let get =
            |headers: &[(&str, &str)]| c.answer(&request("GET", "/s/page/app.css", headers)).status;
        assert_eq!(get(&[("Host", "evil.example:8470"), COOKIE]), 403);
        assert_eq!(get(&[("Host", "127.0.0.1:8471"), COOKIE]), 403);
        assert_eq!(get(&[COOKIE]), 403, "no Host");
        assert_eq!(get(&[HOST, COOKIE, ("Origin", "http://evil.example")]), 403);
        assert_eq!(get(&[HOST, COOKIE, ("Origin", "null")]), 403);
        assert_eq!(get(&[HOST, COOKIE, ("Sec-Fetch-Site", "cross-site")]), 403);
        assert_eq!(get(&[HOST, COOKIE, ("Sec-Fetch-Site", "same-site")]), 403);
        assert_eq!(
            get(&[
                ("Host", "localhost:8470"),
                COOKIE,
                ("Origin", "http://localhost:8470")
            ]),
            200
        );
        for method in ["OPTIONS", "PUT", "DELETE"] {
            assert_eq!(
                c.answer(&request(method, "/s/page/api/action", &[HOST, COOKIE]))
                    .status,
                405
            );
        }
        // An action must be JSON and say it comes from the console's origin.
        let json = ("Content-Type", "application/json");
        let origin = ("Origin", "http://127.0.0.1:8470");
        let form = ("Content-Type", "application/x-www-form-urlencoded");
        assert_eq!(
            c.answer(&request(
                "POST",
                "/s/page/api/action",
                &[HOST, COOKIE, json]
            ))
            .status,
            403
        );
        assert_eq!(
            c.answer(&request(
                "POST",
                "/s/page/api/action",
                &[HOST, COOKIE, form, origin]
            ))
            .status,
            403
        );
        // JSON from the console's origin gets as far as reading the action.
        assert_eq!(
            c.answer(&request(
                "POST",
                "/s/page/api/action",
                &[HOST, COOKIE, json, origin]
            ))
            .status,
            400
        );
    }
}
