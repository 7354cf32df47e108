//! Certificates for ARI keys: PKCS#10 requests signed inside the key store, and the check that
//! an imported certificate certifies the agent's own key.
//!
//! Building a request is split in two pure halves around the signature, so the private key never
//! leaves the store: [`CsrDraft::new`] encodes the request info and gives the SHA-256 digest to
//! sign; [`CsrDraft::finish`] wraps the store's raw `r||s` in the DER form X.509 expects.

use crate::jose::PublicKey;
use der::asn1::{BitString, SetOfVec};
use der::{Decode, DecodePem, Encode, EncodePem};
use p256::ecdsa::Signature;
use p256::pkcs8::EncodePublicKey;
use sha2::{Digest, Sha256};
use std::str::FromStr;
use x509_cert::Certificate;
use x509_cert::name::Name;
use x509_cert::request::{CertReq, CertReqInfo, Version};
use x509_cert::spki::{AlgorithmIdentifierOwned, ObjectIdentifier, SubjectPublicKeyInfoOwned};

/// ecdsa-with-SHA256 (RFC 5758).
const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");

/// Why a request could not be built or a certificate was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertificateError {
    /// The subject is not an RFC 4514 distinguished name.
    #[error("subject {0:?} is not a distinguished name such as \"CN=shop-bot,O=Example\"")]
    Subject(String),
    /// The certificate is not PEM-encoded X.509.
    #[error("not an X.509 certificate: {0}")]
    Parse(#[source] der::Error),
    /// The certificate certifies another key.
    #[error("the certificate's public key is not the agent's key")]
    Mismatch,
    /// DER or PEM encoding failed.
    #[error("cannot encode: {0}")]
    Encode(#[from] der::Error),
    /// The agent's public key could not be written as a SubjectPublicKeyInfo.
    #[error("cannot encode the public key: {0}")]
    PublicKey(#[from] p256::pkcs8::spki::Error),
    /// The key store's raw signature is not a valid P-256 ECDSA signature.
    #[error("the key store returned an invalid signature")]
    Signature,
}

fn spki(public: &PublicKey) -> Result<SubjectPublicKeyInfoOwned, CertificateError> {
    let der = public.verifying_key().to_public_key_der()?;
    Ok(SubjectPublicKeyInfoOwned::from_der(der.as_bytes())?)
}

/// A certification request waiting for its signature.
#[derive(Debug, Clone)]
pub struct CsrDraft {
    info: CertReqInfo,
    digest: [u8; 32],
}

impl CsrDraft {
    /// Encodes the request info for `subject` and `public`.
    pub fn new(subject: &str, public: &PublicKey) -> Result<Self, CertificateError> {
        let name =
            Name::from_str(subject).map_err(|_| CertificateError::Subject(subject.into()))?;
        if name.as_ref().is_empty() {
            return Err(CertificateError::Subject(subject.into()));
        }
        let info = CertReqInfo {
            version: Version::V1,
            subject: name,
            public_key: spki(public)?,
            attributes: SetOfVec::new(),
        };
        let der = info.to_der()?;
        Ok(Self {
            info,
            digest: Sha256::digest(&der).into(),
        })
    }

    /// The digest the key store signs.
    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }

    /// Attaches the raw `r||s` signature and returns the PEM request.
    pub fn finish(self, raw_signature: &[u8; 64]) -> Result<String, CertificateError> {
        let sig = Signature::from_slice(raw_signature).map_err(|_| CertificateError::Signature)?;
        let req = CertReq {
            info: self.info,
            algorithm: AlgorithmIdentifierOwned {
                oid: ECDSA_WITH_SHA256,
                parameters: None,
            },
            signature: BitString::from_bytes(sig.to_der().as_bytes())?,
        };
        Ok(req.to_pem(der::pem::LineEnding::LF)?)
    }
}

/// What an accepted certificate says, for display.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CertificateSummary {
    /// Subject DN.
    pub subject: String,
    /// Issuer DN.
    pub issuer: String,
    /// Serial number, hex.
    pub serial: String,
    /// Validity start (RFC 3339-like, as X.509 prints it).
    pub not_before: String,
    /// Validity end.
    pub not_after: String,
}

/// Parses a PEM certificate and checks that it certifies `public`. Returns the normalized PEM and
/// a summary.
pub fn check_certificate(
    pem: &str,
    public: &PublicKey,
) -> Result<(String, CertificateSummary), CertificateError> {
    let cert = Certificate::from_pem(pem.trim().as_bytes()).map_err(CertificateError::Parse)?;
    let tbs = cert.tbs_certificate();
    let theirs = tbs.subject_public_key_info().to_der()?;
    let ours = spki(public)?.to_der()?;
    if theirs != ours {
        return Err(CertificateError::Mismatch);
    }
    let summary = CertificateSummary {
        subject: tbs.subject().to_string(),
        issuer: tbs.issuer().to_string(),
        serial: tbs.serial_number().to_string(),
        not_before: tbs.validity().not_before.to_string(),
        not_after: tbs.validity().not_after.to_string(),
    };
    let normalized = cert.to_pem(der::pem::LineEnding::LF)?;
    Ok((normalized, summary))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use p256::ecdsa::SigningKey;
    use p256::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};

    #[test]
    fn csr_signature_verifies_over_the_info() {
        let sk = SigningKey::from_slice(&[3u8; 32]).unwrap();
        let pk = PublicKey::from_sec1(sk.verifying_key().to_sec1_point(false).as_bytes()).unwrap();
        let draft = CsrDraft::new("CN=shop-bot,O=Example", &pk).unwrap();
        let sig: Signature = sk.sign_prehash(&draft.digest()).unwrap();
        let pem = draft.finish(&sig.to_bytes().into()).unwrap();
        let req = CertReq::from_pem(pem.as_bytes()).unwrap();
        let digest = Sha256::digest(req.info.to_der().unwrap());
        let sig = Signature::from_der(req.signature.raw_bytes()).unwrap();
        sk.verifying_key().verify_prehash(&digest, &sig).unwrap();
        assert!(CsrDraft::new("not a dn", &pk).is_err());
    }
}
