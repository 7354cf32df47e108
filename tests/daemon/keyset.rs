//! The key set and key rotation against the real daemon on a real SoftHSM2 token: `jwks.json`
//! in the publish directory and `arictl keys export` agree, every `kid` is the RFC 7638
//! thumbprint (recomputed by Python from the RFC's canonical JSON), the issuer and log keys
//! rotate with artefacts before and after verifying under the published set and the old key
//! signing nothing after, and an agent provisioned again gets a new key with the old retired.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::common;
use ari::keyset::{KeySet, Role, Status};
use ari::protocol::Method;
use common::{Daemon, pay, remote_err};
use serde_json::{Value, json};
use std::process::Command;

fn keys_export(d: &Daemon) -> KeySet {
    let (code, out, err) = d.arictl(&["keys", "export"]);
    assert_eq!(code, Some(0), "{err}");
    serde_json::from_str(&out).unwrap()
}

fn published(d: &Daemon) -> KeySet {
    let text =
        std::fs::read_to_string(d.dir.join("state").join("public").join("jwks.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The set sorted by kid, to compare two reads.
fn sorted(mut set: KeySet) -> KeySet {
    set.keys.sort_by(|a, b| a.kid.cmp(&b.kid));
    set
}

fn issue(d: &Daemon) -> Value {
    d.admin()
        .call(
            Method::AdminVoucherIssue,
            json!({"agent": "shop-bot", "level": "L5", "currency": "CNY", "budget": 100_000,
                   "expires_at": ari::clock::unix_now() + 86_400}),
        )
        .unwrap()
}

/// The issuer JWS of a voucher (its compact form up to the first `~`).
fn issuer_jws(voucher: &Value) -> String {
    let compact = voucher["voucher"].as_str().unwrap();
    compact.split('~').next().unwrap().to_string()
}

/// Whether a compact JWS's signature verifies under `key`, whatever its type.
fn signed_by(jws: &str, key: &ari::jose::PublicKey) -> bool {
    use sha2::Digest;
    let (input, sig) = jws.rsplit_once('.').unwrap();
    let digest: [u8; 32] = sha2::Sha256::digest(input.as_bytes()).into();
    key.verify_digest(&digest, &ari::jose::b64url_decode(sig).unwrap())
        .is_ok()
}

fn member<'s>(set: &'s KeySet, kid: &str) -> &'s ari::keyset::Member {
    set.get(kid)
        .unwrap_or_else(|| panic!("{kid} is not in the key set"))
}

#[test]
fn the_published_key_set_and_the_export_agree_and_kids_are_thumbprints() {
    let d = Daemon::start();
    d.provision_self("shop-bot");
    let exported = keys_export(&d);
    let file = published(&d);
    assert_eq!(sorted(exported.clone()), sorted(file.clone()));
    exported.check().unwrap();
    for role in [Role::Issuer, Role::Log, Role::Agent] {
        // The log's Ed25519 note key is published beside its ECDSA key.
        let active: Vec<_> = exported.role(role).filter(|m| m.alg != "EdDSA").collect();
        assert_eq!(active.len(), 1, "{role:?}: {exported:?}");
        assert_eq!(active[0].ari_status, Status::Active);
        assert_eq!(active[0].use_, "sig");
        assert_eq!(active[0].alg, "ES256");
    }
    let agent = exported.role(Role::Agent).next().unwrap();
    assert_eq!(agent.ari_agent.as_deref(), Some("shop-bot"));
    // The status's log key is the set's log key.
    let status = d.admin().call(Method::AdminStatus, json!({})).unwrap();
    let log = exported.role(Role::Log).find(|m| m.alg == "ES256").unwrap();
    assert_eq!(status["daemon_keys"]["log"]["kid"], log.kid.as_str());
    // The Ed25519 one is the key behind the log's first verifier key (arictl log vkey).
    let ed = exported.role(Role::Log).find(|m| m.alg == "EdDSA").unwrap();
    let ed_key = ed.ed25519_key().unwrap();
    let (code, vkeys, err) = d.arictl(&["log", "vkey"]);
    assert_eq!(code, Some(0), "{err}");
    let vkey = ari::evidence::note::Ed25519Key::from_vkey(vkeys.lines().next().unwrap()).unwrap();
    assert_eq!(vkey.key, ed_key);

    // An independent thumbprint: RFC 7638's canonical JSON hashed by Python, and PyJWT reading
    // the member as a key.
    let script = r#"
import base64, hashlib, json, sys, jwt
k = json.loads(sys.argv[1])
canonical = json.dumps({m: k[m] for m in ("crv", "kty", "x", "y")}, separators=(",", ":"), sort_keys=True)
print(base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode())
jwt.PyJWK(k)
"#;
    let out = Command::new(common::pyjwt_python())
        .args(["-c", script, &serde_json::to_string(agent).unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), agent.kid);
}

#[test]
fn rotating_the_issuer_and_log_keys() {
    let d = Daemon::start();
    d.provision_self("shop-bot");
    let before = published(&d);
    let old_issuer = before.role(Role::Issuer).next().unwrap().clone();
    let old_log = before.role(Role::Log).next().unwrap().clone();
    let v1 = issue(&d);

    // The issuer with an hour of overlap, the log key with none.
    let (code, out, err) = d.arictl(&["keys", "rotate", "issuer", "--overlap", "1h"]);
    assert_eq!(code, Some(0), "{err}");
    let issuer: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(issuer["old_kid"], old_issuer.kid.as_str());
    let (code, out, err) = d.arictl(&["keys", "rotate", "log", "--overlap", "0s"]);
    assert_eq!(code, Some(0), "{err}");
    let log: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(log["old_kid"], old_log.kid.as_str());
    let v2 = issue(&d);

    let after = published(&d);
    assert_eq!(sorted(after.clone()), sorted(keys_export(&d)));
    after.check().unwrap();
    let new_issuer = member(&after, issuer["kid"].as_str().unwrap());
    let new_log = member(&after, log["kid"].as_str().unwrap());
    assert_eq!(
        (new_issuer.ari_status, new_log.ari_status),
        (Status::Active, Status::Active)
    );
    let was_issuer = member(&after, &old_issuer.kid);
    assert_eq!(was_issuer.ari_status, Status::Overlap);
    assert_eq!(was_issuer.ari_not_after, issuer["rotated_at"].as_i64());
    assert_eq!(
        was_issuer.ari_overlap_until,
        issuer["overlap_until"].as_i64()
    );
    assert_eq!(was_issuer.ari_log_index, issuer["log_index"].as_u64());
    let was_log = member(&after, &old_log.kid);
    assert_eq!(was_log.ari_status, Status::Retired);
    assert_eq!(was_log.ari_not_after, log["rotated_at"].as_i64());

    // Artefacts before and after verify under the published set; the old key signed nothing
    // after the rotation.
    let (old_key, new_key) = (
        was_issuer.public_key().unwrap(),
        new_issuer.public_key().unwrap(),
    );
    let (jws1, jws2) = (issuer_jws(&v1), issuer_jws(&v2));
    let kid = |jws: &str| ari::jose::peek_header(jws).unwrap().kid;
    assert_eq!(kid(&jws1), old_issuer.kid);
    assert_eq!(kid(&jws2), new_issuer.kid);
    let at = |v: &Value| v["issued_at"].as_i64().unwrap();
    let k1 = after.key_at(&kid(&jws1), Role::Issuer, at(&v1)).unwrap();
    let k2 = after.key_at(&kid(&jws2), Role::Issuer, at(&v2)).unwrap();
    assert!(signed_by(&jws1, &k1) && !signed_by(&jws1, &new_key));
    assert!(signed_by(&jws2, &k2) && !signed_by(&jws2, &old_key));
    // The retired log key verifies nothing made after its window.
    assert!(
        after
            .key_at(
                &old_log.kid,
                Role::Log,
                log["rotated_at"].as_i64().unwrap() + 1
            )
            .is_err()
    );
    // A voucher of the old issuer key still pays: rotation revokes nothing.
    let mut agent = d.agent();
    pay(&mut agent, v1["id"].as_str().unwrap(), 100, "tx-before").unwrap();
    pay(&mut agent, v2["id"].as_str().unwrap(), 100, "tx-after").unwrap();

    // The newest checkpoint is the new log key's, and the old one's signature is absent.
    let size = d.admin().call(Method::AdminStatus, json!({})).unwrap()["evidence"]["entries"]
        .as_u64()
        .unwrap();
    let cp = d
        .admin()
        .call(
            Method::EvidenceCheckpoint,
            json!({"at_least": size, "wait_ms": 10_000}),
        )
        .unwrap();
    let note = cp["note"].as_str().unwrap();
    let origin = note.lines().next().unwrap();
    let (old_log_key, new_log_key) = (was_log.public_key().unwrap(), new_log.public_key().unwrap());
    ari::evidence::checkpoint::verify(note, origin, &new_log_key).unwrap();
    assert!(ari::evidence::checkpoint::verify(note, origin, &old_log_key).is_err());

    // The whole log exports with the key in force at its start and verifies offline across the
    // log key's rotation, both rotation entries checked.
    let work = common::tempdir();
    let out = work.path().join("export");
    let (code, _, err) = d.arictl(&["log", "export", "--out", out.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    let key_file = out.join("log-key.jwk");
    let start: ari::jose::Jwk =
        serde_json::from_str(&std::fs::read_to_string(&key_file).unwrap()).unwrap();
    assert_eq!(start.kid.as_deref(), Some(old_log.kid.as_str()));
    let verify = |dir: &std::path::Path| {
        Command::new(common::ARICTL)
            .args(["verify", "log"])
            .arg(dir)
            .arg("--log-key")
            .arg(&key_file)
            .output()
            .unwrap()
    };
    let ok = verify(&out);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let summary: Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(summary["kinds"]["key.rotated"], 2, "{summary}");

    // A rotation entry whose new key's signature is replaced by the old key's fails.
    let entries = out.join("entries.jsonl");
    let text = std::fs::read_to_string(&entries).unwrap();
    let index = log["log_index"].as_u64().unwrap() as usize;
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let mut entry: Value = serde_json::from_str(&lines[index]).unwrap();
    assert_eq!(entry["kind"], "key.rotated");
    entry["fact"]["signatures"]["new"] = entry["fact"]["signatures"]["old"].clone();
    lines[index] = serde_json::to_string(&entry).unwrap();
    std::fs::write(&entries, lines.join("\n") + "\n").unwrap();
    let bad = verify(&out);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success());
    assert!(err.contains(&format!("entry {index}: rotation")), "{err}");
}

#[test]
fn an_agent_provisioned_again_gets_a_new_key_and_the_old_one_is_retired() {
    let d = Daemon::start();
    let first = d.provision_self("shop-bot");
    let old_kid = first["key"]["kid"].as_str().unwrap().to_string();
    let v1 = issue(&d);
    // Without the flag an existing id is refused.
    let again = json!({ "agent": "shop-bot", "user": "alice@example.com",
                        "uid": common::uid(), "exe_sha256": common::self_exe_sha256() });
    let e = remote_err(d.admin().call(Method::AdminAgentProvision, again.clone()));
    assert_eq!(e.error.reason(), "agent_exists");
    let mut rotate = again.clone();
    rotate["rotate"] = json!(true);
    let second = d.admin().call(Method::AdminAgentProvision, rotate).unwrap();
    let new_kid = second["key"]["kid"].as_str().unwrap().to_string();
    assert_ne!(new_kid, old_kid);
    assert_ne!(second["instance"], first["instance"]);

    let set = published(&d);
    assert_eq!(sorted(set.clone()), sorted(keys_export(&d)));
    let new = member(&set, &new_kid);
    assert_eq!(
        (new.ari_role, new.ari_status, new.ari_agent.as_deref()),
        (Role::Agent, Status::Active, Some("shop-bot"))
    );
    let old = member(&set, &old_kid);
    assert_eq!(
        (old.ari_role, old.ari_status, old.ari_agent.as_deref()),
        (Role::Agent, Status::Retired, Some("shop-bot"))
    );
    assert!(old.ari_not_after.is_some());

    // Both keys are in the log, in one entry.
    let index = old.ari_log_index.unwrap();
    let e = d
        .admin()
        .call(Method::EvidenceEntry, json!({ "index": index }))
        .unwrap();
    let entry: Value = serde_json::from_str(e["entry"].as_str().unwrap()).unwrap();
    assert_eq!(entry["kind"], "agent.rotated");
    assert_eq!(entry["agent"], "shop-bot");
    assert_eq!(entry["fact"]["kid"], new_kid.as_str());
    assert_eq!(entry["fact"]["previous"]["kid"], old_kid.as_str());

    // The voucher bound to the old key authorizes nothing; a new one does.
    let mut agent = d.agent();
    assert!(pay(&mut agent, v1["id"].as_str().unwrap(), 100, "tx-old").is_err());
    let v2 = issue(&d);
    pay(&mut agent, v2["id"].as_str().unwrap(), 100, "tx-new").unwrap();
}
