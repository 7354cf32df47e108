//! The objects the daemon makes in the TPM, and which of them are loaded.
//!
//! Three kinds: the storage key (SRK) and the attestation key (AK), primaries the TPM derives
//! again from its seeds whenever they are needed, and ARI keys, created under the SRK. An ARI
//! key's id is its blob: a tag, its `TPMT_PUBLIC` and its SRK-wrapped `TPM2B_PRIVATE`, which
//! the daemon keeps in its state database and loads when it needs the key; its URI names it by
//! its TPM name. A TPM without a resource manager holds very few objects, so loaded objects
//! form a small least-recently-used cache. Public areas become [`PublicKey`]s and TPM
//! signatures raw `r||s` here, from tss-esapi's structures. No template made here allows a
//! key to leave the TPM, to decrypt, or to be used without its auth value.

use super::fault::{Fault, Remedy, TpmError};
use super::owner::Actor;
use super::{KeyId, KeyInfo};
use crate::attest::tpm::{self as tpm_evidence, name_of, wire};
use crate::backend::KeyAttributes;
use crate::jose::PublicKey;
use std::sync::atomic::Ordering;
use tss_esapi::attributes::ObjectAttributesBuilder;
use tss_esapi::constants::tss::{TPM2_RH_NULL, TPM2_ST_HASHCHECK};
use tss_esapi::handles::KeyHandle;
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::resource_handles::Hierarchy;
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::{
    Auth, Digest, EccPoint, EccScheme, HashScheme, KeyDerivationFunctionScheme, Private, Public,
    PublicBuilder, PublicEccParametersBuilder, Signature, SignatureScheme,
    SymmetricDefinitionObject,
};
use tss_esapi::traits::{Marshall, UnMarshall};
use tss_esapi::tss2_esys::TPMT_TK_HASHCHECK;

/// The blob format tag at the start of every TPM key id.
const BLOB_TAG: &[u8; 4] = b"tpm1";

/// An object the TPM may hold loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Obj {
    Srk,
    Ak,
    Key(KeyId),
}

/// An object loaded now, and when it was last used.
pub(super) struct Loaded {
    pub(super) obj: Obj,
    pub(super) handle: KeyHandle,
    used: u64,
}

impl Actor {
    /// The handle of `obj`, loading it (and evicting the least recently used objects not in
    /// `keep`) if needed.
    pub(super) fn handle(&mut self, obj: &Obj, keep: &[&Obj]) -> Result<KeyHandle, Fault> {
        self.tick += 1;
        let tick = self.tick;
        if let Some(l) = self.loaded.iter_mut().find(|l| &l.obj == obj) {
            l.used = tick;
            return Ok(l.handle);
        }
        let capacity = self.opts.max_loaded.max(2);
        let handle = match obj {
            Obj::Srk => {
                self.make_room(capacity, keep, obj)?;
                let r = self
                    .ctx()?
                    .execute_with_session(Some(AuthSession::Password), |c| {
                        c.create_primary(Hierarchy::Owner, srk_template()?, None, None, None, None)
                    })
                    .map_err(Fault::command("TPM2_CreatePrimary (storage key)"))?;
                r.key_handle
            }
            Obj::Ak => {
                self.make_room(capacity, keep, obj)?;
                let auth = self.key_auth()?;
                let r = self
                    .ctx()?
                    .execute_with_session(Some(AuthSession::Password), |c| {
                        c.create_primary(
                            Hierarchy::Endorsement,
                            ak_template()?,
                            auth,
                            None,
                            None,
                            None,
                        )
                    })
                    .map_err(Fault::command("TPM2_CreatePrimary (attestation key)"))?;
                self.ak = Some(r.out_public);
                r.key_handle
            }
            Obj::Key(id) => {
                let (public, private) = parse_blob(id)?;
                let mut keep_srk: Vec<&Obj> = keep.to_vec();
                keep_srk.push(obj);
                let srk = self.handle(&Obj::Srk, &keep_srk)?;
                self.make_room(capacity, &keep_srk, obj)?;
                self.ctx()?
                    .execute_with_session(Some(AuthSession::Password), |c| {
                        c.load(srk, private, public)
                    })
                    .map_err(|e| match Fault::command("TPM2_Load")(e) {
                        // A blob the TPM refuses to load is not a key of this TPM's SRK.
                        Fault::Call {
                            remedy: Remedy::GiveUp | Remedy::LockedOut,
                            ..
                        } => Fault::KeyNotFound(id.clone()),
                        other => other,
                    })?
            }
        };
        if let Some(auth) = self.key_auth()?
            && matches!(obj, Obj::Ak | Obj::Key(_))
        {
            // Local to ESAPI: not a TPM command, so not counted.
            self.local_ctx()?
                .tr_set_auth(handle.into(), auth)
                .map_err(Fault::command("Esys_TR_SetAuth"))?;
        }
        self.loaded.push(Loaded {
            obj: obj.clone(),
            handle,
            used: tick,
        });
        // The storage key is needed only to load keys. Kept in a full TPM it would take the slot
        // of a key in use and every later call would load again: let it go first.
        if matches!(obj, Obj::Key(_)) && self.loaded.len() >= capacity && !keep.contains(&&Obj::Srk)
        {
            self.forget(&Obj::Srk);
        }
        Ok(handle)
    }

    /// Flushes least recently used objects, except those in `keep` and `adding`, until there is
    /// a free slot.
    fn make_room(&mut self, capacity: usize, keep: &[&Obj], adding: &Obj) -> Result<(), Fault> {
        while self.loaded.len() >= capacity {
            let victim = self
                .loaded
                .iter()
                .filter(|l| &l.obj != adding && !keep.contains(&&l.obj))
                .min_by_key(|l| l.used)
                .map(|l| l.obj.clone())
                .ok_or(TpmError::NoRoom)?;
            self.forget(&victim);
        }
        Ok(())
    }

    fn key_auth(&self) -> Result<Option<Auth>, Fault> {
        self.opts
            .key_auth
            .as_ref()
            .map(|a| Auth::try_from(a.to_vec()).map_err(Fault::local("key auth")))
            .transpose()
    }

    /// Creates an ARI key under the SRK and certifies it with the AK.
    pub(super) fn generate(&mut self) -> Result<KeyInfo, Fault> {
        let srk = self.handle(&Obj::Srk, &[])?;
        // TPM2_Create needs a free object slot of its own while it works.
        self.make_room(self.opts.max_loaded.max(2), &[], &Obj::Srk)?;
        let auth = self.key_auth()?;
        let created = self
            .ctx()?
            .execute_with_session(Some(AuthSession::Password), |c| {
                c.create(srk, ari_template()?, auth, None, None, None)
            })
            .map_err(Fault::command("TPM2_Create"))?;
        let public = created
            .out_public
            .marshall()
            .map_err(Fault::local("marshal TPMT_PUBLIC"))?;
        let id = KeyId(blob(&public, created.out_private.value()));
        let certification = self.certify(&id, &public)?;
        let mut info = key_info(&id)?;
        info.certification = Some(certification);
        Ok(info)
    }

    /// Loads the key, so a blob the TPM refuses is known now, and describes it.
    pub(super) fn describe(&mut self, id: &KeyId) -> Result<KeyInfo, Fault> {
        self.handle(&Obj::Key(id.clone()), &[])?;
        key_info(id)
    }

    /// Signs a SHA-256 digest with an ARI key; the raw `r||s`.
    pub(super) fn sign(&mut self, id: &KeyId, digest: &[u8; 32]) -> Result<[u8; 64], Fault> {
        let handle = self.handle(&Obj::Key(id.clone()), &[])?;
        let validation = TPMT_TK_HASHCHECK {
            tag: TPM2_ST_HASHCHECK,
            hierarchy: TPM2_RH_NULL,
            digest: Default::default(),
        }
        .try_into()
        .map_err(Fault::local("hashcheck ticket"))?;
        let digest = Digest::try_from(digest.to_vec()).map_err(Fault::local("digest"))?;
        self.counters.signs.fetch_add(1, Ordering::Relaxed);
        let sig = self
            .ctx()?
            .execute_with_session(Some(AuthSession::Password), |c| {
                c.sign(handle, digest, SignatureScheme::Null, validation)
            })
            .map_err(Fault::command("TPM2_Sign"))?;
        Ok(ecdsa_rs(&sig)?)
    }
}

/// The P-256 point of an ECC public area, read from its marshalled bytes as a verifier reads it
/// ([`crate::attest::tpm::wire`]); `what` names the key in the error.
pub(super) fn ecc_point(public: &Public, what: &'static str) -> Result<PublicKey, TpmError> {
    public
        .marshall()
        .ok()
        .and_then(|bytes| wire::EccPublic::read(&bytes).ok())
        .and_then(|p| tpm_evidence::ecc_point(&p))
        .ok_or(TpmError::NotP256(what))
}

/// The raw `r||s` of an ECDSA signature the TPM made with a P-256 key, read from its marshalled
/// bytes as a verifier reads a quote's.
pub(super) fn ecdsa_rs(signature: &Signature) -> Result<[u8; 64], TpmError> {
    signature
        .marshall()
        .ok()
        .and_then(|bytes| tpm_evidence::ecdsa_signature(&bytes).ok())
        .ok_or(TpmError::NotEcdsa)
}

fn blob(public: &[u8], private: &[u8]) -> Vec<u8> {
    let mut out = BLOB_TAG.to_vec();
    out.extend_from_slice(
        &u16::try_from(public.len())
            .unwrap_or(u16::MAX)
            .to_be_bytes(),
    );
    out.extend_from_slice(public);
    out.extend_from_slice(private);
    out
}

fn parse_blob(id: &KeyId) -> Result<(Public, Private), Fault> {
    let bad = || Fault::KeyNotFound(id.clone());
    let rest = id.0.strip_prefix(BLOB_TAG.as_slice()).ok_or_else(bad)?;
    let (len, rest) = rest.split_first_chunk::<2>().ok_or_else(bad)?;
    let len = usize::from(u16::from_be_bytes(*len));
    let (public, private) = (
        rest.get(..len).ok_or_else(bad)?,
        rest.get(len..).ok_or_else(bad)?,
    );
    let public = Public::unmarshall(public).map_err(|_| bad())?;
    let private = Private::try_from(private.to_vec()).map_err(|_| bad())?;
    Ok((public, private))
}

/// What a key's blob says about it.
fn key_info(id: &KeyId) -> Result<KeyInfo, Fault> {
    let (public, _) = parse_blob(id)?;
    let point = ecc_point(&public, "key")?;
    let public_bytes = public
        .marshall()
        .map_err(Fault::local("marshal TPMT_PUBLIC"))?;
    Ok(KeyInfo {
        id: id.clone(),
        uri: format!("tpm:name={}", hex::encode(name_of(&public_bytes))),
        public: point,
        // In the attribute vocabulary verifiers already read: generated in the TPM, never
        // leaves it in the clear, signs and does nothing else.
        attributes: KeyAttributes::HARDWARE_RESIDENT,
        certification: None,
    })
}

fn ecdsa_sha256() -> EccScheme {
    EccScheme::EcDsa(HashScheme::new(HashingAlgorithm::Sha256))
}

/// An ECC P-256 public template with SHA-256 names, created in the TPM (fixedTPM,
/// fixedParent, sensitiveDataOrigin) and used with its auth value.
fn p256_template(
    attributes: ObjectAttributesBuilder,
    parameters: PublicEccParametersBuilder,
) -> tss_esapi::Result<Public> {
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Ecc)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(
            attributes
                .with_fixed_tpm(true)
                .with_fixed_parent(true)
                .with_sensitive_data_origin(true)
                .with_user_with_auth(true)
                .with_no_da(true)
                .build()?,
        )
        .with_ecc_parameters(parameters.build()?)
        .with_ecc_unique_identifier(EccPoint::default())
        .build()
}

/// The storage key: a restricted decryption key that wraps the keys created under it.
pub fn srk_template() -> tss_esapi::Result<Public> {
    p256_template(
        ObjectAttributesBuilder::new()
            .with_restricted(true)
            .with_decrypt(true),
        PublicEccParametersBuilder::new_restricted_decryption_key(
            SymmetricDefinitionObject::AES_128_CFB,
            EccCurve::NistP256,
        ),
    )
}

/// The attestation key: restricted to signing what the TPM itself produced (quotes,
/// certifications).
pub fn ak_template() -> tss_esapi::Result<Public> {
    p256_template(
        ObjectAttributesBuilder::new()
            .with_restricted(true)
            .with_sign_encrypt(true),
        PublicEccParametersBuilder::new()
            .with_symmetric(SymmetricDefinitionObject::Null)
            .with_ecc_scheme(ecdsa_sha256())
            .with_curve(EccCurve::NistP256)
            .with_key_derivation_function_scheme(KeyDerivationFunctionScheme::Null)
            .with_is_signing_key(true)
            .with_is_decryption_key(false)
            .with_restricted(true),
    )
}

/// An ARI key: signs digests, nothing else.
pub fn ari_template() -> tss_esapi::Result<Public> {
    p256_template(
        ObjectAttributesBuilder::new().with_sign_encrypt(true),
        PublicEccParametersBuilder::new_unrestricted_signing_key(
            ecdsa_sha256(),
            EccCurve::NistP256,
        ),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use tss_esapi::structures::EccParameter;

    #[test]
    fn a_blob_round_trips_and_garbage_is_not_a_key() {
        let public = ari_template().unwrap().marshall().unwrap();
        let id = KeyId(blob(&public, &[1, 2, 3]));
        let (p, private) = parse_blob(&id).unwrap();
        assert_eq!(p.marshall().unwrap(), public);
        assert_eq!(private.value(), &[1, 2, 3]);
        for bad in [vec![], b"tpm1".to_vec(), b"xxxx\x00\x01a".to_vec()] {
            assert!(matches!(
                parse_blob(&KeyId(bad)),
                Err(Fault::KeyNotFound(_))
            ));
        }
    }

    /// The public area of a P-256 template whose unique field is `point`.
    fn with_point(point: EccPoint) -> Public {
        PublicBuilder::new()
            .with_public_algorithm(PublicAlgorithm::Ecc)
            .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
            .with_object_attributes(
                ObjectAttributesBuilder::new()
                    .with_sign_encrypt(true)
                    .build()
                    .unwrap(),
            )
            .with_ecc_parameters(
                PublicEccParametersBuilder::new_unrestricted_signing_key(
                    ecdsa_sha256(),
                    EccCurve::NistP256,
                )
                .build()
                .unwrap(),
            )
            .with_ecc_unique_identifier(point)
            .build()
            .unwrap()
    }

    #[test]
    fn a_public_area_gives_its_point_and_nothing_else_does() {
        let sk = p256::ecdsa::SigningKey::from_slice(&[7; 32]).unwrap();
        let sec1 = sk.verifying_key().to_sec1_point(false);
        let sec1 = sec1.as_bytes();
        let (x, y) = sec1.get(1..33).zip(sec1.get(33..65)).unwrap();
        let point = |x: &[u8], y: &[u8]| {
            EccPoint::new(
                EccParameter::try_from(x.to_vec()).unwrap(),
                EccParameter::try_from(y.to_vec()).unwrap(),
            )
        };
        assert_eq!(
            ecc_point(&with_point(point(x, y)), "key").unwrap(),
            PublicKey::from_sec1(sec1).unwrap()
        );
        // A coordinate longer than P-256's, and the empty point of a template.
        let long = [&[0u8][..], x].concat();
        assert!(matches!(
            ecc_point(&with_point(point(&long, y)), "key"),
            Err(TpmError::NotP256("key"))
        ));
        assert!(matches!(
            ecc_point(&with_point(EccPoint::default()), "attestation key"),
            Err(TpmError::NotP256("attestation key"))
        ));
    }
}
