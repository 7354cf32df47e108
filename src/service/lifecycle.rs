//! The agent lifecycle (admin socket): provisioning, freezing, retiring, certificates, and the
//! TPM attestation key an operator enrolls with verifiers. Every change is committed to the store
//! before the in-memory registry sees it, and a key generated for a registration that then
//! fails to commit is destroyed again.

use super::{Service, agent_view, random_hex};
use crate::error::{Error, Internal};
use crate::evidence::entry::{Draft, Kind};
use crate::identity::certificate::{CsrDraft, check_certificate};
use crate::identity::{self, Agent, AgentStatus, Selectors};
use crate::protocol::agent::{
    AgentList, AgentParam, AgentView, CertImportParams, CertImported, Csr, CsrParams,
    ProvisionParams, Retired,
};
use crate::protocol::daemon::TpmAk;
use crate::store::StoreError;
use base64ct::Encoding as _;
use serde_json::json;
use sha2::Digest as _;

impl Service {
    /// The TPM's attestation key for enrollment with a verifier: JWK, PEM, the TPM's public
    /// area, and the EK certificate when the TPM holds one.
    pub(super) async fn tpm_ak(&self) -> Result<TpmAk, Error> {
        let info = self.backend.attestation_key().await?;
        let pem = info
            .public
            .to_pem()
            .map_err(Internal::jose("the attestation key's PEM"))?;
        let ek = info.ek_certificate.as_deref().map(|der| {
            let b64 = base64ct::Base64::encode_string(der);
            let lines: Vec<&str> = b64
                .as_bytes()
                .chunks(64)
                .filter_map(|c| std::str::from_utf8(c).ok())
                .collect();
            format!(
                "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
                lines.join("\n")
            )
        });
        Ok(TpmAk {
            kid: info.public.thumbprint(),
            jwk: info.public.to_jwk(),
            pem,
            tpm_public: crate::jose::b64url(&info.tpm_public),
            ek_certificate: ek,
        })
    }

    pub(super) async fn provision(&self, p: ProvisionParams) -> Result<AgentView, Error> {
        let _writing = self.agent_writes.lock().await;
        identity::validate_agent_id(&p.agent).map_err(|m| Error::InvalidParams(m.into()))?;
        identity::validate_user(&p.user).map_err(|m| Error::InvalidParams(m.into()))?;
        let selectors = Selectors {
            uid: p.uid,
            gid: p.gid,
            exe_sha256: p.exe_sha256.map(|d| d.to_ascii_lowercase()),
            cgroup: p.cgroup,
        };
        selectors
            .validate()
            .map_err(|m| Error::InvalidParams(m.into()))?;
        match (self.registry.get(&p.agent), p.rotate) {
            (Some(existing), true) => return self.reprovision(existing, p.user, selectors).await,
            (Some(_), false) => {
                return Err(Error::AgentExists(format!(
                    "agent {:?} exists (retired ids stay reserved); to give it a new key, provision it again with rotate",
                    p.agent
                )));
            }
            (None, true) => return Err(Error::AgentNotFound(p.agent)),
            (None, false) => {}
        }
        if let Some(other) = self.registry.with_selectors(&selectors) {
            return Err(Error::AgentExists(format!(
                "agent {other:?} already has exactly these selectors; a caller must match one agent"
            )));
        }
        let key = self
            .backend
            .generate_key(format!("ari-agent:{}", p.agent))
            .await?;
        let agent = Agent {
            id: p.agent,
            instance: random_hex(16)?,
            user: p.user,
            key,
            selectors,
            status: AgentStatus::Active,
            certificate: None,
            created_at: crate::clock::unix_now(),
        };
        let row = agent.clone();
        let draft = Draft::new(
            Kind::AgentProvisioned,
            json!({
                "instance": agent.instance,
                "kid": agent.key.public.thumbprint(),
                "jwk": agent.key.public.to_jwk(),
                "key_store": self.backend.kind(),
                "selectors": agent.selectors,
            }),
        )
        .about(&agent.id, &agent.user);
        let inserted = self
            .ledger
            .run(move |tx| {
                crate::store::insert_agent(tx.conn(), &row)?;
                tx.record(&draft).map(drop)
            })
            .await;
        if let Err(e) = inserted.map_err(Error::from) {
            if let Err(d) = self.backend.destroy_key(agent.key.id.clone()).await {
                tracing::error!(uri = %agent.key.uri, error = %d, "could not destroy the key of a failed registration");
            }
            return Err(match e {
                Error::Store(StoreError::Exists) => {
                    Error::AgentExists(format!("agent {:?} exists", agent.id))
                }
                other => other,
            });
        }
        tracing::info!(agent = %agent.id, user = %agent.user, kid = %agent.key.public.thumbprint(), "agent provisioned");
        let view = agent_view(&agent);
        self.registry.put(agent);
        self.publish_keys().await;
        Ok(view)
    }

    /// Provisions `old` again: a new instance with a new key replaces it, its old key is
    /// destroyed and kept in the key set's history, and one `agent.rotated` entry names both.
    /// Vouchers stay bound to the key in their `cnf`, so those of the old key authorize
    /// nothing any more; the operator issues new ones.
    async fn reprovision(
        &self,
        old: Agent,
        user: String,
        selectors: Selectors,
    ) -> Result<AgentView, Error> {
        if old.status == AgentStatus::Retired {
            return Err(Error::InvalidState(format!(
                "agent {} is retired; retired ids stay reserved",
                old.id
            )));
        }
        if user != old.user {
            return Err(Error::InvalidParams(format!(
                "agent {} acts for {:?}; provisioning it again keeps its user",
                old.id, old.user
            )));
        }
        if let Some(other) = self.registry.with_selectors(&selectors)
            && other != old.id
        {
            return Err(Error::AgentExists(format!(
                "agent {other:?} already has exactly these selectors; a caller must match one agent"
            )));
        }
        let key = self
            .backend
            .generate_key(format!("ari-agent:{}", old.id))
            .await?;
        // Exclusive: whatever the old key is signing finishes first; later calls find the new
        // key.
        let gate = self.gate.write().await;
        let now = crate::clock::unix_now();
        let agent = Agent {
            id: old.id.clone(),
            instance: random_hex(16)?,
            user: old.user.clone(),
            key,
            selectors,
            status: old.status,
            certificate: None,
            created_at: now,
        };
        let draft = Draft::new(
            Kind::AgentRotated,
            json!({
                "instance": agent.instance,
                "kid": agent.key.public.thumbprint(),
                "jwk": agent.key.public.to_jwk(),
                "key_store": self.backend.kind(),
                "selectors": agent.selectors,
                "previous": {
                    "instance": old.instance,
                    "kid": old.key.public.thumbprint(),
                    "jwk": old.key.public.to_jwk(),
                },
            }),
        )
        .about(&agent.id, &agent.user);
        let row = agent.clone();
        let past = crate::store::PastKey {
            role: "agent".into(),
            agent: Some(old.id.clone()),
            instance: Some(old.instance.clone()),
            public: old.key.public,
            not_before: old.created_at,
            not_after: now,
            overlap_until: None,
            log_index: None,
        };
        let replaced = self
            .ledger
            .run(move |tx| {
                crate::store::replace_agent_key(tx.conn(), &row)?;
                let appended = tx.record(&draft)?;
                crate::store::put_past_key(
                    tx.conn(),
                    &crate::store::PastKey {
                        log_index: Some(appended.index),
                        ..past
                    },
                )
            })
            .await;
        if let Err(e) = replaced {
            if let Err(d) = self.backend.destroy_key(agent.key.id.clone()).await {
                tracing::error!(uri = %agent.key.uri, error = %d, "could not destroy the key of a failed re-provisioning");
            }
            return Err(e.into());
        }
        let view = agent_view(&agent);
        self.registry.put(agent);
        drop(gate);
        if let Err(e) = self.backend.destroy_key(old.key.id.clone()).await {
            tracing::error!(uri = %old.key.uri, error = %e, "could not destroy an agent's replaced key; it is no longer used, remove it from the key store by hand");
        }
        tracing::info!(agent = %view.agent, old = %old.key.public.thumbprint(), new = %view.key.kid, "agent provisioned again with a new key");
        self.publish_keys().await;
        Ok(view)
    }

    pub(super) async fn agent_list(&self) -> Result<AgentList, Error> {
        Ok(AgentList {
            agents: self.registry.all().iter().map(agent_view).collect(),
        })
    }

    pub(super) async fn agent_show(&self, p: AgentParam) -> Result<AgentView, Error> {
        Ok(agent_view(&self.agent(&p.agent)?))
    }

    async fn set_status(
        &self,
        id: &str,
        from: &[AgentStatus],
        to: AgentStatus,
    ) -> Result<Agent, Error> {
        let mut agent = self.agent(id)?;
        if !from.contains(&agent.status) {
            return Err(Error::InvalidState(format!(
                "agent {id} is {}",
                agent.status.as_str()
            )));
        }
        let kind = match to {
            AgentStatus::Active => Kind::AgentUnfrozen,
            AgentStatus::Frozen => Kind::AgentFrozen,
            AgentStatus::Retired => Kind::AgentRetired,
        };
        let draft = Draft::new(
            kind,
            json!({ "instance": agent.instance, "from": agent.status.as_str() }),
        )
        .about(&agent.id, &agent.user);
        let key = id.to_string();
        self.ledger
            .run(move |tx| {
                crate::store::set_agent_status(tx.conn(), &key, to)?;
                tx.record(&draft).map(drop)
            })
            .await?;
        agent.status = to;
        self.registry.put(agent.clone());
        // Its vouchers read SUSPENDED (frozen), VALID again (unfrozen) or INVALID (retired).
        self.status_changed();
        tracing::info!(agent = %id, status = to.as_str(), "agent status changed");
        Ok(agent)
    }

    pub(super) async fn freeze(&self, p: AgentParam) -> Result<AgentView, Error> {
        let _writing = self.agent_writes.lock().await;
        // Exclusive: decisions in flight finish first; later ones see the agent frozen.
        let _gate = self.gate.write().await;
        let a = self
            .set_status(&p.agent, &[AgentStatus::Active], AgentStatus::Frozen)
            .await?;
        Ok(agent_view(&a))
    }

    pub(super) async fn unfreeze(&self, p: AgentParam) -> Result<AgentView, Error> {
        let _writing = self.agent_writes.lock().await;
        let a = self
            .set_status(&p.agent, &[AgentStatus::Frozen], AgentStatus::Active)
            .await?;
        Ok(agent_view(&a))
    }

    pub(super) async fn retire(&self, p: AgentParam) -> Result<Retired, Error> {
        let _writing = self.agent_writes.lock().await;
        let _gate = self.gate.write().await;
        // Mark retired first (durable), then destroy: a crash in between leaves a retired agent
        // whose key is destroyed on the next retire call, never an active agent without a key.
        let current = self.agent(&p.agent)?;
        let a = if current.status == AgentStatus::Retired {
            current
        } else {
            self.set_status(
                &p.agent,
                &[AgentStatus::Active, AgentStatus::Frozen],
                AgentStatus::Retired,
            )
            .await?
        };
        self.backend.destroy_key(a.key.id.clone()).await?;
        let id = a.id.clone();
        let past = crate::store::PastKey {
            role: "agent".into(),
            agent: Some(a.id.clone()),
            instance: Some(a.instance.clone()),
            public: a.key.public,
            not_before: a.created_at,
            not_after: crate::clock::unix_now(),
            overlap_until: None,
            log_index: None,
        };
        self.ledger
            .run(move |tx| {
                crate::store::forget_key(tx.conn(), &id)?;
                // A second retire call finds the key in the history already.
                match crate::store::put_past_key(tx.conn(), &past) {
                    Ok(()) | Err(StoreError::Exists) => Ok(()),
                    Err(e) => Err(e),
                }
            })
            .await?;
        self.publish_keys().await;
        let mut a = a;
        a.key.id = crate::backend::KeyId(Vec::new());
        self.registry.put(a.clone());
        Ok(Retired {
            agent: a.id,
            status: a.status,
            key_destroyed: true,
        })
    }

    pub(super) async fn csr(&self, p: CsrParams) -> Result<Csr, Error> {
        let agent = self.agent(&p.agent)?;
        if agent.status == AgentStatus::Retired {
            return Err(Error::InvalidState(format!(
                "agent {} is retired; its key is destroyed",
                agent.id
            )));
        }
        let draft = CsrDraft::new(&p.subject, &agent.key.public)?;
        // Like every signature an agent key makes, the request is in the log before it leaves.
        let entry = Draft::new(
            Kind::AgentCsrSigned,
            json!({
                "instance": agent.instance,
                "kid": agent.key.public.thumbprint(),
                "subject": p.subject,
            }),
        )
        .about(&agent.id, &agent.user);
        let (csr, index) = self.sign_logged(&agent.key.id, draft, entry).await?;
        Ok(Csr {
            agent: agent.id,
            csr: csr?,
            log_index: index,
        })
    }

    pub(super) async fn cert_import(&self, p: CertImportParams) -> Result<CertImported, Error> {
        let _writing = self.agent_writes.lock().await;
        let mut agent = self.agent(&p.agent)?;
        if agent.status == AgentStatus::Retired {
            return Err(Error::InvalidState(format!(
                "agent {} is retired",
                agent.id
            )));
        }
        if p.certificate.len() > 64 * 1024 {
            return Err(Error::InvalidParams(
                "a certificate is at most 64 KiB of PEM".into(),
            ));
        }
        let (pem, summary) = check_certificate(&p.certificate, &agent.key.public)?;
        let draft = Draft::new(
            Kind::AgentCertificateImported,
            json!({
                "instance": agent.instance,
                "kid": agent.key.public.thumbprint(),
                "certificate_sha256": crate::jose::b64url(&sha2::Sha256::digest(pem.as_bytes())),
                "subject": summary.subject,
            }),
        )
        .about(&agent.id, &agent.user);
        let (id, stored) = (agent.id.clone(), pem.clone());
        self.ledger
            .run(move |tx| {
                crate::store::set_certificate(tx.conn(), &id, &stored)?;
                tx.record(&draft).map(drop)
            })
            .await?;
        agent.certificate = Some(pem);
        self.registry.put(agent.clone());
        tracing::info!(agent = %agent.id, subject = %summary.subject, "certificate imported");
        Ok(CertImported {
            agent: agent.id,
            certificate: summary,
        })
    }
}
