//! Starting and stopping the daemon: from a checked configuration to serving sockets, and back.
//!
//! Start-up order matters for safety: the key store and the database are opened and the daemon
//! keys checked *before* any socket exists, so a client never reaches a half-started daemon.
//! Sockets are bound only after making sure no other daemon answers on the same path (a stale
//! socket file from a killed daemon of the same user is replaced; a live one, another user's, a
//! symbolic link or any other file is refused, and no link is ever followed). Readiness is reported
//! to systemd when `NOTIFY_SOCKET` is set.

use crate::attest::DaemonFacts;
use crate::backend::pkcs11::{self, PinSource, Pkcs11Backend, Pkcs11Options};
use crate::backend::{Backend, BackendError};
use crate::config::{BackendConfig, Config, parse_mode};
use crate::error::Error;
use crate::protocol::Role;
use crate::server;
use crate::service::{AdminPolicy, Service, Settings};
use crate::store::{Store, StoreError};
use sha2::{Digest, Sha256};

/// How many ledger jobs may wait for the writer before callers are told to retry.
const LEDGER_QUEUE: usize = 4096;
use std::os::unix::fs::FileTypeExt;
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
    #[error("socket {path}: {problem}")]
    Socket {
        path: PathBuf,
        #[source]
        problem: SocketError,
    },
    /// A socket systemd passed cannot be used; names it (`"agent"`, or `#2` when unnamed).
    #[error("socket {name} passed by systemd: {problem}")]
    Passed {
        name: String,
        #[source]
        problem: SocketError,
    },
    /// The PKCS#11 configuration names no PIN file or credential.
    #[error("no PIN source configured")]
    NoPinSource,
    /// A configured group does not exist.
    #[error("group {0:?} does not exist")]
    NoGroup(String),
    /// A configured group could not be looked up.
    #[error("cannot look up group {name:?}: {source}")]
    GroupLookup {
        name: String,
        #[source]
        source: nix::Error,
    },
    /// The state directory could not be created.
    #[error("cannot create {path}: {source}")]
    StateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Another daemon holds the state directory's lock; `pid` is what it wrote (may be empty).
    #[error(
        "another arid{} is already using the state directory {dir}; stop it first (`systemctl stop arid`, or kill that process), or give this one another state_dir",
        held_by(.pid)
    )]
    Locked { pid: String, dir: PathBuf },
    /// The state directory's lock file could not be opened or written.
    #[error("cannot lock {path}: {source}")]
    Lock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The signal handlers could not be installed.
    #[error("{0}")]
    Signals(#[source] std::io::Error),
}

/// How a lock holder's pid is named in [`DaemonError::Locked`].
fn held_by(pid: &str) -> String {
    if pid.is_empty() {
        String::new()
    } else {
        format!(" (pid {pid})")
    }
}

/// Why a socket could not be bound, or one systemd passed could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SocketError {
    /// The path is a symbolic link, which is never followed nor replaced.
    #[error("is a symbolic link; refusing to follow or replace it (remove it if it is yours)")]
    Symlink,
    /// Something other than a socket is at the path.
    #[error("exists and is not a socket; refusing to replace it")]
    NotASocket,
    /// The socket file belongs to another user.
    #[error(
        "is a socket owned by uid {owner}, not by this daemon's user (uid {euid}); refusing to replace it (its owner may remove it if it is stale)"
    )]
    NotOurs { owner: u32, euid: u32 },
    /// A daemon answers on the socket.
    #[error("another daemon is serving this socket")]
    Live,
    /// The stale socket file could not be removed.
    #[error("cannot remove the stale socket: {0}")]
    RemoveStale(#[source] std::io::Error),
    /// The socket's directory could not be created.
    #[error("cannot create its directory: {0}")]
    Directory(#[source] std::io::Error),
    /// The bind itself failed, or the socket could not be handed to the runtime.
    #[error("{0}")]
    Bind(#[source] std::io::Error),
    /// The configured mode is not one; says what is expected.
    #[error("{0}")]
    Mode(&'static str),
    /// The socket could not be given to its group.
    #[error("cannot give it to group {group}: {source}")]
    Group {
        group: String,
        #[source]
        source: nix::Error,
    },
    /// The socket's mode could not be set.
    #[error("cannot set mode: {0}")]
    Chmod(#[source] nix::Error),
    /// What systemd passed is not a listening Unix stream socket.
    #[error("not a listening Unix stream socket ({0})")]
    NotListening(#[source] std::io::Error),
    /// A passed socket that is neither named for a role nor bound at a configured path.
    #[error(
        "neither named agent/admin (FileDescriptorName=) nor bound at a configured path (it is at {at})"
    )]
    Unmatched { at: String },
    /// systemd passed two sockets for one role.
    #[error("a second {0} socket")]
    Duplicate(&'static str),
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
        (None, None) => return Err(DaemonError::NoPinSource),
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
        Ok(None) => Err(DaemonError::NoGroup(name.to_owned())),
        Err(source) => Err(DaemonError::GroupLookup {
            name: name.to_owned(),
            source,
        }),
    }
}

/// Binds a socket at `path`, replacing a stale socket file of this user's but refusing a live
/// daemon and anything else: a symbolic link is never followed (nor replaced), another user's
/// socket never taken over. The mode and group are set without following a link either, so a
/// link swapped in after the bind gets nothing.
fn bind(
    path: &Path,
    mode: &str,
    group: Option<&str>,
) -> Result<tokio::net::UnixListener, DaemonError> {
    use nix::fcntl::{AT_FDCWD, AtFlags};
    use std::os::unix::fs::MetadataExt;
    let err = |problem: SocketError| DaemonError::Socket {
        path: path.into(),
        problem,
    };
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if meta.file_type().is_symlink() {
            return Err(err(SocketError::Symlink));
        }
        if !meta.file_type().is_socket() {
            return Err(err(SocketError::NotASocket));
        }
        let euid = nix::unistd::geteuid().as_raw();
        if meta.uid() != euid {
            return Err(err(SocketError::NotOurs {
                owner: meta.uid(),
                euid,
            }));
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(err(SocketError::Live));
        }
        std::fs::remove_file(path).map_err(|e| err(SocketError::RemoveStale(e)))?;
        tracing::info!(path = %path.display(), "replaced a stale socket file");
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| err(SocketError::Directory(e)))?;
    }
    let listener = tokio::net::UnixListener::bind(path).map_err(|e| err(SocketError::Bind(e)))?;
    let mode = parse_mode(mode).map_err(|m| err(SocketError::Mode(m)))?;
    if let Some(group) = group {
        let gid = resolve_group(group)?;
        nix::unistd::fchownat(
            AT_FDCWD,
            path,
            None,
            Some(nix::unistd::Gid::from_raw(gid)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|source| {
            err(SocketError::Group {
                group: group.to_owned(),
                source,
            })
        })?;
    }
    nix::sys::stat::fchmodat(
        AT_FDCWD,
        path,
        nix::sys::stat::Mode::from_bits_truncate(mode),
        nix::sys::stat::FchmodatFlags::NoFollowSymlink,
    )
    .map_err(|e| err(SocketError::Chmod(e)))?;
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

/// A failure in work the host binary does for the daemon (re-reading the configuration,
/// installing a log filter), with its cause.
pub type HostError = Box<dyn std::error::Error + Send + Sync>;

/// Re-reads the configuration: the parsed file and the text its digest covers.
pub type ConfigLoader = Box<dyn Fn() -> Result<(Config, String), HostError> + Send + Sync>;

/// Installs a new log filter (a `tracing` directive such as `info` or `ari=debug`).
pub type LogLevelSetter = Box<dyn Fn(&str) -> Result<(), HostError> + Send + Sync>;

/// Why a reload (SIGHUP) was refused; the daemon goes on with the configuration it had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReloadError {
    /// The daemon was started without a file to re-read.
    #[error("this daemon was started without a configuration file to re-read")]
    NoConfigFile,
    /// The file could not be read or does not check out.
    #[error("{0}")]
    Load(#[source] HostError),
    /// Its settings could not be applied (a group that does not exist).
    #[error("{0}")]
    Settings(#[source] DaemonError),
    /// It changes settings that only a start can change; names them.
    #[error(
        "{} changed, which only takes effect at a restart (systemctl restart arid); nothing was applied",
        .0.join(", ")
    )]
    RestartOnly(Vec<&'static str>),
    /// The new log level could not be installed.
    #[error("log.level: {0}")]
    LogLevel(#[source] HostError),
}

/// What the host binary lets the daemon change on SIGHUP.
pub struct Control {
    /// How SIGHUP re-reads the configuration; without it, SIGHUP only says so in the log.
    pub load_config: Option<ConfigLoader>,
    /// Installs a new log filter.
    pub set_log_level: LogLevelSetter,
    /// Sockets systemd passed, taken before the runtime started ([`Inherited::take`]).
    pub sockets: Inherited,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control")
            .field("reloads", &self.load_config.is_some())
            .finish_non_exhaustive()
    }
}

impl Control {
    /// No reloads: SIGHUP is logged and ignored.
    pub fn none() -> Self {
        Self {
            load_config: None,
            set_log_level: Box::new(|_| Err("this daemon cannot change its log level".into())),
            sockets: Inherited::default(),
        }
    }
}

/// The lock that keeps a second daemon off a state directory, held for the daemon's life.
#[derive(Debug)]
pub struct StateLock(#[allow(dead_code)] nix::fcntl::Flock<std::fs::File>);

/// Takes the lock file at `path` (creating it), writing this process's pid into it. On
/// failure, returns the pid the holder wrote, if it could be read.
pub fn take_lock(path: &Path) -> Result<StateLock, LockError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .open(path)
        .map_err(LockError::Io)?;
    match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
        Ok(mut locked) => {
            locked.set_len(0).map_err(LockError::Io)?;
            writeln!(*locked, "{}", std::process::id()).map_err(LockError::Io)?;
            Ok(StateLock(locked))
        }
        Err(_) => Err(LockError::Held(
            std::fs::read_to_string(path)
                .unwrap_or_default()
                .trim()
                .to_string(),
        )),
    }
}

/// Why a lock file could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it; its pid as written in the file (may be empty).
    #[error("another process holds the lock{}", held_by(.0))]
    Held(String),
    /// The file could not be opened or written.
    #[error("the lock file cannot be opened or written: {0}")]
    Io(#[source] std::io::Error),
}

/// Listening sockets systemd passed (socket activation), by role.
#[derive(Debug, Default)]
pub struct Inherited {
    agent: Option<std::os::unix::net::UnixListener>,
    admin: Option<std::os::unix::net::UnixListener>,
}

impl Inherited {
    /// Takes the sockets systemd passed. Call it before any thread starts: it removes the
    /// `LISTEN_*` variables from the environment.
    pub fn take(config: &Config) -> Result<Self, DaemonError> {
        let (agent, admin) = inherited_sockets(config)?;
        Ok(Self { agent, admin })
    }
}

type Passed = (
    Option<std::os::unix::net::UnixListener>,
    Option<std::os::unix::net::UnixListener>,
);

/// The listening sockets, and which of their files this daemon made (and so removes at exit).
struct Listeners {
    agent: tokio::net::UnixListener,
    admin: tokio::net::UnixListener,
    owned: Vec<PathBuf>,
}

/// Sockets systemd passed (`LISTEN_FDS`), matched to the configured ones by their names
/// (`FileDescriptorName=agent` / `admin`) or, when unnamed, by their paths.
fn inherited_sockets(config: &Config) -> Result<Passed, DaemonError> {
    let for_us = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        == Some(std::process::id());
    if std::env::var_os("LISTEN_FDS").is_none() {
        return Ok((None, None));
    }
    if !for_us {
        tracing::warn!("LISTEN_FDS is set for another process; binding the sockets instead");
        return Ok((None, None));
    }
    let names: Vec<String> = std::env::var("LISTEN_FDNAMES")
        .map(|n| n.split(':').map(str::to_owned).collect())
        .unwrap_or_default();
    let mut fds = listenfd::ListenFd::from_env();
    let (mut agent, mut admin) = (None, None);
    for idx in 0..fds.len() {
        let fail = |problem: SocketError| DaemonError::Passed {
            name: names
                .get(idx)
                .map_or_else(|| format!("#{idx}"), |n| format!("{n:?}")),
            problem,
        };
        let Some(listener) = fds
            .take_unix_listener(idx)
            .map_err(|e| fail(SocketError::NotListening(e)))?
        else {
            continue;
        };
        let path = listener
            .local_addr()
            .ok()
            .and_then(|a| a.as_pathname().map(Path::to_path_buf));
        let role = match names.get(idx).map(String::as_str) {
            Some("agent") => Role::Agent,
            Some("admin") => Role::Admin,
            _ if path.as_deref() == Some(config.agent_socket.path.as_path()) => Role::Agent,
            _ if path.as_deref() == Some(config.admin_socket.path.as_path()) => Role::Admin,
            _ => {
                return Err(fail(SocketError::Unmatched {
                    at: path.map_or_else(|| "no path".into(), |p| p.display().to_string()),
                }));
            }
        };
        let slot = match role {
            Role::Agent => &mut agent,
            Role::Admin => &mut admin,
        };
        if slot.replace(listener).is_some() {
            return Err(fail(SocketError::Duplicate(role.name())));
        }
    }
    Ok((agent, admin))
}

fn listeners(config: &Config, passed: Inherited) -> Result<Listeners, DaemonError> {
    let Inherited { agent, admin } = passed;
    let mut owned = Vec::new();
    let mut take = |passed: Option<std::os::unix::net::UnixListener>,
                    path: &Path,
                    mode: &str,
                    group: Option<&str>,
                    role: Role| {
        match passed {
            Some(l) => {
                tracing::info!(socket = role.name(), "using the socket systemd passed");
                l.set_nonblocking(true)
                    .and_then(|()| tokio::net::UnixListener::from_std(l))
                    .map_err(|e| DaemonError::Socket {
                        path: path.into(),
                        problem: SocketError::Bind(e),
                    })
            }
            None => {
                let l = bind(path, mode, group)?;
                owned.push(path.to_path_buf());
                Ok(l)
            }
        }
    };
    let agent = take(
        agent,
        &config.agent_socket.path,
        &config.agent_socket.mode,
        config.agent_socket.group.as_deref(),
        Role::Agent,
    )?;
    let admin = take(
        admin,
        &config.admin_socket.path,
        &config.admin_socket.mode,
        config.admin_socket.group.as_deref(),
        Role::Admin,
    )?;
    Ok(Listeners {
        agent,
        admin,
        owned,
    })
}

fn admin_policy(config: &Config) -> Result<AdminPolicy, DaemonError> {
    Ok(AdminPolicy {
        allow_uids: config.admin_socket.allow_uids.clone(),
        gid: config
            .admin_socket
            .group
            .as_deref()
            .map(resolve_group)
            .transpose()?,
    })
}

fn settings(config: &Config, config_text: &str) -> Result<Settings, DaemonError> {
    Ok(Settings {
        admin: admin_policy(config)?,
        config_sha256: hex::encode(Sha256::digest(config_text.as_bytes())),
        checkpoint_interval: Duration::from_millis(config.evidence.checkpoint_interval_ms),
        witnesses: config.evidence.witnesses.clone(),
        witness_timeout: Duration::from_millis(config.evidence.witness_timeout_ms),
        rotation_overlap: Duration::from_secs(config.keys.rotation_overlap_s),
    })
}

/// Runs the daemon until SIGINT or SIGTERM, then drains and returns. SIGHUP re-reads the
/// configuration through `control` and applies what can change while serving.
pub async fn run(
    config: Config,
    config_text: &str,
    loaded: Option<cryptoki::context::Pkcs11>,
    mut control: Control,
) -> Result<(), DaemonError> {
    // Taken first, so a SIGHUP or SIGTERM during a slow start is handled once serving instead of
    // killing the process with the default action.
    let mut signals = Signals::new()?;
    raise_fd_limit();
    std::fs::create_dir_all(&config.state_dir).map_err(|source| DaemonError::StateDir {
        path: config.state_dir.clone(),
        source,
    })?;
    let lock_path = config.state_dir.join("arid.lock");
    let _lock = take_lock(&lock_path).map_err(|e| match e {
        LockError::Held(pid) => DaemonError::Locked {
            pid,
            dir: config.state_dir.clone(),
        },
        LockError::Io(source) => DaemonError::Lock {
            path: lock_path.clone(),
            source,
        },
    })?;
    let backend = open_backend(&config, loaded)?;
    let db = config.state_dir.join("ari.db");
    let store = Arc::new(Store::open(&db)?);
    let origin = config.origin();
    let ledger = crate::ledger::Ledger::open(&db, LEDGER_QUEUE, &origin)?;
    let service = Arc::new(
        Service::open(
            backend,
            store,
            ledger,
            daemon_facts(config_text),
            settings(&config, config_text)?,
            crate::publish::Publication {
                dir: config.publish_dir(),
                url: config.publish_url(),
                origin,
            },
        )
        .await?,
    );
    let checkpoints = tokio::spawn(service.clone().keep_checkpoints());
    let statements = tokio::spawn(service.clone().sign_statements());
    let published = tokio::spawn(service.clone().keep_published());
    let witnessed = tokio::spawn(service.clone().keep_witnessed());
    let keys = tokio::spawn(service.clone().keep_keys_published());
    let status_list = tokio::spawn(service.clone().keep_status_list());

    let sockets = listeners(&config, std::mem::take(&mut control.sockets))?;
    let (trigger, shutdown) = server::shutdown_pair();
    let (limits_tx, limits) = tokio::sync::watch::channel(config.limits);
    let agent_task = tokio::spawn(server::run(
        sockets.agent,
        Role::Agent,
        service.clone(),
        limits.clone(),
        shutdown.clone(),
    ));
    let admin_task = tokio::spawn(server::run(
        sockets.admin,
        Role::Admin,
        service.clone(),
        limits.clone(),
        shutdown.clone(),
    ));
    tracing::info!(
        agent_socket = %config.agent_socket.path.display(),
        admin_socket = %config.admin_socket.path.display(),
        pid = std::process::id(),
        "arid ready"
    );
    notify_systemd(&format!(
        "READY=1\nSTATUS=serving\nMAINPID={}",
        std::process::id()
    ));

    let mut running = config;
    loop {
        match signals.next().await {
            Signal::Stop(name) => {
                tracing::info!("{name} received");
                break;
            }
            Signal::Reload => {
                notify_systemd("RELOADING=1\nSTATUS=reloading the configuration");
                let status = match reload(&control, &running, &service, &limits_tx) {
                    Ok(next) => {
                        running = next;
                        crate::metrics::metrics().reload("ok");
                        "serving (configuration reloaded)".to_string()
                    }
                    Err(why) => {
                        tracing::error!(
                            "reload refused, still serving with the previous configuration: {why}"
                        );
                        crate::metrics::metrics().reload("failed");
                        format!("serving; the last reload was refused: {why}")
                    }
                };
                notify_systemd(&format!("READY=1\nSTATUS={status}"));
            }
        }
    }
    tracing::info!("stopping: draining in-flight calls");
    notify_systemd("STOPPING=1\nSTATUS=draining in-flight calls");
    service.stop_waits();
    trigger.trigger();
    let _ = agent_task.await;
    let _ = admin_task.await;
    // A head not yet signed is signed at the next start.
    checkpoints.abort();
    let _ = checkpoints.await;
    // What is not yet published is published at the next start.
    published.abort();
    let _ = published.await;
    witnessed.abort();
    let _ = witnessed.await;
    // Every statement was answered while the calls drained.
    statements.abort();
    let _ = statements.await;
    keys.abort();
    let _ = keys.await;
    // A change not yet published is, from the state, at the next start.
    status_list.abort();
    let _ = status_list.await;
    // Sockets systemd passed stay: systemd owns them and queues clients until the next start.
    for path in &sockets.owned {
        let _ = std::fs::remove_file(path);
    }
    tracing::info!("stopped");
    Ok(())
}

/// Raises the soft limit on open files to the hard one: each client costs two descriptors (its
/// socket and the pidfd that pins it to its process, where the kernel has `SO_PEERPIDFD`), and
/// the usual soft default (1024) is below what `limits.max_connections` allows on two sockets.
fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                tracing::warn!(soft, hard, error = %e, "cannot raise the open-file limit");
            }
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot read the open-file limit"),
    }
}

/// Re-reads the configuration and applies limits, the log level, who may operate, and the
/// checkpoint interval. A file that changes what only a start can change is refused. Returns
/// the configuration now in force.
fn reload(
    control: &Control,
    running: &Config,
    service: &Service,
    limits: &tokio::sync::watch::Sender<crate::config::Limits>,
) -> Result<Config, ReloadError> {
    let Some(load) = &control.load_config else {
        return Err(ReloadError::NoConfigFile);
    };
    let (next, text) = load().map_err(ReloadError::Load)?;
    let settings = settings(&next, &text).map_err(ReloadError::Settings)?;
    // A file that differs in what only a start can change is refused as a whole: the digest
    // attestations carry must describe the configuration actually running.
    let mut restart_only = Vec::new();
    macro_rules! at_start {
        ($($field:ident).+, $name:literal) => {
            if format!("{:?}", next.$($field).+) != format!("{:?}", running.$($field).+) {
                restart_only.push($name);
            }
        };
    }
    at_start!(state_dir, "state_dir");
    at_start!(io_threads, "io_threads");
    at_start!(backend, "backend");
    at_start!(agent_socket, "agent_socket");
    at_start!(admin_socket.path, "admin_socket.path");
    at_start!(admin_socket.mode, "admin_socket.mode");
    at_start!(evidence.origin, "evidence.origin");
    if !restart_only.is_empty() {
        return Err(ReloadError::RestartOnly(restart_only));
    }
    (control.set_log_level)(&next.log.level).map_err(ReloadError::LogLevel)?;
    service.apply(settings);
    limits.send_replace(next.limits);
    tracing::info!(config_sha256 = %service.settings().config_sha256, "configuration reloaded");
    Ok(next)
}

enum Signal {
    Stop(&'static str),
    Reload,
}

struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> Result<Self, DaemonError> {
        use tokio::signal::unix::{SignalKind, signal};
        let on = |kind| signal(kind).map_err(DaemonError::Signals);
        Ok(Self {
            term: on(SignalKind::terminate())?,
            int: on(SignalKind::interrupt())?,
            hup: on(SignalKind::hangup())?,
        })
    }

    async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.term.recv() => Signal::Stop("SIGTERM"),
            _ = self.int.recv() => Signal::Stop("SIGINT"),
            _ = self.hup.recv() => Signal::Reload,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_symbolic_link_or_a_file_at_a_socket_path_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, "mine").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let Err(DaemonError::Socket { path, problem }) = bind(&link, "0660", None) else {
            unreachable!("a symbolic link was bound over");
        };
        assert_eq!(path, link);
        assert!(matches!(problem, SocketError::Symlink));
        let Err(DaemonError::Socket { problem, .. }) = bind(&file, "0660", None) else {
            unreachable!("a file was bound over");
        };
        assert!(matches!(problem, SocketError::NotASocket));
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "mine");
    }

    #[test]
    fn operators_read_the_same_sentences_as_before() {
        let locked = DaemonError::Locked {
            pid: "42".into(),
            dir: "/var/lib/ari".into(),
        };
        assert!(
            locked
                .to_string()
                .starts_with("another arid (pid 42) is already using the state directory /var/lib/ari; stop it first"),
            "{locked}"
        );
        let unknown = DaemonError::Locked {
            pid: String::new(),
            dir: "/var/lib/ari".into(),
        };
        assert!(
            unknown.to_string().starts_with("another arid is already"),
            "{unknown}"
        );
        let socket = DaemonError::Socket {
            path: "/run/ari/agent.sock".into(),
            problem: SocketError::NotOurs { owner: 7, euid: 8 },
        };
        assert!(
            socket
                .to_string()
                .starts_with("socket /run/ari/agent.sock: is a socket owned by uid 7, not by this daemon's user (uid 8)"),
            "{socket}"
        );
        let reload = ReloadError::RestartOnly(vec!["state_dir", "backend"]);
        assert!(
            reload
                .to_string()
                .starts_with("state_dir, backend changed, which only takes effect at a restart"),
            "{reload}"
        );
    }

    #[test]
    fn a_refused_log_level_keeps_its_cause() {
        let control = Control::none();
        let e = ReloadError::LogLevel((control.set_log_level)("debug").unwrap_err());
        assert_eq!(
            e.to_string(),
            "log.level: this daemon cannot change its log level"
        );
        assert!(std::error::Error::source(&e).is_some());
    }
}
