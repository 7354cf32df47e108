//! Daemon configuration: a TOML file, checked strictly.
//!
//! Unknown keys are refused (a typo must not silently fall back to a default), every duration and
//! size carries its unit in its name, and the file never holds a secret: the token PIN comes from
//! a file or a systemd credential named here. Defaults are the safe ones: bounded lines, short
//! deadlines, sockets closed to other users.

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Why a configuration file was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The TOML does not parse or does not fit the schema (names the key).
    #[error("config {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    /// A value is out of range or inconsistent with another.
    #[error("config {path}: {key}: {message}")]
    Value {
        path: PathBuf,
        key: &'static str,
        message: String,
    },
}

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the database and other state live.
    pub state_dir: PathBuf,
    /// Threads that serve the sockets (read, check, answer); signing and the ledger have their
    /// own. 0 means one per CPU.
    #[serde(default)]
    pub io_threads: usize,
    /// The key store.
    pub backend: BackendConfig,
    /// The socket agent runtimes call.
    pub agent_socket: SocketConfig,
    /// The socket operators call.
    pub admin_socket: AdminSocketConfig,
    /// Bounds on what clients may cost the daemon.
    #[serde(default)]
    pub limits: Limits,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// The evidence log.
    #[serde(default)]
    pub evidence: EvidenceConfig,
    /// What the daemon publishes for verifiers who are not on this host.
    #[serde(default)]
    pub publish: PublishConfig,
    /// The daemon's own keys and their rotation.
    #[serde(default)]
    pub keys: KeysConfig,
}

/// The daemon's own keys (issuer, log) and their rotation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeysConfig {
    /// After `arictl keys rotate`, how long verifiers keep accepting the old key as they
    /// accept the new one (it signs nothing from the rotation on), unless the operator gives
    /// `--overlap`; after it the key set lists the old key as retired. One week by default.
    pub rotation_overlap_s: u64,
}

/// The longest overlap accepted: a year.
pub const MAX_ROTATION_OVERLAP_S: u64 = 366 * 86_400;

impl Default for KeysConfig {
    fn default() -> Self {
        Self {
            rotation_overlap_s: 7 * 86_400,
        }
    }
}

/// The publish directory: static files for verifiers, kept current by the daemon.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PublishConfig {
    /// Where the files are written. Empty means `<state_dir>/public`. Serve it read-only with
    /// any static web server; the daemon replaces each file atomically.
    pub dir: PathBuf,
    /// The URL the directory is served at, which documents that point into it carry (a
    /// voucher's status list, for one). Empty means `https://<evidence.origin>`.
    pub url: String,
}

/// Evidence log settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvidenceConfig {
    /// The log's name, the first line of every checkpoint (C2SP `origin`): a schema-less URL
    /// that no other log uses, e.g. `pay.example.com/ari/host-7`. Required: witnesses and
    /// mirrors tell logs apart by it alone. It is written into every entry, so it cannot change
    /// once the log has entries.
    pub origin: String,
    /// Least time between two signed checkpoints. Commits that land in between are covered by
    /// the next one; a quiet log is checkpointed at once.
    pub checkpoint_interval_ms: u64,
    /// Witnesses asked to cosign each new checkpoint (C2SP `tlog-witness`).
    pub witnesses: Vec<WitnessConfig>,
    /// How long one witness may take to answer.
    pub witness_timeout_ms: u64,
}

/// A witness the daemon submits its checkpoints to.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessConfig {
    /// Its submission prefix: `add-checkpoint` is posted under it, e.g.
    /// `https://witness.example/` (plain `http://` only to a loopback address).
    pub url: String,
    /// Its cosigning key as a note verifier key (`name+id+base64(0x04 || key)`).
    pub vkey: String,
}

impl Default for EvidenceConfig {
    fn default() -> Self {
        Self {
            origin: String::new(),
            checkpoint_interval_ms: 20,
            witnesses: Vec::new(),
            witness_timeout_ms: 5_000,
        }
    }
}

/// Which key store, and how to reach it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "lowercase")]
pub enum BackendConfig {
    /// A PKCS#11 token.
    Pkcs11(Pkcs11Config),
    /// A TPM 2.0.
    Tpm(TpmConfig),
}

/// A TPM 2.0 and how to use it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TpmConfig {
    /// How to reach it: `device:/dev/tpmrm0`, `tabrmd`, or `swtpm:host=127.0.0.1,port=2321`.
    pub tcti: String,
    /// File holding the owner hierarchy's auth value, if the owner set one (first line).
    #[serde(default)]
    pub owner_auth_file: Option<PathBuf>,
    /// File holding the endorsement hierarchy's auth value, if set (first line).
    #[serde(default)]
    pub endorsement_auth_file: Option<PathBuf>,
    /// File holding the auth value of the keys the daemon creates (first line). Without it
    /// they have an empty auth value and the blobs in the state database are the only secret.
    #[serde(default)]
    pub key_auth_file: Option<PathBuf>,
    /// Name of a systemd credential holding that value instead (from `$CREDENTIALS_DIRECTORY`).
    #[serde(default)]
    pub key_auth_credential: Option<String>,
    /// sha256 PCRs every quote covers.
    #[serde(default = "default_pcrs")]
    pub pcrs: Vec<u8>,
    /// Most payments one quote may attest together; 1 turns batching off.
    #[serde(default = "default_quote_batch")]
    pub quote_batch: usize,
    /// Objects the TPM can hold loaded at once; 3 suits a TPM without a resource manager.
    #[serde(default = "default_max_loaded")]
    pub max_loaded_objects: usize,
    /// Requests that may wait for the TPM before callers get `busy`.
    #[serde(default = "default_queue_depth")]
    pub queue_depth: usize,
}

impl TpmConfig {
    /// A TPM reached through `tcti`, with every other setting at its default.
    pub fn new(tcti: String) -> Self {
        Self {
            tcti,
            owner_auth_file: None,
            endorsement_auth_file: None,
            key_auth_file: None,
            key_auth_credential: None,
            pcrs: default_pcrs(),
            quote_batch: default_quote_batch(),
            max_loaded_objects: default_max_loaded(),
            queue_depth: default_queue_depth(),
        }
    }
}

fn default_pcrs() -> Vec<u8> {
    (0..8).collect()
}

fn default_quote_batch() -> usize {
    64
}

fn default_max_loaded() -> usize {
    3
}

/// A PKCS#11 module and the token to use in it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pkcs11Config {
    /// Path of the module (`.so`).
    pub module: PathBuf,
    /// Label of the token; slots are found by label because their ids change.
    pub token_label: String,
    /// File holding the user PIN (first line).
    #[serde(default)]
    pub pin_file: Option<PathBuf>,
    /// Name of a systemd credential holding the user PIN (read from `$CREDENTIALS_DIRECTORY`).
    #[serde(default)]
    pub pin_credential: Option<String>,
    /// Number of token sessions, each on its own signing thread. 0 means one per CPU.
    #[serde(default)]
    pub sessions: usize,
    /// Signing requests that may wait for a session before callers get `busy`.
    #[serde(default = "default_queue_depth")]
    pub queue_depth: usize,
}

fn default_queue_depth() -> usize {
    256
}

/// A Unix socket the daemon listens on.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SocketConfig {
    /// Filesystem path of the socket.
    pub path: PathBuf,
    /// Permission bits, as an octal string such as `"0660"`.
    #[serde(default = "default_mode")]
    pub mode: String,
    /// Group that owns the socket file, if it should not be the daemon's own.
    #[serde(default)]
    pub group: Option<String>,
}

/// The admin socket, plus who may use it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSocketConfig {
    /// Filesystem path of the socket.
    pub path: PathBuf,
    /// Permission bits, as an octal string such as `"0660"`.
    #[serde(default = "default_mode")]
    pub mode: String,
    /// Group that owns the socket file; its members are operators.
    #[serde(default)]
    pub group: Option<String>,
    /// Further uids allowed to operate (root always is).
    #[serde(default)]
    pub allow_uids: Vec<u32>,
}

fn default_mode() -> String {
    "0660".into()
}

/// Bounds on clients; all have safe defaults.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Longest accepted line, newline excluded.
    pub max_line_bytes: usize,
    /// Once a line has started, the rest must arrive within this time.
    pub read_timeout_ms: u64,
    /// A connection with no request for this long is closed.
    pub idle_timeout_ms: u64,
    /// A new connection must send its first request (a complete, non-blank line) within this
    /// time, or it is closed.
    pub first_line_timeout_ms: u64,
    /// Connections served at once per socket; further clients wait in the listen backlog.
    pub max_connections: usize,
    /// Connections one uid may hold open at once per socket, root included; a further one is
    /// answered `busy` and closed at once, so one user cannot hold every connection. Above
    /// `max_connections` it has no effect.
    pub max_connections_per_uid: usize,
    /// Calls one connection may have in flight before the daemon stops reading from it.
    pub max_in_flight_per_connection: usize,
    /// On shutdown, how long in-flight calls get to finish.
    pub shutdown_grace_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_line_bytes: 64 * 1024,
            read_timeout_ms: 5_000,
            idle_timeout_ms: 300_000,
            first_line_timeout_ms: 5_000,
            max_connections: 256,
            max_connections_per_uid: 32,
            max_in_flight_per_connection: 16,
            shutdown_grace_ms: 5_000,
        }
    }
}

/// Logging settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A `tracing` filter such as `info` or `ari=debug`; `RUST_LOG` overrides it.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
        }
    }
}

impl Config {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and checks configuration text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Invalid {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().replace('\n', " "),
        })?;
        config.check(path)?;
        Ok(config)
    }

    fn check(&self, path: &Path) -> Result<(), ConfigError> {
        let bad = |key: &'static str, message: &str| ConfigError::Value {
            path: path.to_path_buf(),
            key,
            message: message.into(),
        };
        match &self.backend {
            BackendConfig::Pkcs11(p) => {
                match (&p.pin_file, &p.pin_credential) {
                    (Some(_), None) | (None, Some(_)) => {}
                    _ => {
                        return Err(bad(
                            "backend.pin_file",
                            "set exactly one of pin_file and pin_credential",
                        ));
                    }
                }
                if p.token_label.is_empty() || p.token_label.len() > 32 {
                    return Err(bad("backend.token_label", "a token label is 1 to 32 bytes"));
                }
                if p.queue_depth == 0 {
                    return Err(bad("backend.queue_depth", "must be at least 1"));
                }
            }
            BackendConfig::Tpm(t) => {
                if t.tcti.parse::<tss_esapi::tcti_ldr::TctiNameConf>().is_err() {
                    return Err(bad(
                        "backend.tcti",
                        "a TCTI such as device:/dev/tpmrm0, tabrmd or swtpm:host=127.0.0.1,port=2321",
                    ));
                }
                if t.key_auth_file.is_some() && t.key_auth_credential.is_some() {
                    return Err(bad(
                        "backend.key_auth_file",
                        "set at most one of key_auth_file and key_auth_credential",
                    ));
                }
                if t.pcrs.is_empty() || t.pcrs.iter().any(|&i| i > 23) || has_duplicates(&t.pcrs) {
                    return Err(bad(
                        "backend.pcrs",
                        "one to 24 distinct PCR indexes from 0 to 23",
                    ));
                }
                if t.quote_batch == 0 || t.queue_depth == 0 {
                    return Err(bad(
                        "backend.quote_batch",
                        "quote_batch and queue_depth must be at least 1",
                    ));
                }
                if t.max_loaded_objects < 3 {
                    return Err(bad(
                        "backend.max_loaded_objects",
                        "at least 3 (a storage key, a signing key and the attestation key)",
                    ));
                }
            }
        }
        parse_mode(&self.agent_socket.mode).map_err(|m| bad("agent_socket.mode", m))?;
        parse_mode(&self.admin_socket.mode).map_err(|m| bad("admin_socket.mode", m))?;
        if self.agent_socket.path == self.admin_socket.path {
            return Err(bad(
                "admin_socket.path",
                "the agent and admin sockets must differ",
            ));
        }
        if self.evidence.origin.is_empty() {
            return Err(bad(
                "evidence.origin",
                "required: a schema-less URL that names this log and no other, e.g. pay.example.com/ari/host-1",
            ));
        }
        if !crate::evidence::checkpoint::valid_origin(&self.evidence.origin) {
            return Err(bad(
                "evidence.origin",
                "a schema-less URL: a host name, then /path segments, without spaces or '+', e.g. pay.example.com/ari/host-1",
            ));
        }
        if !self.publish.url.is_empty() && !valid_url(&self.publish.url) {
            return Err(bad(
                "publish.url",
                "an https:// (or http://) URL without spaces, query or fragment",
            ));
        }
        for w in &self.evidence.witnesses {
            crate::evidence::note::Cosigner::from_vkey(&w.vkey)
                .map_err(|e| bad("evidence.witnesses.vkey", &e.to_string()))?;
            if !witness_url_ok(&w.url) {
                return Err(bad(
                    "evidence.witnesses.url",
                    "an https:// URL, or http:// to 127.0.0.1, [::1] or localhost",
                ));
            }
        }
        if !(100..=60_000).contains(&self.evidence.witness_timeout_ms) {
            return Err(bad("evidence.witness_timeout_ms", "between 100 and 60000"));
        }
        if self.keys.rotation_overlap_s > MAX_ROTATION_OVERLAP_S {
            return Err(bad("keys.rotation_overlap_s", "at most 31622400 (a year)"));
        }
        if self.evidence.checkpoint_interval_ms > 60_000 {
            return Err(bad(
                "evidence.checkpoint_interval_ms",
                "at most 60000 (a minute)",
            ));
        }
        let l = &self.limits;
        if !(256..=16 * 1024 * 1024).contains(&l.max_line_bytes) {
            return Err(bad(
                "limits.max_line_bytes",
                "must be between 256 and 16777216",
            ));
        }
        const DAY_MS: u64 = 86_400_000;
        for (key, ms) in [
            ("limits.read_timeout_ms", l.read_timeout_ms),
            ("limits.idle_timeout_ms", l.idle_timeout_ms),
            ("limits.first_line_timeout_ms", l.first_line_timeout_ms),
            ("limits.shutdown_grace_ms", l.shutdown_grace_ms),
        ] {
            if ms == 0 && key != "limits.shutdown_grace_ms" || ms > DAY_MS {
                return Err(bad(key, "must be between 1 and 86400000 (a day)"));
            }
        }
        if !(1..=65_536).contains(&l.max_connections) {
            return Err(bad("limits.max_connections", "must be between 1 and 65536"));
        }
        if !(1..=65_536).contains(&l.max_connections_per_uid) {
            return Err(bad(
                "limits.max_connections_per_uid",
                "must be between 1 and 65536",
            ));
        }
        if !(1..=4096).contains(&l.max_in_flight_per_connection) {
            return Err(bad(
                "limits.max_in_flight_per_connection",
                "must be between 1 and 4096",
            ));
        }
        Ok(())
    }

    /// The evidence log's origin.
    pub fn origin(&self) -> String {
        self.evidence.origin.clone()
    }

    /// The publish directory.
    pub fn publish_dir(&self) -> PathBuf {
        if self.publish.dir.as_os_str().is_empty() {
            self.state_dir.join("public")
        } else {
            self.publish.dir.clone()
        }
    }

    /// The URL the publish directory is served at, without a trailing `/`.
    pub fn publish_url(&self) -> String {
        if self.publish.url.is_empty() {
            format!("https://{}", self.evidence.origin)
        } else {
            self.publish.url.trim_end_matches('/').to_string()
        }
    }

    /// Number of threads serving the sockets.
    pub fn io_threads(&self) -> usize {
        if self.io_threads > 0 {
            self.io_threads
        } else {
            std::thread::available_parallelism()
                .map(std::num::NonZero::get)
                .unwrap_or(1)
        }
    }

    /// Number of signing sessions to open.
    pub fn sessions(&self) -> usize {
        if let BackendConfig::Pkcs11(p) = &self.backend
            && p.sessions > 0
        {
            p.sessions
        } else {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        }
    }
}

/// A witness URL: https, or plain http to this host only (tests, a local bastion).
pub fn witness_url_ok(url: &str) -> bool {
    if !valid_url(url) {
        return false;
    }
    match url.strip_prefix("http://") {
        None => true,
        Some(rest) => {
            let host = rest.split('/').next().unwrap_or_default();
            let host = host.rsplit_once(':').map_or(host, |(h, p)| {
                if p.bytes().all(|b| b.is_ascii_digit()) {
                    h
                } else {
                    host
                }
            });
            matches!(host, "127.0.0.1" | "[::1]" | "localhost")
        }
    }
}

/// An absolute http(s) URL without whitespace, query or fragment.
fn valid_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    rest.is_some_and(|r| {
        !r.is_empty()
            && !r.starts_with('/')
            && !r
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '?' || c == '#')
    })
}

fn has_duplicates(v: &[u8]) -> bool {
    let mut seen = std::collections::BTreeSet::new();
    v.iter().any(|x| !seen.insert(*x))
}

/// Parses an octal mode string such as `"0660"`.
pub fn parse_mode(mode: &str) -> Result<u32, &'static str> {
    let digits = mode.strip_prefix("0o").unwrap_or(mode);
    match u32::from_str_radix(digits, 8) {
        Ok(m) if m <= 0o777 => Ok(m),
        _ => Err("an octal permission string such as \"0660\""),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    const MIN: &str = r#"
state_dir = "/var/lib/ari"
[backend]
kind = "pkcs11"
module = "/usr/lib/softhsm/libsofthsm2.so"
token_label = "ari"
pin_file = "/etc/ari/pin"
[agent_socket]
path = "/run/ari/agent.sock"
[admin_socket]
path = "/run/ari/admin.sock"
[evidence]
origin = "pay.example.com/ari/host-1"
"#;

    #[test]
    fn the_origin_is_a_required_schema_less_url() {
        let c = Config::parse(MIN, Path::new("t.toml")).unwrap();
        assert_eq!(c.publish_dir(), Path::new("/var/lib/ari/public"));
        assert_eq!(c.publish_url(), "https://pay.example.com/ari/host-1");
        for bad in [
            "",
            "https://pay.example.com/ari",
            "pay example.com",
            "pay.example.com/a+b",
            "pay.example.com//x",
            "-pay.example.com",
            "pay.example.com:http/x",
        ] {
            let text = MIN.replace("pay.example.com/ari/host-1", bad);
            let err = Config::parse(&text, Path::new("t.toml"))
                .unwrap_err()
                .to_string();
            assert!(err.contains("evidence.origin"), "{bad:?}: {err}");
        }
        for good in [
            "localhost/ari",
            "pay.example.com:8443/ari/x_1",
            "log.example",
        ] {
            let text = MIN.replace("pay.example.com/ari/host-1", good);
            Config::parse(&text, Path::new("t.toml")).unwrap();
        }
        let text = format!("{MIN}[publish]\nurl = \"ftp://x\"\n");
        let err = Config::parse(&text, Path::new("t.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("publish.url"), "{err}");
    }

    #[test]
    fn minimal_config_takes_defaults() {
        let c = Config::parse(MIN, Path::new("t.toml")).unwrap();
        assert_eq!(c.limits.max_line_bytes, 65536);
        assert_eq!(c.agent_socket.mode, "0660");
    }

    #[test]
    fn io_threads_default_to_one_per_cpu() {
        let c = Config::parse(MIN, Path::new("t.toml")).unwrap();
        let cpus = std::thread::available_parallelism().unwrap().get();
        assert_eq!(c.io_threads(), cpus);
        let c = Config::parse(&format!("io_threads = 3\n{MIN}"), Path::new("t.toml")).unwrap();
        assert_eq!(c.io_threads(), 3);
    }

    #[test]
    fn unknown_key_is_named_with_the_file() {
        let text = MIN.replace("[limits]", "") + "[limits]\nread_timeout = 5\n";
        let err = Config::parse(&text, Path::new("/etc/ari/arid.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("read_timeout"), "{err}");
        assert!(err.contains("/etc/ari/arid.toml"), "{err}");
    }

    #[test]
    fn pin_source_must_be_single() {
        let text = MIN.replace("pin_file = \"/etc/ari/pin\"", "");
        let err = Config::parse(&text, Path::new("x"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("pin_file"), "{err}");
    }

    #[test]
    fn per_uid_cap_and_first_line_deadline_are_checked() {
        let c = Config::parse(MIN, Path::new("t.toml")).unwrap();
        assert_eq!(c.limits.max_connections_per_uid, 32);
        assert_eq!(c.limits.first_line_timeout_ms, 5_000);
        for (key, value) in [
            ("max_connections_per_uid", "0"),
            ("max_connections_per_uid", "65537"),
            ("first_line_timeout_ms", "0"),
            ("first_line_timeout_ms", "86400001"),
        ] {
            let text = format!("{MIN}[limits]\n{key} = {value}\n");
            let err = Config::parse(&text, Path::new("t.toml"))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&format!("limits.{key}")),
                "{key} = {value}: {err}"
            );
        }
        let text =
            format!("{MIN}[limits]\nmax_connections_per_uid = 4\nfirst_line_timeout_ms = 250\n");
        let c = Config::parse(&text, Path::new("t.toml")).unwrap();
        assert_eq!(
            (
                c.limits.max_connections_per_uid,
                c.limits.first_line_timeout_ms
            ),
            (4, 250)
        );
    }

    #[test]
    fn example_in_docs_parses() {
        let text = include_str!("../docs/arid.example.toml");
        Config::parse(text, Path::new("docs/arid.example.toml")).unwrap();
    }

    #[test]
    fn modes() {
        assert_eq!(parse_mode("0660"), Ok(0o660));
        assert!(parse_mode("999").is_err());
    }
}
