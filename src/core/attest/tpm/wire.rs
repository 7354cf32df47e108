//! A reader for the few TPM 2.0 marshalled structures a verifier of ARI evidence needs: the
//! `TPMS_ATTEST` of a quote or a certification, the ECDSA `TPMT_SIGNATURE` over it, and the
//! `TPMT_PUBLIC` of an ECC key, in the big-endian layouts of TPM 2.0 Library Part 2. It only
//! reads, in plain Rust with no TPM software stack, so it builds wherever the verifier does
//! (wasm32 included). Its input comes from whoever hands a verifier a bundle, so it trusts no
//! length or count in it: every `TPM2B` size and list count is checked against the bytes that
//! remain, nothing is allocated ahead of the bytes that back it, and a structure is accepted only
//! when it ends exactly where its input does (trailing bytes are an error). Each selector that
//! decides what follows (attestation type, signature algorithm, key type, symmetric algorithm,
//! schemes) must be one this reader knows, or reading stops with [`WireError::Unsupported`]. The
//! other values are handed on unjudged: whether a magic, a hash algorithm, a curve or a digest is
//! the right one is the verifier's call.

use thiserror::Error;

/// `TPM_GENERATED_VALUE`: every `TPMS_ATTEST` a TPM signs starts with it.
pub const TPM_GENERATED: u32 = 0xff54_4347;
/// `TPM_ST_ATTEST_QUOTE`.
pub const ST_ATTEST_QUOTE: u16 = 0x8018;
/// `TPM_ST_ATTEST_CERTIFY`.
pub const ST_ATTEST_CERTIFY: u16 = 0x8017;
/// `TPM_ALG_SHA1`.
pub const ALG_SHA1: u16 = 0x0004;
/// `TPM_ALG_SHA256`.
pub const ALG_SHA256: u16 = 0x000b;
/// `TPM_ALG_NULL`.
pub const ALG_NULL: u16 = 0x0010;
/// `TPM_ALG_ECDSA`.
pub const ALG_ECDSA: u16 = 0x0018;
/// `TPM_ALG_ECDH`.
pub const ALG_ECDH: u16 = 0x0019;
/// `TPM_ALG_ECDAA`, whose scheme details this reader does not read.
pub const ALG_ECDAA: u16 = 0x001a;
/// `TPM_ALG_SM2`.
pub const ALG_SM2: u16 = 0x001b;
/// `TPM_ALG_ECSCHNORR`.
pub const ALG_ECSCHNORR: u16 = 0x001c;
/// `TPM_ALG_ECMQV`.
pub const ALG_ECMQV: u16 = 0x001d;
/// `TPM_ALG_MGF1`.
pub const ALG_MGF1: u16 = 0x0007;
/// `TPM_ALG_KDF1_SP800_56A`.
pub const ALG_KDF1_SP800_56A: u16 = 0x0020;
/// `TPM_ALG_KDF2`.
pub const ALG_KDF2: u16 = 0x0021;
/// `TPM_ALG_KDF1_SP800_108`.
pub const ALG_KDF1_SP800_108: u16 = 0x0022;
/// `TPM_ALG_TDES`.
pub const ALG_TDES: u16 = 0x0003;
/// `TPM_ALG_AES`.
pub const ALG_AES: u16 = 0x0006;
/// `TPM_ALG_SM4`.
pub const ALG_SM4: u16 = 0x0013;
/// `TPM_ALG_CAMELLIA`.
pub const ALG_CAMELLIA: u16 = 0x0026;
/// `TPM_ALG_CFB`.
pub const ALG_CFB: u16 = 0x0043;
/// `TPM_ALG_ECC`.
pub const ALG_ECC: u16 = 0x0023;
/// `TPM_ECC_NIST_P256`.
pub const ECC_NIST_P256: u16 = 0x0003;

/// Why some bytes are not the structure they were read as.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum WireError {
    /// The input ends inside a field, or a size or count promises more bytes than remain.
    #[error("{what}: the input ends inside it")]
    Truncated {
        /// The field being read, e.g. `TPMS_ATTEST.extraData`.
        what: &'static str,
    },
    /// Bytes remain after a complete structure.
    #[error("{what}: {count} bytes after its end")]
    TrailingBytes {
        /// The structure read.
        what: &'static str,
        /// How many bytes were left over.
        count: usize,
    },
    /// A selector or value this reader does not read (another attestation type, signature
    /// algorithm, key type or scheme, or a `TPMI_YES_NO` other than 0 or 1).
    #[error("{what}: unsupported value {value:#06x}")]
    Unsupported {
        /// The field holding it, e.g. `TPMT_SIGNATURE.sigAlg`.
        what: &'static str,
        /// The value found.
        value: u32,
    },
    /// An ECC scalar or coordinate is longer than the 32 bytes of a P-256 one.
    #[error("{what}: {len} bytes, more than 32")]
    ScalarTooLong {
        /// The field, e.g. `TPMT_SIGNATURE.signatureR`.
        what: &'static str,
        /// Its length.
        len: usize,
    },
}

/// A `TPMS_ATTEST`: what a TPM signs for a quote or a certification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attest {
    /// `magic`: [`TPM_GENERATED`] when the TPM made it (the reader does not check).
    pub magic: u32,
    /// `qualifiedSigner`: the qualified name of the signing key.
    pub qualified_signer: Vec<u8>,
    /// `extraData`: the qualifying data the caller gave.
    pub extra_data: Vec<u8>,
    /// `clockInfo`.
    pub clock_info: ClockInfo,
    /// `firmwareVersion`.
    pub firmware_version: u64,
    /// `attested`, selected by the structure's `type`.
    pub attested: Attested,
}

/// A `TPMS_CLOCK_INFO`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockInfo {
    /// `clock`, milliseconds the TPM has been powered since its last clear.
    pub clock: u64,
    /// `resetCount`.
    pub reset_count: u32,
    /// `restartCount`.
    pub restart_count: u32,
    /// `safe`: the clock has not gone back since it was last reported.
    pub safe: bool,
}

/// The `attested` union of a [`Attest`], by its `type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attested {
    /// `TPM_ST_ATTEST_QUOTE`.
    Quote(QuoteInfo),
    /// `TPM_ST_ATTEST_CERTIFY`.
    Certify(CertifyInfo),
}

/// A `TPMS_QUOTE_INFO`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuoteInfo {
    /// `pcrSelect`: the quoted PCRs, one entry a bank.
    pub pcr_select: Vec<PcrSelection>,
    /// `pcrDigest`: the hash of the quoted PCR values.
    pub pcr_digest: Vec<u8>,
}

/// A `TPMS_PCR_SELECTION`: the PCRs selected in one bank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcrSelection {
    /// `hash`: the bank's algorithm, e.g. [`ALG_SHA256`].
    pub hash: u16,
    /// `pcrSelect`: bit `i` of byte `j` selects PCR `8j + i`.
    pub select: Vec<u8>,
}

/// A `TPMS_CERTIFY_INFO`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertifyInfo {
    /// `name`: the name of the certified object.
    pub name: Vec<u8>,
    /// `qualifiedName`: its qualified name.
    pub qualified_name: Vec<u8>,
}

/// An ECDSA `TPMT_SIGNATURE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcdsaSignature {
    /// `hash`: the algorithm of the signed digest.
    pub hash: u16,
    /// `signatureR || signatureS`, each left-padded with zeros to 32 bytes.
    pub rs: [u8; 64],
}

/// The `TPMT_PUBLIC` of an ECC key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EccPublic {
    /// `nameAlg`.
    pub name_alg: u16,
    /// `objectAttributes`.
    pub attributes: ObjectAttributes,
    /// `authPolicy`.
    pub auth_policy: Vec<u8>,
    /// `parameters.symmetric`, `None` for `TPM_ALG_NULL`.
    pub symmetric: Option<SymmetricObject>,
    /// `parameters.scheme`, `None` for `TPM_ALG_NULL`.
    pub scheme: Option<HashedScheme>,
    /// `parameters.curveID`, e.g. [`ECC_NIST_P256`].
    pub curve: u16,
    /// `parameters.kdf`, `None` for `TPM_ALG_NULL`.
    pub kdf: Option<HashedScheme>,
    /// `unique.x`.
    pub x: Vec<u8>,
    /// `unique.y`.
    pub y: Vec<u8>,
}

/// A `TPMT_SYM_DEF_OBJECT` other than `TPM_ALG_NULL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SymmetricObject {
    /// `algorithm`, e.g. `TPM_ALG_AES`.
    pub algorithm: u16,
    /// `keyBits`.
    pub key_bits: u16,
    /// `mode`, e.g. `TPM_ALG_CFB`.
    pub mode: u16,
}

/// A signing or key-derivation scheme with its hash (`TPMT_ECC_SCHEME`, `TPMT_KDF_SCHEME`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashedScheme {
    /// `scheme`, e.g. [`ALG_ECDSA`].
    pub scheme: u16,
    /// `details.hashAlg`.
    pub hash: u16,
}

/// A `TPMA_OBJECT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectAttributes(pub u32);

impl Attest {
    /// Reads a marshalled `TPMS_ATTEST` of a quote or a certification.
    pub fn read(bytes: &[u8]) -> Result<Self, WireError> {
        read_whole(bytes, "TPMS_ATTEST", |r| {
            let magic = r.u32("TPMS_ATTEST.magic")?;
            let kind = r.u16("TPMS_ATTEST.type")?;
            let qualified_signer = r.sized("TPMS_ATTEST.qualifiedSigner")?.to_vec();
            let extra_data = r.sized("TPMS_ATTEST.extraData")?.to_vec();
            let clock_info = ClockInfo {
                clock: r.u64("TPMS_CLOCK_INFO.clock")?,
                reset_count: r.u32("TPMS_CLOCK_INFO.resetCount")?,
                restart_count: r.u32("TPMS_CLOCK_INFO.restartCount")?,
                safe: match r.u8("TPMS_CLOCK_INFO.safe")? {
                    0 => false,
                    1 => true,
                    other => return Err(unsupported("TPMS_CLOCK_INFO.safe", other.into())),
                },
            };
            let firmware_version = r.u64("TPMS_ATTEST.firmwareVersion")?;
            let attested = match kind {
                ST_ATTEST_QUOTE => Attested::Quote(QuoteInfo {
                    pcr_select: pcr_selections(r)?,
                    pcr_digest: r.sized("TPMS_QUOTE_INFO.pcrDigest")?.to_vec(),
                }),
                ST_ATTEST_CERTIFY => Attested::Certify(CertifyInfo {
                    name: r.sized("TPMS_CERTIFY_INFO.name")?.to_vec(),
                    qualified_name: r.sized("TPMS_CERTIFY_INFO.qualifiedName")?.to_vec(),
                }),
                other => return Err(unsupported("TPMS_ATTEST.type", other)),
            };
            Ok(Self {
                magic,
                qualified_signer,
                extra_data,
                clock_info,
                firmware_version,
                attested,
            })
        })
    }

    /// The structure's `type`: [`ST_ATTEST_QUOTE`] or [`ST_ATTEST_CERTIFY`].
    pub fn attest_type(&self) -> u16 {
        match self.attested {
            Attested::Quote(_) => ST_ATTEST_QUOTE,
            Attested::Certify(_) => ST_ATTEST_CERTIFY,
        }
    }
}

/// A `TPML_PCR_SELECTION`. The count is not trusted: each entry must be backed by its bytes.
fn pcr_selections(r: &mut Reader<'_>) -> Result<Vec<PcrSelection>, WireError> {
    let count = r.u32("TPML_PCR_SELECTION.count")?;
    let mut out = Vec::new();
    for _ in 0..count {
        let hash = r.u16("TPMS_PCR_SELECTION.hash")?;
        let size = r.u8("TPMS_PCR_SELECTION.sizeofSelect")?;
        let select = r
            .take(usize::from(size), "TPMS_PCR_SELECTION.pcrSelect")?
            .to_vec();
        out.push(PcrSelection { hash, select });
    }
    Ok(out)
}

impl PcrSelection {
    /// The selected PCR indices, in increasing order.
    pub fn pcrs(&self) -> impl Iterator<Item = u32> + '_ {
        self.select.iter().zip(0u32..).flat_map(|(byte, j)| {
            (0..8u32)
                .filter(move |i| (byte >> i) & 1 == 1)
                .filter_map(move |i| j.checked_mul(8)?.checked_add(i))
        })
    }
}

const SIG_R: &str = "TPMS_SIGNATURE_ECDSA.signatureR";
const SIG_S: &str = "TPMS_SIGNATURE_ECDSA.signatureS";

impl EcdsaSignature {
    /// Reads a marshalled `TPMT_SIGNATURE` whose `sigAlg` is `TPM_ALG_ECDSA` and whose scalars
    /// fit P-256.
    pub fn read(bytes: &[u8]) -> Result<Self, WireError> {
        read_whole(bytes, "TPMT_SIGNATURE", |r| {
            let alg = r.u16("TPMT_SIGNATURE.sigAlg")?;
            if alg != ALG_ECDSA {
                return Err(unsupported("TPMT_SIGNATURE.sigAlg", alg));
            }
            let hash = r.u16("TPMS_SIGNATURE_ECDSA.hash")?;
            let sig_r = pad32(r.sized(SIG_R)?, SIG_R)?;
            let sig_s = pad32(r.sized(SIG_S)?, SIG_S)?;
            let mut rs = [0u8; 64];
            for (dst, src) in rs.iter_mut().zip(sig_r.iter().chain(&sig_s)) {
                *dst = *src;
            }
            Ok(Self { hash, rs })
        })
    }
}

impl EccPublic {
    /// Reads a marshalled `TPMT_PUBLIC` whose `type` is `TPM_ALG_ECC`.
    pub fn read(bytes: &[u8]) -> Result<Self, WireError> {
        read_whole(bytes, "TPMT_PUBLIC", |r| {
            let kind = r.u16("TPMT_PUBLIC.type")?;
            if kind != ALG_ECC {
                return Err(unsupported("TPMT_PUBLIC.type", kind));
            }
            let name_alg = r.u16("TPMT_PUBLIC.nameAlg")?;
            let attributes = ObjectAttributes(r.u32("TPMT_PUBLIC.objectAttributes")?);
            let auth_policy = r.sized("TPMT_PUBLIC.authPolicy")?.to_vec();
            let symmetric = match r.u16("TPMT_SYM_DEF_OBJECT.algorithm")? {
                ALG_NULL => None,
                algorithm @ (ALG_TDES | ALG_AES | ALG_SM4 | ALG_CAMELLIA) => {
                    Some(SymmetricObject {
                        algorithm,
                        key_bits: r.u16("TPMT_SYM_DEF_OBJECT.keyBits")?,
                        mode: r.u16("TPMT_SYM_DEF_OBJECT.mode")?,
                    })
                }
                other => return Err(unsupported("TPMT_SYM_DEF_OBJECT.algorithm", other)),
            };
            // TPM_ALG_ECDAA's details carry a count after the hash; no verifier here needs it.
            let scheme = match r.u16("TPMT_ECC_SCHEME.scheme")? {
                ALG_NULL => None,
                scheme @ (ALG_ECDSA | ALG_ECDH | ALG_SM2 | ALG_ECSCHNORR | ALG_ECMQV) => {
                    Some(HashedScheme {
                        scheme,
                        hash: r.u16("TPMT_ECC_SCHEME.hashAlg")?,
                    })
                }
                other => return Err(unsupported("TPMT_ECC_SCHEME.scheme", other)),
            };
            let curve = r.u16("TPMS_ECC_PARMS.curveID")?;
            let kdf = match r.u16("TPMT_KDF_SCHEME.scheme")? {
                ALG_NULL => None,
                scheme @ (ALG_MGF1 | ALG_KDF1_SP800_56A | ALG_KDF2 | ALG_KDF1_SP800_108) => {
                    Some(HashedScheme {
                        scheme,
                        hash: r.u16("TPMT_KDF_SCHEME.hashAlg")?,
                    })
                }
                other => return Err(unsupported("TPMT_KDF_SCHEME.scheme", other)),
            };
            let x = r.sized("TPMS_ECC_POINT.x")?.to_vec();
            let y = r.sized("TPMS_ECC_POINT.y")?.to_vec();
            Ok(Self {
                name_alg,
                attributes,
                auth_policy,
                symmetric,
                scheme,
                curve,
                kdf,
                x,
                y,
            })
        })
    }

    /// The point as an uncompressed SEC1 P-256 point (`04 || x || y`), each coordinate
    /// left-padded to 32 bytes. It checks lengths only, not the curve nor that the point is on it.
    pub fn sec1_p256(&self) -> Result<[u8; 65], WireError> {
        let x = pad32(&self.x, "TPMS_ECC_POINT.x")?;
        let y = pad32(&self.y, "TPMS_ECC_POINT.y")?;
        let mut out = [0u8; 65];
        for (dst, src) in out.iter_mut().zip([0x04].iter().chain(&x).chain(&y)) {
            *dst = *src;
        }
        Ok(out)
    }
}

impl ObjectAttributes {
    fn bit(self, n: u32) -> bool {
        (self.0 >> n) & 1 == 1
    }

    /// `fixedTPM` (bit 1): the object cannot leave this TPM.
    pub fn fixed_tpm(self) -> bool {
        self.bit(1)
    }

    /// `fixedParent` (bit 4): the object cannot move to another parent.
    pub fn fixed_parent(self) -> bool {
        self.bit(4)
    }

    /// `sensitiveDataOrigin` (bit 5): the TPM made the private part.
    pub fn sensitive_data_origin(self) -> bool {
        self.bit(5)
    }

    /// `restricted` (bit 16): it signs or decrypts only TPM-made structures.
    pub fn restricted(self) -> bool {
        self.bit(16)
    }

    /// `decrypt` (bit 17).
    pub fn decrypt(self) -> bool {
        self.bit(17)
    }

    /// `sign` (bit 18), also named `encrypt`.
    pub fn sign(self) -> bool {
        self.bit(18)
    }
}

fn unsupported(what: &'static str, value: u16) -> WireError {
    WireError::Unsupported {
        what,
        value: u32::from(value),
    }
}

/// `value` left-padded with zeros to 32 bytes.
fn pad32(value: &[u8], what: &'static str) -> Result<[u8; 32], WireError> {
    let start = 32usize
        .checked_sub(value.len())
        .ok_or(WireError::ScalarTooLong {
            what,
            len: value.len(),
        })?;
    let mut out = [0u8; 32];
    for (dst, src) in out.iter_mut().skip(start).zip(value) {
        *dst = *src;
    }
    Ok(out)
}

/// Runs `read` over `bytes` and requires it to consume them all.
fn read_whole<T>(
    bytes: &[u8],
    what: &'static str,
    read: impl FnOnce(&mut Reader<'_>) -> Result<T, WireError>,
) -> Result<T, WireError> {
    let mut r = Reader { rest: bytes };
    let value = read(&mut r)?;
    if r.rest.is_empty() {
        Ok(value)
    } else {
        Err(WireError::TrailingBytes {
            what,
            count: r.rest.len(),
        })
    }
}

/// The unread part of the input.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], WireError> {
        let (head, rest) = self
            .rest
            .split_at_checked(n)
            .ok_or(WireError::Truncated { what })?;
        self.rest = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], WireError> {
        let (head, rest) = self
            .rest
            .split_first_chunk::<N>()
            .ok_or(WireError::Truncated { what })?;
        self.rest = rest;
        Ok(*head)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, WireError> {
        self.array(what).map(u8::from_be_bytes)
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, WireError> {
        self.array(what).map(u16::from_be_bytes)
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, WireError> {
        self.array(what).map(u32::from_be_bytes)
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, WireError> {
        self.array(what).map(u64::from_be_bytes)
    }

    /// A `TPM2B`: a 16-bit size, then that many bytes.
    fn sized(&mut self, what: &'static str) -> Result<&'a [u8], WireError> {
        let size = self.u16(what)?;
        self.take(usize::from(size), what)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
    use super::*;

    /// Big-endian marshalling, the other way, for building inputs.
    #[derive(Default)]
    struct Bytes(Vec<u8>);

    impl Bytes {
        fn u8(mut self, v: u8) -> Self {
            self.0.push(v);
            self
        }
        fn u16(mut self, v: u16) -> Self {
            self.0.extend(v.to_be_bytes());
            self
        }
        fn u32(mut self, v: u32) -> Self {
            self.0.extend(v.to_be_bytes());
            self
        }
        fn u64(mut self, v: u64) -> Self {
            self.0.extend(v.to_be_bytes());
            self
        }
        fn raw(mut self, v: &[u8]) -> Self {
            self.0.extend_from_slice(v);
            self
        }
        fn sized(self, v: &[u8]) -> Self {
            self.u16(u16::try_from(v.len()).unwrap()).raw(v)
        }
    }

    const SIGNER: [u8; 34] = [0x0b; 34];
    const EXTRA: [u8; 32] = [0xe0; 32];

    /// A `TPMS_ATTEST` up to and excluding `attested`.
    fn attest_head(kind: u16, safe: u8) -> Bytes {
        Bytes::default()
            .u32(TPM_GENERATED)
            .u16(kind)
            .sized(&SIGNER)
            .sized(&EXTRA)
            .u64(0x0102_0304_0506_0708)
            .u32(7)
            .u32(9)
            .u8(safe)
            .u64(0x1122_3344_5566_7788)
    }

    /// A quote over sha1 {0, 7} and sha256 {0, 1, 2, 16, 23}.
    fn quote() -> Vec<u8> {
        attest_head(ST_ATTEST_QUOTE, 1)
            .u32(2)
            .u16(ALG_SHA1)
            .u8(3)
            .raw(&[0x81, 0, 0])
            .u16(ALG_SHA256)
            .u8(3)
            .raw(&[0x07, 0x00, 0x81])
            .sized(&[0xd1; 32])
            .0
    }

    fn certify() -> Vec<u8> {
        attest_head(ST_ATTEST_CERTIFY, 0)
            .sized(&[0xaa; 34])
            .sized(&[0xbb; 34])
            .0
    }

    fn signature(alg: u16, r: &[u8], s: &[u8]) -> Vec<u8> {
        Bytes::default()
            .u16(alg)
            .u16(ALG_SHA256)
            .sized(r)
            .sized(s)
            .0
    }

    /// The ARI key's template: fixedTPM, fixedParent, sensitiveDataOrigin, userWithAuth, noDA,
    /// sign; ECDSA-SHA256 on P-256.
    fn ari_key(x: &[u8], y: &[u8]) -> Vec<u8> {
        Bytes::default()
            .u16(ALG_ECC)
            .u16(ALG_SHA256)
            .u32(0x0004_0472)
            .sized(&[])
            .u16(ALG_NULL)
            .u16(ALG_ECDSA)
            .u16(ALG_SHA256)
            .u16(ECC_NIST_P256)
            .u16(ALG_NULL)
            .sized(x)
            .sized(y)
            .0
    }

    /// A storage key: restricted, decrypt, AES-128-CFB, no scheme, a KDF, an auth policy.
    fn storage_key() -> Vec<u8> {
        Bytes::default()
            .u16(ALG_ECC)
            .u16(ALG_SHA256)
            .u32(0x0003_0072)
            .sized(&[0x5a; 32])
            .u16(ALG_AES)
            .u16(128)
            .u16(ALG_CFB)
            .u16(ALG_NULL)
            .u16(ECC_NIST_P256)
            .u16(ALG_KDF1_SP800_56A)
            .u16(ALG_SHA256)
            .sized(&[1; 32])
            .sized(&[2; 32])
            .0
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Every proper prefix is `Truncated`, the whole reads, one more byte is `TrailingBytes`.
    fn check_bounds<T: std::fmt::Debug>(bytes: &[u8], read: fn(&[u8]) -> Result<T, WireError>) {
        for n in 0..bytes.len() {
            let e = read(&bytes[..n]).unwrap_err();
            assert!(
                matches!(e, WireError::Truncated { .. }),
                "prefix {n}: {e:?}"
            );
        }
        read(bytes).unwrap();
        let mut longer = bytes.to_vec();
        longer.push(0);
        assert!(matches!(
            read(&longer).unwrap_err(),
            WireError::TrailingBytes { count: 1, .. }
        ));
    }

    #[test]
    fn a_quote_reads_field_by_field() {
        let a = Attest::read(&quote()).unwrap();
        assert_eq!(a.magic, TPM_GENERATED);
        assert_eq!(a.attest_type(), ST_ATTEST_QUOTE);
        assert_eq!(a.qualified_signer, SIGNER);
        assert_eq!(a.extra_data, EXTRA);
        assert_eq!(
            a.clock_info,
            ClockInfo {
                clock: 0x0102_0304_0506_0708,
                reset_count: 7,
                restart_count: 9,
                safe: true
            }
        );
        assert_eq!(a.firmware_version, 0x1122_3344_5566_7788);
        let Attested::Quote(q) = a.attested else {
            panic!("not a quote")
        };
        assert_eq!(q.pcr_digest, [0xd1; 32]);
        let banks: Vec<(u16, Vec<u32>)> = q
            .pcr_select
            .iter()
            .map(|s| (s.hash, s.pcrs().collect()))
            .collect();
        assert_eq!(
            banks,
            [(ALG_SHA1, vec![0, 7]), (ALG_SHA256, vec![0, 1, 2, 16, 23])]
        );
    }

    #[test]
    fn a_certification_reads_field_by_field() {
        let a = Attest::read(&certify()).unwrap();
        assert_eq!(a.attest_type(), ST_ATTEST_CERTIFY);
        assert!(!a.clock_info.safe);
        assert_eq!(
            a.attested,
            Attested::Certify(CertifyInfo {
                name: vec![0xaa; 34],
                qualified_name: vec![0xbb; 34]
            })
        );
    }

    #[test]
    fn a_quote_swtpm_made_reads_as_tpm2_print_shows_it() {
        // tpm2_quote -l sha1:0,7+sha256:0,1,2,16,23 -q 0102 on swtpm; the values below are
        // tpm2_print's (tpm2-tools 5.4) reading of the same bytes.
        let bytes = unhex(
            "ff54434780180022000b8c3566f00530a894dac3800a7d8c183600d77c6a1fbc4bb18a98eb48248f\
             165c00020102000000000000500d7a200e46f6a28b1f01e4534d49f47a0a7c00000002000403810000\
             000b0307008100200d513926d0cc653713e957d41734df67ba031671a5ee65361cb477379b8d681f",
        );
        let a = Attest::read(&bytes).unwrap();
        assert_eq!(a.magic, TPM_GENERATED);
        assert_eq!(
            a.qualified_signer,
            unhex("000b8c3566f00530a894dac3800a7d8c183600d77c6a1fbc4bb18a98eb48248f165c")
        );
        assert_eq!(a.extra_data, [1, 2]);
        assert_eq!(
            a.clock_info,
            ClockInfo {
                clock: 20493,
                reset_count: 2048921158,
                restart_count: 4137847583,
                safe: true
            }
        );
        // tpm2_print hexdumps this u64 from host memory, little-endian: 7c0a7af4494d53e4.
        assert_eq!(a.firmware_version, 0xe453_4d49_f47a_0a7c);
        let Attested::Quote(q) = a.attested else {
            panic!("not a quote")
        };
        assert_eq!(
            q.pcr_select,
            [
                PcrSelection {
                    hash: ALG_SHA1,
                    select: vec![0x81, 0, 0]
                },
                PcrSelection {
                    hash: ALG_SHA256,
                    select: vec![0x07, 0, 0x81]
                }
            ]
        );
        assert_eq!(
            q.pcr_digest,
            unhex("0d513926d0cc653713e957d41734df67ba031671a5ee65361cb477379b8d681f")
        );
        check_bounds(&bytes, Attest::read);
    }

    #[test]
    fn every_structure_rejects_every_prefix_and_a_trailing_byte() {
        check_bounds(&quote(), Attest::read);
        check_bounds(&certify(), Attest::read);
        check_bounds(
            &signature(ALG_ECDSA, &[1; 32], &[2; 32]),
            EcdsaSignature::read,
        );
        check_bounds(&ari_key(&[3; 32], &[4; 32]), EccPublic::read);
        check_bounds(&storage_key(), EccPublic::read);
    }

    #[test]
    fn an_empty_selection_and_empty_sized_fields_read() {
        let bytes = attest_head(ST_ATTEST_QUOTE, 1)
            .u32(1)
            .u16(ALG_SHA256)
            .u8(0)
            .sized(&[])
            .0;
        let Attested::Quote(q) = Attest::read(&bytes).unwrap().attested else {
            panic!("not a quote")
        };
        assert_eq!(q.pcr_select.len(), 1);
        assert_eq!(q.pcr_select[0].pcrs().count(), 0);
        assert!(q.pcr_digest.is_empty());
    }

    #[test]
    fn pcr_bits_read_low_bit_first_across_all_bytes() {
        let all = PcrSelection {
            hash: ALG_SHA256,
            select: vec![0xff; 255],
        };
        assert_eq!(
            all.pcrs().collect::<Vec<_>>(),
            (0..2040).collect::<Vec<_>>()
        );
        let some = PcrSelection {
            hash: ALG_SHA256,
            select: vec![0x02, 0x00, 0x40, 0x80],
        };
        assert_eq!(some.pcrs().collect::<Vec<_>>(), [1, 22, 31]);
    }

    #[test]
    fn a_huge_count_or_size_is_truncated_not_allocated() {
        let bytes = attest_head(ST_ATTEST_QUOTE, 1).u32(u32::MAX).0;
        assert_eq!(
            Attest::read(&bytes).unwrap_err(),
            WireError::Truncated {
                what: "TPMS_PCR_SELECTION.hash"
            }
        );
        let bytes = Bytes::default()
            .u32(TPM_GENERATED)
            .u16(ST_ATTEST_QUOTE)
            .u16(0xffff)
            .0;
        assert_eq!(
            Attest::read(&bytes).unwrap_err(),
            WireError::Truncated {
                what: "TPMS_ATTEST.qualifiedSigner"
            }
        );
    }

    #[test]
    fn other_attestation_types_and_bad_booleans_are_unsupported() {
        let mut bytes = attest_head(0x8014, 1).0;
        bytes.extend([0; 16]);
        assert_eq!(
            Attest::read(&bytes).unwrap_err(),
            WireError::Unsupported {
                what: "TPMS_ATTEST.type",
                value: 0x8014
            }
        );
        let mut bytes = quote();
        let safe = 4 + 2 + 2 + SIGNER.len() + 2 + EXTRA.len() + 8 + 4 + 4;
        bytes[safe] = 2;
        assert_eq!(
            Attest::read(&bytes).unwrap_err(),
            WireError::Unsupported {
                what: "TPMS_CLOCK_INFO.safe",
                value: 2
            }
        );
    }

    #[test]
    fn ecdsa_scalars_are_left_padded_to_32_bytes() {
        let mut r = vec![0x80; 31];
        r[0] = 0x7f;
        let sig = EcdsaSignature::read(&signature(ALG_ECDSA, &r, &[9; 32])).unwrap();
        assert_eq!(sig.hash, ALG_SHA256);
        let mut want = [0u8; 64];
        want[1..32].copy_from_slice(&r);
        want[32..].fill(9);
        assert_eq!(sig.rs, want);
        let sig = EcdsaSignature::read(&signature(ALG_ECDSA, &[], &[5])).unwrap();
        let mut want = [0u8; 64];
        want[63] = 5;
        assert_eq!(sig.rs, want);
    }

    #[test]
    fn a_long_scalar_or_another_algorithm_is_refused() {
        assert_eq!(
            EcdsaSignature::read(&signature(ALG_ECDSA, &[1; 33], &[1; 32])).unwrap_err(),
            WireError::ScalarTooLong {
                what: SIG_R,
                len: 33
            }
        );
        assert_eq!(
            EcdsaSignature::read(&signature(ALG_ECDSA, &[1; 32], &[0; 33])).unwrap_err(),
            WireError::ScalarTooLong {
                what: SIG_S,
                len: 33
            }
        );
        // TPM_ALG_RSASSA, then TPM_ALG_ECDAA: the same layout, another algorithm.
        for alg in [0x0014, ALG_ECDAA] {
            assert_eq!(
                EcdsaSignature::read(&signature(alg, &[1; 32], &[1; 32])).unwrap_err(),
                WireError::Unsupported {
                    what: "TPMT_SIGNATURE.sigAlg",
                    value: u32::from(alg)
                }
            );
        }
    }

    #[test]
    fn an_ari_key_reads_with_its_attributes() {
        let p = EccPublic::read(&ari_key(&[3; 32], &[4; 31])).unwrap();
        assert_eq!(p.name_alg, ALG_SHA256);
        let a = p.attributes;
        assert!(a.fixed_tpm() && a.fixed_parent() && a.sensitive_data_origin() && a.sign());
        assert!(!a.restricted() && !a.decrypt());
        assert!(p.auth_policy.is_empty());
        assert_eq!(p.symmetric, None);
        assert_eq!(
            p.scheme,
            Some(HashedScheme {
                scheme: ALG_ECDSA,
                hash: ALG_SHA256
            })
        );
        assert_eq!(p.curve, ECC_NIST_P256);
        assert_eq!(p.kdf, None);
        let sec1 = p.sec1_p256().unwrap();
        assert_eq!(sec1[0], 4);
        assert_eq!(sec1[1..33], [3; 32]);
        assert_eq!(sec1[33], 0);
        assert_eq!(sec1[34..], [4; 31]);
        let long = EccPublic::read(&ari_key(&[3; 33], &[4; 32])).unwrap();
        assert_eq!(
            long.sec1_p256().unwrap_err(),
            WireError::ScalarTooLong {
                what: "TPMS_ECC_POINT.x",
                len: 33
            }
        );
    }

    #[test]
    fn a_storage_key_reads_its_symmetric_and_kdf() {
        let p = EccPublic::read(&storage_key()).unwrap();
        let a = p.attributes;
        assert!(a.restricted() && a.decrypt() && !a.sign());
        assert_eq!(p.auth_policy, [0x5a; 32]);
        assert_eq!(
            p.symmetric,
            Some(SymmetricObject {
                algorithm: ALG_AES,
                key_bits: 128,
                mode: ALG_CFB
            })
        );
        assert_eq!(p.scheme, None);
        assert_eq!(
            p.kdf,
            Some(HashedScheme {
                scheme: ALG_KDF1_SP800_56A,
                hash: ALG_SHA256
            })
        );
        assert_eq!((p.x, p.y), (vec![1; 32], vec![2; 32]));
    }

    #[test]
    fn attribute_bits_are_the_spec_positions() {
        for (bit, pick) in [
            (
                1,
                ObjectAttributes::fixed_tpm as fn(ObjectAttributes) -> bool,
            ),
            (4, ObjectAttributes::fixed_parent),
            (5, ObjectAttributes::sensitive_data_origin),
            (16, ObjectAttributes::restricted),
            (17, ObjectAttributes::decrypt),
            (18, ObjectAttributes::sign),
        ] {
            assert!(pick(ObjectAttributes(1 << bit)), "bit {bit}");
            assert!(!pick(ObjectAttributes(!(1 << bit))), "all but bit {bit}");
        }
    }

    #[test]
    fn unknown_key_types_and_selectors_are_unsupported() {
        // Offsets in `ari_key`: type, nameAlg, objectAttributes, authPolicy (empty), then the
        // symmetric algorithm at 10, the scheme at 12, the curve at 16 and the KDF at 18.
        for (at, value, what) in [
            (0, 0x0001, "TPMT_PUBLIC.type"),
            (10, 0x000a, "TPMT_SYM_DEF_OBJECT.algorithm"),
            (12, ALG_ECDAA, "TPMT_ECC_SCHEME.scheme"),
            (12, 0x0014, "TPMT_ECC_SCHEME.scheme"),
            (18, ALG_SHA256, "TPMT_KDF_SCHEME.scheme"),
        ] {
            let mut key = ari_key(&[3; 32], &[4; 32]);
            key[at..at + 2].copy_from_slice(&value.to_be_bytes());
            assert_eq!(
                EccPublic::read(&key).unwrap_err(),
                WireError::Unsupported {
                    what,
                    value: u32::from(value)
                }
            );
        }
        // A curve is a value, not a selector: the verifier judges it.
        let mut key = ari_key(&[3; 32], &[4; 32]);
        key[16..18].copy_from_slice(&0x0010u16.to_be_bytes());
        assert_eq!(EccPublic::read(&key).unwrap().curve, 0x0010);
    }

    /// Every one-byte change and a run of pseudo-random inputs: an answer, never a panic.
    #[test]
    fn mutated_and_random_inputs_never_panic() {
        let readers: [fn(&[u8]) -> bool; 3] = [
            |b| Attest::read(b).is_ok(),
            |b| EcdsaSignature::read(b).is_ok(),
            |b| EccPublic::read(b).is_ok(),
        ];
        let valid = [
            quote(),
            certify(),
            signature(ALG_ECDSA, &[1; 32], &[2; 32]),
            ari_key(&[3; 32], &[4; 32]),
            storage_key(),
        ];
        for bytes in &valid {
            for i in 0..bytes.len() {
                for v in [0x00, 0x01, 0x7f, 0x80, 0xff] {
                    let mut m = bytes.clone();
                    m[i] = v;
                    for read in readers {
                        read(&m);
                    }
                }
            }
        }
        // Random tails after valid prefixes reach the later fields, not only the first.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let base = &valid[(next() % valid.len() as u64) as usize];
            let cut = (next() % (base.len() as u64 + 1)) as usize;
            let tail = (next() % 48) as usize;
            let mut input = base[..cut].to_vec();
            input.extend((0..tail).map(|_| next() as u8));
            for read in readers {
                read(&input);
            }
        }
    }

    #[test]
    fn errors_name_the_field() {
        let e = Attest::read(&[0xff, 0x54]).unwrap_err();
        assert_eq!(e.to_string(), "TPMS_ATTEST.magic: the input ends inside it");
        let e = EcdsaSignature::read(&[0, 0x14]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "TPMT_SIGNATURE.sigAlg: unsupported value 0x0014"
        );
    }
}
