//! The evidence log's verifiers. The first byte picks one:
//! - 0: stored entries, one per line: `entry::parse` and `entry::check_chain` as they are;
//! - 1: the same, with each JSON entry's absent `prev` filled in with the leaf hash of the line
//!   before it, so the checks after `prev` are reached;
//! - 2: a signed note as it is: `checkpoint::verify` for the origin on its first line;
//! - 3: a checkpoint text signed here (a valid signature line by the fixed log key appended),
//!   then `checkpoint::verify`; and when the text parses, `checkpoint::note` must round-trip;
//! - 4: Merkle proofs: a tree of up to 300 leaves, real inclusion and consistency proofs that
//!   must verify, and one flipped bit (chosen by the input) that must make them fail; then
//!   `verify_inclusion` / `verify_consistency` on arbitrary sizes, indices and hashes;
//! - 5: a statement fact (`{"statement","signature","batch","jwk"}` JSON) as it is:
//!   `statement::verify`;
//! - 6: up to 8 statements (any bytes, split at 0xff) signed here as one batch by a fixed agent
//!   key: `statement::verify` of each in its place, which must accept every statement that is
//!   well-formed claims by the agent, and of each in another statement's place, which must not;
//! - 7: the transparency texts as they are: a C2SP tlog-proof (whose encoding must parse back
//!   to itself), a note's signature lines, verifier keys of each type, a witness's 409 size and
//!   an entry bundle.
#![no_main]

use ari::evidence::checkpoint::{self, Checkpoint};
use ari::evidence::statement::{self, BATCH_TYP, BatchClaims, StatementClaims, StatementFact};
use ari::{evidence::entry, merkle};
use ari_fuzz::{b64, issuer, jws, keys, split_once};
use base64ct::{Base64, Encoding};
use libfuzzer_sys::fuzz_target;
use p256::pkcs8::EncodePublicKey;
use sha2::{Digest, Sha256};

const ORIGIN: &str = "ari.example/log";

fn entries(rest: &[u8], fill_prev: bool) {
    let _ = entry::parse(rest);
    let mut lines: Vec<Vec<u8>> = rest.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
    if fill_prev {
        for i in 1..lines.len() {
            let prev = b64(&merkle::leaf_hash(&lines[i - 1]));
            if let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(&lines[i]) {
                ari_fuzz::fill(&mut v, "prev", || serde_json::Value::String(prev));
                lines[i] = serde_json::to_vec(&v).unwrap_or_default();
            }
        }
    }
    for e in &lines {
        let _ = entry::parse(e);
    }
    let log = match lines.first().and_then(|l| entry::parse(l).ok()) {
        Some(e) => e.log,
        None => ORIGIN.to_string(),
    };
    if let Ok((parsed, t)) = entry::check_chain(&log, 0, None, &lines) {
        assert_eq!(parsed.len(), lines.len());
        assert_eq!(t.size(), lines.len() as u64);
    }
}

fn note_verify(note: &str) {
    let origin = note.split('\n').next().unwrap_or_default();
    if let Ok(c) = checkpoint::verify(note, origin, &issuer().pk) {
        assert_eq!(c.origin, origin);
    }
    let _ = checkpoint::verify(note, ORIGIN, &issuer().pk);
}

fn signed_note(text: &str) {
    let key = issuer();
    let origin = text.split('\n').next().unwrap_or_default();
    let der = key.pk.verifying_key().to_public_key_der().expect("DER");
    let mut blob = Sha256::digest(der.as_bytes())[..4].to_vec();
    let digest: [u8; 32] = Sha256::digest(text.as_bytes()).into();
    let sig = p256::ecdsa::Signature::from_slice(&key.sign_digest(&digest)).expect("signature");
    blob.extend_from_slice(sig.to_der().as_bytes());
    let note = format!(
        "{text}\n\u{2014} {origin} {}\n",
        Base64::encode_string(&blob)
    );
    note_verify(&note);
    if let Ok(c) = Checkpoint::parse_text(text) {
        let n = checkpoint::note(&c, &key.pk, &key.sign_digest(&c.digest())).expect("a note");
        let back =
            checkpoint::verify(&n, &c.origin, &key.pk).expect("a signed checkpoint verifies");
        assert_eq!(back, c);
    }
}

fn u64_at(data: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    for (i, x) in data.iter().skip(at).take(8).enumerate() {
        b[i] = *x;
    }
    u64::from_le_bytes(b)
}

fn proofs(rest: &[u8]) {
    let n = u64::from(*rest.first().unwrap_or(&1)) + u64::from(*rest.get(1).unwrap_or(&0)) % 45 + 1;
    let mut t = merkle::MemoryTree::new();
    for i in 0..n {
        t.push(merkle::leaf_hash(&i.to_le_bytes()));
    }
    let index = u64::from(*rest.get(2).unwrap_or(&0)) % n;
    let size = index + 1 + u64::from(*rest.get(3).unwrap_or(&0)) % (n - index);
    let flip =
        usize::from(*rest.get(4).unwrap_or(&0)) << 8 | usize::from(*rest.get(5).unwrap_or(&0));
    let leaf = merkle::leaf_hash(&index.to_le_bytes());
    let root = t.root(size).expect("root");
    let mut proof = merkle::inclusion_proof(&t, index, size).expect("inclusion proof");
    assert!(merkle::verify_inclusion(index, size, &leaf, &proof, &root));
    // One flipped bit of the leaf or of a proof hash must make the proof fail.
    let mut bad_leaf = leaf;
    let bits = 256 * (proof.len() + 1);
    let bit = flip % bits;
    if bit < 256 {
        bad_leaf[bit / 8] ^= 1 << (bit % 8);
    } else {
        let b = bit - 256;
        proof[b / 256][(b % 256) / 8] ^= 1 << (b % 8);
    }
    assert!(!merkle::verify_inclusion(
        index, size, &bad_leaf, &proof, &root
    ));

    let old = 1 + u64::from(*rest.get(6).unwrap_or(&0)) % size;
    let old_root = t.root(old).expect("old root");
    let mut cproof = merkle::consistency_proof(&t, old, size).expect("consistency proof");
    assert!(merkle::verify_consistency(
        old, size, &old_root, &root, &cproof
    ));
    if !cproof.is_empty() {
        let b = flip % (256 * cproof.len());
        cproof[b / 256][(b % 256) / 8] ^= 1 << (b % 8);
        assert!(!merkle::verify_consistency(
            old, size, &old_root, &root, &cproof
        ));
    }

    // Arbitrary numbers and hashes: no panic, whatever they are.
    let tail = rest.get(7..).unwrap_or_default();
    let (i, s, o) = (u64_at(tail, 0), u64_at(tail, 8), u64_at(tail, 16));
    let hashes: Vec<merkle::Hash> = tail
        .get(24..)
        .unwrap_or_default()
        .chunks_exact(32)
        .map(|c| <[u8; 32]>::try_from(c).expect("32 bytes"))
        .collect();
    let h0 = hashes.first().copied().unwrap_or_default();
    let _ = merkle::verify_inclusion(i, s, &h0, &hashes, &h0);
    let _ = merkle::verify_consistency(o, s, &h0, &root, &hashes);
    let _ = merkle::Frontier::from_hashes(s, &hashes).map(|f| f.root());
}

fn transparency(rest: &[u8]) {
    use ari::evidence::{note, proof::TlogProof, tiles, witness};
    let _ = tiles::unbundle(rest);
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    if let Ok(p) = TlogProof::parse(text) {
        assert_eq!(TlogProof::parse(&p.encode()).as_ref(), Ok(&p));
    }
    let _ = note::split(text, checkpoint::MAX_NOTE_BYTES);
    let _ = note::parse_lines(text);
    let _ = note::Vkey::parse(text);
    let _ = note::Cosigner::from_vkey(text);
    let _ = checkpoint::LogKey::from_vkey(text);
    let _ = witness::conflict_size(text);
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 8 {
        0 | 1 => entries(rest, mode % 8 == 1),
        7 => transparency(rest),
        2 => {
            if let Ok(note) = std::str::from_utf8(rest) {
                note_verify(note);
            }
        }
        3 => {
            if let Ok(text) = std::str::from_utf8(rest) {
                signed_note(text);
            }
        }
        4 => proofs(rest),
        5 => {
            if let Ok(fact) = serde_json::from_slice::<StatementFact>(rest) {
                let _ = statement::verify(&fact, "shop-bot");
            }
        }
        _ => {
            let key = &keys()[1];
            let (agent, rest) = split_once(rest, b'\n');
            let agent = std::str::from_utf8(agent).unwrap_or("shop-bot");
            let statements: Vec<&[u8]> = rest.split(|b| *b == 0xff).take(8).collect();
            let (root, paths) = statement::batch(&statements);
            let claims = BatchClaims {
                iss: format!("urn:ari:agent:{agent}"),
                iat: 1,
                size: paths.len() as u64,
                root: b64(&root),
            };
            let Ok(payload) = serde_json::to_vec(&claims) else {
                return;
            };
            let signature = jws(BATCH_TYP, &key.kid, &payload, key);
            for (i, (s, path)) in statements.iter().zip(&paths).enumerate() {
                let fact = StatementFact {
                    statement: b64(s),
                    signature: signature.clone(),
                    batch: path.clone(),
                    jwk: key.jwk(),
                    signed: None,
                };
                let well_formed =
                    serde_json::from_slice::<StatementClaims>(s).is_ok_and(|c| c.iss == claims.iss);
                match statement::verify(&fact, agent) {
                    Ok(c) => {
                        assert!(well_formed);
                        assert_eq!(c.iss, claims.iss);
                        let _ = statement::check_request(&c.kind, &c.body);
                    }
                    Err(e) => assert!(!well_formed, "{e}"),
                }
                // Another statement in this one's place.
                let other = statements[(i + 1) % statements.len()];
                if other != *s {
                    let moved = StatementFact {
                        statement: b64(other),
                        ..fact
                    };
                    assert!(statement::verify(&moved, agent).is_err());
                }
            }
        }
    }
});
