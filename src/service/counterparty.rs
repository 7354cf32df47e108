//! The register of counterparties' keys on the admin socket: merchants, whose signed checkout
//! JWTs a payment may be bound to, and payment providers, whose signed AP2 payment receipts a
//! report may carry. Each change goes through the writer with its evidence entry.

use super::{Service, blocking};
use crate::error::Error;
use crate::evidence::entry::{Draft, Kind};
use crate::jose::PublicKey;
use crate::protocol::counterparty::{
    Counterparty, CounterpartyList, CounterpartyListParams, CounterpartyParams, CounterpartyRef,
    CounterpartyRemoved, CounterpartyRole,
};
use crate::store::StoreError;
use serde_json::json;

fn role_of(text: &str) -> Option<CounterpartyRole> {
    match text {
        "merchant" => Some(CounterpartyRole::Merchant),
        "provider" => Some(CounterpartyRole::Provider),
        _ => None,
    }
}

impl Service {
    pub(super) async fn counterparty_add(
        &self,
        p: CounterpartyParams,
    ) -> Result<Counterparty, Error> {
        super::payment::text("name", &p.name)?;
        let key = p
            .jwk
            .to_public_key()
            .map_err(|e| Error::InvalidParams(format!("jwk: {e}")))?;
        let role = p.role.as_str();
        let draft = Draft::new(
            Kind::CounterpartyAdded,
            json!({ "role": role, "name": p.name, "kid": key.thumbprint(), "jwk": key.to_jwk() }),
        );
        let name = p.name.clone();
        let added = self
            .ledger
            .run(move |tx| {
                crate::store::insert_counterparty(tx.conn(), role, &name, &key)?;
                tx.record(&draft).map(drop)
            })
            .await
            .map_err(Error::from);
        match added {
            Ok(()) => {}
            Err(Error::Store(StoreError::Exists)) => {
                return Err(Error::InvalidParams(format!(
                    "a {role} named {:?} or with this key is registered",
                    p.name
                )));
            }
            Err(e) => return Err(e),
        }
        tracing::info!(role, name = %p.name, kid = %key.thumbprint(), "counterparty registered");
        Ok(Counterparty {
            role: p.role,
            name: p.name,
            kid: key.thumbprint(),
            jwk: key.to_jwk(),
        })
    }

    pub(super) async fn counterparty_list(
        &self,
        p: CounterpartyListParams,
    ) -> Result<CounterpartyList, Error> {
        let store = self.store.clone();
        let rows =
            blocking(move || store.counterparties(p.role.map(CounterpartyRole::as_str))).await?;
        Ok(CounterpartyList {
            counterparties: rows
                .into_iter()
                .filter_map(|(role, name, key)| {
                    Some(Counterparty {
                        role: role_of(&role)?,
                        name,
                        kid: key.thumbprint(),
                        jwk: key.to_jwk(),
                    })
                })
                .collect(),
        })
    }

    pub(super) async fn counterparty_remove(
        &self,
        p: CounterpartyRef,
    ) -> Result<CounterpartyRemoved, Error> {
        let (role, name) = (p.role.as_str(), p.name.clone());
        let removed = self
            .ledger
            .run(move |tx| {
                let key = crate::store::remove_counterparty(tx.conn(), role, &name)?;
                tx.record(&Draft::new(
                    Kind::CounterpartyRemoved,
                    json!({ "role": role, "name": name, "kid": key.thumbprint() }),
                ))
                .map(drop)
            })
            .await
            .map_err(Error::from);
        match removed {
            Ok(()) => {}
            Err(Error::Store(StoreError::NotFound)) => {
                return Err(Error::InvalidParams(format!("no {role} {:?}", p.name)));
            }
            Err(e) => return Err(e),
        }
        tracing::info!(role, name = %p.name, "counterparty removed");
        Ok(CounterpartyRemoved {
            role: p.role,
            name: p.name,
            removed: true,
        })
    }

    /// The key registered for merchant `name`, if any.
    pub(super) async fn merchant_key(&self, name: &str) -> Result<Option<PublicKey>, Error> {
        let (store, name) = (self.store.clone(), name.to_string());
        let rows = blocking(move || store.counterparties(Some("merchant"))).await?;
        Ok(rows
            .into_iter()
            .find(|(_, n, _)| *n == name)
            .map(|(_, _, k)| k))
    }

    /// Every registered payment provider, `(name, key)`.
    pub(super) async fn provider_keys(&self) -> Result<Vec<(String, PublicKey)>, Error> {
        let store = self.store.clone();
        let rows = blocking(move || store.counterparties(Some("provider"))).await?;
        Ok(rows.into_iter().map(|(_, n, k)| (n, k)).collect())
    }
}
