//! The agent lifecycle against a real daemon on a real SoftHSM2 token.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::common;
use ari::protocol::Method;

use ari::jose::{Jwk, PublicKey};
use base64ct::{Base64UrlUnpadded, Encoding};
use common::{Daemon, remote_err};
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use p256::ecdsa::{Signature, VerifyingKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::process::Command;

/// Verifies a compact ES256 JWS with the `p256` crate directly (not through our own verifier).
fn verify_with_p256(jws: &str, jwk: &Value) -> Value {
    let x = Base64UrlUnpadded::decode_vec(jwk["x"].as_str().unwrap()).unwrap();
    let y = Base64UrlUnpadded::decode_vec(jwk["y"].as_str().unwrap()).unwrap();
    let mut sec1 = vec![4u8];
    sec1.extend(x);
    sec1.extend(y);
    let key = VerifyingKey::from_sec1_bytes(&sec1).unwrap();
    let (signing_input, sig) = jws.rsplit_once('.').unwrap();
    let sig = Signature::from_slice(&Base64UrlUnpadded::decode_vec(sig).unwrap()).unwrap();
    key.verify_prehash(&Sha256::digest(signing_input.as_bytes()), &sig)
        .expect("attestation signature verifies");
    let (header, payload) = signing_input.split_once('.').unwrap();
    let header: Value =
        serde_json::from_slice(&Base64UrlUnpadded::decode_vec(header).unwrap()).unwrap();
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["typ"], "ari-attest+jwt");
    serde_json::from_slice(&Base64UrlUnpadded::decode_vec(payload).unwrap()).unwrap()
}

#[test]
fn provision_identity_attest_and_restart() {
    let mut d = Daemon::start();
    let provisioned = d.provision_self("shop-bot");
    assert_eq!(provisioned["status"], "active");

    let identity = d.agent().call(Method::AgentIdentity, json!({})).unwrap();
    assert_eq!(identity["agent"], "shop-bot");
    assert_eq!(identity["user"], "alice@example.com");
    let jwk = identity["key"]["jwk"].clone();
    let kid = identity["key"]["kid"].as_str().unwrap().to_string();
    let public: PublicKey = serde_json::from_value::<Jwk>(jwk.clone())
        .unwrap()
        .to_public_key()
        .unwrap();
    assert_eq!(
        public.thumbprint(),
        kid,
        "kid is the RFC 7638 thumbprint of the JWK"
    );
    let uri = identity["key"]["uri"].as_str().unwrap();
    match common::backend() {
        "tpm" => assert!(uri.starts_with("tpm:name=000b"), "{uri}"),
        _ => assert!(uri.starts_with("pkcs11:token=ari-dev;id=%"), "{uri}"),
    }
    // A TPM key comes with the AK's certification of it; a PKCS#11 key has none.
    assert_eq!(
        identity["key"]["certification"].is_object(),
        common::backend() == "tpm"
    );

    let nonce = "verifier-nonce-0001";
    let att = d
        .agent()
        .call(Method::AgentAttest, json!({ "nonce": nonce }))
        .unwrap();
    let claims = verify_with_p256(att["attestation"].as_str().unwrap(), &jwk);
    assert_eq!(claims["nonce"], nonce);
    assert_eq!(claims["agent"]["id"], "shop-bot");
    assert_eq!(claims["runtime"]["uid"], common::uid());
    assert_eq!(claims["runtime"]["pid"], std::process::id());
    assert_eq!(claims["runtime"]["exe_sha256"], common::self_exe_sha256());
    assert_eq!(claims["tpm"]["present"], common::backend() == "tpm");
    // The bundle beside the JWS answers the same nonce; on a TPM its quote verifies against
    // the enrolled AK, on PKCS#11 it says there is no TPM evidence.
    let bundle: ari::attest::Bundle =
        serde_json::from_slice(&ari::jose::b64url_decode(att["bundle"].as_str().unwrap()).unwrap())
            .unwrap();
    assert_eq!(
        bundle.binding,
        ari::attest::tpm::challenge_binding(nonce, &kid)
    );
    let strict = ari::attest::tpm::Policy {
        require_tpm: true,
        ..Default::default()
    };
    if common::backend() == "tpm" {
        let ak = d.admin().call(Method::AdminTpmAk, json!({})).unwrap();
        let ak = serde_json::from_value::<Jwk>(ak["jwk"].clone())
            .unwrap()
            .to_public_key()
            .unwrap();
        let v = ari::attest::tpm::verify(&bundle, &ak, &strict, None).unwrap();
        assert!(v.tpm);
    } else {
        let e = ari::attest::tpm::verify(&bundle, &public, &strict, None).unwrap_err();
        assert_eq!(e.check, "no_tpm_evidence");
    }
    assert_eq!(claims["key"]["attributes"]["never_extractable"], true);
    assert_eq!(claims["key"]["attributes"]["sensitive"], true);
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    assert_eq!(claims["host"]["boot_id"], boot_id.trim());
    // Our own verifier agrees, and refuses another nonce.
    ari::attest::verify(att["attestation"].as_str().unwrap(), &public, nonce).unwrap();
    assert!(
        ari::attest::verify(
            att["attestation"].as_str().unwrap(),
            &public,
            "other-nonce-01"
        )
        .is_err()
    );

    // A clean restart keeps the agent and its key.
    assert!(d.stop(), "clean stop exits 0");
    d.spawn();
    let again = d.agent().call(Method::AgentIdentity, json!({})).unwrap();
    assert_eq!(again["key"]["kid"], kid.as_str());
    let att = d
        .agent()
        .call(Method::AgentAttest, json!({ "nonce": "after-restart-1" }))
        .unwrap();
    verify_with_p256(att["attestation"].as_str().unwrap(), &jwk);

    // After SIGKILL the stale sockets are replaced and the state is still there.
    d.kill();
    assert!(
        d.agent_path().exists(),
        "a killed daemon leaves its socket file"
    );
    d.spawn();
    let again = d.agent().call(Method::AgentIdentity, json!({})).unwrap();
    assert_eq!(again["key"]["kid"], kid.as_str());
    let status = d.admin().call(Method::AdminStatus, json!({})).unwrap();
    assert_eq!(status["agents"]["active"], 1);
    assert!(status["daemon_keys"]["issuer"]["kid"].is_string());
    assert!(status["daemon_keys"]["log"]["kid"].is_string());
}

#[test]
fn second_daemon_on_the_same_dir_is_refused() {
    let d = Daemon::start();
    let out = Command::new(common::ARID)
        .args(["dev", "--state-dir"])
        .arg(&d.dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already serving"), "{err}");
    // The first one still serves.
    d.admin().call(Method::AdminStatus, json!({})).unwrap();
}

#[test]
fn freeze_is_immediate_and_unfreeze_restores() {
    let d = Daemon::start();
    d.provision_self("bot");
    let mut agent = d.agent();
    agent.call(Method::AgentIdentity, json!({})).unwrap();
    d.admin()
        .call(Method::AdminAgentFreeze, json!({ "agent": "bot" }))
        .unwrap();
    // Same connection, next request: refused.
    let e = remote_err(agent.call(
        Method::AgentAttest,
        json!({ "nonce": "nonce-after-freeze" }),
    ));
    assert_eq!(
        (e.error.code(), e.error.reason(), e.error.retryable()),
        (-32002, "agent_frozen", false)
    );
    let e = remote_err(
        d.admin()
            .call(Method::AdminAgentFreeze, json!({ "agent": "bot" })),
    );
    assert_eq!(e.error.reason(), "invalid_state");
    d.admin()
        .call(Method::AdminAgentUnfreeze, json!({ "agent": "bot" }))
        .unwrap();
    agent
        .call(Method::AgentAttest, json!({ "nonce": "nonce-after-thaw" }))
        .unwrap();
}

#[test]
fn unknown_and_ambiguous_callers_are_refused() {
    let d = Daemon::start();
    let e = remote_err(d.agent().call(Method::AgentIdentity, json!({})));
    assert_eq!(
        (e.error.code(), e.error.reason()),
        (-32001, "unknown_caller")
    );
    // An agent for another executable does not match us.
    d.admin()
        .call(Method::AdminAgentProvision, json!({ "agent": "other", "user": "bob", "uid": common::uid(), "exe_sha256": "00".repeat(32) }))
        .unwrap();
    assert_eq!(
        remote_err(d.agent().call(Method::AgentIdentity, json!({})))
            .error
            .reason(),
        "unknown_caller"
    );
    // Two agents matching the same process: refused rather than guessed.
    d.provision_self("a1");
    d.admin()
        .call(
            Method::AdminAgentProvision,
            json!({ "agent": "a2", "user": "bob", "uid": common::uid() }),
        )
        .unwrap();
    let e = remote_err(d.agent().call(Method::AgentIdentity, json!({})));
    assert_eq!(e.error.reason(), "unknown_caller");
    assert!(e.message.contains("2 agents"), "{}", e.message);
    // Retiring one makes the other the caller again; the retired id stays reserved.
    d.admin()
        .call(Method::AdminAgentRetire, json!({ "agent": "a2" }))
        .unwrap();
    assert_eq!(
        d.agent().call(Method::AgentIdentity, json!({})).unwrap()["agent"],
        "a1"
    );
    let e = remote_err(d.admin().call(
        Method::AdminAgentProvision,
        json!({ "agent": "a2", "user": "x", "uid": 1 }),
    ));
    assert_eq!(e.error.reason(), "agent_exists");
    let e = remote_err(d.admin().call(Method::AdminAgentProvision, json!({ "agent": "a3", "user": "x", "uid": common::uid(), "exe_sha256": common::self_exe_sha256() })));
    assert_eq!(
        e.error.reason(),
        "agent_exists",
        "identical selectors are refused"
    );
}

#[test]
fn admin_methods_are_not_served_on_the_agent_socket_and_back() {
    let d = Daemon::start();
    d.provision_self("bot");
    let e = remote_err(d.agent().call(Method::AdminAgentList, json!({})));
    assert_eq!((e.error.code(), e.error.reason()), (-32003, "forbidden"));
    let e = remote_err(
        d.admin()
            .call(Method::AgentAttest, json!({ "nonce": "0123456789" })),
    );
    assert_eq!(e.error.reason(), "forbidden");
}

#[test]
fn another_uid_is_refused() {
    if !nix::unistd::getuid().is_root() {
        eprintln!(
            "SKIP another_uid_is_refused: needs root to run a client as another user with setpriv"
        );
        return;
    }
    let d = Daemon::start();
    // A dev directory is its owner's alone; the operator lets other users reach its sockets.
    std::fs::set_permissions(&d.dir, std::os::unix::fs::PermissionsExt::from_mode(0o711)).unwrap();
    // An agent registered for uid 0 with the arictl binary...
    d.admin()
        .call(
            Method::AdminAgentProvision,
            json!({ "agent": "root-bot", "user": "alice", "uid": 0 }),
        )
        .unwrap();
    // ...and the very same binary run as nobody (65534) through setpriv.
    let as_nobody = |args: &[&std::ffi::OsStr]| {
        let out = Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                common::ARICTL,
            ])
            .args(args)
            .output()
            .expect("setpriv (util-linux) is installed");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, stderr) = as_nobody(&[
        "--agent-socket".as_ref(),
        d.agent_path().as_os_str(),
        "identity".as_ref(),
    ]);
    assert_eq!(
        code,
        Some(2),
        "refused by the daemon, not by the filesystem: {stderr}"
    );
    assert!(stderr.contains("unknown_caller"), "{stderr}");
    // Nobody is no operator either, even when the admin socket's file mode lets it connect.
    std::fs::set_permissions(
        d.admin_path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o666),
    )
    .unwrap();
    let (code, stderr) = as_nobody(&[
        "--admin-socket".as_ref(),
        d.admin_path().as_os_str(),
        "status".as_ref(),
    ]);
    assert_eq!(code, Some(2), "refused by the daemon: {stderr}");
    assert!(stderr.contains("forbidden"), "{stderr}");
}

#[test]
fn csr_is_signed_in_the_token_and_certificates_are_checked() {
    let d = Daemon::start();
    d.provision_self("bot");
    let csr = d
        .admin()
        .call(
            Method::AdminAgentCsr,
            json!({ "agent": "bot", "subject": "CN=bot,O=Example" }),
        )
        .unwrap();
    let csr = csr["csr"].as_str().unwrap();
    assert!(csr.starts_with("-----BEGIN CERTIFICATE REQUEST-----"));
    let work = common::tempdir();
    let csr_path = work.path().join("bot.csr");
    std::fs::write(&csr_path, csr).unwrap();
    // OpenSSL checks the request's signature independently.
    let out = Command::new("openssl")
        .args(["req", "-verify", "-noout", "-in"])
        .arg(&csr_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // An operator CA signs it; the certificate is accepted for this agent only.
    let ca_key = work.path().join("ca.key");
    let ca_crt = work.path().join("ca.crt");
    let crt = work.path().join("bot.crt");
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(work.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        ca_key.to_str().unwrap(),
    ]);
    run(&[
        "req",
        "-new",
        "-x509",
        "-key",
        "ca.key",
        "-subj",
        "/CN=Test CA",
        "-days",
        "2",
        "-out",
        ca_crt.to_str().unwrap(),
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "bot.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-out",
        crt.to_str().unwrap(),
    ]);
    let pem = std::fs::read_to_string(&crt).unwrap();
    let r = d
        .admin()
        .call(
            Method::AdminAgentCertImport,
            json!({ "agent": "bot", "certificate": pem }),
        )
        .unwrap();
    assert_eq!(r["certificate"]["subject"], "CN=bot,O=Example");
    let id = d.agent().call(Method::AgentIdentity, json!({})).unwrap();
    assert!(
        id["certificate"]
            .as_str()
            .unwrap()
            .contains("BEGIN CERTIFICATE")
    );

    // The CA's own certificate certifies another key: refused.
    let other = std::fs::read_to_string(&ca_crt).unwrap();
    let e = remote_err(d.admin().call(
        Method::AdminAgentCertImport,
        json!({ "agent": "bot", "certificate": other }),
    ));
    assert_eq!(
        (e.error.code(), e.error.reason()),
        (-32007, "certificate_mismatch")
    );
    let e = remote_err(d.admin().call(
        Method::AdminAgentCertImport,
        json!({ "agent": "bot", "certificate": "junk" }),
    ));
    assert_eq!(e.error.reason(), "invalid_params");
    let e = remote_err(d.admin().call(
        Method::AdminAgentCsr,
        json!({ "agent": "bot", "subject": "no equals sign" }),
    ));
    assert_eq!(e.error.reason(), "invalid_params");
}

#[test]
fn retire_destroys_the_key() {
    let d = Daemon::start();
    d.provision_self("bot");
    let r = d
        .admin()
        .call(Method::AdminAgentRetire, json!({ "agent": "bot" }))
        .unwrap();
    assert_eq!(r["key_destroyed"], true);
    assert_eq!(
        remote_err(d.agent().call(Method::AgentIdentity, json!({})))
            .error
            .reason(),
        "unknown_caller"
    );
    let e = remote_err(d.admin().call(
        Method::AdminAgentCsr,
        json!({ "agent": "bot", "subject": "CN=x" }),
    ));
    assert_eq!(e.error.reason(), "invalid_state");
    let shown = d
        .admin()
        .call(Method::AdminAgentShow, json!({ "agent": "bot" }))
        .unwrap();
    assert_eq!(shown["status"], "retired");
    let e = remote_err(
        d.admin()
            .call(Method::AdminAgentShow, json!({ "agent": "nobody" })),
    );
    assert_eq!(
        (e.error.code(), e.error.reason()),
        (-32004, "agent_not_found")
    );
}
