//! The daemon's durable state: one SQLite database in the state directory.
//!
//! WAL journal with `synchronous=FULL`, so a committed write survives power loss. The schema is
//! versioned with `PRAGMA user_version`: [`MIGRATIONS`] lists every step ever shipped, each run
//! once in its own transaction, in order; a database newer than this build is refused rather
//! than guessed at. Keys are referenced by their store id and public half; no private material
//! is ever written here.

use crate::backend::{Ed25519Info, KeyAttributes, KeyId, KeyInfo};
use crate::identity::{Agent, AgentStatus, Selectors};
use crate::jose::PublicKey;
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use crate::clock::unix_now as now;

/// Schema steps, oldest first. Never edit a shipped step; append a new one.
pub const MIGRATIONS: &[&str] = &[
    // 1: agents and the daemon's own keys.
    "CREATE TABLE agent (
        id          TEXT PRIMARY KEY,
        instance_id TEXT NOT NULL UNIQUE,
        user_id     TEXT NOT NULL,
        key_id      BLOB NOT NULL,
        key_uri     TEXT NOT NULL,
        public_key  BLOB NOT NULL,
        attributes  TEXT NOT NULL,
        selectors   TEXT NOT NULL,
        status      TEXT NOT NULL CHECK (status IN ('active', 'frozen', 'retired')),
        certificate TEXT,
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE daemon_key (
        role        TEXT PRIMARY KEY,
        key_id      BLOB NOT NULL,
        key_uri     TEXT NOT NULL,
        public_key  BLOB NOT NULL,
        attributes  TEXT NOT NULL,
        created_at  INTEGER NOT NULL
    ) STRICT;",
    // 2: vouchers and what has been spent against them.
    "CREATE TABLE voucher (
        id          TEXT PRIMARY KEY,
        digest      TEXT NOT NULL UNIQUE,
        agent_id    TEXT NOT NULL REFERENCES agent (id),
        compact     TEXT NOT NULL,
        parent      TEXT REFERENCES voucher (digest),
        status      TEXT NOT NULL CHECK (status IN ('active', 'revoked')),
        spent       INTEGER NOT NULL DEFAULT 0 CHECK (spent >= 0),
        payments    INTEGER NOT NULL DEFAULT 0 CHECK (payments >= 0),
        issued_at   INTEGER NOT NULL,
        expires_at  INTEGER NOT NULL,
        revoked_at  INTEGER
    ) STRICT;
    CREATE INDEX voucher_agent ON voucher (agent_id);",
    // 3: budgets and reservations, payment decisions (never deleted, so `seq` only grows),
    // external issuers.
    "ALTER TABLE voucher ADD COLUMN reserved INTEGER NOT NULL DEFAULT 0 CHECK (reserved >= 0);
    ALTER TABLE voucher ADD COLUMN budget INTEGER CHECK (budget >= 0);
    CREATE TRIGGER voucher_within_budget BEFORE UPDATE OF spent, reserved ON voucher
        WHEN NEW.budget IS NOT NULL AND NEW.spent + NEW.reserved > NEW.budget
        BEGIN SELECT RAISE(ABORT, 'voucher budget exceeded'); END;
    CREATE TABLE payment (
        seq             INTEGER PRIMARY KEY,
        id              TEXT NOT NULL UNIQUE,
        voucher_id      TEXT NOT NULL REFERENCES voucher (id),
        agent_id        TEXT NOT NULL,
        amount          INTEGER NOT NULL CHECK (amount > 0),
        currency        TEXT NOT NULL,
        payee           TEXT NOT NULL,
        category        TEXT,
        transaction_id  TEXT NOT NULL,
        aud             TEXT NOT NULL,
        nonce           TEXT NOT NULL,
        facts           TEXT NOT NULL,
        confirm         INTEGER NOT NULL CHECK (confirm IN (0, 1)),
        status          TEXT NOT NULL CHECK (status IN ('authorized', 'denied', 'pending', 'void')),
        reason          TEXT,
        created_at      INTEGER NOT NULL,
        decided_at      INTEGER,
        report_deadline INTEGER,
        outcome         TEXT CHECK (outcome IN ('succeeded', 'failed', 'refunded')),
        reference       TEXT,
        reported_at     INTEGER,
        attestation     TEXT NOT NULL,
        authorization   TEXT
    ) STRICT;
    CREATE UNIQUE INDEX payment_checkout ON payment (voucher_id, transaction_id)
        WHERE status IN ('authorized', 'pending');
    CREATE INDEX payment_due ON payment (voucher_id, report_deadline)
        WHERE status = 'authorized' AND outcome IS NULL AND report_deadline IS NOT NULL;
    CREATE TABLE issuer (
        name        TEXT PRIMARY KEY,
        kid         TEXT NOT NULL UNIQUE,
        jwk         TEXT NOT NULL,
        added_at    INTEGER NOT NULL
    ) STRICT;",
    // 4: the evidence log. An entry's bytes are exactly what its leaf hash covers; the node
    // table keeps every perfect subtree's hash (level 0 are the leaves), so roots and proofs
    // read O(log n) rows.
    "CREATE TABLE evidence_entry (
        idx         INTEGER PRIMARY KEY CHECK (idx >= 0),
        kind        TEXT NOT NULL,
        entry       BLOB NOT NULL
    ) STRICT;
    CREATE TABLE evidence_node (
        level       INTEGER NOT NULL CHECK (level BETWEEN 0 AND 63),
        idx         INTEGER NOT NULL CHECK (idx >= 0),
        hash        BLOB NOT NULL CHECK (length(hash) = 32),
        PRIMARY KEY (level, idx)
    ) STRICT, WITHOUT ROWID;
    CREATE TABLE evidence_checkpoint (
        size        INTEGER PRIMARY KEY CHECK (size >= 0),
        root        BLOB NOT NULL CHECK (length(root) = 32),
        note        TEXT NOT NULL,
        signed_at   INTEGER NOT NULL
    ) STRICT;",
    // 5: a TPM key's certification by the attestation key (JSON), made when it was created.
    "ALTER TABLE agent ADD COLUMN certification TEXT;
    ALTER TABLE daemon_key ADD COLUMN certification TEXT;",
    // 6: subtree hashes keyed by their place in post-order, so appends only ever write at the
    // table's end (filled from `evidence_node`, which is then dropped: see `STEP_WORK`).
    "CREATE TABLE evidence_hash (
        pos         INTEGER PRIMARY KEY CHECK (pos >= 0),
        hash        BLOB NOT NULL CHECK (length(hash) = 32)
    ) STRICT;",
    // 7: the payment table again, with the same rules spelled as comparisons. SQLite checks a
    // constant `IN` list of three or more values against a throwaway b-tree that it builds for
    // every statement (its own pager and page cache: about 90 KiB allocated, touched and freed),
    // so the two `IN` checks cost every payment insert more than the insert itself.
    "CREATE TABLE payment_7 (
        seq             INTEGER PRIMARY KEY,
        id              TEXT NOT NULL UNIQUE,
        voucher_id      TEXT NOT NULL REFERENCES voucher (id),
        agent_id        TEXT NOT NULL,
        amount          INTEGER NOT NULL CHECK (amount > 0),
        currency        TEXT NOT NULL,
        payee           TEXT NOT NULL,
        category        TEXT,
        transaction_id  TEXT NOT NULL,
        aud             TEXT NOT NULL,
        nonce           TEXT NOT NULL,
        facts           TEXT NOT NULL,
        confirm         INTEGER NOT NULL CHECK (confirm = 0 OR confirm = 1),
        status          TEXT NOT NULL CHECK (status = 'authorized' OR status = 'denied'
                                             OR status = 'pending' OR status = 'void'),
        reason          TEXT,
        created_at      INTEGER NOT NULL,
        decided_at      INTEGER,
        report_deadline INTEGER,
        outcome         TEXT CHECK (outcome = 'succeeded' OR outcome = 'failed'
                                    OR outcome = 'refunded'),
        reference       TEXT,
        reported_at     INTEGER,
        attestation     TEXT NOT NULL,
        authorization   TEXT
    ) STRICT;
    INSERT INTO payment_7 (seq, id, voucher_id, agent_id, amount, currency, payee, category,
                           transaction_id, aud, nonce, facts, confirm, status, reason,
                           created_at, decided_at, report_deadline, outcome, reference,
                           reported_at, attestation, authorization)
        SELECT seq, id, voucher_id, agent_id, amount, currency, payee, category,
               transaction_id, aud, nonce, facts, confirm, status, reason,
               created_at, decided_at, report_deadline, outcome, reference,
               reported_at, attestation, authorization
        FROM payment ORDER BY seq;
    DROP TABLE payment;
    ALTER TABLE payment_7 RENAME TO payment;
    CREATE UNIQUE INDEX payment_checkout ON payment (voucher_id, transaction_id)
        WHERE status IN ('authorized', 'pending');
    CREATE INDEX payment_due ON payment (voucher_id, report_deadline)
        WHERE status = 'authorized' AND outcome IS NULL AND report_deadline IS NOT NULL;",
    // 8: keys that stopped signing (rotated daemon keys, agents' replaced and retired keys),
    // kept for the published key set's history; retired agents' keys are filled in by
    // `STEP_WORK`.
    "CREATE TABLE key_history (
        kid           TEXT PRIMARY KEY,
        role          TEXT NOT NULL CHECK (role = 'issuer' OR role = 'log' OR role = 'agent'),
        agent_id      TEXT,
        instance_id   TEXT,
        public_key    BLOB NOT NULL,
        not_before    INTEGER NOT NULL,
        not_after     INTEGER NOT NULL,
        overlap_until INTEGER,
        log_index     INTEGER
    ) STRICT;",
    // 9: the log's Ed25519 note key, and the newest checkpoint each witness cosigned.
    "CREATE TABLE log_ed25519_key (
        one         INTEGER PRIMARY KEY CHECK (one = 1),
        key_id      BLOB NOT NULL,
        key_uri     TEXT NOT NULL,
        public_key  BLOB NOT NULL CHECK (length(public_key) = 32),
        created_at  INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE witness_state (
        name        TEXT PRIMARY KEY,
        size        INTEGER NOT NULL,
        cosigned_at INTEGER NOT NULL
    ) STRICT;",
    // 10: places in the voucher status list (IETF Token Status List). An index is taken before
    // the voucher that carries it is signed, in a commit of its own, and rows are never deleted,
    // so no index is handed out twice (one whose voucher was never stored stays VALID and
    // unused). A voucher this daemon signed records its index; imported ones have none.
    "CREATE TABLE status_index (
        idx          INTEGER PRIMARY KEY CHECK (idx >= 0),
        allocated_at INTEGER NOT NULL
    ) STRICT;
    CREATE TRIGGER status_index_kept BEFORE DELETE ON status_index
        BEGIN SELECT RAISE(ABORT, 'a status index is never released'); END;
    ALTER TABLE voucher ADD COLUMN status_idx INTEGER REFERENCES status_index (idx);
    CREATE UNIQUE INDEX voucher_status_idx ON voucher (status_idx) WHERE status_idx IS NOT NULL;",
    // 11: counterparties' keys: merchants (their checkout JWTs) and payment providers (their
    // payment receipts).
    "CREATE TABLE counterparty (
        role        TEXT NOT NULL CHECK (role IN ('merchant', 'provider')),
        name        TEXT NOT NULL,
        kid         TEXT NOT NULL,
        jwk         TEXT NOT NULL,
        added_at    INTEGER NOT NULL,
        PRIMARY KEY (role, name),
        UNIQUE (role, kid)
    ) STRICT;",
    // 12: a payment's merchant checkout JWT, when one bound it (its transaction id is then the
    // checkout's hash), and the payment provider's receipt JWT its report carried.
    "ALTER TABLE payment ADD COLUMN checkout TEXT;
    ALTER TABLE payment ADD COLUMN receipt TEXT;",
    // 13: the payments waiting for an operator, newest first, without reading the rest: only a
    // held payment enters this index, so an authorization or a denial never writes to it.
    "CREATE INDEX payment_pending ON payment (seq) WHERE status = 'pending';",
];

/// A step's work beyond its SQL: (step number, work), run in the step's transaction after it.
type StepWork = (usize, fn(&Connection) -> Result<(), StoreError>);

const STEP_WORK: &[StepWork] = &[(6, renumber_hashes), (8, retired_key_history)];

/// Schema step 8: the keys of agents retired before the key history existed, with the time of
/// their last change as the end of their window.
fn retired_key_history(conn: &Connection) -> Result<(), StoreError> {
    let mut read = conn.prepare(
        "SELECT id, instance_id, public_key, created_at, updated_at FROM agent WHERE status = 'retired'",
    )?;
    let rows = read.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, Vec<u8>>(2)?,
            r.get::<_, i64>(3)?,
            r.get::<_, i64>(4)?,
        ))
    })?;
    for row in rows {
        let (id, instance, public, created, updated) = row?;
        let key = PublicKey::from_sec1(&public)
            .map_err(|e| StoreError::Corrupt(format!("agent {id}: {e}")))?;
        conn.execute(
            "INSERT OR IGNORE INTO key_history (kid, role, agent_id, instance_id, public_key, not_before, not_after)
             VALUES (?1, 'agent', ?2, ?3, ?4, ?5, ?6)",
            params![key.thumbprint(), id, instance, public, created, updated],
        )?;
    }
    Ok(())
}

/// A key that stopped signing, as the key set's history publishes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PastKey {
    /// `issuer`, `log` or `agent`.
    pub role: String,
    /// The agent, for an agent's key.
    pub agent: Option<String>,
    /// The agent's instance the key belonged to.
    pub instance: Option<String>,
    /// The public key.
    pub public: PublicKey,
    /// Unix seconds: when it began signing.
    pub not_before: i64,
    /// Unix seconds: when it stopped.
    pub not_after: i64,
    /// Unix seconds: the end of a rotated daemon key's overlap.
    pub overlap_until: Option<i64>,
    /// The evidence entry that rotated or retired it.
    pub log_index: Option<u64>,
}

/// The log key in force at checkpoint size `from`, when a rotation has replaced it since: the
/// oldest rotated log key whose `key.rotated` entry is at index `from` or later. `None` when the
/// current log key was already in force.
pub fn log_key_at(c: &Connection, from: u64) -> Result<Option<PublicKey>, StoreError> {
    let from = i64::try_from(from).unwrap_or(i64::MAX);
    let key: Option<Vec<u8>> = c
        .query_row(
            "SELECT public_key FROM key_history WHERE role = 'log' AND log_index >= ?1
             ORDER BY log_index LIMIT 1",
            [from],
            |r| r.get(0),
        )
        .optional()?;
    key.map(|k| {
        PublicKey::from_sec1(&k).map_err(|e| StoreError::Corrupt(format!("past log key: {e}")))
    })
    .transpose()
}

/// Records a key that stopped signing (in a ledger job, with the entry that says so).
pub fn put_past_key(c: &Connection, k: &PastKey) -> Result<(), StoreError> {
    let r = c.execute(
        "INSERT INTO key_history (kid, role, agent_id, instance_id, public_key, not_before, not_after, overlap_until, log_index)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            k.public.thumbprint(),
            k.role,
            k.agent,
            k.instance,
            k.public.to_sec1(),
            k.not_before,
            k.not_after,
            k.overlap_until,
            k.log_index.map(|i| i64::try_from(i).unwrap_or(i64::MAX)),
        ],
    );
    constraint_is_exists(r)
}

/// Hands the daemon's `role` to `new` (in a ledger job, with its `key.rotated` entry) and
/// returns when the old key began signing.
pub fn replace_daemon_key(c: &Connection, role: &str, new: &KeyInfo) -> Result<i64, StoreError> {
    let since: i64 = c
        .query_row(
            "SELECT created_at FROM daemon_key WHERE role = ?1",
            [role],
            |r| r.get(0),
        )
        .optional()?
        .ok_or(StoreError::NotFound)?;
    let attributes =
        serde_json::to_string(&new.attributes).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    c.execute(
        "UPDATE daemon_key SET key_id = ?2, key_uri = ?3, public_key = ?4, attributes = ?5,
                               created_at = ?6, certification = ?7
         WHERE role = ?1",
        params![
            role,
            new.id.0,
            new.uri,
            new.public.to_sec1(),
            attributes,
            now(),
            certification_json(new)?
        ],
    )?;
    Ok(since)
}

/// Gives agent `agent.id` its new instance and key (in a ledger job, with its `agent.rotated`
/// entry): the certificate of the old key is dropped, the selectors and time replaced.
pub fn replace_agent_key(c: &Connection, agent: &Agent) -> Result<(), StoreError> {
    let selectors =
        serde_json::to_string(&agent.selectors).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let attributes = serde_json::to_string(&agent.key.attributes)
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let n = c.execute(
        "UPDATE agent SET instance_id = ?2, key_id = ?3, key_uri = ?4, public_key = ?5,
                          attributes = ?6, selectors = ?7, certificate = NULL,
                          certification = ?8, created_at = ?9, updated_at = ?9
         WHERE id = ?1 AND status != 'retired'",
        params![
            agent.id,
            agent.instance,
            agent.key.id.0,
            agent.key.uri,
            agent.key.public.to_sec1(),
            attributes,
            selectors,
            certification_json(&agent.key)?,
            agent.created_at
        ],
    )?;
    if n == 1 {
        Ok(())
    } else {
        Err(StoreError::NotFound)
    }
}

/// Schema step 6: moves the subtree hashes from `evidence_node`, keyed by (level, index), to
/// `evidence_hash`, keyed by post-order place, and drops the old table.
fn renumber_hashes(conn: &Connection) -> Result<(), StoreError> {
    let mut read = conn.prepare("SELECT level, idx, hash FROM evidence_node")?;
    let mut write = conn.prepare("INSERT INTO evidence_hash (pos, hash) VALUES (?1, ?2)")?;
    let mut rows = read.query([])?;
    while let Some(r) = rows.next()? {
        let (level, idx, hash): (u32, i64, Vec<u8>) = (r.get(0)?, r.get(1)?, r.get(2)?);
        let pos = u64::try_from(idx)
            .ok()
            .and_then(|i| crate::merkle::postorder(level, i))
            .and_then(|p| i64::try_from(p).ok())
            .ok_or_else(|| StoreError::Corrupt(format!("no place for node {level}/{idx}")))?;
        write.execute(params![pos, hash])?;
    }
    drop(rows);
    drop(read);
    drop(write);
    conn.execute_batch("DROP TABLE evidence_node")?;
    Ok(())
}

/// A voucher as the daemon keeps it, and as the `admin.voucher_*` methods show it
/// ([`crate::protocol::voucher::VoucherView`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredVoucher {
    /// The voucher's `jti`.
    pub id: String,
    /// base64url(SHA-256) of its segment as presented: the `sd_hash` a hop after it carries.
    pub digest: String,
    /// The agent it is for.
    pub agent: String,
    /// Digest of the parent voucher, for a delegation.
    pub parent: Option<String>,
    /// Where it stands.
    pub status: VoucherStatus,
    /// The budget constraint's limit, if the voucher has one.
    pub budget: Option<u64>,
    /// Minor units spent so far, delegations' spending included.
    pub spent: u64,
    /// Minor units carved out for delegations and not yet spent by them.
    pub reserved: u64,
    /// Payments authorized so far.
    pub payments: u64,
    /// Unix seconds.
    pub issued_at: i64,
    /// Unix seconds.
    pub expires_at: i64,
    /// Its SD-JWT segment as presented, JWS and disclosures (`voucher` on the wire).
    #[serde(rename = "voucher")]
    pub compact: String,
}

/// What voucher `?1` used since `?2`, the start of its current period: the amount (holds
/// included; a failed or refunded payment gives it back) and the count (a failed payment gives
/// it back). A periodic voucher is a leaf (never delegated): its payments are the ones decided
/// on it.
pub(crate) const PERIOD_USAGE: &str =
    "SELECT coalesce(sum(CASE WHEN outcome IS NULL OR outcome = 'succeeded'
                              THEN amount ELSE 0 END), 0),
            count(CASE WHEN outcome IS NULL OR outcome != 'failed' THEN 1 END)
     FROM payment
     WHERE voucher_id = ?1 AND status IN ('authorized', 'pending') AND created_at >= ?2";

/// Payments alike in everything [`Store::spending_snapshot`] tells apart: how many, and their
/// amount in minor units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentGroup {
    pub agent: String,
    pub voucher: String,
    pub currency: String,
    /// `pending`, `authorized`, `denied` or `void`.
    pub status: String,
    pub reason: Option<String>,
    /// Not failed, not refunded.
    pub spends: bool,
    /// The hour it was decided in, when since the `since` asked for.
    pub hour: Option<i64>,
    /// Decided since `day_start`.
    pub today: bool,
    /// Authorized, unreported, past its report deadline.
    pub overdue: bool,
    pub count: u64,
    /// Their amount in minor units; 0 for denials, whose amounts nothing allowed.
    pub amount: u64,
}

/// Why a state operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// SQLite failed.
    #[error("state database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A row holds something this build cannot read.
    #[error("state database holds a bad row: {0}")]
    Corrupt(String),
    /// The evidence tree's stored hashes are missing or unreadable.
    #[error("state database: the evidence tree: {0}")]
    Tree(#[from] crate::merkle::TreeError),
    /// The database was written by a newer build.
    #[error(
        "state database is at schema {found}, newer than this build's {known}; refusing to touch it"
    )]
    TooNew { found: i64, known: i64 },
    /// A row with this key already exists.
    #[error("already exists")]
    Exists,
    /// No row has this key.
    #[error("not found")]
    NotFound,
    /// The ledger's queue is full.
    #[error("the ledger queue is full")]
    Busy,
    /// A group commit failed; none of its jobs took effect. Every job of the group is told
    /// the same cause.
    #[error("commit failed: {0}")]
    Commit(#[source] std::sync::Arc<rusqlite::Error>),
    /// The ledger's writer has stopped; nothing more is written.
    #[error("the ledger thread has stopped")]
    Stopped,
    /// A thread of the ledger could not be started; names it.
    #[error("cannot start the {thread} thread: {source}")]
    Thread {
        thread: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// An entry was offered as durable with the commit of a group it was not written in.
    #[error(
        "entry {index} was recorded in group {recorded}, not in the committed group {committed}"
    )]
    WrongGroup {
        index: u64,
        recorded: u64,
        committed: u64,
    },
    /// A job was answered without having run: a fault of the writer.
    #[error("a ledger job was answered without having run")]
    NeverRan,
}

/// The open database.
#[derive(Debug)]
pub struct Store {
    conn: Mutex<Connection>,
    /// A second reading connection, opened on first use, for reads that scan a whole table
    /// ([`Store::spending_snapshot`]): they wait for each other, never for or against the calls
    /// that read a row or a proof on `conn`.
    reports: Mutex<Option<Connection>>,
    path: std::path::PathBuf,
}

impl Store {
    /// Opens (creating if needed) and migrates the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        migrate(&mut conn)?;
        Ok(Self {
            conn: Mutex::new(conn),
            reports: Mutex::new(None),
            path: path.to_path_buf(),
        })
    }

    /// Runs `f` on the reports connection (see [`Store`]), opening it read-only if needed.
    fn report<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut reports = self
            .reports
            .lock()
            .map_err(|_| StoreError::Corrupt("database lock poisoned".into()))?;
        if reports.is_none() {
            let conn = Connection::open_with_flags(
                &self.path,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                    | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            conn.busy_timeout(std::time::Duration::from_secs(5))?;
            *reports = Some(conn);
        }
        match reports.as_ref() {
            Some(conn) => f(conn),
            None => Err(StoreError::Corrupt("no reports connection".into())),
        }
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self
            .conn
            .lock()
            .map_err(|_| StoreError::Corrupt("database lock poisoned".into()))?;
        f(&mut conn)
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        self.with(|c| Ok(c.pragma_query_value(None, "user_version", |r| r.get(0))?))
    }

    /// Adds an agent. Fails with [`StoreError::Exists`] if the id or instance is taken.
    pub fn insert_agent(&self, agent: &Agent) -> Result<(), StoreError> {
        self.with(|c| insert_agent(c, agent))
    }

    /// Sets an agent's status.
    pub fn set_status(&self, id: &str, status: AgentStatus) -> Result<(), StoreError> {
        self.with(|c| set_agent_status(c, id, status))
    }

    /// Runs `f` on the reading connection (committed state only).
    pub fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.with(|c| f(c))
    }

    /// Every agent, retired ones included, by id.
    pub fn agents(&self) -> Result<Vec<Agent>, StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT id, instance_id, user_id, key_id, key_uri, public_key, attributes, selectors,
                        status, certificate, created_at, certification
                 FROM agent ORDER BY id",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Vec<u8>>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, Vec<u8>>(5)?,
                    r.get::<_, String>(6)?,
                    r.get::<_, String>(7)?,
                    r.get::<_, String>(8)?,
                    r.get::<_, Option<String>>(9)?,
                    r.get::<_, i64>(10)?,
                    r.get::<_, Option<String>>(11)?,
                ))
            })?;
            let mut agents = Vec::new();
            for row in rows {
                let (id, instance, user, key_id, uri, public, attributes, selectors, status, certificate, created_at, certification) =
                    row?;
                let key = key_info(key_id, uri, &public, &attributes, certification.as_deref())?;
                let selectors: Selectors =
                    serde_json::from_str(&selectors).map_err(|e| StoreError::Corrupt(format!("agent {id}: {e}")))?;
                let status = AgentStatus::parse(&status)
                    .ok_or_else(|| StoreError::Corrupt(format!("agent {id}: status {status:?}")))?;
                agents.push(Agent { id, instance, user, key, selectors, status, certificate, created_at });
            }
            Ok(agents)
        })
    }

    /// The daemon's own key for `role` (`issuer`, `log`), if created.
    pub fn daemon_key(&self, role: &str) -> Result<Option<KeyInfo>, StoreError> {
        self.with(|c| {
            let row = c
                .query_row(
                    "SELECT key_id, key_uri, public_key, attributes, certification FROM daemon_key WHERE role = ?1",
                    [role],
                    |r| {
                        Ok((
                            r.get::<_, Vec<u8>>(0)?,
                            r.get(1)?,
                            r.get::<_, Vec<u8>>(2)?,
                            r.get::<_, String>(3)?,
                            r.get::<_, Option<String>>(4)?,
                        ))
                    },
                )
                .optional()?;
            row.map(|(id, uri, public, attributes, cert)| key_info(id, uri, &public, &attributes, cert.as_deref()))
                .transpose()
        })
    }

    /// The log's Ed25519 note key, if created.
    pub fn log_ed25519_key(&self) -> Result<Option<Ed25519Info>, StoreError> {
        self.with(|c| {
            let row = c
                .query_row(
                    "SELECT key_id, key_uri, public_key FROM log_ed25519_key",
                    [],
                    |r| {
                        Ok((
                            r.get::<_, Vec<u8>>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, Vec<u8>>(2)?,
                        ))
                    },
                )
                .optional()?;
            row.map(|(id, uri, public)| {
                Ok(Ed25519Info {
                    id: KeyId(id),
                    uri,
                    public: public.try_into().map_err(|_| {
                        StoreError::Corrupt("the log's Ed25519 key is not 32 bytes".into())
                    })?,
                })
            })
            .transpose()
        })
    }

    /// Records the log's Ed25519 note key.
    pub fn put_log_ed25519_key(&self, key: &Ed25519Info) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO log_ed25519_key (one, key_id, key_uri, public_key, created_at)
                 VALUES (1, ?1, ?2, ?3, ?4)",
                params![key.id.0, key.uri, key.public.as_slice(), now()],
            )?;
            Ok(())
        })
    }

    /// Unix seconds when the daemon's key for `role` began signing.
    pub fn daemon_key_since(&self, role: &str) -> Result<Option<i64>, StoreError> {
        self.with(|c| {
            Ok(c.query_row(
                "SELECT created_at FROM daemon_key WHERE role = ?1",
                [role],
                |r| r.get(0),
            )
            .optional()?)
        })
    }

    /// Every key that stopped signing, oldest first.
    pub fn past_keys(&self) -> Result<Vec<PastKey>, StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT role, agent_id, instance_id, public_key, not_before, not_after, overlap_until, log_index
                 FROM key_history ORDER BY not_after, kid",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, Vec<u8>>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, Option<i64>>(6)?,
                    r.get::<_, Option<i64>>(7)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (role, agent, instance, public, not_before, not_after, overlap_until, index) =
                    row?;
                let public = PublicKey::from_sec1(&public)
                    .map_err(|e| StoreError::Corrupt(format!("past {role} key: {e}")))?;
                out.push(PastKey {
                    role,
                    agent,
                    instance,
                    public,
                    not_before,
                    not_after,
                    overlap_until,
                    log_index: index.and_then(|i| u64::try_from(i).ok()),
                });
            }
            Ok(out)
        })
    }

    /// Records the daemon's key for `role`.
    pub fn put_daemon_key(&self, role: &str, key: &KeyInfo) -> Result<(), StoreError> {
        let attributes = serde_json::to_string(&key.attributes)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let certification = certification_json(key)?;
        self.with(|c| {
            c.execute(
                "INSERT INTO daemon_key (role, key_id, key_uri, public_key, attributes, created_at, certification)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    role,
                    key.id.0,
                    key.uri,
                    key.public.to_sec1(),
                    attributes,
                    now(),
                    certification
                ],
            )?;
            Ok(())
        })
    }
}

/// Adds an agent. Fails with [`StoreError::Exists`] if the id or instance is taken.
pub fn insert_agent(c: &Connection, agent: &Agent) -> Result<(), StoreError> {
    let selectors =
        serde_json::to_string(&agent.selectors).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let attributes = serde_json::to_string(&agent.key.attributes)
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let certification = certification_json(&agent.key)?;
    let r = c.execute(
        "INSERT INTO agent (id, instance_id, user_id, key_id, key_uri, public_key, attributes,
                            selectors, status, certificate, created_at, updated_at, certification)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11, ?12)",
        params![
            agent.id,
            agent.instance,
            agent.user,
            agent.key.id.0,
            agent.key.uri,
            agent.key.public.to_sec1(),
            attributes,
            selectors,
            agent.status.as_str(),
            agent.certificate,
            now(),
            certification
        ],
    );
    constraint_is_exists(r)
}

/// Sets an agent's status.
pub fn set_agent_status(c: &Connection, id: &str, status: AgentStatus) -> Result<(), StoreError> {
    let n = c.execute(
        "UPDATE agent SET status = ?2, updated_at = ?3 WHERE id = ?1",
        params![id, status.as_str(), now()],
    )?;
    if n == 1 {
        Ok(())
    } else {
        Err(StoreError::NotFound)
    }
}

/// Forgets a retired agent's key id. On a TPM the id is the key's only copy (its wrapped blob),
/// so this is what destroys the key; on PKCS#11 it drops a dangling reference.
pub fn forget_key(c: &Connection, id: &str) -> Result<(), StoreError> {
    c.execute(
        "UPDATE agent SET key_id = x'', updated_at = ?2 WHERE id = ?1 AND status = 'retired'",
        params![id, now()],
    )?;
    Ok(())
}

impl Store {
    /// Records a newly issued voucher.
    pub fn insert_voucher(&self, v: &StoredVoucher) -> Result<(), StoreError> {
        self.with(|c| insert_voucher(c, v))
    }

    /// Vouchers, newest first; only those of `agent` when given.
    pub fn vouchers(&self, agent: Option<&str>) -> Result<Vec<StoredVoucher>, StoreError> {
        self.with(|c| select_vouchers(c, "agent_id = ?1 OR ?1 IS NULL", agent))
    }

    /// The voucher with this id or digest.
    pub fn voucher(&self, id_or_digest: &str) -> Result<Option<StoredVoucher>, StoreError> {
        self.with(|c| voucher(c, id_or_digest))
    }

    /// Every voucher and the payment table in groups, for `admin.spending`, read in one
    /// transaction so the two agree. The payments are read in one pass, however many figures
    /// are drawn from them: grouped by agent, voucher, currency, status and reason, and by what
    /// the figures tell apart: whether the amount counts as spent (not failed, not refunded),
    /// the hour it was decided in if that is since `since`, whether it was decided since
    /// `day_start`, and whether its report is overdue at `now`.
    pub fn spending_snapshot(
        &self,
        now: i64,
        day_start: i64,
        since: i64,
    ) -> Result<(Vec<StoredVoucher>, Vec<PaymentGroup>), StoreError> {
        self.report(|c| {
            let tx = c.unchecked_transaction()?;
            let vouchers = select_vouchers(&tx, "?1 IS NULL", None)?;
            let mut stmt = c.prepare_cached(
                "SELECT agent_id, voucher_id, currency, status, reason,
                        outcome IS NULL OR outcome = 'succeeded',
                        CASE WHEN t >= ?1 THEN t - t % 3600 END,
                        t >= ?2,
                        status = 'authorized' AND outcome IS NULL AND report_deadline < ?3,
                        count(*), total(CASE WHEN status != 'denied' THEN amount END)
                 FROM (SELECT agent_id, voucher_id, currency, status, reason, outcome,
                              report_deadline, amount, coalesce(decided_at, created_at) AS t
                       FROM payment)
                 GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9",
            )?;
            let rows = stmt.query_map(params![since, day_start, now], |r| {
                Ok(PaymentGroup {
                    agent: r.get(0)?,
                    voucher: r.get(1)?,
                    currency: r.get(2)?,
                    status: r.get(3)?,
                    reason: r.get(4)?,
                    spends: r.get(5)?,
                    hour: r.get(6)?,
                    today: r.get(7)?,
                    overdue: r.get::<_, Option<bool>>(8)?.unwrap_or(false),
                    count: r.get::<_, i64>(9)?.try_into().unwrap_or(0),
                    // A float sum never overflows; below 2^53 minor units (all a budget
                    // allows) it is exact, and above it saturates.
                    amount: r.get::<_, f64>(10)? as u64,
                })
            })?;
            let groups = rows.collect::<Result<_, _>>()?;
            drop(stmt);
            tx.commit()?;
            Ok((vouchers, groups))
        })
    }

    /// What a periodic voucher used since `start`, its period's beginning, as the ledger counts
    /// it: the amount (holds included, failed and refunded payments given back), the count, and
    /// of the amount what is held for confirmation.
    pub fn period_usage(&self, voucher: &str, start: i64) -> Result<(u64, u64, u64), StoreError> {
        self.report(|c| {
            let tx = c.unchecked_transaction()?;
            let (used, count) =
                tx.prepare_cached(PERIOD_USAGE)?
                    .query_row(params![voucher, start], |r| {
                        Ok((
                            r.get::<_, i64>(0)?.try_into().unwrap_or(0),
                            r.get::<_, i64>(1)?.try_into().unwrap_or(0),
                        ))
                    })?;
            // Through the held payments' own index, which names its condition.
            let held: f64 = tx
                .prepare_cached(
                    "SELECT total(amount) FROM payment
                     WHERE status = 'pending' AND voucher_id = ?1 AND created_at >= ?2",
                )?
                .query_row(params![voucher, start], |r| r.get(0))?;
            tx.commit()?;
            Ok((used, count, held as u64))
        })
    }

    /// Vouchers by state at `now`: `active`, `expired` (active but past its end) and `revoked`.
    pub fn voucher_counts(&self, now: i64) -> Result<BTreeMap<VoucherStatus, i64>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT CASE WHEN status = 'active' AND expires_at <= ?1 THEN 'expired' ELSE status END,
                        count(*)
                 FROM voucher GROUP BY 1",
            )?;
            let rows =
                stmt.query_map([now], |r| Ok((r.get::<_, VoucherStatus>(0)?, r.get::<_, i64>(1)?)))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// External issuers by name.
    /// Registered counterparties, `(role, name, key)` by role then name; only `role`'s if given.
    pub fn counterparties(
        &self,
        role: Option<&str>,
    ) -> Result<Vec<(String, String, PublicKey)>, StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT role, name, jwk FROM counterparty WHERE ?1 IS NULL OR role = ?1 \
                 ORDER BY role, name",
            )?;
            let rows = stmt.query_map([role], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (role, name, jwk) = row?;
                let key = crate::jose::Jwk::from_json(&jwk)
                    .and_then(|j| j.to_public_key())
                    .map_err(|e| StoreError::Corrupt(format!("{role} {name}: {e}")))?;
                out.push((role, name, key));
            }
            Ok(out)
        })
    }

    pub fn issuers(&self) -> Result<Vec<(String, PublicKey)>, StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare("SELECT name, jwk FROM issuer ORDER BY name")?;
            let rows =
                stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
            let mut out = Vec::new();
            for row in rows {
                let (name, jwk) = row?;
                let key = crate::jose::Jwk::from_json(&jwk)
                    .and_then(|j| j.to_public_key())
                    .map_err(|e| StoreError::Corrupt(format!("issuer {name}: {e}")))?;
                out.push((name, key));
            }
            Ok(out)
        })
    }
}

/// Stores an imported certificate for agent `id` (in a ledger job, with its entry).
pub fn set_certificate(c: &Connection, id: &str, pem: &str) -> Result<(), StoreError> {
    let n = c.execute(
        "UPDATE agent SET certificate = ?2, updated_at = ?3 WHERE id = ?1",
        params![id, pem, now()],
    )?;
    if n == 1 {
        Ok(())
    } else {
        Err(StoreError::NotFound)
    }
}

/// Registers an external issuer's key under `name` (in a ledger job, with its entry).
pub fn insert_issuer(c: &Connection, name: &str, key: &PublicKey) -> Result<(), StoreError> {
    let jwk =
        serde_json::to_string(&key.to_jwk()).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let r = c.execute(
        "INSERT INTO issuer (name, kid, jwk, added_at) VALUES (?1, ?2, ?3, ?4)",
        params![name, key.thumbprint(), jwk, now()],
    );
    constraint_is_exists(r)
}

/// Registers a counterparty's key (in a ledger job, with its entry).
pub fn insert_counterparty(
    c: &Connection,
    role: &str,
    name: &str,
    key: &PublicKey,
) -> Result<(), StoreError> {
    let jwk =
        serde_json::to_string(&key.to_jwk()).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let r = c.execute(
        "INSERT INTO counterparty (role, name, kid, jwk, added_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![role, name, key.thumbprint(), jwk, now()],
    );
    constraint_is_exists(r)
}

/// Removes a counterparty (in a ledger job, with its entry); the key it had.
pub fn remove_counterparty(
    c: &Connection,
    role: &str,
    name: &str,
) -> Result<PublicKey, StoreError> {
    let jwk: Option<String> = c
        .query_row(
            "SELECT jwk FROM counterparty WHERE role = ?1 AND name = ?2",
            [role, name],
            |r| r.get(0),
        )
        .optional()?;
    let key = jwk.ok_or(StoreError::NotFound).and_then(|j| {
        crate::jose::Jwk::from_json(&j)
            .and_then(|j| j.to_public_key())
            .map_err(|e| StoreError::Corrupt(format!("{role} {name}: {e}")))
    })?;
    c.execute(
        "DELETE FROM counterparty WHERE role = ?1 AND name = ?2",
        [role, name],
    )?;
    Ok(key)
}

/// Removes an external issuer (in a ledger job, with its entry); the key it had.
pub fn remove_issuer(c: &Connection, name: &str) -> Result<PublicKey, StoreError> {
    let jwk: Option<String> = c
        .query_row("SELECT jwk FROM issuer WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .optional()?;
    let key = jwk.ok_or(StoreError::NotFound).and_then(|j| {
        crate::jose::Jwk::from_json(&j)
            .and_then(|j| j.to_public_key())
            .map_err(|e| StoreError::Corrupt(format!("issuer {name}: {e}")))
    })?;
    c.execute("DELETE FROM issuer WHERE name = ?1", [name])?;
    Ok(key)
}

fn constraint_is_exists(r: rusqlite::Result<usize>) -> Result<(), StoreError> {
    match r {
        Ok(_) => Ok(()),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            Err(StoreError::Exists)
        }
        Err(e) => Err(e.into()),
    }
}

/// Declares a state enum stored as its name in a TEXT column: `as_str`, `parse`, `ALL`, JSON
/// as the name, and `ToSql`/`FromSql`, so a row with any other text reads as an error rather
/// than as a state nobody handles.
macro_rules! stored_state {
    ($(#[$m:meta])* $vis:vis enum $name:ident { $($(#[$vm:meta])* $var:ident => $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        $vis enum $name { $($(#[$vm])* $var),+ }

        impl $name {
            /// Every state.
            pub const ALL: &[Self] = &[$(Self::$var),+];

            /// The state's name, as stored and shown.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$var => $text),+ }
            }

            /// The state named `text`.
            pub fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some(Self::$var),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::parse(&text).ok_or_else(|| {
                    serde::de::Error::custom(format!("{text:?} is not a {}", stringify!($name)))
                })
            }
        }

        impl rusqlite::types::ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                Ok(self.as_str().into())
            }
        }

        impl rusqlite::types::FromSql for $name {
            fn column_result(
                value: rusqlite::types::ValueRef<'_>,
            ) -> rusqlite::types::FromSqlResult<Self> {
                let text = value.as_str()?;
                Self::parse(text).ok_or_else(|| {
                    rusqlite::types::FromSqlError::Other(
                        format!("{text:?} is not a {}", stringify!($name)).into(),
                    )
                })
            }
        }
    };
}
pub(crate) use stored_state;

stored_state! {
    /// Where a voucher stands. `Expired` is never stored: listings compute it for an active
    /// voucher past its end.
    pub enum VoucherStatus {
        /// Spendable within its limits.
        Active => "active",
        /// Revoked by an operator.
        Revoked => "revoked",
        /// Active but past its end (listings only).
        Expired => "expired",
    }
}

/// Inserts a voucher row (status active, nothing spent).
pub(crate) fn insert_voucher(c: &Connection, v: &StoredVoucher) -> Result<(), StoreError> {
    let budget = v
        .budget
        .map(i64::try_from)
        .transpose()
        .map_err(|_| StoreError::Corrupt("budget too large".into()))?;
    let r = c.execute(
        "INSERT INTO voucher (id, digest, agent_id, compact, parent, status, issued_at, expires_at, budget)
         VALUES (?1, ?2, ?3, ?4, ?5, 'active', ?6, ?7, ?8)",
        params![v.id, v.digest, v.agent, v.compact, v.parent, v.issued_at, v.expires_at, budget],
    );
    constraint_is_exists(r)
}

/// Takes the next place in the voucher status list (in a ledger job of its own, committed before
/// the voucher that carries it is signed). Places are never handed out twice.
pub(crate) fn allocate_status_index(c: &Connection) -> Result<u64, StoreError> {
    let idx: i64 = c.query_row(
        "INSERT INTO status_index (idx, allocated_at)
         SELECT coalesce(max(idx) + 1, 0), ?1 FROM status_index
         RETURNING idx",
        [now()],
        |r| r.get(0),
    )?;
    u64::try_from(idx).map_err(|_| StoreError::Corrupt(format!("status index {idx}")))
}

/// Records the status list place of voucher `id` (in the job that stores the voucher).
pub(crate) fn set_status_index(c: &Connection, id: &str, idx: u64) -> Result<(), StoreError> {
    let idx = i64::try_from(idx).map_err(|_| StoreError::Corrupt(format!("status index {idx}")))?;
    let n = c.execute(
        "UPDATE voucher SET status_idx = ?2 WHERE id = ?1",
        params![id, idx],
    )?;
    if n == 1 {
        Ok(())
    } else {
        Err(StoreError::NotFound)
    }
}

/// One voucher's place in the status list, with what decides its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusEntry {
    /// Its index.
    pub idx: u64,
    /// The voucher's own state.
    pub voucher: VoucherStatus,
    /// Its agent's.
    pub agent: AgentStatus,
}

/// The vouchers with a place in the status list, and one past the highest place handed out.
pub(crate) fn status_entries(c: &Connection) -> Result<(u64, Vec<StatusEntry>), StoreError> {
    let count = |n: i64| u64::try_from(n).map_err(|_| StoreError::Corrupt(format!("index {n}")));
    let next: i64 = c.query_row(
        "SELECT coalesce(max(idx) + 1, 0) FROM status_index",
        [],
        |r| r.get(0),
    )?;
    let mut stmt = c.prepare_cached(
        "SELECT v.status_idx, v.status, a.status FROM voucher v JOIN agent a ON a.id = v.agent_id
         WHERE v.status_idx IS NOT NULL",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, VoucherStatus>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (idx, voucher, agent) = row?;
        let agent = AgentStatus::parse(&agent)
            .ok_or_else(|| StoreError::Corrupt(format!("agent status {agent:?}")))?;
        out.push(StatusEntry {
            idx: count(idx)?,
            voucher,
            agent,
        });
    }
    Ok((count(next)?, out))
}

/// The voucher with this id or digest.
pub(crate) fn voucher(
    c: &Connection,
    id_or_digest: &str,
) -> Result<Option<StoredVoucher>, StoreError> {
    Ok(select_vouchers(c, "id = ?1 OR digest = ?1", Some(id_or_digest))?.pop())
}

fn select_vouchers(
    c: &Connection,
    filter: &str,
    arg: Option<&str>,
) -> Result<Vec<StoredVoucher>, StoreError> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT id, digest, agent_id, compact, status, spent, payments, issued_at, expires_at,
                parent, budget, reserved
         FROM voucher WHERE {filter} ORDER BY issued_at DESC, rowid DESC"
    ))?;
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    let rows = stmt.query_map([arg], |r| {
        Ok(StoredVoucher {
            id: r.get(0)?,
            digest: r.get(1)?,
            agent: r.get(2)?,
            compact: r.get(3)?,
            status: r.get(4)?,
            spent: count(r.get(5)?),
            payments: count(r.get(6)?),
            issued_at: r.get(7)?,
            expires_at: r.get(8)?,
            parent: r.get(9)?,
            budget: r.get::<_, Option<i64>>(10)?.map(count),
            reserved: count(r.get(11)?),
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

fn key_info(
    id: Vec<u8>,
    uri: String,
    public: &[u8],
    attributes: &str,
    certification: Option<&str>,
) -> Result<KeyInfo, StoreError> {
    let public =
        PublicKey::from_sec1(public).map_err(|e| StoreError::Corrupt(format!("key {uri}: {e}")))?;
    let attributes: KeyAttributes = serde_json::from_str(attributes)
        .map_err(|e| StoreError::Corrupt(format!("key {uri}: {e}")))?;
    Ok(KeyInfo {
        id: KeyId(id),
        certification: certification
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("key {uri}: certification: {e}")))?,
        uri,
        public,
        attributes,
    })
}

fn certification_json(key: &KeyInfo) -> Result<Option<String>, StoreError> {
    key.certification
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    migrate_to(conn, MIGRATIONS.len())
}

/// Runs the steps after the database's version up to step `last`.
fn migrate_to(conn: &mut Connection, last: usize) -> Result<(), StoreError> {
    let current: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let known = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
    if current > known {
        return Err(StoreError::TooNew {
            found: current,
            known,
        });
    }
    for (n, step) in MIGRATIONS
        .iter()
        .enumerate()
        .take(last)
        .skip(usize::try_from(current).unwrap_or(0))
    {
        let tx = conn.transaction()?;
        tx.execute_batch(step)?;
        for (_, work) in STEP_WORK.iter().filter(|(k, _)| *k == n + 1) {
            work(&tx)?;
        }
        tx.pragma_update(
            None,
            "user_version",
            i64::try_from(n + 1).unwrap_or(i64::MAX),
        )?;
        tx.commit()?;
        tracing::info!(version = n + 1, "state database migrated");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    /// A log written under schema step 5 (hashes keyed by level and index) reads the same
    /// after step 6 moved them: every root and proof, and appends carry on from it.
    #[test]
    fn step_6_moves_the_subtree_hashes_and_the_log_reads_the_same() {
        use crate::{ledger::log, merkle};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let mut conn = Connection::open(&path).unwrap();
        migrate_to(&mut conn, 5).unwrap();
        let mut mem = merkle::MemoryTree::new();
        let mut f = merkle::Frontier::new();
        for i in 0..77u64 {
            let entry = format!("entry {i}");
            let leaf = merkle::leaf_hash(entry.as_bytes());
            conn.execute(
                "INSERT INTO evidence_entry (idx, kind, entry) VALUES (?1, 'test', ?2)",
                params![i as i64, entry.as_bytes()],
            )
            .unwrap();
            for (level, index, hash) in f.append(leaf) {
                conn.execute(
                    "INSERT INTO evidence_node (level, idx, hash) VALUES (?1, ?2, ?3)",
                    params![level, index as i64, hash.as_slice()],
                )
                .unwrap();
            }
            mem.push(leaf);
        }
        migrate(&mut conn).unwrap();
        let old: Option<String> = conn
            .query_row(
                "SELECT name FROM sqlite_schema WHERE name = 'evidence_node'",
                [],
                |r| r.get(0),
            )
            .optional()
            .unwrap();
        assert_eq!(old, None, "the old table is gone");
        let stored = log::StoredNodes(&conn);
        for n in 1..=77 {
            assert_eq!(merkle::root(&stored, n).unwrap(), mem.root(n).unwrap());
            for m in [0, n / 2, n - 1] {
                assert_eq!(
                    merkle::inclusion_proof(&stored, m, n).unwrap(),
                    merkle::inclusion_proof(&mem, m, n).unwrap()
                );
            }
        }
        let next = log::append(&conn, "test", b"entry 77").unwrap();
        mem.push(next.leaf);
        assert_eq!(next.index, 77);
        assert_eq!(merkle::root(&stored, 78).unwrap(), mem.root(78).unwrap());
    }

    /// The opcodes SQLite runs for `sql`.
    fn opcodes(c: &Connection, sql: &str) -> Vec<String> {
        let mut q = c.prepare(&format!("EXPLAIN {sql}")).unwrap();
        let mut rows = q.raw_query();
        let mut ops = Vec::new();
        while let Some(r) = rows.next().unwrap() {
            ops.push(r.get(1).unwrap());
        }
        ops
    }

    /// No table a payment or an evidence entry writes has a check that makes SQLite build a
    /// throwaway b-tree for the statement (what a constant `IN` list of three or more values
    /// does): not on insert, not on an update of any column.
    #[test]
    fn the_hot_tables_check_rows_without_building_a_btree() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state.db")).unwrap();
        let conn = store.conn.lock().unwrap();
        for table in [
            "payment",
            "voucher",
            "evidence_entry",
            "evidence_hash",
            "evidence_checkpoint",
        ] {
            let columns: Vec<String> = conn
                .prepare("SELECT name FROM pragma_table_info(?1)")
                .unwrap()
                .query_map([table], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            assert!(columns.len() > 1, "{table}");
            let insert = format!(
                "INSERT INTO {table} ({}) VALUES ({})",
                columns.join(", "),
                vec!["?"; columns.len()].join(", ")
            );
            let set: Vec<String> = columns.iter().map(|c| format!("{c} = ?")).collect();
            let update = format!("UPDATE {table} SET {} WHERE rowid = ?", set.join(", "));
            for sql in [insert, update] {
                let ops = opcodes(&conn, &sql);
                assert!(ops.iter().any(|o| o == "Insert"), "{sql}: {ops:?}");
                assert!(!ops.iter().any(|o| o == "OpenEphemeral"), "{sql}: {ops:?}");
            }
        }
    }

    /// Step 7 rebuilds the payment table: every row comes through unchanged and every rule
    /// still holds.
    #[test]
    fn step_7_keeps_every_payment_and_every_rule() {
        use rusqlite::types::Value;
        let dir = tempfile::tempdir().unwrap();
        let mut conn = Connection::open(dir.path().join("state.db")).unwrap();
        migrate_to(&mut conn, 6).unwrap();
        conn.execute_batch(
            "INSERT INTO agent (id, instance_id, user_id, key_id, key_uri, public_key, attributes,
                 selectors, status, created_at, updated_at)
             VALUES ('bot', 'i-1', 'alice', x'01', 'pkcs11:id=%01', x'04', '{}', '{}', 'active',
                 0, 0);
             INSERT INTO voucher (id, digest, agent_id, compact, status, issued_at, expires_at)
             VALUES ('v', 'd-v', 'bot', 'x~', 'active', 0, 10);",
        )
        .unwrap();
        let insert = |c: &Connection, seq: i64, tx: &str, status: &str, outcome: Option<&str>| {
            c.execute(
                "INSERT INTO payment (seq, id, voucher_id, agent_id, amount, currency, payee,
                     category, transaction_id, aud, nonce, facts, confirm, status, reason,
                     created_at, decided_at, report_deadline, outcome, reference, reported_at,
                     attestation, authorization)
                 VALUES (?1, 'p-' || ?1, 'v', 'bot', 10 * ?1, 'EUR', 'shop', NULL, ?2, 'aud',
                     'n-' || ?1, '{}', ?1 % 2, ?3, NULL, 100 + ?1, 200 + ?1, NULL, ?4,
                     'ref', NULL, 'att', 'jwt')",
                params![seq, tx, status, outcome],
            )
        };
        let rows = [
            (1, "t1", "authorized", Some("succeeded")),
            (2, "t2", "denied", None),
            (5, "t1", "void", None),
            (9, "t3", "pending", None),
            (12, "t4", "authorized", Some("refunded")),
        ];
        for (seq, tx, status, outcome) in rows {
            insert(&conn, seq, tx, status, outcome).unwrap();
        }
        let all = |c: &Connection| -> Vec<Vec<Value>> {
            let mut q = c.prepare("SELECT * FROM payment ORDER BY seq").unwrap();
            let n = q.column_count();
            q.query_map([], |r| (0..n).map(|i| r.get(i)).collect())
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        // Every index by name and definition (the automatic one for `id` has no SQL).
        let indexes = |c: &Connection| -> Vec<(String, Option<String>)> {
            c.prepare(
                "SELECT l.name, s.sql FROM pragma_index_list('payment') l
                 LEFT JOIN sqlite_schema s ON s.name = l.name ORDER BY l.name",
            )
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
        };
        let (before, before_indexes) = (all(&conn), indexes(&conn));
        assert_eq!((before.len(), before_indexes.len()), (5, 3));
        migrate(&mut conn).unwrap();
        // Later steps only add columns, empty for the rows already there.
        let width = before[0].len();
        let after = all(&conn);
        for row in &after {
            assert!(
                row[width..]
                    .iter()
                    .all(|v| *v == rusqlite::types::Value::Null)
            );
        }
        let after: Vec<_> = after.into_iter().map(|r| r[..width].to_vec()).collect();
        assert_eq!(after, before);
        // Step 7's indexes are kept; a later step adds one for held payments.
        let later: Vec<_> = indexes(&conn)
            .into_iter()
            .filter(|(name, _)| name != "payment_pending")
            .collect();
        assert_eq!(later, before_indexes);
        let name: Option<String> = conn
            .query_row(
                "SELECT name FROM sqlite_schema WHERE name = 'payment_7'",
                [],
                |r| r.get(0),
            )
            .optional()
            .unwrap();
        assert_eq!(name, None);
        // The rules: the allowed values, one open decision per checkout, rowids carry on.
        assert!(insert(&conn, 20, "t5", "approved", None).is_err());
        assert!(insert(&conn, 20, "t5", "authorized", Some("lost")).is_err());
        assert!(
            insert(&conn, 20, "t1", "pending", None).is_err(),
            "t1 is open"
        );
        insert(&conn, 20, "t1", "denied", None).unwrap();
        assert!(
            conn.execute("UPDATE payment SET confirm = 2 WHERE seq = 20", [])
                .is_err()
        );
        conn.execute(
            "INSERT INTO payment SELECT NULL, 'p-new', voucher_id, agent_id, amount, currency,
                 payee, category, 't6', aud, nonce, facts, confirm, status, reason, created_at,
                 decided_at, report_deadline, outcome, reference, reported_at, attestation,
                 authorization, checkout, receipt FROM payment WHERE seq = 2",
            [],
        )
        .unwrap();
        assert_eq!(conn.last_insert_rowid(), 21);
    }

    #[test]
    fn migrates_once_and_refuses_newer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let store = Store::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
        drop(store);
        let store = Store::open(&path).unwrap();
        assert!(store.agents().unwrap().is_empty());
        store
            .with(|c| Ok(c.pragma_update(None, "user_version", 99)?))
            .unwrap();
        drop(store);
        assert!(matches!(
            Store::open(&path),
            Err(StoreError::TooNew { found: 99, .. })
        ));
    }
}
