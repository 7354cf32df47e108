//! The daemon's durable state: one SQLite database in the state directory.
//!
//! WAL journal with `synchronous=FULL`, so a committed write survives power loss. The schema is
//! versioned with `PRAGMA user_version`: [`MIGRATIONS`] lists every step ever shipped, each run
//! once in its own transaction, in order; a database newer than this build is refused rather
//! than guessed at. Keys are referenced by their store id and public half; no private material
//! is ever written here.

use crate::backend::{KeyAttributes, KeyId, KeyInfo};
use crate::identity::{Agent, AgentStatus, Selectors};
use crate::jose::PublicKey;
use rusqlite::{Connection, OptionalExtension, params};
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
];

/// A voucher as the daemon keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredVoucher {
    /// The voucher's `jti`.
    pub id: String,
    /// Its digest.
    pub digest: String,
    /// The agent it is for.
    pub agent: String,
    /// The compact form.
    pub compact: String,
    /// `active` or `revoked`.
    pub status: String,
    /// Minor units spent so far.
    pub spent: u64,
    /// Payments authorized so far.
    pub payments: u64,
    /// Unix seconds.
    pub issued_at: i64,
    /// Unix seconds.
    pub expires_at: i64,
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
}

/// The open database.
#[derive(Debug)]
pub struct Store {
    conn: Mutex<Connection>,
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
        })
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
        let selectors = serde_json::to_string(&agent.selectors)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let attributes = serde_json::to_string(&agent.key.attributes)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.with(|c| {
            let t = now();
            let r = c.execute(
                "INSERT INTO agent (id, instance_id, user_id, key_id, key_uri, public_key, attributes,
                                    selectors, status, certificate, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11)",
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
                    t
                ],
            );
            match r {
                Ok(_) => Ok(()),
                Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::ConstraintViolation => {
                    Err(StoreError::Exists)
                }
                Err(e) => Err(e.into()),
            }
        })
    }

    /// Sets an agent's status.
    pub fn set_status(&self, id: &str, status: AgentStatus) -> Result<(), StoreError> {
        self.with(|c| {
            let n = c.execute(
                "UPDATE agent SET status = ?2, updated_at = ?3 WHERE id = ?1",
                params![id, status.as_str(), now()],
            )?;
            if n == 1 {
                Ok(())
            } else {
                Err(StoreError::NotFound)
            }
        })
    }

    /// Stores an agent's certificate (PEM).
    pub fn set_certificate(&self, id: &str, pem: &str) -> Result<(), StoreError> {
        self.with(|c| {
            let n = c.execute(
                "UPDATE agent SET certificate = ?2, updated_at = ?3 WHERE id = ?1",
                params![id, pem, now()],
            )?;
            if n == 1 {
                Ok(())
            } else {
                Err(StoreError::NotFound)
            }
        })
    }

    /// Every agent, retired ones included, by id.
    pub fn agents(&self) -> Result<Vec<Agent>, StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT id, instance_id, user_id, key_id, key_uri, public_key, attributes, selectors,
                        status, certificate, created_at
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
                ))
            })?;
            let mut agents = Vec::new();
            for row in rows {
                let (id, instance, user, key_id, uri, public, attributes, selectors, status, certificate, created_at) =
                    row?;
                let key = key_info(key_id, uri, &public, &attributes)?;
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
                    "SELECT key_id, key_uri, public_key, attributes FROM daemon_key WHERE role = ?1",
                    [role],
                    |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get(1)?, r.get::<_, Vec<u8>>(2)?, r.get::<_, String>(3)?)),
                )
                .optional()?;
            row.map(|(id, uri, public, attributes)| key_info(id, uri, &public, &attributes)).transpose()
        })
    }

    /// Records the daemon's key for `role`.
    pub fn put_daemon_key(&self, role: &str, key: &KeyInfo) -> Result<(), StoreError> {
        let attributes = serde_json::to_string(&key.attributes)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.with(|c| {
            c.execute(
                "INSERT INTO daemon_key (role, key_id, key_uri, public_key, attributes, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    role,
                    key.id.0,
                    key.uri,
                    key.public.to_sec1(),
                    attributes,
                    now()
                ],
            )?;
            Ok(())
        })
    }
}

impl Store {
    /// Records a newly issued voucher.
    pub fn insert_voucher(&self, v: &StoredVoucher) -> Result<(), StoreError> {
        self.with(|c| {
            let r = c.execute(
                "INSERT INTO voucher (id, digest, agent_id, compact, status, issued_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, 'active', ?5, ?6)",
                params![
                    v.id,
                    v.digest,
                    v.agent,
                    v.compact,
                    v.issued_at,
                    v.expires_at
                ],
            );
            match r {
                Ok(_) => Ok(()),
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == rusqlite::ErrorCode::ConstraintViolation =>
                {
                    Err(StoreError::Exists)
                }
                Err(e) => Err(e.into()),
            }
        })
    }

    /// Vouchers, newest first; only those of `agent` when given.
    pub fn vouchers(&self, agent: Option<&str>) -> Result<Vec<StoredVoucher>, StoreError> {
        self.select_vouchers("agent_id = ?1 OR ?1 IS NULL", agent)
    }

    /// The voucher with this id or digest.
    pub fn voucher(&self, id_or_digest: &str) -> Result<Option<StoredVoucher>, StoreError> {
        Ok(self
            .select_vouchers("id = ?1 OR digest = ?1", Some(id_or_digest))?
            .pop())
    }

    fn select_vouchers(
        &self,
        filter: &str,
        arg: Option<&str>,
    ) -> Result<Vec<StoredVoucher>, StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT id, digest, agent_id, compact, status, spent, payments, issued_at, expires_at
                 FROM voucher WHERE {filter} ORDER BY issued_at DESC, id"
            ))?;
            let rows = stmt.query_map([arg], |r| {
                Ok(StoredVoucher {
                    id: r.get(0)?,
                    digest: r.get(1)?,
                    agent: r.get(2)?,
                    compact: r.get(3)?,
                    status: r.get(4)?,
                    spent: u64::try_from(r.get::<_, i64>(5)?).unwrap_or(0),
                    payments: u64::try_from(r.get::<_, i64>(6)?).unwrap_or(0),
                    issued_at: r.get(7)?,
                    expires_at: r.get(8)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    /// Marks a voucher revoked. Revoking a revoked voucher is not an error.
    pub fn revoke_voucher(&self, id: &str) -> Result<(), StoreError> {
        self.with(|c| {
            let n = c.execute(
                "UPDATE voucher SET status = 'revoked', revoked_at = coalesce(revoked_at, ?2) WHERE id = ?1",
                params![id, now()],
            )?;
            if n == 1 { Ok(()) } else { Err(StoreError::NotFound) }
        })
    }
}

fn key_info(
    id: Vec<u8>,
    uri: String,
    public: &[u8],
    attributes: &str,
) -> Result<KeyInfo, StoreError> {
    let public =
        PublicKey::from_sec1(public).map_err(|e| StoreError::Corrupt(format!("key {uri}: {e}")))?;
    let attributes: KeyAttributes = serde_json::from_str(attributes)
        .map_err(|e| StoreError::Corrupt(format!("key {uri}: {e}")))?;
    Ok(KeyInfo {
        id: KeyId(id),
        uri,
        public,
        attributes,
    })
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
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
        .skip(usize::try_from(current).unwrap_or(0))
    {
        let tx = conn.transaction()?;
        tx.execute_batch(step)?;
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
    #![allow(clippy::unwrap_used)]
    use super::*;

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
