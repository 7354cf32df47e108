//! The daemon's request handling: from a parsed call to its result, behind the method table.
//!
//! [`Service::handle_line`] is everything between a line read off a socket and the line written
//! back: parse, route by method (refusing methods of the other socket), authorize the caller,
//! run the method, map any error once through [`Error::to_rpc`]. Agent callers are measured
//! afresh on every call (cheaply: digests are cached), so a process that exec'd another binary
//! after connecting is judged as what it now is. There is no method that signs caller-chosen
//! bytes: every signature is over a document this module builds.

mod attestation;
mod caller;
mod counterparty;
mod delegation;
mod evidence;
mod keys;
mod lifecycle;
mod payment;
mod publication;
mod spending;
mod status;
#[cfg(test)]
mod tests;
mod voucher;
mod witness;

use crate::attest::DaemonFacts;
use crate::backend::{Backend, KeyInfo};
use crate::error::{Error, Internal};
use crate::identity::{Agent, Registry};
use crate::ledger::Ledger;
use crate::peer::{self, PeerMeter};
use crate::protocol::agent::{AgentKey, AgentView};
use crate::protocol::daemon::{
    DaemonKey, Health, LogStatus, MetricsText, NoParams, Queues, Status, TpmStatus,
};
use crate::protocol::{self, Call, Incoming, Method, Request, Response, Role, call};
use crate::publish::Publication;
use crate::seal::KeyStore;
use crate::store::Store;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

pub use caller::ConnInfo;
pub use keys::JWKS_FILE;
pub use status::{
    REFRESH_BEFORE_EXP_S, STATUS_LIST_FILE, STATUS_LIST_TTL_S, STATUS_LIST_VALIDITY_S,
};

/// Request ids, unique within the daemon's life; they appear in every log line of a call.
static NEXT_REQUEST: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Roles the daemon's own keys play.
pub const DAEMON_KEY_ROLES: [&str; 2] = ["issuer", "log"];

/// What a configuration reload (SIGHUP) may change while the daemon serves.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Who may operate.
    pub admin: AdminPolicy,
    /// SHA-256 of the configuration file in force, as attestations report it.
    pub config_sha256: String,
    /// Least time between two signed checkpoints.
    pub checkpoint_interval: std::time::Duration,
    /// Witnesses asked to cosign each new checkpoint.
    pub witnesses: Vec<crate::config::WitnessConfig>,
    /// How long one witness may take to answer.
    pub witness_timeout: std::time::Duration,
    /// How long a rotated daemon key stays accepted beside the new one, unless the operator
    /// says otherwise.
    pub rotation_overlap: std::time::Duration,
}

/// Who may use the admin socket besides root.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdminPolicy {
    /// Allowed uids.
    pub allow_uids: Vec<u32>,
    /// Members of this group (primary or supplementary) are allowed.
    pub gid: Option<u32>,
}

impl AdminPolicy {
    fn allows(&self, info: &ConnInfo) -> bool {
        let cred = info.cred;
        cred.uid == 0
            || self.allow_uids.contains(&cred.uid)
            || self
                .gid
                .is_some_and(|g| cred.gid == g || supplementary_groups(info).contains(&g))
    }
}

/// The supplementary groups of the process pinned to the connection, read from `/proc` between
/// two checks that it still holds its pid: a process that took the pid over since the connection
/// was opened lends it none of its groups.
fn supplementary_groups(info: &ConnInfo) -> Vec<u32> {
    if info.pin.check().is_err() {
        return Vec::new();
    }
    let groups = peer::groups(info.cred.pid);
    if info.pin.check().is_err() {
        return Vec::new();
    }
    groups
}

/// Everything a call can reach.
pub struct Service {
    /// The key store, through which every signature is withheld until its entry is durable.
    backend: KeyStore,
    store: Arc<Store>,
    registry: Registry,
    meter: PeerMeter,
    facts: DaemonFacts,
    /// The settings in force and how many reloads were applied since start, under one lock so
    /// a reader never sees a count that does not match the settings.
    settings: std::sync::RwLock<(Settings, u64)>,
    started: std::time::Instant,
    started_at: i64,
    /// The daemon's own keys by role. Whoever signs with one holds this shared from choosing the
    /// key until its output is committed; a rotation holds it exclusively.
    daemon_keys: tokio::sync::RwLock<Vec<(&'static str, KeyInfo)>>,
    /// One key rotation at a time.
    rotations: tokio::sync::Mutex<()>,
    /// Woken when a key is added, rotated or retired, for the key set's publisher.
    keys_changed: tokio::sync::Notify,
    /// Serializes agent changes, so a read-modify-write of one agent never loses another's.
    agent_writes: tokio::sync::Mutex<()>,
    /// The group-committing writer for payments, delegations and revocations.
    ledger: Ledger,
    /// Whatever an agent's key signs (payment decisions, delegations, statements,
    /// attestations) holds it shared until answered; freezes, retirements and revocations
    /// exclusively, so once one is acknowledged nothing it forbids can still be signed.
    gate: tokio::sync::RwLock<()>,
    /// Verified voucher chains by leaf id and digest.
    chains: std::sync::Mutex<HashMap<String, Arc<payment::Chain>>>,
    /// Bumped on every confirmation or rejection, to wake `payment.status` waiters.
    decided: tokio::sync::watch::Sender<u64>,
    /// Set when the daemon stops: followers of the log answer at once instead of holding the
    /// drain for the rest of their wait.
    stopping: tokio::sync::watch::Sender<bool>,
    /// The evidence log's name.
    origin: String,
    /// Where verifiers' files are published.
    publication: Publication,
    /// The newest signed checkpoint.
    signed: tokio::sync::watch::Sender<Option<evidence::Signed>>,
    /// Bumped on every change of a voucher's status (revocation, freeze, unfreeze,
    /// retirement): wakes [`Service::keep_status_list`].
    status_dirty: tokio::sync::watch::Sender<u64>,
    /// The newest published voucher status list.
    status_list: tokio::sync::watch::Sender<Option<crate::protocol::voucher::StatusListToken>>,
    /// The TPM's attestation key, on a TPM.
    ak: Option<crate::jose::Jwk>,
    /// The log's Ed25519 note key, where the key store has Ed25519.
    log_ed25519: Option<crate::backend::Ed25519Info>,
    /// Agents' statements on their way to be signed in batches.
    statements: tokio::sync::mpsc::Sender<evidence::Pending>,
    /// Taken once by [`Service::sign_statements`].
    statement_queue: std::sync::Mutex<Option<tokio::sync::mpsc::Receiver<evidence::Pending>>>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("backend", &self.backend.kind())
            .finish_non_exhaustive()
    }
}

impl Service {
    /// Loads the agents, creates the daemon's own keys on first start, and checks that every
    /// active agent's key is still in the store.
    pub async fn open(
        backend: Arc<dyn Backend>,
        store: Arc<Store>,
        ledger: Ledger,
        facts: DaemonFacts,
        settings: Settings,
        publication: Publication,
    ) -> Result<Self, Error> {
        let origin = publication.origin.clone();
        let s = store.clone();
        let (first, latest, size) = blocking(move || {
            s.read(|c| {
                let first = crate::ledger::log::entry(c, 0)?;
                let size = crate::ledger::log::size(c)?;
                Ok((first, crate::ledger::log::latest_checkpoint(c)?, size))
            })
        })
        .await?;
        if let Some(cp) = &latest
            && cp.size > size
        {
            return Err(Error::InvalidState(format!(
                "the evidence log holds {size} entries but a checkpoint for {} was signed: entries were removed from the state database",
                cp.size
            )));
        }
        if let Some((_, bytes)) = first {
            let written = crate::evidence::entry::parse(&bytes)
                .map(|e| e.log)
                .map_err(|e| Internal::Entry {
                    index: 0,
                    source: e.into(),
                })?;
            if written != origin {
                return Err(Error::InvalidState(format!(
                    "the evidence log in the state directory is {written:?}, but the configured origin is {origin:?}; set evidence.origin = {written:?}"
                )));
            }
        }
        let mut daemon_keys = Vec::new();
        for role in DAEMON_KEY_ROLES {
            let s = store.clone();
            let key = match blocking(move || s.daemon_key(role)).await? {
                Some(key) => {
                    backend.describe_key(key.id.clone()).await?;
                    key
                }
                None => {
                    let key = backend.generate_key(format!("ari-{role}")).await?;
                    let (s, k) = (store.clone(), key.clone());
                    blocking(move || s.put_daemon_key(role, &k)).await?;
                    tracing::info!(role, kid = %key.public.thumbprint(), uri = %key.uri, "created daemon key");
                    key
                }
            };
            daemon_keys.push((role, key));
        }
        let log_ed25519 = log_ed25519_key(&backend, &store).await?;
        let ak = match backend.attestation_key().await {
            Ok(info) => {
                tracing::info!(ak = %info.public.thumbprint(), ek_certificate = info.ek_certificate.is_some(), "TPM attestation key ready");
                Some(info.public.to_jwk())
            }
            Err(crate::backend::BackendError::Unsupported { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        let s = store.clone();
        let agents = blocking(move || s.agents()).await?;
        for agent in agents
            .iter()
            .filter(|a| a.status != crate::identity::AgentStatus::Retired)
        {
            if let Err(e) = backend.describe_key(agent.key.id.clone()).await {
                tracing::error!(agent = %agent.id, uri = %agent.key.uri, error = %e, "agent key is missing from the key store");
            }
        }
        tracing::info!(agents = agents.len(), "state loaded");
        let backend = KeyStore::new(backend);
        let (statements, statement_queue) = tokio::sync::mpsc::channel(evidence::STATEMENT_QUEUE);
        Ok(Self {
            backend,
            store,
            registry: Registry::new(agents),
            meter: PeerMeter::new(),
            facts,
            settings: std::sync::RwLock::new((settings, 0)),
            started: std::time::Instant::now(),
            started_at: crate::clock::unix_now(),
            daemon_keys: tokio::sync::RwLock::new(daemon_keys),
            rotations: tokio::sync::Mutex::new(()),
            keys_changed: tokio::sync::Notify::new(),
            agent_writes: tokio::sync::Mutex::new(()),
            ledger,
            gate: tokio::sync::RwLock::new(()),
            chains: std::sync::Mutex::new(HashMap::new()),
            decided: tokio::sync::watch::Sender::new(0),
            stopping: tokio::sync::watch::Sender::new(false),
            origin,
            publication,
            signed: tokio::sync::watch::Sender::new(latest.map(|c| evidence::Signed {
                size: c.size,
                note: c.note,
            })),
            status_dirty: tokio::sync::watch::Sender::new(0),
            status_list: tokio::sync::watch::Sender::new(None),
            ak,
            log_ed25519,
            statements,
            statement_queue: std::sync::Mutex::new(Some(statement_queue)),
        })
    }

    /// Answers one line: a call or a batch.
    pub async fn handle_line(&self, info: &ConnInfo, line: &[u8]) -> Vec<u8> {
        match protocol::parse_line(line) {
            Incoming::Single(Ok(req)) => protocol::render(&self.call(info, req).await),
            Incoming::Single(Err(resp)) => protocol::render(&resp),
            Incoming::Batch(items) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    out.push(match item {
                        Ok(req) => self.call(info, req).await,
                        Err(resp) => resp,
                    });
                }
                protocol::render_batch(&out)
            }
        }
    }

    async fn call(&self, info: &ConnInfo, req: Request) -> Response {
        use tracing::Instrument;
        let Request { id, method, params } = req;
        let started = std::time::Instant::now();
        let known = Method::from_name(&method);
        let name = known.map_or("unknown", Method::name);
        // Every log line a call causes carries its request id, method and caller.
        let span = tracing::info_span!(
            "call",
            req = NEXT_REQUEST.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            method = name,
            socket = info.role.name(),
            pid = info.cred.pid,
            uid = info.cred.uid,
        );
        let result = match known {
            None => Err(protocol::RpcError::new(
                protocol::ErrorCode::MethodNotFound,
                format!("no method {:?}", truncate(&method, 64)),
            )),
            Some(m) => self
                .dispatch(info, m, params)
                .instrument(span.clone())
                .await
                .map_err(|e| e.to_rpc()),
        };
        let outcome = result.as_ref().map_or_else(|e| e.data.reason, |_| "ok");
        crate::metrics::metrics().call(name, outcome, started.elapsed());
        match result {
            Ok(v) => Response::result(id, v),
            Err(e) => {
                span.in_scope(|| {
                    tracing::debug!(code = e.code, reason = e.data.reason, "call refused")
                });
                Response::error(id, e)
            }
        }
    }

    async fn dispatch(
        &self,
        info: &ConnInfo,
        method: Method,
        params: Value,
    ) -> Result<Value, Error> {
        if !method.surface().serves(info.role) {
            return Err(Error::Forbidden(format!(
                "{} is served on the {} socket, not the {} socket",
                method.name(),
                method.surface().name(),
                info.role.name()
            )));
        }
        if info.role == Role::Admin && !self.settings().admin.allows(info) {
            return Err(Error::Forbidden(format!(
                "uid {} is not an operator (root, an allowed uid, or the admin group)",
                info.cred.uid
            )));
        }
        // Each arm names a method once: its marker in `call` carries the params decoded and the
        // result encoded here, so a handler of the wrong types does not compile.
        macro_rules! route {
            ($($method:ident => $handler:expr,)*) => {
                match method {
                    $(Method::$method => serve::<call::$method, _>(params, $handler).await,)*
                }
            };
        }
        route! {
            AgentIdentity => |NoParams {}| self.agent_identity(info),
            AgentAttest => |p| self.agent_attest(info, p),
            AdminStatus => |NoParams {}| self.status(),
            AdminMetrics => |NoParams {}| self.metrics(),
            AdminAgentProvision => |p| self.provision(p),
            AdminAgentList => |NoParams {}| self.agent_list(),
            AdminAgentShow => |p| self.agent_show(p),
            AdminAgentFreeze => |p| self.freeze(p),
            AdminAgentUnfreeze => |p| self.unfreeze(p),
            AdminAgentRetire => |p| self.retire(p),
            AdminAgentCsr => |p| self.csr(p),
            AdminAgentCertImport => |p| self.cert_import(p),
            AdminVoucherIssue => |p| self.voucher_issue(p),
            AdminVoucherList => |p| self.voucher_list(p),
            AdminVoucherShow => |p| self.voucher_show(p),
            AdminVoucherRevoke => |p| self.voucher_revoke(p),
            AdminVoucherImport => |p| self.voucher_import(p),
            AdminVoucherStatusList => |NoParams {}| self.voucher_status_list(),
            AdminIssuerAdd => |p| self.issuer_add(p),
            AdminIssuerList => |NoParams {}| self.issuer_list(),
            AdminIssuerRemove => |p| self.issuer_remove(p),
            AdminCounterpartyAdd => |p| self.counterparty_add(p),
            AdminCounterpartyList => |p| self.counterparty_list(p),
            AdminCounterpartyRemove => |p| self.counterparty_remove(p),
            AdminPaymentList => |p| self.payment_list(p),
            AdminPaymentShow => |p| self.payment_show(p),
            AdminPaymentConfirm => |p| self.payment_confirm(p),
            AdminPaymentReject => |p| self.payment_reject(p),
            AdminSpending => |p| self.spending(p),
            VoucherDelegate => |p| self.voucher_delegate(info, p),
            PaymentAuthorize => |p| self.payment_authorize(info, p),
            PaymentStatus => |p| self.payment_status(info, p),
            PaymentReport => |p| self.payment_report(info, p),
            EvidenceRecord => |p| self.evidence_record(info, p),
            EvidenceCheckpoint => |p| self.evidence_checkpoint(p),
            EvidenceInclusion => |p| self.evidence_inclusion(p),
            EvidenceConsistency => |p| self.evidence_consistency(p),
            EvidenceEntry => |p| self.evidence_entry(info, p),
            AdminLogExport => |p| self.log_export(p),
            AdminLogFollow => |p| self.log_follow(p),
            AdminLogWitness => |p| self.log_witness(p),
            AdminTpmAk => |NoParams {}| self.tpm_ak(),
            AdminKeysExport => |NoParams {}| self.keys_export(),
            AdminKeysRotate => |p| self.keys_rotate(p),
        }
    }

    /// The daemon's key for `role` now, for reading its public half; a signer holds
    /// `daemon_keys` instead, so that a rotation waits for it.
    async fn daemon_key(&self, role: &str) -> Result<KeyInfo, Error> {
        role_key(&self.daemon_keys.read().await, role).cloned()
    }

    fn agent(&self, id: &str) -> Result<Agent, Error> {
        self.registry
            .get(id)
            .ok_or_else(|| Error::AgentNotFound(id.into()))
    }

    /// Ends the waits of `admin.log_follow` calls: they answer with what there is, and the
    /// next call finds the daemon going or gone. Called as the daemon starts to drain.
    pub fn stop_waits(&self) {
        self.stopping.send_replace(true);
    }

    /// The settings in force.
    pub fn settings(&self) -> Settings {
        self.live().0
    }

    /// The settings in force and the number of reloads that produced them.
    fn live(&self) -> (Settings, u64) {
        self.settings
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Applies reloaded settings; calls already running finish under the old ones.
    pub fn apply(&self, settings: Settings) {
        let mut live = self
            .settings
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *live = (settings, live.1 + 1);
    }

    /// Asks the key store something cheap (the issuer key's attributes) within two seconds.
    async fn probe_backend(&self) -> Health {
        let started = std::time::Instant::now();
        let probe = match self.daemon_key("issuer").await {
            Ok(k) => self.backend.describe_key(k.id.clone()),
            Err(e) => {
                return Health::Error {
                    detail: e.to_string(),
                };
            }
        };
        match tokio::time::timeout(std::time::Duration::from_secs(2), probe).await {
            Ok(Ok(_)) => Health::Ok {
                probe_us: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            },
            Ok(Err(crate::backend::BackendError::Busy)) => Health::Busy {
                detail: "the key store's queue is full".into(),
            },
            Ok(Err(e)) => Health::Error {
                detail: e.to_string(),
            },
            Err(_) => Health::Error {
                detail: "no answer within 2 s".into(),
            },
        }
    }

    async fn status(&self) -> Result<Status, Error> {
        let daemon_keys = self
            .daemon_keys
            .read()
            .await
            .iter()
            .map(|(role, k)| {
                let key = DaemonKey {
                    kid: k.public.thumbprint(),
                    uri: k.uri.clone(),
                    jwk: k.public.to_jwk(),
                };
                ((*role).to_string(), key)
            })
            .collect();
        let s = self.store.clone();
        let (vouchers, log_size) = blocking(move || {
            let vouchers = s.voucher_counts(crate::clock::unix_now())?;
            let size = s.read(crate::ledger::log::size)?;
            Ok::<_, crate::store::StoreError>((vouchers, size))
        })
        .await?;
        let checkpoint = self.signed.borrow().as_ref().map(|c| c.size);
        let (settings, reloads) = self.live();
        Ok(Status {
            version: self.facts.version.clone(),
            backend: self.backend.kind().into(),
            backend_health: self.probe_backend().await,
            queues: Queues {
                backend: self.backend.queue(),
                ledger: self.ledger.queue(),
            },
            boot_id: self.facts.boot_id.clone(),
            config_sha256: settings.config_sha256,
            reloads,
            started_at: self.started_at,
            uptime_s: self.started.elapsed().as_secs(),
            agents: self
                .registry
                .counts()
                .into_iter()
                .map(|(status, n)| (status.to_string(), n))
                .collect(),
            vouchers,
            evidence: LogStatus {
                origin: self.origin.clone(),
                entries: log_size,
                checkpoint_size: checkpoint,
                unsigned: checkpoint.map_or(log_size, |c| log_size.saturating_sub(c)),
            },
            daemon_keys,
            tpm: self.backend.counters().map(|counters| TpmStatus {
                ak: self.ak.as_ref().and_then(|j| j.kid.clone()),
                counters,
            }),
        })
    }

    /// The Prometheus text exposition, with the state gauges brought up to date.
    async fn metrics(&self) -> Result<MetricsText, Error> {
        let m = crate::metrics::metrics();
        let s = self.store.clone();
        let log_entries = blocking(move || s.read(crate::ledger::log::size)).await?;
        let checkpoint_size = self.signed.borrow().as_ref().map_or(0, |c| c.size);
        let waiting = |depth: crate::backend::QueueDepth| depth.waiting as u64;
        let queues = [
            ("backend", waiting(self.backend.queue())),
            ("ledger", waiting(self.ledger.queue())),
        ];
        let counts = self.registry.counts();
        let agents = crate::identity::AgentStatus::ALL.map(|status| {
            let name = status.as_str();
            (name, counts.get(name).copied().unwrap_or(0) as u64)
        });
        m.set_state(&crate::metrics::State {
            log_entries,
            checkpoint_size,
            queues: &queues,
            agents: &agents,
            uptime: self.started.elapsed(),
        });
        Ok(MetricsText { text: m.render() })
    }
}

/// The key for `role` among the daemon's keys.
fn role_key<'k>(keys: &'k [(&'static str, KeyInfo)], role: &str) -> Result<&'k KeyInfo, Error> {
    keys.iter()
        .find(|(r, _)| *r == role)
        .map(|(_, k)| k)
        .ok_or_else(|| Internal::NoDaemonKey(role.to_owned()).into())
}

/// Decodes `params` as method `C`'s, runs `handler` on them, and encodes its result: the one
/// place a call's members are read and its answer written.
/// The log's Ed25519 note key: the stored one (checked to be in the store), else a new one;
/// none on a key store without Ed25519, and then no public witness can cosign the log.
async fn log_ed25519_key(
    backend: &Arc<dyn Backend>,
    store: &Arc<Store>,
) -> Result<Option<crate::backend::Ed25519Info>, Error> {
    let s = store.clone();
    if let Some(key) = blocking(move || s.log_ed25519_key()).await? {
        backend.describe_ed25519(key.id.clone()).await?;
        return Ok(Some(key));
    }
    match backend.generate_ed25519("ari-log-ed25519".into()).await {
        Ok(key) => {
            let (s, k) = (store.clone(), key.clone());
            blocking(move || s.put_log_ed25519_key(&k)).await?;
            tracing::info!(uri = %key.uri, "created the log's Ed25519 key");
            Ok(Some(key))
        }
        Err(crate::backend::BackendError::Unsupported { backend, .. }) => {
            tracing::warn!(
                backend,
                "the key store has no Ed25519: checkpoints carry only the ECDSA line, and public witnesses cannot cosign this log"
            );
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

async fn serve<C: Call, F: Future<Output = Result<C::Result, Error>>>(
    params: Value,
    handler: impl FnOnce(C::Params) -> F,
) -> Result<Value, Error> {
    let params = protocol::params(params).map_err(|e| Error::InvalidParams(e.message))?;
    let result = handler(params).await?;
    Ok(serde_json::to_value(result).map_err(Internal::json("a method's result"))?)
}

/// `bytes` random bytes from the operating system, in hex: voucher ids, decision ids.
fn random_hex(bytes: usize) -> Result<String, Error> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(Internal::Randomness)?;
    Ok(hex::encode(buf))
}

/// A fresh SD-JWT salt: 16 random bytes, base64url.
fn random_salt() -> Result<String, Error> {
    let mut buf = [0u8; 16];
    getrandom::fill(&mut buf).map_err(Internal::Randomness)?;
    Ok(crate::jose::b64url(&buf))
}

/// Enough fresh salts for one voucher segment with `claims`' disclosures, handed out one a call.
fn salts_for(claims: &crate::voucher::VoucherClaims) -> Result<impl FnMut() -> String, Error> {
    let concealed: usize = claims
        .constraints
        .iter()
        .map(|c| match c {
            crate::voucher::constraint::Constraint::AllowedPayees { payees } => payees.len(),
            _ => 1,
        })
        .sum();
    let mut pool = (0..concealed + 2)
        .map(|_| random_salt())
        .collect::<Result<Vec<_>, _>>()?;
    Ok(move || pool.pop().unwrap_or_default())
}

/// Runs blocking state work off the async threads.
async fn blocking<T: Send + 'static, E: Into<Error> + Send + 'static>(
    f: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, Error> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(Into::into),
        Err(e) => Err(Internal::Task(e).into()),
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => s.get(..i).unwrap_or(s),
        None => s,
    }
}

/// The public view of an agent, as admin methods and `agent.identity` show it.
pub fn agent_view(a: &Agent) -> AgentView {
    AgentView {
        agent: a.id.clone(),
        instance: a.instance.clone(),
        user: a.user.clone(),
        status: a.status,
        selectors: a.selectors.clone(),
        key: AgentKey {
            kid: a.key.public.thumbprint(),
            jwk: a.key.public.to_jwk(),
            uri: a.key.uri.clone(),
            attributes: a.key.attributes,
            certification: a.key.certification.clone(),
        },
        certificate: a.certificate.clone(),
        created_at: a.created_at,
    }
}
