//! Who the calling agent is, and runtime attestations of it (agent socket): the caller is
//! whoever the kernel and `/proc` say it is. Also the one way the service signs as an agent and
//! logs it (`Service::sign_logged`).

use super::{ConnInfo, Service, agent_view};
use crate::attest::{
    self, AgentClaim, AttestClaims, Bundle, DaemonClaim, Evidence, HostClaim, KeyClaim,
    RuntimeClaim,
};
use crate::clock::unix_now;
use crate::error::{Error, Internal};
use crate::evidence::entry::{Draft, Kind};
use crate::identity::{Agent, CallerFacts, MatchError};
use crate::jose::{Header, SigningInput};
use crate::protocol::agent::{AgentView, AttestParams, Attestation};
use crate::seal::{Document, Prepared};
use serde_json::json;
use sha2::{Digest, Sha256};

impl Service {
    /// Measures the caller and finds its agent.
    ///
    /// A connection whose caller is not an agent ends with this refusal (answered first, then
    /// closed), rather than sitting idle on one of the socket's connections: a process that can
    /// no longer be measured as the one that opened the connection (it exited, its pid went to
    /// another process) can never be it again, and one that matches no agent, or several,
    /// reconnects once an operator has provisioned it. A frozen agent keeps its connection.
    pub(super) fn caller(&self, info: &ConnInfo) -> Result<(CallerFacts, Agent), Error> {
        let facts = self
            .meter
            .measure_cached(info.cred, &info.pin, &info.measured)
            .map_err(|e| {
                info.close_after_answer();
                Error::Unmeasurable(e)
            })?;
        match self.registry.match_caller(&facts) {
            Ok(agent) => Ok((facts, agent)),
            Err(e @ MatchError::Frozen(_)) => Err(e.into()),
            Err(e) => {
                info.close_after_answer();
                Err(e.into())
            }
        }
    }

    pub(super) async fn agent_identity(&self, info: &ConnInfo) -> Result<AgentView, Error> {
        let (_, agent) = self.caller(info)?;
        Ok(agent_view(&agent))
    }

    pub(super) async fn agent_attest(
        &self,
        info: &ConnInfo,
        p: AttestParams,
    ) -> Result<Attestation, Error> {
        attest::validate_nonce(&p.nonce).map_err(|e| Error::InvalidParams(e.to_string()))?;
        // Shared, as for a payment: no attestation is signed once a freeze is acknowledged.
        let _gate = self.gate.read().await;
        let (facts, agent) = self.caller(info)?;
        let kid = agent.key.public.thumbprint();
        let binding = attest::tpm::challenge_binding(&p.nonce, &kid);
        let mut evidence = self.evidence(&agent, &facts);
        evidence.tpm = self.tpm_evidence(&agent, &binding).await?;
        let now = unix_now();
        let bundle = Bundle {
            typ: attest::BUNDLE_TYP.into(),
            iat: now,
            binding,
            evidence: evidence.clone(),
        };
        let bundle =
            serde_json::to_vec(&bundle).map_err(Internal::json("an attestation bundle"))?;
        let claims = AttestClaims {
            iss: "arid".into(),
            sub: agent.id.clone(),
            iat: now,
            nonce: p.nonce,
            evidence,
        };
        let input = SigningInput::new(&Header::es256(attest::ATTEST_TYP, &kid), &claims)
            .map_err(Internal::jose("an attestation"))?;
        // The attestation leaves only once its entry is durable, like every agent signature.
        let draft = Draft::new(
            Kind::AgentAttested,
            json!({
                "nonce": claims.nonce,
                "kid": kid,
                "bundle_sha256": crate::jose::b64url(&Sha256::digest(&bundle)),
                "tpm": claims.evidence.tpm.present,
            }),
        )
        .about(&agent.id, &agent.user)
        .runtime(self.runtime_digest(&agent, &facts));
        let (attestation, index) = self.sign_logged(&agent.key.id, input, draft).await?;
        Ok(Attestation {
            attestation,
            kid,
            bundle: crate::jose::b64url(&bundle),
            log_index: index,
        })
    }

    /// `document` signed by `key`, released once `draft` (which gains the signed digest) is a
    /// durable entry; with that entry's index. For signatures that record nothing but
    /// themselves (attestations, certification requests).
    pub(super) async fn sign_logged<D: Document + Send + 'static>(
        &self,
        key: &crate::backend::KeyId,
        document: D,
        draft: Draft,
    ) -> Result<(D::Signed, u64), Error> {
        let withheld = self
            .backend
            .sign::<_, ()>(key.clone(), Prepared::new(document))
            .withheld()
            .await?;
        let digest = withheld.digest();
        let (recorded, commit) = self
            .ledger
            .commit(move |tx| tx.record_signed(draft, digest, ()))
            .await?;
        Ok(withheld.release(commit.logged(recorded)?)?)
    }

    /// The TPM evidence binding `binding` (base64url binding digest) for `agent`: a quote,
    /// possibly shared with concurrent callers, the key's certification and the AK. Absent
    /// without a TPM.
    pub(super) async fn tpm_evidence(
        &self,
        agent: &Agent,
        binding: &str,
    ) -> Result<attest::tpm::TpmEvidence, Error> {
        let Some(ak) = &self.ak else {
            return Ok(attest::tpm::TpmEvidence::absent());
        };
        let digest = attest::tpm::binding_bytes(binding)
            .ok_or(Internal::Invariant("a binding digest is not 32 bytes"))?;
        let quote = self.backend.quote(digest).await?;
        Ok(attest::tpm::TpmEvidence {
            present: true,
            ak: Some(ak.clone()),
            quote: Some(quote),
            certification: agent.key.certification.clone(),
        })
    }

    /// What the daemon vouches for about `agent` running as `facts`.
    pub(super) fn evidence(&self, agent: &Agent, facts: &CallerFacts) -> Evidence {
        Evidence {
            agent: AgentClaim {
                id: agent.id.clone(),
                instance: agent.instance.clone(),
                user: agent.user.clone(),
            },
            runtime: RuntimeClaim::from(facts),
            host: HostClaim {
                boot_id: self.facts.boot_id.clone(),
            },
            daemon: DaemonClaim {
                version: self.facts.version.clone(),
                config_sha256: self.settings().config_sha256,
            },
            key: KeyClaim {
                kid: agent.key.public.thumbprint(),
                store: self.backend.kind().into(),
                uri: agent.key.uri.clone(),
                attributes: agent.key.attributes,
            },
            tpm: attest::tpm::TpmEvidence::absent(),
        }
    }
}
