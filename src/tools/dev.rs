//! Dev mode: a complete daemon on a throwaway SoftHSM2 token in one directory.
//!
//! `arid dev --state-dir DIR` makes DIR self-contained: its own `softhsm2.conf` and token
//! directory, a random PIN in a 0600 file, a config file, the database and both sockets. The
//! invoking user is the operator. Run again on the same DIR it resumes with the same token and
//! state; a lock file held for the daemon's life refuses a second daemon on the same DIR, and
//! socket files a killed daemon of the same user left are replaced (see [`crate::daemon`]: never
//! a link, nor another user's socket). SoftHSM reads its configuration from the
//! `SOFTHSM2_CONF` environment variable at load time, so dev mode re-executes itself once with
//! that variable set rather than changing its own environment.
//!
//! Dev mode runs as whoever starts it, often root, and loads the PKCS#11 module `arid.toml`
//! names, with the PINs and token beside it: whoever can write the directory can run code as
//! that user. So a directory, or any file dev mode reads in it (config, `softhsm2.conf`, PINs,
//! token, state, TPM state, lock), that another uid owns, that its group or others may write, or
//! that is a symbolic link, is refused with a [`DevError`] naming the path and the fix; so is a
//! state directory under a parent another user could rename it from. A directory dev mode
//! creates is 0700 from its first instant (`mkdir` with the mode, never widened afterwards).
//!
//! Nothing here is meant for production keys: the PIN sits next to the token.

use crate::backend::pkcs11;
use crate::config::Config;
use cryptoki::types::AuthPin;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
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
    /// A path dev mode reads is a symbolic link, which it does not follow.
    #[error(
        "{0} is a symlink: dev mode does not follow symbolic links in its directory (another user could point one anywhere); give the real path, or replace the link with what it points to"
    )]
    Symlink(PathBuf),
    /// A path dev mode reads is owned by another user.
    #[error(
        "{path} is owned by uid {owner}, not by you (uid {euid}): dev mode would load the PKCS#11 module, PINs and token it holds with your rights. Use a directory of your own (e.g. `arid dev --state-dir ~/.local/state/ari-dev`), or, if you trust what is in it, `chown -R {euid} {path}`"
    )]
    NotOwned {
        /// The path.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// This process's effective uid.
        euid: u32,
    },
    /// A path dev mode reads may be written by its group or by others.
    #[error(
        "{path} is writable by {who} (mode {mode:04o}): whoever can write it can make dev mode load their PKCS#11 module, PINs or token. Fix: `chmod go-w {path}`"
    )]
    Writable {
        /// The path.
        path: PathBuf,
        /// `its group`, `others`, or both.
        who: &'static str,
        /// Its permission bits.
        mode: u32,
    },
    /// A directory above the state directory would let another user replace it.
    #[error(
        "{path}, above the state directory, {why}: another user could swap the directory dev mode reads. Put the state directory under one only you or root can change, e.g. ~/.local/state/ari-dev"
    )]
    Parent {
        /// The parent directory.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// A path is not the kind of file dev mode expects there.
    #[error("{path} is not a {expected}; move it away")]
    Kind {
        /// The path.
        path: PathBuf,
        /// `directory` or `regular file`.
        expected: &'static str,
    },
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

/// The files dev mode reads in its directory.
const READ_FILES: [&str; 3] = ["arid.toml", "softhsm2.conf", "arid.lock"];
/// The directories dev mode reads in its directory, checked with everything in them.
const READ_TREES: [&str; 4] = ["secrets", "tokens", "state", "tpm"];

/// Refuses `path` (described by `meta`, not following links) unless it is the invoking user's
/// and neither its group nor others may write it.
fn check_owned(path: &Path, meta: &fs::Metadata) -> Result<(), DevError> {
    if meta.file_type().is_symlink() {
        return Err(DevError::Symlink(path.to_path_buf()));
    }
    let euid = nix::unistd::geteuid().as_raw();
    if meta.uid() != euid {
        return Err(DevError::NotOwned {
            path: path.to_path_buf(),
            owner: meta.uid(),
            euid,
        });
    }
    let mode = meta.mode() & 0o7777;
    let who = match (mode & 0o020 != 0, mode & 0o002 != 0) {
        (false, false) => return Ok(()),
        (true, false) => "its group",
        (false, true) => "others",
        (true, true) => "its group and others",
    };
    Err(DevError::Writable {
        path: path.to_path_buf(),
        who,
        mode,
    })
}

/// `symlink_metadata`, with a missing path as `None`.
fn lstat(path: &Path) -> Result<Option<fs::Metadata>, DevError> {
    match fs::symlink_metadata(path) {
        Ok(m) => Ok(Some(m)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(path)(e)),
    }
}

/// Checks `path` and, when it is a directory, everything under it, without following links.
fn check_tree(path: &Path) -> Result<(), DevError> {
    let Some(meta) = lstat(path)? else {
        return Ok(());
    };
    check_owned(path, &meta)?;
    if meta.is_dir() {
        for item in fs::read_dir(path).map_err(io(path))? {
            check_tree(&item.map_err(io(path))?.path())?;
        }
    }
    Ok(())
}

/// Refuses `first` or a directory above it when another user could rename the state directory
/// out of it: one owned by neither root nor the invoking user, or writable by its group or
/// others without the sticky bit (as `/tmp` has). `first` is a real path (no links).
fn check_parents(first: &Path) -> Result<(), DevError> {
    let euid = nix::unistd::geteuid().as_raw();
    for parent in first.ancestors() {
        let meta = fs::symlink_metadata(parent).map_err(io(parent))?;
        let why = if meta.uid() != 0 && meta.uid() != euid {
            format!("is owned by uid {}", meta.uid())
        } else if meta.mode() & 0o022 != 0 && meta.mode() & 0o1000 == 0 {
            format!(
                "is writable by its group or others without the sticky bit (mode {:04o})",
                meta.mode() & 0o7777
            )
        } else {
            continue;
        };
        return Err(DevError::Parent {
            path: parent.to_path_buf(),
            why,
        });
    }
    Ok(())
}

/// Takes the existing directory `dir`, or creates it 0700 (and its missing parents likewise)
/// once the directories above it are checked; never follows a link in its place. Returns its
/// real path.
fn create_or_take(dir: &Path) -> Result<PathBuf, DevError> {
    let dir = std::path::absolute(dir).map_err(io(dir))?;
    if lstat(&dir)?.is_none() {
        // The nearest existing directory above it must be safe before anything is made in it.
        let mut existing = dir.parent();
        while let Some(p) = existing {
            if lstat(p)?.is_some() {
                break;
            }
            existing = p.parent();
        }
        if let Some(p) = existing {
            check_parents(&fs::canonicalize(p).map_err(io(p))?)?;
        }
        if let Some(parent) = dir.parent() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(io(parent))?;
        }
        match fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {}
            // Made meanwhile by someone else: checked below like any existing one.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io(&dir)(e)),
        }
    }
    let meta = fs::symlink_metadata(&dir).map_err(io(&dir))?;
    if meta.file_type().is_symlink() {
        return Err(DevError::Symlink(dir));
    }
    if !meta.is_dir() {
        return Err(DevError::Kind {
            path: dir,
            expected: "directory",
        });
    }
    let real = fs::canonicalize(&dir).map_err(io(&dir))?;
    if let Some(parent) = real.parent() {
        check_parents(parent)?;
    }
    let meta = fs::symlink_metadata(&real).map_err(io(&real))?;
    check_owned(&real, &meta)?;
    Ok(real)
}

impl DevLayout {
    /// The layout under `dir` (made absolute), created 0700 if it does not exist. Refuses a
    /// directory, or anything dev mode reads in it, that could be someone else's (see the
    /// module documentation).
    pub fn new(dir: &Path) -> Result<Self, DevError> {
        let dir = create_or_take(dir)?;
        for name in READ_FILES {
            let path = dir.join(name);
            if let Some(meta) = lstat(&path)? {
                check_owned(&path, &meta)?;
                if !meta.is_file() {
                    return Err(DevError::Kind {
                        path,
                        expected: "regular file",
                    });
                }
            }
        }
        for name in READ_TREES {
            check_tree(&dir.join(name))?;
        }
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

/// Writes a new file with `mode` (never through a link: `create_new` is `O_EXCL`).
fn write_new(path: &Path, text: &str, mode: u32) -> Result<(), DevError> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io(path))?;
    f.write_all(text.as_bytes()).map_err(io(path))
}

fn write_private(path: &Path, text: &str) -> Result<(), DevError> {
    write_new(path, text, 0o600)
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
/// the layout. A directory created here is 0700, so only its owner reaches the sockets; to let
/// agents running as other users reach `agent.sock`, its owner grants search permission
/// (`chmod 711 DIR`). The token, PINs, database and admin socket are the invoking user's alone.
pub fn prepare(dir: &Path) -> Result<DevLayout, DevError> {
    let l = DevLayout::new(dir)?;
    for sub in ["tokens", "secrets", "state"] {
        let p = l.dir.join(sub);
        if lstat(&p)?.is_none() {
            fs::DirBuilder::new()
                .mode(0o700)
                .create(&p)
                .map_err(io(&p))?;
        }
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

[evidence]
# The log's name: a schema-less URL no other log uses. Derived from this host and directory;
# a log someone else verifies needs a name under a domain you control.
origin = "{origin}"
"#,
            origin = dev_origin(&l.dir),
            state = l.dir.join("state").display(),
            module = SOFTHSM_MODULE,
            label = DEV_TOKEN_LABEL,
            pin = l.pin.display(),
            agent = l.agent_socket.display(),
            admin = l.admin_socket.display(),
        );
        write_new(&l.config, &text, 0o644)?;
    }
    Ok(l)
}

/// A log name for a dev directory: `<hostname>.local/ari-dev/<first 8 bytes of SHA-256 of the
/// directory's path, hex>`, so two dev daemons, on one host or on two, never share a name.
fn dev_origin(dir: &Path) -> String {
    use sha2::{Digest, Sha256};
    let host = fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host: String = host
        .trim()
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let host = host.trim_matches(|c| c == '-' || c == '.');
    let host = if host.is_empty() { "localhost" } else { host };
    let digest = Sha256::digest(dir.as_os_str().as_encoded_bytes());
    format!(
        "{host}.local/ari-dev/{}",
        hex::encode(digest.get(..8).unwrap_or_default())
    )
}

/// The software TPM's state directory, `tpm/`, created 0700 if missing.
pub fn tpm_state_dir(l: &DevLayout) -> Result<PathBuf, DevError> {
    let p = l.dir.join("tpm");
    if lstat(&p)?.is_none() {
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&p)
            .map_err(io(&p))?;
    }
    Ok(p)
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        fs::symlink_metadata(path).unwrap().mode() & 0o7777
    }

    fn refused(dir: &Path) -> String {
        match prepare(dir) {
            Ok(_) => panic!("{} was accepted", dir.display()),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_fresh_directory_is_created_0700_with_its_secrets_private() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b/dev");
        let l = prepare(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&tmp.path().join("a")), 0o700);
        for sub in ["tokens", "secrets", "state"] {
            assert_eq!(mode(&dir.join(sub)), 0o700, "{sub}");
        }
        assert_eq!(mode(&l.pin) & 0o077, 0);
        assert_eq!(mode(&l.softhsm_conf) & 0o077, 0);
        // It resumes on what it made.
        prepare(&dir).unwrap();
    }

    #[test]
    fn a_group_or_world_writable_file_it_reads_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("dev");
        let l = prepare(&dir).unwrap();
        for (path, bad) in [
            (&l.config, 0o664),
            (&l.softhsm_conf, 0o622),
            (&l.pin, 0o620),
            (&dir.join("tokens"), 0o777),
            (&dir.join("state"), 0o770),
            (&l.dir, 0o775),
        ] {
            let good = mode(path);
            fs::set_permissions(path, fs::Permissions::from_mode(bad)).unwrap();
            let e = refused(&dir);
            assert!(e.contains(&path.display().to_string()), "{e}");
            assert!(e.contains("chmod"), "{e}");
            fs::set_permissions(path, fs::Permissions::from_mode(good)).unwrap();
        }
        // Deeper: a file inside the token directory.
        let deep = dir.join("tokens/planted");
        fs::write(&deep, "x").unwrap();
        fs::set_permissions(&deep, fs::Permissions::from_mode(0o666)).unwrap();
        let e = refused(&dir);
        assert!(e.contains(&deep.display().to_string()), "{e}");
        fs::remove_file(&deep).unwrap();
        prepare(&dir).unwrap();
    }

    #[test]
    fn symlinks_are_refused_not_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("dev");
        let l = prepare(&dir).unwrap();
        // The state directory itself, even when it points at a good one.
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        let e = refused(&link);
        assert!(e.contains("symlink"), "{e}");
        // A file it reads, pointing at one someone else controls.
        let elsewhere = tmp.path().join("softhsm2.conf");
        fs::write(&elsewhere, "directories.tokendir = /somewhere/else\n").unwrap();
        fs::set_permissions(&elsewhere, fs::Permissions::from_mode(0o600)).unwrap();
        fs::remove_file(&l.softhsm_conf).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &l.softhsm_conf).unwrap();
        let e = refused(&dir);
        assert!(e.contains(&l.softhsm_conf.display().to_string()), "{e}");
        assert!(e.contains("symlink"), "{e}");
    }

    #[test]
    fn a_directory_or_file_of_another_uid_is_refused() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIP: needs root to give files to uid 65534");
            return;
        }
        let nobody = Some(nix::unistd::Uid::from_raw(65534));
        let me = Some(nix::unistd::geteuid());
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("dev");
        let l = prepare(&dir).unwrap();
        for path in [&l.dir, &l.config, &l.so_pin, &dir.join("tokens")] {
            nix::unistd::chown(path.as_path(), nobody, None).unwrap();
            let e = refused(&dir);
            assert!(e.contains(&path.display().to_string()), "{e}");
            assert!(e.contains("owned by uid 65534"), "{e}");
            nix::unistd::chown(path.as_path(), me, None).unwrap();
        }
        // A directory another user made and filled, before dev mode ever ran there.
        let theirs = tmp.path().join("theirs");
        fs::create_dir(&theirs).unwrap();
        fs::write(theirs.join("arid.toml"), "state_dir = \"/x\"\n").unwrap();
        nix::unistd::chown(&theirs, nobody, None).unwrap();
        nix::unistd::chown(&theirs.join("arid.toml"), nobody, None).unwrap();
        let e = refused(&theirs);
        assert!(e.contains("owned by uid 65534"), "{e}");
        // Nothing was written into it, nor under it.
        assert!(!theirs.join("secrets").exists());
        let e = refused(&theirs.join("mine"));
        assert!(e.contains("above the state directory"), "{e}");
        assert!(!theirs.join("mine").exists());
    }
}
