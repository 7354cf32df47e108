//! The voucher status list: every voucher the daemon signs (issued or delegated) takes a place
//! in an IETF Token Status List, and the daemon keeps the signed list current in the publish
//! directory as [`STATUS_LIST_FILE`].
//!
//! A place is taken in a commit of its own before the voucher is signed, and never handed out
//! again. The list is built from committed state only: a revoked voucher is INVALID, so is every
//! voucher of a retired agent (irreversible, like a revocation); a frozen agent's vouchers are
//! SUSPENDED until it is unfrozen; everything else is VALID. Revocations, freezes, unfreezes and
//! retirements only nudge a watch channel ([`Service::status_changed`]); one task
//! ([`Service::keep_status_list`]) reads the state, signs with the issuer key and writes the
//! file, so no caller waits for a signature or a file and changes that come together share
//! one list. The task also signs a fresh list [`REFRESH_BEFORE_EXP_S`] before the published one
//! expires.

use super::{Service, blocking};
use crate::clock::unix_now;
use crate::error::{Error, Internal};
use crate::identity::AgentStatus;
use crate::jose::{Header, SigningInput};
use crate::protocol::voucher::StatusListToken;
use crate::store::{StatusEntry, VoucherStatus};
use crate::voucher::status::{
    BITS, STATUS_LIST_TYP, Status, StatusList, StatusListClaims, StatusListRef, StatusType,
};
use std::sync::Arc;
use std::time::Duration;

/// The Status List Token's name in the publish directory; its URL is the publish URL followed
/// by `/` and this name.
pub const STATUS_LIST_FILE: &str = "status/vouchers";
/// How long a signed list is good for (its `exp` - `iat`), in seconds.
pub const STATUS_LIST_VALIDITY_S: i64 = 3600;
/// How long a reader may cache a list before fetching it again (its `ttl`), in seconds.
pub const STATUS_LIST_TTL_S: u64 = 300;
/// A list is signed again this long before it expires, even when nothing changed.
pub const REFRESH_BEFORE_EXP_S: i64 = 1800;
/// Lists grow in steps of this many entries, so most new vouchers already have a place in the
/// published list and the list's length says little about how many vouchers there are.
const LIST_STEP: u64 = 1024;
/// Wait before trying again after a list could not be signed or written.
const RETRY: Duration = Duration::from_millis(200);

/// A voucher's status from its own state and its agent's.
fn status_of(e: &StatusEntry) -> StatusType {
    match (e.voucher, e.agent) {
        (VoucherStatus::Revoked, _) | (_, AgentStatus::Retired) => StatusType::Invalid,
        (_, AgentStatus::Frozen) => StatusType::Suspended,
        _ => StatusType::Valid,
    }
}

impl Service {
    /// The URL of the voucher status list.
    pub(super) fn status_uri(&self) -> String {
        self.publication.url_of(STATUS_LIST_FILE)
    }

    /// The `status` claim of a voucher about to be signed: takes the next place in the list,
    /// durably, so no other voucher ever gets it.
    pub(super) async fn take_status(&self) -> Result<Status, Error> {
        let idx = self
            .ledger
            .run(|tx| crate::store::allocate_status_index(tx.conn()))
            .await?;
        Ok(Status {
            status_list: StatusListRef {
                idx,
                uri: self.status_uri(),
            },
        })
    }

    /// A voucher at `idx` was stored: the list is signed again if the published one is too
    /// short to hold it.
    pub(super) fn status_placed(&self, idx: u64) {
        let holds = self
            .status_list
            .borrow()
            .as_ref()
            .is_some_and(|t| idx < t.entries);
        if !holds {
            self.status_changed();
        }
    }

    /// Tells the status list task that a voucher's or an agent's state changed; never waits.
    pub(super) fn status_changed(&self) {
        self.status_dirty.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Builds the list from committed state and signs it with the issuer key.
    async fn sign_status_list(&self) -> Result<StatusListToken, Error> {
        let store = self.store.clone();
        let (next, entries) = blocking(move || store.read(crate::store::status_entries)).await?;
        let mut list = StatusList::new(BITS, next.div_ceil(LIST_STEP).max(1) * LIST_STEP)?;
        let (mut invalid, mut suspended) = (0, 0);
        for e in &entries {
            let status = status_of(e);
            match status {
                StatusType::Invalid => invalid += 1,
                StatusType::Suspended => suspended += 1,
                _ => {}
            }
            list.set(e.idx, status)?;
        }
        // Held until signed: a rotation waits, so the list is never signed by a retired key.
        let keys = self.daemon_keys.read().await;
        let issuer = super::role_key(&keys, "issuer")?;
        let iat = unix_now();
        let claims = StatusListClaims {
            sub: self.status_uri(),
            iat,
            exp: Some(iat + STATUS_LIST_VALIDITY_S),
            ttl: Some(STATUS_LIST_TTL_S),
            status_list: list.encode(),
        };
        let input = SigningInput::new(
            &Header::es256(STATUS_LIST_TYP, &issuer.public.thumbprint()),
            &claims,
        )
        .map_err(Internal::jose("the voucher status list"))?;
        let token = self.backend.sign_status_list(issuer, input).await?;
        Ok(StatusListToken {
            token,
            uri: claims.sub,
            file: STATUS_LIST_FILE.into(),
            iat,
            exp: iat + STATUS_LIST_VALIDITY_S,
            entries: list.len(),
            invalid,
            suspended,
        })
    }

    /// Signs the list and writes it to the publish directory.
    async fn publish_status_list(&self) -> Result<StatusListToken, Error> {
        let signed = self.sign_status_list().await?;
        let (publication, text) = (self.publication.clone(), signed.token.clone());
        blocking(move || publication.write(STATUS_LIST_FILE, text.as_bytes())).await?;
        tracing::debug!(
            entries = signed.entries,
            invalid = signed.invalid,
            suspended = signed.suspended,
            "voucher status list published"
        );
        self.status_list.send_replace(Some(signed.clone()));
        Ok(signed)
    }

    /// Keeps the published status list current until the daemon stops: at start, after every
    /// revocation, freeze, unfreeze or retirement, and before the published one expires.
    pub async fn keep_status_list(self: Arc<Self>) {
        let mut changes = self.status_dirty.subscribe();
        loop {
            changes.borrow_and_update();
            let wait = match self.publish_status_list().await {
                Ok(signed) => {
                    let due = signed.exp - REFRESH_BEFORE_EXP_S - unix_now();
                    Duration::from_secs(u64::try_from(due).unwrap_or(0).max(1))
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot publish the voucher status list; retrying");
                    RETRY
                }
            };
            if let Ok(Err(_)) = tokio::time::timeout(wait, changes.changed()).await {
                return;
            }
        }
    }

    /// `admin.voucher_status_list`: the newest published list, or one signed now if none has
    /// been published yet.
    pub(super) async fn voucher_status_list(&self) -> Result<StatusListToken, Error> {
        let published = self.status_list.borrow().clone();
        match published {
            Some(t) => Ok(t),
            None => self.sign_status_list().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revoked_and_retired_are_invalid_frozen_is_suspended() {
        let entry = |voucher, agent| StatusEntry {
            idx: 0,
            voucher,
            agent,
        };
        let cases = [
            (
                VoucherStatus::Active,
                AgentStatus::Active,
                StatusType::Valid,
            ),
            (
                VoucherStatus::Active,
                AgentStatus::Frozen,
                StatusType::Suspended,
            ),
            (
                VoucherStatus::Revoked,
                AgentStatus::Frozen,
                StatusType::Invalid,
            ),
            (
                VoucherStatus::Revoked,
                AgentStatus::Active,
                StatusType::Invalid,
            ),
            (
                VoucherStatus::Active,
                AgentStatus::Retired,
                StatusType::Invalid,
            ),
        ];
        for (voucher, agent, expected) in cases {
            assert_eq!(
                status_of(&entry(voucher, agent)),
                expected,
                "{voucher} {agent:?}"
            );
        }
    }
}
