//! The ledger: every change to money (debits, holds, refunds, reservations for delegations,
//! revocations) and every entry of the evidence log goes through one writer thread that groups
//! concurrent transactions into one commit.
//!
//! A job is a closure run on the writer's own SQLite connection inside a savepoint of the current
//! group; a job that fails is rolled back alone. The group then commits once (WAL,
//! `synchronous=FULL`: one fsync for many decisions) and only then is each job's result handed
//! back. So a caller never sees a result that a crash could take back. A job may also tell a
//! part of its result early ([`Ledger::stage`]), before the commit: the payment path uses it to
//! compute the signature while the fsync runs.
//!
//! ## The proofs that let a signature leave
//!
//! Nothing an agent key or the issuer key signs may leave the daemon before the entry that
//! records it, and for a payment the debit, are durable. The types carry that rule:
//! - [`crate::policy::Allowed`] is minted only by a decision that found nothing wrong and is
//!   consumed by [`debit_allowed`], which mints a [`Debited`]; [`release_hold`] mints one for a
//!   held payment that an operator confirms (its amount was debited when it was held);
//! - [`Tx::record_signed`] appends the entry of a signed output (it names the SHA-256 of what the
//!   key signed) and mints a [`Recorded`], which carries the job's proof (a [`Debited`] for an
//!   authorization, `()` otherwise) and the number of the group it was written in;
//! - only the writer, once a group's `COMMIT` succeeded, mints that group's [`Commit`], which
//!   turns a [`Recorded`] of the same group into a [`Logged`];
//! - [`crate::seal::Withheld::release`] takes a [`Logged`] by value, of the right proof type and
//!   naming the same signed digest, and is the only way to the signed bytes.
//!
//! Because the one thread runs jobs one after another, a job's reads and writes are never
//! interleaved with another's: budgets are checked and debited atomically without row locks. The
//! queue is bounded; when full, callers are told to retry. The writer also checkpoints the log
//! between groups, so the WAL is rewritten from its start rather than grown: overwriting blocks
//! the file already has makes each commit's flush cheaper than extending the file.
//!
//! The SQL that jobs run for money is in [`money`] (re-exported here), so every rule about how
//! spending moves along a chain of vouchers is in one file; the log's tables (entries, tree
//! nodes, checkpoints) are in [`log`], and the pages an export is read in, and the directory it
//! is written to, in [`export`]. This file is the writer and the proofs its commits mint.

pub mod export;
pub mod log;
pub mod money;

pub use money::{
    Debited, Outcome, PaymentRow, PaymentStatus, debit_allowed, payment, payments, release_hold,
};
pub(crate) use money::{
    checkout_taken, credit, insert_payment, reserve, revoke, set_authorization, set_outcome,
    set_payment_status, usage,
};

use crate::evidence::entry::Draft;
use crate::merkle::{self, Hash};
use crate::store::StoreError;
use log::Appended;
use rusqlite::Connection;
use std::path::Path;
use std::sync::Arc;

/// The most jobs committed together.
pub const MAX_GROUP: usize = 256;

/// WAL pages after which the log is copied back into the database, so that it is rewritten from
/// its start instead of growing: rewriting blocks a file already has makes each commit's fsync
/// cheaper than extending the file. 4096 pages keep the log near 16 MiB.
///
/// The copy runs on a thread of its own ([`Checkpointer`]) while the writer goes on committing;
/// once it is done the writer copies, between two groups, the few pages committed meanwhile, so
/// the whole log is in the database and SQLite starts it again from the beginning at the next
/// commit. A copy done entirely by the writer stalled every commit for tens of milliseconds.
const CHECKPOINT_PAGES: i32 = 4096;

trait Work: Send {
    /// Runs the job: in a savepoint of its own, or with none when it is alone in its group
    /// (the writer then rolls the whole transaction back if it fails). Whether it succeeded.
    fn run(&mut self, tx: &Tx<'_>) -> bool;
    /// Hands the job its result: `commit` is the group's number once it is durable, or why
    /// the group's commit failed.
    fn finish(self: Box<Self>, commit: Result<u64, Arc<rusqlite::Error>>);
}

type JobFn<E, T> = Box<dyn for<'t> FnOnce(&Tx<'t>) -> Result<(E, T), StoreError> + Send>;

/// What a job runs on: the writer's connection and the evidence log that commits with it.
#[derive(Debug)]
pub struct Tx<'c> {
    conn: &'c Connection,
    origin: &'c str,
    /// The number of the group being run, which [`Recorded`] and [`Commit`] carry.
    group: std::cell::Cell<u64>,
    /// The log's end as this transaction has left it; `None` when it must be read again (after
    /// a failed commit).
    tip: &'c std::cell::RefCell<Option<log::Tip>>,
    /// Whether the job running is the only one in its group.
    alone: std::cell::Cell<bool>,
}

impl Tx<'_> {
    /// The writer's connection, for the state's SQL in this job's transaction.
    pub(crate) fn conn(&self) -> &Connection {
        self.conn
    }

    /// Appends the entry of a signed output to the evidence log in this job's transaction: the
    /// fact gains a `signed` member, the base64url SHA-256 that the key signed (`covers`), and
    /// the entry carries `proof` (a [`Debited`] for an authorization) to the commit.
    pub fn record_signed<P>(
        &self,
        mut draft: Draft,
        covers: [u8; 32],
        proof: P,
    ) -> Result<Recorded<P>, StoreError> {
        match draft.fact.as_object_mut() {
            Some(map) => {
                map.insert(
                    "signed".into(),
                    serde_json::Value::String(crate::jose::b64url(&covers)),
                );
            }
            None => {
                return Err(StoreError::Corrupt(
                    "the fact of a signed output is not a JSON object".into(),
                ));
            }
        }
        let at = self.record(&draft)?;
        Ok(Recorded {
            group: self.group.get(),
            index: at.index,
            leaf: at.leaf,
            covers,
            proof,
        })
    }

    /// Appends `draft` to the evidence log in this job's transaction: the entry is durable
    /// exactly when the change it records is. A fact that accompanies a signature is recorded
    /// with [`Tx::record_signed`] instead.
    pub fn record(&self, draft: &Draft) -> Result<Appended, StoreError> {
        let mut tip = self.tip.borrow_mut();
        let tip = match tip.as_mut() {
            Some(t) => t,
            None => tip.insert(log::Tip::read(self.conn)?),
        };
        log::append_after(self.conn, tip, self.origin, draft, crate::clock::unix_now())
    }

    /// The index the next entry recorded in this transaction will have.
    pub fn next_index(&self) -> Result<u64, StoreError> {
        let mut tip = self.tip.borrow_mut();
        Ok(match tip.as_ref() {
            Some(t) => t.size(),
            None => tip.insert(log::Tip::read(self.conn)?).size(),
        })
    }

    /// The log's origin line.
    pub fn origin(&self) -> &str {
        self.origin
    }

    /// Whether this job is the only one in its group: no other caller is waiting on the writer,
    /// so the group's commit is all that stands between this job and its answer.
    pub fn alone(&self) -> bool {
        self.alone.get()
    }
}

/// The log's size and root after a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Entries in the log.
    pub size: u64,
    /// RFC 9162 root of those entries.
    pub root: Hash,
}

fn head(conn: &Connection) -> Result<Head, StoreError> {
    let size = log::size(conn)?;
    Ok(Head {
        size,
        root: merkle::root(&log::StoredNodes(conn), size)?,
    })
}

/// What a job's caller receives once its group is durable.
type Reply<T> = Result<(T, Commit), StoreError>;

struct Task<E, T> {
    job: Option<JobFn<E, T>>,
    /// Told as soon as the job's savepoint is released, before the group commits.
    early: Option<tokio::sync::oneshot::Sender<E>>,
    result: Option<Result<T, StoreError>>,
    reply: tokio::sync::oneshot::Sender<Reply<T>>,
}

impl<E: Send + 'static, T: Send + 'static> Work for Task<E, T> {
    fn run(&mut self, tx: &Tx<'_>) -> bool {
        let Some(job) = self.job.take() else {
            return false;
        };
        let conn = tx.conn;
        // A job rolled back takes its entries with it.
        let tip = tx.tip.borrow().clone();
        let result = if tx.alone() {
            // No savepoint: it copies every page the job touches into a statement journal,
            // a large part of a small job's cost; the writer rolls the whole transaction
            // back instead if the job fails.
            let r = job(tx);
            if r.is_err() {
                *tx.tip.borrow_mut() = tip;
            }
            r
        } else {
            match sql(conn, "SAVEPOINT job") {
                Ok(()) => {
                    let r = job(tx);
                    let end = if r.is_ok() {
                        sql(conn, "RELEASE job")
                    } else {
                        *tx.tip.borrow_mut() = tip;
                        sql(conn, "ROLLBACK TO job").and_then(|()| sql(conn, "RELEASE job"))
                    };
                    match end {
                        Ok(()) => r,
                        Err(e) => {
                            // Where the savepoint left the log is unknown: read it again.
                            *tx.tip.borrow_mut() = None;
                            Err(e.into())
                        }
                    }
                }
                Err(e) => Err(e.into()),
            }
        };
        let ok = result.is_ok();
        self.result = Some(result.map(|(early, rest)| {
            if let Some(tell) = self.early.take() {
                let _ = tell.send(early);
            }
            rest
        }));
        ok
    }

    fn finish(self: Box<Self>, commit: Result<u64, Arc<rusqlite::Error>>) {
        let outcome = match (commit, self.result) {
            (Ok(group), Some(r)) => r.map(|t| (t, Commit { group })),
            (Err(why), _) => Err(StoreError::Commit(why)),
            (Ok(_), None) => Err(StoreError::NeverRan),
        };
        // The caller may have gone away; its result is durable regardless.
        let _ = self.reply.send(outcome);
    }
}

/// Runs one statement that returns no rows, prepared once per connection.
fn sql(conn: &Connection, statement: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(statement)?.execute([]).map(drop)
}

/// A job that has run but whose group may not be durable yet: `early` is what the job chose to
/// tell before the commit (never a proof of anything durable); the rest comes from
/// [`Staged::durable`] once the group is on disk.
#[derive(Debug)]
pub struct Staged<E, T> {
    pub early: E,
    pub rest: Rest<T>,
}

/// The rest of a staged job's result.
#[derive(Debug)]
pub struct Rest<T>(tokio::sync::oneshot::Receiver<Reply<T>>);

impl<T> Rest<T> {
    /// The job's result, once its group is durable, with the group's [`Commit`].
    pub async fn durable(self) -> Result<(T, Commit), StoreError> {
        self.0.await.map_err(|_| StoreError::Stopped)?
    }
}

impl<E, T> Staged<E, T> {
    /// The job's result, once its group is durable, with the group's [`Commit`].
    pub async fn durable(self) -> Result<(T, Commit), StoreError> {
        self.rest.durable().await
    }
}

/// Proof that a group of jobs is durable: minted only by the writer, after the group's `COMMIT`
/// succeeded, and handed with each job's result. It turns the [`Recorded`] entries of its own
/// group into [`Logged`] ones.
#[derive(Debug)]
pub struct Commit {
    group: u64,
}

impl Commit {
    /// The proof that `recorded`, appended by a job of this group, is durable.
    pub fn logged<P>(&self, recorded: Recorded<P>) -> Result<Logged<P>, StoreError> {
        if recorded.group != self.group {
            return Err(StoreError::WrongGroup {
                index: recorded.index,
                recorded: recorded.group,
                committed: self.group,
            });
        }
        Ok(Logged {
            index: recorded.index,
            leaf: recorded.leaf,
            covers: recorded.covers,
            proof: recorded.proof,
        })
    }
}

/// The entry of a signed output, appended in a job whose group is not known to be durable yet.
/// Only [`Tx::record_signed`] makes one; only the same group's [`Commit`] turns it into a
/// [`Logged`].
#[derive(Debug)]
#[must_use = "a recorded entry is worth something only once its commit turns it into Logged"]
pub struct Recorded<P> {
    group: u64,
    index: u64,
    leaf: Hash,
    covers: [u8; 32],
    proof: P,
}

/// Proof that the entry recording a signed output is durable in the evidence log, with the
/// proof `P` its job carried (a [`Debited`] for an authorization). What
/// [`crate::seal::Withheld::release`] takes, by value.
#[derive(Debug)]
pub struct Logged<P> {
    index: u64,
    leaf: Hash,
    covers: [u8; 32],
    proof: P,
}

impl<P> Logged<P> {
    /// The entry's index in the log.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// The entry's leaf hash.
    pub fn leaf(&self) -> Hash {
        self.leaf
    }

    /// The SHA-256 the key signed, as the entry names it.
    pub fn covers(&self) -> &[u8; 32] {
        &self.covers
    }

    /// The proof the job carried.
    pub fn proof(&self) -> &P {
        &self.proof
    }
}

/// The handle to the writer thread.
#[derive(Debug)]
pub struct Ledger {
    queue: crossbeam_channel::Sender<Box<dyn Work>>,
    heads: tokio::sync::watch::Receiver<Head>,
}

impl Ledger {
    /// Opens a writer connection to the (already migrated) database at `path` and starts the
    /// writer thread, which stops when the last handle is dropped. Entries are written for the
    /// log named `origin`.
    pub fn open(path: &Path, queue_depth: usize, origin: &str) -> Result<Self, StoreError> {
        Self::open_with(path, queue_depth, origin, CHECKPOINT_PAGES)
    }

    fn open_with(
        path: &Path,
        queue_depth: usize,
        origin: &str,
        checkpoint_pages: i32,
    ) -> Result<Self, StoreError> {
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // Every statement a job runs stays prepared.
        conn.set_prepared_statement_cache_capacity(64);
        // The writer checkpoints itself, between groups; a log that grew under a burst is
        // cut back when it restarts.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        conn.pragma_update(None, "journal_size_limit", 32 * 1024 * 1024)?;
        let pages = std::sync::Arc::new(std::sync::atomic::AtomicI32::new(0));
        let seen = pages.clone();
        conn.wal_hook(Some(move |_: &mut rusqlite::hooks::Wal, n| {
            seen.store(n, std::sync::atomic::Ordering::Relaxed);
            Ok(())
        }))?;
        let (queue, jobs) = crossbeam_channel::bounded::<Box<dyn Work>>(queue_depth.max(1));
        let (tell, heads) = tokio::sync::watch::channel(head(&conn)?);
        let origin = origin.to_string();
        let checkpointer = Checkpointer::start(path)?;
        std::thread::Builder::new()
            .name("ari-ledger".into())
            .spawn(move || {
                let writer = Writer {
                    conn: &conn,
                    origin: &origin,
                    pages: &pages,
                    checkpoint_pages,
                    heads: &tell,
                    checkpointer,
                };
                writer.serve(&jobs);
            })
            .map_err(|source| StoreError::Thread {
                thread: "ledger",
                source,
            })?;
        Ok(Self { queue, heads })
    }

    /// Jobs waiting for the writer.
    pub fn queue(&self) -> crate::backend::QueueDepth {
        crate::backend::QueueDepth::of(&self.queue)
    }

    /// The log's head after each commit that grew it; the first value is the head at open.
    pub fn heads(&self) -> tokio::sync::watch::Receiver<Head> {
        self.heads.clone()
    }

    /// Runs `job` in the next group commit and returns its result once the group is durable.
    /// A job's error rolls back only that job.
    pub async fn run<T: Send + 'static>(
        &self,
        job: impl for<'t> FnOnce(&Tx<'t>) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.commit(job).await.map(|(t, _)| t)
    }

    /// As [`Ledger::run`], with the group's [`Commit`]: for a job that recorded a signed output,
    /// whose [`Recorded`] entry the commit turns into the [`Logged`] proof its release takes.
    pub async fn commit<T: Send + 'static>(
        &self,
        job: impl for<'t> FnOnce(&Tx<'t>) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<(T, Commit), StoreError> {
        // Nothing is told early, so the caller is woken once, when the group is durable.
        let (reply, rest) = tokio::sync::oneshot::channel();
        self.enqueue(Box::new(Task {
            job: Some(Box::new(move |tx: &Tx<'_>| job(tx).map(|t| ((), t)))),
            early: None,
            result: None,
            reply,
        }))?;
        Rest(rest).durable().await
    }

    /// Runs `job` in the next group commit and returns as soon as it has run, with the part of
    /// its result it chose to tell early; the rest waits for the commit ([`Staged::durable`]).
    /// Lets a caller prepare work (a signature) during the fsync that it releases only after.
    pub async fn stage<E: Send + 'static, T: Send + 'static>(
        &self,
        job: impl for<'t> FnOnce(&Tx<'t>) -> Result<(E, T), StoreError> + Send + 'static,
    ) -> Result<Staged<E, T>, StoreError> {
        let (early, told) = tokio::sync::oneshot::channel();
        let (reply, rest) = tokio::sync::oneshot::channel();
        self.enqueue(Box::new(Task {
            job: Some(Box::new(job)),
            early: Some(early),
            result: None,
            reply,
        }))?;
        match told.await {
            Ok(early) => Ok(Staged {
                early,
                rest: Rest(rest),
            }),
            // The job failed (its error comes with the reply) or the thread stopped.
            Err(_) => match rest.await {
                Ok(Err(e)) => Err(e),
                Ok(Ok(_)) => Err(StoreError::NeverRan),
                Err(_) => Err(StoreError::Stopped),
            },
        }
    }

    /// Queues a job for the writer, or says at once why it cannot be.
    fn enqueue(&self, task: Box<dyn Work>) -> Result<(), StoreError> {
        match self.queue.try_send(task) {
            Ok(()) => Ok(()),
            Err(crossbeam_channel::TrySendError::Full(_)) => Err(StoreError::Busy),
            Err(crossbeam_channel::TrySendError::Disconnected(_)) => Err(StoreError::Stopped),
        }
    }
}

struct Writer<'a> {
    conn: &'a Connection,
    origin: &'a str,
    pages: &'a std::sync::atomic::AtomicI32,
    checkpoint_pages: i32,
    heads: &'a tokio::sync::watch::Sender<Head>,
    checkpointer: Checkpointer,
}

/// The thread that copies the WAL back into the database, on a connection of its own, when
/// the writer asks.
struct Checkpointer {
    ask: crossbeam_channel::Sender<()>,
    /// 0: idle; 1: copying; 2: done, the writer has the rest to copy.
    state: std::sync::Arc<std::sync::atomic::AtomicU8>,
}

const IDLE: u8 = 0;
const COPYING: u8 = 1;
const COPIED: u8 = 2;

impl Checkpointer {
    fn start(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        let (ask, asked) = crossbeam_channel::bounded::<()>(1);
        let state = std::sync::Arc::new(std::sync::atomic::AtomicU8::new(IDLE));
        let done = state.clone();
        std::thread::Builder::new()
            .name("ari-checkpoint".into())
            .spawn(move || {
                // Ends when the writer (the only sender) is gone.
                while asked.recv().is_ok() {
                    // Passive: neither readers nor the writer wait for it.
                    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    {
                        tracing::warn!(error = %e, "WAL checkpoint failed; will retry");
                    }
                    done.store(COPIED, std::sync::atomic::Ordering::Release);
                }
            })
            .map_err(|source| StoreError::Thread {
                thread: "checkpoint",
                source,
            })?;
        Ok(Self { ask, state })
    }
}

impl Writer<'_> {
    fn serve(&self, jobs: &crossbeam_channel::Receiver<Box<dyn Work>>) {
        let conn = self.conn;
        let tip = std::cell::RefCell::new(None);
        let tx = Tx {
            conn,
            origin: self.origin,
            group: std::cell::Cell::new(0),
            tip: &tip,
            alone: std::cell::Cell::new(false),
        };
        while let Ok(first) = jobs.recv() {
            // Every group gets a new number, so a Commit only vouches for its own entries.
            tx.group.set(tx.group.get().wrapping_add(1));
            let mut group = vec![first];
            while group.len() < MAX_GROUP {
                match jobs.try_recv() {
                    Ok(j) => group.push(j),
                    Err(_) => break,
                }
            }
            let started = std::time::Instant::now();
            let alone = group.len() == 1;
            tx.alone.set(alone);
            let commit = match sql(conn, "BEGIN IMMEDIATE") {
                Ok(()) => {
                    let mut ok = true;
                    for job in &mut group {
                        ok &= job.run(&tx);
                    }
                    if alone && !ok {
                        // The lone job failed and ran without a savepoint: undo it all. Its
                        // own error is its answer.
                        if let Err(e) = sql(conn, "ROLLBACK") {
                            tracing::error!(error = %e, "ledger rollback failed");
                            *tip.borrow_mut() = None;
                        }
                        Ok(())
                    } else {
                        sql(conn, "COMMIT").map_err(|e| {
                            let _ = sql(conn, "ROLLBACK");
                            Arc::new(e)
                        })
                    }
                }
                Err(e) => Err(Arc::new(e)),
            };
            match &commit {
                Ok(()) => crate::metrics::metrics().group_commit(group.len(), started.elapsed()),
                Err(why) => {
                    // What the group appended is gone; read the log's end again.
                    *tip.borrow_mut() = None;
                    tracing::error!(%why, jobs = group.len(), "ledger commit failed; nothing in the group took effect");
                }
            }
            let number = tx.group.get();
            for job in group {
                job.finish(commit.clone().map(|()| number));
            }
            if commit.is_ok() {
                self.publish_head(tip.borrow().as_ref());
            }
            self.checkpoint_wal();
        }
    }

    /// Tells the checkpoint signer the log's new head, if the group grew it; from the log's
    /// end as the writer keeps it, when it has it.
    fn publish_head(&self, tip: Option<&log::Tip>) {
        if let Some(t) = tip {
            if t.size() != self.heads.borrow().size {
                self.heads.send_replace(Head {
                    size: t.size(),
                    root: t.root(),
                });
            }
            return;
        }
        let size = match log::size(self.conn) {
            Ok(size) if size != self.heads.borrow().size => size,
            Ok(_) => return,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the log's size");
                return;
            }
        };
        match merkle::root(&log::StoredNodes(self.conn), size) {
            Ok(root) => {
                self.heads.send_replace(Head { size, root });
            }
            Err(e) => tracing::error!(error = %e, size, "cannot compute the log's root"),
        }
    }

    /// Between groups: asks the checkpointer to copy a log that has grown past the threshold,
    /// and once it has, copies the pages committed during its copy, so the log can start over.
    fn checkpoint_wal(&self) {
        use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
        match self.checkpointer.state.load(Acquire) {
            COPYING => {}
            COPIED => {
                // Passive: readers are never blocked; what they still hold is copied next time.
                match self
                    .conn
                    .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                        Ok((r.get::<_, i32>(1)?, r.get::<_, i32>(2)?))
                    }) {
                    Ok((log, done)) => self.pages.store(log - done, Relaxed),
                    Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed; will retry"),
                }
                self.checkpointer.state.store(IDLE, Release);
            }
            _ if self.pages.load(Relaxed) >= self.checkpoint_pages => {
                self.checkpointer.state.store(COPYING, Release);
                if self.checkpointer.ask.try_send(()).is_err() {
                    // The checkpointer is gone (or still asked): copy here.
                    self.checkpointer.state.store(COPIED, Release);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    /// A migrated database with two more tables, whose foreign key is checked only at COMMIT:
    /// inserting an orphan `child` makes a whole group's commit fail.
    fn parent_and_child() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ari.db");
        crate::store::Store::open(&path).unwrap();
        Connection::open(&path)
            .unwrap()
            .execute_batch(
                "CREATE TABLE parent (id INTEGER PRIMARY KEY);
                 CREATE TABLE child (p INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED);",
            )
            .unwrap();
        (dir, path)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_signature_leaves_only_with_the_proof_of_its_own_durable_entry() {
        use crate::evidence::entry::{Draft, Kind};
        use crate::seal::{ReleaseError, Withheld};
        let (_dir, path) = parent_and_child();
        let ledger = Ledger::open(&path, 16, "test.example/log").unwrap();
        let fact = || Draft::new(Kind::AgentAttested, serde_json::json!({ "nonce": "n" }));
        let record = |covers: [u8; 32]| {
            let d = fact();
            move |tx: &Tx<'_>| tx.record_signed(d, covers, ())
        };

        // The entry names what was signed, and its commit releases exactly that.
        let (recorded, commit) = ledger.commit(record([1; 32])).await.unwrap();
        let logged = commit.logged(recorded).unwrap();
        let entry = ledger
            .run(|tx| log::entry(tx.conn(), 0))
            .await
            .unwrap()
            .unwrap()
            .1;
        let entry: serde_json::Value = serde_json::from_slice(&entry).unwrap();
        assert_eq!(entry["fact"]["signed"], crate::jose::b64url(&[1; 32]));
        let ours = Withheld::<crate::seal::TestDocument, ()>::for_test([1; 32], "signed-1");
        assert_eq!(ours.release(logged).unwrap(), ("signed-1".to_string(), 0));

        // Another entry's proof releases nothing.
        let (recorded, commit) = ledger.commit(record([2; 32])).await.unwrap();
        let other = commit.logged(recorded).unwrap();
        let withheld = Withheld::<crate::seal::TestDocument, ()>::for_test([3; 32], "signed-3");
        assert!(matches!(
            withheld.release(other),
            Err(ReleaseError::WrongEntry { index: 1 })
        ));

        // A commit vouches only for its own group: an entry recorded in a group that did not
        // commit (its deferred foreign key fails) never becomes Logged, whatever commit is shown.
        let (_, later) = ledger.commit(|_| Ok(())).await.unwrap();
        let smuggled = std::sync::Arc::new(std::sync::Mutex::new(None));
        let keep = smuggled.clone();
        let failed = ledger
            .run(move |tx| {
                *keep.lock().unwrap() = Some(tx.record_signed(fact(), [4; 32], ())?);
                tx.conn().execute("INSERT INTO child (p) VALUES (42)", [])?;
                Ok(())
            })
            .await;
        assert!(
            matches!(failed, Err(StoreError::Commit(_))),
            "the group's commit fails: {failed:?}"
        );
        let recorded = smuggled.lock().unwrap().take().unwrap();
        assert!(matches!(
            later.logged(recorded),
            Err(StoreError::WrongGroup { index: 2, .. })
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn staged_results_wait_for_the_commit_and_die_with_it() {
        let (_dir, path) = parent_and_child();
        let ledger = Ledger::open(&path, 16, "test.example/log").unwrap();
        // The early part arrives before the commit; the rest once the group is on disk.
        let staged = ledger
            .stage(|c| {
                c.conn().execute("INSERT INTO parent (id) VALUES (1)", [])?;
                Ok((c.conn().last_insert_rowid(), "durable"))
            })
            .await
            .unwrap();
        assert_eq!(staged.early, 1);
        assert_eq!(staged.durable().await.unwrap().0, "durable");
        // A deferred foreign key fails only at COMMIT: the job told its early part, but the
        // commit failed, so the rest never comes and nothing it wrote is kept.
        let staged = ledger
            .stage(|c| {
                c.conn().execute("INSERT INTO child (p) VALUES (42)", [])?;
                Ok(((), ()))
            })
            .await
            .unwrap();
        // Its cause is SQLite's own: the foreign key the commit found broken.
        let Err(StoreError::Commit(why)) = staged.durable().await else {
            unreachable!("the commit cannot succeed");
        };
        assert!(
            matches!(&*why, rusqlite::Error::SqliteFailure(e, _)
                if e.code == rusqlite::ErrorCode::ConstraintViolation),
            "{why:?}"
        );
        let children: i64 = ledger
            .run(|c| {
                Ok(c.conn()
                    .query_row("SELECT count(*) FROM child", [], |r| r.get(0))?)
            })
            .await
            .unwrap();
        assert_eq!(children, 0);
        // A job's own error comes back from `stage` itself, with no early part.
        let failed = ledger
            .stage(|c| {
                c.conn().execute("INSERT INTO parent (id) VALUES (1)", [])?;
                Ok(((), ()))
            })
            .await;
        assert!(failed.is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_kept_log_end_follows_rollbacks_and_failed_commits() {
        use crate::evidence::entry::{Draft, Kind, check_chain};
        let (_dir, path) = parent_and_child();
        let origin = "test.example/log";
        let ledger = std::sync::Arc::new(Ledger::open(&path, 1024, origin).unwrap());
        let draft = |n: u64| Draft::new(Kind::PaymentDenied, serde_json::json!({ "n": n }));
        let mut kept = 0u64;
        for round in 0..20u64 {
            // In one group (most of the time): jobs that append and commit, jobs that append and
            // then fail (rolled back alone), and now and then a job that appends and breaks the
            // whole commit (a deferred foreign key), taking every job of its group with it.
            let calls: Vec<_> = (0..12u64)
                .map(|i| {
                    let ledger = ledger.clone();
                    let d = draft(round * 100 + i);
                    tokio::spawn(async move {
                        ledger
                            .run(move |tx| {
                                let a = tx.record(&d)?;
                                match i % 4 {
                                    1 => Err(StoreError::Corrupt("refused".into())),
                                    3 if round % 5 == 4 && i == 11 => {
                                        tx.conn()
                                            .execute("INSERT INTO child (p) VALUES (42)", [])?;
                                        Ok(a)
                                    }
                                    _ => Ok(a),
                                }
                            })
                            .await
                    })
                })
                .collect();
            for c in calls {
                if c.await.unwrap().is_ok() {
                    kept += 1;
                }
            }
        }
        // A job alone in its group runs without a savepoint; failing, it still leaves nothing.
        for _ in 0..3 {
            let d = draft(9_999);
            let lone = ledger
                .run(move |tx| {
                    tx.record(&d)?;
                    tx.conn()
                        .execute("INSERT INTO parent (id) VALUES (7)", [])?;
                    Err::<(), _>(StoreError::Corrupt("refused".into()))
                })
                .await;
            assert!(matches!(lone, Err(StoreError::Corrupt(_))), "{lone:?}");
        }
        let parents: i64 = ledger
            .run(|tx| {
                Ok(tx
                    .conn()
                    .query_row("SELECT count(*) FROM parent", [], |r| r.get(0))?)
            })
            .await
            .unwrap();
        assert_eq!(parents, 0);
        let size = ledger.run(|tx| log::size(tx.conn())).await.unwrap();
        assert_eq!(size, kept);
        assert!(kept > 0 && kept < 20 * 12, "{kept}");
        // The stored entries chain with no gap, and the published head is their tree's root.
        let conn = Connection::open(&path).unwrap();
        let entries = log::entries(&conn, 0, size).unwrap();
        let (_, tree) = check_chain(origin, 0, None, &entries).unwrap();
        let head = *ledger.heads().borrow();
        assert_eq!(head.size, size);
        assert_eq!(head.root, tree.root(size).unwrap());
        assert_eq!(
            head.root,
            merkle::root(&log::StoredNodes(&conn), size).unwrap()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_log_is_rewritten_in_place_not_grown() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ari.db");
        crate::store::Store::open(&path).unwrap();
        Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE filler (n INTEGER PRIMARY KEY, pad BLOB)")
            .unwrap();
        let ledger = Ledger::open_with(&path, 16, "test.example/log", 256).unwrap();
        // Each commit writes at least two pages; 3000 commits would make a 25 MB log if it
        // were never restarted.
        for n in 0..3000_i64 {
            ledger
                .run(move |c| {
                    c.conn().execute(
                        "INSERT INTO filler (n, pad) VALUES (?1, zeroblob(600))",
                        [n],
                    )?;
                    Ok(())
                })
                .await
                .unwrap();
        }
        let wal = std::fs::metadata(dir.path().join("ari.db-wal"))
            .unwrap()
            .len();
        let bound = 256 * 3 * 4120;
        assert!(wal <= bound, "the log grew to {wal} bytes (bound {bound})");
    }
}
