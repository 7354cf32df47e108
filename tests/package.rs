//! The Debian package: `.ci/package` builds it (release binaries, man pages, completions,
//! `cargo deb`, lintian) and this test looks inside: the files, the control fields, the
//! maintainer scripts, and the packaged binaries run from an extracted copy.
//!
//! It builds in `target/package`, not `target/`, so the release build does not wait for the
//! lock `cargo test` holds on `target/`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// Runs a command that must succeed and returns its stdout.
fn output(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Builds the package with `.ci/package` and returns the .deb's path and the target dir.
fn build_package() -> (PathBuf, PathBuf) {
    let target = Path::new(REPO).join("target/package");
    let started = Instant::now();
    let out = Command::new(Path::new(REPO).join(".ci/package"))
        .current_dir(REPO)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(out.status.success(), ".ci/package failed: {}", out.status);
    println!(".ci/package took {:.0} s", started.elapsed().as_secs_f64());
    let deb = PathBuf::from(stdout.lines().last().expect(".ci/package printed nothing"));
    assert!(deb.is_file(), "{} is not the package", deb.display());
    assert_eq!(deb.extension().and_then(|e| e.to_str()), Some("deb"));
    (deb, target)
}

#[test]
fn the_debian_package_installs_what_it_should() {
    let (deb, target) = build_package();

    // lintian: .ci/package fails on errors; check its report as well.
    let lintian = std::fs::read_to_string(target.join("debian/lintian.txt")).unwrap();
    let errors: Vec<&str> = lintian.lines().filter(|l| l.starts_with("E: ")).collect();
    assert!(errors.is_empty(), "lintian errors:\n{}", errors.join("\n"));

    // Control fields.
    let field = |name: &str| {
        output(Command::new("dpkg-deb").arg("-f").arg(&deb).arg(name))
            .trim()
            .to_owned()
    };
    let arch = output(Command::new("dpkg").arg("--print-architecture"));
    assert_eq!(field("Package"), "ari");
    assert_eq!(field("Architecture"), arch.trim());
    assert_eq!(field("Section"), "admin");
    assert_eq!(field("Version"), concat!(env!("CARGO_PKG_VERSION"), "-1"));
    let depends = field("Depends");
    assert!(depends.contains("libc6"), "Depends: {depends}");
    assert!(depends.contains("libtss2-esys"), "Depends: {depends}");
    assert!(depends.contains("systemd"), "Depends: {depends}");
    println!(
        "{}",
        output(Command::new("dpkg-deb").arg("--info").arg(&deb))
    );

    // Files.
    let listing = output(Command::new("dpkg-deb").arg("--contents").arg(&deb));
    let mut files: BTreeMap<String, u64> = BTreeMap::new();
    for line in listing.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if line.starts_with('-') && cols.len() >= 6 {
            let path = cols[5].trim_start_matches('.').to_owned();
            files.insert(path, cols[2].parse().unwrap());
        }
    }
    let required = [
        "/usr/bin/arid",
        "/usr/bin/arictl",
        "/usr/lib/systemd/system/arid.service",
        "/usr/lib/systemd/system/arid.socket",
        "/usr/lib/systemd/system/arid-admin.socket",
        "/usr/lib/sysusers.d/arid.conf",
        "/usr/lib/tmpfiles.d/arid.conf",
        "/usr/lib/udev/rules.d/60-arid.rules",
        "/etc/ari/arid.toml",
        "/usr/share/doc/ari/examples/arid.toml",
        "/usr/share/man/man8/arid.8.gz",
        "/usr/share/man/man8/arid-dev.8.gz",
        "/usr/share/man/man1/arictl.1.gz",
        "/usr/share/man/man1/arictl-agent.1.gz",
        "/usr/share/man/man1/arictl-agent-provision.1.gz",
        "/usr/share/man/man1/arictl-verify-voucher.1.gz",
        "/usr/share/bash-completion/completions/arictl",
        "/usr/share/bash-completion/completions/arid",
        "/usr/share/zsh/vendor-completions/_arictl",
        "/usr/share/zsh/vendor-completions/_arid",
        "/usr/share/fish/vendor_completions.d/arictl.fish",
        "/usr/share/fish/vendor_completions.d/arid.fish",
        "/usr/share/doc/ari/README.md",
        "/usr/share/doc/ari/operations.md",
        "/usr/share/doc/ari/protocol.md",
        "/usr/share/doc/ari/formats.md",
        "/usr/share/doc/ari/copyright",
        "/usr/share/doc/ari/changelog.Debian.gz",
        "/usr/share/ari/clients/python/ari_client.py",
        "/usr/share/ari/clients/python/example_agent.py",
    ];
    let missing: Vec<&str> = required
        .iter()
        .copied()
        .filter(|p| !files.contains_key(*p))
        .collect();
    assert!(
        missing.is_empty(),
        "missing from the package: {missing:?}\n{listing}"
    );
    assert!(
        !files
            .keys()
            .any(|f| f.starts_with("/usr/share/man/") && !f.ends_with(".gz")),
        "uncompressed man page:\n{listing}"
    );

    // Maintainer scripts: the conffile, and nothing starts the daemon or deletes its state.
    let control = tempfile::tempdir().unwrap();
    output(
        Command::new("dpkg-deb")
            .arg("-e")
            .arg(&deb)
            .arg(control.path()),
    );
    let read = |name: &str| std::fs::read_to_string(control.path().join(name)).unwrap();
    assert_eq!(read("conffiles").trim(), "/etc/ari/arid.toml");
    let postinst = read("postinst");
    for needle in [
        "systemd-sysusers",
        "arid.conf",
        "udevadm",
        "deb-systemd-helper",
    ] {
        assert!(postinst.contains(needle), "postinst lacks {needle}");
    }
    let code = |script: &str| -> Vec<String> {
        script
            .lines()
            .map(str::trim)
            .filter(|l| !l.starts_with('#'))
            .map(str::to_owned)
            .collect()
    };
    assert!(
        !code(&postinst)
            .iter()
            .any(|l| l.contains("invoke start") || l.starts_with("systemctl start")),
        "postinst starts the daemon:\n{postinst}"
    );
    let postrm = read("postrm");
    assert!(
        !code(&postrm)
            .iter()
            .any(|l| l.starts_with("rm") && l.contains("/var/lib/ari")),
        "postrm deletes the state:\n{postrm}"
    );
    for script in ["postinst", "prerm", "postrm"] {
        output(
            Command::new("sh")
                .arg("-n")
                .arg(control.path().join(script)),
        );
    }

    // The packaged binaries, run from an extracted copy.
    let root = tempfile::tempdir().unwrap();
    output(
        Command::new("dpkg-deb")
            .arg("-x")
            .arg(&deb)
            .arg(root.path()),
    );
    let bin = |name: &str| root.path().join("usr/bin").join(name);
    let version = output(Command::new(bin("arictl")).arg("--version"));
    assert_eq!(
        version.trim(),
        concat!("arictl ", env!("CARGO_PKG_VERSION"))
    );
    let version = output(Command::new(bin("arid")).arg("--version"));
    assert_eq!(version.trim(), concat!("arid ", env!("CARGO_PKG_VERSION")));
    let config = root.path().join("etc/ari/arid.toml");
    let checked = output(Command::new(bin("arid")).arg("--check-config").arg(&config));
    assert!(checked.contains("OK"), "{checked}");
    // The packaging-only command appears in no help text and no completion.
    let help = output(Command::new(bin("arictl")).arg("--help"));
    assert!(!help.contains("generate-assets"), "{help}");
    for completion in [
        "usr/share/bash-completion/completions/arictl",
        "usr/share/zsh/vendor-completions/_arictl",
        "usr/share/fish/vendor_completions.d/arictl.fish",
    ] {
        let text = std::fs::read_to_string(root.path().join(completion)).unwrap();
        assert!(text.contains("provision"), "{completion} lacks subcommands");
        assert!(!text.contains("generate-assets"), "{completion}");
    }

    // Summary.
    let size = std::fs::metadata(&deb).unwrap().len();
    let installed: u64 = files.values().sum();
    println!(
        "{}: {:.1} MiB, {} files, {:.1} MiB installed",
        deb.display(),
        size as f64 / 1048576.0,
        files.len(),
        installed as f64 / 1048576.0
    );
    let mut by_dir: BTreeMap<String, (usize, u64)> = BTreeMap::new();
    for (path, bytes) in &files {
        let dir = Path::new(path).parent().unwrap().display().to_string();
        let entry = by_dir.entry(dir).or_default();
        entry.0 += 1;
        entry.1 += bytes;
    }
    for (dir, (count, bytes)) in by_dir {
        println!("  {dir:<44} {count:>3} files {:>9} bytes", bytes);
    }
}
