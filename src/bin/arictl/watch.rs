//! `arictl watch`: decisions as they happen, from the evidence log (`admin.log_follow`).
//!
//! Each call waits for the next commit that grows the log and returns what it added; the next
//! call starts where the last answer ended. When the daemon goes away the watch says so once,
//! tries again every [`RETRY`], and goes on from the same entry when it is back: the log keeps
//! everything, so nothing decided in between is missed.

use crate::cli::Cli;
use crate::events::{about, event, followed};
use crate::view;
use anyhow::Result;
use ari::client::Client;
use ari::protocol::call;
use ari::protocol::evidence::{FollowParams, Followed};
use jiff::tz::TimeZone;
use std::io::Write;
use std::time::Duration;

/// How long one call waits for news; well within the client's answer deadline.
const WAIT_MS: u64 = 20_000;
/// Pause between attempts while the daemon cannot be reached.
const RETRY: Duration = Duration::from_millis(200);

/// Follows the log from `from` (default: its end), printing what passes the filters, forever.
pub(crate) fn run(
    cli: &Cli,
    agent: Option<&str>,
    user: Option<&str>,
    from: Option<u64>,
    all: bool,
    json: bool,
) -> Result<()> {
    let tz = TimeZone::system();
    let mut client: Option<Client> = None;
    let mut next = from;
    let mut down = false;
    loop {
        let params = FollowParams {
            from: next.unwrap_or(0),
            wait_ms: Some(if next.is_some() { WAIT_MS } else { 0 }),
            limit: next.is_none().then_some(1),
        };
        let answer = match client.as_mut() {
            Some(c) => c.request::<call::AdminLogFollow>(&params),
            None => Client::connect(&cli.admin_socket)
                .and_then(|c| client.insert(c).request::<call::AdminLogFollow>(&params)),
        };
        let Followed {
            size,
            next: after,
            entries,
        } = match answer {
            Ok(a) => a,
            Err(ari::client::ClientError::Remote(e)) if !e.error.retryable() => {
                return Err(e.into());
            }
            // Gone, going (`shutting_down`) or busy: the same call again in a moment.
            Err(e) => {
                client = None;
                if !down {
                    eprintln!("watch: the daemon cannot be reached ({e}); trying again");
                    down = true;
                }
                std::thread::sleep(RETRY);
                continue;
            }
        };
        if down {
            eprintln!(
                "watch: the daemon is back; going on from entry {}",
                params.from
            );
            down = false;
        }
        let Some(_) = next else {
            // The first call only learned where the log ends.
            next = Some(size);
            continue;
        };
        let mut out = std::io::stdout().lock();
        for entry in entries
            .iter()
            .filter(|e| (all || followed(e.kind)) && about(e, agent, user))
        {
            if json {
                writeln!(out, "{}", serde_json::to_string(entry)?)?;
            } else {
                let e = event(entry);
                writeln!(
                    out,
                    "{}  #{:<6} {}",
                    view::clock(e.time, &tz),
                    e.index,
                    e.text
                )?;
            }
        }
        out.flush()?;
        next = Some(after);
    }
}
