//! The artifacts a verifier is handed, read in every form `arictl` prints them: trusted keys
//! (JWK, PEM, or `arictl tpm ak` output), Status List Tokens, and attestation bundles (a
//! receipt, `arictl attest` output, the bundle JSON or its base64url).

use crate::file::read_input;
use anyhow::{Context, Result, anyhow};
use ari::jose::{Jwk, PublicKey};
use ari::{attest, voucher};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The public keys in JWK files, each a trusted issuer.
pub(crate) fn trusted_keys(files: &[PathBuf]) -> Result<Vec<PublicKey>> {
    files
        .iter()
        .map(|f| {
            Jwk::from_json(&read_input(f)?)
                .and_then(|j| j.to_public_key())
                .with_context(|| format!("{} is not a P-256 public JWK", f.display()))
        })
        .collect()
}

/// The Status List Token in `file`, if given, checked against the trusted issuer keys and, at
/// time `now`, its `exp`.
pub(crate) fn status_list(
    file: Option<&PathBuf>,
    keys: &[PublicKey],
    now: i64,
) -> Result<Option<voucher::status::Verified>> {
    file.map(|f| {
        voucher::status::verify(read_input(f)?.trim(), keys, Some(now))
            .with_context(|| format!("status list {}", f.display()))
    })
    .transpose()
}

/// Reads a bundle from a receipt, `arictl attest` output, the bundle JSON, or its base64url.
pub(crate) fn read_bundle(path: &Path) -> Result<attest::Bundle> {
    let text = read_input(path)?;
    let text = text.trim();
    let b64 = match serde_json::from_str::<Value>(text) {
        Ok(v) if v.get("typ").is_some() => {
            return serde_json::from_value(v).context("not an attestation bundle");
        }
        Ok(v) => ["/bundle", "/attestation"]
            .iter()
            .find_map(|p| v.pointer(p).and_then(Value::as_str).map(str::to_owned))
            .ok_or_else(|| anyhow!("no \"bundle\" or \"attestation\" member"))?,
        Err(_) => text.to_owned(),
    };
    let bytes = ari::jose::b64url_decode(&b64).context("the bundle is not base64url")?;
    serde_json::from_slice(&bytes).context("not an attestation bundle")
}

/// Reads a public key given as PEM, JWK, or `arictl tpm ak` output.
pub(crate) fn read_public_key(path: &Path) -> Result<PublicKey> {
    let text = read_input(path)?;
    if text.trim_start().starts_with("-----BEGIN") {
        return Ok(PublicKey::from_pem(&text)?);
    }
    let v: Value = serde_json::from_str(&text).context("not PEM or JSON")?;
    let jwk = v.get("jwk").cloned().unwrap_or(v);
    Ok(serde_json::from_value::<Jwk>(jwk)
        .context("not a JWK")?
        .to_public_key()?)
}
