//! A key store in this process's memory: real P-256 keys, generated and held here, for the
//! library's own tests and the fuzz package, so the service runs in-process without a token or
//! a TPM.
//!
//! It keeps a key store's promises: keys are generated inside it and found by id, no call
//! returns a private half, an unknown id is [`BackendError::KeyNotFound`], signing is asked for
//! by the call itself, destroying a missing key is not an error. It protects nothing, and says
//! so: its kind is `memory`, and every key reports [`IN_MEMORY`] attributes (not on a token, not
//! sensitive, not fixed to the store), which [`KeyAttributes::is_hardware_resident_signing_key`]
//! rejects, so an attestation or a key view made with it cannot pass for hardware.
//!
//! It is compiled only for tests and under the `memory-backend` feature (off by default), and
//! the daemon's configuration has no way to name it: `arid` never holds keys in memory.

use super::{Backend, BackendError, BackendFuture, KeyAttributes, KeyId, KeyInfo, QueueDepth};
use crate::jose::PublicKey;
use p256::ecdsa::signature::hazmat::PrehashSigner;
use p256::ecdsa::{Signature, SigningKey};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

/// What an in-memory key is, stated truthfully: generated here and good only for signing, as a
/// hardware key is, but held in ordinary process memory, readable by this process and fixed to
/// nothing.
pub const IN_MEMORY: KeyAttributes = KeyAttributes {
    // Its value is plain memory, from birth, and nothing stops a copy.
    sensitive: false,
    always_sensitive: false,
    extractable: true,
    never_extractable: false,
    // No token holds it and no login guards it.
    token: false,
    private: false,
    ..KeyAttributes::HARDWARE_RESIDENT
};

/// How many candidate scalars a key generation draws before giving up. A 32-byte draw is a
/// valid P-256 scalar but with probability about 2^-32, so a second draw is already rare.
const DRAWS: u32 = 8;

/// Where new keys' scalars and ids come from.
enum Source {
    /// The system's random number generator.
    Random,
    /// SHA-256 of the seed and the key's number (counted from 1, as a big-endian `u64`), with
    /// the draw appended after a first invalid one: the same keys in the same order on every
    /// run. The fuzz package's committed seeds hold vouchers signed by the keys of the seed
    /// `ari-fuzz`, so this derivation is part of their meaning.
    Seeded(Vec<u8>),
}

impl Source {
    /// The `draw`-th candidate for key number `n` (from 1): 32 bytes for the scalar, 16 for
    /// the id.
    fn candidate(&self, n: u64, draw: u32) -> Result<([u8; 32], [u8; 16]), BackendError> {
        match self {
            Self::Random => {
                let (mut scalar, mut id) = ([0u8; 32], [0u8; 16]);
                getrandom::fill(&mut scalar)
                    .and_then(|()| getrandom::fill(&mut id))
                    .map_err(|e| BackendError::Failed(format!("no randomness for a key: {e}")))?;
                Ok((scalar, id))
            }
            Self::Seeded(seed) => {
                let derive = |prefix: &[u8]| {
                    let mut h = Sha256::new();
                    h.update(prefix);
                    h.update(seed);
                    h.update(n.to_be_bytes());
                    if draw > 0 {
                        h.update(draw.to_be_bytes());
                    }
                    h.finalize()
                };
                let mut id = [0u8; 16];
                for (to, from) in id.iter_mut().zip(derive(b"id:")) {
                    *to = from;
                }
                Ok((derive(b"").into(), id))
            }
        }
    }
}

/// A stored key: its private half never leaves this struct.
struct Stored {
    key: SigningKey,
    info: KeyInfo,
}

/// The keys, and how many were generated.
#[derive(Default)]
struct Keys {
    generated: u64,
    by_id: HashMap<KeyId, Stored>,
}

/// An in-memory key store (see the module documentation).
pub struct MemoryBackend {
    source: Source,
    keys: Mutex<Keys>,
}

impl std::fmt::Debug for MemoryBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBackend")
            .field("keys", &self.lock().by_id.len())
            .finish_non_exhaustive()
    }
}

impl Default for MemoryBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryBackend {
    /// A store whose keys are drawn from the system's random number generator.
    pub fn new() -> Self {
        Self {
            source: Source::Random,
            keys: Mutex::default(),
        }
    }

    /// A store whose n-th key (and its id) is derived from `seed` and n, for runs that must
    /// repeat exactly (a fuzzer replaying an input meets the same keys).
    pub fn seeded(seed: &[u8]) -> Self {
        Self {
            source: Source::Seeded(seed.to_vec()),
            keys: Mutex::default(),
        }
    }

    /// The keys; a panic while they were held cannot leave them half-changed (every change is
    /// one map insert or remove), so a poisoned lock is taken over.
    fn lock(&self) -> MutexGuard<'_, Keys> {
        self.keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn generate(&self, label: &str) -> Result<KeyInfo, BackendError> {
        let mut keys = self.lock();
        let n = keys.generated.saturating_add(1);
        for draw in 0..DRAWS {
            let (scalar, id) = self.source.candidate(n, draw)?;
            let Ok(key) = SigningKey::from_slice(&scalar) else {
                continue;
            };
            let id = KeyId(id.to_vec());
            if keys.by_id.contains_key(&id) {
                continue;
            }
            let public = PublicKey::from_sec1(key.verifying_key().to_sec1_point(false).as_bytes())
                .map_err(|e| BackendError::Failed(format!("a generated key's point: {e}")))?;
            let info = KeyInfo {
                uri: format!("memory:object={label};id={id}"),
                id: id.clone(),
                public,
                attributes: IN_MEMORY,
                certification: None,
            };
            keys.generated = n;
            keys.by_id.insert(
                id,
                Stored {
                    key,
                    info: info.clone(),
                },
            );
            return Ok(info);
        }
        Err(BackendError::Failed(format!(
            "no valid P-256 key in {DRAWS} draws"
        )))
    }

    fn sign(&self, id: &KeyId, digest: &[u8; 32]) -> Result<[u8; 64], BackendError> {
        let keys = self.lock();
        let stored = keys
            .by_id
            .get(id)
            .ok_or_else(|| BackendError::KeyNotFound(id.clone()))?;
        let signature: Signature = stored
            .key
            .sign_prehash(digest)
            .map_err(|e| BackendError::Failed(format!("ECDSA signing: {e}")))?;
        Ok(signature.to_bytes().into())
    }
}

/// An answer already made, as a backend future.
fn answered<T: Send + 'static>(result: Result<T, BackendError>) -> BackendFuture<T> {
    Box::pin(std::future::ready(result))
}

impl Backend for MemoryBackend {
    fn kind(&self) -> &'static str {
        "memory"
    }

    fn generate_key(&self, label: String) -> BackendFuture<KeyInfo> {
        answered(self.generate(&label))
    }

    fn describe_key(&self, id: KeyId) -> BackendFuture<KeyInfo> {
        let found = self.lock().by_id.get(&id).map(|s| s.info.clone());
        answered(found.ok_or(BackendError::KeyNotFound(id)))
    }

    fn sign_digest(&self, id: KeyId, digest: [u8; 32]) -> BackendFuture<[u8; 64]> {
        answered(self.sign(&id, &digest))
    }

    fn destroy_key(&self, id: KeyId) -> BackendFuture<()> {
        self.lock().by_id.remove(&id);
        answered(Ok(()))
    }

    /// No queue: every call is answered as it is made.
    fn queue(&self) -> QueueDepth {
        QueueDepth {
            waiting: 0,
            capacity: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use p256::ecdsa::VerifyingKey;
    use p256::ecdsa::signature::hazmat::PrehashVerifier;

    fn verifying(info: &KeyInfo) -> VerifyingKey {
        VerifyingKey::from_sec1_bytes(&info.public.to_sec1()).unwrap()
    }

    #[tokio::test]
    async fn keys_are_generated_found_used_and_destroyed_by_id() {
        let store = MemoryBackend::new();
        let a = store.generate_key("a".into()).await.unwrap();
        let b = store.generate_key("b".into()).await.unwrap();
        assert_ne!(a.id, b.id);
        assert_ne!(a.public, b.public);
        assert_eq!(a.id.0.len(), 16);
        assert!(a.uri.starts_with("memory:object=a;id="));
        assert_eq!(store.describe_key(a.id.clone()).await.unwrap(), a);

        let digest: [u8; 32] = Sha256::digest(b"a payment").into();
        let raw = store.sign_digest(a.id.clone(), digest).await.unwrap();
        let signature = Signature::from_slice(&raw).unwrap();
        verifying(&a).verify_prehash(&digest, &signature).unwrap();
        assert!(verifying(&b).verify_prehash(&digest, &signature).is_err());

        store.destroy_key(a.id.clone()).await.unwrap();
        store.destroy_key(a.id.clone()).await.unwrap();
        for missing in [
            store.describe_key(a.id.clone()).await.map(drop),
            store.sign_digest(a.id.clone(), digest).await.map(drop),
        ] {
            assert_eq!(missing, Err(BackendError::KeyNotFound(a.id.clone())));
        }
        assert_eq!(store.describe_key(b.id.clone()).await.unwrap(), b);
    }

    #[tokio::test]
    async fn it_reports_what_it_is_and_cannot_pass_for_hardware() {
        let store = MemoryBackend::new();
        assert_eq!(store.kind(), "memory");
        let key = store.generate_key("k".into()).await.unwrap();
        assert_eq!(key.attributes, IN_MEMORY);
        assert!(!key.attributes.is_hardware_resident_signing_key());
        assert!(key.certification.is_none());
        let unsupported = store.quote([0; 32]).await.map(drop);
        assert!(matches!(
            unsupported,
            Err(BackendError::Unsupported {
                backend: "memory",
                ..
            })
        ));
        assert!(store.counters().is_none());
    }

    #[tokio::test]
    async fn seeded_stores_make_the_same_keys_and_random_ones_do_not() {
        let (one, two) = (MemoryBackend::seeded(b"s"), MemoryBackend::seeded(b"s"));
        let other = MemoryBackend::seeded(b"t");
        for _ in 0..3 {
            let a = one.generate_key("k".into()).await.unwrap();
            let b = two.generate_key("k".into()).await.unwrap();
            let c = other.generate_key("k".into()).await.unwrap();
            assert_eq!((&a.id, &a.public), (&b.id, &b.public));
            assert_ne!(a.public, c.public);
        }
        let (r1, r2) = (MemoryBackend::new(), MemoryBackend::new());
        let (a, b) = (
            r1.generate_key("k".into()).await.unwrap(),
            r2.generate_key("k".into()).await.unwrap(),
        );
        assert_ne!(a.public, b.public);
    }
}
