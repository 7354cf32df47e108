//! Test harness: a real `arid dev` daemon on a real SoftHSM2 token in a temporary directory,
//! or, with `ARI_TEST_BACKEND=tpm`, on a real software TPM (swtpm) that dev mode starts on free
//! loopback ports. The same tests then run on both key stores.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use ari::client::{Client, ClientError, RemoteError};
use ari::protocol::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ARID: &str = env!("CARGO_BIN_EXE_arid");
pub const ARICTL: &str = env!("CARGO_BIN_EXE_arictl");

/// The key store the tests run on: `pkcs11` (default) or `tpm`.
pub fn backend() -> &'static str {
    match std::env::var("ARI_TEST_BACKEND").as_deref() {
        Ok("tpm") => "tpm",
        _ => "pkcs11",
    }
}

/// `arid dev` arguments for the backend under test.
fn dev_args() -> Vec<String> {
    let mut args = vec!["dev".to_string(), "--backend".into(), backend().into()];
    if let Ok(tcti) = std::env::var("ARI_TEST_TCTI") {
        args.extend(["--tcti".into(), tcti]);
    }
    args
}

/// The name libtest gives the test `name` of the module whose `module_path!()` is `module` (the
/// path without the crate's own name), for a test that runs one test of this binary again in a
/// child process with `--exact`.
pub fn test_name(module: &str, name: &str) -> String {
    match module.split_once("::") {
        Some((_, path)) => format!("{path}::{name}"),
        None => name.to_string(),
    }
}

/// A running dev daemon. Stopped (SIGTERM) when dropped.
pub struct Daemon {
    pub child: Option<Child>,
    pub dir: PathBuf,
    /// The `arid dev` arguments before `--state-dir`.
    args: Vec<String>,
    /// Extra environment for the daemon process (fault injection).
    pub env: Vec<(String, String)>,
    /// A command the daemon runs under (e.g. `unshare` and its options), before `arid`.
    pub wrapper: Vec<String>,
    _tmp: Option<tempfile::TempDir>,
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("ari-test-")
        .tempdir()
        .unwrap()
}

impl Daemon {
    /// A daemon on a fresh directory.
    pub fn start() -> Self {
        Self::start_with(dev_args())
    }

    /// A daemon on the TPM at `tcti` (a simulator the test controls), whatever the backend
    /// under test.
    pub fn start_on_tpm(tcti: &str) -> Self {
        Self::start_with(vec![
            "dev".into(),
            "--backend".into(),
            "tpm".into(),
            "--tcti".into(),
            tcti.into(),
        ])
    }

    /// A daemon on a software TPM that dev mode starts, whatever the backend under test.
    pub fn start_tpm() -> Self {
        Self::start_with(vec!["dev".into(), "--backend".into(), "tpm".into()])
    }

    fn start_with(args: Vec<String>) -> Self {
        let tmp = tempdir();
        let dir = tmp.path().to_path_buf();
        let mut d = Self {
            child: None,
            dir,
            args,
            env: Vec::new(),
            wrapper: Vec::new(),
            _tmp: Some(tmp),
        };
        d.spawn();
        d
    }

    /// A fresh directory prepared (token and config) but not served, so a test can edit the config.
    pub fn prepared() -> Self {
        let tmp = tempdir();
        let dir = tmp.path().to_path_buf();
        let out = Command::new(ARID)
            .args(dev_args())
            .args(["--prepare", "--state-dir"])
            .arg(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "prepare failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self {
            child: None,
            dir,
            args: dev_args(),
            env: Vec::new(),
            wrapper: Vec::new(),
            _tmp: Some(tmp),
        }
    }

    /// Replaces `key = old` by `key = new` in the dev config.
    pub fn set_config(&self, key: &str, value: &str) {
        let path = self.dir.join("arid.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let mut found = false;
        let text: Vec<String> = text
            .lines()
            .map(|l| {
                if l.split('=').next().map(str::trim) == Some(key) {
                    found = true;
                    format!("{key} = {value}")
                } else {
                    l.to_string()
                }
            })
            .collect();
        assert!(found, "no key {key} in the dev config");
        std::fs::write(&path, text.join("\n") + "\n").unwrap();
    }

    /// Starts the daemon process on this directory and waits until it answers.
    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("arid.log"))
            .unwrap();
        let mut command = match self.wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(ARID);
                c
            }
            None => Command::new(ARID),
        };
        let child = command
            .args(&self.args)
            .arg("--state-dir")
            .arg(&self.dir)
            // The config's log.level decides (a reload may change it).
            .env_remove("RUST_LOG")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(mut c) = Client::connect(&self.admin_path())
                && c.call(Method::AdminStatus, json!({})).is_ok()
            {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("arid exited with {status}: {}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("arid did not come up: {}", self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("arid.log")).unwrap_or_default()
    }

    pub fn admin_path(&self) -> PathBuf {
        self.dir.join("admin.sock")
    }

    pub fn agent_path(&self) -> PathBuf {
        self.dir.join("agent.sock")
    }

    pub fn admin(&self) -> Client {
        Client::connect(&self.admin_path()).unwrap()
    }

    pub fn agent(&self) -> Client {
        Client::connect(&self.agent_path()).unwrap()
    }

    /// Runs `arictl` against this daemon's sockets: (exit code, stdout, stderr).
    pub fn arictl(&self, args: &[&str]) -> (Option<i32>, String, String) {
        let out = Command::new(ARICTL)
            .env("ARI_ADMIN_SOCKET", self.admin_path())
            .env("ARI_AGENT_SOCKET", self.agent_path())
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    }

    /// SIGTERM and wait; returns whether it exited successfully.
    pub fn stop(&mut self) -> bool {
        let mut child = self.child.take().expect("daemon not running");
        self.terminate(&child);
        child.wait().unwrap().success()
    }

    /// Sends SIGTERM to the daemon: to `child`, and under a wrapper to the wrapper's children
    /// too (`unshare --fork` holds SIGTERM back until its child has exited).
    fn terminate(&self, child: &Child) {
        if !self.wrapper.is_empty() {
            let pid = child.id();
            let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
                .unwrap_or_default();
            for c in children.split_whitespace().filter_map(|c| c.parse().ok()) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(c),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
        }
        signal(child, nix::sys::signal::Signal::SIGTERM);
    }

    /// SIGKILL and wait.
    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("daemon not running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// Provisions an agent that is this test process (uid and executable digest).
    pub fn provision_self(&self, id: &str) -> Value {
        self.admin()
            .call(
                Method::AdminAgentProvision,
                json!({ "agent": id, "user": "alice@example.com", "uid": uid(), "exe_sha256": self_exe_sha256() }),
            )
            .unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            self.terminate(&child);
            let _ = child.wait();
        }
    }
}

pub fn signal(child: &Child, sig: nix::sys::signal::Signal) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    let _ = nix::sys::signal::kill(pid, sig);
}

pub fn uid() -> u32 {
    nix::unistd::getuid().as_raw()
}

pub fn self_exe_sha256() -> String {
    let bytes = std::fs::read(std::env::current_exe().unwrap()).unwrap();
    hex::encode(Sha256::digest(&bytes))
}

/// The remote error of a call that must fail.
pub fn remote_err(r: Result<Value, ClientError>) -> RemoteError {
    match r {
        Err(ClientError::Remote(e)) => e,
        other => panic!("expected a remote error, got {other:?}"),
    }
}

/// A raw byte-level connection.
pub struct Raw {
    pub stream: UnixStream,
    reader: BufReader<UnixStream>,
}

impl Raw {
    pub fn connect(path: &Path) -> Self {
        let stream = UnixStream::connect(path).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        Self { stream, reader }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Reads one response line as JSON; `None` at EOF.
    pub fn recv(&mut self) -> Option<Value> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => None,
            Ok(_) => Some(
                serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("bad response {line:?}: {e}")),
            ),
            Err(e) => panic!("read failed: {e}"),
        }
    }

    /// True if the daemon closed the connection (EOF or reset) before sending anything more.
    pub fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        match self.reader.read_to_end(&mut rest) {
            Ok(_) => rest.is_empty(),
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        }
    }
}

/// Debian's python3 when present: it sees the Debian packages .ci/test installs, where a pyenv
/// or venv python3 earlier in PATH would not. Else the first python3 on PATH.
pub fn debian_python() -> &'static str {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

/// [`debian_python`], checked to have PyJWT and cryptography.
pub fn pyjwt_python() -> &'static str {
    let python = debian_python();
    let probe = Command::new(python)
        .args(["-c", "import jwt, cryptography"])
        .output();
    assert!(
        matches!(&probe, Ok(o) if o.status.success()),
        "python3 with PyJWT and cryptography is required (apt install python3-jwt python3-cryptography; .ci/test installs them)"
    );
    python
}

/// Runs `tests/SCRIPT` under [`pyjwt_python`] with `args`, asserts that it succeeded, and
/// returns what it printed.
pub fn pyjwt_check(script: &str, args: &[&Path]) -> String {
    let out = Command::new(pyjwt_python())
        .arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests")
                .join(script),
        )
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{script}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A base64url hash from a JSON answer.
pub fn hash(b64: &Value) -> ari::merkle::Hash {
    use base64ct::Encoding;
    let bytes = base64ct::Base64UrlUnpadded::decode_vec(b64.as_str().unwrap()).unwrap();
    bytes.try_into().unwrap()
}

/// Asserts that entry `index` holds `value` at `fact.FIELD` and is in the log of `size`
/// entries whose root is `root` (an inclusion proof from the daemon, checked here); `context`
/// prefixes the failure messages.
pub fn assert_logged(
    admin: &mut Client,
    index: u64,
    (field, value): (&str, &str),
    (size, root): (u64, &ari::merkle::Hash),
    context: &str,
) {
    let e = admin
        .call(Method::EvidenceEntry, json!({"index": index}))
        .unwrap();
    let entry: Value = serde_json::from_str(e["entry"].as_str().unwrap()).unwrap();
    assert_eq!(
        entry["fact"][field].as_str().unwrap(),
        value,
        "{context}entry {index} does not hold what its client received"
    );
    let p = admin
        .call(
            Method::EvidenceInclusion,
            json!({"index": index, "tree_size": size}),
        )
        .unwrap();
    let hashes: Vec<_> = p["hashes"].as_array().unwrap().iter().map(hash).collect();
    assert!(
        ari::merkle::verify_inclusion(index, size, &hash(&e["leaf_hash"]), &hashes, root),
        "{context}entry {index} is not in the signed log"
    );
}

/// `payment.authorize` of `amount` CNY to shop.example, checkout `tx`, on `voucher`.
pub fn pay(c: &mut Client, voucher: &str, amount: u64, tx: &str) -> Result<Value, ClientError> {
    c.call(
        Method::PaymentAuthorize,
        json!({
            "voucher": voucher,
            "payment": {"amount": amount, "currency": "CNY", "payee": "shop.example",
                        "transaction_id": tx},
            "aud": "psp.example",
            "nonce": format!("nonce-{tx}-0000"),
        }),
    )
}

/// `tests/go/tlogcheck` built with Go in GOPATH mode against Debian's golang-golang-x-mod-dev
/// (offline), once per test process: Go's own sumdb/note and sumdb/tlog reading what the
/// daemon publishes.
pub fn go_tlogcheck() -> &'static Path {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| go_build("tlogcheck"))
}

/// `tests/go/witness`, a witness written from the C2SP specs on Go's standard library and
/// golang.org/x/mod (see [`go_tlogcheck`]).
pub fn go_witness() -> &'static Path {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| go_build("witness"))
}

fn go_build(name: &str) -> PathBuf {
    {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let gopath = std::env::var("ARI_GOPATH").unwrap_or_else(|_| "/usr/share/gocode".into());
        assert!(
            Path::new(&gopath)
                .join("src/golang.org/x/mod/sumdb/note")
                .is_dir(),
            "Go's golang.org/x/mod is required under {gopath} (apt install golang-go golang-golang-x-mod-dev; .ci/test installs them)"
        );
        let out_dir = root.join("target").join("go");
        std::fs::create_dir_all(&out_dir).unwrap();
        let bin = out_dir.join(format!("{name}-{}", std::process::id()));
        let out = Command::new(std::env::var("ARI_GO").unwrap_or_else(|_| "go".into()))
            .args(["build", "-o"])
            .arg(&bin)
            .arg(root.join(format!("tests/go/{name}/main.go")))
            .env("GOPATH", &gopath)
            .env("GO111MODULE", "off")
            .env("GOFLAGS", "-mod=")
            .env("GOCACHE", out_dir.join("cache"))
            .output()
            .expect("go is required (apt install golang-go; .ci/test installs it)");
        assert!(
            out.status.success(),
            "go build {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        bin
    }
}

/// Runs [`go_tlogcheck`] with `args`: whether it succeeded, and what it printed.
pub fn tlogcheck(args: &[&std::ffi::OsStr]) -> (bool, String) {
    let out = Command::new(go_tlogcheck()).args(args).output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}
