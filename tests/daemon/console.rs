//! The web console (`arictl console`) in a real headless Chromium: the operator side is done here
//! with `arictl` (an agent whose selector is this machine's python3 interpreter, an L3 and an L2
//! voucher, the console itself), then `tests/console_check.py` runs as that agent. It pays
//! through the agent socket, watches the page follow the evidence log, clicks the page's buttons,
//! and attacks the console from outside the page (no token, foreign Origin and Host, a page of
//! another origin in the same browser). Screenshots land in `target/console-screens`.
//!
//! Chromium, its driver and Selenium are required, not optional: without them this test fails
//! and names the Debian packages (`.ci/test` installs them).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::common;

use common::{ARICTL, Daemon};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};

const AGENT: &str = "console-agent";
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Debian's python3, checked to have Selenium, and the browser it drives.
fn browser_python() -> &'static str {
    let python = common::debian_python();
    let selenium = Command::new(python)
        .args(["-c", "import selenium"])
        .output();
    assert!(
        matches!(&selenium, Ok(o) if o.status.success())
            && Path::new(CHROMIUM).exists()
            && Path::new(CHROMEDRIVER).exists(),
        "the console test needs a headless Chromium driven by Selenium \
         (apt install chromium chromium-driver python3-selenium; .ci/test installs them)"
    );
    python
}

/// The executable the kernel runs for `python` (a PATH entry may be a symlink), as the
/// interpreter itself sees it: the agent's selector.
fn interpreter_exe(python: &str) -> PathBuf {
    let out = Command::new(python)
        .args(["-c", "import os; print(os.path.realpath('/proc/self/exe'))"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim_end())
}

fn arictl_ok(d: &Daemon, args: &[&str]) -> String {
    let (code, out, err) = d.arictl(args);
    assert_eq!(code, Some(0), "arictl {args:?}: {err}");
    out
}

/// Issues a CNY voucher for shop.example at `level`; returns its id.
fn issue(d: &Daemon, level: &str) -> String {
    let issued: Value = serde_json::from_str(&arictl_ok(
        d,
        &[
            "voucher",
            "issue",
            "--agent",
            AGENT,
            "--level",
            level,
            "--currency",
            "CNY",
            "--max-amount",
            "50000",
            "--budget",
            "200000",
            "--payee",
            "shop.example",
            "--expires",
            "1h",
            "--json",
        ],
    ))
    .unwrap();
    issued["id"].as_str().unwrap().to_string()
}

/// A running `arictl console`, killed when dropped (a failed assertion included). Its stdout
/// stays open so that a late line cannot fail on a closed pipe.
struct Console {
    child: Child,
    _stdout: BufReader<ChildStdout>,
    url: String,
    log: PathBuf,
}

impl Console {
    fn start(d: &Daemon) -> Self {
        let log = d.dir.join("console.log");
        let mut child = Command::new(ARICTL)
            .arg("--admin-socket")
            .arg(d.admin_path())
            .args(["console", "--port", "0"])
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let Some(url) = line.trim_end().strip_prefix("console: ") else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "arictl console printed {line:?}, not `console: URL`: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        };
        Self {
            url: url.to_string(),
            child,
            _stdout: stdout,
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_console_shows_and_steers_the_daemon_in_a_real_browser() {
    let python = browser_python();
    let d = Daemon::start();
    let exe = interpreter_exe(python);
    let uid = common::uid().to_string();
    arictl_ok(
        &d,
        &[
            "agent",
            "provision",
            "--agent",
            AGENT,
            "--user",
            "alice@example.com",
            "--uid",
            &uid,
            "--exe",
            exe.to_str().unwrap(),
        ],
    );
    let l3 = issue(&d, "L3");
    let l2 = issue(&d, "L2");
    let console = Console::start(&d);
    assert!(
        console.url.starts_with("http://127.0.0.1:") && console.url.contains("/?token="),
        "{}",
        console.url
    );
    // Fresh each run, so that every picture is this run's.
    let screens = root().join("target/console-screens");
    let _ = std::fs::remove_dir_all(&screens);
    std::fs::create_dir_all(&screens).unwrap();

    let out = Command::new(python)
        .arg(root().join("tests/console_check.py"))
        .current_dir(root())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("ARI_CONSOLE_URL", &console.url)
        .env("ARI_AGENT_SOCKET", d.agent_path())
        .env("ARI_TEST_AGENT", AGENT)
        .env("ARI_TEST_L3_VOUCHER", &l3)
        .env("ARI_TEST_L2_VOUCHER", &l2)
        .env("ARI_SCREENSHOTS", &screens)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}{stderr}");
    assert!(
        out.status.success(),
        "console_check.py failed:\n{stdout}{stderr}\nconsole log:\n{}\ndaemon log:\n{}",
        console.log(),
        d.log()
    );
    assert!(
        stdout.contains("console_check: all ") && stdout.contains(" checks passed"),
        "console_check.py did not run to its end:\n{stdout}"
    );
    assert!(
        screens.join("console.png").is_file(),
        "no console.png in {}",
        screens.display()
    );
}
