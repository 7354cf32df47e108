//! The service's flows in-process, without a token or a subprocess: the real [`Service`] on a
//! SQLite store in a temporary directory, with the real ledger writer and the in-memory key
//! store ([`crate::backend::memory`]), driven through [`Service::handle_line`], the entry point
//! a socket's bytes reach.
//!
//! Callers are real: the admin connection is this process, an operator because the admin
//! policy lists its uid, and the agent connection is this process too, measured from `/proc` by
//! the production path (pid pinned, executable hashed, selectors matched) through the public
//! [`ConnInfo::new`]. An agent provisioned with this process's uid and executable digest is the
//! caller on the agent socket; nothing in the security check is bypassed or replaced.
//!
//! [`InProcess::call`] is the one place that speaks the wire: every test goes through it, so a
//! change of framing is adapted here once. Tests that need the real token, the real TPM or real
//! processes stay in `tests/`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod agent;
mod delegation;
mod payment;
mod spending;

use super::{AdminPolicy, Service, Settings};
use crate::attest::DaemonFacts;
use crate::backend::KeyId;
use crate::backend::memory::MemoryBackend;
use crate::evidence::entry::{self, Entry, Kind};
use crate::jose::{Jwk, PublicKey};
use crate::ledger::Ledger;
use crate::peer::PeerCred;
use crate::protocol::{ErrorCode, Method, Role};
use crate::service::ConnInfo;
use crate::store::Store;
use serde_json::{Value, json};
use sha2::Digest;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The evidence log's name.
const ORIGIN: &str = "service-test.example/log";
/// The user every test agent acts for.
const USER: &str = "alice@example.com";

/// A call the service refused, as the wire carries it.
#[derive(Debug)]
pub(super) struct Refused {
    /// The error code, read from its stable name (`data.reason`).
    pub code: ErrorCode,
    /// For a payment denial: the recorded decision.
    pub decision: Option<String>,
}

/// A daemon's service in this process, with an operator and an agent connection.
pub(super) struct InProcess {
    service: Service,
    /// The service's key store, for what a token can do behind the daemon's back.
    pub keys: Arc<MemoryBackend>,
    store: Arc<Store>,
    db: PathBuf,
    admin: ConnInfo,
    agent: ConnInfo,
    next_id: AtomicU64,
    _dir: tempfile::TempDir,
}

impl InProcess {
    /// A fresh state directory and a service on it.
    pub async fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("ari-service-")
            .tempdir()
            .unwrap();
        let db = dir.path().join("ari.db");
        let store = Arc::new(Store::open(&db).unwrap());
        let ledger = Ledger::open(&db, 64, ORIGIN).unwrap();
        let keys = Arc::new(MemoryBackend::new());
        let me = PeerCred {
            pid: i32::try_from(std::process::id()).unwrap(),
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
        };
        let settings = Settings {
            admin: AdminPolicy {
                allow_uids: vec![me.uid],
                gid: None,
            },
            config_sha256: "00".repeat(32),
            checkpoint_interval: std::time::Duration::ZERO,
            witnesses: Vec::new(),
            witness_timeout: std::time::Duration::from_secs(5),
            rotation_overlap: std::time::Duration::from_secs(3600),
        };
        let facts = DaemonFacts {
            boot_id: "service-test".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            config_sha256: "00".repeat(32),
        };
        let service = Service::open(
            keys.clone(),
            store.clone(),
            ledger,
            facts,
            settings,
            crate::publish::Publication {
                dir: dir.path().join("public"),
                url: format!("https://{ORIGIN}"),
                origin: ORIGIN.into(),
            },
        )
        .await
        .unwrap();
        Self {
            service,
            keys,
            store,
            db,
            admin: ConnInfo::new(Role::Admin, me),
            agent: ConnInfo::new(Role::Agent, me),
            next_id: AtomicU64::new(1),
            _dir: dir,
        }
    }

    /// One call, as a line on the socket `info` came in on, and its answer read back.
    async fn call(&self, info: &ConnInfo, method: Method, params: Value) -> Result<Value, Refused> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let line = serde_json::to_vec(
            &json!({"jsonrpc": "2.0", "id": id, "method": method.name(), "params": params}),
        )
        .unwrap();
        let answer = self.service.handle_line(info, &line).await;
        assert_eq!(answer.last(), Some(&b'\n'), "an answer is one line");
        let mut answer: Value = serde_json::from_slice(&answer).unwrap();
        assert_eq!(answer["id"], id, "the answer is to this call");
        if let Some(result) = answer.get_mut("result") {
            return Ok(result.take());
        }
        let error = &answer["error"];
        let reason = error["data"]["reason"].as_str().unwrap();
        let code = ErrorCode::from_reason(reason).unwrap();
        assert_eq!(error["code"], code.code(), "{reason} has its own code");
        Err(Refused {
            code,
            decision: error["data"]["decision"].as_str().map(str::to_string),
        })
    }

    /// A call on the admin socket.
    pub async fn admin(&self, method: Method, params: Value) -> Result<Value, Refused> {
        self.call(&self.admin, method, params).await
    }

    /// A call on the agent socket.
    pub async fn agent(&self, method: Method, params: Value) -> Result<Value, Refused> {
        self.call(&self.agent, method, params).await
    }

    /// Provisions `id` for this user and this process's uid, running the executable whose
    /// SHA-256 is `exe_sha256`.
    pub async fn provision(&self, id: &str, exe_sha256: &str) -> Value {
        let params = json!({"agent": id, "user": USER, "uid": self.agent.cred.uid,
                            "exe_sha256": exe_sha256});
        self.admin(Method::AdminAgentProvision, params)
            .await
            .unwrap()
    }

    /// Provisions `id` as the agent this test process is: its uid and its executable.
    pub async fn provision_self(&self, id: &str) -> Value {
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        self.provision(id, &hex::encode(sha2::Sha256::digest(&exe)))
            .await
    }

    /// Issues a voucher to `agent`: L3, CNY, a day long, with `params` merged over that.
    /// Returns its id and compact form.
    pub async fn issue(&self, agent: &str, params: Value) -> (String, String) {
        let mut p = json!({"agent": agent, "level": "L3", "currency": "CNY",
                           "expires_at": crate::clock::unix_now() + 86_400});
        merge(&mut p, params);
        let v = self.admin(Method::AdminVoucherIssue, p).await.unwrap();
        (
            v["id"].as_str().unwrap().into(),
            v["voucher"].as_str().unwrap().into(),
        )
    }

    /// `payment.authorize` of `amount` CNY to `payee`, checkout `tx`, on `voucher`.
    pub async fn pay(
        &self,
        voucher: &str,
        amount: u64,
        payee: &str,
        tx: &str,
    ) -> Result<Value, Refused> {
        self.agent(
            Method::PaymentAuthorize,
            json!({
                "voucher": voucher,
                "payment": {"amount": amount, "currency": "CNY", "payee": payee,
                            "transaction_id": tx},
                "aud": "psp.example",
                "nonce": format!("nonce-{tx}-0000"),
            }),
        )
        .await
    }

    /// The id of `agent`'s key in the key store, as the state database records it.
    pub fn key_of(&self, agent: &str) -> KeyId {
        let agents = self.store.agents().unwrap();
        let found = agents.into_iter().find(|a| a.id == agent);
        found.unwrap().key.id
    }

    /// What the operator sees of a voucher (spent, reserved, payments).
    pub async fn voucher(&self, id: &str) -> Value {
        self.admin(Method::AdminVoucherShow, json!({"voucher": id}))
            .await
            .unwrap()
    }

    /// What the operator sees of a decision.
    pub async fn decision(&self, id: &str) -> Value {
        self.admin(Method::AdminPaymentShow, json!({"decision": id}))
            .await
            .unwrap()
    }

    /// The daemon's issuer key, as `admin.status` publishes it.
    pub async fn issuer(&self) -> PublicKey {
        let status = self.admin(Method::AdminStatus, json!({})).await.unwrap();
        serde_json::from_value::<Jwk>(status["daemon_keys"]["issuer"]["jwk"].clone())
            .unwrap()
            .to_public_key()
            .unwrap()
    }

    /// The whole evidence log, checked to be one chain of this log's entries.
    pub fn log(&self) -> Vec<Entry> {
        let rows = self
            .store
            .read(|c| crate::ledger::log::entries(c, 0, crate::ledger::log::size(c)?))
            .unwrap();
        entry::check_chain(ORIGIN, 0, None, &rows).unwrap().0
    }

    /// The entries appended since the log held `from` entries.
    pub fn since(&self, from: usize) -> Vec<Entry> {
        self.log().split_off(from)
    }

    /// The one entry appended since the log held `from` entries, checked to be of `kind` and
    /// about `decision`.
    pub fn entry_since(&self, from: usize, kind: Kind, decision: &Value) -> Entry {
        let mut added = self.since(from);
        assert_eq!(kinds(&added), [kind], "{added:?}");
        let entry = added.remove(0);
        assert_eq!(entry.fact["decision"], *decision, "{entry:?}");
        entry
    }

    /// Moves an authorization's report deadline one second into the past, as waiting for it
    /// would (the service reads time from the system clock, which a test cannot move).
    pub fn let_report_deadline_pass(&self, decision: &str) {
        let conn = rusqlite::Connection::open(&self.db).unwrap();
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .unwrap();
        let moved = conn
            .execute(
                "UPDATE payment SET report_deadline = ?1 WHERE id = ?2 AND report_deadline IS NOT NULL",
                rusqlite::params![crate::clock::unix_now() - 1, decision],
            )
            .unwrap();
        assert_eq!(moved, 1, "decision {decision} has no report deadline");
    }
}

/// Sets every member of `extra` (an object) in `into`.
fn merge(into: &mut Value, extra: Value) {
    let Value::Object(extra) = extra else {
        panic!("not an object: {extra}");
    };
    for (k, v) in extra {
        into[k] = v;
    }
}

/// The kinds of `entries`, in order.
fn kinds(entries: &[Entry]) -> Vec<Kind> {
    entries.iter().map(|e| e.kind).collect()
}
