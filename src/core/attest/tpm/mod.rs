//! TPM evidence as it travels in attestation bundles, and its offline verifier.
//!
//! The daemon ships the TPM's own bytes untouched: the `TPMS_ATTEST` a quote or a certification
//! signed, the `TPMT_SIGNATURE` over it, and the ARI key's `TPMT_PUBLIC`, each base64url. A
//! verifier then needs nothing from the daemon but the attestation key (AK) it enrolled, and can
//! hand the same bytes to `tpm2_checkquote` for a second opinion.
//!
//! Concurrent payments share one quote: the quote's qualifying data is then the root of an
//! RFC 9162 Merkle tree whose leaves are the payments' binding digests, and each bundle carries
//! its leaf's index and inclusion path. A quote made for one payment alone qualifies it with the
//! binding digest itself.
//!
//! [`verify`] checks a bundle against a [`Policy`] and names the first check that fails.

use crate::attest::Bundle;
use crate::jose::{self, Jwk, PublicKey};
use crate::merkle::{self, Hash};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use wire::{ALG_SHA256, Attest, Attested, EccPublic, EcdsaSignature, WireError};

pub mod wire;

pub use wire::{ST_ATTEST_CERTIFY, ST_ATTEST_QUOTE, TPM_GENERATED};

/// A quote over the configured PCRs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quote {
    /// The signed `TPMS_ATTEST`, base64url.
    pub attest: String,
    /// The AK's `TPMT_SIGNATURE` over it, base64url.
    pub signature: String,
    /// The PCR bank, always `sha256`.
    pub pcr_bank: String,
    /// PCR index (decimal) to value (hex), for every quoted PCR.
    pub pcrs: BTreeMap<String, String>,
    /// Present when several payments share the quote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<BatchPath>,
}

/// Where one binding digest sits in a shared quote's tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchPath {
    /// Leaf index.
    pub index: u64,
    /// Number of leaves.
    pub size: u64,
    /// Inclusion path, base64url hashes, leaf to root.
    pub path: Vec<String>,
}

/// TPM2_Certify of an ARI key by the AK.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certification {
    /// The signed `TPMS_ATTEST` (type certify), base64url.
    pub attest: String,
    /// The AK's `TPMT_SIGNATURE` over it, base64url.
    pub signature: String,
    /// The ARI key's `TPMT_PUBLIC`, base64url; its name is what the TPM certified.
    pub public: String,
}

/// TPM evidence in a bundle. On PKCS#11 only `present = false` is given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TpmEvidence {
    /// Whether there is TPM evidence.
    pub present: bool,
    /// The attestation key's public half.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ak: Option<Jwk>,
    /// The quote that binds this payment or challenge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quote: Option<Quote>,
    /// The ARI key's certification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certification: Option<Certification>,
}

impl TpmEvidence {
    /// No TPM evidence (PKCS#11).
    pub fn absent() -> Self {
        Self {
            present: false,
            ak: None,
            quote: None,
            certification: None,
        }
    }
}

/// The qualifying data of one quote over `bindings` (binding digests), and each binding's place
/// in it: the digest itself and no path for one, else the Merkle root of their leaves and each
/// leaf's inclusion path.
pub fn batch(bindings: &[Hash]) -> (Hash, Vec<Option<BatchPath>>) {
    if let [one] = bindings {
        return (*one, vec![None]);
    }
    let mut t = merkle::MemoryTree::new();
    for b in bindings {
        t.push(merkle::leaf_hash(b));
    }
    let size = t.size();
    let root = t.root(size).unwrap_or_else(|_| merkle::empty_root());
    let paths = (0..size)
        .map(|index| {
            let path = merkle::inclusion_proof(&t, index, size).ok()?;
            Some(BatchPath {
                index,
                size,
                path: path.iter().map(|h| jose::b64url(h)).collect(),
            })
        })
        .collect();
    (root, paths)
}

/// The raw bytes of a base64url binding digest.
pub fn binding_bytes(binding: &str) -> Option<Hash> {
    jose::b64url_decode(binding)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
}

/// SHA-256 over the PCR values in index order, as `TPMS_QUOTE_INFO.pcrDigest` is computed.
pub fn pcr_digest<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> [u8; 32] {
    let mut h = Sha256::new();
    for v in values {
        h.update(v);
    }
    h.finalize().into()
}

/// The binding digest of an `agent.attest` challenge: SHA-256 over the compact JSON array
/// `["agent.attest", nonce, kid]`, base64url.
pub fn challenge_binding(nonce: &str, kid: &str) -> String {
    let array = serde_json::json!(["agent.attest", nonce, kid]);
    jose::b64url(&Sha256::digest(array.to_string().as_bytes()))
}

/// What a verifier accepts. Read from TOML; unknown keys are refused.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Whether a bundle without TPM evidence (a PKCS#11 key store) fails. Defaults to true.
    #[serde(default = "yes")]
    pub require_tpm: bool,
    /// Allowed executable digests (hex); empty allows any.
    #[serde(default)]
    pub exe_sha256: Vec<String>,
    /// Allowed caller uids; empty allows any.
    #[serde(default)]
    pub uids: Vec<u32>,
    /// Expected sha256 PCR values (hex) by index (decimal). Each must be in the quote with this
    /// value.
    #[serde(default)]
    pub pcrs: BTreeMap<String, String>,
}

fn yes() -> bool {
    true
}

/// The TPM clock and counters last seen for an AK; a verifier keeps one per host. A newer
/// bundle must not go back in (resetCount, restartCount, clock) order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    /// `clockInfo.clock`, milliseconds.
    pub clock: u64,
    /// `clockInfo.resetCount`.
    pub reset_count: u32,
    /// `clockInfo.restartCount`.
    pub restart_count: u32,
}

/// A failed check: its name and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{check}: {detail}")]
pub struct Failure {
    /// The check, e.g. `quote_signature`, `qualifying_data`, `pcr_value`, `clock`.
    pub check: &'static str,
    /// What the verifier found.
    pub detail: String,
}

fn fail(check: &'static str, detail: impl Into<String>) -> Failure {
    Failure {
        check,
        detail: detail.into(),
    }
}

/// What a successful verification established.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verified {
    /// Whether TPM evidence was checked (false: the policy let a PKCS#11 bundle pass).
    pub tpm: bool,
    /// The TPM clock and counters of the quote, to be kept as the next `last_seen`.
    pub seen: Option<Seen>,
    /// The quoted PCRs, by index.
    pub pcrs: BTreeMap<u8, String>,
    /// Leaves in the shared quote (1 when the quote was made for this bundle alone).
    pub batch_size: u64,
}

/// Checks a bundle's TPM evidence and runtime claims against `policy` and the AK the verifier
/// enrolled. `last_seen` is the state kept from this AK's previous bundle, if any.
pub fn verify(
    bundle: &Bundle,
    ak: &PublicKey,
    policy: &Policy,
    last_seen: Option<Seen>,
) -> Result<Verified, Failure> {
    let runtime = &bundle.evidence.runtime;
    if !policy.uids.is_empty() && !policy.uids.contains(&runtime.uid) {
        return Err(fail(
            "uid",
            format!("uid {} is not allowed by the policy", runtime.uid),
        ));
    }
    if !policy.exe_sha256.is_empty() {
        let exe = runtime.exe_sha256.as_deref().unwrap_or("");
        if !policy
            .exe_sha256
            .iter()
            .any(|d| d.eq_ignore_ascii_case(exe))
        {
            return Err(fail(
                "exe",
                format!("executable digest {exe:?} is not allowed by the policy"),
            ));
        }
    }
    let tpm = &bundle.evidence.tpm;
    if !tpm.present {
        if policy.require_tpm {
            return Err(fail(
                "no_tpm_evidence",
                format!(
                    "the key lives in a {} store and the bundle has no TPM evidence",
                    bundle.evidence.key.store
                ),
            ));
        }
        return Ok(Verified {
            tpm: false,
            seen: None,
            pcrs: BTreeMap::new(),
            batch_size: 0,
        });
    }
    let bundle_ak = tpm
        .ak
        .as_ref()
        .ok_or_else(|| fail("ak", "the bundle names no attestation key"))?
        .to_public_key()
        .map_err(|e| {
            fail(
                "ak",
                format!("the bundle's attestation key is unreadable: {e}"),
            )
        })?;
    if bundle_ak.thumbprint() != ak.thumbprint() {
        return Err(fail(
            "ak",
            "the bundle was signed by another attestation key than the enrolled one",
        ));
    }
    let quote = tpm
        .quote
        .as_ref()
        .ok_or_else(|| fail("quote", "TPM evidence without a quote"))?;
    let binding = binding_bytes(&bundle.binding)
        .ok_or_else(|| fail("binding", "the binding digest is not 32 bytes of base64url"))?;
    let (attest, batch_size, pcrs) = check_quote(quote, ak, &binding, policy)?;
    let clock = &attest.clock_info;
    let seen = Seen {
        clock: clock.clock,
        reset_count: clock.reset_count,
        restart_count: clock.restart_count,
    };
    if let Some(last) = last_seen {
        check_clock(&seen, &last)?;
    }
    let cert = tpm
        .certification
        .as_ref()
        .ok_or_else(|| fail("certification", "TPM evidence without a key certification"))?;
    check_certification(cert, ak, &bundle.evidence.key.kid)?;
    Ok(Verified {
        tpm: true,
        seen: Some(seen),
        pcrs,
        batch_size,
    })
}

fn decode(check: &'static str, what: &str, b64: &str) -> Result<Vec<u8>, Failure> {
    jose::b64url_decode(b64).map_err(|e| fail(check, format!("{what} is not base64url: {e}")))
}

/// Checks the magic, type and AK signature of a `TPMS_ATTEST` and parses it.
fn signed_attest(
    attest_b64: &str,
    signature_b64: &str,
    ak: &PublicKey,
    expected_type: u16,
    prefix: &'static [&'static str; 4],
) -> Result<Attest, Failure> {
    let [sig_check, magic_check, type_check, parse_check] = *prefix;
    let bytes = decode(parse_check, "the attestation", attest_b64)?;
    let sig = decode(sig_check, "the signature", signature_b64)?;
    let magic = bytes
        .get(..4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_be_bytes);
    if magic != Some(TPM_GENERATED) {
        return Err(fail(
            magic_check,
            "the attestation does not start with TPM_GENERATED_VALUE: the TPM did not make it",
        ));
    }
    let st = bytes
        .get(4..6)
        .and_then(|b| <[u8; 2]>::try_from(b).ok())
        .map(u16::from_be_bytes);
    if st != Some(expected_type) {
        return Err(fail(
            type_check,
            format!(
                "attestation type {:#06x}, expected {expected_type:#06x}",
                st.unwrap_or(0)
            ),
        ));
    }
    let rs = ecdsa_signature(&sig).map_err(|e| fail(sig_check, e.to_string()))?;
    let digest: [u8; 32] = Sha256::digest(&bytes).into();
    ak.verify_digest(&digest, &rs).map_err(|_| {
        fail(
            sig_check,
            "the attestation key's signature does not verify over the attestation",
        )
    })?;
    Attest::read(&bytes).map_err(|e| fail(parse_check, format!("unreadable TPMS_ATTEST: {e}")))
}

/// The raw `r||s` of a marshalled `TPMT_SIGNATURE` (ECDSA, P-256).
pub fn ecdsa_signature(bytes: &[u8]) -> Result<[u8; 64], WireError> {
    EcdsaSignature::read(bytes).map(|s| s.rs)
}

fn check_quote(
    quote: &Quote,
    ak: &PublicKey,
    binding: &Hash,
    policy: &Policy,
) -> Result<(Attest, u64, BTreeMap<u8, String>), Failure> {
    let attest = signed_attest(
        &quote.attest,
        &quote.signature,
        ak,
        ST_ATTEST_QUOTE,
        &["quote_signature", "magic", "attestation_type", "quote"],
    )?;
    let Attested::Quote(info) = &attest.attested else {
        return Err(fail("attestation_type", "not a quote"));
    };
    // Qualifying data: the binding digest, or the root of the batch it is a leaf of.
    let extra = attest.extra_data.as_slice();
    let batch_size = match &quote.batch {
        None => {
            if extra != binding.as_slice() {
                return Err(fail(
                    "qualifying_data",
                    "the quote's qualifying data is not this bundle's binding digest",
                ));
            }
            1
        }
        Some(b) => {
            let root = <[u8; 32]>::try_from(extra).map_err(|_| {
                fail(
                    "qualifying_data",
                    "a shared quote's qualifying data is not a 32-byte root",
                )
            })?;
            let mut path = Vec::with_capacity(b.path.len());
            for p in &b.path {
                let h = decode("batch_path", "a path hash", p)?;
                path.push(
                    <[u8; 32]>::try_from(h)
                        .map_err(|_| fail("batch_path", "a path hash is not 32 bytes"))?,
                );
            }
            if !merkle::verify_inclusion(b.index, b.size, &merkle::leaf_hash(binding), &path, &root)
            {
                return Err(fail(
                    "qualifying_data",
                    "the binding digest is not in the tree whose root the quote qualifies",
                ));
            }
            b.size
        }
    };
    // The PCRs: the quoted selection is exactly the values given, and they hash to pcrDigest.
    if quote.pcr_bank != "sha256" {
        return Err(fail("pcr_selection", format!("bank {:?}", quote.pcr_bank)));
    }
    let mut quoted = BTreeSet::new();
    for sel in &info.pcr_select {
        if sel.hash != ALG_SHA256 {
            return Err(fail(
                "pcr_selection",
                "the quote covers a bank other than sha256",
            ));
        }
        for pcr in sel.pcrs() {
            quoted.insert(
                u8::try_from(pcr)
                    .map_err(|_| fail("pcr_selection", format!("PCR {pcr} does not exist")))?,
            );
        }
    }
    let pcrs = indexed(&quote.pcrs, "pcr_selection")?;
    let given: BTreeSet<u8> = pcrs.keys().copied().collect();
    if quoted != given {
        return Err(fail(
            "pcr_selection",
            format!("the quote covers PCRs {quoted:?} but the bundle gives {given:?}"),
        ));
    }
    let mut values = Vec::with_capacity(pcrs.len());
    for (i, v) in &pcrs {
        values.push(
            hex::decode(v)
                .ok()
                .filter(|b| b.len() == 32)
                .ok_or_else(|| fail("pcr_value", format!("PCR {i} is not 32 bytes of hex")))?,
        );
    }
    if info.pcr_digest.as_slice() != pcr_digest(values.iter().map(Vec::as_slice)).as_slice() {
        return Err(fail(
            "pcr_digest",
            "the PCR values do not hash to the digest the TPM quoted",
        ));
    }
    for (i, want) in indexed(&policy.pcrs, "policy")? {
        match pcrs.get(&i) {
            None => {
                return Err(fail(
                    "pcr_value",
                    format!("PCR {i} is required but not quoted"),
                ));
            }
            Some(got) if !got.eq_ignore_ascii_case(&want) => {
                return Err(fail(
                    "pcr_value",
                    format!("PCR {i} is {got}, the policy expects {want}"),
                ));
            }
            Some(_) => {}
        }
    }
    Ok((attest, batch_size, pcrs))
}

/// PCR values keyed by their decimal index.
fn indexed(
    map: &BTreeMap<String, String>,
    check: &'static str,
) -> Result<BTreeMap<u8, String>, Failure> {
    map.iter()
        .map(|(k, v)| {
            k.parse::<u8>()
                .ok()
                .filter(|i| *i < 24)
                .map(|i| (i, v.clone()))
                .ok_or_else(|| fail(check, format!("{k:?} is not a PCR index")))
        })
        .collect()
}

fn check_clock(now: &Seen, last: &Seen) -> Result<(), Failure> {
    if now.reset_count < last.reset_count {
        return Err(fail(
            "reset_count",
            format!(
                "resetCount went back from {} to {}",
                last.reset_count, now.reset_count
            ),
        ));
    }
    if now.reset_count == last.reset_count && now.restart_count < last.restart_count {
        return Err(fail(
            "restart_count",
            format!(
                "restartCount went back from {} to {}",
                last.restart_count, now.restart_count
            ),
        ));
    }
    // The clock is compared within one reset and restart only: after a power loss it resumes
    // from its last saved value, which may lag behind what a verifier saw (clockInfo.safe).
    if now.reset_count == last.reset_count
        && now.restart_count == last.restart_count
        && now.clock < last.clock
    {
        return Err(fail(
            "clock",
            format!(
                "the TPM clock went back from {} to {}",
                last.clock, now.clock
            ),
        ));
    }
    Ok(())
}

/// The TPM name of a `TPMT_PUBLIC` whose name algorithm is SHA-256.
pub fn name_of(public: &[u8]) -> Vec<u8> {
    let mut name = ALG_SHA256.to_be_bytes().to_vec();
    name.extend_from_slice(&Sha256::digest(public));
    name
}

/// The P-256 point of an ECC `TPMT_PUBLIC`.
pub fn ecc_point(public: &EccPublic) -> Option<PublicKey> {
    if public.curve != wire::ECC_NIST_P256 {
        return None;
    }
    let sec1 = public.sec1_p256().ok()?;
    PublicKey::from_sec1(&sec1).ok()
}

fn check_certification(cert: &Certification, ak: &PublicKey, kid: &str) -> Result<(), Failure> {
    let attest = signed_attest(
        &cert.attest,
        &cert.signature,
        ak,
        ST_ATTEST_CERTIFY,
        &[
            "certify_signature",
            "certify_magic",
            "certify_type",
            "certification",
        ],
    )?;
    let Attested::Certify(info) = &attest.attested else {
        return Err(fail("certify_type", "not a certification"));
    };
    let public_bytes = decode("certify_public", "the key's public area", &cert.public)?;
    let public = EccPublic::read(&public_bytes)
        .map_err(|e| fail("certify_public", format!("unreadable TPMT_PUBLIC: {e}")))?;
    let a = public.attributes;
    let wrong = [
        (!a.fixed_tpm(), "fixedTPM is clear"),
        (!a.fixed_parent(), "fixedParent is clear"),
        (!a.sensitive_data_origin(), "sensitiveDataOrigin is clear"),
        (a.restricted(), "the key is restricted"),
        (!a.sign(), "the key cannot sign"),
        (a.decrypt(), "the key can decrypt"),
    ];
    if let Some((_, why)) = wrong.iter().find(|(bad, _)| *bad) {
        return Err(fail("certify_attributes", *why));
    }
    if info.name != name_of(&public_bytes) {
        return Err(fail(
            "certify_name",
            "the certified name is not the name of the key's public area",
        ));
    }
    let point = ecc_point(&public)
        .ok_or_else(|| fail("certify_public", "the certified key is not a P-256 key"))?;
    if point.thumbprint() != kid {
        return Err(fail(
            "certify_key",
            "the certified key is not the ARI key the bundle names",
        ));
    }
    Ok(())
}

/// The files `tpm2_checkquote` reads for a quote: `TPMS_ATTEST`, `TPMT_SIGNATURE`, and the PCR
/// values in tpm2-tools' serialized layout (a `TPML_PCR_SELECTION`, a count, then `TPML_DIGEST`s
/// of up to eight values, as the C structures lie in memory on a little-endian host).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuoteFiles {
    /// `quote.msg`.
    pub message: Vec<u8>,
    /// `quote.sig`.
    pub signature: Vec<u8>,
    /// `pcrs.bin`.
    pub pcrs: Vec<u8>,
    /// The PCR list for `-l`, e.g. `sha256:0,1,2`.
    pub pcr_list: String,
}

/// Builds the [`QuoteFiles`] of a quote.
pub fn quote_files(quote: &Quote) -> Result<QuoteFiles, Failure> {
    const SELECTIONS: usize = 16; // TPM2_NUM_PCR_BANKS
    const DIGESTS: usize = 8; // values per TPML_DIGEST
    let pcrs = indexed(&quote.pcrs, "pcr_selection")?;
    let mut out = Vec::new();
    out.extend_from_slice(&1u32.to_le_bytes());
    let mut bitmap = [0u8; 4];
    for i in pcrs.keys() {
        if let Some(b) = bitmap.get_mut(usize::from(*i / 8)) {
            *b |= 1 << (i % 8);
        }
    }
    // TPMS_PCR_SELECTION: hash (u16), sizeofSelect (u8), pcrSelect[4], one byte of padding.
    for n in 0..SELECTIONS {
        if n == 0 {
            out.extend_from_slice(&ALG_SHA256.to_le_bytes());
            out.push(3);
            out.extend_from_slice(&bitmap);
        } else {
            out.extend_from_slice(&[0; 7]);
        }
        out.push(0);
    }
    let values: Vec<Vec<u8>> = pcrs
        .values()
        .map(|v| hex::decode(v).map_err(|_| fail("pcr_value", "a PCR value is not hex")))
        .collect::<Result<_, _>>()?;
    let groups: Vec<&[Vec<u8>]> = values.chunks(DIGESTS).collect();
    out.extend_from_slice(&u32::try_from(groups.len()).unwrap_or(0).to_le_bytes());
    for group in groups {
        out.extend_from_slice(&u32::try_from(group.len()).unwrap_or(0).to_le_bytes());
        for n in 0..DIGESTS {
            // TPM2B_DIGEST: size (u16) and a 64-byte buffer.
            let v = group.get(n).map(Vec::as_slice).unwrap_or_default();
            out.extend_from_slice(&u16::try_from(v.len()).unwrap_or(0).to_le_bytes());
            let mut buf = [0u8; 64];
            if let Some(dst) = buf.get_mut(..v.len()) {
                dst.copy_from_slice(v);
            }
            out.extend_from_slice(&buf);
        }
    }
    let list: Vec<String> = pcrs.keys().map(u8::to_string).collect();
    Ok(QuoteFiles {
        message: decode("quote", "the quote", &quote.attest)?,
        signature: decode("quote_signature", "the signature", &quote.signature)?,
        pcrs: out,
        pcr_list: format!("sha256:{}", list.join(",")),
    })
}
