//! C2SP `tlog-proof`: an entry's inclusion in the log as one offline-verifiable text.
//!
//! ```text
//! c2sp.org/tlog-proof@v1
//! [extra <base64>]
//! index <N>
//! <base64 hash>            (the RFC 6962 inclusion path, leaf's sibling first)
//! ...
//!
//! <the signed checkpoint, with any witness cosignatures>
//! ```
//!
//! A verifier with the log's key (and, if it wants them, a quorum of witness keys) checks the
//! checkpoint, then that the entry's leaf hash at `index` leads to the checkpoint's root. Receipts
//! carry one for their authorization's evidence entry.

use super::checkpoint::{Checkpoint, CheckpointError, LogKey};
use super::witness::{Policy, PolicyError};
use crate::merkle::{self, Hash};
use base64ct::{Base64, Encoding};

/// The first line.
pub const HEADER: &str = "c2sp.org/tlog-proof@v1";

/// Most path hashes accepted (a tree of 2^64 leaves needs 64).
const MAX_PATH: usize = 64;

/// Why a proof was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// Not well formed (says where).
    #[error("malformed tlog-proof: {0}")]
    Format(&'static str),
    /// The checkpoint does not verify.
    #[error("tlog-proof checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
    /// Not enough witnesses cosigned.
    #[error("tlog-proof witnesses: {0}")]
    Policy(#[from] PolicyError),
    /// The receipt and its logged entry do not match (says how).
    #[error("receipt: {0}")]
    Receipt(&'static str),
    /// The entry is not at `index` in the checkpoint's tree.
    #[error("the entry is not at index {index} of the tree of size {size}")]
    NotIncluded { index: u64, size: u64 },
}

/// A parsed proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlogProof {
    /// Opaque extra data, if any (unauthenticated).
    pub extra: Option<Vec<u8>>,
    /// The entry's index.
    pub index: u64,
    /// The inclusion path.
    pub path: Vec<Hash>,
    /// The signed checkpoint note.
    pub note: String,
}

impl TlogProof {
    /// The text form.
    pub fn encode(&self) -> String {
        let mut out = format!("{HEADER}\n");
        if let Some(extra) = &self.extra {
            out.push_str(&format!("extra {}\n", Base64::encode_string(extra)));
        }
        out.push_str(&format!("index {}\n", self.index));
        for h in &self.path {
            out.push_str(&Base64::encode_string(h));
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&self.note);
        out
    }

    /// Parses the text form.
    pub fn parse(text: &str) -> Result<Self, ProofError> {
        let rest = text
            .strip_prefix(HEADER)
            .and_then(|r| r.strip_prefix('\n'))
            .ok_or(ProofError::Format("no c2sp.org/tlog-proof@v1 line"))?;
        let (head, note) = rest
            .split_once("\n\n")
            .ok_or(ProofError::Format("no blank line before the checkpoint"))?;
        let mut lines = head.split('\n').peekable();
        let extra = match lines.peek().and_then(|l| l.strip_prefix("extra ")) {
            Some(b64) => {
                let e =
                    Base64::decode_vec(b64).map_err(|_| ProofError::Format("bad extra line"))?;
                lines.next();
                Some(e)
            }
            None => None,
        };
        let index = lines
            .next()
            .and_then(|l| l.strip_prefix("index "))
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .filter(|n| n.len() == 1 || !n.starts_with('0'))
            .and_then(|n| n.parse().ok())
            .ok_or(ProofError::Format("bad index line"))?;
        let mut path = Vec::new();
        for line in lines {
            if path.len() == MAX_PATH {
                return Err(ProofError::Format("too many path hashes"));
            }
            let h = Base64::decode_vec(line)
                .ok()
                .and_then(|h| Hash::try_from(h.as_slice()).ok())
                .ok_or(ProofError::Format("bad path hash"))?;
            path.push(h);
        }
        Ok(Self {
            extra,
            index,
            path,
            note: note.to_string(),
        })
    }

    /// Checks that `entry` (its exact bytes) is at the proof's index in a checkpoint signed by
    /// `log` and, if given, cosigned by the policy's quorum of witnesses.
    pub fn verify(
        &self,
        entry: &[u8],
        log: &LogKey,
        witnesses: Option<&Policy>,
    ) -> Result<Checkpoint, ProofError> {
        let cp = log.verify(&self.note)?;
        if let Some(policy) = witnesses {
            policy.check(&self.note, log.origin())?;
        }
        let leaf = merkle::leaf_hash(entry);
        if self.index >= cp.size
            || !merkle::verify_inclusion(self.index, cp.size, &leaf, &self.path, &cp.root)
        {
            return Err(ProofError::NotIncluded {
                index: self.index,
                size: cp.size,
            });
        }
        Ok(cp)
    }
}

/// Checks a receipt's `tlog_proof`: the entry in its `extra` is in a checkpoint signed by `log`
/// (and cosigned by the policy's quorum, if given) at the proof's index, it is the
/// `payment.authorized` (or, for a held payment, `payment.confirmed`) entry of that index, and
/// it records exactly the receipt's
/// authorization: its payload and its closed mandate's disclosure. The receipt's own checks are [`crate::payment::verify`]'s.
pub fn verify_receipt(
    receipt: &crate::payment::Receipt,
    log: &LogKey,
    witnesses: Option<&Policy>,
) -> Result<Checkpoint, ProofError> {
    let text = receipt
        .tlog_proof
        .as_deref()
        .ok_or(ProofError::Receipt("the receipt carries no tlog_proof"))?;
    let proof = TlogProof::parse(text)?;
    let entry_bytes = proof.extra.as_deref().ok_or(ProofError::Receipt(
        "the proof's extra does not hold the entry",
    ))?;
    let cp = proof.verify(entry_bytes, log, witnesses)?;
    let entry = super::entry::parse(entry_bytes)
        .map_err(|_| ProofError::Receipt("the logged entry does not parse"))?;
    use super::entry::Kind;
    if !matches!(entry.kind, Kind::PaymentAuthorized | Kind::PaymentConfirmed)
        || entry.index != proof.index
        || entry.log != cp.origin
    {
        return Err(ProofError::Receipt(
            "the logged entry is not this log's payment.authorized (or .confirmed) entry at that index",
        ));
    }
    let payload = receipt.authorization.split('.').nth(1).unwrap_or_default();
    let closed = receipt.authorization.split('~').nth(1).unwrap_or_default();
    if entry.fact.get("mandate").and_then(|m| m.as_str()) != Some(payload)
        || entry.fact.get("closed").and_then(|m| m.as_str()) != Some(closed)
    {
        return Err(ProofError::Receipt(
            "the logged entry records another authorization",
        ));
    }
    Ok(cp)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::evidence::checkpoint;
    use crate::evidence::note::{Cosigner, Ed25519Key, line};
    use crate::merkle::MemoryTree;
    use ed25519_dalek::{Signer, SigningKey};

    const ORIGIN: &str = "pay.example.com/ari/host-1";

    fn log() -> (SigningKey, LogKey, MemoryTree, Vec<Vec<u8>>) {
        let sk = SigningKey::from_bytes(&[3; 32]);
        let key = LogKey::Ed25519(Ed25519Key {
            name: ORIGIN.into(),
            key: sk.verifying_key(),
        });
        let mut tree = MemoryTree::new();
        let entries: Vec<Vec<u8>> = (0..5).map(|i| format!("entry {i}").into_bytes()).collect();
        for e in &entries {
            tree.push(merkle::leaf_hash(e));
        }
        (sk, key, tree, entries)
    }

    fn signed(sk: &SigningKey, tree: &MemoryTree) -> String {
        let cp = Checkpoint {
            origin: ORIGIN.into(),
            size: tree.size(),
            root: tree.root(tree.size()).unwrap(),
        };
        let text = cp.text();
        let sig = sk.sign(text.as_bytes()).to_bytes();
        let id = crate::evidence::note::key_id(
            ORIGIN,
            crate::evidence::note::ED25519,
            sk.verifying_key().as_bytes(),
        );
        format!("{text}\n{}", line(ORIGIN, id, &sig))
    }

    #[test]
    fn a_proof_round_trips_and_verifies_with_and_without_witnesses() {
        let (sk, key, tree, entries) = log();
        let note = signed(&sk, &tree);
        let p = TlogProof {
            extra: Some(b"receipt".to_vec()),
            index: 3,
            path: merkle::inclusion_proof(&tree, 3, 5).unwrap(),
            note: note.clone(),
        };
        let text = p.encode();
        assert!(text.starts_with("c2sp.org/tlog-proof@v1\nextra cmVjZWlwdA==\nindex 3\n"));
        let back = TlogProof::parse(&text).unwrap();
        assert_eq!(back, p);
        assert_eq!(back.verify(&entries[3], &key, None).unwrap().size, 5);
        assert!(matches!(
            back.verify(&entries[2], &key, None),
            Err(ProofError::NotIncluded { index: 3, size: 5 })
        ));

        // A quorum of one witness: refused without its cosignature, accepted with it.
        let wsk = SigningKey::from_bytes(&[8; 32]);
        let w = Cosigner {
            name: "witness.example/w1".into(),
            key: wsk.verifying_key(),
        };
        let policy = Policy {
            witnesses: vec![w.clone()],
            quorum: 1,
        };
        assert!(matches!(
            back.verify(&entries[3], &key, Some(&policy)),
            Err(ProofError::Policy(PolicyError::Quorum { found: 0, .. }))
        ));
        let body = note.split_once("\n\n").unwrap().0.to_string() + "\n";
        let mut sig = 1_800_000_000u64.to_be_bytes().to_vec();
        sig.extend_from_slice(
            &wsk.sign(&Cosigner::message(&body, 1_800_000_000))
                .to_bytes(),
        );
        let cosigned = TlogProof {
            note: format!("{note}{}", line(&w.name, w.id(), &sig)),
            ..back
        };
        cosigned.verify(&entries[3], &key, Some(&policy)).unwrap();
        assert_eq!(
            checkpoint::cosigned_by(&cosigned.note, ORIGIN, &policy.witnesses).unwrap()[0].1,
            1_800_000_000
        );
    }

    #[test]
    fn malformed_proofs_are_refused() {
        let (sk, _, tree, _) = log();
        let note = signed(&sk, &tree);
        for bad in [
            format!("index 1\n\n{note}"),
            format!("{HEADER}\nindex 01\n\n{note}"),
            format!("{HEADER}\nindex x\n\n{note}"),
            format!("{HEADER}\nindex 1\nnot-base64\n\n{note}"),
            format!("{HEADER}\nindex 1\nAAAA\n\n{note}"),
            format!("{HEADER}\nindex 1\n"),
        ] {
            assert!(TlogProof::parse(&bad).is_err(), "{bad:?}");
        }
    }
}
