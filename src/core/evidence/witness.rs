//! Witnesses: the C2SP `tlog-witness` request a log sends, and the quorum a verifier asks of
//! the cosignatures that come back (C2SP `tlog-policy`'s simplest form: any `quorum` of the
//! listed witnesses).
//!
//! A log posts to `<witness prefix>/add-checkpoint`: a line `old <size>` naming the size the
//! witness last cosigned for this log (0 if none), the RFC 6962 consistency proof from that
//! size to the new one (one base64 hash per line), a blank line, and the signed checkpoint. The
//! witness answers with cosignature lines (200), or with the size it has (409, body `<size>\n`,
//! type `text/x.tlog.size`) when the log's idea of it is wrong.

use super::checkpoint::{self, CheckpointError};
use super::note::Cosigner;
use crate::merkle::Hash;
use base64ct::{Base64, Encoding};

/// Most proof lines a request may carry.
pub const MAX_PROOF_LINES: usize = 63;

/// The body of an `add-checkpoint` request.
pub fn add_checkpoint_body(old: u64, proof: &[Hash], note: &str) -> String {
    let mut body = format!("old {old}\n");
    for h in proof {
        body.push_str(&Base64::encode_string(h));
        body.push('\n');
    }
    body.push('\n');
    body.push_str(note);
    body
}

/// The size in a 409 answer (`<decimal>\n`).
pub fn conflict_size(body: &str) -> Option<u64> {
    let digits = body.strip_suffix('\n').unwrap_or(body);
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// Why a checkpoint does not meet a witness policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// Fewer valid cosignatures than the quorum.
    #[error("{found} of the {quorum} witness cosignatures required (cosigned by: {names})")]
    Quorum {
        found: usize,
        quorum: usize,
        names: String,
    },
    /// The checkpoint itself is refused.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
}

/// A quorum of known witnesses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub witnesses: Vec<Cosigner>,
    pub quorum: usize,
}

impl Policy {
    /// The witnesses, with their cosignature times, if at least `quorum` of them cosigned the
    /// note; a known witness's line that does not verify rejects it.
    pub fn check(&self, note: &str, origin: &str) -> Result<Vec<(String, u64)>, PolicyError> {
        let found: Vec<(String, u64)> = checkpoint::cosigned_by(note, origin, &self.witnesses)?
            .into_iter()
            .map(|(c, t)| (c.name.clone(), t))
            .collect();
        if found.len() < self.quorum {
            return Err(PolicyError::Quorum {
                found: found.len(),
                quorum: self.quorum,
                names: if found.is_empty() {
                    "none".into()
                } else {
                    found
                        .iter()
                        .map(|(n, _)| n.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            });
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_request_body_is_the_specs() {
        let body = add_checkpoint_body(3, &[[0; 32], [255; 32]], "o\n4\nAA==\n\n\u{2014} o x\n");
        assert_eq!(
            body,
            "old 3\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n//////////////////////////////////////////8=\n\no\n4\nAA==\n\n\u{2014} o x\n"
        );
        assert_eq!(add_checkpoint_body(0, &[], "n").as_str(), "old 0\n\nn");
        assert_eq!(conflict_size("42\n"), Some(42));
        for bad in ["", "\n", "-1\n", "4 2\n", "x\n"] {
            assert_eq!(conflict_size(bad), None, "{bad:?}");
        }
    }
}
