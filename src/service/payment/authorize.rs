//! `payment.authorize`: the decision, the debit, the entry and the signature, in the order the
//! module above describes; and voiding a decision whose signature could not be made.

use super::{Chain, decision_id, payment_fact, request, set, text};
use crate::attest::{self, Bundle};
use crate::backend::KeyId;
use crate::clock::unix_now;
use crate::error::{Error, Internal};
use crate::evidence::entry::{Draft, Kind};
use crate::identity::{Agent, CallerFacts};
use crate::jose::{self, SigningInput};
use crate::ledger::{self, Debited, PaymentRow, PaymentStatus, Recorded, Staged};
use crate::payment::{self, AuthorizationClaims, AuthorizationDraft, Binding, Receipt};
use crate::policy::{self, Context, Denial, Reason, Verdict};
use crate::protocol::payment::{Authorization, AuthorizeParams, Authorized, Held, PaymentParams};
use crate::seal::{self, KeyStore, Prepared};
use crate::service::{ConnInfo, Service};
use crate::store::StoreError;
use crate::voucher::constraint::Constraint;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// What one authorization job decided.
enum Decided {
    Denied(Denial),
    Held,
    /// The authorization's entry, carrying the debit; the commit makes it the proof that
    /// releases the signature.
    Authorized(Recorded<Debited>),
}

/// An authorization's signature being made: withheld until its entry and debit are durable.
type Signing = seal::Signing<SigningInput, Debited>;

/// Where an authorization's signature is asked for, decided inside the ledger job. Both ways
/// were measured (`docs/performance.md`, "4 December: the signature asked for from the ledger
/// writer").
enum Begun {
    /// By the job itself, because its group holds other jobs: under load, sending the request
    /// through the caller's task would cost a hand-off per payment.
    Started(Signing),
    /// By the caller, once told: the job is alone in its group. Woken from the writer just
    /// before it commits, the token thread made a lone payment's answer later.
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
    fn start(self, keys: &KeyStore) -> Signing {
        match self {
            Self::Started(signing) => signing,
            Self::Ready(key, input) => keys.sign(key, input),
        }
    }
}

/// An authorization's claims, waiting for the ledger to give it its log index.
pub(super) struct Mandate {
    claims: AuthorizationClaims,
    /// The signer's thumbprint.
    kid: String,
    /// The leaf voucher's segment, as presented, which the authorization binds to.
    leaf: String,
    /// The attestation bundle, base64url.
    attestation: String,
}

impl Mandate {
    /// The authorization as it will be signed at `now`, rendered but for its log index, which
    /// only the ledger knows: filling that in is all the ledger's serial thread has to do.
    pub(super) fn render(
        mut self,
        report_by: Option<i64>,
        now: i64,
    ) -> Result<AuthorizationDraft, Error> {
        self.claims.log_index = 0;
        self.claims.report_by = report_by;
        self.claims.iat = now;
        self.claims.exp = now + payment::AUTHORIZATION_TTL_S;
        let salts = [
            crate::service::random_salt()?,
            crate::service::random_salt()?,
        ];
        Ok(AuthorizationDraft::new(
            &self.claims,
            &self.leaf,
            &self.kid,
            &self.attestation,
            [&salts[0], &salts[1]],
        )
        .map_err(Internal::jose("a payment authorization"))?)
    }
}

/// How long past the checkpoint interval an authorization waits for the checkpoint its
/// receipt's `tlog_proof` needs; without one in time the receipt goes without, and
/// `payment.status` carries it later.
const PROOF_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

impl Service {
    pub(in crate::service) async fn payment_authorize(
        &self,
        info: &ConnInfo,
        mut p: AuthorizeParams,
    ) -> Result<Authorization, Error> {
        let want_proof = p.proof;
        let gate = self.gate.read().await;
        attest::validate_nonce(&p.nonce).map_err(|e| Error::InvalidParams(e.to_string()))?;
        text("aud", &p.aud)?;
        let (transaction_id, checkout) = match p.checkout_jwt.take() {
            Some(jwt) => (self.bind_checkout(&jwt, &p.payment).await?, Some(jwt)),
            None => (
                p.payment.transaction_id.take().ok_or_else(|| {
                    Error::InvalidParams(
                        "payment.transaction_id is required without a checkout_jwt".into(),
                    )
                })?,
                None,
            ),
        };
        let req = request(p.payment, transaction_id)?;
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
            checkout,
            receipt: None,
        };
        let attestation_for_hold = std::mem::take(&mut row.attestation);
        let job_chain = chain.clone();
        let report_within = policy::report_within(&chain.claims);
        let report_deadline = report_within.map(|s| now.saturating_add_unsigned(s));
        let AuthorizationDraft {
            pending,
            disclosures,
        } = self
            .mandate(
                &agent,
                &chain,
                &row,
                &attestation,
                &attestation_sha256,
                false,
            )?
            .render(report_deadline, now)?;
        let logged_disclosure = disclosures.first().cloned().unwrap_or_default();
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
                let usage = ledger::usage(tx, &job_chain.ids, &job_chain.periods(now), now)?;
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
                                json!({
                                    "mandate": input.document().payload(),
                                    "closed": logged_disclosure,
                                }),
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
                Ok(Authorization::PendingConfirmation(Held { decision: id }))
            }
            Decided::Authorized(recorded) => {
                let Some((seq, index, signed)) = signed else {
                    return Err(Internal::Invariant("authorized without a signature").into());
                };
                let logged = commit.logged(recorded)?;
                let jwt = match signed {
                    Ok(withheld) => payment::segment(&withheld.release(logged)?.0, &disclosures),
                    Err(e) => {
                        self.void(&id, chain.clone(), &agent).await;
                        return Err(e.into());
                    }
                };
                // Asked for, the receipt carries the entry's inclusion in the next checkpoint,
                // which comes within the checkpoint interval unless the key store is failing.
                // Signed and durable: a freeze or revocation need not wait for the proof.
                drop(gate);
                let tlog_proof = if want_proof {
                    self.tlog_proof(index, self.settings().checkpoint_interval + PROOF_WAIT)
                        .await?
                } else {
                    None
                };
                Ok(Authorization::Authorized(Authorized {
                    decision: id,
                    ledger_seq: seq,
                    log_index: index,
                    receipt: Receipt {
                        tlog_proof,
                        ..Receipt::new(&chain.compacts, jwt, attestation)
                    },
                }))
            }
        }
    }

    /// Checks a merchant's checkout JWT for a payment: signed by the key registered for the
    /// merchant it names, not expired, and for this payee, amount and currency (and this
    /// transaction id, if the agent gave one). Returns the checkout's hash, the transaction id
    /// AP2 and Verifiable Intent define.
    async fn bind_checkout(&self, jwt: &str, p: &PaymentParams) -> Result<String, Error> {
        let refused = Error::CheckoutRefused;
        let merchant = crate::ap2::checkout_merchant(jwt)
            .ok_or_else(|| refused("the checkout names no merchant id".into()))?;
        let key = self.merchant_key(&merchant).await?.ok_or_else(|| {
            refused(format!(
                "no merchant {merchant:?} is registered (arictl merchant add)"
            ))
        })?;
        let c = crate::ap2::verify_checkout(jwt, &key, unix_now())
            .map_err(|e| refused(e.to_string()))?;
        if c.merchant.id != p.payee {
            return Err(refused(format!(
                "the checkout is for merchant {:?}, the payment for {:?}",
                c.merchant.id, p.payee
            )));
        }
        if c.amount.amount != p.amount || c.amount.currency != p.currency {
            return Err(refused(format!(
                "the checkout's total is {} {}, the payment {} {}",
                c.amount.amount, c.amount.currency, p.amount, p.currency
            )));
        }
        if p.transaction_id.as_ref().is_some_and(|t| *t != c.hash) {
            return Err(refused("transaction_id is not the checkout's hash".into()));
        }
        Ok(c.hash)
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
        let bytes = serde_json::to_vec(&bundle).map_err(Internal::json("an attestation bundle"))?;
        Ok((jose::b64url(&bytes), jose::b64url(&Sha256::digest(&bytes))))
    }

    /// Everything an authorization of `row` will say that is known before the ledger decides.
    pub(super) fn mandate(
        &self,
        agent: &Agent,
        chain: &Chain,
        row: &PaymentRow,
        attestation: &str,
        attestation_sha256: &str,
        confirmed: bool,
    ) -> Result<Mandate, Error> {
        let leaf = chain.leaf()?;
        let level = policy::level(&chain.claims)
            .ok_or(Internal::Invariant("a voucher chain without a level"))?;
        let claims = AuthorizationClaims {
            sub: leaf.sub.clone(),
            aud: row.aud.clone(),
            iat: 0,
            exp: 0,
            jti: row.id.clone(),
            nonce: row.nonce.clone(),
            agent: agent.id.clone(),
            instance: agent.instance.clone(),
            transaction_id: row.transaction_id.clone(),
            checkout_verified: row.checkout.is_some(),
            payee: row.payee.clone(),
            amount: row.amount,
            currency: row.currency.clone(),
            category: row.category.clone(),
            funds_carrier: payment::instrument(
                chain
                    .claims
                    .iter()
                    .flat_map(|v| &v.constraints)
                    .find_map(|c| match c {
                        Constraint::FundsCarrier { id } => Some(id.as_str()),
                        _ => None,
                    }),
                &leaf.sub,
            )
            .id,
            level,
            confirmed,
            log_index: 0,
            report_by: None,
            attestation_sha256: attestation_sha256.to_string(),
            facts_sha256: (row.facts != "{}")
                .then(|| jose::b64url(&Sha256::digest(row.facts.as_bytes()))),
        };
        Ok(Mandate {
            claims,
            kid: agent.key.public.thumbprint(),
            leaf: chain.leaf_compact().to_string(),
            attestation: attestation.to_string(),
        })
    }

    /// Voids an authorized decision whose signature could not be made, returning its money.
    pub(super) async fn void(&self, decision: &str, chain: Arc<Chain>, agent: &Agent) {
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
}
