//! Payments and delegations: `payment.authorize`, `payment.status`, `payment.report` and
//! `voucher.delegate` on the agent socket, and the operator's side of held (L2) payments.
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

use super::admin::random_hex;
use super::{Service, blocking};
use crate::attest::{self, Bundle};
use crate::backend::KeyId;
use crate::clock::unix_now;
use crate::error::Error;
use crate::evidence::entry::{Draft, Kind};
use crate::identity::{Agent, AgentStatus, CallerFacts, MatchError};
use crate::jose::{self, Header, PendingInput, PublicKey, SigningInput};
use crate::ledger::{self, Debited, Outcome, PaymentRow, PaymentStatus, Recorded, Staged};
use crate::payment::{self, AuthorizationClaims, Binding};
use crate::policy::{self, Context, Denial, PaymentRequest, Reason, Verdict};
use crate::seal::{self, KeyStore, Prepared};
use crate::server::ConnInfo;
use crate::store::{StoreError, StoredVoucher, VoucherStatus};
use crate::voucher::constraint::{Constraint, Currency};
use crate::voucher::{self, Confirmation, VoucherClaims, VoucherDraft};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;

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
    fn held_by(&self, agent: &Agent) -> bool {
        self.claims
            .last()
            .is_some_and(|leaf| leaf.agent == agent.id)
            && self.holder == Some(agent.key.public)
    }

    fn leaf(&self) -> Result<&VoucherClaims, Error> {
        self.claims
            .last()
            .ok_or_else(|| Error::Internal("empty voucher chain".into()))
    }

    fn leaf_id(&self) -> &str {
        self.ids.last().map_or("", String::as_str)
    }

    fn leaf_digest(&self) -> &str {
        self.digests.last().map_or("", String::as_str)
    }
}

/// `payment` inside `payment.authorize`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PaymentParams {
    amount: u64,
    currency: String,
    payee: String,
    #[serde(default)]
    category: Option<String>,
    transaction_id: String,
}

/// Params of `payment.authorize`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AuthorizeParams {
    voucher: String,
    payment: PaymentParams,
    aud: String,
    nonce: String,
    #[serde(default)]
    facts: Map<String, Value>,
}

/// Params of `payment.status`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StatusParams {
    decision: String,
    #[serde(default)]
    wait_ms: u64,
}

/// Params of `payment.report`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReportParams {
    decision: String,
    outcome: Outcome,
    #[serde(default)]
    reference: Option<String>,
}

/// Params of `voucher.delegate`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DelegateParams {
    voucher: String,
    agent: String,
    constraints: Vec<Constraint>,
    #[serde(default)]
    not_before: Option<i64>,
    #[serde(default)]
    expires_at: Option<i64>,
}

/// Params of `admin.payment_list`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListParams {
    #[serde(default)]
    status: Option<PaymentStatus>,
    #[serde(default)]
    voucher: Option<String>,
    #[serde(default)]
    limit: Option<u32>,
}

/// `{ "decision": ID }`, with an optional note for rejections.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DecisionParam {
    decision: String,
    #[serde(default)]
    note: Option<String>,
}

fn text(field: &str, value: &str) -> Result<(), Error> {
    if value.is_empty() || value.len() > MAX_FIELD || value.chars().any(char::is_control) {
        return Err(Error::InvalidParams(format!(
            "{field} must be 1 to {MAX_FIELD} bytes of printable text"
        )));
    }
    Ok(())
}

impl PaymentParams {
    fn request(self) -> Result<PaymentRequest, Error> {
        if self.amount == 0 || i64::try_from(self.amount).is_err() {
            return Err(Error::InvalidParams(
                "amount must be a positive integer of minor units".into(),
            ));
        }
        text("payee", &self.payee)?;
        text("transaction_id", &self.transaction_id)?;
        if let Some(c) = &self.category {
            text("category", c)?;
        }
        Ok(PaymentRequest {
            amount: self.amount,
            currency: Currency::try_from(self.currency).map_err(Error::InvalidParams)?,
            payee: self.payee,
            category: self.category,
            transaction_id: self.transaction_id,
        })
    }
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

/// What one authorization job decided.
enum Decided {
    Denied(Denial),
    Held,
    /// The authorization's entry, carrying the debit; the commit makes it the proof that
    /// releases the signature.
    Authorized(Recorded<Debited>),
}

/// The digest an authorization carries of its (base64url) attestation bundle.
fn attestation_digest(bundle: &str) -> Result<String, Error> {
    let bytes = jose::b64url_decode(bundle).map_err(|e| Error::Internal(e.to_string()))?;
    Ok(jose::b64url(&Sha256::digest(&bytes)))
}

/// An authorization's signature being made: withheld until its entry and debit are durable.
type Authorization = seal::Signing<SigningInput, Debited>;

/// Where an authorization's signature is asked for, decided inside the ledger job. Both ways
/// were measured (`docs/performance.md`, "4 December: the signature asked for from the ledger
/// writer").
enum Begun {
    /// By the job itself, because its group holds other jobs: under load, sending the request
    /// through the caller's task costs a hand-off per payment (5 to 8 % of the payments per
    /// second at 16 clients).
    Started(Authorization),
    /// By the caller, once told: the job is alone in its group. Woken from the writer just
    /// before it commits, the token thread made a lone payment's answer about 80 µs later.
    Ready(KeyId, Prepared<SigningInput>),
}

impl Begun {
    /// Asks for the signature now if the job shares its group, else leaves it to the caller.
    fn begin(
        tx: &ledger::Tx<'_>,
        keys: &KeyStore,
        key: KeyId,
        input: Prepared<SigningInput>,
    ) -> Self {
        if tx.alone() {
            Self::Ready(key, input)
        } else {
            Self::Started(keys.sign(key, input))
        }
    }

    /// The signing under way, asked for here if the job left it to its caller.
    fn start(self, keys: &KeyStore) -> Authorization {
        match self {
            Self::Started(signing) => signing,
            Self::Ready(key, input) => keys.sign(key, input),
        }
    }
}

/// An authorization's header and claims, waiting for the ledger to give it its log index.
struct Mandate {
    header: Header,
    claims: AuthorizationClaims,
}

impl Mandate {
    /// The authorization as it will be signed at `now`, rendered but for its log index, which
    /// only the ledger knows: filling that in is all the ledger's serial thread has to do.
    fn render(mut self, report_by: Option<i64>, now: i64) -> Result<PendingInput, Error> {
        self.claims.log_index = 0;
        self.claims.report_by = report_by;
        self.claims.iat = now;
        self.claims.exp = now + payment::AUTHORIZATION_TTL_S;
        PendingInput::new(&self.header, &self.claims, "log_index")
            .map_err(|e| Error::Internal(e.to_string()))
    }
}

/// Sets `key` in an entry's fact object.
fn set(fact: &mut Value, key: &str, value: Value) {
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
        "amount": row.amount,
        "currency": row.currency,
        "payee": row.payee,
        "category": row.category,
        "aud": row.aud,
    })
}

/// What a confirmation job decided.
enum Confirmed {
    NotPending(PaymentStatus),
    Denied(Denial),
    Authorized(Recorded<Debited>, Prepared<SigningInput>),
}

/// The view of a decision for agents and operators.
fn view(row: &PaymentRow, chain: Option<&Chain>) -> Value {
    let status = match (row.status.as_str(), row.confirm, &row.authorization) {
        ("pending", ..) | ("authorized", true, None) => "pending_confirmation",
        (s, ..) => s,
    };
    let mut v = json!({
        "decision": row.id,
        "status": status,
        "reason": row.reason,
        "ledger_seq": row.seq,
        "voucher": row.voucher,
        "agent": row.agent,
        "amount": row.amount,
        "currency": row.currency,
        "payee": row.payee,
        "category": row.category,
        "transaction_id": row.transaction_id,
        "aud": row.aud,
        "created_at": row.created_at,
        "decided_at": row.decided_at,
        "report_deadline": row.report_deadline,
        "outcome": row.outcome,
        "reference": row.reference,
    });
    if let (Some(jwt), Some(chain), Some(map)) = (&row.authorization, chain, v.as_object_mut()) {
        map.insert("authorization".into(), json!(jwt));
        map.insert("chain".into(), json!(chain.compacts));
        map.insert("attestation".into(), json!(row.attestation));
    }
    v
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

    /// Every issuer key a root voucher may be signed by.
    async fn trusted_issuers(&self) -> Result<Vec<PublicKey>, Error> {
        let mut keys = vec![self.daemon_key("issuer")?.public];
        let store = self.store.clone();
        keys.extend(
            blocking(move || store.issuers())
                .await?
                .into_iter()
                .map(|(_, k)| k),
        );
        Ok(keys)
    }

    /// Finds a voucher by id, digest or compact form, with its chain verified. A compact voucher
    /// the daemon has not seen is imported if a registered issuer signed it.
    pub(super) async fn resolve_chain(&self, voucher: &str) -> Result<Arc<Chain>, Error> {
        let key = if voucher.contains('.') {
            voucher::digest(voucher)
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
        let links: Vec<&str> = compacts.iter().map(String::as_str).collect();
        let trusted = self.trusted_issuers().await?;
        let claims = voucher::verify_chain_with(&links, &trusted, DAEMON_CHECKS).map_err(|e| {
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
        let trusted = self.trusted_issuers().await?;
        let claims = voucher::verify_chain_with(&[compact], &trusted, DAEMON_CHECKS)
            .map_err(|e| Error::UntrustedVoucher(e.to_string()))?
            .pop()
            .ok_or_else(|| Error::Internal("empty chain".into()))?;
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

    pub(super) async fn payment_authorize(
        &self,
        info: &ConnInfo,
        p: AuthorizeParams,
    ) -> Result<Value, Error> {
        let _gate = self.gate.read().await;
        attest::validate_nonce(&p.nonce).map_err(Error::InvalidParams)?;
        text("aud", &p.aud)?;
        let req = p.payment.request()?;
        let (facts, agent, frozen) = self.caller_for_decision(info)?;
        let chain = self.resolve_chain(&p.voucher).await?;
        if !chain.held_by(&agent) {
            return Err(Error::Forbidden(format!(
                "voucher {} is not held by agent {}",
                chain.leaf_id(),
                agent.id
            )));
        }
        let id = decision_id()?;
        let now = unix_now();
        let kid = agent.key.public.thumbprint();
        let binding = payment::binding_digest(&Binding {
            voucher: chain.leaf_digest(),
            transaction_id: &req.transaction_id,
            amount: req.amount,
            currency: req.currency.as_str(),
            payee: &req.payee,
            aud: &p.aud,
            nonce: &p.nonce,
            kid: &kid,
        });
        let (attestation, attestation_sha256) = match &facts {
            Some(f) => self.bundle(&agent, f, binding, now).await?,
            None => (String::new(), String::new()),
        };
        let mut row = PaymentRow {
            id: id.clone(),
            seq: 0,
            voucher: chain.leaf_id().to_string(),
            agent: agent.id.clone(),
            amount: req.amount,
            currency: req.currency.as_str().to_string(),
            payee: req.payee.clone(),
            category: req.category.clone(),
            transaction_id: req.transaction_id.clone(),
            aud: p.aud.clone(),
            nonce: p.nonce.clone(),
            facts: Value::Object(p.facts.clone()).to_string(),
            confirm: false,
            status: PaymentStatus::Denied,
            reason: None,
            created_at: now,
            decided_at: Some(now),
            report_deadline: None,
            outcome: None,
            reference: None,
            attestation: attestation.clone(),
            authorization: None,
        };
        let attestation_for_hold = std::mem::take(&mut row.attestation);
        let job_chain = chain.clone();
        let report_within = policy::report_within(&chain.claims);
        let report_deadline = report_within.map(|s| now.saturating_add_unsigned(s));
        let pending = self
            .mandate(&agent, &chain, &row, &attestation_sha256, false)?
            .render(report_deadline, now)?;
        let about = (agent.id.clone(), agent.user.clone());
        let runtime = (!attestation_sha256.is_empty()).then(|| attestation_sha256.clone());
        let mut base = payment_fact(&row, chain.leaf_digest());
        if !p.facts.is_empty() {
            // The facts the decision read (conditions), as the agent claimed them; the mandate
            // carries the digest of these very bytes (`facts_sha256`).
            set(&mut base, "facts", Value::Object(p.facts.clone()));
        }
        let keys = self.backend.clone();
        let key = agent.key.id.clone();
        let staged = self
            .ledger
            .stage(move |tx| {
                let usage = ledger::usage(tx, &job_chain.ids, now)?;
                let ctx = Context {
                    now,
                    frozen,
                    facts: &p.facts,
                };
                let mut row = row;
                let verdict = match policy::decide(&job_chain.claims, &usage, &req, &ctx) {
                    Ok(_) if ledger::checkout_taken(tx, &row.voucher, &row.transaction_id)? => {
                        Err(Denial {
                            reason: Reason::DuplicateTransaction,
                            detail: "this checkout is already authorized or pending on the voucher"
                                .into(),
                        })
                    }
                    other => other,
                };
                let draft = |kind: Kind, extra: Value| {
                    let mut fact = base;
                    if let (Some(map), Value::Object(more)) = (fact.as_object_mut(), extra) {
                        map.extend(more);
                    }
                    Draft::new(kind, fact)
                        .about(&about.0, &about.1)
                        .runtime(runtime)
                };
                match verdict {
                    Err(denial) => {
                        row.status = PaymentStatus::Denied;
                        row.reason = Some(denial.reason.name().into());
                        ledger::insert_payment(tx, &row)?;
                        tx.record(&draft(
                            Kind::PaymentDenied,
                            json!({ "reason": denial.reason.name(), "detail": denial.detail }),
                        ))?;
                        Ok((None, Decided::Denied(denial)))
                    }
                    Ok(Verdict::AwaitConfirmation(allowed)) => {
                        // Only a held payment keeps its bundle: it is signed later, at
                        // confirmation, and the receipt must carry what was measured now.
                        row.attestation = attestation_for_hold;
                        // The hold is a debit, so a confirmation can never overspend. Nothing is
                        // signed now: a confirmation mints its own proof (`release_hold`).
                        let _held = ledger::debit_allowed(tx, &job_chain.ids, req.amount, allowed)?;
                        row.status = PaymentStatus::Pending;
                        row.confirm = true;
                        row.decided_at = None;
                        ledger::insert_payment(tx, &row)?;
                        tx.record(&draft(Kind::PaymentPending, json!({})))?;
                        Ok((None, Decided::Held))
                    }
                    Ok(Verdict::Authorize(allowed)) => {
                        let debited =
                            ledger::debit_allowed(tx, &job_chain.ids, req.amount, allowed)?;
                        row.status = PaymentStatus::Authorized;
                        row.report_deadline = report_deadline;
                        let seq = ledger::insert_payment(tx, &row)?;
                        let index = tx.next_index()?;
                        let input = Prepared::new(pending.fill(index));
                        let recorded = tx.record_signed(
                            draft(
                                Kind::PaymentAuthorized,
                                json!({ "mandate": input.document().payload() }),
                            ),
                            input.digest(),
                            debited,
                        )?;
                        let signing = Begun::begin(tx, &keys, key, input);
                        Ok((Some((seq, index, signing)), Decided::Authorized(recorded)))
                    }
                }
            })
            .await?;
        // Signed while the group commits; released only once it is durable.
        let Staged { early, rest } = staged;
        let (signed, (decided, commit)) = match early {
            Some((seq, index, begun)) => {
                let (signed, decided) =
                    tokio::join!(begun.start(&self.backend).withheld(), rest.durable());
                (Some((seq, index, signed)), decided?)
            }
            None => (None, rest.durable().await?),
        };
        match decided {
            Decided::Denied(denial) => {
                tracing::info!(decision = %id, agent = %agent.id, reason = denial.reason.name(), "payment denied");
                Err(Error::Denied {
                    denial,
                    decision: Some(id),
                })
            }
            Decided::Held => {
                tracing::info!(decision = %id, agent = %agent.id, "payment held for confirmation");
                Ok(json!({ "status": "pending_confirmation", "decision": id }))
            }
            Decided::Authorized(recorded) => {
                let Some((seq, index, signed)) = signed else {
                    return Err(Error::Internal("authorized without a signature".into()));
                };
                let logged = commit.logged(recorded)?;
                let jwt = match signed {
                    Ok(withheld) => withheld.release(logged)?.0,
                    Err(e) => {
                        self.void(&id, chain.clone(), &agent).await;
                        return Err(e.into());
                    }
                };
                Ok(json!({
                    "status": "authorized",
                    "decision": id,
                    "ledger_seq": seq,
                    "log_index": index,
                    "authorization": jwt,
                    "chain": chain.compacts,
                    "attestation": attestation,
                }))
            }
        }
    }

    /// The attestation bundle for a payment by `agent`, measured as `facts`: base64url JSON,
    /// and the base64url SHA-256 of that JSON, which the authorization carries.
    async fn bundle(
        &self,
        agent: &Agent,
        facts: &CallerFacts,
        binding: String,
        now: i64,
    ) -> Result<(String, String), Error> {
        let mut evidence = self.evidence(agent, facts);
        evidence.tpm = self.tpm_evidence(agent, &binding).await?;
        let bundle = Bundle {
            typ: attest::BUNDLE_TYP.into(),
            iat: now,
            binding,
            evidence,
        };
        let bytes = serde_json::to_vec(&bundle).map_err(|e| Error::Internal(e.to_string()))?;
        Ok((jose::b64url(&bytes), jose::b64url(&Sha256::digest(&bytes))))
    }

    /// Everything an authorization of `row` will say that is known before the ledger decides.
    fn mandate(
        &self,
        agent: &Agent,
        chain: &Chain,
        row: &PaymentRow,
        attestation_sha256: &str,
        confirmed: bool,
    ) -> Result<Mandate, Error> {
        let leaf = chain.leaf()?;
        let level = policy::level(&chain.claims)
            .ok_or_else(|| Error::Internal("a voucher chain without a level".into()))?;
        let claims =
            AuthorizationClaims {
                iss: format!("urn:ari:agent:{}", agent.id),
                sub: leaf.sub.clone(),
                aud: row.aud.clone(),
                iat: 0,
                exp: 0,
                jti: row.id.clone(),
                nonce: row.nonce.clone(),
                agent: agent.id.clone(),
                instance: agent.instance.clone(),
                vouchers: chain.digests.clone(),
                transaction_id: row.transaction_id.clone(),
                payee: row.payee.clone(),
                amount: row.amount,
                currency: row.currency.clone(),
                category: row.category.clone(),
                funds_carrier: chain.claims.iter().flat_map(|v| &v.constraints).find_map(
                    |c| match c {
                        Constraint::FundsCarrier { id } => Some(id.clone()),
                        _ => None,
                    },
                ),
                level,
                confirmed,
                log_index: 0,
                report_by: None,
                attestation_sha256: attestation_sha256.to_string(),
                facts_sha256: (row.facts != "{}")
                    .then(|| jose::b64url(&Sha256::digest(row.facts.as_bytes()))),
            };
        Ok(Mandate {
            header: Header::es256(payment::AUTHORIZATION_TYP, &agent.key.public.thumbprint()),
            claims,
        })
    }

    /// Voids an authorized decision whose signature could not be made, returning its money.
    async fn void(&self, decision: &str, chain: Arc<Chain>, agent: &Agent) {
        let id = decision.to_string();
        let about = (agent.id.clone(), agent.user.clone());
        let r = self
            .ledger
            .run(move |tx| {
                let row = ledger::payment(tx.conn(), &id)?.ok_or(StoreError::NotFound)?;
                if ledger::set_payment_status(
                    tx,
                    &id,
                    &[PaymentStatus::Authorized],
                    PaymentStatus::Void,
                    None,
                    unix_now(),
                    None,
                )? {
                    ledger::credit(tx, &chain.ids, row.amount, 1)?;
                    let mut fact = payment_fact(&row, chain.leaf_digest());
                    set(&mut fact, "reason", json!("signing_failed"));
                    tx.record(&Draft::new(Kind::PaymentVoided, fact).about(&about.0, &about.1))?;
                }
                Ok(())
            })
            .await;
        match r {
            Ok(()) => {
                tracing::warn!(%decision, "signing failed; decision voided and its amount returned")
            }
            Err(e) => {
                tracing::error!(%decision, error = %e, "signing failed and the decision could not be voided")
            }
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
        blocking(move || store.payment(&key))
            .await?
            .ok_or_else(|| Error::DecisionNotFound(id.into()))
    }

    pub(super) async fn payment_status(
        &self,
        info: &ConnInfo,
        p: StatusParams,
    ) -> Result<Value, Error> {
        let (_, agent, _) = self.caller_for_decision(info)?;
        let wait = Duration::from_millis(p.wait_ms.min(MAX_WAIT_MS));
        let deadline = tokio::time::Instant::now() + wait;
        let mut changes = self.decided.subscribe();
        loop {
            let row = self.own_decision(&agent, &p.decision).await?;
            let chain = self.resolve_chain(&row.voucher).await?;
            let v = view(&row, Some(&chain));
            if v.get("status").and_then(Value::as_str) != Some("pending_confirmation")
                || tokio::time::Instant::now() >= deadline
            {
                return Ok(v);
            }
            // Woken by any confirmation or rejection; a timeout just answers the current state.
            let _ = tokio::time::timeout_at(deadline, changes.changed()).await;
        }
    }

    pub(super) async fn payment_report(
        &self,
        info: &ConnInfo,
        p: ReportParams,
    ) -> Result<Value, Error> {
        if let Some(r) = &p.reference {
            text("reference", r)?;
        }
        let (_, agent, _) = self.caller_for_decision(info)?;
        let row = self.own_decision(&agent, &p.decision).await?;
        let chain = self.resolve_chain(&row.voucher).await?;
        let outcome = p.outcome;
        let now = unix_now();
        let id = row.id.clone();
        let about = (agent.id.clone(), agent.user.clone());
        let runtime = self
            .caller(info)
            .ok()
            .and_then(|(f, a)| self.runtime_digest(&a, &f));
        let reported = self
            .ledger
            .run(move |conn| {
                let row = ledger::payment(conn.conn(), &id)?.ok_or(StoreError::NotFound)?;
                if row.status != PaymentStatus::Authorized
                    || (row.confirm && row.authorization.is_none())
                {
                    return Ok(Err(format!(
                        "decision {id} is {}, not authorized",
                        row.status
                    )));
                }
                let allowed = matches!(
                    (row.outcome, outcome),
                    (None, _) | (Some(Outcome::Succeeded), Outcome::Refunded)
                );
                if !allowed {
                    return Ok(Err(format!(
                        "decision {id} is already reported as {}",
                        row.outcome.map_or("?", Outcome::as_str)
                    )));
                }
                match outcome {
                    Outcome::Failed => ledger::credit(conn, &chain.ids, row.amount, 1)?,
                    Outcome::Refunded => ledger::credit(conn, &chain.ids, row.amount, 0)?,
                    Outcome::Succeeded => {}
                }
                ledger::set_outcome(conn, &id, outcome, p.reference.as_deref(), now)?;
                let mut fact = payment_fact(&row, chain.leaf_digest());
                set(&mut fact, "outcome", json!(outcome.as_str()));
                set(&mut fact, "reference", json!(p.reference));
                conn.record(
                    &Draft::new(Kind::PaymentReported, fact)
                        .about(&about.0, &about.1)
                        .runtime(runtime),
                )?;
                Ok(Ok(()))
            })
            .await?;
        reported.map_err(Error::InvalidState)?;
        tracing::info!(decision = %row.id, outcome = outcome.as_str(), "payment result reported");
        let row = self.own_decision(&agent, &row.id).await?;
        Ok(view(&row, None))
    }

    pub(super) async fn voucher_delegate(
        &self,
        info: &ConnInfo,
        p: DelegateParams,
    ) -> Result<Value, Error> {
        let _gate = self.gate.read().await;
        let (_, parent_agent) = self.caller(info)?;
        let chain = self.resolve_chain(&p.voucher).await?;
        let leaf = chain.leaf()?;
        if !chain.held_by(&parent_agent) {
            return Err(Error::Forbidden(format!(
                "voucher {} is not held by agent {}",
                chain.leaf_id(),
                parent_agent.id
            )));
        }
        if chain.ids.len() >= voucher::MAX_CHAIN {
            return Err(Error::Widens(format!(
                "a chain holds at most {} vouchers",
                voucher::MAX_CHAIN
            )));
        }
        let child = self.agent(&p.agent)?;
        if child.status == AgentStatus::Retired {
            return Err(Error::InvalidState(format!(
                "agent {} is retired",
                child.id
            )));
        }
        if child.user != leaf.sub {
            return Err(Error::Forbidden(format!(
                "agent {} acts for another user than the voucher's",
                child.id
            )));
        }
        let now = unix_now();
        let claims = VoucherClaims {
            iss: format!("urn:ari:agent:{}", parent_agent.id),
            sub: leaf.sub.clone(),
            iat: now,
            nbf: p.not_before.unwrap_or(now.max(leaf.nbf)),
            exp: p.expires_at.unwrap_or(leaf.exp),
            jti: random_hex(16)?,
            vct: voucher::VOUCHER_VCT.into(),
            agent: child.id.clone(),
            cnf: Confirmation {
                jwk: child.key.public.to_jwk(),
            },
            parent: Some(chain.leaf_digest().to_string()),
            constraints: p.constraints,
        };
        let index = chain.ids.len();
        voucher::check_claims(&claims, index, voucher::Checks::at(now))
            .map_err(|e| Error::Widens(e.to_string()))?;
        voucher::check_narrowing(&claims, leaf, index).map_err(|e| Error::Widens(e.to_string()))?;
        let carve = policy::budget(&claims).map(|(_, m)| m);
        let draft = VoucherDraft::new(&claims, &parent_agent.key.public.thumbprint())
            .map_err(|e| Error::Internal(e.to_string()))?;
        let withheld = self
            .backend
            .sign::<_, ()>(parent_agent.key.id.clone(), Prepared::new(draft))
            .withheld()
            .await?;
        let job_chain = chain.clone();
        let parent_has_budget = policy::budget(leaf).is_some();
        let runtime = self
            .caller(info)
            .ok()
            .and_then(|(f, a)| self.runtime_digest(&a, &f));
        let (from, job_claims) = (parent_agent.id.clone(), claims.clone());
        let (job, commit) = self
            .ledger
            .commit(move |tx| {
                let usage = ledger::usage(tx, &job_chain.ids, now)?;
                if let Err(d) = policy::standing(&job_chain.claims, &usage, now, false) {
                    return Ok(Err(d));
                }
                if let (true, Some(amount)) = (parent_has_budget, carve)
                    && ledger::reserve(tx, job_chain.leaf_id(), amount)?.is_none()
                {
                    return Ok(Err(Denial {
                        reason: Reason::BudgetExhausted,
                        detail: format!(
                            "the parent voucher has less than {amount} left to delegate"
                        ),
                    }));
                }
                let row = super::voucher::stored(withheld.for_the_log(tx), &job_claims, carve);
                crate::store::insert_voucher(tx.conn(), &row)?;
                let mut draft =
                    super::evidence::voucher_draft(Kind::VoucherDelegated, &row, &job_claims)
                        .runtime(runtime);
                set(&mut draft.fact, "from", json!(from));
                let recorded = tx.record_signed(draft, withheld.digest(), ())?;
                Ok(Ok((withheld, recorded)))
            })
            .await?;
        let (withheld, recorded) = match job {
            Ok(done) => done,
            Err(denial) => {
                return Err(Error::Denied {
                    denial,
                    decision: None,
                });
            }
        };
        let (compact, _) = withheld.release(commit.logged(recorded)?)?;
        let row = super::voucher::stored(compact, &claims, carve);
        tracing::info!(voucher = %row.id, parent = %chain.leaf_id(), from = %parent_agent.id, to = %child.id, "voucher delegated");
        Ok(json!({ "id": row.id, "digest": row.digest, "voucher": row.compact }))
    }

    pub(super) async fn payment_list(&self, p: ListParams) -> Result<Value, Error> {
        let store = self.store.clone();
        let limit = p.limit.unwrap_or(100).min(10_000);
        let rows = blocking(move || store.payments(p.status, p.voucher.as_deref(), limit)).await?;
        Ok(json!({ "payments": rows.iter().map(|r| view(r, None)).collect::<Vec<_>>() }))
    }

    pub(super) async fn payment_show(&self, p: DecisionParam) -> Result<Value, Error> {
        let row = self.decision(&p.decision).await?;
        Ok(view(&row, None))
    }

    pub(super) async fn payment_confirm(&self, p: DecisionParam) -> Result<Value, Error> {
        let _gate = self.gate.read().await;
        let row = self.decision(&p.decision).await?;
        let chain = self.resolve_chain(&row.voucher).await?;
        let agent = self.agent(&row.agent)?;
        let frozen = agent.status != AgentStatus::Active;
        let now = unix_now();
        let deadline = policy::report_within(&chain.claims).map(|s| now.saturating_add_unsigned(s));
        let attestation_sha256 = attestation_digest(&row.attestation)?;
        let pending = self
            .mandate(&agent, &chain, &row, &attestation_sha256, true)?
            .render(deadline, now)?;
        let (job_chain, id) = (chain.clone(), row.id.clone());
        let about = (agent.id.clone(), agent.user.clone());
        let (confirmed, commit) = self
            .ledger
            .commit(move |tx| {
                let row = ledger::payment(tx.conn(), &id)?.ok_or(StoreError::NotFound)?;
                if row.status != PaymentStatus::Pending {
                    return Ok(Confirmed::NotPending(row.status));
                }
                let mut fact = payment_fact(&row, job_chain.leaf_digest());
                let usage = ledger::usage(tx, &job_chain.ids, now)?;
                if let Err(denial) = policy::standing(&job_chain.claims, &usage, now, frozen) {
                    ledger::credit(tx, &job_chain.ids, row.amount, 1)?;
                    ledger::set_payment_status(
                        tx,
                        &id,
                        &[PaymentStatus::Pending],
                        PaymentStatus::Denied,
                        Some(denial.reason.name()),
                        now,
                        None,
                    )?;
                    set(&mut fact, "reason", json!(denial.reason.name()));
                    set(&mut fact, "detail", json!(denial.detail));
                    tx.record(&Draft::new(Kind::PaymentDenied, fact).about(&about.0, &about.1))?;
                    return Ok(Confirmed::Denied(denial));
                }
                match ledger::release_hold(tx, &id, now, deadline)? {
                    Some(debited) => {
                        let input = Prepared::new(pending.fill(tx.next_index()?));
                        set(&mut fact, "mandate", json!(input.document().payload()));
                        let recorded = tx.record_signed(
                            Draft::new(Kind::PaymentConfirmed, fact)
                                .about(&about.0, &about.1)
                                .runtime(Some(attestation_sha256)),
                            input.digest(),
                            debited,
                        )?;
                        Ok(Confirmed::Authorized(recorded, input))
                    }
                    None => Ok(Confirmed::NotPending(row.status)),
                }
            })
            .await?;
        let result = match confirmed {
            Confirmed::NotPending(status) => Err(Error::InvalidState(format!(
                "decision {} is {status}, not pending",
                row.id
            ))),
            Confirmed::Denied(denial) => Err(Error::Denied {
                denial,
                decision: Some(row.id.clone()),
            }),
            Confirmed::Authorized(recorded, input) => match self
                .backend
                .sign::<_, Debited>(agent.key.id.clone(), input)
                .withheld()
                .await
            {
                Ok(withheld) => {
                    let (jwt, _) = withheld.release(commit.logged(recorded)?)?;
                    let id = row.id.clone();
                    self.ledger
                        .run(move |tx| ledger::set_authorization(tx, &id, &jwt))
                        .await?;
                    tracing::info!(decision = %row.id, "pending payment confirmed");
                    Ok(())
                }
                Err(e) => {
                    self.void(&row.id, chain.clone(), &agent).await;
                    Err(e.into())
                }
            },
        };
        self.decided.send_modify(|n| *n += 1);
        result?;
        let row = self.decision(&row.id).await?;
        Ok(view(&row, None))
    }

    pub(super) async fn payment_reject(&self, p: DecisionParam) -> Result<Value, Error> {
        if let Some(n) = &p.note {
            text("note", n)?;
        }
        let row = self.decision(&p.decision).await?;
        let chain = self.resolve_chain(&row.voucher).await?;
        let (id, now) = (row.id.clone(), unix_now());
        let user = self.agent(&row.agent).map(|a| a.user).unwrap_or_default();
        let note = p.note.clone();
        let moved = self
            .ledger
            .run(move |conn| {
                let row = ledger::payment(conn.conn(), &id)?.ok_or(StoreError::NotFound)?;
                let moved = ledger::set_payment_status(
                    conn,
                    &id,
                    &[PaymentStatus::Pending],
                    PaymentStatus::Denied,
                    Some(Reason::RejectedByOperator.name()),
                    now,
                    None,
                )?;
                if moved {
                    ledger::credit(conn, &chain.ids, row.amount, 1)?;
                    let mut fact = payment_fact(&row, chain.leaf_digest());
                    set(&mut fact, "note", json!(note));
                    conn.record(&Draft::new(Kind::PaymentRejected, fact).about(&row.agent, &user))?;
                }
                Ok(moved)
            })
            .await?;
        self.decided.send_modify(|n| *n += 1);
        if !moved {
            return Err(Error::InvalidState(format!(
                "decision {} is not pending",
                row.id
            )));
        }
        tracing::info!(decision = %row.id, note = p.note.as_deref().unwrap_or(""), "pending payment rejected");
        let row = self.decision(&row.id).await?;
        Ok(view(&row, None))
    }
}
