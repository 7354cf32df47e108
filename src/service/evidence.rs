//! The evidence methods: agents' statements, checkpoints, proofs, entries and the operator's
//! export; and the task that signs one checkpoint per commit that grew the log.
//!
//! Entries are written by the jobs that make the changes they record (see the other method
//! modules); this module only reads the log, except for `evidence.record`, whose entry is the
//! change. Proofs are computed from the stored subtree hashes on the reading connection, so
//! they never wait for the writer.

use super::{ConnInfo, Service, blocking};
use crate::attest::tpm::BatchPath;
use crate::clock::unix_now;
use crate::error::{Error, Internal};
use crate::evidence::checkpoint::{self, Checkpoint};
use crate::evidence::entry::{Draft, Kind};
use crate::evidence::export::{InclusionProof, Page};
use crate::evidence::note::Ed25519Key;
use crate::evidence::statement::{self, BatchClaims, StatementClaims, StatementFact};
use crate::jose::{self, Header, SigningInput};
use crate::ledger::Head;
use crate::ledger::log::{self, StoredNodes};
use crate::merkle::{self, Hash};
use crate::protocol::evidence::{
    CheckpointParams, ConsistencyParams, ConsistencyProof, Entry, EntryParams, ExportParams,
    FollowParams, Followed, InclusionParams, MAX_FOLLOW_ENTRIES, MAX_FOLLOW_WAIT_MS, RecordParams,
    RecordedStatement, SignedCheckpoint,
};
use crate::seal::Prepared;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// The longest `evidence.checkpoint` waits for a checkpoint to cover a size.
pub const MAX_WAIT_MS: u64 = 30_000;
/// Entries per `admin.log_export` page.
pub const MAX_PAGE: u64 = 5_000;

/// The newest signed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// Tree size.
    pub size: u64,
    /// The signed note.
    pub note: String,
}

/// The entry of a voucher issued (by the daemon or an external issuer) or delegated.
pub(super) fn voucher_draft(
    kind: Kind,
    row: &crate::store::StoredVoucher,
    claims: &crate::voucher::VoucherClaims,
) -> Draft {
    Draft::new(
        kind,
        json!({
            "voucher": row.id,
            "digest": row.digest,
            "iss": claims.iss,
            "parent": claims.parent,
            "budget": row.budget,
            "not_before": claims.nbf,
            "expires_at": claims.exp,
        }),
    )
    .about(&row.agent, &claims.sub)
}

/// Batches of statements being signed or written at a time. A batch holds its turn from its
/// signature until its ledger job has run, so the next batch is signed while this one's commit
/// is flushed, and everything that arrives meanwhile joins the batch after. One is best
/// (`docs/performance.md`); two make smaller batches that each pay a signature and a commit.
const SIGNING_BATCHES: usize = 1;

/// Statements waiting for the signer, beyond which callers are told to retry.
pub(super) const STATEMENT_QUEUE: usize = 4096;

/// One statement waiting for its agent's key.
#[derive(Debug)]
pub(super) struct Pending {
    agent: crate::identity::Agent,
    /// The digest of the caller's runtime claims.
    runtime: Option<String>,
    /// The statement's JSON bytes.
    statement: Vec<u8>,
    reply: tokio::sync::oneshot::Sender<Result<RecordedStatement, Error>>,
}

/// A batch of statements by one agent, signed and withheld, with each one's place in it.
#[derive(Debug)]
struct SignedBatch {
    withheld: crate::seal::Withheld<SigningInput, ()>,
    paths: Vec<BatchPath>,
}

/// What one statement's entry will say besides the batch's signature.
struct StatementEntry {
    agent: (String, String),
    runtime: Option<String>,
    statement: String,
    batch: BatchPath,
    jwk: jose::Jwk,
}

/// Answers every statement of `batch` with `e`, the same failure for each (its wire code is
/// kept: busy stays busy, a key store or database failure stays one).
fn refuse(batch: Vec<Pending>, e: Error) {
    let e = std::sync::Arc::new(e);
    for p in batch {
        let _ = p.reply.send(Err(Error::Shared(e.clone())));
    }
}

/// The answers to a batch of statements whose entries `commit` made durable: each one's entry,
/// statement and place in the batch, and the batch's signature, released by the first entry.
fn release_statements(
    commit: &crate::ledger::Commit,
    withheld: crate::seal::Withheld<SigningInput, ()>,
    recorded: Vec<crate::ledger::Recorded<()>>,
    shown: Vec<(String, BatchPath)>,
) -> Result<Vec<RecordedStatement>, Error> {
    let mut logged = recorded
        .into_iter()
        .map(|r| commit.logged(r))
        .collect::<Result<std::collections::VecDeque<_>, _>>()?;
    let first = logged
        .pop_front()
        .ok_or(Internal::Invariant("a batch of statements without entries"))?;
    let at: Vec<(u64, Hash)> = std::iter::once((first.index(), first.leaf()))
        .chain(logged.iter().map(|l| (l.index(), l.leaf())))
        .collect();
    let (signature, _) = withheld.release(first)?;
    Ok(at
        .into_iter()
        .zip(shown)
        .map(|((index, leaf), (statement, batch))| RecordedStatement {
            index,
            leaf_hash: jose::b64url(&leaf),
            statement,
            signature: signature.clone(),
            batch,
        })
        .collect())
}

fn hashes(list: &[Hash]) -> Vec<String> {
    list.iter().map(|h| jose::b64url(h)).collect()
}

impl Service {
    /// The newest signed checkpoint, if one was signed yet.
    fn signed(&self) -> Option<Signed> {
        self.signed.borrow().clone()
    }

    /// The log's verifier keys: Ed25519 first when the log has it, then ECDSA.
    pub(super) async fn vkeys(&self) -> Result<Vec<String>, Error> {
        let mut keys = Vec::new();
        if let Some(k) = self.log_ed25519_key()? {
            keys.push(k.vkey());
        }
        let ecdsa = checkpoint::ecdsa_vkey(&self.origin, &self.daemon_key("log").await?.public)
            .map_err(Internal::checkpoint("the log's verifier key"))?;
        keys.push(ecdsa);
        Ok(keys)
    }

    /// The log's Ed25519 note key, when it has one.
    pub(super) fn log_ed25519_key(&self) -> Result<Option<Ed25519Key>, Error> {
        self.log_ed25519
            .as_ref()
            .map(|k| {
                ed25519_dalek::VerifyingKey::from_bytes(&k.public)
                    .map(|key| checkpoint::ed25519_key(&self.origin, key))
                    .map_err(|_| Internal::Invariant("the log's Ed25519 key is not a valid point"))
            })
            .transpose()
            .map_err(Error::from)
    }

    /// The C2SP `tlog-proof` of entry `index` (its bytes in `extra`) in the first signed
    /// checkpoint that covers it, waiting at most `wait` for one; `None` if none came in time.
    pub(super) async fn tlog_proof(
        &self,
        index: u64,
        wait: Duration,
    ) -> Result<Option<String>, Error> {
        let mut changes = self.signed.subscribe();
        let deadline = tokio::time::Instant::now() + wait;
        let signed = loop {
            let current = changes.borrow_and_update().clone();
            if let Some(s) = current.filter(|s| s.size > index) {
                break s;
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return Ok(None),
            }
        };
        let store = self.store.clone();
        let size = signed.size;
        let (entry, path) = blocking(move || {
            store.read(|c| {
                let entry = log::entry(c, index)?.map(|(_, bytes)| bytes);
                let path = merkle::inclusion_proof(&StoredNodes(c), index, size)?;
                Ok((entry, path))
            })
        })
        .await?;
        let entry = entry.ok_or_else(|| Error::EntryNotFound(format!("no entry {index}")))?;
        Ok(Some(
            crate::evidence::proof::TlogProof {
                extra: Some(entry),
                index,
                path,
                note: signed.note,
            }
            .encode(),
        ))
    }

    pub(super) fn signed_size(&self) -> Result<u64, Error> {
        self.signed()
            .map(|s| s.size)
            .ok_or_else(|| Error::NotYetCheckpointed("no checkpoint has been signed yet".into()))
    }

    /// Signs a checkpoint for each new head of the log, until the ledger stops, at most one
    /// per configured interval. Heads that arrive while one is being signed or while the interval runs
    /// are skipped for the newest: one signature per batch of commits at most, never one per
    /// entry.
    pub async fn keep_checkpoints(self: Arc<Self>) {
        let mut heads = self.ledger.heads();
        let mut last: Option<tokio::time::Instant> = None;
        loop {
            // Spaced by the configured interval: commits that land meanwhile share the next
            // checkpoint.
            if let Some(at) = last {
                tokio::time::sleep_until(at + self.settings().checkpoint_interval).await;
            }
            let head = *heads.borrow_and_update();
            last = Some(tokio::time::Instant::now());
            if self.signed().map(|s| s.size) != Some(head.size)
                && let Err(e) = self.sign_checkpoint(head).await
            {
                tracing::error!(error = %e, size = head.size, "cannot sign a checkpoint; retrying");
                match tokio::time::timeout(Duration::from_millis(500), heads.changed()).await {
                    Ok(Err(_)) => return,
                    Ok(Ok(())) | Err(_) => continue,
                }
            }
            if heads.changed().await.is_err() {
                return;
            }
        }
    }

    async fn sign_checkpoint(&self, head: Head) -> Result<(), Error> {
        let cp = Checkpoint {
            origin: self.origin.clone(),
            size: head.size,
            root: head.root,
        };
        // Held until the checkpoint is stored: a rotation waits, so the old key never signs a
        // head that includes the rotation.
        let keys = self.daemon_keys.read().await;
        let key = super::role_key(&keys, "log")?;
        let note = self
            .backend
            .sign_checkpoint(key, self.log_ed25519.as_ref(), &cp)
            .await?
            .map_err(Internal::checkpoint("a checkpoint note"))?;
        let stored = note.clone();
        self.ledger
            .run(move |tx| {
                log::put_checkpoint(tx.conn(), head.size, &head.root, &stored, unix_now())
            })
            .await?;
        drop(keys);
        tracing::debug!(size = head.size, "checkpoint signed");
        self.signed.send_replace(Some(Signed {
            size: head.size,
            note,
        }));
        Ok(())
    }

    /// The digest of what the daemon vouches for about a caller: its runtime claims.
    pub(super) fn runtime_digest(
        &self,
        agent: &crate::identity::Agent,
        facts: &crate::identity::CallerFacts,
    ) -> Option<String> {
        use sha2::{Digest, Sha256};
        let bytes = serde_json::to_vec(&self.evidence(agent, facts)).ok()?;
        Some(jose::b64url(&Sha256::digest(&bytes)))
    }

    pub(super) async fn evidence_record(
        &self,
        info: &ConnInfo,
        p: RecordParams,
    ) -> Result<RecordedStatement, Error> {
        statement::check_request(&p.kind, &p.body)
            .map_err(|e| Error::InvalidParams(e.to_string()))?;
        // Shared until the statement is answered: a freeze waits for statements in flight, and
        // those that come after it find the agent frozen.
        let _gate = self.gate.read().await;
        let (facts, agent) = self.caller(info)?;
        let claims = StatementClaims {
            iss: format!("urn:ari:agent:{}", agent.id),
            sub: agent.user.clone(),
            iat: unix_now(),
            jti: super::random_hex(16)?,
            kind: p.kind,
            body: p.body,
        };
        let bytes = serde_json::to_vec(&claims).map_err(Internal::json("a statement"))?;
        let (reply, answer) = tokio::sync::oneshot::channel();
        let pending = Pending {
            runtime: self.runtime_digest(&agent, &facts),
            agent,
            statement: bytes,
            reply,
        };
        match self.statements.try_send(pending) {
            Ok(()) => {}
            Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => {
                return Err(Error::Store(crate::store::StoreError::Busy));
            }
            Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => {
                return Err(Internal::SignerStopped.into());
            }
        }
        answer.await.map_err(|_| Internal::SignerStopped)?
    }

    /// Signs agents' statements and writes their entries, until the daemon stops. Statements
    /// that queue up while the token is busy are taken together and each agent's share is
    /// signed once ([`statement::batch`]), so under load one token signature serves many
    /// entries. At most `SIGNING_BATCHES` batches are being signed or written at a time; a
    /// batch's entries are one ledger job, and its callers are answered once that job's group
    /// is durable.
    pub async fn sign_statements(self: Arc<Self>) {
        let Some(mut queue) = self.statement_queue.lock().ok().and_then(|mut q| q.take()) else {
            return;
        };
        let signing = Arc::new(tokio::sync::Semaphore::new(SIGNING_BATCHES));
        while let Some(first) = queue.recv().await {
            let Ok(permit) = signing.clone().acquire_owned().await else {
                return;
            };
            let mut taken = vec![first];
            while taken.len() < statement::MAX_BATCH
                && let Ok(more) = queue.try_recv()
            {
                taken.push(more);
            }
            let mut by_key: Vec<Vec<Pending>> = Vec::new();
            for p in taken {
                match by_key
                    .iter_mut()
                    .find(|b| b.first().is_some_and(|f| f.agent.key.id == p.agent.key.id))
                {
                    Some(b) => b.push(p),
                    None => by_key.push(vec![p]),
                }
            }
            let this = self.clone();
            tokio::spawn(async move {
                let mut signed = Vec::new();
                for batch in by_key {
                    match this.sign_batch(&batch).await {
                        Ok(done) => signed.push((batch, done)),
                        Err(e) => refuse(batch, e),
                    }
                }
                this.record_statements(signed, permit).await;
            });
        }
    }

    /// One signature over the root of `batch` (statements by one agent), withheld until the
    /// batch's entries are durable.
    async fn sign_batch(&self, batch: &[Pending]) -> Result<SignedBatch, Error> {
        let Some(agent) = batch.first().map(|p| &p.agent) else {
            return Err(Internal::Invariant("an empty batch of statements").into());
        };
        let statements: Vec<&[u8]> = batch.iter().map(|p| p.statement.as_slice()).collect();
        let (root, paths) = statement::batch(&statements);
        let claims = BatchClaims {
            iss: format!("urn:ari:agent:{}", agent.id),
            iat: unix_now(),
            size: paths.len() as u64,
            root: jose::b64url(&root),
        };
        let header = Header::es256(statement::BATCH_TYP, &agent.key.public.thumbprint());
        let input =
            SigningInput::new(&header, &claims).map_err(Internal::jose("a statement batch"))?;
        let withheld = self
            .backend
            .sign::<_, ()>(agent.key.id.clone(), Prepared::new(input))
            .withheld()
            .await?;
        Ok(SignedBatch { withheld, paths })
    }

    /// Writes one entry per signed statement in one ledger job, and answers each caller once
    /// the entries are durable: a statement never leaves the daemon before its entry.
    /// `turn` is the batch's place among those under way, given up as soon as its job has run
    /// (the next batch is then signed while this one's commit is flushed).
    async fn record_statements(
        &self,
        signed: Vec<(Vec<Pending>, SignedBatch)>,
        turn: tokio::sync::OwnedSemaphorePermit,
    ) {
        if signed.is_empty() {
            return;
        }
        let mut callers = Vec::with_capacity(signed.len());
        let mut jobs = Vec::with_capacity(signed.len());
        for (batch, done) in signed {
            let entries: Vec<_> = batch
                .iter()
                .zip(&done.paths)
                .map(|(p, path)| StatementEntry {
                    agent: (p.agent.id.clone(), p.agent.user.clone()),
                    runtime: p.runtime.clone(),
                    statement: jose::b64url(&p.statement),
                    batch: path.clone(),
                    jwk: p.agent.key.public.to_jwk(),
                })
                .collect();
            let shown: Vec<_> = entries
                .iter()
                .map(|e| (e.statement.clone(), e.batch.clone()))
                .collect();
            jobs.push((done.withheld, entries));
            callers.push((batch, shown));
        }
        let staged = self
            .ledger
            .stage(move |tx| {
                let mut out = Vec::with_capacity(jobs.len());
                for (withheld, entries) in jobs {
                    let signature = withheld.for_the_log(tx);
                    let mut recorded = Vec::with_capacity(entries.len());
                    for e in entries {
                        let fact = StatementFact {
                            statement: e.statement,
                            signature: signature.clone(),
                            batch: e.batch,
                            jwk: e.jwk,
                            signed: None,
                        };
                        let fact = serde_json::to_value(&fact)
                            .map_err(|e| crate::store::StoreError::Corrupt(e.to_string()))?;
                        let draft = Draft::new(Kind::AgentStatement, fact)
                            .about(&e.agent.0, &e.agent.1)
                            .runtime(e.runtime);
                        recorded.push(tx.record_signed(draft, withheld.digest(), ())?);
                    }
                    out.push((withheld, recorded));
                }
                Ok(((), out))
            })
            .await;
        drop(turn);
        let written = match staged {
            Ok(staged) => staged.durable().await,
            Err(e) => Err(e),
        };
        let (written, commit) = match written {
            Ok(w) => w,
            Err(e) => {
                let e = Error::Store(e);
                return refuse(callers.into_iter().flat_map(|(b, _)| b).collect(), e);
            }
        };
        for ((batch, shown), (withheld, recorded)) in callers.into_iter().zip(written) {
            let answered = release_statements(&commit, withheld, recorded, shown);
            match answered {
                Ok(answers) => {
                    for (p, answer) in batch.into_iter().zip(answers) {
                        let _ = p.reply.send(Ok(answer));
                    }
                }
                Err(e) => refuse(batch, e),
            }
        }
    }

    pub(super) async fn evidence_checkpoint(
        &self,
        p: CheckpointParams,
    ) -> Result<SignedCheckpoint, Error> {
        let deadline =
            tokio::time::Instant::now() + Duration::from_millis(p.wait_ms.min(MAX_WAIT_MS));
        let mut changes = self.signed.subscribe();
        loop {
            let current = changes.borrow_and_update().clone();
            if let Some(s) = current
                && s.size >= p.at_least
            {
                return Ok(SignedCheckpoint {
                    origin: self.origin.clone(),
                    size: s.size,
                    note: s.note,
                    vkeys: self.vkeys().await?,
                });
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => {
                    return Err(Error::NotYetCheckpointed(format!(
                        "no checkpoint covers {} entries yet",
                        p.at_least
                    )));
                }
            }
        }
    }

    pub(super) async fn evidence_inclusion(
        &self,
        p: InclusionParams,
    ) -> Result<InclusionProof, Error> {
        let size = match p.tree_size {
            Some(n) => n,
            None => self.signed_size()?,
        };
        self.covered(size)?;
        if p.index >= size {
            return Err(Error::NotYetCheckpointed(format!(
                "entry {} is not in a tree of {size} entries",
                p.index
            )));
        }
        let store = self.store.clone();
        let (proof, leaf) = blocking(move || {
            store.read(|c| {
                let nodes = StoredNodes(c);
                Ok((
                    merkle::inclusion_proof(&nodes, p.index, size)?,
                    merkle::Nodes::node(&nodes, 0, p.index)?,
                ))
            })
        })
        .await?;
        Ok(InclusionProof {
            index: p.index,
            tree_size: size,
            leaf_hash: Some(jose::b64url(&leaf)),
            hashes: hashes(&proof),
        })
    }

    pub(super) async fn evidence_consistency(
        &self,
        p: ConsistencyParams,
    ) -> Result<ConsistencyProof, Error> {
        let to = match p.to {
            Some(n) => n,
            None => self.signed_size()?,
        };
        self.covered(to)?;
        if p.from > to {
            return Err(Error::InvalidParams(format!(
                "from ({}) is larger than to ({to})",
                p.from
            )));
        }
        let store = self.store.clone();
        let proof = blocking(move || {
            store.read(|c| Ok(merkle::consistency_proof(&StoredNodes(c), p.from, to)?))
        })
        .await?;
        Ok(ConsistencyProof {
            from: p.from,
            to,
            hashes: hashes(&proof),
        })
    }

    /// Fails unless a checkpoint has been signed for a tree at least `size` large.
    fn covered(&self, size: u64) -> Result<(), Error> {
        let signed = self.signed().map_or(0, |s| s.size);
        if size > signed {
            return Err(Error::NotYetCheckpointed(format!(
                "the newest checkpoint covers {signed} entries, not {size}"
            )));
        }
        Ok(())
    }

    /// An entry. On the agent socket an agent reads only entries about itself.
    pub(super) async fn evidence_entry(
        &self,
        info: &ConnInfo,
        p: EntryParams,
    ) -> Result<Entry, Error> {
        let caller = match info.role {
            crate::protocol::Role::Agent => Some(self.caller(info)?.1.id),
            crate::protocol::Role::Admin => None,
        };
        let store = self.store.clone();
        let found = blocking(move || store.read(|c| log::entry(c, p.index))).await?;
        let not_found = || Error::EntryNotFound(format!("no entry {} for this caller", p.index));
        let (kind, bytes) = found.ok_or_else(not_found)?;
        if let Some(id) = caller {
            let about = crate::evidence::entry::parse(&bytes)
                .ok()
                .and_then(|e| e.agent);
            if about.as_deref() != Some(id.as_str()) {
                return Err(not_found());
            }
        }
        let text = String::from_utf8(bytes).map_err(|e| Internal::Entry {
            index: p.index,
            source: e.into(),
        })?;
        Ok(Entry {
            index: p.index,
            kind,
            leaf_hash: jose::b64url(&merkle::leaf_hash(text.as_bytes())),
            entry: text,
        })
    }

    /// Committed entries from `p.from` on, checkpointed or not; when there are none yet, waits
    /// up to `p.wait_ms` for the next commit that grows the log. The wait is on the ledger's
    /// head channel, which holds one value and which the writer sets whether anyone follows or
    /// not, so followers cost the writer nothing; the entries are read on the reading
    /// connection.
    pub(super) async fn log_follow(&self, p: FollowParams) -> Result<Followed, Error> {
        let wait = Duration::from_millis(p.wait_ms.unwrap_or(0).min(MAX_FOLLOW_WAIT_MS));
        let limit = p
            .limit
            .unwrap_or(MAX_FOLLOW_ENTRIES)
            .clamp(1, MAX_FOLLOW_ENTRIES);
        let mut heads = self.ledger.heads();
        let now = heads.borrow().size;
        if p.from > now {
            return Err(Error::InvalidParams(format!(
                "from ({}) is past the log's end ({now})",
                p.from
            )));
        }
        let mut stopping = self.stopping.subscribe();
        let size = tokio::select! {
            grown = tokio::time::timeout(wait, heads.wait_for(|h: &Head| h.size > p.from)) => {
                Some(grown.ok().and_then(Result::ok).map_or(now, |head| head.size))
            }
            // The daemon is stopping: answer now rather than hold the drain.
            _ = stopping.wait_for(|stop| *stop) => None,
        };
        let size = size.unwrap_or_else(|| self.ledger.heads().borrow().size);
        let to = size.min(p.from.saturating_add(limit));
        let store = self.store.clone();
        let from = p.from;
        let raw = blocking(move || store.read(|c| log::entries(c, from, to))).await?;
        let entries = raw
            .iter()
            .map(|bytes| serde_json::from_slice(bytes))
            .collect::<Result<Vec<_>, _>>()
            .map_err(Internal::json("an evidence entry"))?;
        Ok(Followed {
            size,
            next: to,
            entries,
        })
    }

    /// One page of the log for `arictl log export`: entries `from..to` (at most a page), the
    /// frontier of the tree before `from`, and the checkpoints whose sizes fall in the range.
    /// An export always ends on a signed checkpoint, so that a verifier never has to take its
    /// last entries on trust: when no checkpoint of the end's size was signed (an explicit `to`
    /// between two), one is signed now, only after checking that the stored tree of that size
    /// is a prefix of the newest signed one (so it vouches for nothing not already vouched for).
    pub(super) async fn log_export(&self, p: ExportParams) -> Result<Page, Error> {
        let end = match p.to {
            Some(n) => n,
            None => self.signed_size()?,
        };
        self.covered(end)?;
        if p.from > end {
            return Err(Error::InvalidParams(format!(
                "from ({}) is past the end ({end})",
                p.from
            )));
        }
        let limit = p.limit.unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE);
        let keys = self.daemon_keys.read().await;
        let log_key = super::role_key(&keys, "log")?;
        if p.from < end {
            let newest = self
                .signed()
                .ok_or_else(|| Error::NotYetCheckpointed("no checkpoint yet".into()))?;
            // The newest checkpoint may still be by a log key rotated out since.
            let store = self.store.clone();
            let mut candidates = vec![log_key.public];
            candidates.extend(
                blocking(move || store.past_keys())
                    .await?
                    .into_iter()
                    .filter(|k| k.role == "log")
                    .map(|k| k.public),
            );
            let newest = candidates
                .iter()
                .find_map(|k| checkpoint::verify(&newest.note, &self.origin, k).ok())
                .ok_or(Internal::checkpoint("the newest checkpoint")(
                    checkpoint::CheckpointError::Unsigned,
                ))?;
            let store = self.store.clone();
            let unsigned = blocking(move || {
                store.read(|c| {
                    if !log::checkpoints(c, end, end)?.is_empty() {
                        return Ok(None);
                    }
                    let nodes = StoredNodes(c);
                    let root = merkle::root(&nodes, end)?;
                    let proof = merkle::consistency_proof(&nodes, end, newest.size)?;
                    if !merkle::verify_consistency(end, newest.size, &root, &newest.root, &proof) {
                        return Err(crate::store::StoreError::Corrupt(format!(
                            "the stored tree of {end} entries is not a prefix of the signed one of {}",
                            newest.size
                        )));
                    }
                    Ok(Some(root))
                })
            })
            .await?;
            if let Some(root) = unsigned {
                let cp = Checkpoint {
                    origin: self.origin.clone(),
                    size: end,
                    root,
                };
                let note = self
                    .backend
                    .sign_checkpoint(log_key, self.log_ed25519.as_ref(), &cp)
                    .await?
                    .map_err(Internal::checkpoint("a checkpoint note"))?;
                self.ledger
                    .run(move |tx| log::put_checkpoint(tx.conn(), end, &root, &note, unix_now()))
                    .await?;
                tracing::info!(size = end, "checkpoint signed for an export's end");
            }
        }
        let (store, origin, key) = (self.store.clone(), self.origin.clone(), log_key.public);
        drop(keys);
        blocking(move || {
            store.read(|c| crate::ledger::export::read_page(c, &origin, &key, p.from, end, limit))
        })
        .await
    }
}
