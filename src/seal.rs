//! Signed output held back until the log says it may leave.
//!
//! The daemon's promise is that nothing an agent key or the issuer key signs leaves before the
//! evidence entry that records it (and, for a payment, the debit) is durable. This module makes
//! that a matter of types rather than of statement order:
//!
//! - the service reaches the key store only through [`KeyStore`], which has no "sign these bytes"
//!   call: a signature over a [`Document`] comes back as a [`Withheld`], whose signed bytes stay
//!   inside;
//! - [`Withheld::release`] takes, by value, a [`Logged`] proof of the right kind (a
//!   [`Debited`](crate::ledger::Debited) one for an authorization) naming the same signed digest;
//!   only the ledger mints one, after the group that recorded the entry committed (see
//!   [`crate::ledger`]);
//! - [`Withheld::for_the_log`] lets a ledger job write the signed form into the entry itself
//!   (statements carry their signature), since it needs a job's [`Tx`] and so is durable with
//!   that entry or not at all.
//!
//! Two signatures restate what is already durable rather than add a fact, and are made without an
//! entry: the log key's checkpoints (over the log's committed head) and the issuer's voucher
//! status list (over committed revocations and agent states): [`KeyStore::sign_checkpoint`] and
//! [`KeyStore::sign_status_list`] make only those.

use crate::attest::tpm::Quote;
use crate::backend::{
    AkInfo, Backend, BackendError, BackendFuture, CounterValues, Ed25519Info, KeyId, KeyInfo,
    QueueDepth,
};
use crate::evidence::checkpoint::{self, Checkpoint, CheckpointError};
use crate::identity::certificate::{CertificateError, CsrDraft};
use crate::jose::SigningInput;
use crate::ledger::{Logged, Tx};
use crate::merkle::Hash;
use crate::voucher::VoucherDraft;
use std::marker::PhantomData;
use std::sync::Arc;

/// Something the daemon builds and a key signs: its digest, and how the signature completes it.
pub trait Document {
    /// The signed form.
    type Signed;
    /// The SHA-256 the key signs.
    fn digest(&self) -> [u8; 32];
    /// The signed form, with the raw `r||s` signature.
    fn finish(self, signature: &[u8; 64]) -> Self::Signed;
}

impl Document for SigningInput {
    type Signed = String;
    fn digest(&self) -> [u8; 32] {
        SigningInput::digest(self)
    }
    fn finish(self, signature: &[u8; 64]) -> String {
        SigningInput::finish(self, signature)
    }
}

impl Document for VoucherDraft {
    type Signed = String;
    fn digest(&self) -> [u8; 32] {
        VoucherDraft::digest(self)
    }
    fn finish(self, signature: &[u8; 64]) -> String {
        VoucherDraft::finish(self, signature)
    }
}

impl Document for CsrDraft {
    type Signed = Result<String, CertificateError>;
    fn digest(&self) -> [u8; 32] {
        CsrDraft::digest(self)
    }
    fn finish(self, signature: &[u8; 64]) -> Self::Signed {
        CsrDraft::finish(self, signature)
    }
}

/// A document with its digest computed once: what [`KeyStore::sign`] takes, and what the entry
/// recording it names before the signature is even asked for.
#[derive(Debug, Clone)]
pub struct Prepared<D> {
    document: D,
    digest: [u8; 32],
}

impl<D: Document> Prepared<D> {
    /// Hashes `document`.
    pub fn new(document: D) -> Self {
        Self {
            digest: document.digest(),
            document,
        }
    }

    /// The SHA-256 the key will sign.
    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }

    /// The document.
    pub fn document(&self) -> &D {
        &self.document
    }
}

/// A document for tests: its text is its signed form.
#[cfg(test)]
#[derive(Debug, Clone)]
pub(crate) struct TestDocument(String);

#[cfg(test)]
impl Document for TestDocument {
    type Signed = String;
    fn digest(&self) -> [u8; 32] {
        [0; 32]
    }
    fn finish(self, _signature: &[u8; 64]) -> String {
        self.0
    }
}

/// Why a withheld signature was not released.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReleaseError {
    /// The proof is for an entry that records another signed digest.
    #[error("entry {index} records another signed output than the one being released")]
    WrongEntry {
        /// The entry the proof was for.
        index: u64,
    },
}

/// A signed document that has not left the daemon. `P` is the proof its entry must carry:
/// [`Debited`](crate::ledger::Debited) for a payment authorization, `()` otherwise.
#[derive(Debug)]
#[must_use = "a withheld signature is only useful once released with its Logged proof"]
pub struct Withheld<D, P> {
    document: D,
    digest: [u8; 32],
    signature: [u8; 64],
    proof: PhantomData<fn(P)>,
}

impl<D: Document, P> Withheld<D, P> {
    /// The SHA-256 the key signed: what the entry must name.
    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }

    /// The signed form, once `logged` proves its entry durable; with the proof's entry index.
    pub fn release(self, logged: Logged<P>) -> Result<(D::Signed, u64), ReleaseError> {
        if *logged.covers() != self.digest {
            return Err(ReleaseError::WrongEntry {
                index: logged.index(),
            });
        }
        Ok((self.document.finish(&self.signature), logged.index()))
    }

    /// A withheld document for the ledger's tests: a text "signed" over `digest`.
    #[cfg(test)]
    pub(crate) fn for_test(digest: [u8; 32], text: &str) -> Withheld<TestDocument, P> {
        Withheld {
            document: TestDocument(text.to_string()),
            digest,
            signature: [0; 64],
            proof: PhantomData,
        }
    }

    /// The signed form as an entry written in `tx` records it: durable with that entry or not at
    /// all, and readable by nobody before the job's group commits.
    pub fn for_the_log(&self, _tx: &Tx<'_>) -> D::Signed
    where
        D: Clone,
    {
        self.document.clone().finish(&self.signature)
    }
}

/// A signature the key store is making. It is asked for when [`KeyStore::sign`] is called, not
/// when this is first awaited: the payment path starts it inside a ledger job and collects it
/// while the job's group commits.
#[must_use = "the signature is being made; await it to get the withheld document"]
pub struct Signing<D, P> {
    document: D,
    digest: [u8; 32],
    signature: BackendFuture<[u8; 64]>,
    proof: PhantomData<fn(P)>,
}

impl<D, P> std::fmt::Debug for Signing<D, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signing").finish_non_exhaustive()
    }
}

impl<D: Document, P> Signing<D, P> {
    /// The document, signed and still withheld.
    pub async fn withheld(self) -> Result<Withheld<D, P>, BackendError> {
        let signature = self.signature.await?;
        Ok(Withheld {
            document: self.document,
            digest: self.digest,
            signature,
            proof: PhantomData,
        })
    }
}

/// The key store as the service sees it: everything the [`Backend`] does, but signing only
/// through [`Withheld`] (and the two restatements of durable state named in the module doc).
#[derive(Clone)]
pub struct KeyStore(Arc<dyn Backend>);

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("KeyStore").field(&self.0.kind()).finish()
    }
}

impl KeyStore {
    /// The service's view of `backend`.
    pub fn new(backend: Arc<dyn Backend>) -> Self {
        Self(backend)
    }

    /// Asks for `key`'s signature over `document` now; the result is withheld until its entry,
    /// carrying a `P`, is durable.
    pub fn sign<D: Document, P>(&self, key: KeyId, document: Prepared<D>) -> Signing<D, P> {
        Signing {
            signature: self.0.sign_digest(key, document.digest),
            document: document.document,
            digest: document.digest,
            proof: PhantomData,
        }
    }

    /// The log keys' note over `checkpoint`, a head the ledger committed: the ECDSA line, then
    /// the Ed25519 line where the log has that key.
    pub async fn sign_checkpoint(
        &self,
        key: &KeyInfo,
        ed25519: Option<&Ed25519Info>,
        checkpoint: &Checkpoint,
    ) -> Result<Result<String, CheckpointError>, BackendError> {
        let ecdsa = self.0.sign_digest(key.id.clone(), checkpoint.digest());
        let ed = ed25519.map(|k| {
            (
                k.public,
                self.0
                    .sign_ed25519(k.id.clone(), checkpoint.text().into_bytes()),
            )
        });
        let signature = ecdsa.await?;
        let note = match checkpoint::note(checkpoint, &key.public, &signature) {
            Ok(note) => note,
            Err(e) => return Ok(Err(e)),
        };
        let Some((public, signing)) = ed else {
            return Ok(Ok(note));
        };
        let signature = signing.await?;
        Ok(ed25519_dalek::VerifyingKey::from_bytes(&public)
            .map_err(|_| CheckpointError::Key("the log's Ed25519 key is not a valid point".into()))
            .map(|k| checkpoint::add_ed25519(&note, &checkpoint.origin, &k, &signature)))
    }

    /// The issuer's signature over a Status List Token built from committed voucher and agent
    /// states.
    pub async fn sign_status_list(
        &self,
        key: &KeyInfo,
        list: SigningInput,
    ) -> Result<String, BackendError> {
        let signature = self.0.sign_digest(key.id.clone(), list.digest()).await?;
        Ok(list.finish(&signature))
    }

    /// A short name: `pkcs11`, `tpm`.
    pub fn kind(&self) -> &'static str {
        self.0.kind()
    }

    /// See [`Backend::generate_key`].
    pub fn generate_key(&self, label: String) -> BackendFuture<KeyInfo> {
        self.0.generate_key(label)
    }

    /// See [`Backend::describe_key`].
    pub fn describe_key(&self, id: KeyId) -> BackendFuture<KeyInfo> {
        self.0.describe_key(id)
    }

    /// See [`Backend::destroy_key`].
    pub fn destroy_key(&self, id: KeyId) -> BackendFuture<()> {
        self.0.destroy_key(id)
    }

    /// See [`Backend::quote`].
    pub fn quote(&self, binding: Hash) -> BackendFuture<Quote> {
        self.0.quote(binding)
    }

    /// See [`Backend::attestation_key`].
    pub fn attestation_key(&self) -> BackendFuture<AkInfo> {
        self.0.attestation_key()
    }

    /// See [`Backend::counters`].
    pub fn counters(&self) -> Option<CounterValues> {
        self.0.counters()
    }

    /// See [`Backend::queue`].
    pub fn queue(&self) -> QueueDepth {
        self.0.queue()
    }
}
