//! Signed notes (C2SP `signed-note`): the text, a blank line, and one signature line per key,
//! `— <key name> base64(key ID || signature)`.
//!
//! Three signature types occur around the evidence log:
//!
//! - `0x01`, Ed25519 over the note text: the log's signature that the transparency world reads
//!   (Go's `sumdb/note`, witnesses). Key ID: the first 4 bytes of SHA-256(name || `\n` || 0x01
//!   || public key).
//! - `0x02`, ECDSA P-256 over SHA-256 of the text, DER-encoded: the log key in the key store,
//!   as transparency-dev's witness defines it. Key ID: the first 4 bytes of SHA-256 over the DER
//!   `SubjectPublicKeyInfo`.
//! - `0x04`, a witness cosignature (C2SP `tlog-cosignature`, `cosignature/v1`): Ed25519 over
//!   `cosignature/v1\ntime <t>\n` followed by the checkpoint text; the signature field is the
//!   8-byte big-endian time, then the 64-byte signature. Key ID as for 0x01 with type 0x04.
//!
//! A verifier key ("vkey") is written `<name>+<key ID, 8 hex digits>+base64(type || key)`, the
//! form Go's `sumdb/note.NewVerifier` reads; for ECDSA the key is the DER `SubjectPublicKeyInfo`.

use base64ct::{Base64, Encoding};
use ed25519_dalek::{Signature, VerifyingKey};
use sha2::{Digest, Sha256};

/// Ed25519 note signatures.
pub const ED25519: u8 = 0x01;
/// ECDSA note signatures (transparency-dev).
pub const ECDSA: u8 = 0x02;
/// Timestamped Ed25519 witness cosignatures.
pub const COSIGNATURE_V1: u8 = 0x04;

/// Why a note, a line or a verifier key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoteError {
    /// Not well formed (says what).
    #[error("malformed note: {0}")]
    Format(&'static str),
    /// A verifier key string that does not parse (says why).
    #[error("malformed verifier key: {0}")]
    Vkey(&'static str),
    /// A known key's signature does not verify.
    #[error("the signature by {0} does not verify")]
    Signature(String),
}

/// One signature line, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The key name.
    pub name: String,
    /// The key ID.
    pub id: [u8; 4],
    /// What follows the key ID.
    pub signature: Vec<u8>,
}

/// The recommended key ID: the first 4 bytes of SHA-256(name || `\n` || type || key).
pub fn key_id(name: &str, kind: u8, key: &[u8]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', kind]);
    h.update(key);
    h.finalize()
        .as_slice()
        .first_chunk::<4>()
        .copied()
        .unwrap_or_default()
}

/// A signature line for `name` (ends in a newline).
pub fn line(name: &str, id: [u8; 4], signature: &[u8]) -> String {
    let mut blob = id.to_vec();
    blob.extend_from_slice(signature);
    format!("\u{2014} {name} {}\n", Base64::encode_string(&blob))
}

/// A verifier key string: `name+<id hex>+base64(type || key)`.
pub fn vkey(name: &str, id: [u8; 4], kind: u8, key: &[u8]) -> String {
    let mut blob = vec![kind];
    blob.extend_from_slice(key);
    format!(
        "{name}+{}+{}",
        hex::encode(id),
        Base64::encode_string(&blob)
    )
}

/// A parsed verifier key: its name, ID, type and key bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vkey {
    pub name: String,
    pub id: [u8; 4],
    pub kind: u8,
    pub key: Vec<u8>,
}

impl Vkey {
    /// Parses `name+hex8+base64(type||key)`.
    pub fn parse(s: &str) -> Result<Self, NoteError> {
        // A name has no '+'; the base64 key may.
        let mut parts = s.trim().splitn(3, '+');
        let (Some(name), Some(id), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(NoteError::Vkey("expected name+id+key"));
        };
        if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c == '+') {
            return Err(NoteError::Vkey("bad key name"));
        }
        let id: [u8; 4] = hex::decode(id)
            .ok()
            .and_then(|v| v.try_into().ok())
            .filter(|_| id.len() == 8)
            .ok_or(NoteError::Vkey("the key ID is not 8 hex digits"))?;
        let blob = Base64::decode_vec(b64).map_err(|_| NoteError::Vkey("key is not base64"))?;
        let (&kind, key) = blob.split_first().ok_or(NoteError::Vkey("empty key"))?;
        Ok(Self {
            name: name.to_string(),
            id,
            kind,
            key: key.to_vec(),
        })
    }

    /// The Ed25519 key of an `0x01` or `0x04` vkey, after checking its ID.
    pub fn ed25519(&self, kind: u8) -> Result<VerifyingKey, NoteError> {
        if self.kind != kind {
            return Err(NoteError::Vkey("another signature type"));
        }
        if key_id(&self.name, kind, &self.key) != self.id {
            return Err(NoteError::Vkey("the key ID does not match the key"));
        }
        let bytes: [u8; 32] = self
            .key
            .as_slice()
            .try_into()
            .map_err(|_| NoteError::Vkey("an Ed25519 key is 32 bytes"))?;
        VerifyingKey::from_bytes(&bytes).map_err(|_| NoteError::Vkey("not an Ed25519 point"))
    }
}

/// Splits a note into its text (with its final newline) and its signature lines. Bounded by
/// `max` bytes; refuses control characters other than newlines.
pub fn split(note: &str, max: usize) -> Result<(&str, Vec<Line>), NoteError> {
    if note.len() > max {
        return Err(NoteError::Format("the note is too long"));
    }
    if note.chars().any(|c| c.is_control() && c != '\n') {
        return Err(NoteError::Format("control characters in the note"));
    }
    let at = note
        .find("\n\n")
        .ok_or(NoteError::Format("no blank line before the signatures"))?;
    let (text, rest) = note.split_at(at + 1);
    let lines = rest
        .get(1..)
        .and_then(|l| l.strip_suffix('\n'))
        .ok_or(NoteError::Format("the signatures must end in a newline"))?;
    let lines = lines
        .split('\n')
        .map(parse_line)
        .collect::<Result<Vec<_>, _>>()?;
    Ok((text, lines))
}

/// Parses the signature lines a witness answers with (each ends in a newline).
pub fn parse_lines(text: &str) -> Result<Vec<Line>, NoteError> {
    let body = text
        .strip_suffix('\n')
        .ok_or(NoteError::Format("signature lines must end in a newline"))?;
    body.split('\n').map(parse_line).collect()
}

fn parse_line(line: &str) -> Result<Line, NoteError> {
    let (name, blob) = line
        .strip_prefix("\u{2014} ")
        .and_then(|l| l.split_once(' '))
        .ok_or(NoteError::Format("bad signature line"))?;
    if name.is_empty() || name.contains('+') {
        return Err(NoteError::Format("bad key name"));
    }
    let blob =
        Base64::decode_vec(blob).map_err(|_| NoteError::Format("signature is not base64"))?;
    let (id, signature) = blob
        .split_first_chunk::<4>()
        .ok_or(NoteError::Format("signature too short"))?;
    Ok(Line {
        name: name.to_string(),
        id: *id,
        signature: signature.to_vec(),
    })
}

/// An Ed25519 note key (type 0x01): name and public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ed25519Key {
    pub name: String,
    pub key: VerifyingKey,
}

impl Ed25519Key {
    /// Its key ID.
    pub fn id(&self) -> [u8; 4] {
        key_id(&self.name, ED25519, self.key.as_bytes())
    }

    /// Its verifier key string.
    pub fn vkey(&self) -> String {
        vkey(&self.name, self.id(), ED25519, self.key.as_bytes())
    }

    /// Reads a `0x01` verifier key string.
    pub fn from_vkey(s: &str) -> Result<Self, NoteError> {
        let v = Vkey::parse(s)?;
        let key = v.ed25519(ED25519)?;
        Ok(Self { name: v.name, key })
    }

    /// Whether `line` is this key's and verifies over `text`: `Ok(false)` for another key's
    /// line, an error for this key's line that does not verify.
    pub fn check(&self, text: &str, line: &Line) -> Result<bool, NoteError> {
        if line.name != self.name || line.id != self.id() {
            return Ok(false);
        }
        let sig = Signature::from_slice(&line.signature)
            .map_err(|_| NoteError::Signature(self.name.clone()))?;
        self.key
            .verify_strict(text.as_bytes(), &sig)
            .map_err(|_| NoteError::Signature(self.name.clone()))?;
        Ok(true)
    }
}

/// A witness's cosigning key (type 0x04).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cosigner {
    pub name: String,
    pub key: VerifyingKey,
}

impl Cosigner {
    /// Its key ID.
    pub fn id(&self) -> [u8; 4] {
        key_id(&self.name, COSIGNATURE_V1, self.key.as_bytes())
    }

    /// Its verifier key string.
    pub fn vkey(&self) -> String {
        vkey(&self.name, self.id(), COSIGNATURE_V1, self.key.as_bytes())
    }

    /// Reads a `0x04` verifier key string.
    pub fn from_vkey(s: &str) -> Result<Self, NoteError> {
        let v = Vkey::parse(s)?;
        let key = v.ed25519(COSIGNATURE_V1)?;
        Ok(Self { name: v.name, key })
    }

    /// What a cosigner signs for checkpoint `text` at `time`.
    pub fn message(text: &str, time: u64) -> Vec<u8> {
        format!("cosignature/v1\ntime {time}\n{text}").into_bytes()
    }

    /// The time of this cosigner's valid cosignature in `line` over `text`: `Ok(None)` for
    /// another key's line, an error for this key's line that does not verify.
    pub fn check(&self, text: &str, line: &Line) -> Result<Option<u64>, NoteError> {
        if line.name != self.name || line.id != self.id() {
            return Ok(None);
        }
        let bad = || NoteError::Signature(self.name.clone());
        let (time, sig) = line.signature.split_first_chunk::<8>().ok_or_else(bad)?;
        let time = u64::from_be_bytes(*time);
        if time > i64::MAX as u64 {
            return Err(bad());
        }
        let sig = Signature::from_slice(sig).map_err(|_| bad())?;
        self.key
            .verify_strict(&Self::message(text, time), &sig)
            .map_err(|_| bad())?;
        Ok(Some(time))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    const TEXT: &str = "example.com/log\n2\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";

    #[test]
    fn the_go_sumdb_vkey_of_a_known_key_reads_back() {
        // The example verifier key from the documentation of Go's golang.org/x/mod/sumdb/note.
        let vk = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
        let key = Ed25519Key::from_vkey(vk).unwrap();
        assert_eq!(key.name, "PeterNeumann");
        assert_eq!(key.vkey(), vk);
        let mut bad = vk.replace("c74f20a3", "c74f20a4");
        assert!(Ed25519Key::from_vkey(&bad).is_err());
        bad = vk.replace("+ARpc", "+Ahpc");
        assert!(Ed25519Key::from_vkey(&bad).is_err());
    }

    #[test]
    fn a_vkey_whose_base64_holds_a_plus_reads_back() {
        let key = (0u8..=255)
            .map(|seed| Ed25519Key {
                name: "example.com/log".into(),
                key: SigningKey::from_bytes(&[seed; 32]).verifying_key(),
            })
            .find(|k| k.vkey().matches('+').count() > 2)
            .unwrap();
        assert_eq!(Ed25519Key::from_vkey(&key.vkey()).unwrap(), key);
    }

    #[test]
    fn ed25519_lines_and_cosignatures_verify_and_tampering_fails() {
        let sk = SigningKey::from_bytes(&[9; 32]);
        let key = Ed25519Key {
            name: "example.com/log".into(),
            key: sk.verifying_key(),
        };
        let note = format!(
            "{TEXT}\n{}",
            line(&key.name, key.id(), &sk.sign(TEXT.as_bytes()).to_bytes())
        );
        let (text, lines) = split(&note, 4096).unwrap();
        assert_eq!(text, TEXT);
        assert!(key.check(text, &lines[0]).unwrap());
        let other = TEXT.replace("\n2\n", "\n3\n");
        assert!(key.check(&other, &lines[0]).is_err());

        let wsk = SigningKey::from_bytes(&[4; 32]);
        let w = Cosigner {
            name: "witness.example/w1".into(),
            key: wsk.verifying_key(),
        };
        let mut sig = 1_700_000_000u64.to_be_bytes().to_vec();
        sig.extend_from_slice(&wsk.sign(&Cosigner::message(TEXT, 1_700_000_000)).to_bytes());
        let cosig = parse_lines(&line(&w.name, w.id(), &sig)).unwrap();
        assert_eq!(w.check(TEXT, &cosig[0]).unwrap(), Some(1_700_000_000));
        assert!(!key.check(TEXT, &cosig[0]).unwrap());
        let mut late = cosig[0].clone();
        late.signature[7] ^= 1;
        assert!(w.check(TEXT, &late).is_err());
        assert_eq!(Cosigner::from_vkey(&w.vkey()).unwrap(), w);
        assert!(
            Ed25519Key::from_vkey(&w.vkey()).is_err(),
            "a 0x04 key is not a 0x01 key"
        );
    }
}
