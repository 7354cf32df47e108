//! `payment.status` (waiting for a held payment's decision) and `payment.report` (an agent's
//! account of how a payment ended, with the refund of a failed or refunded one).

use super::{MAX_WAIT_MS, payment_fact, set, text, view};
use crate::clock::unix_now;
use crate::error::Error;
use crate::evidence::entry::{Draft, Kind};
use crate::ledger::{self, Outcome, PaymentStatus};
use crate::protocol::payment::{DecisionStatus, DecisionView, ReportParams, StatusParams};
use crate::service::{ConnInfo, Service, blocking};
use crate::store::StoreError;
use serde_json::json;
use std::time::Duration;

impl Service {
    /// Checks that `authorization` is the one this daemon signed for decision `row`: a terminal
    /// hop signed with the agent's key (which signs only what the daemon builds), naming the
    /// decision, whose payload is the one the decision's evidence entry records.
    async fn signed_here(
        &self,
        authorization: &str,
        row: &ledger::PaymentRow,
        agent: &crate::identity::Agent,
    ) -> Result<(), Error> {
        let not_ours = || {
            Error::ReceiptRefused(format!(
                "the authorization given is not the one signed for decision {}",
                row.id
            ))
        };
        let segment = crate::sdjwt::split(authorization)
            .ok()
            .and_then(|mut s| s.pop())
            .ok_or_else(not_ours)?;
        let (_, payload) = crate::jose::verify_with(&segment.jwt, &agent.key.public, |_| Ok(()))
            .map_err(|_| not_ours())?;
        let claims: serde_json::Value = serde_json::from_slice(&payload).map_err(|_| not_ours())?;
        let index = claims.get("log_index").and_then(serde_json::Value::as_u64);
        if claims.get("jti").and_then(serde_json::Value::as_str) != Some(row.id.as_str()) {
            return Err(not_ours());
        }
        let index = index.ok_or_else(not_ours)?;
        let store = self.store.clone();
        let found = blocking(move || store.read(|c| crate::ledger::log::entry(c, index))).await?;
        let entry = found
            .and_then(|(_, bytes)| crate::evidence::entry::parse(&bytes).ok())
            .ok_or_else(not_ours)?;
        let b64 = segment.jwt.split('.').nth(1).unwrap_or_default();
        let recorded = matches!(entry.kind, Kind::PaymentAuthorized | Kind::PaymentConfirmed)
            && entry
                .fact
                .get("decision")
                .and_then(serde_json::Value::as_str)
                == Some(row.id.as_str())
            && entry
                .fact
                .get("mandate")
                .and_then(serde_json::Value::as_str)
                == Some(b64);
        if recorded { Ok(()) } else { Err(not_ours()) }
    }

    /// Checks a payment provider's AP2 receipt for decision `row`: signed by a registered
    /// provider, its `reference` the hash of the authorization this daemon signed (as AP2's SDK
    /// computes it), its status the reported outcome. The provider's name and the receipt.
    async fn check_receipt(
        &self,
        jwt: &str,
        row: &ledger::PaymentRow,
        presented: Option<&str>,
        agent: &crate::identity::Agent,
        outcome: Outcome,
    ) -> Result<(String, crate::ap2::PaymentReceipt), Error> {
        let refused = Error::ReceiptRefused;
        let authorization = match (row.authorization.as_deref(), presented) {
            (Some(kept), _) => kept,
            (None, Some(a)) => {
                self.signed_here(a, row, agent).await?;
                a
            }
            (None, None) => {
                return Err(refused(format!(
                    "give the authorization the receipt answers (`authorization`): decision {} \
                     is not a held one, whose copy the daemon keeps",
                    row.id
                )));
            }
        };
        let reference = crate::ap2::receipt_reference(authorization);
        let providers = self.provider_keys().await?;
        if providers.is_empty() {
            return Err(refused(
                "no payment provider is registered (arictl provider add)".into(),
            ));
        }
        let mut why = String::new();
        for (name, key) in providers {
            match crate::ap2::verify_receipt(jwt, &key, &reference) {
                Ok(r) => {
                    let agrees = matches!(
                        (r.status(), outcome),
                        (crate::ap2::ReceiptStatus::Success, Outcome::Succeeded)
                            | (crate::ap2::ReceiptStatus::Error, Outcome::Failed)
                    );
                    if !agrees {
                        return Err(refused(format!(
                            "the receipt says {}, the report {}",
                            r.status(),
                            outcome.as_str()
                        )));
                    }
                    return Ok((name, r));
                }
                Err(e) => why = e.to_string(),
            }
        }
        Err(refused(format!(
            "no registered provider's key verifies this receipt for this payment: {why}"
        )))
    }

    pub(in crate::service) async fn payment_status(
        &self,
        info: &ConnInfo,
        p: StatusParams,
    ) -> Result<DecisionView, Error> {
        let (_, agent, _) = self.caller_for_decision(info)?;
        let wait = Duration::from_millis(p.wait_ms.min(MAX_WAIT_MS));
        let deadline = tokio::time::Instant::now() + wait;
        let mut changes = self.decided.subscribe();
        loop {
            let row = self.own_decision(&agent, &p.decision).await?;
            let chain = self.resolve_chain(&row.voucher).await?;
            let mut v = view(&row, Some(&chain));
            if v.status != DecisionStatus::PendingConfirmation
                || tokio::time::Instant::now() >= deadline
            {
                if let Some(r) = v.receipt.as_mut() {
                    r.tlog_proof = self.receipt_proof(&r.authorization).await?;
                }
                return Ok(v);
            }
            // Woken by any confirmation or rejection; a timeout just answers the current state.
            let _ = tokio::time::timeout_at(deadline, changes.changed()).await;
        }
    }

    /// The `tlog_proof` of the entry an authorization names in its `log_index` claim, once a
    /// checkpoint covers it: waits about one checkpoint interval for that, no more (a caller
    /// asking again gets it later).
    async fn receipt_proof(&self, authorization: &str) -> Result<Option<String>, Error> {
        let index = authorization
            .split('.')
            .nth(1)
            .and_then(|p| crate::jose::b64url_decode(p).ok())
            .and_then(|p| serde_json::from_slice::<serde_json::Value>(&p).ok())
            .and_then(|c| c.get("log_index").and_then(serde_json::Value::as_u64));
        match index {
            Some(index) => {
                let wait = self.settings().checkpoint_interval + Duration::from_millis(250);
                self.tlog_proof(index, wait).await
            }
            None => Ok(None),
        }
    }

    pub(in crate::service) async fn payment_report(
        &self,
        info: &ConnInfo,
        p: ReportParams,
    ) -> Result<DecisionView, Error> {
        if let Some(r) = &p.reference {
            text("reference", r)?;
        }
        let (_, agent, _) = self.caller_for_decision(info)?;
        let row = self.own_decision(&agent, &p.decision).await?;
        let receipt = match &p.receipt_jwt {
            Some(jwt) => Some(
                self.check_receipt(jwt, &row, p.authorization.as_deref(), &agent, p.outcome)
                    .await?,
            ),
            None => None,
        };
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
                ledger::set_outcome(
                    conn,
                    &id,
                    outcome,
                    p.reference.as_deref(),
                    p.receipt_jwt.as_deref(),
                    now,
                )?;
                let mut fact = payment_fact(&row, chain.leaf_digest());
                set(&mut fact, "outcome", json!(outcome.as_str()));
                set(&mut fact, "reference", json!(p.reference));
                // A report is the agent's word unless a registered provider signed it.
                set(&mut fact, "receipt_verified", json!(receipt.is_some()));
                if let (Some(jwt), Some((provider, r))) = (&p.receipt_jwt, &receipt) {
                    set(
                        &mut fact,
                        "receipt",
                        json!({ "provider": provider, "jwt": jwt, "claims": r }),
                    );
                }
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
}
