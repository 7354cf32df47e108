//! Payments: `payment.authorize`, `payment.status` and `payment.report` on the agent socket, the
//! operator's side of held (L2) payments, and what they share: voucher chains as the daemon
//! verifies and caches them, and the view of a decision.
//!
//! Order of work for an authorization, which is the product's core promise:
//! 1. take the decision gate (shared), so a freeze or revocation cannot complete while a
//!    decision it should stop is in flight;
//! 2. identify the caller, resolve its voucher chain (verified once, then cached), check that the
//!    chain's last voucher is held by the caller's key;
//! 3. in one ledger job: read what the chain has spent, run the policy, record the decision and,
//!    if allowed, debit the whole chain (the policy's `Allowed` buys one `Debited`) and record
//!    the authorization's entry carrying that `Debited`; the signature is asked of the token at
//!    once (by the job itself when its group holds others, else by the caller as soon as the
//!    job has run), so the token signs while the group commits;
//! 4. only then release the signed authorization: `Withheld::release` takes the `Logged`
//!    proof that the group's commit mints from the entry (see [`crate::ledger`]). A signing
//!    failure voids the decision and gives the money back.
//!
//! The files: [`authorize`] decides and signs, [`confirm`] is the operator's side of held
//! payments, [`report`] answers status and takes reports. Delegation lives beside the vouchers
//! (`service/delegation.rs`).

mod authorize;
mod confirm;
mod report;

use super::random_hex;
use super::{ConnInfo, Service, blocking};
use crate::error::{Error, Internal};
use crate::evidence::entry::Kind;
use crate::identity::{Agent, CallerFacts, MatchError};
use crate::jose::PublicKey;
use crate::ledger::{PaymentRow, PaymentStatus};
use crate::payment::Receipt;
use crate::policy::{self, PaymentRequest};
use crate::protocol::payment::{DecisionStatus, DecisionView, PaymentParams};
use crate::store::{StoreError, StoredVoucher, VoucherStatus};
use crate::voucher::constraint::Currency;
use crate::voucher::{self, VoucherClaims};
use serde_json::{Value, json};
use std::sync::Arc;

/// The longest `payment.status` waits for a decision.
pub const MAX_WAIT_MS: u64 = 30_000;
/// How the daemon verifies chains: time and unknown constraints are the policy's business, so
/// they become recorded denials.
const DAEMON_CHECKS: voucher::Checks = voucher::Checks {
    now: None,
    allow_unknown: true,
};
/// Bounds on free-text request fields, in bytes.
const MAX_FIELD: usize = 256;

/// A verified voucher chain as the daemon holds it, root first.
#[derive(Debug)]
pub(super) struct Chain {
    pub ids: Vec<String>,
    pub digests: Vec<String>,
    pub compacts: Vec<String>,
    pub claims: Vec<VoucherClaims>,
    /// The leaf's `cnf` key: only its holder may spend or delegate it.
    pub holder: Option<PublicKey>,
}

impl Chain {
    /// Whether `agent` holds the leaf voucher (named in it and bound to its key).
    pub(super) fn held_by(&self, agent: &Agent) -> bool {
        self.claims
            .last()
            .is_some_and(|leaf| leaf.agent == agent.id)
            && self.holder == Some(agent.key.public)
    }

    pub(super) fn leaf(&self) -> Result<&VoucherClaims, Error> {
        self.claims
            .last()
            .ok_or(Internal::Invariant("empty voucher chain").into())
    }

    pub(super) fn leaf_id(&self) -> &str {
        self.ids.last().map_or("", String::as_str)
    }

    pub(super) fn leaf_digest(&self) -> &str {
        self.digests.last().map_or("", String::as_str)
    }

    /// Where each voucher's current period started at `now`, for periodic ones.
    pub(super) fn periods(&self, now: i64) -> Vec<Option<i64>> {
        policy::period_starts(&self.claims, now)
    }

    /// The leaf voucher's segment, as presented.
    pub(super) fn leaf_compact(&self) -> &str {
        self.compacts.last().map_or("", String::as_str)
    }
}

pub(super) fn text(field: &str, value: &str) -> Result<(), Error> {
    if value.is_empty()
        || value.len() > MAX_FIELD
        || value.chars().any(|c| c.is_control() || is_bidi_control(c))
    {
        return Err(Error::InvalidParams(format!(
            "{field} must be 1 to {MAX_FIELD} bytes of printable text, without bidirectional controls"
        )));
    }
    Ok(())
}

/// Unicode's bidirectional controls: around them text displays other than it is, so a payee
/// could read as another where an operator confirms it.
fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
    )
}

/// The payment a `payment.authorize` asks for, checked, with its transaction id (the agent's,
/// or a verified checkout's hash).
fn request(p: PaymentParams, transaction_id: String) -> Result<PaymentRequest, Error> {
    if p.amount == 0 || i64::try_from(p.amount).is_err() {
        return Err(Error::InvalidParams(
            "amount must be a positive integer of minor units".into(),
        ));
    }
    text("payee", &p.payee)?;
    text("transaction_id", &transaction_id)?;
    if let Some(c) = &p.category {
        text("category", c)?;
    }
    Ok(PaymentRequest {
        amount: p.amount,
        currency: Currency::try_from(p.currency)
            .map_err(|e| Error::InvalidParams(e.to_string()))?,
        payee: p.payee,
        category: p.category,
        transaction_id,
    })
}

/// A decision id: milliseconds since the epoch then random bits, 32 hex digits. Ids grow with
/// time, so the ledger's id index takes appends rather than random inserts, and they still
/// cannot be guessed.
fn decision_id() -> Result<String, Error> {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    Ok(format!("{:012x}{}", ms & 0xffff_ffff_ffff, random_hex(10)?))
}

/// Sets `key` in an entry's fact object.
pub(super) fn set(fact: &mut Value, key: &str, value: Value) {
    if let Some(map) = fact.as_object_mut() {
        map.insert(key.to_string(), value);
    }
}

/// What every payment entry says about the payment.
fn payment_fact(row: &PaymentRow, voucher_digest: &str) -> Value {
    json!({
        "decision": row.id,
        "voucher": voucher_digest,
        "transaction_id": row.transaction_id,
        "checkout_verified": row.checkout.is_some(),
        "amount": row.amount,
        "currency": row.currency,
        "payee": row.payee,
        "category": row.category,
        "aud": row.aud,
    })
}

/// The view of a decision for agents and operators; with the receipt of a confirmed held
/// payment when its `chain` is given.
fn view(row: &PaymentRow, chain: Option<&Chain>) -> DecisionView {
    let status = match (row.status, row.confirm, &row.authorization) {
        (PaymentStatus::Pending, ..) | (PaymentStatus::Authorized, true, None) => {
            DecisionStatus::PendingConfirmation
        }
        (PaymentStatus::Authorized, ..) => DecisionStatus::Authorized,
        (PaymentStatus::Denied, ..) => DecisionStatus::Denied,
        (PaymentStatus::Void, ..) => DecisionStatus::Void,
    };
    let receipt = match (&row.authorization, chain) {
        (Some(authorization), Some(chain)) => Some(Receipt::new(
            &chain.compacts,
            authorization.clone(),
            row.attestation.clone(),
        )),
        _ => None,
    };
    DecisionView {
        decision: row.id.clone(),
        status,
        reason: row.reason.clone(),
        ledger_seq: row.seq,
        voucher: row.voucher.clone(),
        agent: row.agent.clone(),
        amount: row.amount,
        currency: row.currency.clone(),
        payee: row.payee.clone(),
        category: row.category.clone(),
        transaction_id: row.transaction_id.clone(),
        aud: row.aud.clone(),
        created_at: row.created_at,
        decided_at: row.decided_at,
        report_deadline: row.report_deadline,
        outcome: row.outcome,
        reference: row.reference.clone(),
        receipt,
    }
}

impl Service {
    /// The caller's agent even when frozen (the policy denies frozen agents, and the denial is
    /// recorded); `None` facts for a frozen caller.
    fn caller_for_decision(
        &self,
        info: &ConnInfo,
    ) -> Result<(Option<CallerFacts>, Agent, bool), Error> {
        match self.caller(info) {
            Ok((facts, agent)) => Ok((Some(facts), agent, false)),
            Err(Error::Caller(MatchError::Frozen(id))) => {
                let agent = self.agent(&id)?;
                Ok((None, agent, true))
            }
            Err(e) => Err(e),
        }
    }

    /// Every issuer key a root voucher may be signed by: the daemon's, the registered ones,
    /// and with `past` the daemon's rotated issuer keys, which still verify the vouchers they
    /// signed before their rotation (all of them in the store: a rotated key signs no more).
    async fn trusted_issuers(&self, past: bool) -> Result<Vec<PublicKey>, Error> {
        let mut keys = vec![self.daemon_key("issuer").await?.public];
        let store = self.store.clone();
        let (issuers, history) = blocking(move || {
            let history = if past { store.past_keys()? } else { Vec::new() };
            Ok::<_, crate::store::StoreError>((store.issuers()?, history))
        })
        .await?;
        keys.extend(issuers.into_iter().map(|(_, k)| k));
        keys.extend(
            history
                .into_iter()
                .filter(|k| k.role == "issuer")
                .map(|k| k.public),
        );
        Ok(keys)
    }

    /// Finds a voucher by id, digest or the chain up to it, with its chain verified. A root
    /// voucher the daemon has not seen is imported if a registered issuer signed it.
    pub(super) async fn resolve_chain(&self, voucher: &str) -> Result<Arc<Chain>, Error> {
        // A voucher is named by its id or digest, or given whole: the chain up to it, whose last
        // segment names it.
        let key = if voucher.contains('.') {
            let segments = voucher::presented(voucher)
                .map_err(|e| Error::InvalidParams(format!("voucher: {e}")))?;
            voucher::digest(segments.last().map_or("", String::as_str))
        } else {
            voucher.to_string()
        };
        if let Some(c) = self.cached_chain(&key) {
            return Ok(c);
        }
        let (store, k) = (self.store.clone(), key.clone());
        let leaf = match blocking(move || store.voucher(&k)).await? {
            Some(v) => v,
            None if voucher.contains('.') => self.import_voucher(voucher).await?,
            None => return Err(Error::VoucherNotFound(voucher.into())),
        };
        let mut rows = vec![leaf];
        while let Some(parent) = rows.last().and_then(|r| r.parent.clone()) {
            if rows.len() >= voucher::MAX_CHAIN {
                return Err(Error::UntrustedVoucher(
                    "the voucher chain is too long".into(),
                ));
            }
            let store = self.store.clone();
            let row = blocking(move || store.voucher(&parent))
                .await?
                .ok_or_else(|| {
                    Error::Store(StoreError::Corrupt("a voucher's parent is missing".into()))
                })?;
            rows.push(row);
        }
        rows.reverse();
        let compacts: Vec<String> = rows.iter().map(|r| r.compact.clone()).collect();
        let trusted = self.trusted_issuers(true).await?;
        let claims = voucher::join(&compacts)
            .and_then(|joined| voucher::verify_chain_with(&joined, &trusted, DAEMON_CHECKS))
            .map_err(|e| {
                Error::UntrustedVoucher(format!("the stored voucher chain does not verify: {e}"))
            })?;
        let holder = claims.last().and_then(|c| c.cnf.jwk.to_public_key().ok());
        let chain = Arc::new(Chain {
            holder,
            ids: rows.iter().map(|r| r.id.clone()).collect(),
            digests: rows.iter().map(|r| r.digest.clone()).collect(),
            compacts,
            claims,
        });
        if let Ok(mut cache) = self.chains.lock() {
            cache.insert(chain.leaf_id().to_string(), chain.clone());
            cache.insert(chain.leaf_digest().to_string(), chain.clone());
        }
        Ok(chain)
    }

    fn cached_chain(&self, key: &str) -> Option<Arc<Chain>> {
        self.chains.lock().ok()?.get(key).cloned()
    }

    /// Verifies and registers a root voucher signed by a registered issuer for one of this
    /// daemon's agents.
    pub(super) async fn import_voucher(&self, compact: &str) -> Result<StoredVoucher, Error> {
        let segments =
            voucher::presented(compact).map_err(|e| Error::UntrustedVoucher(e.to_string()))?;
        let [compact] = segments.as_slice() else {
            return Err(Error::UntrustedVoucher(
                "only a root voucher of a registered issuer can be imported".into(),
            ));
        };
        let compact = compact.as_str();
        let trusted = self.trusted_issuers(false).await?;
        let claims = voucher::verify_chain_with(compact, &trusted, DAEMON_CHECKS)
            .map_err(|e| Error::UntrustedVoucher(e.to_string()))?
            .pop()
            .ok_or(Internal::Invariant("empty chain"))?;
        let agent = self.registry.get(&claims.agent).ok_or_else(|| {
            Error::UntrustedVoucher(format!(
                "the voucher names unknown agent {:?}",
                claims.agent
            ))
        })?;
        if claims.cnf.jwk != agent.key.public.to_jwk() {
            return Err(Error::UntrustedVoucher(
                "the voucher's cnf key is not the agent's ARI key".into(),
            ));
        }
        if claims.sub != agent.user {
            return Err(Error::UntrustedVoucher(format!(
                "the voucher is for user {:?}, the agent acts for {:?}",
                claims.sub, agent.user
            )));
        }
        let row = StoredVoucher {
            id: claims.jti.clone(),
            digest: voucher::digest(compact),
            agent: agent.id.clone(),
            compact: compact.to_string(),
            status: VoucherStatus::Active,
            parent: None,
            budget: policy::budget(&claims).map(|(_, m)| m),
            spent: 0,
            reserved: 0,
            payments: 0,
            issued_at: claims.iat,
            expires_at: claims.exp,
        };
        let r = row.clone();
        let draft = super::evidence::voucher_draft(Kind::VoucherIssued, &row, &claims);
        let inserted = self
            .ledger
            .run(move |tx| {
                crate::store::insert_voucher(tx.conn(), &r)?;
                tx.record(&draft).map(drop)
            })
            .await
            .map_err(Error::from);
        match inserted {
            Ok(()) => {
                tracing::info!(voucher = %row.id, issuer = %claims.iss, agent = %agent.id, "external voucher registered");
                Ok(row)
            }
            Err(Error::Store(StoreError::Exists)) => {
                let (store, d) = (self.store.clone(), row.digest.clone());
                blocking(move || store.voucher(&d)).await?.ok_or_else(|| {
                    Error::UntrustedVoucher("a voucher with this id already exists".into())
                })
            }
            Err(e) => Err(e),
        }
    }

    /// A decision of the calling agent.
    async fn own_decision(&self, agent: &Agent, id: &str) -> Result<PaymentRow, Error> {
        match self.decision(id).await {
            Ok(row) if row.agent == agent.id => Ok(row),
            Ok(_) => Err(Error::DecisionNotFound(id.into())),
            Err(e) => Err(e),
        }
    }

    /// Any decision, as the state database has it now.
    async fn decision(&self, id: &str) -> Result<PaymentRow, Error> {
        let (store, key) = (self.store.clone(), id.to_string());
        blocking(move || store.read(|c| crate::ledger::payment(c, &key)))
            .await?
            .ok_or_else(|| Error::DecisionNotFound(id.into()))
    }
}
