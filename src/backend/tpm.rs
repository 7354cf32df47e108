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
//! keys in use would otherwise count that as a failed try and eventually lock the daemon out. Its id is its blob, the `TPMT_PUBLIC` and the
//! SRK-wrapped `TPM2B_PRIVATE`, which the daemon keeps in its state database; the TPM holds it only
//! while loaded. A TPM without a resource manager holds very few objects (three on swtpm), so
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

use super::{
    AkInfo, Backend, BackendError, BackendFuture, CounterValues, KeyAttributes, KeyId, KeyInfo,
    Reply,
};
use crate::attest::tpm::{self as evidence, Certification, Quote};
use crate::jose;
use crate::merkle::Hash;
use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tss_esapi::Context;
use tss_esapi::attributes::ObjectAttributesBuilder;
use tss_esapi::constants::CapabilityType;
use tss_esapi::constants::tss::{TPM2_RH_NULL, TPM2_ST_HASHCHECK, TPM2_TRANSIENT_FIRST};
use tss_esapi::handles::KeyHandle;
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::resource_handles::Hierarchy;
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::{
    Auth, CapabilityData, Data, Digest, EccPoint, EccScheme, HashScheme,
    KeyDerivationFunctionScheme, PcrSelectionList, PcrSelectionListBuilder, PcrSlot, Private,
    Public, PublicBuilder, PublicEccParametersBuilder, Signature, SignatureScheme,
    SymmetricDefinitionObject,
};
use tss_esapi::tcti_ldr::TctiNameConf;
use tss_esapi::traits::Marshall;
use tss_esapi::tss2_esys::TPMT_TK_HASHCHECK;
use zeroize::Zeroizing;

/// The blob format tag at the start of every TPM key id.
const BLOB_TAG: &[u8; 4] = b"tpm1";

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

enum Job {
    Generate {
        reply: Reply<KeyInfo>,
    },
    Describe {
        id: KeyId,
        reply: Reply<KeyInfo>,
    },
    Sign {
        id: KeyId,
        digest: [u8; 32],
        reply: Reply<[u8; 64]>,
    },
    Destroy {
        id: KeyId,
        reply: Reply<()>,
    },
    Quote {
        binding: Hash,
        reply: Reply<Quote>,
    },
    Ak {
        reply: Reply<AkInfo>,
    },
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
        TctiNameConf::from_str(&opts.tcti)
            .map_err(|e| BackendError::Unavailable(format!("bad TCTI {:?}: {e}", opts.tcti)))?;
        let counters = Arc::new(Counters::default());
        let mut actor = Actor {
            pcr_selection: pcr_selection(&opts.pcrs)?,
            opts,
            ctx: None,
            loaded: Vec::new(),
            tick: 0,
            pcr_cache: None,
            ak: None,
            counters: counters.clone(),
        };
        actor.recovering("start", |a| a.ak_public().map(drop))?;
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

/// An object the TPM may hold loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Obj {
    Srk,
    Ak,
    Key(KeyId),
}

struct Loaded {
    obj: Obj,
    handle: KeyHandle,
    used: u64,
}

/// Why a TPM call failed, and what to do about it.
#[derive(Debug)]
enum Fault {
    /// The connection is gone: reconnect.
    Connection(String),
    /// Loaded objects are gone or the TPM is full: flush and load again.
    Objects(String),
    /// The TPM was reset without a startup: start it.
    Initialize(String),
    /// The TPM asked to be called again.
    Retry(String),
    /// The request itself failed; retrying will not help.
    Fatal(BackendError),
}

impl Fault {
    fn from_tss(call: &str, e: tss_esapi::Error) -> Self {
        let what = format!("{call}: {e}");
        let tss_esapi::Error::Tss2Error(code) = e else {
            return Fault::Fatal(BackendError::Failed(what));
        };
        let rc = match code {
            tss_esapi::constants::response_code::Tss2ResponseCode::Success => 0,
            tss_esapi::constants::response_code::Tss2ResponseCode::FormatZero(c) => {
                raw(&c.to_string())
            }
            tss_esapi::constants::response_code::Tss2ResponseCode::FormatOne(c) => {
                raw(&c.to_string())
            }
        };
        let layer = (rc >> 16) & 0xff;
        let base = rc & 0xffff;
        if layer != 0 {
            // The TCTI or ESAPI layer: the link to the TPM, not the TPM, failed.
            return Fault::Connection(what);
        }
        if base & 0x80 != 0 {
            // Format one: a handle, parameter or session is named. TPM_RC_HANDLE means a
            // loaded object is gone.
            return if base & 0x3f == 0x0b {
                Fault::Objects(what)
            } else {
                Fault::Fatal(BackendError::Failed(what))
            };
        }
        match base {
            0x100 => Fault::Initialize(what),
            0x901..=0x903 | 0x910..=0x917 => Fault::Objects(what),
            0x908 | 0x90a | 0x922 => Fault::Retry(what),
            0x101 => Fault::Connection(what),
            // Lockout: the TPM refuses DA-protected auth until its recovery time passes.
            0x921 => Fault::Fatal(BackendError::Unavailable(what)),
            _ => Fault::Fatal(BackendError::Failed(what)),
        }
    }

    fn into_error(self) -> BackendError {
        match self {
            Fault::Connection(w) | Fault::Objects(w) | Fault::Initialize(w) | Fault::Retry(w) => {
                BackendError::Unavailable(w)
            }
            Fault::Fatal(e) => e,
        }
    }
}

/// The numeric value in tss-esapi's "Response code value: 0x..." text; it keeps the raw code
/// private, and the layer bits tell a broken link from a TPM error.
fn raw(text: &str) -> u32 {
    text.rsplit("0x")
        .next()
        .and_then(|h| u32::from_str_radix(h.trim(), 16).ok())
        .unwrap_or(0)
}

fn tss(call: &'static str) -> impl FnOnce(tss_esapi::Error) -> Fault {
    move |e| Fault::from_tss(call, e)
}

/// The P-256 point of a marshalled ECC `TPMT_PUBLIC`, read as a verifier reads it.
fn p256_point(public: &[u8]) -> Option<jose::PublicKey> {
    evidence::wire::EccPublic::read(public)
        .ok()
        .and_then(|p| evidence::ecc_point(&p))
}

fn failed(what: impl Into<String>) -> Fault {
    Fault::Fatal(BackendError::Failed(what.into()))
}

struct Actor {
    opts: TpmOptions,
    ctx: Option<Context>,
    loaded: Vec<Loaded>,
    tick: u64,
    pcr_selection: PcrSelectionList,
    /// The PCR values last read (index order) and their digest.
    pcr_cache: Option<(Vec<[u8; 32]>, [u8; 32])>,
    /// The AK's public area, once derived.
    ak: Option<Public>,
    counters: Arc<Counters>,
}

impl Actor {
    /// Serves jobs until every sender is gone. Quote requests are held while other work is
    /// waiting, for a few rounds at most, so the payments that arrive meanwhile join the same
    /// quote; everything else is served in arrival order.
    fn run(mut self, rx: crossbeam_channel::Receiver<Job>) {
        const ROUNDS: usize = 4;
        let size = self.opts.quote_batch.max(1);
        while let Ok(first) = rx.recv() {
            let mut quotes = Vec::new();
            let mut next = Some(first);
            for _ in 0..ROUNDS {
                let mut served = false;
                let mut taken = 0;
                while taken < 256
                    && let Some(job) = next.take().or_else(|| rx.try_recv().ok())
                {
                    taken += 1;
                    match job {
                        Job::Quote { binding, reply } => quotes.push((binding, reply)),
                        other => {
                            self.serve(other);
                            served = true;
                        }
                    }
                    if quotes.len() >= size {
                        break;
                    }
                }
                // Holding quotes only pays while other work keeps the TPM busy.
                if !served || quotes.len() >= size || size == 1 {
                    break;
                }
            }
            while !quotes.is_empty() {
                let rest = quotes.split_off(size.min(quotes.len()));
                self.quote_batch(std::mem::replace(&mut quotes, rest));
            }
        }
        self.flush_all();
    }

    fn serve(&mut self, job: Job) {
        // A reply whose caller has gone away is dropped; the work is done either way.
        match job {
            Job::Generate { reply } => {
                reply.send(self.recovering("create", Actor::generate));
            }
            Job::Describe { id, reply } => {
                reply.send(self.recovering("load", |a| a.describe(&id)));
            }
            Job::Sign { id, digest, reply } => {
                reply.send(self.recovering("sign", |a| a.sign(&id, &digest)));
            }
            Job::Destroy { id, reply } => {
                self.forget(&Obj::Key(id));
                reply.send(Ok(()));
            }
            Job::Ak { reply } => {
                reply.send(self.recovering("read the AK", Actor::ak_info));
            }
            Job::Quote { binding, reply } => self.quote_batch(vec![(binding, reply)]),
        }
    }

    /// Runs `op`, recovering once from a lost connection, lost objects or a reset TPM.
    fn recovering<T>(
        &mut self,
        what: &str,
        op: impl Fn(&mut Self) -> Result<T, Fault>,
    ) -> Result<T, BackendError> {
        let mut last = None;
        for _ in 0..3 {
            if self.ctx.is_none()
                && let Err(f) = self.connect()
            {
                return Err(f.into_error());
            }
            match op(self) {
                Ok(v) => return Ok(v),
                Err(Fault::Fatal(e)) => return Err(e),
                Err(Fault::Connection(w)) => {
                    tracing::warn!(call = what, error = %w, "lost the TPM; reconnecting");
                    self.disconnect();
                    last = Some(Fault::Connection(w));
                }
                Err(Fault::Objects(w)) => {
                    tracing::warn!(call = what, error = %w, "TPM objects lost; flushing and reloading");
                    self.flush_all();
                    last = Some(Fault::Objects(w));
                }
                Err(Fault::Initialize(w)) => {
                    tracing::warn!(call = what, error = %w, "the TPM was reset; starting it");
                    if let Some(ctx) = self.ctx.as_mut() {
                        self.counters.commands.fetch_add(1, Ordering::Relaxed);
                        let _ = ctx.startup(tss_esapi::constants::StartupType::Clear);
                    }
                    self.loaded.clear();
                    last = Some(Fault::Initialize(w));
                }
                Err(Fault::Retry(w)) => {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                    last = Some(Fault::Retry(w));
                }
            }
        }
        Err(last.map_or_else(
            || BackendError::Unavailable(format!("{what}: the TPM did not answer")),
            Fault::into_error,
        ))
    }

    fn connect(&mut self) -> Result<(), Fault> {
        let tcti = TctiNameConf::from_str(&self.opts.tcti)
            .map_err(|e| failed(format!("bad TCTI {:?}: {e}", self.opts.tcti)))?;
        let mut ctx = Context::new(tcti).map_err(|e| {
            Fault::Connection(format!("cannot open the TPM at {}: {e}", self.opts.tcti))
        })?;
        for (hierarchy, auth) in [
            (Hierarchy::Owner, &self.opts.owner_auth),
            (Hierarchy::Endorsement, &self.opts.endorsement_auth),
        ] {
            if let Some(a) = auth {
                let auth = Auth::try_from(a.to_vec())
                    .map_err(|e| failed(format!("hierarchy auth: {e}")))?;
                ctx.tr_set_auth(hierarchy.into(), auth)
                    .map_err(|e| failed(format!("hierarchy auth: {e}")))?;
            }
        }
        self.ctx = Some(ctx);
        self.loaded.clear();
        self.pcr_cache = None;
        // Without a resource manager, objects a previous process left loaded fill the TPM.
        self.flush_leftovers()?;
        Ok(())
    }

    fn disconnect(&mut self) {
        self.ctx = None;
        self.loaded.clear();
    }

    fn ctx(&mut self) -> Result<&mut Context, Fault> {
        self.counters.commands.fetch_add(1, Ordering::Relaxed);
        self.ctx
            .as_mut()
            .ok_or_else(|| Fault::Connection("not connected to the TPM".into()))
    }

    fn flush_leftovers(&mut self) -> Result<(), Fault> {
        let (data, _) = self
            .ctx()?
            .get_capability(CapabilityType::Handles, TPM2_TRANSIENT_FIRST, 64)
            .map_err(tss("TPM2_GetCapability"))?;
        let CapabilityData::Handles(handles) = data else {
            return Ok(());
        };
        for h in handles.iter().copied() {
            let ctx = self.ctx()?;
            if let Ok(obj) = ctx.tr_from_tpm_public(h) {
                ctx.flush_context(obj).map_err(tss("TPM2_FlushContext"))?;
            }
        }
        Ok(())
    }

    fn flush_all(&mut self) {
        let loaded = std::mem::take(&mut self.loaded);
        if let Some(ctx) = self.ctx.as_mut() {
            for l in loaded {
                self.counters.commands.fetch_add(1, Ordering::Relaxed);
                let _ = ctx.flush_context(l.handle.into());
            }
        }
    }

    fn forget(&mut self, obj: &Obj) {
        if let Some(pos) = self.loaded.iter().position(|l| &l.obj == obj) {
            let l = self.loaded.swap_remove(pos);
            if let Some(ctx) = self.ctx.as_mut() {
                self.counters.commands.fetch_add(1, Ordering::Relaxed);
                let _ = ctx.flush_context(l.handle.into());
            }
        }
    }

    /// The handle of `obj`, loading it (and evicting the least recently used objects not in
    /// `keep`) if needed.
    fn handle(&mut self, obj: &Obj, keep: &[&Obj]) -> Result<KeyHandle, Fault> {
        self.tick += 1;
        let tick = self.tick;
        if let Some(l) = self.loaded.iter_mut().find(|l| &l.obj == obj) {
            l.used = tick;
            return Ok(l.handle);
        }
        let capacity = self.opts.max_loaded.max(2);
        let handle = match obj {
            Obj::Srk => {
                self.make_room(capacity, keep, obj)?;
                let r = self
                    .ctx()?
                    .execute_with_session(Some(AuthSession::Password), |c| {
                        c.create_primary(Hierarchy::Owner, srk_template()?, None, None, None, None)
                    })
                    .map_err(tss("TPM2_CreatePrimary (storage key)"))?;
                r.key_handle
            }
            Obj::Ak => {
                self.make_room(capacity, keep, obj)?;
                let auth = self.key_auth()?;
                let r = self
                    .ctx()?
                    .execute_with_session(Some(AuthSession::Password), |c| {
                        c.create_primary(
                            Hierarchy::Endorsement,
                            ak_template()?,
                            auth,
                            None,
                            None,
                            None,
                        )
                    })
                    .map_err(tss("TPM2_CreatePrimary (attestation key)"))?;
                self.ak = Some(r.out_public);
                r.key_handle
            }
            Obj::Key(id) => {
                let (public, private) = parse_blob(id)?;
                let mut keep_srk: Vec<&Obj> = keep.to_vec();
                keep_srk.push(obj);
                let srk = self.handle(&Obj::Srk, &keep_srk)?;
                self.make_room(capacity, &keep_srk, obj)?;
                self.ctx()?
                    .execute_with_session(Some(AuthSession::Password), |c| {
                        c.load(srk, private, public)
                    })
                    .map_err(|e| match Fault::from_tss("TPM2_Load", e) {
                        Fault::Fatal(_) => Fault::Fatal(BackendError::KeyNotFound(id.clone())),
                        other => other,
                    })?
            }
        };
        if let Some(auth) = self.key_auth()?
            && matches!(obj, Obj::Ak | Obj::Key(_))
        {
            // Local to ESAPI: not a TPM command, so not counted.
            self.ctx
                .as_mut()
                .ok_or_else(|| Fault::Connection("not connected to the TPM".into()))?
                .tr_set_auth(handle.into(), auth)
                .map_err(tss("Esys_TR_SetAuth"))?;
        }
        self.loaded.push(Loaded {
            obj: obj.clone(),
            handle,
            used: tick,
        });
        // The storage key is needed only to load keys. Kept in a full TPM it would take the slot
        // of a key in use and every later call would load again: let it go first.
        if matches!(obj, Obj::Key(_)) && self.loaded.len() >= capacity && !keep.contains(&&Obj::Srk)
        {
            self.forget(&Obj::Srk);
        }
        Ok(handle)
    }

    fn make_room(&mut self, capacity: usize, keep: &[&Obj], adding: &Obj) -> Result<(), Fault> {
        while self.loaded.len() >= capacity {
            let victim = self
                .loaded
                .iter()
                .filter(|l| &l.obj != adding && !keep.contains(&&l.obj))
                .min_by_key(|l| l.used)
                .map(|l| l.obj.clone())
                .ok_or_else(|| failed("the TPM has no room for another loaded object"))?;
            self.forget(&victim);
        }
        Ok(())
    }

    fn key_auth(&self) -> Result<Option<Auth>, Fault> {
        self.opts
            .key_auth
            .as_ref()
            .map(|a| Auth::try_from(a.to_vec()).map_err(|e| failed(format!("key auth: {e}"))))
            .transpose()
    }

    fn generate(&mut self) -> Result<KeyInfo, Fault> {
        let srk = self.handle(&Obj::Srk, &[])?;
        // TPM2_Create needs a free object slot of its own while it works.
        self.make_room(self.opts.max_loaded.max(2), &[], &Obj::Srk)?;
        let auth = self.key_auth()?;
        let created = self
            .ctx()?
            .execute_with_session(Some(AuthSession::Password), |c| {
                c.create(srk, ari_template()?, auth, None, None, None)
            })
            .map_err(tss("TPM2_Create"))?;
        let public = created
            .out_public
            .marshall()
            .map_err(|e| failed(format!("marshal TPMT_PUBLIC: {e}")))?;
        let id = KeyId(blob(&public, created.out_private.value()));
        let certification = self.certify(&id, &public)?;
        let mut info = key_info(&id)?;
        info.certification = Some(certification);
        Ok(info)
    }

    fn certify(&mut self, id: &KeyId, public: &[u8]) -> Result<Certification, Fault> {
        let key = Obj::Key(id.clone());
        let ak = self.handle(&Obj::Ak, &[&key])?;
        let handle = self.handle(&key, &[&Obj::Ak])?;
        let (attest, signature) = self
            .ctx()?
            .execute_with_sessions(
                (
                    Some(AuthSession::Password),
                    Some(AuthSession::Password),
                    None,
                ),
                |c| c.certify(handle.into(), ak, Data::default(), SignatureScheme::Null),
            )
            .map_err(tss("TPM2_Certify"))?;
        Ok(Certification {
            attest: jose::b64url(&marshal_attest(&attest)?),
            signature: jose::b64url(&marshal_signature(&signature)?),
            public: jose::b64url(public),
        })
    }

    fn describe(&mut self, id: &KeyId) -> Result<KeyInfo, Fault> {
        self.handle(&Obj::Key(id.clone()), &[])?;
        key_info(id)
    }

    fn sign(&mut self, id: &KeyId, digest: &[u8; 32]) -> Result<[u8; 64], Fault> {
        let handle = self.handle(&Obj::Key(id.clone()), &[])?;
        let validation = TPMT_TK_HASHCHECK {
            tag: TPM2_ST_HASHCHECK,
            hierarchy: TPM2_RH_NULL,
            digest: Default::default(),
        }
        .try_into()
        .map_err(|e| failed(format!("hashcheck ticket: {e}")))?;
        let digest = Digest::try_from(digest.to_vec()).map_err(|e| failed(e.to_string()))?;
        self.counters.signs.fetch_add(1, Ordering::Relaxed);
        let sig = self
            .ctx()?
            .execute_with_session(Some(AuthSession::Password), |c| {
                c.sign(handle, digest, SignatureScheme::Null, validation)
            })
            .map_err(tss("TPM2_Sign"))?;
        let bytes = marshal_signature(&sig)?;
        evidence::ecdsa_signature(&bytes).map_err(|e| failed(e.to_string()))
    }

    fn ak_public(&mut self) -> Result<Public, Fault> {
        self.handle(&Obj::Ak, &[])?;
        self.ak
            .clone()
            .ok_or_else(|| failed("the attestation key has no public area"))
    }

    fn ak_info(&mut self) -> Result<AkInfo, Fault> {
        let public = self.ak_public()?;
        let tpm_public = public
            .marshall()
            .map_err(|e| failed(format!("marshal TPMT_PUBLIC: {e}")))?;
        let point = p256_point(&tpm_public)
            .ok_or_else(|| failed("the attestation key is not a P-256 key"))?;
        let ek_certificate = {
            let ctx = self.ctx()?;
            ctx.execute_with_session(Some(AuthSession::Password), |c| {
                tss_esapi::abstraction::ek::retrieve_ek_pubcert(
                    c,
                    tss_esapi::abstraction::AsymmetricAlgorithmSelection::Ecc(EccCurve::NistP256),
                )
                .or_else(|_| {
                    tss_esapi::abstraction::ek::retrieve_ek_pubcert(
                        c,
                        tss_esapi::abstraction::AsymmetricAlgorithmSelection::Rsa(
                            tss_esapi::interface_types::key_bits::RsaKeyBits::Rsa2048,
                        ),
                    )
                })
            })
            .ok()
        };
        Ok(AkInfo {
            public: point,
            tpm_public,
            ek_certificate,
        })
    }

    fn quote_batch(&mut self, jobs: Vec<(Hash, Reply<Quote>)>) {
        let bindings: Vec<Hash> = jobs.iter().map(|(b, _)| *b).collect();
        let (root, paths) = evidence::batch(&bindings);
        match self.recovering("quote", |a| a.quote(&root)) {
            Ok(quote) => {
                self.counters
                    .quoted
                    .fetch_add(jobs.len() as u64, Ordering::Relaxed);
                for ((_, reply), path) in jobs.into_iter().zip(paths) {
                    let mut q = quote.clone();
                    q.batch = path;
                    reply.send(Ok(q));
                }
            }
            Err(e) => {
                for (_, reply) in jobs {
                    reply.send(Err(e.clone()));
                }
            }
        }
    }

    /// One TPM2_Quote qualified by `qualifying`, with the PCR values it covers. The values are
    /// read again only when the quoted digest differs from the cached ones (a PCR was extended);
    /// if they change between the quote and the read, the quote is made again.
    fn quote(&mut self, qualifying: &Hash) -> Result<Quote, Fault> {
        let ak = self.handle(&Obj::Ak, &[])?;
        for _ in 0..4 {
            self.counters.quotes.fetch_add(1, Ordering::Relaxed);
            let selection = self.pcr_selection.clone();
            let data = Data::try_from(qualifying.to_vec()).map_err(|e| failed(e.to_string()))?;
            let (attest, signature) = self
                .ctx()?
                .execute_with_session(Some(AuthSession::Password), |c| {
                    c.quote(ak, data, SignatureScheme::Null, selection)
                })
                .map_err(tss("TPM2_Quote"))?;
            let tss_esapi::structures::AttestInfo::Quote { info } = attest.attested() else {
                return Err(failed("TPM2_Quote returned another attestation type"));
            };
            let quoted: [u8; 32] = info
                .pcr_digest()
                .value()
                .try_into()
                .map_err(|_| failed("the quoted PCR digest is not SHA-256"))?;
            if self.pcr_cache.as_ref().map(|(_, d)| *d) != Some(quoted) {
                let values = self.read_pcrs()?;
                let digest = evidence::pcr_digest(values.iter().map(|v| v.as_slice()));
                self.pcr_cache = Some((values, digest));
                if digest != quoted {
                    continue;
                }
            }
            let (values, _) = self
                .pcr_cache
                .as_ref()
                .ok_or_else(|| failed("no PCR values"))?;
            let pcrs: BTreeMap<String, String> = self
                .opts
                .pcrs
                .iter()
                .map(u8::to_string)
                .zip(values.iter().map(hex::encode))
                .collect();
            return Ok(Quote {
                attest: jose::b64url(&marshal_attest(&attest)?),
                signature: jose::b64url(&marshal_signature(&signature)?),
                pcr_bank: "sha256".into(),
                pcrs,
                batch: None,
            });
        }
        Err(failed("the PCRs kept changing while they were quoted"))
    }

    /// The configured PCRs' values in index order; TPM2_PCR_Read returns at most eight a call.
    fn read_pcrs(&mut self) -> Result<Vec<[u8; 32]>, Fault> {
        let mut values = Vec::with_capacity(self.opts.pcrs.len());
        for chunk in self.opts.pcrs.clone().chunks(8) {
            let selection = pcr_selection(chunk).map_err(Fault::Fatal)?;
            let (_, _, digests) = self
                .ctx()?
                .pcr_read(selection)
                .map_err(tss("TPM2_PCR_Read"))?;
            if digests.value().len() != chunk.len() {
                return Err(failed("TPM2_PCR_Read returned fewer PCRs than asked"));
            }
            for d in digests.value() {
                values.push(
                    d.value()
                        .try_into()
                        .map_err(|_| failed("a PCR value is not 32 bytes"))?,
                );
            }
        }
        Ok(values)
    }
}

fn marshal_attest(a: &tss_esapi::structures::Attest) -> Result<Vec<u8>, Fault> {
    a.marshall()
        .map_err(|e| failed(format!("marshal TPMS_ATTEST: {e}")))
}

fn marshal_signature(s: &Signature) -> Result<Vec<u8>, Fault> {
    s.marshall()
        .map_err(|e| failed(format!("marshal TPMT_SIGNATURE: {e}")))
}

/// A sha256 PCR selection.
fn pcr_selection(pcrs: &[u8]) -> Result<PcrSelectionList, BackendError> {
    let slots = pcrs
        .iter()
        .map(|&i| {
            1u32.checked_shl(u32::from(i))
                .and_then(|bit| PcrSlot::try_from(bit).ok())
                .ok_or_else(|| BackendError::Failed(format!("PCR {i} does not exist")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    PcrSelectionListBuilder::new()
        .with_selection(HashingAlgorithm::Sha256, &slots)
        .build()
        .map_err(|e| BackendError::Failed(format!("PCR selection: {e}")))
}

fn blob(public: &[u8], private: &[u8]) -> Vec<u8> {
    let mut out = BLOB_TAG.to_vec();
    out.extend_from_slice(
        &u16::try_from(public.len())
            .unwrap_or(u16::MAX)
            .to_be_bytes(),
    );
    out.extend_from_slice(public);
    out.extend_from_slice(private);
    out
}

fn parse_blob(id: &KeyId) -> Result<(Public, Private), Fault> {
    let bad = || Fault::Fatal(BackendError::KeyNotFound(id.clone()));
    let rest = id.0.strip_prefix(BLOB_TAG.as_slice()).ok_or_else(bad)?;
    let (len, rest) = rest.split_first_chunk::<2>().ok_or_else(bad)?;
    let len = usize::from(u16::from_be_bytes(*len));
    let (public, private) = (
        rest.get(..len).ok_or_else(bad)?,
        rest.get(len..).ok_or_else(bad)?,
    );
    let public =
        <Public as tss_esapi::traits::UnMarshall>::unmarshall(public).map_err(|_| bad())?;
    let private = Private::try_from(private.to_vec()).map_err(|_| bad())?;
    Ok((public, private))
}

/// What a key's blob says about it.
fn key_info(id: &KeyId) -> Result<KeyInfo, Fault> {
    let (public, _) = parse_blob(id)?;
    let public_bytes = public
        .marshall()
        .map_err(|e| failed(format!("marshal TPMT_PUBLIC: {e}")))?;
    let point = p256_point(&public_bytes).ok_or_else(|| failed("the key is not a P-256 key"))?;
    Ok(KeyInfo {
        id: id.clone(),
        uri: format!("tpm:name={}", hex::encode(evidence::name_of(&public_bytes))),
        public: point,
        // In the attribute vocabulary verifiers already read: generated in the TPM, never
        // leaves it in the clear, signs and does nothing else.
        attributes: KeyAttributes::HARDWARE_RESIDENT,
        certification: None,
    })
}

fn ecdsa_sha256() -> EccScheme {
    EccScheme::EcDsa(HashScheme::new(HashingAlgorithm::Sha256))
}

/// An ECC P-256 public template with SHA-256 names, created in the TPM (fixedTPM,
/// fixedParent, sensitiveDataOrigin) and used with its auth value.
fn p256_template(
    attributes: ObjectAttributesBuilder,
    parameters: PublicEccParametersBuilder,
) -> tss_esapi::Result<Public> {
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Ecc)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(
            attributes
                .with_fixed_tpm(true)
                .with_fixed_parent(true)
                .with_sensitive_data_origin(true)
                .with_user_with_auth(true)
                .with_no_da(true)
                .build()?,
        )
        .with_ecc_parameters(parameters.build()?)
        .with_ecc_unique_identifier(EccPoint::default())
        .build()
}

/// The storage key: a restricted decryption key that wraps the keys created under it.
fn srk_template() -> tss_esapi::Result<Public> {
    p256_template(
        ObjectAttributesBuilder::new()
            .with_restricted(true)
            .with_decrypt(true),
        PublicEccParametersBuilder::new_restricted_decryption_key(
            SymmetricDefinitionObject::AES_128_CFB,
            EccCurve::NistP256,
        ),
    )
}

/// The attestation key: restricted to signing what the TPM itself produced (quotes,
/// certifications).
fn ak_template() -> tss_esapi::Result<Public> {
    p256_template(
        ObjectAttributesBuilder::new()
            .with_restricted(true)
            .with_sign_encrypt(true),
        PublicEccParametersBuilder::new()
            .with_symmetric(SymmetricDefinitionObject::Null)
            .with_ecc_scheme(ecdsa_sha256())
            .with_curve(EccCurve::NistP256)
            .with_key_derivation_function_scheme(KeyDerivationFunctionScheme::Null)
            .with_is_signing_key(true)
            .with_is_decryption_key(false)
            .with_restricted(true),
    )
}

/// An ARI key: signs digests, nothing else.
fn ari_template() -> tss_esapi::Result<Public> {
    p256_template(
        ObjectAttributesBuilder::new().with_sign_encrypt(true),
        PublicEccParametersBuilder::new_unrestricted_signing_key(
            ecdsa_sha256(),
            EccCurve::NistP256,
        ),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn raw_codes_are_read_from_the_wrapper_text() {
        assert_eq!(raw("Response code value: 0xa000a"), 0xa000a);
        assert_eq!(raw("Response code value: 0x902"), 0x902);
        assert_eq!(raw("nonsense"), 0);
    }

    #[test]
    fn a_blob_round_trips_and_garbage_is_not_a_key() {
        let public = ari_template().unwrap().marshall().unwrap();
        let id = KeyId(blob(&public, &[1, 2, 3]));
        let (p, private) = parse_blob(&id).unwrap();
        assert_eq!(p.marshall().unwrap(), public);
        assert_eq!(private.value(), &[1, 2, 3]);
        for bad in [vec![], b"tpm1".to_vec(), b"xxxx\x00\x01a".to_vec()] {
            assert!(parse_blob(&KeyId(bad)).is_err());
        }
    }
}
