//! FUZZING ONLY: a fresh daemon state per input for the `service` target and the seed
//! generator — SQLite store, ledger and evidence log in a scratch directory (on /dev/shm when
//! there is one, or `$ARI_FUZZ_TMP`), keys in the library's in-memory key store, seeded so
//! every run makes the same keys (a seed's voucher then verifies against the fresh daemon's
//! issuer key, and a replayed input meets the keys it was found with).

use ari::attest::DaemonFacts;
use ari::backend::memory::MemoryBackend;
use ari::peer::PeerCred;
use ari::protocol::Role;
use ari::service::{AdminPolicy, ConnInfo, Service, Settings};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

const ORIGIN: &str = "fuzz.example/log";

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
    })
}

/// `ARI_FUZZ_ECHO=1` prints every answer to stderr, to see what an input does.
fn echo() -> bool {
    static ECHO: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ECHO.get_or_init(|| std::env::var_os("ARI_FUZZ_ECHO").is_some())
}

fn scratch() -> std::path::PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let base = std::env::var_os("ARI_FUZZ_TMP")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            let shm = std::path::Path::new("/dev/shm");
            if shm.is_dir() {
                shm.to_path_buf()
            } else {
                std::env::temp_dir()
            }
        });
    base.join(format!(
        "ari-fuzz-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Answers each line of `data` (first byte `a`: agent socket, else admin) on a fresh service
/// and returns the answers. Every answer must be one JSON line.
pub fn run_lines(data: &[u8]) -> Vec<Vec<u8>> {
    let dir = scratch();
    std::fs::create_dir_all(&dir).expect("scratch directory");
    let out = runtime().block_on(run(&dir, data));
    let _ = std::fs::remove_dir_all(&dir);
    out
}

async fn run(dir: &std::path::Path, data: &[u8]) -> Vec<Vec<u8>> {
    let db = dir.join("ari.db");
    let store = Arc::new(ari::store::Store::open(&db).expect("store"));
    let ledger = ari::ledger::Ledger::open(&db, 64, ORIGIN).expect("ledger");
    let settings = Settings {
        admin: AdminPolicy::default(),
        config_sha256: "00".repeat(32),
        checkpoint_interval: std::time::Duration::ZERO,
        witnesses: Vec::new(),
        witness_timeout: std::time::Duration::from_secs(5),
        rotation_overlap: std::time::Duration::from_secs(3600),
    };
    let facts = DaemonFacts {
        boot_id: "fuzz".into(),
        version: "0.1.0".into(),
        config_sha256: "00".repeat(32),
    };
    let service = Arc::new(
        Service::open(
            Arc::new(MemoryBackend::seeded(b"ari-fuzz")),
            store,
            ledger,
            facts,
            settings,
            ari::publish::Publication {
                dir: dir.join("public"),
                url: format!("https://{ORIGIN}"),
                origin: ORIGIN.into(),
            },
        )
        .await
        .expect("service"),
    );
    // The daemon's background tasks: the checkpoint signer, so evidence.checkpoint and the
    // proofs have a signed head, the statement signer, which answers evidence.record, and the
    // status list publisher, which revocations and freezes wake.
    let checkpoints = tokio::spawn(service.clone().keep_checkpoints());
    let statements = tokio::spawn(service.clone().sign_statements());
    let status_list = tokio::spawn(service.clone().keep_status_list());
    let cred = PeerCred {
        pid: std::process::id() as i32,
        uid: 0,
        gid: 0,
    };
    let admin = ConnInfo::new(Role::Admin, cred);
    let agent = ConnInfo::new(Role::Agent, cred);
    let mut answers = Vec::new();
    for line in data.split(|b| *b == b'\n') {
        let Some((&socket, line)) = line.split_first() else {
            continue;
        };
        let info = if socket == b'a' { &agent } else { &admin };
        let out = service.handle_line(info, line).await;
        if echo() {
            eprintln!("{}", String::from_utf8_lossy(&out).trim_end());
        }
        assert_eq!(out.last(), Some(&b'\n'));
        serde_json::from_slice::<serde_json::Value>(&out[..out.len() - 1])
            .expect("every answer is JSON");
        answers.push(out);
    }
    checkpoints.abort();
    let _ = checkpoints.await;
    statements.abort();
    let _ = statements.await;
    status_list.abort();
    let _ = status_list.await;
    answers
}
