//! Voucher methods on the admin socket: issue (signed by the daemon's issuer key inside the
//! token), list, show, revoke. Spending against vouchers is the payment methods' business.

use super::{Service, blocking};
use crate::clock::unix_now as now;
use crate::error::Error;
use crate::identity::AgentStatus;
use crate::store::{StoreError, StoredVoucher};
use crate::voucher::constraint::{AutonomyLevel, Constraint, Currency};
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
        "status": v.status,
        "spent": v.spent,
        "payments": v.payments,
        "issued_at": v.issued_at,
        "expires_at": v.expires_at,
        "voucher": v.compact,
    })
}

impl IssueParams {
    /// The constraints these params ask for, in a fixed order.
    fn constraints(&self) -> Result<Vec<Constraint>, Error> {
        let currency = Currency::try_from(self.currency.clone()).map_err(Error::InvalidParams)?;
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
        voucher::check_claims(&claims, 0, issued)
            .map_err(|e| Error::InvalidParams(e.to_string()))?;
        let draft = VoucherDraft::new(&claims, &issuer.public.thumbprint())
            .map_err(|e| Error::Internal(e.to_string()))?;
        let signature = self
            .backend
            .sign_digest(issuer.id.clone(), draft.digest())
            .await?;
        let compact = draft.finish(&signature);
        let stored = StoredVoucher {
            id: claims.jti.clone(),
            digest: voucher::digest(&compact),
            agent: agent.id.clone(),
            compact,
            status: "active".into(),
            spent: 0,
            payments: 0,
            issued_at: issued,
            expires_at: claims.exp,
        };
        let (store, row) = (self.store.clone(), stored.clone());
        blocking(move || store.insert_voucher(&row)).await?;
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
        let (store, id) = (self.store.clone(), v.id.clone());
        match blocking(move || store.revoke_voucher(&id)).await {
            Ok(()) => {}
            Err(Error::Store(StoreError::NotFound)) => return Err(Error::VoucherNotFound(v.id)),
            Err(e) => return Err(e),
        }
        tracing::info!(voucher = %v.id, "voucher revoked");
        Ok(json!({ "id": v.id, "status": "revoked" }))
    }
}
