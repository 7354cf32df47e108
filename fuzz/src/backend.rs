//! FUZZING ONLY: an in-process key store with deterministic keys, so `Service::handle_line`
//! can be fuzzed without a token or a TPM. It is no key store: private keys are ordinary memory
//! and derived from a counter. Nothing outside this fuzz package may use it.

use ari::backend::{
    Backend, BackendError, BackendFuture, KeyAttributes, KeyId, KeyInfo, QueueDepth,
};
use ari::jose::PublicKey;
use p256::ecdsa::SigningKey;
use p256::ecdsa::signature::hazmat::PrehashSigner;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;

/// Deterministic keys by id; the n-th generated key's scalar is SHA-256("ari-fuzz" || n).
#[derive(Default)]
pub struct MemoryBackend {
    keys: Mutex<(u64, HashMap<Vec<u8>, (SigningKey, String)>)>,
}

impl std::fmt::Debug for MemoryBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MemoryBackend")
    }
}

fn info(id: &[u8], sk: &SigningKey, label: &str) -> Result<KeyInfo, BackendError> {
    let public = PublicKey::from_sec1(sk.verifying_key().to_sec1_point(false).as_bytes())
        .map_err(|e| BackendError::Failed(e.to_string()))?;
    Ok(KeyInfo {
        id: KeyId(id.to_vec()),
        uri: format!("memory:object={label};id={}", hex::encode(id)),
        public,
        attributes: KeyAttributes::HARDWARE_RESIDENT,
        certification: None,
    })
}

impl Backend for MemoryBackend {
    fn kind(&self) -> &'static str {
        "pkcs11"
    }

    fn generate_key(&self, label: String) -> BackendFuture<KeyInfo> {
        let result = (|| {
            let mut keys = self
                .keys
                .lock()
                .map_err(|_| BackendError::Failed("poisoned".into()))?;
            keys.0 += 1;
            let n = keys.0;
            let mut seed = Sha256::new();
            seed.update(b"ari-fuzz");
            seed.update(n.to_be_bytes());
            let sk = SigningKey::from_slice(&seed.finalize())
                .map_err(|e| BackendError::Failed(e.to_string()))?;
            let id = n.to_be_bytes().to_vec();
            let out = info(&id, &sk, &label)?;
            keys.1.insert(id, (sk, label));
            Ok(out)
        })();
        Box::pin(async move { result })
    }

    fn describe_key(&self, id: KeyId) -> BackendFuture<KeyInfo> {
        let result = match self.keys.lock() {
            Ok(keys) => match keys.1.get(&id.0) {
                Some((sk, label)) => info(&id.0, sk, label),
                None => Err(BackendError::KeyNotFound(id.clone())),
            },
            Err(_) => Err(BackendError::Failed("poisoned".into())),
        };
        Box::pin(async move { result })
    }

    fn sign_digest(&self, id: KeyId, digest: [u8; 32]) -> BackendFuture<[u8; 64]> {
        let result = match self.keys.lock() {
            Ok(keys) => match keys.1.get(&id.0) {
                Some((sk, _)) => sk
                    .sign_prehash(&digest)
                    .map(|s: p256::ecdsa::Signature| s.to_bytes().into())
                    .map_err(|e| BackendError::Failed(e.to_string())),
                None => Err(BackendError::KeyNotFound(id.clone())),
            },
            Err(_) => Err(BackendError::Failed("poisoned".into())),
        };
        Box::pin(async move { result })
    }

    fn destroy_key(&self, id: KeyId) -> BackendFuture<()> {
        if let Ok(mut keys) = self.keys.lock() {
            keys.1.remove(&id.0);
        }
        Box::pin(async { Ok(()) })
    }

    fn queue(&self) -> QueueDepth {
        QueueDepth {
            waiting: 0,
            capacity: 256,
        }
    }
}
