//! The publish directory, read by code nobody here wrote: the checkpoint's Ed25519 line by Go's
//! `golang.org/x/mod/sumdb/note`, the tiles and entry bundles by Go's `sumdb/tlog`.

use crate::common::{Daemon, tlogcheck};
use ari::protocol::Method;
use serde_json::json;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Waits until the published checkpoint covers `size` entries; returns its path.
fn published(d: &Daemon, size: u64) -> PathBuf {
    let dir = d.dir.join("state/public");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let size_now = std::fs::read_to_string(dir.join("checkpoint"))
            .ok()
            .and_then(|n| n.lines().nth(1).and_then(|s| s.parse::<u64>().ok()));
        if size_now.is_some_and(|s| s >= size) {
            return dir;
        }
        assert!(
            Instant::now() < deadline,
            "no checkpoint of {size} entries published in 10 s (have {size_now:?})\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn vkeys(d: &Daemon) -> Vec<String> {
    let (code, out, err) = d.arictl(&["log", "vkey"]);
    assert_eq!(code, Some(0), "{err}");
    out.lines().map(str::to_string).collect()
}

fn check(args: &[&str], dir: &Path) -> (bool, String) {
    let mut a: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    a.insert(2, dir.as_os_str());
    tlogcheck(&a)
}

#[test]
fn go_reads_the_published_checkpoint_tiles_and_entries() {
    let d = Daemon::start();
    d.provision_self("shop-bot");
    let mut c = d.agent();
    // Past one full tile, so a level-1 tile and a full entry bundle exist too.
    let mut last = 0;
    for n in 0..300 {
        let r = c
            .call(
                Method::EvidenceRecord,
                json!({"kind": "step", "body": {"n": n}}),
            )
            .unwrap();
        last = r["index"].as_u64().unwrap();
    }
    let size = last + 1;
    let dir = published(&d, size);
    assert!(dir.join("tile/0/000").is_file(), "a full level-0 tile");
    assert!(dir.join("tile/entries/000").is_file(), "a full entry bundle");
    assert!(dir.join("tile/1/000.p").is_dir(), "a partial level-1 tile");

    let keys = vkeys(&d);
    assert_eq!(keys.len(), 2, "{keys:?}");
    let (ed25519, ecdsa) = (&keys[0], &keys[1]);
    let origin = std::fs::read_to_string(dir.join("checkpoint")).unwrap();
    let origin = origin.lines().next().unwrap();
    assert!(ed25519.starts_with(&format!("{origin}+")), "{ed25519}");

    // The checkpoint verifies under the Ed25519 key with Go's note package.
    let cp = dir.join("checkpoint");
    let (ok, out) = tlogcheck(&[OsStr::new("note"), OsStr::new(ed25519), cp.as_os_str()]);
    assert!(ok, "{out}");
    let name_and_id = ed25519.splitn(3, '+').take(2).collect::<Vec<_>>().join("+");
    assert!(out.contains(&name_and_id), "{out}");
    // Go's note package has no ECDSA: the other line is someone else's to check.
    let (ok, out) = tlogcheck(&[OsStr::new("note"), OsStr::new(ecdsa), cp.as_os_str()]);
    assert!(!ok && out.contains("verifier key"), "{out}");

    // An edited checkpoint does not verify.
    let work = crate::common::tempdir();
    let text = std::fs::read_to_string(&cp).unwrap();
    let edited = work.path().join("checkpoint");
    let other_size = text.replacen(&format!("\n{}\n", text.lines().nth(1).unwrap()), "\n1\n", 1);
    std::fs::write(&edited, other_size).unwrap();
    let (ok, out) =
        tlogcheck(&[OsStr::new("note"), OsStr::new(ed25519), edited.as_os_str()]);
    assert!(!ok && out.contains("invalid signature"), "{out}");

    // Entries at the edges of tiles are proven in the signed tree from the tiles alone.
    let published_size: u64 = text.lines().nth(1).unwrap().parse().unwrap();
    for index in [0, 1, 255, 256, published_size - 1] {
        let i = index.to_string();
        let (ok, out) = check(&["inclusion", ed25519, &i], &dir);
        assert!(ok, "entry {index}: {out}");
        assert!(out.contains(&format!("entry {index} is in {origin}")), "{out}");
    }
    let (ok, out) = check(&["inclusion", ed25519, &published_size.to_string()], &dir);
    assert!(!ok, "an entry past the tree: {out}");

    // The bundle holds the very bytes the daemon serves for the entry.
    let served = d
        .admin()
        .call(Method::EvidenceEntry, json!({"index": 256}))
        .unwrap();
    let entries = ari::evidence::tiles::unbundle(
        &std::fs::read(
            std::fs::read_dir(dir.join("tile/entries/001.p"))
                .unwrap()
                .next()
                .unwrap()
                .unwrap()
                .path(),
        )
        .unwrap(),
    )
    .unwrap()
    .into_iter()
    .map(|e| e.to_vec())
    .collect::<Vec<_>>();
    assert_eq!(
        entries[0],
        served["entry"].as_str().unwrap().as_bytes(),
        "entry 256 is the first of the second bundle"
    );

    // A tile altered on the mirror is caught against the signed root.
    let copy = work.path().join("mirror");
    copy_tree(&dir, &copy);
    let tile = copy.join("tile/0/000");
    let mut bytes = std::fs::read(&tile).unwrap();
    bytes[5] ^= 1;
    std::fs::write(&tile, bytes).unwrap();
    let (ok, out) = check(&["inclusion", ed25519, "3"], &copy);
    assert!(!ok, "a tampered tile: {out}");
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}
