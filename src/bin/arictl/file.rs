//! File arguments: a path, or `-` for stdin.

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::path::Path;

/// Reads a file argument as text; `-` reads stdin.
pub(crate) fn read_input(path: &Path) -> Result<String> {
    if path == Path::new("-") {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
        Ok(s)
    } else {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
    }
}

/// The SHA-256 of a file's bytes, hex.
pub(crate) fn sha256_file(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(hex::encode(Sha256::digest(&bytes)))
}
