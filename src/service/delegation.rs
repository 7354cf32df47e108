//! `voucher.delegate`: an agent hands part of its voucher to another of the same user's agents.
//! The child voucher may only narrow its parent; it is signed by the parent agent's key and
//! leaves only with the proof of its durable entry, which commits with the parent's reservation.

use super::payment::set;
use super::random_hex;
use super::{ConnInfo, Service};
use crate::clock::unix_now;
use crate::error::{Error, Internal};
use crate::evidence::entry::Kind;
use crate::identity::AgentStatus;
use crate::ledger;
use crate::policy::{self, Denial, Reason};
use crate::protocol::voucher::{DelegateParams, Delegated};
use crate::seal::Prepared;
use crate::voucher::{self, Confirmation, VoucherClaims, VoucherDraft};
use serde_json::json;

impl Service {
    pub(super) async fn voucher_delegate(
        &self,
        info: &ConnInfo,
        p: DelegateParams,
    ) -> Result<Delegated, Error> {
        let _gate = self.gate.read().await;
        let (_, parent_agent) = self.caller(info)?;
        let chain = self.resolve_chain(&p.voucher).await?;
        let leaf = chain.leaf()?;
        if let Some(f) = policy::period(leaf) {
            return Err(Error::InvalidParams(format!(
                "voucher {} has limits per {f:?} period, which this version does not delegate",
                chain.leaf_id()
            )));
        }
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
        let mut claims = VoucherClaims {
            iss: format!("urn:ari:agent:{}", parent_agent.id),
            sub: leaf.sub.clone(),
            iat: now,
            nbf: p.not_before.unwrap_or(now.max(leaf.nbf)),
            exp: p.expires_at.unwrap_or(leaf.exp),
            jti: random_hex(16)?,
            vct: crate::mandate::OPEN_VCT.into(),
            agent: child.id.clone(),
            cnf: Confirmation {
                jwk: child.key.public.to_jwk(),
            },
            parent: Some(chain.leaf_digest().to_string()),
            constraints: voucher::ap2::read_limits(&p.constraints, p.a2p2)
                .map_err(|e| Error::InvalidParams(format!("constraints: {e}")))?,
            status: None,
        };
        let index = chain.ids.len();
        voucher::check_claims(&claims, index, voucher::Checks::at(now))
            .map_err(|e| Error::Widens(e.to_string()))?;
        voucher::check_narrowing(&claims, leaf, index).map_err(|e| Error::Widens(e.to_string()))?;
        // Its place in the status list, taken once the request is known to be sound, in a
        // commit of its own before the signature.
        let status = self.take_status().await?;
        let idx = status.status_list.idx;
        claims.status = Some(status);
        if policy::period(&claims).is_some() {
            return Err(Error::InvalidParams(
                "a delegated voucher's limits cannot be per period in this version".into(),
            ));
        }
        let carve = policy::budget(&claims).map(|(_, m)| m);
        let draft = VoucherDraft::delegation(
            &claims,
            &parent_agent.key.public.thumbprint(),
            chain.leaf_compact(),
            &mut super::salts_for(&claims)?,
        )
        .map_err(|e| Error::InvalidParams(e.to_string()))?;
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
                let usage = ledger::usage(tx, &job_chain.ids, &job_chain.periods(now), now)?;
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
                crate::store::set_status_index(tx.conn(), &row.id, idx)?;
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
        self.status_placed(idx);
        tracing::info!(voucher = %row.id, parent = %chain.leaf_id(), from = %parent_agent.id, to = %child.id, "voucher delegated");
        let mut segments = chain.compacts.clone();
        segments.push(row.compact);
        Ok(Delegated {
            id: row.id,
            digest: row.digest,
            voucher: voucher::join(&segments)
                .map_err(|_| Internal::Invariant("a voucher chain does not join"))?,
        })
    }
}
