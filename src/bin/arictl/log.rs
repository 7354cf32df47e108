//! `arictl log` and `arictl record`: the evidence log. Export it (from the daemon, or offline
//! from a copy of its database), print a checkpoint, an entry or an inclusion proof (operator,
//! admin socket), and record an agent's signed statement in it (agent socket).

use crate::cli::{Cli, LogCmd};
use crate::file::read_input;
use crate::print_json;
use crate::rpc::call;
use anyhow::{Context, Result, anyhow, bail};
use ari::archive::{Archive, ArchiveError};
use ari::protocol::call;
use ari::protocol::evidence::{
    CheckpointParams, EntryParams, ExportParams, InclusionParams, RecordParams, WitnessParams,
};
use std::path::Path;

/// `arictl record`: one statement (a JSON object, `-` for stdin) under the agent's label.
pub(crate) fn record(cli: &Cli, kind: &str, body: &str) -> Result<()> {
    let body = if body == "-" {
        read_input(Path::new("-"))?
    } else {
        body.to_owned()
    };
    let body = serde_json::from_str(&body).context("--body is not a JSON object")?;
    let params = RecordParams {
        kind: kind.to_owned(),
        body,
    };
    print_json(&call::<call::EvidenceRecord>(&cli.agent_socket, &params)?)
}

/// Runs one `arictl log` command.
pub(crate) fn run(cli: &Cli, cmd: &LogCmd) -> Result<()> {
    let admin = &cli.admin_socket;
    match cmd {
        LogCmd::Export { out, from, to, db } => {
            let archive = db.as_deref().map(Archive::open).transpose()?;
            // Offline nothing can sign: an end without a checkpoint is refused up front.
            let to = match &archive {
                Some(a) => Some(a.signed_end(*from, *to).map_err(unsigned_end_hint)?),
                None => *to,
            };
            let mut writer = ari::ledger::export::DirWriter::create(out)
                .with_context(|| format!("cannot create an export in {}", out.display()))?;
            let mut next = *from;
            // Whether the last page held a checkpoint of the export's end.
            let mut ends_signed;
            loop {
                let page = match &archive {
                    Some(a) => a.page(next, to)?,
                    None => {
                        let params = ExportParams {
                            from: next,
                            to,
                            limit: None,
                        };
                        call::<call::AdminLogExport>(admin, &params)?
                    }
                };
                writer.add(&page)?;
                next = page.to;
                ends_signed =
                    page.from == page.to || page.checkpoints.iter().any(|c| c.size == page.to);
                if page.to >= page.end || page.entries.is_empty() {
                    break;
                }
            }
            if !ends_signed {
                bail!(
                    "the export in {} ends at entry {next}, which no checkpoint covers: a verifier \
                     would refuse it; remove the directory and export again",
                    out.display()
                );
            }
            let m = writer.finish()?;
            eprintln!(
                "exported entries {}..{} of {} to {}",
                m.from,
                m.to,
                m.origin,
                out.display()
            );
            Ok(())
        }
        LogCmd::Checkpoint => print_json(&call::<call::EvidenceCheckpoint>(
            admin,
            &CheckpointParams::default(),
        )?),
        LogCmd::Vkey => {
            let signed = call::<call::EvidenceCheckpoint>(admin, &CheckpointParams::default())?;
            for vkey in signed.vkeys {
                println!("{vkey}");
            }
            Ok(())
        }
        LogCmd::Witness {
            witness,
            vkey,
            size,
        } => {
            let params = WitnessParams {
                url: witness.clone(),
                vkey: vkey.clone(),
                size: *size,
            };
            let done = call::<call::AdminLogWitness>(admin, &params)?;
            eprintln!(
                "{} cosigned size {} (consistent with size {} it had cosigned)",
                done.witness, done.size, done.old
            );
            print!("{}", done.note);
            Ok(())
        }
        LogCmd::Entry { index } => {
            let params = EntryParams { index: *index };
            print_json(&call::<call::EvidenceEntry>(admin, &params)?)
        }
        LogCmd::Proof { index, tree_size } => {
            let params = InclusionParams {
                index: *index,
                tree_size: *tree_size,
            };
            print_json(&call::<call::EvidenceInclusion>(admin, &params)?)
        }
    }
}

/// An offline export's end without a checkpoint, with the `--to` values that have one.
fn unsigned_end_hint(e: ArchiveError) -> anyhow::Error {
    let ArchiveError::UnsignedEnd { below, above, .. } = e else {
        return e.into();
    };
    let nearest = [below, above]
        .into_iter()
        .flatten()
        .map(|n| format!("--to {n}"))
        .collect::<Vec<_>>()
        .join(" or ");
    anyhow!(
        "{e}: use {}, or export from the running daemon, which signs one",
        if nearest.is_empty() {
            "the daemon"
        } else {
            &nearest
        }
    )
}
