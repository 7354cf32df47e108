//! The TPM 2.0 key store, driven through `tss-esapi` on Debian's libtss2.
//!
//! One ESAPI context is owned by one thread, which takes jobs from a bounded queue (a full queue
//! answers `Busy`). Keys live under a storage primary key (SRK) in the owner hierarchy; the
//! attestation key (AK) is a restricted signing primary in the endorsement hierarchy. Both are
//! primaries, so the TPM derives them again from its seeds whenever they are needed: nothing
//! about them is stored, and they survive every reset but a TPM clear.
//!
//! An ARI key is created under the SRK (fixedTPM, fixedParent, sensitiveDataOrigin, sign only,
//! unrestricted, ECDSA P-256 with SHA-256). Its auth value is a machine secret, not a human
//! password, so it is exempt from dictionary-attack counting (noDA): a TPM that loses power with
//! keys in use would otherwise count that as a failed try and eventually lock the daemon out.
//! Its id is its blob, the `TPMT_PUBLIC` and the SRK-wrapped `TPM2B_PRIVATE`, which the daemon
//! keeps in its state database; the TPM holds it only while loaded. A TPM without a resource manager holds very few objects (three on swtpm), so
//! loaded objects form a small least-recently-used cache and the thread flushes every transient
//! object when it connects. Creating a key also certifies it with the AK (TPM2_Certify).
//!
//! Quotes are batched: every quote request waiting in the queue when the thread picks one up is
//! answered by the same TPM2_Quote, whose qualifying data is the Merkle root of their binding
//! digests ([`crate::attest::tpm::batch`]). The PCR values are read only when the quoted
//! digest differs from the last values read.
//!
//! When the TPM goes away (the simulator is restarted, the device is reset), calls answer
//! `Unavailable`, which clients may retry; the thread reconnects on the next job, flushes, and
//! loads keys again from their blobs. Auth values are held in zeroizing buffers.
//!
//! The backend is built in layers, each a file: this one is its public face (the options, the
//! [`Backend`] calls, each a job for the owner thread); `owner` is the thread that owns the one
//! ESAPI context, its queue and its recovery from a lost TPM; `object` holds the objects the
//! daemon makes in the TPM (their templates, the blobs that are the keys' ids, their names and
//! public points, and which of them are loaded); `quote` holds quotes and certifications by the
//! AK; `fault` tells what a TPM response code means and which [`BackendError`] a failure ends
//! in. Nothing here reads a private key or hands one out: the TPM never gives one.

mod fault;
mod object;
mod owner;
mod quote;

/// The public templates of the objects the daemon creates in a TPM: the storage key under which
/// the others are made, the attestation key, and ARI keys. Verifiers and tests read them to know
/// what a certified ARI key's attributes must be.
pub use object::{ak_template, ari_template, srk_template};

use super::{AkInfo, Backend, BackendError, BackendFuture, CounterValues, KeyId, KeyInfo, Reply};
use crate::attest::tpm::Quote;
use crate::merkle::Hash;
use owner::{Actor, Job};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use zeroize::Zeroizing;

/// How to reach and use the TPM.
#[derive(Debug)]
pub struct TpmOptions {
    /// TCTI: `device:/dev/tpmrm0`, `swtpm:host=127.0.0.1,port=2321`, `tabrmd`.
    pub tcti: String,
    /// Owner hierarchy auth, if the owner set one.
    pub owner_auth: Option<Zeroizing<Vec<u8>>>,
    /// Endorsement hierarchy auth, if set.
    pub endorsement_auth: Option<Zeroizing<Vec<u8>>>,
    /// The auth value given to every key the daemon creates (empty if `None`).
    pub key_auth: Option<Zeroizing<Vec<u8>>>,
    /// sha256 PCRs to quote.
    pub pcrs: Vec<u8>,
    /// Jobs that may wait before callers get `Busy`.
    pub queue_depth: usize,
    /// Most quote requests answered by one TPM2_Quote; 1 turns batching off.
    pub quote_batch: usize,
    /// Transient objects the TPM can hold at once (3 on swtpm without a resource manager).
    pub max_loaded: usize,
}

/// What the TPM has been asked to do, since the daemon started.
#[derive(Debug, Default)]
pub struct Counters {
    /// Every command sent to the TPM, flushes and loads included.
    pub commands: AtomicU64,
    /// TPM2_Quote commands.
    pub quotes: AtomicU64,
    /// Quote requests answered (a shared quote answers several).
    pub quoted: AtomicU64,
    /// TPM2_Sign commands.
    pub signs: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> CounterValues {
        CounterValues {
            commands: self.commands.load(Ordering::Relaxed),
            quotes: self.quotes.load(Ordering::Relaxed),
            quoted: self.quoted.load(Ordering::Relaxed),
            signs: self.signs.load(Ordering::Relaxed),
        }
    }
}

/// A TPM serving this daemon.
pub struct TpmBackend {
    queue: crossbeam_channel::Sender<Job>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for TpmBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TpmBackend").finish_non_exhaustive()
    }
}

impl TpmBackend {
    /// Connects, flushes the TPM's transient objects, derives the SRK and AK, and starts the
    /// thread that owns the context.
    pub fn start(mut opts: TpmOptions) -> Result<Self, BackendError> {
        // The TPM reports PCR values in index order; keep the list in that order too.
        opts.pcrs.sort_unstable();
        opts.pcrs.dedup();
        let counters = Arc::new(Counters::default());
        let actor = Actor::start(opts, counters.clone())?;
        let (tx, rx) = crossbeam_channel::bounded(actor.opts.queue_depth.max(1));
        std::thread::Builder::new()
            .name("tpm".into())
            .spawn(move || actor.run(rx))
            .map_err(|e| BackendError::Unavailable(format!("cannot start the TPM thread: {e}")))?;
        Ok(Self {
            queue: tx,
            counters,
        })
    }

    fn submit<T: Send + 'static>(
        &self,
        operation: &'static str,
        job: impl FnOnce(Reply<T>) -> Job,
    ) -> BackendFuture<T> {
        super::submit(&self.queue, ("tpm", operation), job)
    }
}

impl Backend for TpmBackend {
    fn kind(&self) -> &'static str {
        "tpm"
    }

    fn generate_key(&self, _label: String) -> BackendFuture<KeyInfo> {
        self.submit("generate", |reply| Job::Generate { reply })
    }

    fn describe_key(&self, id: KeyId) -> BackendFuture<KeyInfo> {
        self.submit("describe", |reply| Job::Describe { id, reply })
    }

    fn sign_digest(&self, id: KeyId, digest: [u8; 32]) -> BackendFuture<[u8; 64]> {
        self.submit("sign", |reply| Job::Sign { id, digest, reply })
    }

    fn destroy_key(&self, id: KeyId) -> BackendFuture<()> {
        self.submit("destroy", |reply| Job::Destroy { id, reply })
    }

    fn quote(&self, binding: Hash) -> BackendFuture<Quote> {
        self.submit("quote", |reply| Job::Quote { binding, reply })
    }

    fn attestation_key(&self) -> BackendFuture<AkInfo> {
        self.submit("attestation_key", |reply| Job::Ak { reply })
    }

    fn counters(&self) -> Option<CounterValues> {
        Some(self.counters.snapshot())
    }

    fn queue(&self) -> super::QueueDepth {
        super::QueueDepth::of(&self.queue)
    }
}
