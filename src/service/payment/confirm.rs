//! The operator's side of payments: listing and showing decisions, and confirming or rejecting
//! held (L2) ones. A confirmation is decided, debited and recorded like an authorization, and
//! its signature leaves only with the proof of its entry.

use super::{payment_fact, set, text, view};
use crate::clock::unix_now;
use crate::error::{Error, Internal};
use crate::evidence::entry::{Draft, Kind};
use crate::identity::AgentStatus;
use crate::jose::{self, SigningInput};
use crate::ledger::{self, Debited, PaymentStatus, Recorded};
use crate::policy::{self, Denial, Reason};
use crate::protocol::payment::{
    DecisionParam, DecisionView, PaymentList, PaymentListParams, RejectParams,
};
use crate::seal::Prepared;
use crate::service::{Service, blocking};
use crate::store::StoreError;
use serde_json::json;
use sha2::{Digest, Sha256};

/// What a confirmation job decided.
enum Confirmed {
    NotPending(PaymentStatus),
    Denied(Denial),
    Authorized(Recorded<Debited>, Prepared<SigningInput>),
}

/// The digest an authorization carries of its (base64url) attestation bundle.
fn attestation_digest(bundle: &str) -> Result<String, Error> {
    let bytes =
        jose::b64url_decode(bundle).map_err(Internal::jose("a stored attestation bundle"))?;
    Ok(jose::b64url(&Sha256::digest(&bytes)))
}

impl Service {
    pub(in crate::service) async fn payment_list(
        &self,
        p: PaymentListParams,
    ) -> Result<PaymentList, Error> {
        let store = self.store.clone();
        let limit = p.limit.unwrap_or(100).min(10_000);
        let rows = blocking(move || {
            store.read(|c| crate::ledger::payments(c, p.status, p.voucher.as_deref(), limit))
        })
        .await?;
        Ok(PaymentList {
            payments: rows.iter().map(|r| view(r, None)).collect(),
        })
    }

    pub(in crate::service) async fn payment_show(
        &self,
        p: DecisionParam,
    ) -> Result<DecisionView, Error> {
        let row = self.decision(&p.decision).await?;
        Ok(view(&row, None))
    }

    pub(in crate::service) async fn payment_confirm(
        &self,
        p: DecisionParam,
    ) -> Result<DecisionView, Error> {
        let _gate = self.gate.read().await;
        let row = self.decision(&p.decision).await?;
        let chain = self.resolve_chain(&row.voucher).await?;
        let agent = self.agent(&row.agent)?;
        let frozen = agent.status != AgentStatus::Active;
        let now = unix_now();
        let deadline = policy::report_within(&chain.claims).map(|s| now.saturating_add_unsigned(s));
        let attestation_sha256 = attestation_digest(&row.attestation)?;
        let crate::payment::AuthorizationDraft {
            pending,
            disclosures,
        } = self
            .mandate(
                &agent,
                &chain,
                &row,
                &row.attestation,
                &attestation_sha256,
                true,
            )?
            .render(deadline, now)?;
        let logged_disclosure = disclosures.first().cloned().unwrap_or_default();
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
                let usage = ledger::usage(tx, &job_chain.ids, &job_chain.periods(now), now)?;
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
                        set(&mut fact, "closed", json!(logged_disclosure));
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
                    let jwt = crate::payment::segment(&jwt, &disclosures);
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

    pub(in crate::service) async fn payment_reject(
        &self,
        p: RejectParams,
    ) -> Result<DecisionView, Error> {
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
