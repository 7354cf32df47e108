//! The command lines: help texts with examples, configuration checking, friendly errors.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

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
            && c.call("admin.status", serde_json::json!({})).is_ok()
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
