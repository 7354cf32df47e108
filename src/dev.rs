//! Dev mode: a complete daemon on a throwaway SoftHSM2 token in one directory.
//!
//! `arid dev --state-dir DIR` makes DIR self-contained: its own `softhsm2.conf` and token
//! directory, a random PIN in a 0600 file, a config file, the database and both sockets. The
//! invoking user is the operator. Run again on the same DIR it resumes with the same token and
//! state; a lock file held for the daemon's life refuses a second daemon on the same DIR, and
//! socket files left by a killed daemon are replaced. SoftHSM reads its configuration from the
//! `SOFTHSM2_CONF` environment variable at load time, so dev mode re-executes itself once with
//! that variable set rather than changing its own environment.
//!
//! Nothing here is meant for production keys: the PIN sits next to the token.

use crate::backend::pkcs11;
use crate::config::Config;
use cryptoki::types::AuthPin;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Where Debian's softhsm2 package puts the module.
pub const SOFTHSM_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
/// The label of the dev token.
pub const DEV_TOKEN_LABEL: &str = "ari-dev";

/// Why dev mode could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DevError {
    /// SoftHSM is not installed.
    #[error(
        "SoftHSM2 is not installed ({0} is missing). Install it with:\n    sudo apt-get install -y softhsm2"
    )]
    NoSoftHsm(PathBuf),
    /// Another daemon serves the directory.
    #[error("another arid is already serving {dir} (pid {pid}); stop it first")]
    Busy { dir: PathBuf, pid: String },
    /// A file could not be written or read.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The token could not be set up.
    #[error("token: {0}")]
    Token(#[from] crate::backend::BackendError),
    /// The generated config did not check out.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DevError + '_ {
    move |source| DevError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The files of a dev directory.
#[derive(Debug, Clone)]
pub struct DevLayout {
    /// The directory.
    pub dir: PathBuf,
    /// `softhsm2.conf`.
    pub softhsm_conf: PathBuf,
    /// `arid.toml`.
    pub config: PathBuf,
    /// The user PIN file.
    pub pin: PathBuf,
    /// The SO PIN file.
    pub so_pin: PathBuf,
    /// `agent.sock`.
    pub agent_socket: PathBuf,
    /// `admin.sock`.
    pub admin_socket: PathBuf,
    /// `arid.lock`.
    pub lock: PathBuf,
}

impl DevLayout {
    /// The layout under `dir` (made absolute).
    pub fn new(dir: &Path) -> Result<Self, DevError> {
        fs::create_dir_all(dir).map_err(io(dir))?;
        let dir = fs::canonicalize(dir).map_err(io(dir))?;
        Ok(Self {
            softhsm_conf: dir.join("softhsm2.conf"),
            config: dir.join("arid.toml"),
            pin: dir.join("secrets/token.pin"),
            so_pin: dir.join("secrets/token.so-pin"),
            agent_socket: dir.join("agent.sock"),
            admin_socket: dir.join("admin.sock"),
            lock: dir.join("arid.lock"),
            dir,
        })
    }
}

fn write_private(path: &Path, text: &str) -> Result<(), DevError> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io(path))?;
    f.write_all(text.as_bytes()).map_err(io(path))
}

fn random_pin() -> Result<String, DevError> {
    let mut raw = [0u8; 12];
    getrandom::fill(&mut raw).map_err(|e| DevError::Io {
        path: "getrandom".into(),
        source: std::io::Error::other(e.to_string()),
    })?;
    Ok(hex::encode(raw))
}

/// Creates whatever is missing in the directory (never overwriting what exists) and returns
/// the layout. The directory itself is 0755 so that agents of other users can reach
/// `agent.sock`; the token, PINs, database and admin socket are the invoking user's alone.
pub fn prepare(dir: &Path) -> Result<DevLayout, DevError> {
    let l = DevLayout::new(dir)?;
    fs::set_permissions(&l.dir, fs::Permissions::from_mode(0o755)).map_err(io(&l.dir))?;
    for sub in ["tokens", "secrets", "state"] {
        let p = l.dir.join(sub);
        fs::create_dir_all(&p).map_err(io(&p))?;
        fs::set_permissions(&p, fs::Permissions::from_mode(0o700)).map_err(io(&p))?;
    }
    if !l.softhsm_conf.exists() {
        let text = format!(
            "# SoftHSM2 configuration of an arid dev directory\ndirectories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
            l.dir.join("tokens").display()
        );
        write_private(&l.softhsm_conf, &text)?;
    }
    for pin in [&l.pin, &l.so_pin] {
        if !pin.exists() {
            write_private(pin, &format!("{}\n", random_pin()?))?;
        }
    }
    if !l.config.exists() {
        let uid = nix::unistd::getuid().as_raw();
        let text = format!(
            r#"# arid dev-mode configuration, written by `arid dev`. Edit freely; it is reused.
state_dir = "{state}"
# Threads serving the sockets; 0 = one per CPU.
io_threads = 0

[backend]
kind = "pkcs11"
module = "{module}"
token_label = "{label}"
pin_file = "{pin}"
# Token sessions (signing threads); 0 = one per CPU.
sessions = 0
# Signing calls that may wait for a session before callers get "busy".
queue_depth = 256

[agent_socket]
path = "{agent}"
# Any local user may connect; the daemon decides by process identity who is an agent.
mode = "0666"

[admin_socket]
path = "{admin}"
mode = "0600"
# The user who created this directory is the operator.
allow_uids = [{uid}]

[limits]
max_line_bytes = 65536
read_timeout_ms = 5000
idle_timeout_ms = 300000
first_line_timeout_ms = 5000
max_connections = 256
# One developer runs agents, tests and benchmarks as one user, with up to max_connections
# clients; a shared host keeps the default of 32 (docs/arid.example.toml).
max_connections_per_uid = 256
max_in_flight_per_connection = 16
shutdown_grace_ms = 5000

[log]
level = "info"
"#,
            state = l.dir.join("state").display(),
            module = SOFTHSM_MODULE,
            label = DEV_TOKEN_LABEL,
            pin = l.pin.display(),
            agent = l.agent_socket.display(),
            admin = l.admin_socket.display(),
        );
        write_private(&l.config, &text)?;
        fs::set_permissions(&l.config, fs::Permissions::from_mode(0o644)).map_err(io(&l.config))?;
    }
    Ok(l)
}

/// Holds the directory's lock for the process's life.
#[derive(Debug)]
pub struct DevLock(#[allow(dead_code)] crate::daemon::StateLock);

/// Takes the directory's lock, or reports the daemon holding it.
pub fn lock(l: &DevLayout) -> Result<DevLock, DevError> {
    match crate::daemon::take_lock(&l.lock) {
        Ok(lock) => Ok(DevLock(lock)),
        Err(crate::daemon::LockError::Held(pid)) => Err(DevError::Busy {
            dir: l.dir.clone(),
            pid,
        }),
        Err(crate::daemon::LockError::Io(e)) => Err(io(&l.lock)(e)),
    }
}

fn read_pin(path: &Path) -> Result<AuthPin, DevError> {
    Ok(pkcs11::read_pin(&pkcs11::PinSource::File(
        path.to_path_buf(),
    ))?)
}

/// Whether this process already runs with the directory's SoftHSM configuration.
pub fn env_is_set(l: &DevLayout) -> bool {
    std::env::var_os("SOFTHSM2_CONF").is_some_and(|v| Path::new(&v) == l.softhsm_conf)
}

/// Checks SoftHSM is installed.
pub fn check_softhsm() -> Result<PathBuf, DevError> {
    let module = PathBuf::from(
        std::env::var_os("ARI_PKCS11_MODULE").unwrap_or_else(|| SOFTHSM_MODULE.into()),
    );
    if module.exists() {
        Ok(module)
    } else {
        Err(DevError::NoSoftHsm(module))
    }
}

/// Loads SoftHSM (the environment must already point at the directory's config) and creates
/// the dev token if it does not exist. Returns the loaded module, the checked config and its text.
pub fn open_token(
    l: &DevLayout,
) -> Result<(cryptoki::context::Pkcs11, Config, String, bool), DevError> {
    let text = fs::read_to_string(&l.config).map_err(io(&l.config))?;
    let config = Config::parse(&text, &l.config)?;
    let crate::config::BackendConfig::Pkcs11(p) = &config.backend else {
        return Err(DevError::Token(crate::backend::BackendError::Failed(
            format!("{} does not configure a PKCS#11 token", l.config.display()),
        )));
    };
    let ctx = pkcs11::load_module(&p.module)?;
    let created = pkcs11::ensure_token(
        &ctx,
        &p.token_label,
        &read_pin(&l.so_pin)?,
        &read_pin(&l.pin)?,
    )?;
    Ok((ctx, config, text, created))
}

/// The directory's configuration with its key store swapped for the TPM at `tcti`, and the
/// text the configuration digest covers (the file plus a line naming the TPM). Keys the daemon
/// creates get a random auth value kept in `secrets/tpm-key.auth`.
pub fn tpm_config(
    l: &DevLayout,
    tcti: &str,
    quote_batch: usize,
) -> Result<(Config, String), DevError> {
    let mut text = fs::read_to_string(&l.config).map_err(io(&l.config))?;
    let mut config = Config::parse(&text, &l.config)?;
    let auth = l.dir.join("secrets/tpm-key.auth");
    if !auth.exists() {
        write_private(&auth, &format!("{}\n", random_pin()?))?;
    }
    let mut t = crate::config::TpmConfig::new(tcti.to_owned());
    t.key_auth_file = Some(auth);
    t.quote_batch = quote_batch.max(1);
    text.push_str(&format!(
        "\n# arid dev --backend tpm: {}, quote_batch {}\n",
        t.tcti, t.quote_batch
    ));
    config.backend = crate::config::BackendConfig::Tpm(t);
    Ok((config, text))
}

/// The banner dev mode prints before serving.
pub fn banner(l: &DevLayout, created: bool, tpm: Option<&str>) -> String {
    let arictl = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("arictl")))
        .filter(|p| p.exists())
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "arictl".into());
    format!(
        "arid dev mode (NOT for production keys: secrets are stored next to the key store)\n\
         \x20 state dir     {dir}\n\
         \x20 key store     {store}\n\
         \x20 config        {config}\n\
         \x20 agent socket  {agent}\n\
         \x20 admin socket  {admin} (operator: uid {uid})\n\n\
         Talk to it from another shell:\n\
         \x20 export ARI_ADMIN_SOCKET={admin} ARI_AGENT_SOCKET={agent}\n\
         \x20 {arictl} agent provision --agent demo --user alice@example.com --uid $(id -u) --exe {arictl}\n\
         \x20 {arictl} identity\n\
         \x20 {arictl} attest --nonce $(openssl rand -hex 16)\n\n\
         Stop with Ctrl-C; run the same command again to resume with the same token and agents.\n",
        dir = l.dir.display(),
        store = match tpm {
            Some(what) => what.to_owned(),
            None => format!(
                "SoftHSM2 token {DEV_TOKEN_LABEL:?} ({}) via {}",
                if created { "created now" } else { "reused" },
                l.softhsm_conf.display()
            ),
        },
        config = l.config.display(),
        agent = l.agent_socket.display(),
        admin = l.admin_socket.display(),
        uid = nix::unistd::getuid().as_raw(),
    )
}
