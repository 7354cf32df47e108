//! `arictl tpm`: the host's TPM for enrolling it with a verifier: the attestation key and EK
//! certificate (operator, admin socket), and a bundle's quote as the files `tpm2_checkquote`
//! reads, for a check independent of this project (offline).

use crate::artifact::read_bundle;
use crate::cli::{Cli, TpmCmd};
use crate::print_json;
use crate::rpc::call;
use anyhow::{Result, anyhow};
use ari::attest;
use ari::protocol::call;
use ari::protocol::daemon::NoParams;
use std::path::Path;

/// Runs one `arictl tpm` command.
pub(crate) fn run(cli: &Cli, cmd: &TpmCmd) -> Result<()> {
    match cmd {
        TpmCmd::QuoteFiles { bundle, out } => quote_files(bundle, out),
        TpmCmd::Ak { out } => ak(cli, out.as_deref()),
    }
}

/// `arictl tpm quote-files`.
fn quote_files(bundle: &Path, out: &Path) -> Result<()> {
    let bundle = read_bundle(bundle)?;
    let quote = bundle
        .evidence
        .tpm
        .quote
        .as_ref()
        .ok_or_else(|| anyhow!("the bundle has no TPM quote"))?;
    let files = attest::tpm::quote_files(quote)?;
    // The quote qualifies the binding digest, or the batch root it is a leaf of.
    let attest = ari::jose::b64url_decode(&quote.attest)?;
    let qualification = attest::tpm::wire::Attest::read(&attest)?.extra_data;
    std::fs::create_dir_all(out)?;
    std::fs::write(out.join("quote.msg"), &files.message)?;
    std::fs::write(out.join("quote.sig"), &files.signature)?;
    std::fs::write(out.join("pcrs.bin"), &files.pcrs)?;
    std::fs::write(out.join("qualification.hex"), hex::encode(&qualification))?;
    eprintln!(
        "wrote quote.msg, quote.sig, pcrs.bin ({}) and qualification.hex in {}",
        files.pcr_list,
        out.display()
    );
    Ok(())
}

/// `arictl tpm ak`: printed as JSON, or written as files into `out`.
fn ak(cli: &Cli, out: Option<&Path>) -> Result<()> {
    let ak = call::<call::AdminTpmAk>(&cli.admin_socket, &NoParams {})?;
    let Some(dir) = out else {
        return print_json(&ak);
    };
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("ak.pem"), &ak.pem)?;
    std::fs::write(dir.join("ak.jwk"), serde_json::to_string_pretty(&ak.jwk)?)?;
    let mut wrote = vec!["ak.pem", "ak.jwk"];
    if let Some(ek) = &ak.ek_certificate {
        std::fs::write(dir.join("ek.pem"), ek)?;
        wrote.push("ek.pem");
    } else {
        eprintln!("the TPM holds no EK certificate");
    }
    eprintln!("wrote {} in {}", wrote.join(", "), dir.display());
    Ok(())
}
