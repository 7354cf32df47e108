//! The daemon's key set and the rotation of its own keys (admin socket).
//!
//! The key set holds every public key a verifier needs: the daemon's issuer and log keys, each
//! agent's key, the TPM's attestation key, registered external issuers, and every key that
//! stopped signing (rotated daemon keys, replaced or retired agent keys) with its validity
//! window. It is served by `admin.keys_export` and published as `jwks.json`, rewritten at start,
//! after every change of a key, and when a rotated key's overlap ends.
//!
//! A rotation holds the daemon keys' lock exclusively from before the old key's last signature
//! (over the rotation statement) until the new key is in place: every signer of that role
//! holds it shared from choosing the key until its output is committed, so from the moment the
//! rotation commits the old key signs nothing; it is then destroyed in the key store.

use super::{Service, blocking, role_key};
use crate::error::{Error, Internal};
use crate::evidence::entry::{Draft, Kind};
use crate::evidence::rotation::{
    NamedKey, ROTATION_TYP, RotationClaims, RotationFact, RotationSignatures,
};
use crate::identity::AgentStatus;
use crate::jose::{Header, SigningInput};
use crate::keyset::{KeySet, Member, Role, Status};
use crate::protocol::keys::{RotateParams, Rotated};
use crate::seal::Prepared;
use crate::store::{PastKey, StoreError};

/// The published key set's file name in the publish directory.
pub const JWKS_FILE: &str = "jwks.json";

fn role_of(name: &str) -> Option<Role> {
    match name {
        "issuer" => Some(Role::Issuer),
        "log" => Some(Role::Log),
        "agent" => Some(Role::Agent),
        _ => None,
    }
}

impl Service {
    /// The key set as of now.
    pub(super) async fn key_set(&self) -> Result<KeySet, Error> {
        let now = crate::clock::unix_now();
        let store = self.store.clone();
        let (past, issuers, since) = blocking(move || {
            let since = [
                store.daemon_key_since("issuer")?,
                store.daemon_key_since("log")?,
            ];
            Ok::<_, StoreError>((store.past_keys()?, store.issuers()?, since))
        })
        .await?;
        let mut set = KeySet::default();
        {
            let keys = self.daemon_keys.read().await;
            for (name, key) in keys.iter() {
                let (role, since) = match *name {
                    "issuer" => (Role::Issuer, since[0]),
                    _ => (Role::Log, since[1]),
                };
                set.push(Member::new(&key.public, role, Status::Active).window(since, None));
            }
        }
        if let Some(ed) = self.log_ed25519_key()? {
            set.push(Member::new(&ed.key, Role::Log, Status::Active));
        }
        let mut agents = self.registry.all();
        agents.sort_by(|a, b| a.id.cmp(&b.id));
        for a in agents.iter().filter(|a| a.status != AgentStatus::Retired) {
            let mut m = Member::new(&a.key.public, Role::Agent, Status::Active)
                .window(Some(a.created_at), None);
            m.ari_agent = Some(a.id.clone());
            m.ari_instance = Some(a.instance.clone());
            set.push(m);
        }
        if let Some(ak) = &self.ak {
            let key = ak
                .to_public_key()
                .map_err(Internal::jose("the attestation key"))?;
            set.push(Member::new(&key, Role::Attestation, Status::Active));
        }
        for (name, key) in &issuers {
            let mut m = Member::new(key, Role::ExternalIssuer, Status::Active);
            m.ari_name = Some(name.clone());
            set.push(m);
        }
        for p in past {
            let Some(role) = role_of(&p.role) else {
                continue;
            };
            let status = match p.overlap_until {
                Some(end) if end > now => Status::Overlap,
                _ => Status::Retired,
            };
            let mut m =
                Member::new(&p.public, role, status).window(Some(p.not_before), Some(p.not_after));
            m.ari_overlap_until = p.overlap_until;
            m.ari_log_index = p.log_index;
            m.ari_agent = p.agent;
            m.ari_instance = p.instance;
            set.push(m);
        }
        Ok(set)
    }

    pub(super) async fn keys_export(&self) -> Result<KeySet, Error> {
        self.key_set().await
    }

    /// Rewrites `jwks.json`; a failure is logged (the change it reflects is already durable).
    pub(super) async fn publish_keys(&self) {
        let written = async {
            let set = self.key_set().await?;
            let mut bytes =
                serde_json::to_vec_pretty(&set).map_err(Internal::json("the key set"))?;
            bytes.push(b'\n');
            let publication = self.publication.clone();
            blocking(move || publication.write(JWKS_FILE, &bytes)).await
        };
        match written.await {
            Ok(()) => tracing::debug!("key set published"),
            Err(e) => tracing::error!(error = %e, "cannot publish the key set"),
        }
        self.keys_changed.notify_one();
    }

    /// Keeps `jwks.json` current as rotated keys' overlaps end: sleeps until the next end (or a
    /// change of keys), then publishes again. Runs until the daemon stops.
    pub async fn keep_keys_published(self: std::sync::Arc<Self>) {
        self.publish_keys().await;
        loop {
            let store = self.store.clone();
            let now = crate::clock::unix_now();
            let next = match blocking(move || store.past_keys()).await {
                Ok(past) => past
                    .iter()
                    .filter_map(|p| p.overlap_until)
                    .filter(|&end| end > now)
                    .min(),
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the key history");
                    Some(now + 60)
                }
            };
            let wait = next.map_or(std::time::Duration::from_secs(3600), |end| {
                std::time::Duration::from_secs(u64::try_from(end - now).unwrap_or(0) + 1)
            });
            let changed = self.keys_changed.notified();
            tokio::select! {
                () = tokio::time::sleep(wait) => self.publish_keys().await,
                () = changed => {}
            }
        }
    }

    pub(super) async fn keys_rotate(&self, p: RotateParams) -> Result<Rotated, Error> {
        let role = p.role.as_str();
        let overlap = p
            .overlap_s
            .unwrap_or_else(|| self.settings().rotation_overlap.as_secs());
        if overlap > crate::config::MAX_ROTATION_OVERLAP_S {
            return Err(Error::InvalidParams(format!(
                "overlap_s is at most {}",
                crate::config::MAX_ROTATION_OVERLAP_S
            )));
        }
        // One rotation at a time; the key is made before the signers are stopped.
        let _rotating = self.rotations.lock().await;
        let new = self.backend.generate_key(format!("ari-{role}")).await?;
        let rotated = self.hand_over(p.role, overlap, &new).await;
        let (old, rotated) = match rotated {
            Ok(r) => r,
            Err(e) => {
                if let Err(d) = self.backend.destroy_key(new.id.clone()).await {
                    tracing::error!(uri = %new.uri, error = %d, "could not destroy the key of a failed rotation");
                }
                return Err(e);
            }
        };
        if let Err(e) = self.backend.destroy_key(old.id.clone()).await {
            tracing::error!(uri = %old.uri, error = %e, "could not destroy a rotated key; it signs nothing, remove it from the key store by hand");
        }
        tracing::info!(role, old = %rotated.old_kid, new = %rotated.kid, overlap_until = rotated.overlap_until, "daemon key rotated");
        self.publish_keys().await;
        Ok(rotated)
    }

    /// Signs the rotation statement with both keys and commits it with the new key in place,
    /// holding every signer of the daemon's keys off; returns the old key.
    async fn hand_over(
        &self,
        daemon_role: crate::protocol::keys::DaemonRole,
        overlap: u64,
        new: &crate::backend::KeyInfo,
    ) -> Result<(crate::backend::KeyInfo, Rotated), Error> {
        let role = daemon_role.as_str();
        let mut keys = self.daemon_keys.write().await;
        let old = role_key(&keys, role)?.clone();
        let at = crate::clock::unix_now();
        let overlap_until = at.saturating_add(i64::try_from(overlap).unwrap_or(i64::MAX));
        let claims = RotationClaims {
            log: self.origin.clone(),
            role: role.to_string(),
            old: old.public.to_jwk(),
            new: new.public.to_jwk(),
            iat: at,
            overlap_until,
        };
        let input = |kid: &str| {
            SigningInput::new(&Header::es256(ROTATION_TYP, kid), &claims)
                .map_err(Internal::jose("a rotation statement"))
        };
        let by_old = input(&old.public.thumbprint())?;
        let by_new = input(&new.public.thumbprint())?;
        let by_old = self
            .backend
            .sign::<_, ()>(old.id.clone(), Prepared::new(by_old))
            .withheld()
            .await?;
        let by_new = self
            .backend
            .sign::<_, ()>(new.id.clone(), Prepared::new(by_new))
            .withheld()
            .await?;
        let named = |k: &crate::backend::KeyInfo| NamedKey {
            kid: k.public.thumbprint(),
            jwk: k.public.to_jwk(),
        };
        let (old_named, new_named) = (named(&old), named(new));
        let (job_new, old_public) = (new.clone(), old.public);
        let index = self
            .ledger
            .run(move |tx| {
                let fact = RotationFact {
                    role: role.to_string(),
                    old: old_named,
                    new: new_named,
                    overlap_until,
                    signatures: RotationSignatures {
                        old: by_old.for_the_log(tx),
                        new: by_new.for_the_log(tx),
                    },
                };
                let fact = serde_json::to_value(&fact)
                    .map_err(|e| StoreError::Corrupt(format!("a rotation fact: {e}")))?;
                let since = crate::store::replace_daemon_key(tx.conn(), role, &job_new)?;
                let appended = tx.record(&Draft::new(Kind::KeyRotated, fact))?;
                crate::store::put_past_key(
                    tx.conn(),
                    &PastKey {
                        role: role.to_string(),
                        agent: None,
                        instance: None,
                        public: old_public,
                        not_before: since,
                        not_after: at,
                        overlap_until: Some(overlap_until),
                        log_index: Some(appended.index),
                    },
                )?;
                Ok(appended.index)
            })
            .await?;
        for (r, k) in keys.iter_mut() {
            if *r == role {
                *k = new.clone();
            }
        }
        drop(keys);
        let rotated = Rotated {
            role: daemon_role,
            old_kid: old.public.thumbprint(),
            kid: new.public.thumbprint(),
            jwk: new.public.to_jwk(),
            rotated_at: at,
            overlap_until,
            log_index: index,
        };
        Ok((old, rotated))
    }
}
