//! The evidence methods: agents' statements, checkpoints, proofs, entries and the operator's
//! export; and the task that signs one checkpoint per commit that grew the log.
//!
//! Entries are written by the jobs that make the changes they record (see the other method
//! modules); this module only reads the log, except for `evidence.record`, whose entry is the
//! change. Proofs are computed from the stored subtree hashes on the reading connection, so
//! they never wait for the writer.

use super::{Service, blocking};
use crate::clock::unix_now;
use crate::error::Error;
use crate::evidence::checkpoint::{self, Checkpoint};
use crate::evidence::entry::{Draft, Kind};
use crate::evidence::export;
use crate::evidence::log::{self, StoredNodes};
use crate::evidence::statement::{self, STATEMENT_TYP, StatementClaims, StatementFact};
use crate::evidence::tree::{self, Hash};
use crate::jose::{self, Header, SigningInput};
use crate::ledger::Head;
use crate::server::ConnInfo;
use serde::Deserialize;
use serde_json::{Map, Value, json};
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

/// Params of `evidence.record`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RecordParams {
    kind: String,
    body: Map<String, Value>,
}

/// Params of `evidence.checkpoint`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CheckpointParams {
    /// Wait for a checkpoint of at least this size.
    #[serde(default)]
    at_least: u64,
    #[serde(default)]
    wait_ms: u64,
}

/// Params of `evidence.inclusion`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct InclusionParams {
    index: u64,
    /// Defaults to the newest checkpoint's size.
    #[serde(default)]
    tree_size: Option<u64>,
}

/// Params of `evidence.consistency`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ConsistencyParams {
    from: u64,
    /// Defaults to the newest checkpoint's size.
    #[serde(default)]
    to: Option<u64>,
}

/// Params of `evidence.entry`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EntryParams {
    index: u64,
}

/// Params of `admin.log_export`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ExportParams {
    from: u64,
    /// Exclusive; defaults to the newest checkpoint's size.
    #[serde(default)]
    to: Option<u64>,
    #[serde(default)]
    limit: Option<u64>,
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

fn hashes(list: &[Hash]) -> Vec<String> {
    list.iter().map(|h| jose::b64url(h)).collect()
}

impl Service {
    /// The newest signed checkpoint, if one was signed yet.
    fn signed(&self) -> Option<Signed> {
        self.signed.borrow().clone()
    }

    fn signed_size(&self) -> Result<u64, Error> {
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
        let key = self.daemon_key("log")?;
        let signature = self
            .backend
            .sign_digest(key.id.clone(), cp.digest())
            .await?;
        let note = checkpoint::note(&cp, &key.public, &signature)
            .map_err(|e| Error::Internal(e.to_string()))?;
        let stored = note.clone();
        self.ledger
            .run(move |tx| log::put_checkpoint(tx, head.size, &head.root, &stored, unix_now()))
            .await?;
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
    ) -> Result<Value, Error> {
        statement::check_request(&p.kind, &p.body).map_err(Error::InvalidParams)?;
        let (facts, agent) = self.caller(info)?;
        let kid = agent.key.public.thumbprint();
        let claims = StatementClaims {
            iss: format!("urn:ari:agent:{}", agent.id),
            sub: agent.user.clone(),
            iat: unix_now(),
            jti: super::admin::random_hex(16)?,
            kind: p.kind,
            body: p.body,
        };
        let input = SigningInput::new(&Header::es256(STATEMENT_TYP, &kid), &claims)
            .map_err(|e| Error::Internal(e.to_string()))?;
        let signature = self
            .backend
            .sign_digest(agent.key.id.clone(), input.digest())
            .await?;
        let jws = input.finish(&signature);
        let fact = StatementFact {
            statement: jws.clone(),
            jwk: agent.key.public.to_jwk(),
        };
        let draft = Draft::new(
            Kind::AgentStatement,
            serde_json::to_value(&fact).map_err(|e| Error::Internal(e.to_string()))?,
        )
        .about(&agent.id, &agent.user)
        .runtime(self.runtime_digest(&agent, &facts));
        // The statement leaves the daemon only once its entry is durable.
        let appended = self.ledger.run(move |tx| tx.record(&draft)).await?;
        Ok(json!({
            "index": appended.index,
            "leaf_hash": jose::b64url(&appended.leaf),
            "statement": jws,
        }))
    }

    pub(super) async fn evidence_checkpoint(&self, p: CheckpointParams) -> Result<Value, Error> {
        let deadline =
            tokio::time::Instant::now() + Duration::from_millis(p.wait_ms.min(MAX_WAIT_MS));
        let mut changes = self.signed.subscribe();
        loop {
            if let Some(s) = changes.borrow_and_update().clone()
                && s.size >= p.at_least
            {
                return Ok(json!({ "origin": self.origin, "size": s.size, "note": s.note }));
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

    pub(super) async fn evidence_inclusion(&self, p: InclusionParams) -> Result<Value, Error> {
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
                    tree::inclusion_proof(&nodes, p.index, size)?,
                    tree::Nodes::node(&nodes, 0, p.index)?,
                ))
            })
        })
        .await?;
        Ok(json!({
            "index": p.index,
            "tree_size": size,
            "leaf_hash": jose::b64url(&leaf),
            "hashes": hashes(&proof),
        }))
    }

    pub(super) async fn evidence_consistency(&self, p: ConsistencyParams) -> Result<Value, Error> {
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
            store.read(|c| Ok(tree::consistency_proof(&StoredNodes(c), p.from, to)?))
        })
        .await?;
        Ok(json!({ "from": p.from, "to": to, "hashes": hashes(&proof) }))
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
    ) -> Result<Value, Error> {
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
        let text = String::from_utf8(bytes)
            .map_err(|_| Error::Internal(format!("entry {} is not UTF-8", p.index)))?;
        Ok(json!({
            "index": p.index,
            "kind": kind,
            "leaf_hash": jose::b64url(&tree::leaf_hash(text.as_bytes())),
            "entry": text,
        }))
    }

    /// One page of the log for `arictl log export`: entries `from..to` (at most a page), the
    /// frontier of the tree before `from`, and the checkpoints whose sizes fall in the range.
    pub(super) async fn log_export(&self, p: ExportParams) -> Result<Value, Error> {
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
        let (store, origin, key) = (
            self.store.clone(),
            self.origin.clone(),
            self.daemon_key("log")?.public,
        );
        let page = blocking(move || {
            store.read(|c| export::read_page(c, &origin, &key, p.from, end, limit))
        })
        .await?;
        serde_json::to_value(page).map_err(|e| Error::Internal(e.to_string()))
    }
}
