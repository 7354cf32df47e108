//! Checkpoints: the log's signed tree heads.
//!
//! The text is the C2SP `tlog-checkpoint` body (origin line, decimal size, standard-base64 root,
//! each ending in a newline) and it travels as a C2SP `signed-note`: the text, a blank line, and
//! one line per signature, `— <key name> base64(key ID || signature)`. The daemon signs with the
//! log key in its token, ECDSA P-256 over SHA-256 of the text, as signature type `0x02`: the
//! signature is ASN.1 DER and the key ID is the first four bytes of SHA-256 over the key's DER
//! `SubjectPublicKeyInfo`. The key name is the origin.
//!
//! A log that wants public witnesses also signs with an Ed25519 key (signature type `0x01`,
//! over the text itself, key ID as the note rules recommend), as C2SP `tlog-tiles` requires of a
//! public log; both lines carry the origin as key name. Witnesses add cosignatures (type
//! `0x04`, [`super::note::Cosigner`]); [`cosigned_by`] finds the valid ones for a quorum.
//!
//! Verification follows the note rules: signatures by other keys are ignored, a known key's
//! signature that fails rejects the note, and a note without a valid known signature is
//! rejected. Parsing never trusts a length or a count it was given.

use super::note::{Cosigner, Ed25519Key, Line, NoteError};
use crate::jose::PublicKey;
use crate::merkle::Hash;
use base64ct::{Base64, Encoding};
use ed25519_dalek::VerifyingKey;
use p256::pkcs8::EncodePublicKey;
use sha2::{Digest, Sha256};

/// The longest note accepted.
pub const MAX_NOTE_BYTES: usize = 16 * 1024;

/// Why a checkpoint was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The note or its text is not well formed (says where).
    #[error("malformed checkpoint: {0}")]
    Format(&'static str),
    /// The checkpoint is for another log.
    #[error("the checkpoint is for log {found:?}, not {expected:?}")]
    Origin { expected: String, found: String },
    /// No signature by the expected key.
    #[error("the checkpoint carries no signature by the log key")]
    Unsigned,
    /// The log key's signature does not verify.
    #[error("the log key's signature on the checkpoint does not verify")]
    Signature,
    /// A known witness's cosignature does not verify.
    #[error("the cosignature by witness {0} does not verify")]
    Cosignature(String),
    /// The public key cannot be encoded.
    #[error("the log key cannot be encoded: {0}")]
    Key(String),
}

/// A tree head: the log named `origin` had `size` entries with this `root`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

impl Checkpoint {
    /// The note text that is signed.
    pub fn text(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            Base64::encode_string(&self.root)
        )
    }

    /// What the log key signs: SHA-256 of the text.
    pub fn digest(&self) -> [u8; 32] {
        Sha256::digest(self.text().as_bytes()).into()
    }

    /// Parses a checkpoint text (origin, size, root, optional extension lines).
    pub fn parse_text(text: &str) -> Result<Self, CheckpointError> {
        let body = text
            .strip_suffix('\n')
            .ok_or(CheckpointError::Format("the text must end in a newline"))?;
        let mut lines = body.split('\n');
        let origin = lines
            .next()
            .filter(|o| valid_name(o))
            .ok_or(CheckpointError::Format("bad origin line"))?;
        let size = lines
            .next()
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .filter(|s| s.len() == 1 || !s.starts_with('0'))
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or(CheckpointError::Format("bad size line"))?;
        let root = lines
            .next()
            .and_then(|r| Base64::decode_vec(r).ok())
            .and_then(|r| Hash::try_from(r.as_slice()).ok())
            .ok_or(CheckpointError::Format("bad root line"))?;
        // Extension lines are allowed by the format; a blank one would end the text.
        if lines.any(str::is_empty) {
            return Err(CheckpointError::Format("blank line inside the text"));
        }
        Ok(Self {
            origin: origin.to_string(),
            size,
            root,
        })
    }
}

/// A key name or origin: non-empty, no whitespace, no `+`, no control characters.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 256
        && !name.contains('+')
        && !name.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Whether `origin` can name a log: a schema-less URL (C2SP `tlog-checkpoint`), a host name of
/// dot-separated labels (letters, digits, `-`) with an optional port, then optional `/path`
/// segments of printable ASCII without `+`. Checkpoints from other logs are parsed more
/// leniently (any valid note key name); this is what this daemon names its own log.
pub fn valid_origin(origin: &str) -> bool {
    if !valid_name(origin) || !origin.is_ascii() || origin.contains("://") {
        return false;
    }
    let (authority, path) = origin.split_once('/').unwrap_or((origin, ""));
    let (host, port) = authority.split_once(':').unwrap_or((authority, ""));
    let label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    let port_ok = authority.len() == host.len()
        || (!port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit()));
    host.split('.').all(label)
        && port_ok
        && (path.is_empty()
            || path
                .split('/')
                .all(|seg| !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_graphic())))
}

/// The note key ID of the log key for signature type 0x02: SHA-256 of its DER
/// `SubjectPublicKeyInfo`, first four bytes.
pub fn key_id(key: &PublicKey) -> Result<[u8; 4], CheckpointError> {
    let der = key
        .verifying_key()
        .to_public_key_der()
        .map_err(|e| CheckpointError::Key(e.to_string()))?;
    let digest = Sha256::digest(der.as_bytes());
    let mut id = [0u8; 4];
    id.copy_from_slice(digest.get(..4).unwrap_or(&[0; 4]));
    Ok(id)
}

/// The ECDSA log key's verifier key string: `origin+<key ID>+base64(0x02 || DER SPKI)`.
pub fn ecdsa_vkey(origin: &str, key: &PublicKey) -> Result<String, CheckpointError> {
    let der = key
        .verifying_key()
        .to_public_key_der()
        .map_err(|e| CheckpointError::Key(e.to_string()))?;
    Ok(super::note::vkey(
        origin,
        key_id(key)?,
        super::note::ECDSA,
        der.as_bytes(),
    ))
}

/// The signed note for `checkpoint`, given the log key and its raw `r || s` signature over
/// [`Checkpoint::digest`].
pub fn note(
    checkpoint: &Checkpoint,
    key: &PublicKey,
    signature: &[u8; 64],
) -> Result<String, CheckpointError> {
    let sig =
        p256::ecdsa::Signature::from_slice(signature).map_err(|_| CheckpointError::Signature)?;
    let mut blob = key_id(key)?.to_vec();
    blob.extend_from_slice(sig.to_der().as_bytes());
    Ok(format!(
        "{}\n\u{2014} {} {}\n",
        checkpoint.text(),
        checkpoint.origin,
        Base64::encode_string(&blob)
    ))
}

/// Adds the log's Ed25519 signature line (type 0x01, over the text) to a signed note; `key` is
/// named by the checkpoint's origin.
pub fn add_ed25519(note: &str, origin: &str, key: &VerifyingKey, signature: &[u8; 64]) -> String {
    let id = super::note::key_id(origin, super::note::ED25519, key.as_bytes());
    format!("{note}{}", super::note::line(origin, id, signature))
}

/// The log's Ed25519 note key: named by its origin.
pub fn ed25519_key(origin: &str, key: VerifyingKey) -> Ed25519Key {
    Ed25519Key {
        name: origin.to_string(),
        key,
    }
}

/// The text and signature lines of a checkpoint note from `origin`, the text parsed.
fn open(note: &str, origin: &str) -> Result<(Checkpoint, String, Vec<Line>), CheckpointError> {
    let (text, lines) = super::note::split(note, MAX_NOTE_BYTES).map_err(|e| match e {
        NoteError::Format(m) | NoteError::Vkey(m) => CheckpointError::Format(m),
        NoteError::Signature(_) => CheckpointError::Signature,
    })?;
    let checkpoint = Checkpoint::parse_text(text)?;
    if checkpoint.origin != origin {
        return Err(CheckpointError::Origin {
            expected: origin.to_string(),
            found: checkpoint.origin,
        });
    }
    Ok((checkpoint, text.to_string(), lines))
}

/// Verifies a signed checkpoint note from the log `origin` with its ECDSA log `key`.
pub fn verify(note: &str, origin: &str, key: &PublicKey) -> Result<Checkpoint, CheckpointError> {
    let (checkpoint, text, lines) = open(note, origin)?;
    let id = key_id(key)?;
    let digest: [u8; 32] = Sha256::digest(text.as_bytes()).into();
    let mut verified = false;
    // Another key's signature (the Ed25519 line, a witness) is not this key's to judge.
    for line in lines.iter().filter(|l| l.name == origin && l.id == id) {
        let sig = p256::ecdsa::Signature::from_der(&line.signature)
            .map_err(|_| CheckpointError::Signature)?;
        key.verify_digest(&digest, &sig.to_bytes())
            .map_err(|_| CheckpointError::Signature)?;
        verified = true;
    }
    if verified {
        Ok(checkpoint)
    } else {
        Err(CheckpointError::Unsigned)
    }
}

/// Verifies a signed checkpoint note from the log `origin` with its Ed25519 log key.
pub fn verify_ed25519(
    note: &str,
    origin: &str,
    key: &Ed25519Key,
) -> Result<Checkpoint, CheckpointError> {
    let (checkpoint, text, lines) = open(note, origin)?;
    let mut verified = false;
    for line in &lines {
        verified |= key
            .check(&text, line)
            .map_err(|_| CheckpointError::Signature)?;
    }
    if verified {
        Ok(checkpoint)
    } else {
        Err(CheckpointError::Unsigned)
    }
}

/// A log key as a verifier holds it: from its note verifier key string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogKey {
    /// Signature type 0x01.
    Ed25519(Ed25519Key),
    /// Signature type 0x02: the log's name and its P-256 key.
    Ecdsa { origin: String, key: PublicKey },
}

impl LogKey {
    /// Reads `name+id+base64(type || key)` for type 0x01 or 0x02, checking the key ID.
    pub fn from_vkey(vkey: &str) -> Result<Self, CheckpointError> {
        let v = super::note::Vkey::parse(vkey).map_err(|e| CheckpointError::Key(e.to_string()))?;
        match v.kind {
            super::note::ED25519 => Ed25519Key::from_vkey(vkey)
                .map(Self::Ed25519)
                .map_err(|e| CheckpointError::Key(e.to_string())),
            super::note::ECDSA => {
                use p256::pkcs8::DecodePublicKey;
                let key = p256::ecdsa::VerifyingKey::from_public_key_der(&v.key)
                    .map_err(|_| CheckpointError::Key("not a P-256 public key".into()))?;
                let key = PublicKey::from_sec1(key.to_sec1_point(false).as_bytes())
                    .map_err(|e| CheckpointError::Key(e.to_string()))?;
                if key_id(&key)? != v.id {
                    return Err(CheckpointError::Key(
                        "the key ID does not match the key".into(),
                    ));
                }
                Ok(Self::Ecdsa {
                    origin: v.name,
                    key,
                })
            }
            _ => Err(CheckpointError::Key(format!(
                "signature type {:#04x} is not a log key type",
                v.kind
            ))),
        }
    }

    /// The log it names.
    pub fn origin(&self) -> &str {
        match self {
            Self::Ed25519(k) => &k.name,
            Self::Ecdsa { origin, .. } => origin,
        }
    }

    /// Verifies a checkpoint note of its log.
    pub fn verify(&self, note: &str) -> Result<Checkpoint, CheckpointError> {
        match self {
            Self::Ed25519(k) => verify_ed25519(note, &k.name, k),
            Self::Ecdsa { origin, key } => verify(note, origin, key),
        }
    }
}

/// The witnesses of `cosigners` whose valid cosignature the note carries, with their times. A
/// known witness's line that does not verify rejects the note.
pub fn cosigned_by<'a>(
    note: &str,
    origin: &str,
    cosigners: &'a [Cosigner],
) -> Result<Vec<(&'a Cosigner, u64)>, CheckpointError> {
    let (_, text, lines) = open(note, origin)?;
    let mut found: Vec<(&Cosigner, u64)> = Vec::new();
    for line in &lines {
        for c in cosigners {
            if let Some(t) = c
                .check(&text, line)
                .map_err(|_| CheckpointError::Cosignature(c.name.clone()))?
                && !found.iter().any(|(f, _)| f.name == c.name)
            {
                found.push((c, t));
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use p256::ecdsa::{SigningKey, signature::hazmat::PrehashSigner};

    fn key(seed: u8) -> (SigningKey, PublicKey) {
        let sk = SigningKey::from_slice(&[seed; 32]).unwrap();
        let pk = PublicKey::from_sec1(sk.verifying_key().to_sec1_point(false).as_bytes()).unwrap();
        (sk, pk)
    }

    fn signed(cp: &Checkpoint, sk: &SigningKey, pk: &PublicKey) -> String {
        let sig: p256::ecdsa::Signature = sk.sign_prehash(&cp.digest()).unwrap();
        note(cp, pk, &sig.to_bytes().into()).unwrap()
    }

    fn cp() -> Checkpoint {
        Checkpoint {
            origin: "ari.example/host-1".into(),
            size: 20852163,
            root: [7; 32],
        }
    }

    #[test]
    fn the_text_is_the_tlog_checkpoint_body() {
        assert_eq!(
            cp().text(),
            "ari.example/host-1\n20852163\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n"
        );
        assert_eq!(Checkpoint::parse_text(&cp().text()).unwrap(), cp());
    }

    #[test]
    fn a_signed_note_verifies_and_names_what_is_wrong() {
        let (sk, pk) = key(1);
        let n = signed(&cp(), &sk, &pk);
        assert!(n.contains("\n\n\u{2014} ari.example/host-1 "));
        assert_eq!(verify(&n, "ari.example/host-1", &pk).unwrap(), cp());
        // Another log, another key, an edited size or root.
        assert!(matches!(
            verify(&n, "ari.example/other", &pk),
            Err(CheckpointError::Origin { .. })
        ));
        let (_, other) = key(2);
        assert_eq!(
            verify(&n, "ari.example/host-1", &other),
            Err(CheckpointError::Unsigned)
        );
        let edited = n.replacen("20852163", "20852164", 1);
        assert_eq!(
            verify(&edited, "ari.example/host-1", &pk),
            Err(CheckpointError::Signature)
        );
        let root = Base64::encode_string(&[7u8; 32]);
        let other_root = Base64::encode_string(&[8u8; 32]);
        let edited = n.replacen(&root, &other_root, 1);
        assert_eq!(
            verify(&edited, "ari.example/host-1", &pk),
            Err(CheckpointError::Signature)
        );
    }

    #[test]
    fn foreign_signatures_are_ignored_and_a_bad_own_one_rejects() {
        let (sk, pk) = key(1);
        let (wsk, wpk) = key(3);
        let n = signed(&cp(), &sk, &pk);
        let witness = signed(
            &Checkpoint {
                origin: "witness.example/w1".into(),
                ..cp()
            },
            &wsk,
            &wpk,
        );
        let witness_line = witness.rsplit_once("\n\n").unwrap().1;
        let both = format!("{n}{witness_line}");
        assert_eq!(verify(&both, "ari.example/host-1", &pk).unwrap(), cp());
        // Our name and key ID with a signature that does not verify.
        let own = n.rsplit_once("\n\n").unwrap().1;
        let blob = Base64::decode_vec(own.split(' ').nth(2).unwrap().trim()).unwrap();
        let mut bad = blob.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        let forged = format!(
            "{}\u{2014} ari.example/host-1 {}\n",
            n,
            Base64::encode_string(&bad)
        );
        assert_eq!(
            verify(&forged, "ari.example/host-1", &pk),
            Err(CheckpointError::Signature)
        );
    }

    #[test]
    fn malformed_notes_are_refused() {
        let (sk, pk) = key(1);
        let n = signed(&cp(), &sk, &pk);
        for bad in [
            n.replacen("\n\n", "\n", 1),
            n.replacen("20852163", "020852163", 1),
            n.replacen("20852163", "-1", 1),
            n.replacen("ari.example/host-1\n", "ari example\n", 1),
            n.replacen('=', "", 1),
            n.replace('\u{2014}', "-"),
            format!("{n}\u{7}"),
            n.trim_end().to_string(),
            "x".repeat(MAX_NOTE_BYTES + 1),
        ] {
            assert!(
                verify(&bad, "ari.example/host-1", &pk).is_err(),
                "accepted {bad:?}"
            );
        }
    }
}
