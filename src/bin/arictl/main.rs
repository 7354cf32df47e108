//! `arictl`: the operator's tool (over the admin socket), the agent-side client for scripts
//! (over the agent socket), the offline verifier, and the benchmark driver.
//!
//! Thin: [`cli`] defines the command line, each command family has a file of its own, every call
//! to the daemon goes through [`rpc::call`], typed by its method, and what is not command-line glue is a library call
//! ([`ari::archive`], [`ari::verifier`], [`ari::tools::bench`]). `main` prints an error with a
//! hint at the next step when the daemon's refusal makes one clear, and exits 2 for a refusal,
//! 1 for anything else.

mod agent;
mod artifact;
mod bench;
mod cli;
mod console;
mod events;
mod file;
mod identity;
mod issuer;
mod keys;
mod log;
mod payment;
mod rpc;
mod spending;
mod status;
mod time;
mod tpm;
mod verify;
mod view;
mod voucher;
mod watch;

use anyhow::Result;
use ari::client::ClientError;
use ari::protocol::counterparty::CounterpartyRole;
use clap::Parser;
use cli::{Cli, Command};

/// Runs the command line's command.
fn run(cli: &Cli) -> Result<()> {
    match &cli.command {
        Command::Agent(cmd) => agent::run(cli, cmd),
        Command::Status {
            json,
            issuer_jwk,
            log_jwk,
        } => status::status(cli, *json, *issuer_jwk, *log_jwk),
        Command::Metrics => status::metrics(cli),
        Command::Voucher(cmd) => voucher::run(cli, cmd),
        Command::Issuer(cmd) => issuer::run(cli, cmd),
        Command::Merchant(cmd) => issuer::counterparty(cli, CounterpartyRole::Merchant, cmd),
        Command::Provider(cmd) => issuer::counterparty(cli, CounterpartyRole::Provider, cmd),
        Command::Keys(cmd) => keys::run(cli, cmd),
        Command::Payment(cmd) => payment::run(cli, cmd),
        Command::Spending { agent, user, json } => spending::run(cli, agent, user, *json),
        Command::Watch {
            agent,
            user,
            from,
            all,
            json,
        } => watch::run(cli, agent.as_deref(), user.as_deref(), *from, *all, *json),
        Command::Console { port } => console::run(cli, *port),
        Command::Identity { jwk } => identity::identity(cli, *jwk),
        Command::Attest { nonce } => identity::attest(cli, nonce),
        Command::Record { kind, body } => log::record(cli, kind, body),
        Command::Log(cmd) => log::run(cli, cmd),
        Command::Verify(cmd) => verify::run(cmd),
        Command::Tpm(cmd) => tpm::run(cli, cmd),
        Command::Bench(cmd) => bench::run(cmd),
    }
}

/// Prints a JSON value, pretty.
fn print_json(v: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Prints a listing: the whole result as JSON, or a header and one line per row.
fn print_table(
    result: &impl serde::Serialize,
    as_json: bool,
    header: String,
    rows: impl Iterator<Item = String>,
) -> Result<()> {
    if as_json {
        return print_json(result);
    }
    println!("{header}");
    rows.for_each(|row| println!("{row}"));
    Ok(())
}

/// What to do about a refusal, for the reasons where the next step is clear.
fn next_step(reason: &str) -> Option<&'static str> {
    Some(match reason {
        "forbidden" => {
            "run arictl as root, as a member of the admin socket's group (admin_socket.group, `ari-admin` in a package install), or as a uid in admin_socket.allow_uids"
        }
        "unknown_caller" => {
            "this process is not a provisioned agent: an operator runs `arictl agent provision --agent ID --user U --uid $(id -u) --exe PATH-OF-THIS-PROGRAM`"
        }
        "agent_frozen" => "an operator can serve it again with `arictl agent unfreeze ID`",
        "agent_not_found" => "`arictl agent list` shows the agents",
        "voucher_not_found" => "`arictl voucher list` shows the vouchers",
        "decision_not_found" => "`arictl payment list` shows the decisions",
        "busy"
        | "backend_unavailable"
        | "storage_error"
        | "shutting_down"
        | "not_yet_checkpointed" => {
            "this is temporary: retry shortly; if it persists, `arictl status` shows the backend and queues"
        }
        "report_overdue" => "report the earlier payment's result first (`arictl payment report`)",
        _ => return None,
    })
}

fn main() {
    // `arictl generate-assets --out DIR`: man pages and completions, for packaging.
    ari::tools::assets::generate_if_requested(<Cli as clap::CommandFactory>::command, "1");
    let cli = Cli::parse();
    if let Err(e) = run(&cli) {
        eprintln!("arictl: {e:#}");
        let code = match e.downcast_ref::<ClientError>() {
            Some(ClientError::Remote(r)) => {
                if let Some(step) = next_step(r.error.reason()) {
                    eprintln!("hint: {step}");
                }
                2
            }
            _ => 1,
        };
        std::process::exit(code);
    }
}
