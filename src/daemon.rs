//! Starting and stopping the daemon: from a checked configuration to serving sockets, and back.
//!
//! Start-up order matters for safety: the key store and the database are opened and the daemon
//! keys checked *before* any socket exists, so a client never reaches a half-started daemon.
//! Sockets are bound only after making sure no other daemon answers on the same path (a stale
//! socket file from a killed daemon is replaced; a live one is refused). Readiness is reported
//! to systemd when `NOTIFY_SOCKET` is set.

use crate::attest::DaemonFacts;
use crate::backend::pkcs11::{self, PinSource, Pkcs11Backend, Pkcs11Options};
use crate::backend::{Backend, BackendError};
use crate::config::{BackendConfig, Config, parse_mode};
use crate::error::Error;
use crate::protocol::Role;
use crate::server;
use crate::service::{AdminPolicy, Service};
use crate::store::{Store, StoreError};
use sha2::{Digest, Sha256};

/// How many ledger jobs may wait for the writer before callers are told to retry.
const LEDGER_QUEUE: usize = 4096;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Why the daemon could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    /// The key store could not be opened.
    #[error("key store: {0}")]
    Backend(#[from] BackendError),
    /// The state database could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Start-up work failed.
    #[error("start-up: {0}")]
    Service(#[from] Error),
    /// A socket could not be set up.
    #[error("socket {path}: {message}")]
    Socket { path: PathBuf, message: String },
    /// Filesystem or signal set-up failed.
    #[error("{0}")]
    Io(String),
}

/// Facts fixed for the daemon's life.
pub fn daemon_facts(config_text: &str) -> DaemonFacts {
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    DaemonFacts {
        boot_id,
        version: env!("CARGO_PKG_VERSION").into(),
        config_sha256: hex::encode(Sha256::digest(config_text.as_bytes())),
    }
}

/// Opens the key store for a configuration. `loaded` is a module already initialized in this
/// process (dev mode creates its token through it).
pub fn open_backend(
    config: &Config,
    loaded: Option<cryptoki::context::Pkcs11>,
) -> Result<Arc<dyn Backend>, DaemonError> {
    let p = match &config.backend {
        BackendConfig::Pkcs11(p) => p,
        BackendConfig::Tpm(t) => return open_tpm(t),
    };
    let source = match (&p.pin_file, &p.pin_credential) {
        (Some(f), _) => PinSource::File(f.clone()),
        (None, Some(c)) => PinSource::Credential(c.clone()),
        (None, None) => return Err(DaemonError::Io("no PIN source configured".into())),
    };
    let opts = Pkcs11Options {
        module: p.module.clone(),
        token_label: p.token_label.clone(),
        pin: pkcs11::read_pin(&source)?,
        sessions: config.sessions(),
        queue_depth: p.queue_depth,
    };
    let backend = match loaded {
        Some(ctx) => Pkcs11Backend::start_with(ctx, opts)?,
        None => Pkcs11Backend::start(opts)?,
    };
    Ok(Arc::new(backend))
}

fn open_tpm(t: &crate::config::TpmConfig) -> Result<Arc<dyn Backend>, DaemonError> {
    use crate::backend::{SecretSource, read_secret};
    let secret = |file: &Option<std::path::PathBuf>, what: &str| {
        file.as_ref()
            .map(|f| read_secret(&SecretSource::File(f.clone()), what))
            .transpose()
            .map(|s| s.map(|s| zeroize::Zeroizing::new(s.as_bytes().to_vec())))
    };
    let key_auth = match (&t.key_auth_file, &t.key_auth_credential) {
        (_, Some(c)) => Some(read_secret(
            &SecretSource::Credential(c.clone()),
            "key auth",
        )?),
        (Some(f), None) => Some(read_secret(&SecretSource::File(f.clone()), "key auth")?),
        (None, None) => None,
    };
    let opts = crate::backend::tpm::TpmOptions {
        tcti: t.tcti.clone(),
        owner_auth: secret(&t.owner_auth_file, "owner auth")?,
        endorsement_auth: secret(&t.endorsement_auth_file, "endorsement auth")?,
        key_auth: key_auth.map(|s| zeroize::Zeroizing::new(s.as_bytes().to_vec())),
        pcrs: t.pcrs.clone(),
        queue_depth: t.queue_depth,
        quote_batch: t.quote_batch,
        max_loaded: t.max_loaded_objects,
    };
    Ok(Arc::new(crate::backend::tpm::TpmBackend::start(opts)?))
}

fn resolve_group(name: &str) -> Result<u32, DaemonError> {
    match nix::unistd::Group::from_name(name) {
        Ok(Some(g)) => Ok(g.gid.as_raw()),
        Ok(None) => Err(DaemonError::Io(format!("group {name:?} does not exist"))),
        Err(e) => Err(DaemonError::Io(format!(
            "cannot look up group {name:?}: {e}"
        ))),
    }
}

/// Binds a socket at `path`, replacing a stale file but refusing a live daemon.
fn bind(
    path: &Path,
    mode: &str,
    group: Option<&str>,
) -> Result<tokio::net::UnixListener, DaemonError> {
    let err = |message: String| DaemonError::Socket {
        path: path.into(),
        message,
    };
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(err(
                "exists and is not a socket; refusing to replace it".into()
            ));
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(err("another daemon is serving this socket".into()));
        }
        std::fs::remove_file(path)
            .map_err(|e| err(format!("cannot remove the stale socket: {e}")))?;
        tracing::info!(path = %path.display(), "replaced a stale socket file");
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| err(format!("cannot create its directory: {e}")))?;
    }
    let listener = tokio::net::UnixListener::bind(path).map_err(|e| err(e.to_string()))?;
    let mode = parse_mode(mode).map_err(|m| err(m.into()))?;
    if let Some(group) = group {
        let gid = resolve_group(group)?;
        nix::unistd::chown(path, None, Some(nix::unistd::Gid::from_raw(gid)))
            .map_err(|e| err(format!("cannot give it to group {group}: {e}")))?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| err(format!("cannot set mode: {e}")))?;
    Ok(listener)
}

/// Tells systemd something, if it is listening.
pub fn notify_systemd(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(sock) = std::os::unix::net::UnixDatagram::unbound() else {
        return;
    };
    // Abstract sockets (leading '@') are not used by the systemd versions we target.
    if let Err(e) = sock.send_to(state.as_bytes(), PathBuf::from(path)) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

/// Runs the daemon until SIGINT or SIGTERM, then drains and returns.
pub async fn run(
    config: Config,
    config_text: &str,
    loaded: Option<cryptoki::context::Pkcs11>,
) -> Result<(), DaemonError> {
    std::fs::create_dir_all(&config.state_dir).map_err(|e| {
        DaemonError::Io(format!("cannot create {}: {e}", config.state_dir.display()))
    })?;
    let backend = open_backend(&config, loaded)?;
    let db = config.state_dir.join("ari.db");
    let store = Arc::new(Store::open(&db)?);
    let origin = config.origin();
    let ledger = crate::ledger::Ledger::open(&db, LEDGER_QUEUE, &origin)?;
    let admin = AdminPolicy {
        allow_uids: config.admin_socket.allow_uids.clone(),
        gid: config
            .admin_socket
            .group
            .as_deref()
            .map(resolve_group)
            .transpose()?,
    };
    let service = Arc::new(
        Service::open(
            backend,
            store,
            ledger,
            daemon_facts(config_text),
            admin,
            origin,
        )
        .await?,
    );
    let checkpoints = tokio::spawn(service.clone().keep_checkpoints(Duration::from_millis(
        config.evidence.checkpoint_interval_ms,
    )));

    let agent = bind(
        &config.agent_socket.path,
        &config.agent_socket.mode,
        config.agent_socket.group.as_deref(),
    )?;
    let admin = bind(
        &config.admin_socket.path,
        &config.admin_socket.mode,
        config.admin_socket.group.as_deref(),
    )?;
    let (trigger, shutdown) = server::shutdown_pair();
    let limits = config.limits;
    let agent_task = tokio::spawn(server::run(
        agent,
        Role::Agent,
        service.clone(),
        limits,
        shutdown.clone(),
    ));
    let admin_task = tokio::spawn(server::run(
        admin,
        Role::Admin,
        service,
        limits,
        shutdown.clone(),
    ));
    tracing::info!(
        agent_socket = %config.agent_socket.path.display(),
        admin_socket = %config.admin_socket.path.display(),
        "arid ready"
    );
    notify_systemd("READY=1\nSTATUS=serving");

    wait_for_signal().await?;
    tracing::info!("stopping: draining in-flight calls");
    notify_systemd("STOPPING=1");
    trigger.trigger();
    let _ = agent_task.await;
    let _ = admin_task.await;
    // A head not yet signed is signed at the next start.
    checkpoints.abort();
    for path in [&config.agent_socket.path, &config.admin_socket.path] {
        let _ = std::fs::remove_file(path);
    }
    tracing::info!("stopped");
    Ok(())
}

async fn wait_for_signal() -> Result<(), DaemonError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(|e| DaemonError::Io(e.to_string()))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| DaemonError::Io(e.to_string()))?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
    Ok(())
}
