//! The PKCS#11 backend driven directly, on a throwaway SoftHSM2 token.
//!
//! SoftHSM reads `SOFTHSM2_CONF` when the module loads, and a test may not change its own
//! environment, so each test re-runs itself in a child process with the token's configuration.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use ari::backend::pkcs11::{self, PinSource, Pkcs11Backend, Pkcs11Options};
use ari::backend::{Backend, BackendError};
use ari::tools::dev;
use std::path::PathBuf;

/// In the parent: prepares a token and runs `test` again in a child that has it. In the child:
/// returns the prepared directory.
fn in_token(test: &str) -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("ARI_TEST_TOKEN_DIR") {
        return Some(PathBuf::from(dir));
    }
    let d = common::Daemon::prepared();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", &common::test_name(module_path!(), test)])
        .args(["--nocapture", "--test-threads", "1"])
        .env("SOFTHSM2_CONF", d.dir.join("softhsm2.conf"))
        .env("ARI_TEST_TOKEN_DIR", &d.dir)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{test} failed in its token:\n{text}");
    assert!(text.contains("1 passed"), "{test} did not run:\n{text}");
    None
}

fn backend(dir: &std::path::Path, sessions: usize, queue_depth: usize) -> Pkcs11Backend {
    let layout = dev::DevLayout::new(dir).unwrap();
    Pkcs11Backend::start(Pkcs11Options {
        module: dev::SOFTHSM_MODULE.into(),
        token_label: dev::DEV_TOKEN_LABEL.into(),
        pin: pkcs11::read_pin(&PinSource::File(layout.pin)).unwrap(),
        sessions,
        queue_depth,
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_signing_queue_answers_busy_at_once() {
    let Some(dir) = in_token("a_full_signing_queue_answers_busy_at_once") else {
        return;
    };
    let b = backend(&dir, 1, 1);
    let key = b.generate_key("ari-test:busy".into()).await.unwrap();
    // Submitting is synchronous: 64 calls made before any is awaited meet one session and a
    // queue of one, so all but a couple are refused on the spot instead of waiting.
    let calls: Vec<_> = (0..64u8)
        .map(|i| b.sign_digest(key.id.clone(), [i; 32]))
        .collect();
    let (mut signed, mut busy) = (0, 0);
    for c in calls {
        match c.await {
            Ok(sig) => {
                assert_eq!(sig.len(), 64);
                signed += 1;
            }
            Err(BackendError::Busy) => busy += 1,
            Err(e) => panic!("a burst must only ever be told busy, not {e}"),
        }
    }
    assert!(signed >= 1, "the first call is always taken");
    assert!(
        busy >= 60,
        "only {busy} of 64 refused with one session and a queue of one"
    );
    // The queue drains and signing goes on.
    b.sign_digest(key.id.clone(), [9; 32]).await.unwrap();
    b.destroy_key(key.id).await.unwrap();
}
