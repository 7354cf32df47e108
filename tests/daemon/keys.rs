//! The keys the daemon makes stay in the token: checked with PKCS#11 itself, from outside the daemon.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::common;
use ari::protocol::Method;

use common::Daemon;
use cryptoki::object::{Attribute, AttributeInfo, AttributeType, ObjectClass};
use std::path::PathBuf;
use std::process::Command;

/// Runs in a child process started with the dev directory's SOFTHSM2_CONF (SoftHSM reads it when
/// loaded, so the parent cannot switch tokens for itself). Ignored unless started by the test
/// below.
#[test]
#[ignore = "started by keys_are_sensitive_and_never_extractable in a child process"]
fn inspect_keys_in_token() {
    let dir = PathBuf::from(std::env::var("ARI_TEST_DIR").expect("run by the parent test"));
    let ctx =
        ari::backend::pkcs11::load_module(std::path::Path::new(ari::tools::dev::SOFTHSM_MODULE))
            .unwrap();
    let slot = ari::backend::pkcs11::find_token(&ctx, ari::tools::dev::DEV_TOKEN_LABEL)
        .unwrap()
        .expect("dev token");
    let session = ctx.open_rw_session(slot).unwrap();
    let pin = ari::backend::pkcs11::read_pin(&ari::backend::pkcs11::PinSource::File(
        dir.join("secrets/token.pin"),
    ))
    .unwrap();
    session
        .login(cryptoki::session::UserType::User, Some(&pin))
        .unwrap();
    for label in ["ari-agent:bot", "ari-issuer", "ari-log"] {
        let found = session
            .find_objects(&[
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::Label(label.as_bytes().to_vec()),
            ])
            .unwrap();
        assert_eq!(found.len(), 1, "{label}: one private key");
        let key = found[0];
        // The private value cannot be read.
        let info = session
            .get_attribute_info(key, &[AttributeType::Value])
            .unwrap();
        assert!(
            matches!(info[0], AttributeInfo::Sensitive),
            "{label}: CKA_VALUE must be sensitive, got {:?}",
            info[0]
        );
        let values = session
            .get_attributes(key, &[AttributeType::Value])
            .unwrap();
        assert!(values.is_empty(), "{label}: CKA_VALUE was returned");
        // And the attributes say why.
        let attrs = session
            .get_attributes(
                key,
                &[
                    AttributeType::Sensitive,
                    AttributeType::AlwaysSensitive,
                    AttributeType::NeverExtractable,
                    AttributeType::Extractable,
                    AttributeType::Token,
                    AttributeType::Private,
                    AttributeType::Decrypt,
                    AttributeType::Unwrap,
                    AttributeType::Derive,
                ],
            )
            .unwrap();
        for a in attrs {
            match a {
                Attribute::Sensitive(v) => assert!(v, "{label}: sensitive"),
                Attribute::AlwaysSensitive(v) => assert!(v, "{label}: always sensitive"),
                Attribute::NeverExtractable(v) => assert!(v, "{label}: never extractable"),
                Attribute::Extractable(v) => assert!(!v, "{label}: not extractable"),
                Attribute::Token(v) => assert!(v, "{label}: on the token"),
                Attribute::Private(v) => assert!(v, "{label}: private"),
                Attribute::Decrypt(v) | Attribute::Unwrap(v) | Attribute::Derive(v) => {
                    assert!(!v, "{label}: sign-only")
                }
                other => panic!("unexpected attribute {other:?}"),
            }
        }
    }
    println!("INSPECTED-OK");
}

#[test]
fn keys_are_sensitive_and_never_extractable() {
    let d = Daemon::start();
    d.provision_self("bot");
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            &common::test_name(module_path!(), "inspect_keys_in_token"),
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SOFTHSM2_CONF", d.dir.join("softhsm2.conf"))
        .env("ARI_TEST_DIR", &d.dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("INSPECTED-OK"),
        "token inspection failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The daemon reports the same attributes to callers.
    let shown = d
        .admin()
        .call(Method::AdminAgentShow, serde_json::json!({"agent": "bot"}))
        .unwrap();
    let a = &shown["key"]["attributes"];
    for (k, v) in [
        ("sensitive", true),
        ("always_sensitive", true),
        ("never_extractable", true),
        ("extractable", false),
        ("local", true),
        ("sign", true),
        ("decrypt", false),
    ] {
        assert_eq!(a[k], v, "{k}");
    }
}
