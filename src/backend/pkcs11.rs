//! The PKCS#11 key store, driven through `cryptoki`.
//!
//! One process logs in once. A fixed set of sessions, each owned by its own blocking thread,
//! takes jobs from one bounded queue; when the queue is full, callers get `Busy` at once. Keys
//! are P-256 pairs generated on the token with the private half token-resident, private,
//! sensitive, non-extractable and good only for signing (encrypt, decrypt, wrap, unwrap and
//! derive explicitly false). Signing hashes outside the token and calls `CKM_ECDSA` on the
//! digest, which every token offers (SoftHSM has no `CKM_ECDSA_SHA256`). Every PKCS#11 failure
//! is reported with the `C_*` call that failed. The PIN is held in a zeroizing secret and never
//! logged.

use super::{
    Backend, BackendError, BackendFuture, Ed25519Info, KeyAttributes, KeyId, KeyInfo, Reply,
};
use crate::jose::PublicKey;
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use der::Decode;
use der::asn1::OctetString;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// DER of the named-curve OID for P-256 (1.2.840.10045.3.1.7), the `CKA_EC_PARAMS` value.
const P256_PARAMS: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// `CKA_EC_PARAMS` of an Ed25519 key: the DER OID id-Ed25519, 1.3.101.112 (RFC 8410).
const ED25519_PARAMS: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];

pub use super::SecretSource as PinSource;

/// Reads the PIN. The text read is zeroized once the PIN is built.
pub fn read_pin(source: &PinSource) -> Result<AuthPin, BackendError> {
    let line = super::read_secret(source, "PIN")?;
    Ok(AuthPin::from(line.as_str()))
}

/// How to open the token.
#[derive(Debug)]
pub struct Pkcs11Options {
    /// The module path.
    pub module: PathBuf,
    /// The token label.
    pub token_label: String,
    /// The user PIN.
    pub pin: AuthPin,
    /// Sessions (and signing threads) to open.
    pub sessions: usize,
    /// Jobs that may wait before callers get `Busy`.
    pub queue_depth: usize,
}

fn ck(e: CkError) -> BackendError {
    match &e {
        CkError::Pkcs11(rv, _) if is_connection_lost(*rv) => {
            BackendError::Unavailable(e.to_string())
        }
        CkError::LibraryLoading(_) => BackendError::Unavailable(e.to_string()),
        _ => BackendError::Failed(e.to_string()),
    }
}

fn is_connection_lost(rv: RvError) -> bool {
    matches!(
        rv,
        RvError::DeviceRemoved
            | RvError::DeviceError
            | RvError::TokenNotPresent
            | RvError::SessionHandleInvalid
            | RvError::SessionClosed
            | RvError::CryptokiNotInitialized
            | RvError::UserNotLoggedIn
            // What SoftHSM answers for a session closed under a call by another thread; any
            // token may use it for a failure of its own. A new session is the only remedy
            // worth trying, and the call itself was not at fault.
            | RvError::GeneralError
            // Each session belongs to one thread that always finishes what it starts, so an
            // operation still active means a failure above left the session wedged.
            | RvError::OperationActive
    )
}

/// Loads and initializes a module.
pub fn load_module(module: &Path) -> Result<Pkcs11, BackendError> {
    let ctx = Pkcs11::new(module).map_err(|e| {
        BackendError::Unavailable(format!(
            "cannot load the PKCS#11 module {}: {e}",
            module.display()
        ))
    })?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => Ok(ctx),
        Err(e) => Err(ck(e)),
    }
}

/// Finds the slot holding the token with this label.
pub fn find_token(ctx: &Pkcs11, label: &str) -> Result<Option<Slot>, BackendError> {
    for slot in ctx.get_slots_with_token().map_err(ck)? {
        let info = ctx.get_token_info(slot).map_err(ck)?;
        if info.token_initialized() && info.label() == label {
            return Ok(Some(slot));
        }
    }
    Ok(None)
}

/// Initializes a fresh token with this label in the first free slot and sets its user PIN,
/// unless a token with the label exists already. Returns whether a token was created.
/// Used by dev mode and tests; production tokens are set up by their owners.
pub fn ensure_token(
    ctx: &Pkcs11,
    label: &str,
    so_pin: &AuthPin,
    pin: &AuthPin,
) -> Result<bool, BackendError> {
    if find_token(ctx, label)?.is_some() {
        return Ok(false);
    }
    let mut free = None;
    for slot in ctx.get_slots_with_token().map_err(ck)? {
        if !ctx.get_token_info(slot).map_err(ck)?.token_initialized() {
            free = Some(slot);
            break;
        }
    }
    let slot =
        free.ok_or_else(|| BackendError::Unavailable("no free slot to create a token in".into()))?;
    ctx.init_token(slot, so_pin, label).map_err(ck)?;
    let session = ctx.open_rw_session(slot).map_err(ck)?;
    session.login(UserType::So, Some(so_pin)).map_err(ck)?;
    session.init_pin(pin).map_err(ck)?;
    session.logout().map_err(ck)?;
    Ok(true)
}

enum Job {
    Generate {
        label: String,
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
    GenerateEd25519 {
        label: String,
        reply: Reply<Ed25519Info>,
    },
    DescribeEd25519 {
        id: KeyId,
        reply: Reply<Ed25519Info>,
    },
    SignEd25519 {
        id: KeyId,
        message: Vec<u8>,
        reply: Reply<[u8; 64]>,
    },
}

/// State shared by the signing threads.
struct Shared {
    ctx: Pkcs11,
    slot: Slot,
    token_label: String,
    pin: AuthPin,
    /// Private-key handles by `CKA_ID`. Handles are valid for every session of this process.
    handles: Mutex<HashMap<KeyId, ObjectHandle>>,
}

/// A PKCS#11 token serving this daemon.
pub struct Pkcs11Backend {
    queue: crossbeam_channel::Sender<Job>,
    token_label: String,
    workers: Vec<std::thread::JoinHandle<()>>,
}

impl Drop for Pkcs11Backend {
    /// Closes the queue and waits for every signing thread to finish the job it has, so the
    /// process never exits (and the module's destructors never run) under a token call.
    fn drop(&mut self) {
        let (closed, _) = crossbeam_channel::bounded(1);
        drop(std::mem::replace(&mut self.queue, closed));
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

impl std::fmt::Debug for Pkcs11Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11Backend")
            .field("token_label", &self.token_label)
            .finish_non_exhaustive()
    }
}

impl Pkcs11Backend {
    /// Loads the module, finds the token, logs in once and starts the signing threads.
    pub fn start(opts: Pkcs11Options) -> Result<Self, BackendError> {
        let ctx = load_module(&opts.module)?;
        Self::start_with(ctx, opts)
    }

    /// As [`Pkcs11Backend::start`], on a module already loaded in this process.
    pub fn start_with(ctx: Pkcs11, opts: Pkcs11Options) -> Result<Self, BackendError> {
        let slot = find_token(&ctx, &opts.token_label)?.ok_or_else(|| {
            BackendError::Unavailable(format!(
                "no token labelled {:?} in {}",
                opts.token_label,
                opts.module.display()
            ))
        })?;
        let sessions = opts.sessions.max(1);
        let mut opened = Vec::with_capacity(sessions);
        for _ in 0..sessions {
            opened.push(ctx.open_rw_session(slot).map_err(ck)?);
        }
        if let Some(first) = opened.first() {
            login(first, &opts.pin)?;
        }
        let shared = Arc::new(Shared {
            ctx,
            slot,
            token_label: opts.token_label.clone(),
            pin: opts.pin,
            handles: Mutex::new(HashMap::new()),
        });
        let (tx, rx) = crossbeam_channel::bounded(opts.queue_depth.max(1));
        let mut workers = Vec::with_capacity(opened.len());
        for (n, session) in opened.into_iter().enumerate() {
            let shared = shared.clone();
            let rx = rx.clone();
            workers.push(
                std::thread::Builder::new()
                    .name(format!("pkcs11-{n}"))
                    .spawn(move || Worker { shared, session }.run(rx))
                    .map_err(|e| {
                        BackendError::Unavailable(format!("cannot start a signing thread: {e}"))
                    })?,
            );
        }
        Ok(Self {
            queue: tx,
            token_label: opts.token_label,
            workers,
        })
    }

    fn submit<T: Send + 'static>(
        &self,
        operation: &'static str,
        job: impl FnOnce(Reply<T>) -> Job,
    ) -> BackendFuture<T> {
        super::submit(&self.queue, ("pkcs11", operation), job)
    }
}

impl Backend for Pkcs11Backend {
    fn kind(&self) -> &'static str {
        "pkcs11"
    }

    fn generate_key(&self, label: String) -> BackendFuture<KeyInfo> {
        self.submit("generate", |reply| Job::Generate { label, reply })
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

    fn generate_ed25519(&self, label: String) -> BackendFuture<Ed25519Info> {
        self.submit("generate", |reply| Job::GenerateEd25519 { label, reply })
    }

    fn describe_ed25519(&self, id: KeyId) -> BackendFuture<Ed25519Info> {
        self.submit("describe", |reply| Job::DescribeEd25519 { id, reply })
    }

    fn sign_ed25519(&self, id: KeyId, message: Vec<u8>) -> BackendFuture<[u8; 64]> {
        self.submit("sign_ed25519", |reply| Job::SignEd25519 {
            id,
            message,
            reply,
        })
    }

    fn queue(&self) -> super::QueueDepth {
        super::QueueDepth::of(&self.queue)
    }
}

fn login(session: &Session, pin: &AuthPin) -> Result<(), BackendError> {
    match session.login(UserType::User, Some(pin)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(()),
        Err(e) => Err(ck(e)),
    }
}

struct Worker {
    shared: Arc<Shared>,
    session: Session,
}

impl Worker {
    fn run(mut self, rx: crossbeam_channel::Receiver<Job>) {
        while let Ok(job) = rx.recv() {
            // A reply whose caller has gone away is dropped; the work is done either way.
            match job {
                Job::Generate { label, reply } => {
                    reply.send(self.retrying(|w| w.generate(&label)));
                }
                Job::Describe { id, reply } => {
                    reply.send(self.retrying(|w| w.describe(&id)));
                }
                Job::Sign { id, digest, reply } => {
                    reply.send(self.retrying(|w| w.sign(&id, &digest)));
                }
                Job::Destroy { id, reply } => {
                    reply.send(self.retrying(|w| w.destroy(&id)));
                }
                Job::GenerateEd25519 { label, reply } => {
                    reply.send(self.retrying(|w| w.generate_ed25519(&label)));
                }
                Job::DescribeEd25519 { id, reply } => {
                    reply.send(self.retrying(|w| w.describe_ed25519(&id)));
                }
                Job::SignEd25519 { id, message, reply } => {
                    reply.send(self.retrying(|w| w.sign_ed25519(&id, &message)));
                }
            }
        }
    }

    /// Runs an operation; if the session was lost, opens a new one, logs in again and retries once.
    fn retrying<T>(
        &mut self,
        op: impl Fn(&Self) -> Result<T, BackendError>,
    ) -> Result<T, BackendError> {
        match op(self) {
            Err(BackendError::Unavailable(why)) => {
                tracing::warn!(token = %self.shared.token_label, %why, "token session lost; reopening");
                let session = self
                    .shared
                    .ctx
                    .open_rw_session(self.shared.slot)
                    .map_err(ck)?;
                login(&session, &self.shared.pin)?;
                self.session = session;
                self.shared.handles.lock().map(|mut h| h.clear()).ok();
                op(self)
            }
            other => other,
        }
    }

    fn find(&self, class: ObjectClass, id: &KeyId) -> Result<Option<ObjectHandle>, BackendError> {
        let template = [Attribute::Class(class), Attribute::Id(id.0.clone())];
        let found = self.session.find_objects(&template).map_err(ck)?;
        Ok(found.first().copied())
    }

    fn private_handle(&self, id: &KeyId) -> Result<ObjectHandle, BackendError> {
        if let Some(h) = self
            .shared
            .handles
            .lock()
            .ok()
            .and_then(|m| m.get(id).copied())
        {
            return Ok(h);
        }
        let handle = match self.find(ObjectClass::PRIVATE_KEY, id)? {
            Some(h) => h,
            // Private objects are invisible without a login: a session that lost it (another
            // application logged the token out, or closed every session) must log in again,
            // not report the key gone. Another thread may log in again meanwhile, so the key
            // is gone only if it is still missing while logged in before and after a second look.
            None => {
                let lost_login =
                    || BackendError::Unavailable("the token session is not logged in".into());
                if !self.logged_in()? {
                    return Err(lost_login());
                }
                match self.find(ObjectClass::PRIVATE_KEY, id)? {
                    Some(h) => h,
                    None if self.logged_in()? => {
                        return Err(BackendError::KeyNotFound(id.clone()));
                    }
                    None => return Err(lost_login()),
                }
            }
        };
        if let Ok(mut m) = self.shared.handles.lock() {
            m.insert(id.clone(), handle);
        }
        Ok(handle)
    }

    /// Whether the session is logged in as the user.
    fn logged_in(&self) -> Result<bool, BackendError> {
        use cryptoki::session::SessionState;
        let info = self.session.get_session_info().map_err(ck)?;
        Ok(matches!(
            info.session_state(),
            SessionState::RoUser | SessionState::RwUser
        ))
    }

    fn generate(&self, label: &str) -> Result<KeyInfo, BackendError> {
        let id = self.generate_pair(label, KeyType::EC, P256_PARAMS, &Mechanism::EccKeyPairGen)?;
        self.describe(&id)
    }

    /// An Ed25519 key pair (`CKK_EC_EDWARDS` on edwards25519), for the log's note signature.
    fn generate_ed25519(&self, label: &str) -> Result<Ed25519Info, BackendError> {
        let id = self.generate_pair(
            label,
            KeyType::EC_EDWARDS,
            ED25519_PARAMS,
            &Mechanism::EccEdwardsKeyPairGen,
        )?;
        self.describe_ed25519(&id)
    }

    /// Generates a non-extractable signing key pair under a fresh random `CKA_ID`.
    fn generate_pair(
        &self,
        label: &str,
        key_type: KeyType,
        params: &[u8],
        mechanism: &Mechanism,
    ) -> Result<KeyId, BackendError> {
        let mut raw = [0u8; 16];
        self.session.generate_random_slice(&mut raw).map_err(ck)?;
        let id = KeyId(raw.to_vec());
        let label = label.as_bytes().to_vec();
        let public = [
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::KeyType(key_type),
            Attribute::EcParams(params.to_vec()),
            Attribute::Verify(true),
            Attribute::Encrypt(false),
            Attribute::Wrap(false),
            Attribute::Derive(false),
            Attribute::Id(id.0.clone()),
            Attribute::Label(label.clone()),
        ];
        let private = [
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
            Attribute::Decrypt(false),
            Attribute::Unwrap(false),
            Attribute::Derive(false),
            Attribute::Id(id.0.clone()),
            Attribute::Label(label),
        ];
        let (_, handle) = self
            .session
            .generate_key_pair(mechanism, &public, &private)
            .map_err(ck)?;
        if let Ok(mut m) = self.shared.handles.lock() {
            m.insert(id.clone(), handle);
        }
        Ok(id)
    }

    fn describe(&self, id: &KeyId) -> Result<KeyInfo, BackendError> {
        let private = self.private_handle(id)?;
        let sec1 = self.ec_point(id)?;
        let public = PublicKey::from_sec1(&sec1).map_err(|_| {
            BackendError::Failed("the token returned a public key that is not on P-256".into())
        })?;
        Ok(KeyInfo {
            id: id.clone(),
            uri: key_uri(&self.shared.token_label, id),
            public,
            attributes: self.attributes(private)?,
            certification: None,
        })
    }

    fn describe_ed25519(&self, id: &KeyId) -> Result<Ed25519Info, BackendError> {
        self.private_handle(id)?;
        let point = self.ec_point(id)?;
        let public: [u8; 32] = point.try_into().map_err(|_| {
            BackendError::Failed("the token returned an Ed25519 key that is not 32 bytes".into())
        })?;
        Ok(Ed25519Info {
            id: id.clone(),
            uri: key_uri(&self.shared.token_label, id),
            public,
        })
    }

    /// The public key's `CKA_EC_POINT`, unwrapped from its DER OCTET STRING.
    fn ec_point(&self, id: &KeyId) -> Result<Vec<u8>, BackendError> {
        let public = self
            .find(ObjectClass::PUBLIC_KEY, id)?
            .ok_or_else(|| BackendError::KeyNotFound(id.clone()))?;
        let point = self
            .session
            .get_attributes(public, &[AttributeType::EcPoint])
            .map_err(ck)?;
        let point = point
            .into_iter()
            .find_map(|a| match a {
                Attribute::EcPoint(p) => Some(p),
                _ => None,
            })
            .ok_or_else(|| {
                BackendError::Failed(
                    "C_GetAttributeValue: the public key has no CKA_EC_POINT".into(),
                )
            })?;
        // The standard wraps the point in a DER OCTET STRING; some modules return it bare.
        Ok(OctetString::from_der(&point)
            .map(|o| o.into_bytes().into_vec())
            .unwrap_or(point))
    }

    fn attributes(&self, handle: ObjectHandle) -> Result<KeyAttributes, BackendError> {
        use AttributeType as T;
        let wanted = [
            T::Token,
            T::Private,
            T::Sensitive,
            T::AlwaysSensitive,
            T::Extractable,
            T::NeverExtractable,
            T::Local,
            T::Sign,
            T::Decrypt,
            T::Derive,
            T::Unwrap,
        ];
        let mut a = KeyAttributes {
            token: false,
            private: false,
            sensitive: false,
            always_sensitive: false,
            extractable: true,
            never_extractable: false,
            local: false,
            sign: false,
            decrypt: false,
            derive: false,
            unwrap: false,
        };
        for attr in self.session.get_attributes(handle, &wanted).map_err(ck)? {
            match attr {
                Attribute::Token(v) => a.token = v,
                Attribute::Private(v) => a.private = v,
                Attribute::Sensitive(v) => a.sensitive = v,
                Attribute::AlwaysSensitive(v) => a.always_sensitive = v,
                Attribute::Extractable(v) => a.extractable = v,
                Attribute::NeverExtractable(v) => a.never_extractable = v,
                Attribute::Local(v) => a.local = v,
                Attribute::Sign(v) => a.sign = v,
                Attribute::Decrypt(v) => a.decrypt = v,
                Attribute::Derive(v) => a.derive = v,
                Attribute::Unwrap(v) => a.unwrap = v,
                _ => {}
            }
        }
        Ok(a)
    }

    fn sign(&self, id: &KeyId, digest: &[u8; 32]) -> Result<[u8; 64], BackendError> {
        self.sign_with(id, &Mechanism::Ecdsa, digest)
    }

    /// Pure EdDSA over the message itself (`CKM_EDDSA` without parameters: Ed25519).
    fn sign_ed25519(&self, id: &KeyId, message: &[u8]) -> Result<[u8; 64], BackendError> {
        let mechanism = Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure));
        self.sign_with(id, &mechanism, message)
    }

    fn sign_with(
        &self,
        id: &KeyId,
        mechanism: &Mechanism,
        data: &[u8],
    ) -> Result<[u8; 64], BackendError> {
        let handle = self.private_handle(id)?;
        let stale = |e: &CkError| {
            matches!(
                e,
                CkError::Pkcs11(RvError::KeyHandleInvalid | RvError::ObjectHandleInvalid, _)
            )
        };
        let result = match self.session.sign(mechanism, handle, data) {
            // A cached handle goes stale if another process deleted the object, or while the
            // login is lost (private objects are then out of reach): look the key up again.
            Err(e) if stale(&e) => {
                self.shared.handles.lock().map(|mut m| m.remove(id)).ok();
                let handle = self.private_handle(id)?;
                self.session.sign(mechanism, handle, data)
            }
            other => other,
        };
        let sig = match result {
            Ok(sig) => sig,
            // Stale again right after a fresh lookup (a key really gone is not found at all):
            // the token's state changed under the call, typically its login. Worth a retry.
            Err(e) if stale(&e) => {
                self.shared.handles.lock().map(|mut m| m.remove(id)).ok();
                return Err(BackendError::Unavailable(format!(
                    "{e} (the key's handle went stale twice; the token's state changed)"
                )));
            }
            Err(e) => return Err(ck(e)),
        };
        sig.try_into().map_err(|_| {
            BackendError::Failed(
                "C_Sign: the token returned a signature that is not 64 bytes".into(),
            )
        })
    }

    fn destroy(&self, id: &KeyId) -> Result<(), BackendError> {
        self.shared.handles.lock().map(|mut m| m.remove(id)).ok();
        let objects = self
            .session
            .find_objects(&[Attribute::Id(id.0.clone())])
            .map_err(ck)?;
        for object in objects {
            self.session.destroy_object(object).map_err(ck)?;
        }
        Ok(())
    }
}

/// The RFC 7512 URI of a private key on a token.
pub fn key_uri(token_label: &str, id: &KeyId) -> String {
    let mut uri = String::from("pkcs11:token=");
    percent_encode(token_label.as_bytes(), &mut uri);
    uri.push_str(";id=");
    percent_encode_all(&id.0, &mut uri);
    uri.push_str(";type=private");
    uri
}

fn percent_encode(bytes: &[u8], out: &mut String) {
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

fn percent_encode_all(bytes: &[u8], out: &mut String) {
    for b in bytes {
        out.push_str(&format!("%{b:02X}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_escapes_label_and_encodes_id() {
        let uri = key_uri("my token", &KeyId(vec![0x01, 0xab]));
        assert_eq!(uri, "pkcs11:token=my%20token;id=%01%AB;type=private");
    }
}
