//! Voucher methods on the admin socket: issue (signed by the daemon's issuer key inside the
//! token), list, show, revoke. Spending against vouchers is the payment methods' business.

use super::{Service, blocking};
use crate::clock::unix_now as now;
use crate::error::{Error, Internal};
use crate::evidence::entry::{Draft, Kind};
use crate::identity::AgentStatus;
use crate::jose::{Header, Jwk, SigningInput};
use crate::seal::Prepared;
use crate::store::{StoreError, StoredVoucher, VoucherStatus};
use crate::voucher::constraint::{AutonomyLevel, Constraint, Currency};
use crate::voucher::revocation::{REVOCATION_TYP, RevocationList, Revoked};
use crate::voucher::{self, Confirmation, VoucherClaims, VoucherDraft};
use serde::Deserialize;
use serde_json::{Value, json};

/// Params of `admin.voucher_issue`. Amounts in minor units, times in Unix seconds.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct IssueParams {
    agent: String,
    level: AutonomyLevel,
    currency: String,
    #[serde(default)]
    min_amount: Option<u64>,
    #[serde(default)]
    max_amount: Option<u64>,
    #[serde(default)]
    budget: Option<u64>,
    #[serde(default)]
    max_payments: Option<u32>,
    #[serde(default)]
    payees: Vec<String>,
    #[serde(default)]
    categories: Vec<String>,
    #[serde(default)]
    funds_carrier: Option<String>,
    #[serde(default)]
    not_before: Option<i64>,
    expires_at: i64,
    #[serde(default)]
    report_within_s: Option<u64>,
    #[serde(default)]
    conditions: Vec<String>,
    #[serde(default)]
    not_after_execution: Option<i64>,
    #[serde(default)]
    not_before_execution: Option<i64>,
}

/// Params of `admin.issuer_add`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct IssuerParams {
    name: String,
    jwk: Value,
}

/// `{ "name": NAME }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NameParam {
    name: String,
}

/// Params of `admin.voucher_list`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListParams {
    #[serde(default)]
    agent: Option<String>,
}

/// `{ "voucher": ID }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct VoucherParam {
    voucher: String,
}

fn view(v: &StoredVoucher) -> Value {
    json!({
        "id": v.id,
        "digest": v.digest,
        "agent": v.agent,
        "parent": v.parent,
        "status": v.status,
        "budget": v.budget,
        "spent": v.spent,
        "reserved": v.reserved,
        "payments": v.payments,
        "issued_at": v.issued_at,
        "expires_at": v.expires_at,
        "voucher": v.compact,
    })
}

impl IssueParams {
    /// The constraints these params ask for, in a fixed order.
    fn constraints(&self) -> Result<Vec<Constraint>, Error> {
        let currency = Currency::try_from(self.currency.clone())
            .map_err(|e| Error::InvalidParams(e.to_string()))?;
        let mut out = vec![Constraint::AutonomyLevel { level: self.level }];
        if self.min_amount.is_some() || self.max_amount.is_some() {
            out.push(Constraint::AmountRange {
                currency: currency.clone(),
                min: self.min_amount,
                max: self.max_amount,
            });
        }
        if let Some(max) = self.budget {
            out.push(Constraint::Budget {
                currency: currency.clone(),
                max,
            });
        }
        if let Some(n) = self.max_payments {
            out.push(Constraint::AgentRecurrence { max_occurrences: n });
        }
        if !self.payees.is_empty() {
            out.push(Constraint::AllowedPayees {
                payees: self.payees.clone(),
            });
        }
        if !self.categories.is_empty() {
            out.push(Constraint::Categories {
                categories: self.categories.clone(),
            });
        }
        if let Some(id) = &self.funds_carrier {
            out.push(Constraint::FundsCarrier { id: id.clone() });
        }
        if let Some(seconds) = self.report_within_s {
            out.push(Constraint::ReportWithin { seconds });
        }
        if self.not_before_execution.is_some() || self.not_after_execution.is_some() {
            out.push(Constraint::ExecutionDate {
                not_before: self.not_before_execution,
                not_after: self.not_after_execution,
            });
        }
        if !self.conditions.is_empty() {
            out.push(Constraint::Conditions {
                all: self.conditions.clone(),
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
    pub(super) async fn voucher_issue(&self, p: IssueParams) -> Result<Value, Error> {
        let agent = self.agent(&p.agent)?;
        if agent.status == AgentStatus::Retired {
            return Err(Error::InvalidState(format!(
                "agent {} is retired",
                agent.id
            )));
        }
        let issuer = self.daemon_key("issuer")?;
        let issued = now();
        let claims = VoucherClaims {
            iss: format!("urn:ari:issuer:{}", issuer.public.thumbprint()),
            sub: agent.user.clone(),
            iat: issued,
            nbf: p.not_before.unwrap_or(issued),
            exp: p.expires_at,
            jti: super::admin::random_hex(16)?,
            vct: voucher::VOUCHER_VCT.into(),
            agent: agent.id.clone(),
            cnf: Confirmation {
                jwk: agent.key.public.to_jwk(),
            },
            parent: None,
            constraints: p.constraints()?,
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
        let draft = VoucherDraft::new(&claims, &issuer.public.thumbprint())
            .map_err(Internal::jose("a root voucher"))?;
        let withheld = self
            .backend
            .sign::<_, ()>(issuer.id.clone(), Prepared::new(draft))
            .withheld()
            .await?;
        let (budget, job_claims) = (p.budget, claims.clone());
        let ((withheld, recorded), commit) = self
            .ledger
            .commit(move |tx| {
                let row = stored(withheld.for_the_log(tx), &job_claims, budget);
                crate::store::insert_voucher(tx.conn(), &row)?;
                let draft = super::evidence::voucher_draft(Kind::VoucherIssued, &row, &job_claims);
                let recorded = tx.record_signed(draft, withheld.digest(), ())?;
                Ok((withheld, recorded))
            })
            .await?;
        let (compact, _) = withheld.release(commit.logged(recorded)?)?;
        let stored = stored(compact, &claims, p.budget);
        tracing::info!(voucher = %stored.id, agent = %agent.id, "voucher issued");
        Ok(view(&stored))
    }

    pub(super) async fn voucher_list(&self, p: ListParams) -> Result<Value, Error> {
        let store = self.store.clone();
        let list = blocking(move || store.vouchers(p.agent.as_deref())).await?;
        Ok(json!({ "vouchers": list.iter().map(view).collect::<Vec<_>>() }))
    }

    async fn find_voucher(&self, id: &str) -> Result<StoredVoucher, Error> {
        let (store, key) = (self.store.clone(), id.to_string());
        blocking(move || store.voucher(&key))
            .await?
            .ok_or_else(|| Error::VoucherNotFound(id.into()))
    }

    pub(super) async fn voucher_show(&self, p: VoucherParam) -> Result<Value, Error> {
        Ok(view(&self.find_voucher(&p.voucher).await?))
    }

    pub(super) async fn voucher_revoke(&self, p: VoucherParam) -> Result<Value, Error> {
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
            tracing::info!(voucher = %v.id, "voucher revoked");
        }
        Ok(json!({ "id": v.id, "status": "revoked" }))
    }

    pub(super) async fn voucher_import(&self, p: VoucherParam) -> Result<Value, Error> {
        if !p.voucher.contains('.') {
            return Err(Error::InvalidParams(
                "voucher must be the compact voucher (JWS followed by '~')".into(),
            ));
        }
        let chain = self.resolve_chain(&p.voucher).await?;
        let id = chain.ids.last().cloned().unwrap_or_default();
        Ok(view(&self.find_voucher(&id).await?))
    }

    pub(super) async fn voucher_revocations(&self) -> Result<Value, Error> {
        let store = self.store.clone();
        let revoked = blocking(move || store.revoked()).await?;
        let issuer = self.daemon_key("issuer")?;
        let list = RevocationList {
            iss: format!("urn:ari:issuer:{}", issuer.public.thumbprint()),
            iat: now(),
            revoked: revoked
                .into_iter()
                .map(|(v, at)| Revoked {
                    id: v.id,
                    digest: v.digest,
                    revoked_at: at,
                })
                .collect(),
        };
        let input = SigningInput::new(
            &Header::es256(REVOCATION_TYP, &issuer.public.thumbprint()),
            &list,
        )
        .map_err(Internal::jose("a revocation list"))?;
        let signed = self.backend.sign_revocations(issuer, input).await?;
        Ok(json!({ "list": signed, "count": list.revoked.len() }))
    }

    pub(super) async fn issuer_add(&self, p: IssuerParams) -> Result<Value, Error> {
        crate::identity::validate_agent_id(&p.name)
            .map_err(|m| Error::InvalidParams(format!("issuer name: {m}")))?;
        let key = serde_json::from_value::<Jwk>(p.jwk)
            .map_err(|e| Error::InvalidParams(format!("jwk: {e}")))?
            .to_public_key()
            .map_err(|e| Error::InvalidParams(format!("jwk: {e}")))?;
        if key == self.daemon_key("issuer")?.public {
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
        Ok(json!({ "name": p.name, "kid": key.thumbprint() }))
    }

    pub(super) async fn issuer_list(&self) -> Result<Value, Error> {
        let store = self.store.clone();
        let list = blocking(move || store.issuers()).await?;
        let own = self.daemon_key("issuer")?;
        let mut out = vec![
            json!({ "name": "arid", "kid": own.public.thumbprint(), "jwk": own.public.to_jwk(), "own": true }),
        ];
        out.extend(list.iter().map(|(name, k)| {
            json!({ "name": name, "kid": k.thumbprint(), "jwk": k.to_jwk(), "own": false })
        }));
        Ok(json!({ "issuers": out }))
    }

    pub(super) async fn issuer_remove(&self, p: NameParam) -> Result<Value, Error> {
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
        Ok(json!({ "name": p.name, "removed": true }))
    }
}
