//! What the attestation key (AK) signs: quotes over the configured PCRs and certifications of
//! ARI keys, and the AK's own description.
//!
//! Quotes are batched: every quote request waiting together is answered by the same
//! TPM2_Quote, whose qualifying data is the Merkle root of their binding digests
//! ([`crate::attest::tpm::batch`]); each answer carries its own path to that root. The PCR
//! values a quote is answered with are the ones it covers: they are read again whenever the
//! quoted digest differs from the last values read, and the quote is made again if they
//! changed in between. The AK signs only what the TPM produced itself (it is restricted), so
//! nothing here can make it sign bytes of a caller's choosing.

use super::fault::{Fault, TpmError};
use super::object::{Obj, ecc_point};
use super::owner::Actor;
use super::{AkInfo, KeyId, Quote, Reply};
use crate::attest::tpm::{self as evidence, Certification};
use crate::jose;
use crate::merkle::Hash;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use tss_esapi::interface_types::algorithm::HashingAlgorithm;
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::{
    Attest, AttestInfo, Data, PcrSelectionList, PcrSelectionListBuilder, PcrSlot, Public,
    Signature, SignatureScheme,
};
use tss_esapi::traits::Marshall;

/// How many times a quote is made again when the PCRs change under it.
const QUOTE_TRIES: usize = 4;

impl Actor {
    /// The AK's certification of a key just created (TPM2_Certify), over its name.
    pub(super) fn certify(&mut self, id: &KeyId, public: &[u8]) -> Result<Certification, Fault> {
        let key = Obj::Key(id.clone());
        let ak = self.handle(&Obj::Ak, &[&key])?;
        let handle = self.handle(&key, &[&Obj::Ak])?;
        let (attest, signature) = self
            .ctx()?
            .execute_with_sessions(
                (
                    Some(AuthSession::Password),
                    Some(AuthSession::Password),
                    None,
                ),
                |c| c.certify(handle.into(), ak, Data::default(), SignatureScheme::Null),
            )
            .map_err(Fault::command("TPM2_Certify"))?;
        Ok(Certification {
            attest: jose::b64url(&marshal_attest(&attest)?),
            signature: jose::b64url(&marshal_signature(&signature)?),
            public: jose::b64url(public),
        })
    }

    /// The AK's public area, deriving the AK if it is not loaded.
    pub(super) fn ak_public(&mut self) -> Result<Public, Fault> {
        self.handle(&Obj::Ak, &[])?;
        Ok(self.ak.clone().ok_or(TpmError::NoAkPublic)?)
    }

    /// The AK for enrollment: its point, its `TPMT_PUBLIC`, and the EK certificate when the
    /// TPM holds one (ECC first, then RSA).
    pub(super) fn ak_info(&mut self) -> Result<AkInfo, Fault> {
        let public = self.ak_public()?;
        let point = ecc_point(&public, "attestation key")?;
        let tpm_public = public
            .marshall()
            .map_err(Fault::local("marshal TPMT_PUBLIC"))?;
        let ek_certificate = {
            let ctx = self.ctx()?;
            ctx.execute_with_session(Some(AuthSession::Password), |c| {
                tss_esapi::abstraction::ek::retrieve_ek_pubcert(
                    c,
                    tss_esapi::abstraction::AsymmetricAlgorithmSelection::Ecc(EccCurve::NistP256),
                )
                .or_else(|_| {
                    tss_esapi::abstraction::ek::retrieve_ek_pubcert(
                        c,
                        tss_esapi::abstraction::AsymmetricAlgorithmSelection::Rsa(
                            tss_esapi::interface_types::key_bits::RsaKeyBits::Rsa2048,
                        ),
                    )
                })
            })
            .ok()
        };
        Ok(AkInfo {
            public: point,
            tpm_public,
            ek_certificate,
        })
    }

    /// Answers every request in `jobs` with one quote over the root of their bindings.
    pub(super) fn quote_batch(&mut self, jobs: Vec<(Hash, Reply<Quote>)>) {
        let bindings: Vec<Hash> = jobs.iter().map(|(b, _)| *b).collect();
        let (root, paths) = evidence::batch(&bindings);
        match self.recovering("quote", |a| a.quote(&root)) {
            Ok(quote) => {
                self.counters
                    .quoted
                    .fetch_add(jobs.len() as u64, Ordering::Relaxed);
                for ((_, reply), path) in jobs.into_iter().zip(paths) {
                    let mut q = quote.clone();
                    q.batch = path;
                    reply.send(Ok(q));
                }
            }
            Err(e) => {
                for (_, reply) in jobs {
                    reply.send(Err(e.clone()));
                }
            }
        }
    }

    /// One TPM2_Quote qualified by `qualifying`, with the PCR values it covers. The values are
    /// read again only when the quoted digest differs from the cached ones (a PCR was extended);
    /// if they change between the quote and the read, the quote is made again.
    fn quote(&mut self, qualifying: &Hash) -> Result<Quote, Fault> {
        let ak = self.handle(&Obj::Ak, &[])?;
        for _ in 0..QUOTE_TRIES {
            self.counters.quotes.fetch_add(1, Ordering::Relaxed);
            let selection = self.pcr_selection.clone();
            let data =
                Data::try_from(qualifying.to_vec()).map_err(Fault::local("qualifying data"))?;
            let (attest, signature) = self
                .ctx()?
                .execute_with_session(Some(AuthSession::Password), |c| {
                    c.quote(ak, data, SignatureScheme::Null, selection)
                })
                .map_err(Fault::command("TPM2_Quote"))?;
            let AttestInfo::Quote { info } = attest.attested() else {
                return Err(TpmError::NotAQuote.into());
            };
            let quoted: [u8; 32] = info
                .pcr_digest()
                .value()
                .try_into()
                .map_err(|_| TpmError::QuotedDigest)?;
            let stale = !matches!(&self.pcr_cache, Some((_, digest)) if *digest == quoted);
            if stale {
                let values = self.read_pcrs()?;
                let digest = evidence::pcr_digest(values.iter().map(|v| v.as_slice()));
                self.pcr_cache = Some((values, digest));
                if digest != quoted {
                    continue;
                }
            }
            let Some((values, _)) = &self.pcr_cache else {
                continue;
            };
            let pcrs: BTreeMap<String, String> = self
                .opts
                .pcrs
                .iter()
                .map(u8::to_string)
                .zip(values.iter().map(hex::encode))
                .collect();
            return Ok(Quote {
                attest: jose::b64url(&marshal_attest(&attest)?),
                signature: jose::b64url(&marshal_signature(&signature)?),
                pcr_bank: "sha256".into(),
                pcrs,
                batch: None,
            });
        }
        Err(TpmError::PcrsChanging.into())
    }

    /// The configured PCRs' values in index order; TPM2_PCR_Read returns at most eight a call.
    fn read_pcrs(&mut self) -> Result<Vec<[u8; 32]>, Fault> {
        let mut values = Vec::with_capacity(self.opts.pcrs.len());
        for chunk in self.opts.pcrs.clone().chunks(8) {
            let selection = pcr_selection(chunk)?;
            let (_, _, digests) = self
                .ctx()?
                .pcr_read(selection)
                .map_err(Fault::command("TPM2_PCR_Read"))?;
            if digests.value().len() != chunk.len() {
                return Err(TpmError::PcrCount {
                    asked: chunk.len(),
                    got: digests.value().len(),
                }
                .into());
            }
            for d in digests.value() {
                values.push(d.value().try_into().map_err(|_| TpmError::PcrSize)?);
            }
        }
        Ok(values)
    }
}

fn marshal_attest(a: &Attest) -> Result<Vec<u8>, Fault> {
    a.marshall().map_err(Fault::local("marshal TPMS_ATTEST"))
}

fn marshal_signature(s: &Signature) -> Result<Vec<u8>, Fault> {
    s.marshall().map_err(Fault::local("marshal TPMT_SIGNATURE"))
}

/// A sha256 PCR selection.
pub(super) fn pcr_selection(pcrs: &[u8]) -> Result<PcrSelectionList, TpmError> {
    let slots = pcrs
        .iter()
        .map(|&i| {
            1u32.checked_shl(u32::from(i))
                .and_then(|bit| PcrSlot::try_from(bit).ok())
                .ok_or(TpmError::NoSuchPcr(i))
        })
        .collect::<Result<Vec<_>, _>>()?;
    PcrSelectionListBuilder::new()
        .with_selection(HashingAlgorithm::Sha256, &slots)
        .build()
        .map_err(|code| TpmError::Call {
            call: "PCR selection",
            code,
        })
}
