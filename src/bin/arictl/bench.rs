//! `arictl bench`: runs the measurements of [`ari::tools::bench`] and prints them, one JSON
//! line per client count, one report's text, or a sweep table. Progress goes to stderr unless
//! the output is JSON.

use crate::cli::{BenchArgs, BenchBackend, BenchCmd};
use anyhow::{Result, bail};
use ari::tools::bench::{self, BenchError, Plan, signing};

/// Runs one `arictl bench` command.
pub(crate) fn run(cmd: &BenchCmd) -> Result<()> {
    match cmd {
        BenchCmd::Authorize(args) if args.backend == BenchBackend::Tpm => {
            let rows = bench::tpm::run(&plan(args)?).map_err(refusal)?;
            print(args.json, &rows, bench::tpm::TpmReport::text, |rows| {
                rows.iter().map(bench::tpm::TpmReport::text).collect()
            })
        }
        BenchCmd::Attest(args) | BenchCmd::Authorize(args) => {
            only_pkcs11(args)?;
            let method = match cmd {
                BenchCmd::Attest(_) => signing::Method::Attest,
                _ => signing::Method::Authorize,
            };
            let rows = signing::run(&plan(args)?, method).map_err(refusal)?;
            print(
                args.json,
                &rows,
                signing::Report::text,
                signing::Report::sweep_text,
            )
        }
        BenchCmd::Log(args) => {
            only_pkcs11(args)?;
            let rows = bench::log::run(&plan(args)?).map_err(refusal)?;
            print(
                args.json,
                &rows,
                bench::log::LogReport::text,
                bench::log::LogReport::sweep_text,
            )
        }
        BenchCmd::Verify { args, log_entries } => {
            only_pkcs11(args)?;
            let rows = bench::verify::measure(&plan(args)?, *log_entries).map_err(refusal)?;
            print(
                args.json,
                &rows,
                bench::verify::VerifyReport::text,
                |rows| rows.iter().map(bench::verify::VerifyReport::text).collect(),
            )
        }
        BenchCmd::Proof {
            entries,
            samples,
            json,
        } => {
            let report = bench::proof::run(*entries, *samples, progress(*json))?;
            if *json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                print!("{}", report.text());
            }
            Ok(())
        }
        BenchCmd::Raw {
            state_dir,
            key_label,
            threads,
            seconds,
        } => {
            let job = signing::RawJob {
                state_dir: state_dir.clone(),
                key_label: key_label.clone(),
                threads: *threads,
                seconds: *seconds,
            };
            println!("{}", serde_json::to_string(&job.run_here()?)?);
            Ok(())
        }
    }
}

/// A bench's error; the daemon's refusal as itself, so `main` gives its hint and exit code.
fn refusal(e: BenchError) -> anyhow::Error {
    match e {
        BenchError::Client(c) => c.into(),
        other => other.into(),
    }
}

/// Refuses `--backend tpm` where only `bench authorize` measures it.
fn only_pkcs11(args: &BenchArgs) -> Result<()> {
    if args.backend == BenchBackend::Tpm {
        bail!("--backend tpm is measured by `bench authorize`");
    }
    Ok(())
}

/// The library's plan from the command line.
fn plan(args: &BenchArgs) -> Result<Plan> {
    Ok(Plan {
        clients: args.clients.clone(),
        seconds: args.seconds,
        state_dir: args.state_dir.clone(),
        program: std::env::current_exe()?,
        progress: progress(args.json),
    })
}

/// Progress lines to stderr, or nowhere when the output is JSON.
fn progress(json: bool) -> fn(&str) {
    if json {
        |_| {}
    } else {
        |line| eprintln!("{line}")
    }
}

/// Prints one report per client count: JSON lines, the single report's text, or a sweep table.
fn print<R: serde::Serialize>(
    json: bool,
    rows: &[R],
    one: impl Fn(&R) -> String,
    sweep: impl Fn(&[R]) -> String,
) -> Result<()> {
    if json {
        for r in rows {
            println!("{}", serde_json::to_string(r)?);
        }
    } else if let [r] = rows {
        print!("{}", one(r));
    } else {
        print!("{}", sweep(rows));
    }
    Ok(())
}
