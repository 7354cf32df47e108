//! The command lines: help texts with examples, configuration checking, friendly errors.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::common;
use ari::protocol::Method;

use std::process::Command;

fn run(bin: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(bin).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// The subcommands a `--help` text lists (clap's "Commands:" section), `help` excepted.
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| l.trim() != "Commands:")
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter(|l| !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_arictl_command_has_help_with_an_example() {
    // Walks the whole command tree from `arictl --help`, so a new command cannot be missed.
    let mut pending: Vec<Vec<String>> = vec![vec![]];
    let mut leaves = 0;
    while let Some(path) = pending.pop() {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let (ok, stdout, stderr) = run(common::ARICTL, &args);
        assert!(ok, "arictl {args:?}: {stderr}");
        let children = subcommands(&stdout);
        if children.is_empty() {
            leaves += 1;
            assert!(
                stdout.contains("Example"),
                "arictl {args:?} shows no example:\n{stdout}"
            );
            assert!(
                stdout.contains("arictl "),
                "arictl {args:?}: the example is a command line:\n{stdout}"
            );
        }
        for child in children {
            let mut next = path.clone();
            next.push(child);
            pending.push(next);
        }
    }
    assert!(leaves >= 40, "only {leaves} commands found");
    println!("{leaves} arictl commands, each with an example in its --help");
    let (ok, stdout, _) = run(common::ARID, &["--help"]);
    assert!(ok && stdout.contains("Example"), "{stdout}");
}

#[test]
fn check_config_accepts_the_example_and_names_unknown_keys() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/arid.example.toml");
    let (ok, stdout, stderr) = run(common::ARID, &["--check-config", example]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("OK"), "{stdout}");

    let dir = common::tempdir();
    let bad = dir.path().join("bad.toml");
    let text = std::fs::read_to_string(example)
        .unwrap()
        .replace("read_timeout_ms", "read_timeout");
    std::fs::write(&bad, text).unwrap();
    let (ok, _, stderr) = run(common::ARID, &["--check-config", bad.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        stderr.contains("read_timeout") && stderr.contains("bad.toml"),
        "{stderr}"
    );
}

#[test]
fn arictl_without_a_daemon_says_what_to_do() {
    let (ok, _, stderr) = run(
        common::ARICTL,
        &["--admin-socket", "/nonexistent/admin.sock", "agent", "list"],
    );
    assert!(!ok);
    assert!(
        stderr.contains("is arid running?") && stderr.contains("ARI_ADMIN_SOCKET"),
        "{stderr}"
    );
}

#[test]
fn arictl_drives_the_operator_and_agent_flow() {
    let d = common::Daemon::start();
    let arictl = |args: &[&str]| d.arictl(args);
    let uid = common::uid().to_string();
    let (code, _, err) = arictl(&[
        "agent",
        "provision",
        "--agent",
        "cli-bot",
        "--user",
        "alice",
        "--uid",
        &uid,
        "--exe",
        common::ARICTL,
    ]);
    assert_eq!(code, Some(0), "{err}");
    let (code, out, _) = arictl(&["agent", "list"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("cli-bot") && out.contains("active"), "{out}");
    let (code, identity, err) = arictl(&["identity"]);
    assert_eq!(code, Some(0), "{err}");
    let identity: serde_json::Value = serde_json::from_str(&identity).unwrap();
    let work = common::tempdir();
    let jwk = work.path().join("agent.jwk");
    std::fs::write(&jwk, identity["key"]["jwk"].to_string()).unwrap();
    let (code, att, err) = arictl(&["attest", "--nonce", "cli-nonce-123"]);
    assert_eq!(code, Some(0), "{err}");
    let att_file = work.path().join("att.json");
    std::fs::write(&att_file, att).unwrap();
    let verify = |nonce: &str| {
        arictl(&[
            "verify",
            "attest",
            "--jwk",
            jwk.to_str().unwrap(),
            "--nonce",
            nonce,
            att_file.to_str().unwrap(),
        ])
    };
    let (code, _, err) = verify("cli-nonce-123");
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("attestation OK"), "{err}");
    let (code, _, err) = verify("another-nonce");
    assert_eq!(code, Some(1), "a wrong nonce fails verification: {err}");
    let (code, _, _) = arictl(&["agent", "freeze", "cli-bot"]);
    assert_eq!(code, Some(0));
    let (code, _, err) = arictl(&["attest", "--nonce", "cli-nonce-456"]);
    assert_eq!(code, Some(2), "refused by the daemon");
    assert!(err.contains("agent_frozen"), "{err}");
}

#[test]
fn dev_mode_without_softhsm_says_how_to_install_it() {
    let dir = common::tempdir();
    let out = Command::new(common::ARID)
        .args(["dev", "--state-dir"])
        .arg(dir.path())
        .env("ARI_PKCS11_MODULE", "/nonexistent/libsofthsm2.so")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("apt-get install -y softhsm2"), "{err}");
}

#[test]
fn pin_from_a_systemd_credential() {
    // A dev directory provides the token; the daemon then runs from a production-style config
    // whose PIN comes from $CREDENTIALS_DIRECTORY, as systemd's LoadCredential= provides it.
    let d = common::Daemon::prepared();
    let creds = d.dir.join("creds");
    std::fs::create_dir(&creds).unwrap();
    std::fs::copy(d.dir.join("secrets/token.pin"), creds.join("token-pin")).unwrap();
    let config = std::fs::read_to_string(d.dir.join("arid.toml")).unwrap();
    let config = config
        .lines()
        .map(|l| {
            if l.starts_with("pin_file") {
                "pin_credential = \"token-pin\"".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let path = d.dir.join("prod.toml");
    std::fs::write(&path, config).unwrap();
    let child = Command::new(common::ARID)
        .arg("--config")
        .arg(&path)
        .env("SOFTHSM2_CONF", d.dir.join("softhsm2.conf"))
        .env("CREDENTIALS_DIRECTORY", &creds)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let admin = d.admin_path();
    let mut up = false;
    for _ in 0..200 {
        if let Ok(mut c) = ari::client::Client::connect(&admin)
            && c.call(Method::AdminStatus, serde_json::json!({})).is_ok()
        {
            up = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    common::signal(&child, nix::sys::signal::Signal::SIGTERM);
    let out = child.wait_with_output().unwrap();
    assert!(up, "the daemon served with the PIN from the credential");
    assert!(
        out.status.success(),
        "{}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );

    // Without the credentials directory it refuses to start and says why.
    let out = Command::new(common::ARID)
        .arg("--config")
        .arg(&path)
        .env("SOFTHSM2_CONF", d.dir.join("softhsm2.conf"))
        .env_remove("CREDENTIALS_DIRECTORY")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("CREDENTIALS_DIRECTORY"), "{err}");
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// `arid dev --prepare --state-dir DIR`: (ok, stderr).
fn dev_prepare(dir: &std::path::Path) -> (bool, String) {
    let out = Command::new(common::ARID)
        .args(["dev", "--prepare", "--state-dir"])
        .arg(dir)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

/// Dev mode loads the PKCS#11 module its `arid.toml` names and the PINs and token beside it, as
/// the invoking user (often root): a directory someone else could have written is refused, and
/// one it creates is its owner's alone.
#[test]
fn dev_mode_creates_its_directory_0700_and_refuses_one_it_cannot_trust() {
    let work = common::tempdir();
    let dir = work.path().join("new/dev");
    let (ok, err) = dev_prepare(&dir);
    assert!(ok, "{err}");
    assert_eq!(mode(&dir), 0o700, "a fresh dev directory is 0700");
    assert_eq!(
        mode(&work.path().join("new")),
        0o700,
        "and so are the parents it makes"
    );
    assert!(dev_prepare(&dir).0, "it resumes");

    // A group-writable file dev mode reads.
    let config = dir.join("arid.toml");
    std::fs::set_permissions(&config, std::os::unix::fs::PermissionsExt::from_mode(0o664)).unwrap();
    let (ok, err) = dev_prepare(&dir);
    assert!(!ok, "a group-writable arid.toml was used");
    assert!(err.contains(&config.display().to_string()), "{err}");
    assert!(err.contains("writable by its group"), "{err}");
    assert!(err.contains("chmod"), "{err}");
    std::fs::set_permissions(&config, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    // ...or deeper: a token file.
    let token = std::fs::read_dir(dir.join("tokens"))
        .unwrap()
        .next()
        .expect("the token has a directory")
        .unwrap()
        .path();
    std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let (ok, err) = dev_prepare(&dir);
    assert!(!ok, "a world-writable token directory was used");
    assert!(err.contains(&token.display().to_string()), "{err}");
    std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    assert!(dev_prepare(&dir).0);

    // A symlink as the state directory, even to a good one.
    let link = work.path().join("link");
    std::os::unix::fs::symlink(&dir, &link).unwrap();
    let (ok, err) = dev_prepare(&link);
    assert!(!ok, "a symlinked state directory was used");
    assert!(err.contains("symlink"), "{err}");

    if !is_root() {
        eprintln!("SKIP the other-owner half: needs root to give the directory to uid 65534");
        return;
    }
    // A directory another user made, with its own arid.toml: refused, not adopted.
    nix::unistd::chown(&dir, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
    let (ok, err) = dev_prepare(&dir);
    assert!(!ok, "a directory owned by uid 65534 was adopted");
    assert!(err.contains("owned by uid 65534"), "{err}");
    assert!(err.contains(&dir.display().to_string()), "{err}");
    nix::unistd::chown(&dir, Some(nix::unistd::Uid::from_raw(0)), None).unwrap();
    nix::unistd::chown(&config, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
    let (ok, err) = dev_prepare(&dir);
    assert!(!ok, "an arid.toml owned by uid 65534 was used");
    assert!(err.contains("owned by uid 65534"), "{err}");
}

/// Runs `arid dev --state-dir DIR` until it exits or serves; returns (served, stderr).
fn dev_serve(dir: &std::path::Path) -> (bool, String) {
    let mut child = Command::new(common::ARID)
        .args(["dev", "--state-dir"])
        .arg(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Bounds a hang only: the outcome is whichever of the two happens.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        if let Some(_status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            return (false, err);
        }
        if let Ok(mut c) = ari::client::Client::connect(&dir.join("admin.sock"))
            && c.call(Method::AdminStatus, serde_json::json!({})).is_ok()
        {
            common::signal(&child, nix::sys::signal::Signal::SIGTERM);
            child.wait().unwrap();
            return (true, String::new());
        }
        assert!(
            std::time::Instant::now() < deadline,
            "arid dev neither served nor exited"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A socket path is never followed through a symlink, and a stale socket is replaced only when
/// it is this user's.
#[test]
fn dev_mode_never_follows_or_takes_over_a_socket_path() {
    let work = common::tempdir();
    let dir = work.path().join("dev");
    assert!(dev_prepare(&dir).0);
    let target = work.path().join("elsewhere");
    let agent = dir.join("agent.sock");
    std::os::unix::fs::symlink(&target, &agent).unwrap();
    let (served, err) = dev_serve(&dir);
    assert!(!served, "served through a symlinked socket path");
    assert!(err.contains(&agent.display().to_string()), "{err}");
    assert!(!target.exists(), "the symlink was followed");
    assert!(
        std::fs::symlink_metadata(&agent)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    std::fs::remove_file(&agent).unwrap();

    // A stale socket of this user's is replaced.
    drop(std::os::unix::net::UnixListener::bind(&agent).unwrap());
    let (served, err) = dev_serve(&dir);
    assert!(served, "{err}");

    if !is_root() {
        eprintln!("SKIP the other-owner half: needs root to give a socket to uid 65534");
        return;
    }
    // Someone else's is not.
    drop(std::os::unix::net::UnixListener::bind(&agent).unwrap());
    nix::unistd::fchownat(
        nix::fcntl::AT_FDCWD,
        &agent,
        Some(nix::unistd::Uid::from_raw(65534)),
        None,
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .unwrap();
    let (served, err) = dev_serve(&dir);
    assert!(!served, "another user's socket file was replaced");
    assert!(err.contains("owned by uid 65534"), "{err}");
    assert!(err.contains(&agent.display().to_string()), "{err}");
}
