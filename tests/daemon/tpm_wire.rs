//! The pure-Rust TPM wire reader (`attest::tpm::wire`) against tss-esapi's `UnMarshall`, which
//! wraps the TSS's own unmarshalling (libtss2-mu): structures built with tss-esapi's builders and
//! marshalled by it, and structures a real TPM (swtpm, through tpm2-tools) made, kept in
//! `tests/vectors/tpm/`. Both readers must see the same fields. The one intended difference is recorded in
//! a test of its own: the wire reader refuses bytes after a complete structure, tss-esapi ignores
//! them. The vectors: `quote_sha256` (`tpm2_quote -l sha256:0,1,2,16`, qualifying data
//! SHA-256("binding")), `quote_two_banks` (`-l sha1:0,7+sha256:0,1,2,16,23 -q 0102`), `certify`
//! (`tpm2_certify` of `ari_key` by `ak`), each `.attest` with its `.sig`; `ak.public` and
//! `ari_key.public` are the `TPMT_PUBLIC`s of the attestation key and the certified key.

#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use ari::attest::tpm::wire;
use ari::backend::tpm::{ak_template, ari_template, srk_template};
use sha2::{Digest as _, Sha256};
use tss_esapi::attributes::ObjectAttributesBuilder;
use tss_esapi::constants::tss::{
    TPM2_ALG_AES, TPM2_ALG_CAMELLIA, TPM2_ALG_KDF1_SP800_56A, TPM2_ALG_KDF1_SP800_108,
    TPM2_ALG_KDF2, TPM2_ALG_MGF1, TPM2_ALG_SM4,
};
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::structures::{
    Attest, AttestInfo, Digest, EccParameter, EccPoint, EccScheme, EccSignature, HashScheme,
    KeyDerivationFunctionScheme, Public, PublicBuilder, PublicEccParametersBuilder, Signature,
    SymmetricDefinitionObject,
};
use tss_esapi::traits::{Marshall, UnMarshall};
use tss_esapi::tss2_esys::{
    TPM2_KEY_BITS, TPMA_OBJECT, TPMI_AES_KEY_BITS, TPMI_ALG_ECC_SCHEME, TPMI_ALG_HASH,
    TPMI_ALG_SYM_MODE, TPMI_ECC_CURVE, TPMI_SM4_KEY_BITS, TPMI_ST_ATTEST,
};

const QUOTE_SHA256: &[u8] = include_bytes!("../vectors/tpm/quote_sha256.attest");
const QUOTE_SHA256_SIG: &[u8] = include_bytes!("../vectors/tpm/quote_sha256.sig");
const QUOTE_TWO_BANKS: &[u8] = include_bytes!("../vectors/tpm/quote_two_banks.attest");
const QUOTE_TWO_BANKS_SIG: &[u8] = include_bytes!("../vectors/tpm/quote_two_banks.sig");
const CERTIFY: &[u8] = include_bytes!("../vectors/tpm/certify.attest");
const CERTIFY_SIG: &[u8] = include_bytes!("../vectors/tpm/certify.sig");
const AK_PUBLIC: &[u8] = include_bytes!("../vectors/tpm/ak.public");
const ARI_KEY_PUBLIC: &[u8] = include_bytes!("../vectors/tpm/ari_key.public");

fn hash_id(h: HashingAlgorithm) -> u16 {
    TPMI_ALG_HASH::from(h)
}

/// Asserts that the wire reader reads `bytes`, a marshalled `TPMT_PUBLIC`, as tss-esapi's `public`.
fn same_public(bytes: &[u8], public: &Public) {
    let ours = wire::EccPublic::read(bytes).unwrap();
    let Public::Ecc {
        object_attributes,
        name_hashing_algorithm,
        auth_policy,
        parameters,
        unique,
    } = public
    else {
        panic!("not an ECC key: {public:?}")
    };
    assert_eq!(ours.name_alg, hash_id(*name_hashing_algorithm));
    assert_eq!(ours.attributes.0, TPMA_OBJECT::from(*object_attributes));
    let (a, t) = (ours.attributes, object_attributes);
    for (bit, ours, theirs) in [
        ("fixedTPM", a.fixed_tpm(), t.fixed_tpm()),
        ("fixedParent", a.fixed_parent(), t.fixed_parent()),
        (
            "sensitiveDataOrigin",
            a.sensitive_data_origin(),
            t.sensitive_data_origin(),
        ),
        ("restricted", a.restricted(), t.restricted()),
        ("decrypt", a.decrypt(), t.decrypt()),
        ("sign", a.sign(), t.sign_encrypt()),
    ] {
        assert_eq!(ours, theirs, "{bit}");
    }
    assert_eq!(ours.auth_policy, auth_policy.value());
    let symmetric = match parameters.symmetric_definition_object() {
        SymmetricDefinitionObject::Null => None,
        SymmetricDefinitionObject::Aes { key_bits, mode } => Some((
            TPM2_ALG_AES,
            TPMI_AES_KEY_BITS::from(key_bits),
            TPMI_ALG_SYM_MODE::from(mode),
        )),
        SymmetricDefinitionObject::Sm4 { key_bits, mode } => Some((
            TPM2_ALG_SM4,
            TPMI_SM4_KEY_BITS::from(key_bits),
            TPMI_ALG_SYM_MODE::from(mode),
        )),
        SymmetricDefinitionObject::Camellia { key_bits, mode } => Some((
            TPM2_ALG_CAMELLIA,
            TPM2_KEY_BITS::from(key_bits),
            TPMI_ALG_SYM_MODE::from(mode),
        )),
    };
    assert_eq!(
        ours.symmetric.map(|s| (s.algorithm, s.key_bits, s.mode)),
        symmetric
    );
    let scheme = parameters.ecc_scheme();
    let scheme_hash = match scheme {
        EccScheme::Null => None,
        EccScheme::EcDsa(h)
        | EccScheme::EcDh(h)
        | EccScheme::Sm2(h)
        | EccScheme::EcSchnorr(h)
        | EccScheme::EcMqv(h) => Some(h.hashing_algorithm()),
        EccScheme::EcDaa(_) => panic!("the wire reader does not read ECDAA keys"),
    };
    assert_eq!(
        ours.scheme.map(|s| (s.scheme, s.hash)),
        scheme_hash.map(|h| (TPMI_ALG_ECC_SCHEME::from(scheme.algorithm()), hash_id(h)))
    );
    assert_eq!(ours.curve, TPMI_ECC_CURVE::from(parameters.ecc_curve()));
    let kdf = match parameters.key_derivation_function_scheme() {
        KeyDerivationFunctionScheme::Null => None,
        KeyDerivationFunctionScheme::Kdf1Sp800_56a(h) => Some((TPM2_ALG_KDF1_SP800_56A, h)),
        KeyDerivationFunctionScheme::Kdf2(h) => Some((TPM2_ALG_KDF2, h)),
        KeyDerivationFunctionScheme::Kdf1Sp800_108(h) => Some((TPM2_ALG_KDF1_SP800_108, h)),
        KeyDerivationFunctionScheme::Mgf1(h) => Some((TPM2_ALG_MGF1, h)),
    };
    assert_eq!(
        ours.kdf.map(|k| (k.scheme, k.hash)),
        kdf.map(|(id, h)| (id, hash_id(h.hashing_algorithm())))
    );
    assert_eq!(ours.x, unique.x().value());
    assert_eq!(ours.y, unique.y().value());
}

/// Asserts that the wire reader reads `bytes`, a marshalled `TPMT_SIGNATURE`, as tss-esapi does.
fn same_signature(bytes: &[u8]) -> [u8; 64] {
    let ours = wire::EcdsaSignature::read(bytes).unwrap();
    let Signature::EcDsa(ecc) = Signature::unmarshall(bytes).unwrap() else {
        panic!("not ECDSA")
    };
    assert_eq!(ours.hash, hash_id(ecc.hashing_algorithm()));
    for (half, value) in [ecc.signature_r().value(), ecc.signature_s().value()]
        .into_iter()
        .enumerate()
    {
        let padded = &ours.rs[32 * half..32 * (half + 1)];
        let (zeros, tail) = padded.split_at(32 - value.len());
        assert!(zeros.iter().all(|b| *b == 0));
        assert_eq!(tail, value);
    }
    ours.rs
}

/// Asserts that the wire reader reads `bytes`, a marshalled `TPMS_ATTEST`, as tss-esapi does.
fn same_attest(bytes: &[u8]) -> wire::Attest {
    let ours = wire::Attest::read(bytes).unwrap();
    let tss = Attest::unmarshall(bytes).unwrap();
    assert_eq!(ours.magic, wire::TPM_GENERATED);
    assert_eq!(
        ours.attest_type(),
        TPMI_ST_ATTEST::from(tss.attestation_type())
    );
    assert_eq!(ours.qualified_signer, tss.qualified_signer().value());
    assert_eq!(ours.extra_data, tss.extra_data().value());
    let c = tss.clock_info();
    assert_eq!(
        ours.clock_info,
        wire::ClockInfo {
            clock: c.clock(),
            reset_count: c.reset_count(),
            restart_count: c.restart_count(),
            safe: c.safe(),
        }
    );
    assert_eq!(ours.firmware_version, tss.firmware_version());
    match (&ours.attested, tss.attested()) {
        (wire::Attested::Quote(q), AttestInfo::Quote { info }) => {
            assert_eq!(q.pcr_digest, info.pcr_digest().value());
            let theirs: Vec<(u16, usize, Vec<u32>)> = info
                .pcr_selection()
                .get_selections()
                .iter()
                .map(|s| {
                    (
                        hash_id(s.hashing_algorithm()),
                        s.size_of_select().as_usize(),
                        s.selected()
                            .into_iter()
                            .map(|slot| u32::from(slot).trailing_zeros())
                            .collect(),
                    )
                })
                .collect();
            let ours: Vec<(u16, usize, Vec<u32>)> = q
                .pcr_select
                .iter()
                .map(|s| (s.hash, s.select.len(), s.pcrs().collect()))
                .collect();
            assert_eq!(ours, theirs);
        }
        (wire::Attested::Certify(c), AttestInfo::Certify { info }) => {
            assert_eq!(c.name, info.name().value());
            assert_eq!(c.qualified_name, info.qualified_name().value());
        }
        (ours, theirs) => panic!("{ours:?} read as {theirs:?}"),
    }
    ours
}

/// A storage-like key with every optional part filled in (a symmetric scheme, a KDF, an auth
/// policy, attributes the daemon never sets) and a point whose `x` has a leading zero byte the
/// TPM would drop.
fn unusual_key() -> Public {
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Ecc)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_auth_policy(Digest::try_from(vec![0x5a; 32]).unwrap())
        .with_object_attributes(
            ObjectAttributesBuilder::new()
                .with_fixed_parent(true)
                .with_admin_with_policy(true)
                .with_restricted(true)
                .with_decrypt(true)
                .build()
                .unwrap(),
        )
        .with_ecc_parameters(
            PublicEccParametersBuilder::new_restricted_decryption_key(
                SymmetricDefinitionObject::AES_128_CFB,
                EccCurve::NistP256,
            )
            .with_key_derivation_function_scheme(KeyDerivationFunctionScheme::Kdf1Sp800_56a(
                HashScheme::new(HashingAlgorithm::Sha256),
            ))
            .build()
            .unwrap(),
        )
        .with_ecc_unique_identifier(EccPoint::new(
            EccParameter::try_from(vec![0x42; 31]).unwrap(),
            EccParameter::try_from(vec![0x99; 32]).unwrap(),
        ))
        .build()
        .unwrap()
}

#[test]
fn the_daemons_templates_and_an_unusual_key_read_as_tss_esapi_marshalled_them() {
    let unusual = unusual_key();
    for public in [
        ari_template().unwrap(),
        ak_template().unwrap(),
        srk_template().unwrap(),
        unusual.clone(),
    ] {
        same_public(&public.marshall().unwrap(), &public);
    }
    let sec1 = wire::EccPublic::read(&unusual.marshall().unwrap())
        .unwrap()
        .sec1_p256()
        .unwrap();
    assert_eq!(sec1[..2], [0x04, 0x00]);
    assert_eq!(sec1[2..33], [0x42; 31]);
    assert_eq!(sec1[33..], [0x99; 32]);
}

#[test]
fn swtpm_public_areas_read_as_tss_esapi_reads_them() {
    for bytes in [AK_PUBLIC, ARI_KEY_PUBLIC] {
        same_public(bytes, &Public::unmarshall(bytes).unwrap());
    }
    let ak = wire::EccPublic::read(AK_PUBLIC).unwrap().attributes;
    assert!(ak.restricted() && ak.sign() && !ak.decrypt());
    let key = wire::EccPublic::read(ARI_KEY_PUBLIC).unwrap().attributes;
    assert!(!key.restricted() && key.sign() && !key.decrypt());
}

#[test]
fn built_signatures_read_as_tss_esapi_marshalled_them() {
    let sig = |r: Vec<u8>, s: Vec<u8>| {
        Signature::EcDsa(
            EccSignature::create(
                HashingAlgorithm::Sha256,
                EccParameter::try_from(r).unwrap(),
                EccParameter::try_from(s).unwrap(),
            )
            .unwrap(),
        )
        .marshall()
        .unwrap()
    };
    let rs = same_signature(&sig(vec![0x11; 32], vec![0x22; 32]));
    assert_eq!(rs[..32], [0x11; 32]);
    let rs = same_signature(&sig(vec![0x11; 30], vec![0x22; 1]));
    assert_eq!(rs[..2], [0, 0]);
    assert_eq!(rs[63], 0x22);
    // tss-esapi marshals a 33-byte scalar; the wire reader refuses what P-256 cannot hold.
    assert!(matches!(
        wire::EcdsaSignature::read(&sig(vec![0x11; 33], vec![0x22; 32])),
        Err(wire::WireError::ScalarTooLong { len: 33, .. })
    ));
}

#[test]
fn swtpm_signatures_read_as_tss_esapi_reads_them() {
    for bytes in [QUOTE_SHA256_SIG, QUOTE_TWO_BANKS_SIG, CERTIFY_SIG] {
        same_signature(bytes);
    }
}

#[test]
fn swtpm_quotes_read_as_tss_esapi_reads_them() {
    let a = same_attest(QUOTE_SHA256);
    assert_eq!(a.extra_data, Sha256::digest(b"binding").as_slice());
    let wire::Attested::Quote(q) = &a.attested else {
        panic!("not a quote")
    };
    let banks: Vec<(u16, Vec<u32>)> = q
        .pcr_select
        .iter()
        .map(|s| (s.hash, s.pcrs().collect()))
        .collect();
    assert_eq!(banks, [(wire::ALG_SHA256, vec![0, 1, 2, 16])]);

    let a = same_attest(QUOTE_TWO_BANKS);
    assert_eq!(a.extra_data, [1, 2]);
    let wire::Attested::Quote(q) = &a.attested else {
        panic!("not a quote")
    };
    assert_eq!(q.pcr_select.len(), 2);
}

#[test]
fn the_swtpm_certification_names_the_certified_public_area() {
    let a = same_attest(CERTIFY);
    let wire::Attested::Certify(c) = &a.attested else {
        panic!("not a certification")
    };
    let mut name = wire::ALG_SHA256.to_be_bytes().to_vec();
    name.extend_from_slice(&Sha256::digest(ARI_KEY_PUBLIC));
    assert_eq!(c.name, name);
}

/// The one intended difference: tss-esapi reads a complete structure and ignores what follows.
#[test]
fn only_the_wire_reader_refuses_trailing_bytes() {
    for (bytes, extra) in [(QUOTE_SHA256, 1), (CERTIFY, 7)] {
        let mut longer = bytes.to_vec();
        longer.extend(std::iter::repeat_n(0xee, extra));
        assert!(Attest::unmarshall(&longer).is_ok());
        assert_eq!(
            wire::Attest::read(&longer).unwrap_err(),
            wire::WireError::TrailingBytes {
                what: "TPMS_ATTEST",
                count: extra
            }
        );
    }
    let mut longer = QUOTE_SHA256_SIG.to_vec();
    longer.push(0);
    assert!(Signature::unmarshall(&longer).is_ok());
    assert!(wire::EcdsaSignature::read(&longer).is_err());
    let mut longer = ARI_KEY_PUBLIC.to_vec();
    longer.push(0);
    assert!(Public::unmarshall(&longer).is_ok());
    assert!(wire::EccPublic::read(&longer).is_err());
}

/// `bytes` with one byte set to one of `values`, at each position in turn.
fn mutations<'a>(bytes: &'a [u8], values: &'a [u8]) -> impl Iterator<Item = Vec<u8>> + 'a {
    (0..bytes.len()).flat_map(move |i| {
        values.iter().map(move |v| {
            let mut m = bytes.to_vec();
            m[i] = *v;
            m
        })
    })
}

/// Every one-byte change of the swtpm structures: where both readers accept, they agree. (Where
/// they differ, tss-esapi refuses hash algorithms, curves and magics it does not know, which the
/// wire reader hands on to the verifier, and the wire reader refuses trailing bytes.)
#[test]
fn mutated_swtpm_structures_read_alike_where_both_accept() {
    const VALUES: &[u8] = &[0x00, 0x01, 0x03, 0x80, 0xff];
    type Check = fn(&[u8]) -> bool;
    let cases: [(&[&[u8]], Check); 3] = [
        (&[QUOTE_SHA256, QUOTE_TWO_BANKS, CERTIFY], |m| {
            let both = wire::Attest::read(m).is_ok() && Attest::unmarshall(m).is_ok();
            if both {
                same_attest(m);
            }
            both
        }),
        (&[QUOTE_SHA256_SIG, CERTIFY_SIG], |m| {
            let both = wire::EcdsaSignature::read(m).is_ok() && Signature::unmarshall(m).is_ok();
            if both {
                same_signature(m);
            }
            both
        }),
        (&[AK_PUBLIC, ARI_KEY_PUBLIC], |m| {
            match Public::unmarshall(m) {
                Ok(p) if wire::EccPublic::read(m).is_ok() => {
                    same_public(m, &p);
                    true
                }
                _ => false,
            }
        }),
    ];
    let agreed = cases
        .iter()
        .flat_map(|(vectors, check)| {
            vectors
                .iter()
                .flat_map(|b| mutations(b, VALUES))
                .filter(move |m| check(m))
        })
        .count();
    // Most changes fall in values (digests, names, scalars, counters) both readers accept.
    assert!(agreed > 2000, "only {agreed} mutations were read by both");
}
