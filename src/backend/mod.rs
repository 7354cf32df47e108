//! Key stores behind one trait.
//!
//! Callers (the service, later the voucher and evidence code) see only [`Backend`]: generate a
//! P-256 key inside the store, describe it, sign a SHA-256 digest with it, destroy it. Every
//! operation returns a future so a store can run its blocking work on its own threads; a store
//! with a full queue answers [`BackendError::Busy`] at once instead of queueing without bound.
//! Operations a store cannot do (a TPM quote on a PKCS#11 token) answer
//! [`BackendError::Unsupported`] through the trait's default methods, so adding an operation
//! never forces every store to change. Private keys never cross this boundary: there is no call
//! that returns one. `memory` (tests and the `memory-backend` feature only) holds keys in
//! process memory so the service can be tested without a token; the daemon cannot select it.

#[cfg(any(test, feature = "memory-backend"))]
pub mod memory;
pub mod pkcs11;
pub mod tpm;

use crate::attest::tpm::{Certification, Quote};
use crate::jose::PublicKey;
use crate::merkle::Hash;
use std::fmt;
use std::future::Future;
use std::pin::Pin;

/// A backend operation in progress.
pub type BackendFuture<T> = Pin<Box<dyn Future<Output = Result<T, BackendError>> + Send + 'static>>;

/// Why a backend operation failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackendError {
    /// Every session is busy and the wait queue is full.
    #[error("the signing queue is full")]
    Busy,
    /// The store cannot be reached (module gone, token removed, worker stopped).
    #[error("key store unavailable: {0}")]
    Unavailable(String),
    /// No key with this id is in the store.
    #[error("no key with id {0} in the key store")]
    KeyNotFound(KeyId),
    /// The store refused or failed a call; names the call.
    #[error("{0}")]
    Failed(String),
    /// The store does not offer this operation.
    #[error("the {backend} key store does not support {operation}")]
    Unsupported {
        backend: &'static str,
        operation: &'static str,
    },
}

/// The store-specific id of a key (`CKA_ID` on PKCS#11). Random, 16 bytes for new keys.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub Vec<u8>);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(&self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

pub use crate::attest::KeyAttributes;

/// What the daemon knows about a key in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// The store's id for the key.
    pub id: KeyId,
    /// A URI naming the key (RFC 7512 on PKCS#11).
    pub uri: String,
    /// The public half.
    pub public: PublicKey,
    /// The private half's protection attributes.
    pub attributes: KeyAttributes,
    /// The TPM's certification of the key by its attestation key, made when the key was
    /// created; `None` on stores without a TPM.
    pub certification: Option<Certification>,
}

/// An Ed25519 key in the store: the log's second signature line, the one public witnesses read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ed25519Info {
    /// The store's id for the key.
    pub id: KeyId,
    /// A URI naming the key (RFC 7512 on PKCS#11).
    pub uri: String,
    /// The public key (RFC 8032 encoding).
    pub public: [u8; 32],
}

/// The attestation key and, when the TPM has one, its endorsement key certificate.
#[derive(Debug, Clone)]
pub struct AkInfo {
    /// The AK's public half.
    pub public: PublicKey,
    /// The AK's `TPMT_PUBLIC`.
    pub tpm_public: Vec<u8>,
    /// The EK certificate (DER) from the TPM's NV storage, if provisioned.
    pub ek_certificate: Option<Vec<u8>>,
}

/// A snapshot of [`tpm::Counters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CounterValues {
    /// Every command sent to the TPM.
    pub commands: u64,
    /// TPM2_Quote commands.
    pub quotes: u64,
    /// Quote requests answered.
    pub quoted: u64,
    /// TPM2_Sign commands.
    pub signs: u64,
}

/// Where a secret (a PIN, an auth value) comes from.
#[derive(Debug, Clone)]
pub enum SecretSource {
    /// The first line of a file.
    File(std::path::PathBuf),
    /// A systemd credential in `$CREDENTIALS_DIRECTORY`.
    Credential(String),
}

/// Reads the first line of a secret, trimmed; `what` names it in errors. The text read is
/// zeroized when dropped.
pub fn read_secret(
    source: &SecretSource,
    what: &str,
) -> Result<zeroize::Zeroizing<String>, BackendError> {
    let path = match source {
        SecretSource::File(p) => p.clone(),
        SecretSource::Credential(name) => {
            let dir = std::env::var_os("CREDENTIALS_DIRECTORY").ok_or_else(|| {
                BackendError::Unavailable(format!(
                    "the {what} credential {name:?} is configured but $CREDENTIALS_DIRECTORY is not set (run under systemd with LoadCredential=)"
                ))
            })?;
            std::path::Path::new(&dir).join(name)
        }
    };
    let text = zeroize::Zeroizing::new(std::fs::read_to_string(&path).map_err(|e| {
        BackendError::Unavailable(format!(
            "cannot read the {what} from {}: {e}",
            path.display()
        ))
    })?);
    let line = text.lines().next().unwrap_or_default().trim();
    if line.is_empty() {
        return Err(BackendError::Unavailable(format!(
            "the {what} file {} is empty",
            path.display()
        )));
    }
    Ok(zeroize::Zeroizing::new(line.to_owned()))
}

/// A key store.
pub trait Backend: Send + Sync + 'static {
    /// A short name: `pkcs11`, `tpm`.
    fn kind(&self) -> &'static str;

    /// Generates a P-256 signing key inside the store; `label` names it there.
    fn generate_key(&self, label: String) -> BackendFuture<KeyInfo>;

    /// Looks a key up and reports its public half and attributes.
    fn describe_key(&self, id: KeyId) -> BackendFuture<KeyInfo>;

    /// Signs a SHA-256 digest; the result is the raw 64-byte `r||s`. The signature is asked for
    /// by this call, not when the future is first polled: the payment path starts it from inside
    /// a ledger job and collects it once the job's group is durable.
    fn sign_digest(&self, id: KeyId, digest: [u8; 32]) -> BackendFuture<[u8; 64]>;

    /// Destroys both halves of a key. Destroying a missing key is not an error.
    fn destroy_key(&self, id: KeyId) -> BackendFuture<()>;

    /// Generates an Ed25519 signing key inside the store; stores without Ed25519 (a TPM 2.0)
    /// do not support it.
    fn generate_ed25519(&self, _label: String) -> BackendFuture<Ed25519Info> {
        unsupported(self.kind(), "Ed25519 keys")
    }

    /// Looks an Ed25519 key up.
    fn describe_ed25519(&self, _id: KeyId) -> BackendFuture<Ed25519Info> {
        unsupported(self.kind(), "Ed25519 keys")
    }

    /// Signs `message` itself with an Ed25519 key (pure EdDSA, RFC 8032).
    fn sign_ed25519(&self, _id: KeyId, _message: Vec<u8>) -> BackendFuture<[u8; 64]> {
        unsupported(self.kind(), "Ed25519 keys")
    }

    /// A TPM quote over the configured PCRs that binds `binding` (a payment's binding digest),
    /// alone or as a leaf of a batch; stores without a TPM do not support it.
    fn quote(&self, _binding: Hash) -> BackendFuture<Quote> {
        unsupported(self.kind(), "quotes")
    }

    /// The attestation key that signs quotes and certifications.
    fn attestation_key(&self) -> BackendFuture<AkInfo> {
        unsupported(self.kind(), "attestation keys")
    }

    /// TPM command counts, on stores that have a TPM.
    fn counters(&self) -> Option<CounterValues> {
        None
    }

    /// Requests waiting for the store's threads, and how many may wait.
    fn queue(&self) -> QueueDepth;
}

/// How full a work queue is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct QueueDepth {
    /// Waiting now.
    pub waiting: usize,
    /// Most that may wait before callers get `busy`.
    pub capacity: usize,
}

impl QueueDepth {
    /// The depth of a bounded crossbeam queue.
    pub fn of<T>(queue: &crossbeam_channel::Sender<T>) -> Self {
        Self {
            waiting: queue.len(),
            capacity: queue.capacity().unwrap_or(usize::MAX),
        }
    }
}

/// Where a store's thread sends the answer to one operation. Sending it also records how long
/// the operation took from its submission (queue wait included) for `arictl metrics`, so the
/// figure is the store's even when the caller collects the answer later.
#[derive(Debug)]
pub(crate) struct Reply<T> {
    tx: tokio::sync::oneshot::Sender<Result<T, BackendError>>,
    started: std::time::Instant,
    /// The backend's and the operation's name.
    what: (&'static str, &'static str),
}

impl<T> Reply<T> {
    /// Answers the caller; an answer whose caller has gone away is dropped, the work being done
    /// either way.
    pub(crate) fn send(self, result: Result<T, BackendError>) {
        let outcome = if result.is_ok() { "ok" } else { "error" };
        crate::metrics::metrics().backend_op(
            self.what.0,
            self.what.1,
            outcome,
            self.started.elapsed(),
        );
        let _ = self.tx.send(result);
    }
}

/// Hands a job to a store's worker threads through a bounded queue: `Busy` at once when the
/// queue is full, `Unavailable` when the workers are gone, else the worker's answer. The job is
/// queued by this call, not when the future is first polled, so a caller may start an
/// operation and collect its answer later.
pub(crate) fn submit<J, T: Send + 'static>(
    queue: &crossbeam_channel::Sender<J>,
    what: (&'static str, &'static str),
    job: impl FnOnce(Reply<T>) -> J,
) -> BackendFuture<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let reply = Reply {
        tx,
        started: std::time::Instant::now(),
        what,
    };
    let refused = match queue.try_send(job(reply)) {
        Ok(()) => None,
        Err(crossbeam_channel::TrySendError::Full(_)) => Some(BackendError::Busy),
        Err(crossbeam_channel::TrySendError::Disconnected(_)) => Some(BackendError::Unavailable(
            "the key store's threads have stopped".into(),
        )),
    };
    if let Some(e) = refused {
        let outcome = if e == BackendError::Busy {
            "busy"
        } else {
            "error"
        };
        crate::metrics::metrics().backend_op(what.0, what.1, outcome, std::time::Duration::ZERO);
        return Box::pin(std::future::ready(Err(e)));
    }
    Box::pin(async move {
        rx.await.unwrap_or_else(|_| {
            Err(BackendError::Unavailable(
                "a key store thread stopped mid-call".into(),
            ))
        })
    })
}

fn unsupported<T: Send + 'static>(
    backend: &'static str,
    operation: &'static str,
) -> BackendFuture<T> {
    Box::pin(async move { Err(BackendError::Unsupported { backend, operation }) })
}
