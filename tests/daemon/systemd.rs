//! Running under systemd: the units verify and are hardened (exposure ≤ 2.0), the sysusers and
//! tmpfiles snippets make what the units expect, and socket activation works the way systemd
//! does it (sockets passed as LISTEN_FDS with names, readiness reported on NOTIFY_SOCKET).
//!
//! These use systemd's own tools, offline: no running systemd is needed. A tool that is
//! missing is named in a skip message; CI installs them (`.ci/lib.sh`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::common;
use ari::protocol::Method;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const UNITS: [&str; 3] = ["arid.service", "arid.socket", "arid-admin.socket"];

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Whether a tool is on PATH; prints why a check is skipped when it is not.
fn have(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        println!("SKIPPED: {tool} is not installed (Debian package: systemd)");
    }
    found
}

/// Copies of the units into `dir`, with the installed binary's path pointing at the one this
/// test built (the only change).
fn units_in(dir: &Path, edit: impl Fn(&str) -> String) -> Vec<PathBuf> {
    UNITS
        .iter()
        .map(|unit| {
            let text = std::fs::read_to_string(repo(&format!("systemd/{unit}"))).unwrap();
            let path = dir.join(unit);
            std::fs::write(&path, edit(&text.replace("/usr/bin/arid", common::ARID))).unwrap();
            path
        })
        .collect()
}

/// `systemd-analyze verify`: exit status and everything it printed (warnings included).
fn verify(units: &[PathBuf]) -> (bool, String) {
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(units)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

#[test]
fn units_verify_and_the_service_exposure_is_at_most_2() {
    if !have("systemd-analyze") {
        return;
    }
    let dir = common::tempdir();
    let units = units_in(dir.path(), str::to_owned);
    let (ok, said) = verify(&units);
    assert!(
        ok && said.trim().is_empty(),
        "systemd-analyze verify: {said}"
    );
    println!("systemd-analyze verify: {} units, no warnings", units.len());

    // The check can fail: a misspelt directive is reported.
    let bad = common::tempdir();
    let units = units_in(bad.path(), |t| {
        t.replace("NoNewPrivileges=yes", "NoNewPrivilege=yes")
    });
    let (_, said) = verify(&units);
    assert!(said.contains("NoNewPrivilege"), "{said}");

    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(repo("systemd/arid.service"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no exposure in: {text}"));
    let exposure: f64 = line
        .split(':')
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("cannot read {line:?}"));
    println!("systemd-analyze security arid.service: exposure {exposure} (goal ≤ 2.0)");
    let open: Vec<&str> = text.lines().filter(|l| l.starts_with('✗')).collect();
    println!("settings still counted against it:\n{}", open.join("\n"));
    assert!(exposure <= 2.0, "exposure {exposure}:\n{text}");
}

#[test]
fn sysusers_and_tmpfiles_make_the_user_groups_and_directories() {
    if !have("systemd-sysusers") || !have("systemd-tmpfiles") {
        return;
    }
    let root = common::tempdir();
    std::fs::create_dir(root.path().join("etc")).unwrap();
    let run = |tool: &str, args: &[&str], file: &str| {
        let out = Command::new(tool)
            .arg(format!("--root={}", root.path().display()))
            .args(args)
            .arg(repo(file))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{tool}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run("systemd-sysusers", &[], "systemd/sysusers.d/arid.conf");
    let passwd = std::fs::read_to_string(root.path().join("etc/passwd")).unwrap();
    let group = std::fs::read_to_string(root.path().join("etc/group")).unwrap();
    let user = passwd
        .lines()
        .find(|l| l.starts_with("arid:"))
        .unwrap_or_else(|| panic!("no arid user: {passwd}"));
    assert!(user.ends_with(":/var/lib/ari:/usr/sbin/nologin"), "{user}");
    let gid_of = |name: &str| -> u32 {
        let line = group
            .lines()
            .find(|l| l.starts_with(&format!("{name}:")))
            .unwrap_or_else(|| panic!("no group {name}: {group}"));
        line.split(':').nth(2).unwrap().parse().unwrap()
    };
    for g in ["arid", "ari-agents", "ari-admin"] {
        gid_of(g);
    }
    let tss = group.lines().find(|l| l.starts_with("tss:")).unwrap();
    assert!(tss.ends_with(":arid"), "arid is in tss: {tss}");

    run(
        "systemd-tmpfiles",
        &["--create"],
        "systemd/tmpfiles.d/arid.conf",
    );
    let state = std::fs::metadata(root.path().join("var/lib/ari")).unwrap();
    assert_eq!(state.permissions().mode() & 0o7777, 0o700);
    assert_eq!(state.gid(), gid_of("arid"));
    let etc = std::fs::metadata(root.path().join("etc/ari")).unwrap();
    assert_eq!(etc.permissions().mode() & 0o7777, 0o750);
    println!(
        "sysusers: user arid, groups arid, ari-agents, ari-admin, tss (with arid); tmpfiles: /var/lib/ari 0700, /etc/ari 0750"
    );
}

/// Reads notifications until one contains `what`.
fn wait_notify(sock: &UnixDatagram, what: &str) -> String {
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok(n) = sock.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).to_string();
            seen.push_str(&msg);
            seen.push('\n');
            if msg.lines().any(|l| l == what) {
                return seen;
            }
        }
    }
    panic!("no {what} in notifications: {seen}");
}

#[test]
fn socket_activation_serves_agents_and_operators_on_passed_sockets() {
    if !have("systemd-socket-activate") {
        return;
    }
    // A dev directory provides the token and a config; the daemon runs from that config as the
    // service would, with its sockets created and passed by systemd's own activation tool.
    let d = common::Daemon::prepared();
    let notify_path = d.dir.join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let log = std::fs::File::create(d.dir.join("arid.log")).unwrap();
    let mut child = Command::new("systemd-socket-activate")
        .arg("-l")
        .arg(d.agent_path())
        .arg("-l")
        .arg(d.admin_path())
        .arg("--fdname=agent:admin")
        .arg(format!(
            "--setenv=SOFTHSM2_CONF={}",
            d.dir.join("softhsm2.conf").display()
        ))
        .arg(format!("--setenv=NOTIFY_SOCKET={}", notify_path.display()))
        .arg("--setenv=RUST_LOG=info")
        .arg(common::ARID)
        .arg("--config")
        .arg(d.dir.join("arid.toml"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(d.agent_path().exists() && d.admin_path().exists()) {
        assert!(Instant::now() < deadline, "sockets not created");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The first connection starts the daemon; the call waits in the socket until it serves.
    let status = d
        .admin()
        .call(Method::AdminStatus, serde_json::json!({}))
        .unwrap_or_else(|e| panic!("{e}: {}", d.log()));
    assert_eq!(status["backend"], "pkcs11");
    let ready = wait_notify(&notify, "READY=1");
    assert!(
        ready.contains(&format!("MAINPID={}", child.id())),
        "{ready}"
    );
    d.provision_self("activated");
    let me = d.agent().call(Method::AgentIdentity, serde_json::json!({}));
    assert_eq!(me.unwrap()["agent"], "activated");
    let log = d.log();
    assert!(
        log.contains("using the socket systemd passed socket=\"agent\"")
            || log.matches("using the socket systemd passed").count() == 2,
        "{log}"
    );

    common::signal(&child, nix::sys::signal::Signal::SIGTERM);
    wait_notify(&notify, "STOPPING=1");
    assert!(child.wait().unwrap().success(), "{}", d.log());
    assert!(
        d.agent_path().exists() && d.admin_path().exists(),
        "sockets systemd passed belong to systemd and stay"
    );
    println!("socket activation: READY and STOPPING notified, agent and admin calls served");
}
