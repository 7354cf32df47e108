//! Voucher methods on the admin socket: issue (signed by the daemon's issuer key inside the
//! token, with its place in the status list), list, show, revoke (published in the status
//! list). Spending against vouchers is the payment methods' business.

use super::{Service, blocking};
use crate::clock::unix_now as now;
use crate::error::Error;
use crate::evidence::entry::{Draft, Kind};
use crate::identity::AgentStatus;
use crate::mandate::Frequency;
use crate::protocol::voucher::{
    IssueParams, Issuer, IssuerAdded, IssuerList, IssuerParams, IssuerRemoved, NameParam,
    VoucherList, VoucherListParams, VoucherParam, VoucherRevoked, VoucherView,
};
use crate::seal::Prepared;
use crate::store::{StoreError, StoredVoucher, VoucherStatus};
use crate::voucher::constraint::{Constraint, Currency};
use crate::voucher::{self, Confirmation, VoucherClaims, VoucherDraft};

/// The budget a voucher is issued with: the one asked for, or, for a payment count without one,
/// the count times the largest payment (what it implies; AP2 reads a recurrence only beside a
/// budget).
fn budget(p: &IssueParams) -> Option<u64> {
    p.budget.or_else(|| {
        p.max_payments
            .zip(p.max_amount)
            .map(|(n, max)| max.saturating_mul(u64::from(n)))
    })
}
use serde_json::json;

/// The constraints an issue's params ask for, in a fixed order.
fn constraints(p: &IssueParams) -> Result<Vec<Constraint>, Error> {
    let currency =
        Currency::try_from(p.currency.clone()).map_err(|e| Error::InvalidParams(e.to_string()))?;
    let mut out = vec![Constraint::AutonomyLevel { level: p.level }];
    let budget = budget(p);
    // AP2's amount range needs a high end: without one asked for, no payment can be above the
    // budget anyway.
    if let Some(max) = p.max_amount.or(budget) {
        out.push(Constraint::AmountRange {
            currency: currency.clone(),
            min: p.min_amount,
            max: Some(max),
        });
    }
    if let Some(max) = budget {
        out.push(Constraint::Budget {
            currency: currency.clone(),
            max,
        });
    }
    if let Some(n) = p.max_payments {
        out.push(Constraint::AgentRecurrence {
            max_occurrences: n,
            frequency: p.period.unwrap_or(Frequency::OnDemand),
        });
    } else if let Some(frequency) = p.period {
        out.push(Constraint::AgentRecurrence {
            max_occurrences: u32::MAX,
            frequency,
        });
    }
    if !p.payees.is_empty() {
        out.push(Constraint::AllowedPayees {
            payees: p.payees.clone(),
        });
    }
    if !p.categories.is_empty() {
        out.push(Constraint::Categories {
            categories: p.categories.clone(),
        });
    }
    if let Some(id) = &p.funds_carrier {
        out.push(Constraint::FundsCarrier { id: id.clone() });
    }
    if let Some(seconds) = p.report_within_s {
        out.push(Constraint::ReportWithin { seconds });
    }
    if p.not_before_execution.is_some() || p.not_after_execution.is_some() {
        out.push(Constraint::ExecutionDate {
            not_before: p.not_before_execution,
            not_after: p.not_after_execution,
        });
    }
    if !p.conditions.is_empty() {
        out.push(Constraint::Conditions {
            all: p.conditions.clone(),
        });
    }
    if out.iter().all(|c| {
        !matches!(
            c,
            Constraint::AmountRange { .. } | Constraint::Budget { .. }
        )
    }) {
        return Err(Error::InvalidParams(
            "a voucher needs an amount limit: max_amount and/or budget".into(),
        ));
    }
    Ok(out)
}

/// The stored form of a voucher this daemon signed (issued or delegated), from its compact form.
pub(super) fn stored(
    compact: String,
    claims: &VoucherClaims,
    budget: Option<u64>,
) -> StoredVoucher {
    StoredVoucher {
        id: claims.jti.clone(),
        digest: voucher::digest(&compact),
        agent: claims.agent.clone(),
        compact,
        status: VoucherStatus::Active,
        parent: claims.parent.clone(),
        budget,
        spent: 0,
        reserved: 0,
        payments: 0,
        issued_at: claims.iat,
        expires_at: claims.exp,
    }
}

impl Service {
    pub(super) async fn voucher_issue(&self, p: IssueParams) -> Result<VoucherView, Error> {
        let agent = self.agent(&p.agent)?;
        if agent.status == AgentStatus::Retired {
            return Err(Error::InvalidState(format!(
                "agent {} is retired",
                agent.id
            )));
        }
        // Held until the voucher is committed: a rotation waits, and after it the old key
        // signs nothing.
        let keys = self.daemon_keys.read().await;
        let issuer = super::role_key(&keys, "issuer")?;
        let issued = now();
        let mut claims = VoucherClaims {
            iss: format!("urn:ari:issuer:{}", issuer.public.thumbprint()),
            sub: agent.user.clone(),
            iat: issued,
            nbf: p.not_before.unwrap_or(issued),
            exp: p.expires_at,
            jti: super::random_hex(16)?,
            vct: crate::mandate::OPEN_VCT.into(),
            agent: agent.id.clone(),
            cnf: Confirmation {
                jwk: agent.key.public.to_jwk(),
            },
            parent: None,
            constraints: constraints(&p)?,
            status: None,
        };
        if claims.exp <= issued {
            return Err(Error::InvalidParams("expires_at is in the past".into()));
        }
        let checks = voucher::Checks {
            now: None,
            allow_unknown: false,
        };
        voucher::check_claims(&claims, 0, checks)
            .map_err(|e| Error::InvalidParams(e.to_string()))?;
        // Its place in the status list, in a commit of its own before the signature.
        let status = self.take_status().await?;
        let idx = status.status_list.idx;
        claims.status = Some(status);
        let draft = VoucherDraft::root(
            &claims,
            &issuer.public.thumbprint(),
            &mut super::salts_for(&claims)?,
        )
        .map_err(|e| Error::InvalidParams(e.to_string()))?;
        let withheld = self
            .backend
            .sign::<_, ()>(issuer.id.clone(), Prepared::new(draft))
            .withheld()
            .await?;
        // The ledger's budget column is a lifetime total, which its trigger holds spending to; a
        // periodic budget is the policy's, per period.
        let budget = budget(&p).filter(|_| p.period.is_none());
        let job_claims = claims.clone();
        let ((withheld, recorded), commit) = self
            .ledger
            .commit(move |tx| {
                let row = stored(withheld.for_the_log(tx), &job_claims, budget);
                crate::store::insert_voucher(tx.conn(), &row)?;
                crate::store::set_status_index(tx.conn(), &row.id, idx)?;
                let draft = super::evidence::voucher_draft(Kind::VoucherIssued, &row, &job_claims);
                let recorded = tx.record_signed(draft, withheld.digest(), ())?;
                Ok((withheld, recorded))
            })
            .await?;
        drop(keys);
        let (compact, _) = withheld.release(commit.logged(recorded)?)?;
        let stored = stored(compact, &claims, budget);
        self.status_placed(idx);
        tracing::info!(voucher = %stored.id, agent = %agent.id, status_idx = idx, "voucher issued");
        Ok(stored)
    }

    pub(super) async fn voucher_list(&self, p: VoucherListParams) -> Result<VoucherList, Error> {
        let store = self.store.clone();
        let list = blocking(move || store.vouchers(p.agent.as_deref())).await?;
        Ok(VoucherList { vouchers: list })
    }

    async fn find_voucher(&self, id: &str) -> Result<StoredVoucher, Error> {
        let (store, key) = (self.store.clone(), id.to_string());
        blocking(move || store.voucher(&key))
            .await?
            .ok_or_else(|| Error::VoucherNotFound(id.into()))
    }

    pub(super) async fn voucher_show(&self, p: VoucherParam) -> Result<VoucherView, Error> {
        self.find_voucher(&p.voucher).await
    }

    pub(super) async fn voucher_revoke(&self, p: VoucherParam) -> Result<VoucherRevoked, Error> {
        let v = self.find_voucher(&p.voucher).await?;
        // Exclusive: every decision already past the gate finishes (signed or not) before the
        // revocation commits, and every later one sees it.
        let _gate = self.gate.write().await;
        let id = v.id.clone();
        let user = self.agent(&v.agent).map(|a| a.user).unwrap_or_default();
        let draft = Draft::new(
            Kind::VoucherRevoked,
            json!({ "voucher": v.id, "digest": v.digest }),
        )
        .about(&v.agent, &user);
        let changed = match self
            .ledger
            .run(move |tx| {
                let changed = crate::ledger::revoke(tx, &id, now())?;
                if changed {
                    tx.record(&draft)?;
                }
                Ok(changed)
            })
            .await
        {
            Ok(changed) => changed,
            Err(StoreError::NotFound) => return Err(Error::VoucherNotFound(v.id)),
            Err(e) => return Err(e.into()),
        };
        if changed {
            self.status_changed();
            tracing::info!(voucher = %v.id, "voucher revoked");
        }
        Ok(VoucherRevoked {
            id: v.id,
            status: VoucherStatus::Revoked,
        })
    }

    pub(super) async fn voucher_import(&self, p: VoucherParam) -> Result<VoucherView, Error> {
        if !p.voucher.contains('.') {
            return Err(Error::InvalidParams(
                "voucher must be the voucher itself (an SD-JWT: JWS, disclosures, each ending in '~')".into(),
            ));
        }
        let chain = self.resolve_chain(&p.voucher).await?;
        let id = chain.ids.last().cloned().unwrap_or_default();
        self.find_voucher(&id).await
    }

    pub(super) async fn issuer_add(&self, p: IssuerParams) -> Result<IssuerAdded, Error> {
        crate::identity::validate_agent_id(&p.name)
            .map_err(|m| Error::InvalidParams(format!("issuer name: {m}")))?;
        let key = p
            .jwk
            .to_public_key()
            .map_err(|e| Error::InvalidParams(format!("jwk: {e}")))?;
        if key == self.daemon_key("issuer").await?.public {
            return Err(Error::IssuerExists(
                "that is the daemon's own issuer key".into(),
            ));
        }
        let draft = Draft::new(
            Kind::IssuerAdded,
            json!({ "name": p.name, "kid": key.thumbprint(), "jwk": key.to_jwk() }),
        );
        let name = p.name.clone();
        // A trust anchor changes through the writer, with its entry, like everything else.
        let added = self
            .ledger
            .run(move |tx| {
                crate::store::insert_issuer(tx.conn(), &name, &key)?;
                tx.record(&draft).map(drop)
            })
            .await
            .map_err(Error::from);
        match added {
            Ok(()) => {}
            Err(Error::Store(StoreError::Exists)) => {
                return Err(Error::IssuerExists(format!(
                    "an issuer named {:?} or with this key is registered",
                    p.name
                )));
            }
            Err(e) => return Err(e),
        }
        tracing::info!(issuer = %p.name, kid = %key.thumbprint(), "issuer registered");
        self.publish_keys().await;
        Ok(IssuerAdded {
            kid: key.thumbprint(),
            name: p.name,
        })
    }

    pub(super) async fn issuer_list(&self) -> Result<IssuerList, Error> {
        let store = self.store.clone();
        let list = blocking(move || store.issuers()).await?;
        let own = self.daemon_key("issuer").await?;
        let issuer = |name: &str, key: &crate::jose::PublicKey, own: bool| Issuer {
            name: name.to_string(),
            kid: key.thumbprint(),
            jwk: key.to_jwk(),
            own,
        };
        let mut issuers = vec![issuer("arid", &own.public, true)];
        issuers.extend(list.iter().map(|(name, k)| issuer(name, k, false)));
        Ok(IssuerList { issuers })
    }

    pub(super) async fn issuer_remove(&self, p: NameParam) -> Result<IssuerRemoved, Error> {
        let name = p.name.clone();
        let removed = self
            .ledger
            .run(move |tx| {
                let key = crate::store::remove_issuer(tx.conn(), &name)?;
                tx.record(&Draft::new(
                    Kind::IssuerRemoved,
                    json!({ "name": name, "kid": key.thumbprint() }),
                ))
                .map(drop)
            })
            .await
            .map_err(Error::from);
        match removed {
            Ok(()) => {}
            Err(Error::Store(StoreError::NotFound)) => {
                return Err(Error::InvalidParams(format!("no issuer {:?}", p.name)));
            }
            Err(e) => return Err(e),
        }
        // Chains verified under the removed key must be verified again.
        if let Ok(mut cache) = self.chains.lock() {
            cache.clear();
        }
        tracing::info!(issuer = %p.name, "issuer removed");
        self.publish_keys().await;
        Ok(IssuerRemoved {
            name: p.name,
            removed: true,
        })
    }
}
