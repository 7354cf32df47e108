//! Writes the seed corpora under `fuzz/corpus/<target>/` from real messages: the request lines
//! of docs/protocol.md, the daemon's own answers (a fresh in-process service issues a real
//! voucher), vouchers, lists, receipts, checkpoints, statements and attestations built with
//! the `ari` library's own encoders and signed with the fixed fuzzing keys, TPM attestations
//! as a TPM marshals them, docs/arid.example.toml and the condition examples of
//! docs/formats.md.
//!
//! It is built like the fuzz targets (same instrumented build, so it links libFuzzer and has
//! no `main` of its own): it writes the seeds when libFuzzer initializes it and exits. Run
//! `cargo fuzz run seeds` or `fuzz/target/x86_64-unknown-linux-gnu/release/seeds`; the seeds go
//! to `$ARI_SEEDS_DIR`, by default `fuzz/corpus`. Deterministic but for the voucher the in-process daemon
//! issues (its time and id). Each file is named by what it is.

#![no_main]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
// The init block exits after writing the seeds, so the (empty) target body is never reached.
#![allow(unreachable_code)]

use ari::evidence::checkpoint::{self, Checkpoint};
use ari::evidence::entry::{Draft, Kind};
use ari::evidence::statement::{self, BATCH_TYP};
use ari::merkle;
use ari::payment::{self, AuthorizationClaims, AuthorizationDraft, Binding, Receipt};
use ari::sdjwt::{self, Expect, Segment};
use ari::voucher::constraint::AutonomyLevel;
use ari::voucher::status::{STATUS_LIST_TYP, StatusList, StatusType};
use ari::voucher::{VoucherClaims, VoucherDraft};
use ari_fuzz::chain::{describe, sign_segments};
use ari_fuzz::{
    ARI_KEY_ATTRIBUTES, AttestHeader, Key, NOW, b64, build_receipt, complete_tpm_bundle, issuer,
    jws, keys, tpm_bundle_template, tpm_public, vectors,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

struct Out {
    root: PathBuf,
    count: usize,
}

impl Out {
    fn put(&mut self, target: &str, name: &str, bytes: &[u8]) {
        let dir = self.root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
        self.count += 1;
    }

    /// A seed whose first byte is a mode selector.
    fn mode(&mut self, target: &str, name: &str, mode: u8, rest: &[u8]) {
        let mut v = vec![mode];
        v.extend_from_slice(rest);
        self.put(target, name, &v);
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn constraints(max: u64, level: &str) -> Value {
    json!([
        {"type": "org.a2p2.autonomy_level", "level": level},
        {"type": "payment.amount_range", "currency": "CNY", "max": max},
        {"type": "payment.budget", "currency": "CNY", "max": max * 4},
        {"type": "payment.allowed_payees", "payees": ["shop.example", "books.example"]},
        {"type": "org.a2p2.categories", "categories": ["groceries", "books"]},
        {"type": "payment.execution_date", "not_before": NOW - 86_400, "not_after": NOW + 86_400 * 30},
        {"type": "org.a2p2.report_within", "seconds": 86_400},
        {"type": "payment.agent_recurrence", "max_occurrences": 10},
        {"type": "org.a2p2.conditions", "all": ["facts.unit_price >= 400", "payment.category in ['groceries', 'books']"]}
    ])
}

/// Where the fixed issuer's Status List Token is published.
const STATUS_URI: &str = "https://pay.example.com/ari/status/vouchers";

/// Root voucher claims for keys()[1] ("shop-bot", at place 0 of the status list, which is
/// valid) and a delegation to keys()[2] ("helper-bot").
fn chain_claims() -> Vec<VoucherClaims> {
    let root = json!({
        "iss": format!("urn:ari:issuer:{}", issuer().kid), "sub": "alice@example.com",
        "iat": NOW - 3600, "nbf": NOW - 3600, "exp": NOW + 86_400 * 30, "jti": "v-root-1",
        "vct": ari::mandate::OPEN_VCT, "agent": "shop-bot",
        "cnf": {"jwk": keys()[1].jwk()}, "constraints": constraints(5000, "L4"),
        "status": {"status_list": {"idx": 0, "uri": STATUS_URI}},
    });
    let mut child = root.clone();
    child["iss"] = json!("shop-bot");
    child["agent"] = json!("helper-bot");
    child["jti"] = json!("v-child-1");
    child["cnf"] = json!({"jwk": keys()[2].jwk()});
    child["constraints"] = constraints(2000, "L3");
    child.as_object_mut().unwrap().remove("status");
    [root, child]
        .into_iter()
        .map(|c| serde_json::from_value(c).unwrap())
        .collect()
}

/// Deterministic salts, as base64url.
fn salts() -> impl FnMut() -> String {
    let mut n = 0u32;
    move || {
        n += 1;
        b64(format!("fuzz-salt-{n:04}").as_bytes())
    }
}

/// A real voucher chain, made with the library's own encoders: the root signed by the issuer,
/// each delegation by the holder the voucher before names. Segments as presented.
fn sign_vouchers(claims: &[VoucherClaims]) -> Vec<String> {
    let mut salt = salts();
    let mut out: Vec<String> = Vec::new();
    let mut signer: &Key = issuer();
    for c in claims {
        let draft = match out.last() {
            None => VoucherDraft::root(c, &signer.kid, &mut salt).unwrap(),
            Some(parent) => VoucherDraft::delegation(c, &signer.kid, parent, &mut salt).unwrap(),
        };
        let sig = signer.sign_digest(&draft.digest());
        out.push(draft.finish(&sig));
        signer = ari_fuzz::key_for(&serde_json::to_value(&c.cnf.jwk).unwrap()).unwrap();
    }
    out
}

fn bundle_for(agent: &str, kid: &str) -> Value {
    let mut b = tpm_bundle_template();
    b["agent"]["id"] = json!(agent);
    b["key"]["kid"] = json!(kid);
    b["key"]["store"] = json!("pkcs11");
    b["key"]["uri"] = json!("pkcs11:token=ari;object=agent-shop-bot");
    b["tpm"] = json!({"present": false});
    b.as_object_mut().unwrap().remove("binding");
    b
}

/// A real receipt: the chain of `claims`, and an authorization by its last holder, made as the
/// daemon makes them (`AuthorizationDraft`, the log index filled in, then signed).
fn receipt_for(claims: &[VoucherClaims], level: AutonomyLevel, amount: u64) -> (Receipt, Value) {
    let chain = sign_vouchers(claims);
    let leaf = claims.last().unwrap();
    let holder = ari_fuzz::key_for(&serde_json::to_value(&leaf.cnf.jwk).unwrap()).unwrap();
    let iat = NOW - 60;
    let mut c = AuthorizationClaims {
        sub: leaf.sub.clone(),
        aud: "psp.example".into(),
        iat,
        exp: iat + payment::AUTHORIZATION_TTL_S,
        jti: "pay-1".into(),
        nonce: "8c1d44e0a9b2".into(),
        agent: leaf.agent.clone(),
        instance: "i-1".into(),
        transaction_id: "c0ffee-1".into(),
        checkout_verified: false,
        payee: "shop.example".into(),
        amount,
        currency: "CNY".into(),
        category: Some("groceries".into()),
        funds_carrier: payment::instrument(None, &leaf.sub).id,
        level,
        confirmed: false,
        log_index: 0,
        report_by: Some(iat + 3600),
        attestation_sha256: String::new(),
        facts_sha256: None,
    };
    let leaf_segment = chain.last().unwrap();
    let mut bundle = bundle_for(&leaf.agent, &holder.kid);
    let binding = payment::binding_digest(&Binding {
        voucher: &ari::voucher::digest(leaf_segment),
        transaction_id: &c.transaction_id,
        amount: c.amount,
        currency: &c.currency,
        payee: &c.payee,
        aud: &c.aud,
        nonce: &c.nonce,
        kid: &holder.kid,
    });
    bundle["binding"] = json!(binding);
    let bundle_bytes = serde_json::to_vec(&bundle).unwrap();
    let attestation = b64(&bundle_bytes);
    c.attestation_sha256 = b64(&Sha256::digest(&bundle_bytes));
    let draft = AuthorizationDraft::new(
        &c,
        leaf_segment,
        &holder.kid,
        &attestation,
        ["c2FsdC1wYXk", "c2FsdC1idW5kbGU"],
    )
    .unwrap();
    let input = draft.pending.fill(97);
    let jwt = input.clone().finish(&holder.sign_digest(&input.digest()));
    let authorization = payment::segment(&jwt, &draft.disclosures);
    let receipt = Receipt::new(&chain, authorization, attestation);
    let verified = payment::verify(&receipt, &[issuer().pk], None, NOW);
    assert!(verified.is_ok(), "the seed receipt verifies: {verified:?}");
    bundle.as_object_mut().unwrap().remove("binding");
    (receipt, bundle)
}

/// The segments of a chain, as the library splits it.
fn segments(chain: &str) -> Vec<Segment> {
    sdjwt::split(chain).unwrap()
}

/// Replaces every `cnf` key of `v` (a JWK, with its `kid` when the `cnf` has one) by `key`'s.
fn rekey(v: &mut Value, key: &Key) {
    match v {
        Value::Object(m) => {
            if let Some(Value::Object(cnf)) = m.get_mut("cnf")
                && cnf.contains_key("jwk")
            {
                cnf.insert("jwk".into(), serde_json::to_value(key.jwk()).unwrap());
                if cnf.contains_key("kid") {
                    cnf.insert("kid".into(), json!(key.kid));
                }
            }
            m.values_mut().for_each(|v| rekey(v, key));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| rekey(v, key)),
        _ => {}
    }
}

/// A chain of another issuer described so that the fixed keys sign it again: the holder each
/// segment names becomes the fixed key of the next place.
fn describe_rekeyed(chain: &str) -> Vec<Value> {
    let mut descs = describe(&segments(chain));
    for (i, d) in descs.iter_mut().enumerate() {
        rekey(d, &keys()[(i + 1).min(3)]);
    }
    descs
}

/// The chains AP2's SDK made that the seeds use: one of each depth, and the one with a root
/// disclosure withheld.
const SDK_CHAINS_USED: &[&str] = &[
    "depth2-sd-hash",
    "depth3-issuer-jwt-hash-root-redacted",
    "depth4-mixed",
];

/// The chains of AP2's vectors: (name, chain).
fn ap2_chains() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let delegate: Value = serde_json::from_str(vectors::DELEGATE).unwrap();
    for v in delegate["vectors"].as_array().unwrap() {
        out.push((
            format!("ap2-{}", v["id"].as_str().unwrap()),
            v["compact_serialization"].as_str().unwrap().to_string(),
        ));
    }
    let sdk: Value = serde_json::from_str(vectors::SDK_CHAINS).unwrap();
    for c in sdk["chains"].as_array().unwrap() {
        if !SDK_CHAINS_USED.contains(&c["name"].as_str().unwrap()) {
            continue;
        }
        out.push((
            format!("ap2-sdk-{}", c["name"].as_str().unwrap()),
            c["mandate"].as_str().unwrap().to_string(),
        ));
    }
    let rc: Value = serde_json::from_str(vectors::RECEIPT_CHECKOUT).unwrap();
    out.push((
        "ap2-receipt-chain".into(),
        rc["payment_chain"].as_str().unwrap().to_string(),
    ));
    out
}

fn wire(out: &mut Out) {
    let doc = std::fs::read_to_string(repo().join("docs/protocol.md")).unwrap();
    // Named by content, not by line, so an edit elsewhere in the document leaves the seeds as
    // they are; those of examples since removed are removed too.
    let dir = out.root.join("wire");
    for old in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        if old
            .file_name()
            .to_string_lossy()
            .starts_with("protocol-md-")
        {
            std::fs::remove_file(old.path()).unwrap();
        }
    }
    let mut calls = Vec::new();
    for line in doc.lines() {
        let line = line.trim();
        let msg = line.strip_prefix("→ ").or_else(|| line.strip_prefix("← "));
        let msg = msg.or_else(|| line.starts_with("{\"jsonrpc\"").then_some(line));
        if let Some(m) = msg {
            let digest = hex::encode(Sha256::digest(m.as_bytes()));
            let name = format!("protocol-md-{}", digest.get(..12).unwrap());
            out.put("wire", &name, m.as_bytes());
            if line.starts_with("→ ") {
                calls.push(m.to_string());
            }
        }
    }
    let batch = format!(
        "[{}]",
        calls.iter().take(4).cloned().collect::<Vec<_>>().join(",")
    );
    out.put("wire", "batch-of-4", batch.as_bytes());
    for (name, m) in [
        ("not-json", &b"{"[..]),
        ("empty-batch", b"[]"),
        ("not-utf8", b"\xff\xfe{}"),
        (
            "notification",
            br#"{"jsonrpc":"2.0","method":"admin.status"}"#,
        ),
        (
            "bad-params",
            br#"{"jsonrpc":"2.0","id":"x","method":"admin.status","params":[1]}"#,
        ),
        (
            "float-id",
            br#"{"jsonrpc":"2.0","id":1.5,"method":"admin.status"}"#,
        ),
        (
            "extra-member",
            br#"{"jsonrpc":"2.0","id":1,"method":"m","extra":true}"#,
        ),
    ] {
        out.put("wire", name, m);
    }
    // The service seeds: admin lines ('A') and agent lines ('a'), all from protocol.md's
    // examples with ids the fresh service makes valid.
    let provision = r#"A{"jsonrpc":"2.0","id":1,"method":"admin.agent_provision","params":{"agent":"shop-bot","user":"alice@example.com","uid":0}}"#;
    let issue = r#"A{"jsonrpc":"2.0","id":2,"method":"admin.voucher_issue","params":{"agent":"shop-bot","level":"L4","currency":"CNY","max_amount":5000,"budget":20000,"expires_at":1898000000,"payees":["shop.example"],"conditions":["facts.unit_price >= 400"]}}"#;
    let setup = format!("{provision}\n{issue}\n");
    let answers = ari_fuzz::service::run_lines(setup.as_bytes());
    let issued: Value = serde_json::from_slice(&answers[1]).unwrap();
    let voucher = issued["result"]["voucher"]
        .as_str()
        .unwrap_or_else(|| panic!("voucher_issue failed: {issued}"))
        .to_string();
    out.put(
        "service",
        "provision-issue-status",
        format!("{setup}A{{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"admin.status\"}}\n")
            .as_bytes(),
    );
    let agent_calls = [
        r#"a{"jsonrpc":"2.0","id":1,"method":"agent.identity"}"#.to_string(),
        r#"a{"jsonrpc":"2.0","id":2,"method":"agent.attest","params":{"nonce":"3f1c9a0e5b7d2468"}}"#.to_string(),
        format!(r#"a{{"jsonrpc":"2.0","id":3,"method":"payment.authorize","params":{{"voucher":"{voucher}","payment":{{"amount":1250,"currency":"CNY","payee":"shop.example","category":"groceries","transaction_id":"c0ffee-1"}},"aud":"psp.example","nonce":"8c1d44e0a9b2","facts":{{"unit_price":450}}}}}}"#),
        r#"a{"jsonrpc":"2.0","id":4,"method":"evidence.record","params":{"kind":"offer.chosen","body":{"offer":"X","price":1999,"why":"cheapest in stock"}}}"#.to_string(),
        r#"a{"jsonrpc":"2.0","id":5,"method":"evidence.checkpoint"}"#.to_string(),
        r#"a{"jsonrpc":"2.0","id":6,"method":"evidence.inclusion","params":{"index":1,"tree_size":3}}"#.to_string(),
        r#"a{"jsonrpc":"2.0","id":7,"method":"evidence.consistency","params":{"from":1,"to":3}}"#.to_string(),
        r#"a{"jsonrpc":"2.0","id":8,"method":"evidence.entry","params":{"index":0}}"#.to_string(),
    ];
    let agent_run = format!("{setup}{}\n", agent_calls.join("\n"));
    out.put(
        "service",
        "provision-issue-agent-calls",
        agent_run.as_bytes(),
    );
    let admin_calls = [
        r#"A{"jsonrpc":"2.0","id":4,"method":"admin.agent_list"}"#,
        r#"A{"jsonrpc":"2.0","id":5,"method":"admin.agent_show","params":{"agent":"shop-bot"}}"#,
        r#"A{"jsonrpc":"2.0","id":6,"method":"admin.agent_freeze","params":{"agent":"shop-bot"}}"#,
        r#"a{"jsonrpc":"2.0","id":7,"method":"agent.identity"}"#,
        r#"A{"jsonrpc":"2.0","id":8,"method":"admin.agent_unfreeze","params":{"agent":"shop-bot"}}"#,
        r#"A{"jsonrpc":"2.0","id":9,"method":"admin.agent_csr","params":{"agent":"shop-bot","subject":"CN=shop-bot,O=Example"}}"#,
        r#"A{"jsonrpc":"2.0","id":10,"method":"admin.voucher_list","params":{"agent":"shop-bot"}}"#,
        r#"A{"jsonrpc":"2.0","id":11,"method":"admin.voucher_status_list"}"#,
        r#"A{"jsonrpc":"2.0","id":12,"method":"admin.issuer_list"}"#,
        r#"A{"jsonrpc":"2.0","id":13,"method":"admin.payment_list"}"#,
        r#"A{"jsonrpc":"2.0","id":14,"method":"admin.metrics"}"#,
        r#"A{"jsonrpc":"2.0","id":15,"method":"admin.agent_retire","params":{"agent":"shop-bot"}}"#,
    ];
    out.put(
        "service",
        "provision-issue-admin-calls",
        format!("{setup}{}\n", admin_calls.join("\n")).as_bytes(),
    );
    let batch_line = format!(
        "a[{}]\n",
        agent_calls[..2]
            .iter()
            .map(|c| &c[1..])
            .collect::<Vec<_>>()
            .join(",")
    );
    out.put(
        "service",
        "provision-agent-batch",
        format!("{provision}\n{batch_line}").as_bytes(),
    );
    out.put(
        "service",
        "doc-admin-status",
        b"A{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"admin.status\"}\n",
    );
    // The daemon's voucher as it travels, for the voucher target's raw mode (its issuer is not
    // the fixed key there, so it stops at the issuer check; the signed modes go further).
    out.mode("voucher", "daemon-issued-raw", 0, voucher.as_bytes());
}

fn vouchers(out: &mut Out) {
    let claims = chain_claims();
    let root = sign_vouchers(&claims[..1]);
    let chain = ari::voucher::join(&sign_vouchers(&claims)).unwrap();
    let trusted = [issuer().pk];
    assert!(ari::voucher::verify_chain(&chain, &trusted, NOW).is_ok());
    out.mode("voucher", "root-raw", 0, root[0].as_bytes());
    out.mode("voucher", "root-and-delegation-raw", 0, chain.as_bytes());
    // The same, described for the signed mode: signed again by the harness, they verify.
    let described = describe(&segments(&chain));
    for (name, descs) in [
        ("root-described", &described[..1]),
        ("root-and-delegation-described", &described[..]),
    ] {
        let again = sdjwt::join(&sign_segments(descs));
        let verified = ari::voucher::verify_chain(&again, &trusted, NOW);
        assert!(
            verified.is_ok(),
            "{name} verifies signed again: {verified:?}"
        );
        out.mode("voucher", name, 1, &serde_json::to_vec(descs).unwrap());
    }
    // A root whose mandate carries a constraint this build does not know.
    let mut unknown = described[..1].to_vec();
    unknown[0]["disclosures"][0][1]["constraints"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "com.example.moon_phase", "phase": "full"}));
    out.mode(
        "voucher",
        "unknown-constraint-described",
        1,
        &serde_json::to_vec(&unknown).unwrap(),
    );
    // AP2's chains are no vouchers, but their segments are what a voucher chain is made of.
    for (name, c) in ap2_chains().iter().take(4) {
        out.mode("voucher", name, 0, c.as_bytes());
    }

    let payload = serde_json::to_vec(&status_claims()).unwrap();
    out.mode(
        "status",
        "list-raw",
        0,
        jws(STATUS_LIST_TYP, &issuer().kid, &payload, issuer()).as_bytes(),
    );
    out.mode("status", "list-payload", 1, &payload);
    // The draft's two-bit example (twelve places).
    out.mode(
        "status",
        "draft-two-bit-payload",
        1,
        br#"{"sub":"https://example.com/statuslists/1","iat":0,"status_list":{"bits":2,"lst":"eNo76fITAAPfAgc"}}"#,
    );
}

/// Status List Token claims at `NOW` with a few places set, as the daemon signs them.
fn status_claims() -> Value {
    let mut list = StatusList::new(2, 1024).unwrap();
    list.set(1, StatusType::Invalid).unwrap();
    list.set(2, StatusType::Suspended).unwrap();
    json!({"sub": STATUS_URI, "iat": NOW, "exp": NOW + 3600,
           "ttl": 300, "status_list": list.encode()})
}

fn payments(out: &mut Out) {
    let claims = chain_claims();
    for (name, chain, level, amount, status) in [
        ("root-l4", &claims[..1], AutonomyLevel::L4, 1250, false),
        ("delegated-l3", &claims[..], AutonomyLevel::L3, 900, true),
    ] {
        let (receipt, bundle) = receipt_for(chain, level, amount);
        out.mode(
            "payment",
            &format!("{name}-receipt"),
            0,
            &serde_json::to_vec(&receipt).unwrap(),
        );
        // Described: the chain and the authorization without what the harness fills in.
        let described = describe(&segments(&receipt.mandate));
        let (authorization, vouchers) = described.split_last().unwrap();
        let mut authorization = authorization.clone();
        // The bundle's own disclosure and every mention of it go: the harness puts the bundle
        // it builds in the closed mandate itself.
        authorization["disclosures"]
            .as_array_mut()
            .unwrap()
            .truncate(1);
        let closed = authorization["disclosures"][0][1].as_object_mut().unwrap();
        closed.remove("agent_attestation");
        let risk = closed["risk_data"]["ari"].as_object_mut().unwrap();
        risk.remove("_sd");
        risk.remove("attestation");
        risk.remove("attestation_sha256");
        let mut input = json!({
            "chain": vouchers,
            "authorization": authorization,
            "bundle": bundle,
        });
        if status {
            input["status"] = status_claims();
        }
        out.mode(
            "payment",
            &format!("{name}-described"),
            1,
            &serde_json::to_vec(&input).unwrap(),
        );
        let (again, list) = build_receipt(&mut input.clone());
        assert_eq!(list.is_some(), status);
        let verified = payment::verify(&again, &[issuer().pk], list.as_ref(), NOW);
        assert!(
            verified.is_ok(),
            "{name} verifies built again: {verified:?}"
        );
        // The whole chain as AP2 verifiers read it.
        out.mode(
            "payment",
            &format!("{name}-chain"),
            2,
            receipt.mandate.as_bytes(),
        );
    }
    let unbounded = Expect {
        skew: 300,
        ..Expect::default()
    };
    for (name, chain) in ap2_chains() {
        out.mode("payment", &format!("{name}-chain"), 2, chain.as_bytes());
        let descs = describe_rekeyed(&chain);
        let again = sdjwt::join(&sign_segments(&descs));
        // Those that end in a closed payment mandate verify signed again with the fixed keys.
        let original =
            ari::mandate::verify_chain(&chain, &vectors::keys_for(&chain), &unbounded, None);
        if original.is_ok() {
            let verified = ari::mandate::verify_chain(&again, &[issuer().pk], &unbounded, None);
            assert!(
                verified.is_ok(),
                "{name} verifies signed again: {verified:?}"
            );
        }
        out.mode(
            "payment",
            &format!("{name}-described"),
            3,
            &serde_json::to_vec(&descs).unwrap(),
        );
    }
}

/// SD-JWT chains on their own: AP2's and ARI's, as they travel and described.
fn sd_jwts(out: &mut Out) {
    let claims = chain_claims();
    let (receipt, _) = receipt_for(&claims, AutonomyLevel::L3, 900);
    let mut chains = ap2_chains();
    chains.push(("ari-payment".into(), receipt.mandate.clone()));
    for (name, chain) in chains.iter() {
        out.mode("sdjwt", &format!("{name}-raw"), 0, chain.as_bytes());
        let descs = describe_rekeyed(chain);
        out.mode(
            "sdjwt",
            &format!("{name}-described"),
            1,
            &serde_json::to_vec(&descs).unwrap(),
        );
    }
    let object = json!({
        "vct": ari::mandate::OPEN_VCT,
        "constraints": [{"type": "payment.amount_range", "currency": "USD", "max": 2500}],
        "payee": {"id": "m-1", "name": "Acme Store"},
        "payment_amount": {"amount": 2500, "currency": "USD"},
        "cnf": {"jwk": keys()[1].jwk()},
    });
    out.mode(
        "sdjwt",
        "conceal-payee-amount",
        2,
        &serde_json::to_vec(&json!({"object": object, "names": ["payee", "payment_amount"]}))
            .unwrap(),
    );
    out.mode(
        "sdjwt",
        "conceal-salted",
        2,
        &serde_json::to_vec(&json!({"object": object, "names": ["cnf", "vct", "absent"],
            "salts": ["c2FsdC0x", "c2FsdC0y", "c2FsdC0z"]}))
        .unwrap(),
    );
}

/// AP2 mandates, dates and budgets.
fn mandates(out: &mut Out) {
    let sdk: Value = serde_json::from_str(vectors::SDK_CHAINS).unwrap();
    let mut pairs = Vec::new();
    for c in sdk["chains"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        if !SDK_CHAINS_USED.contains(&name) {
            continue;
        }
        let payloads = c["ap2_payloads"].as_array().unwrap();
        for (i, m) in payloads.iter().enumerate() {
            out.mode(
                "mandate",
                &format!("ap2-sdk-{name}-{i}"),
                0,
                &serde_json::to_vec(m).unwrap(),
            );
        }
        if let [.., open, closed] = payloads.as_slice() {
            pairs.push((format!("ap2-sdk-{name}"), open.clone(), closed.clone()));
        }
    }
    // ARI's own: a voucher's open mandate and a payment's closed one.
    let claims = chain_claims();
    let (receipt, _) = receipt_for(&claims[..1], AutonomyLevel::L4, 1250);
    let verified = sdjwt::verify(&receipt.mandate, &issuer().pk, &Expect::default()).unwrap();
    let (open, closed) = (&verified.mandates[0], &verified.mandates[1]);
    out.mode("mandate", "ari-open", 0, &serde_json::to_vec(open).unwrap());
    out.mode(
        "mandate",
        "ari-closed",
        0,
        &serde_json::to_vec(closed).unwrap(),
    );
    pairs.push(("ari".into(), open.clone(), closed.clone()));
    for (name, open, closed) in pairs.iter().take(4) {
        out.mode(
            "mandate",
            &format!("{name}-check"),
            1,
            &serde_json::to_vec(
                &json!({"open": open, "closed": closed, "spent": 0, "uses": 0,
                "now": "2026-06-01T00:00:00Z"}),
            )
            .unwrap(),
        );
    }
    // Every constraint AP2 has, and the checkout reference among them.
    let (_, _, closed) = &pairs[0];
    let all = json!({
        "vct": ari::mandate::OPEN_VCT,
        "constraints": [
            {"type": "payment.amount_range", "currency": "USD", "max": 50000, "min": 100},
            {"type": "payment.budget", "currency": "USD", "max": 19.99},
            {"type": "payment.agent_recurrence", "frequency": "WEEKLY", "max_occurrences": 3},
            {"type": "payment.allowed_payees", "allowed": [{"id": "merchant-1", "name": "Demo Merchant"}]},
            {"type": "payment.allowed_payment_instruments", "allowed": [{"id": "card-4242", "type": "card"}]},
            {"type": "payment.execution_date", "not_before": "2026-01-01T00:00:00Z", "not_after": "2026-12-31T23:59:59Z"},
            {"type": "payment.reference", "conditional_transaction_id": "x0Cm1M1lRCr5sCaGvp0sz5xDJGLwM2XQXQS3cqrpNwM"}
        ],
        "cnf": {"jwk": keys()[1].jwk(), "kid": keys()[1].kid},
        "payment_instrument": {"id": "card-4242", "type": "card"},
        "a2p2": {"autonomy_level": "L3", "categories": ["shoes"], "report_within_s": 3600,
                 "conditions": ["facts.unit_price >= 400"], "period_time_zone": "UTC"},
    });
    out.mode(
        "mandate",
        "every-constraint",
        0,
        &serde_json::to_vec(&all).unwrap(),
    );
    out.mode(
        "mandate",
        "every-constraint-check",
        1,
        &serde_json::to_vec(
            &json!({"open": all, "closed": closed, "spent": 1500, "uses": 2,
            "now": NOW, "hash": "x0Cm1M1lRCr5sCaGvp0sz5xDJGLwM2XQXQS3cqrpNwM"}),
        )
        .unwrap(),
    );
    out.mode(
        "mandate",
        "constraints",
        0,
        &serde_json::to_vec(&all["constraints"]).unwrap(),
    );
    for (name, text) in [
        ("utc-now", ari::mandate::utc(NOW)),
        ("utc-leap-day", "2024-02-29T23:59:59Z".into()),
        ("utc-last", "9999-12-31T23:59:59Z".into()),
        ("utc-no-such-day", "2026-02-30T00:00:00Z".into()),
    ] {
        out.mode("mandate", name, 2, text.as_bytes());
    }
    let mut secs = NOW.to_be_bytes().to_vec();
    secs.extend_from_slice(b"1970-01-01T00:00:00Z");
    out.mode("mandate", "utc-seconds", 2, &secs);
    for (name, budget) in [
        ("budget-cny", json!([200.0, "CNY"])),
        ("budget-usd-cents", json!([19.99, "USD"])),
        ("budget-jpy", json!([4500, "JPY"])),
        ("budget-bhd", json!([1.234, "BHD"])),
        ("budget-too-fine", json!([1.001, "USD"])),
    ] {
        out.mode("mandate", name, 3, &serde_json::to_vec(&budget).unwrap());
    }
    let mut minor = 1999u64.to_be_bytes().to_vec();
    minor.extend_from_slice(b"USD");
    out.mode("mandate", "budget-minor-usd", 3, &minor);
}

/// AP2 checkouts and payment receipts (tests/vectors/ap2/).
fn ap2_documents(out: &mut Out) {
    let rc: Value = serde_json::from_str(vectors::RECEIPT_CHECKOUT).unwrap();
    let payload_of = |jwt: &str| ari::jose::b64url_decode(jwt.split('.').nth(1).unwrap()).unwrap();
    let merchant = vectors::key("merchant").unwrap();
    for c in rc["checkouts"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        let jwt = c["checkout_jwt"].as_str().unwrap();
        let checkout = ari_core::ap2::verify_checkout(jwt, &merchant, NOW);
        assert!(checkout.is_ok(), "{name}: {checkout:?}");
        out.mode("ap2", &format!("checkout-{name}"), 0, jwt.as_bytes());
        out.mode(
            "ap2",
            &format!("checkout-{name}-payload"),
            1,
            &payload_of(jwt),
        );
    }
    let doc =
        std::fs::read_to_string(repo().join("tests/vectors/ap2/checkout_mandate_doc.jwt")).unwrap();
    out.mode("ap2", "checkout-doc", 0, doc.trim().as_bytes());
    out.mode("ap2", "checkout-doc-payload", 1, &payload_of(doc.trim()));
    let provider = vectors::key("merchant-payment-processor-key-1").unwrap();
    let reference = rc["reference"].as_str().unwrap();
    for r in rc["receipts"].as_array().unwrap() {
        let name = r["name"].as_str().unwrap();
        let jwt = r["receipt_jwt"].as_str().unwrap();
        let receipt = ari_core::ap2::verify_receipt(jwt, &provider, reference);
        assert!(receipt.is_ok(), "{name}: {receipt:?}");
        out.mode(
            "ap2",
            &format!("receipt-{name}"),
            2,
            format!("{reference}\n{jwt}").as_bytes(),
        );
        let mut own = b"\n".to_vec();
        own.extend_from_slice(&payload_of(jwt));
        out.mode("ap2", &format!("receipt-{name}-payload"), 3, &own);
    }
    let chain = rc["payment_chain"].as_str().unwrap();
    assert_eq!(ari_core::ap2::receipt_reference(chain), reference);
    out.mode("ap2", "reference-chain", 4, chain.as_bytes());
    let leaf = chain.rsplit("~~").next().unwrap();
    out.mode("ap2", "reference-leaf", 4, leaf.as_bytes());
}

fn evidence(out: &mut Out) {
    let log = "ari.example/log";
    let drafts = [
        Draft::new(
            Kind::AgentProvisioned,
            json!({"agent": "shop-bot", "kid": keys()[1].kid}),
        ),
        Draft::new(
            Kind::VoucherIssued,
            json!({"id": "v-root-1", "digest": "Qm9"}),
        )
        .about("shop-bot", "alice@example.com"),
        Draft::new(
            Kind::PaymentAuthorized,
            json!({"amount": 1250, "currency": "CNY"}),
        )
        .about("shop-bot", "alice@example.com")
        .runtime(Some(b64(&[9u8; 32]))),
    ];
    let mut t = merkle::MemoryTree::new();
    let mut entries = Vec::new();
    let mut prev = None;
    for (i, d) in drafts.iter().enumerate() {
        let bytes = d
            .encode(log, i as u64, prev.as_ref(), NOW + i as i64)
            .unwrap();
        let leaf = merkle::leaf_hash(&bytes);
        t.push(leaf);
        prev = Some(leaf);
        entries.push(bytes);
    }
    out.mode("evidence", "entry-0", 0, &entries[0]);
    out.mode("evidence", "entries-0-2", 0, &entries.join(&b'\n'));
    // Without their `prev`, which mode 1 fills in.
    let stripped: Vec<Vec<u8>> = entries
        .iter()
        .map(|e| {
            let mut v: Value = serde_json::from_slice(e).unwrap();
            v.as_object_mut().unwrap().remove("prev");
            serde_json::to_vec(&v).unwrap()
        })
        .collect();
    out.mode("evidence", "entries-0-2-no-prev", 1, &stripped.join(&b'\n'));
    let cp = Checkpoint {
        origin: log.into(),
        size: 3,
        root: t.root(3).unwrap(),
    };
    let note = checkpoint::note(&cp, &issuer().pk, &issuer().sign_digest(&cp.digest())).unwrap();
    out.mode("evidence", "checkpoint-note", 2, note.as_bytes());
    let witnessed = note.clone() + "\u{2014} witness.example AAAAAAAAAAAA\n";
    out.mode(
        "evidence",
        "checkpoint-note-witnessed",
        2,
        witnessed.as_bytes(),
    );
    out.mode("evidence", "checkpoint-text", 3, cp.text().as_bytes());
    out.mode(
        "evidence",
        "checkpoint-text-extension",
        3,
        (cp.text() + "ext line\n").as_bytes(),
    );
    out.mode("evidence", "proofs-small", 4, &[3, 0, 1, 2, 0, 5, 1]);
    out.mode(
        "evidence",
        "proofs-large",
        4,
        &[
            200, 44, 77, 100, 1, 200, 150, 1, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0,
            0, 0, 0, 0, 0,
        ],
    );
    let statement = json!({"iss": "urn:ari:agent:shop-bot", "sub": "alice@example.com", "iat": NOW,
        "jti": "st-1", "kind": "offer.chosen", "body": {"offer": "X", "price": 1999, "why": "cheapest in stock"}});
    let payload = serde_json::to_vec(&statement).unwrap();
    let second = serde_json::to_vec(&json!({"iss": "urn:ari:agent:shop-bot",
        "sub": "alice@example.com", "iat": NOW, "jti": "st-2", "kind": "offer.rejected",
        "body": {"offer": "Y"}}))
    .unwrap();
    let key = &keys()[1];
    let (root, paths) = statement::batch(&[&payload, &second]);
    let claims =
        json!({"iss": "urn:ari:agent:shop-bot", "iat": NOW, "size": 2, "root": b64(&root)});
    let signature = jws(BATCH_TYP, &key.kid, claims.to_string().as_bytes(), key);
    let fact = json!({"statement": b64(&payload), "signature": signature, "batch": paths[0],
        "jwk": key.jwk()});
    out.mode(
        "evidence",
        "statement-fact",
        5,
        &serde_json::to_vec(&fact).unwrap(),
    );
    let mut signed = b"shop-bot\n".to_vec();
    signed.extend_from_slice(&payload);
    signed.push(0xff);
    signed.extend_from_slice(&second);
    out.mode("evidence", "statement-batch", 6, &signed);
}

fn attestations(out: &mut Out) {
    let key = issuer();
    let mut claims = bundle_for("shop-bot", &key.kid);
    let obj = claims.as_object_mut().unwrap();
    obj.remove("typ");
    obj.remove("iat");
    obj.insert("iss".into(), json!("arid"));
    obj.insert("sub".into(), json!("shop-bot"));
    obj.insert("iat".into(), json!(NOW));
    obj.insert("nonce".into(), json!("3f1c9a0e5b7d2468"));
    let payload = serde_json::to_vec(&claims).unwrap();
    let token = jws(ari::attest::ATTEST_TYP, &key.kid, &payload, key);
    assert!(
        ari::attest::verify(&token, &key.pk, "3f1c9a0e5b7d2468").is_ok(),
        "the seed attestation verifies"
    );
    let mut raw = b"3f1c9a0e5b7d2468\n\x00".to_vec();
    raw.extend_from_slice(token.as_bytes());
    out.put("attest", "attestation-raw", &raw);
    let mut signed = b"3f1c9a0e5b7d2468\n\x01".to_vec();
    signed.extend_from_slice(&payload);
    out.put("attest", "attestation-payload", &signed);

    // TPM bundles.
    let mut complete = tpm_bundle_template();
    complete_tpm_bundle(&mut complete);
    let bundle: ari::attest::Bundle = serde_json::from_value(complete.clone()).unwrap();
    let policy: ari::attest::tpm::Policy = serde_json::from_value(json!({})).unwrap();
    ari::attest::tpm::verify(&bundle, &key.pk, &policy, None)
        .expect("the seed TPM bundle verifies");
    out.mode(
        "attest_tpm",
        "bundle-complete",
        0,
        &serde_json::to_vec(&complete).unwrap(),
    );
    out.mode(
        "attest_tpm",
        "bundle-template",
        1,
        &serde_json::to_vec(&json!({"bundle": tpm_bundle_template()})).unwrap(),
    );
    let mut with_fields = tpm_bundle_template();
    with_fields["tpm"]["quote"]["fields"] = json!({"clock": 123456789, "reset": 3, "restart": 1, "safe": true, "firmware": 0x2000_0000_0001_0000u64});
    with_fields["tpm"]["certification"]["fields"] = json!({"clock": 100, "reset": 3, "restart": 1, "qname": "000b".to_string() + &"11".repeat(32)});
    out.mode("attest_tpm", "bundle-fields-policy-seen", 1, &serde_json::to_vec(&json!({
        "bundle": with_fields,
        "policy": {"require_tpm": true, "uids": [1000], "exe_sha256": [hex::encode([0xabu8; 32])], "pcrs": {"7": hex::encode([7u8; 32])}},
        "last_seen": {"clock": 1000, "reset_count": 3, "restart_count": 1},
    })).unwrap());
    // A batch of 3: the quote qualifies the root, the bundle carries its leaf's path.
    let bindings: Vec<merkle::Hash> = (0u8..3).map(|i| Sha256::digest([i]).into()).collect();
    let (root, paths) = ari::attest::tpm::batch(&bindings);
    let mut batched = tpm_bundle_template();
    batched["binding"] = json!(b64(&bindings[1]));
    batched["tpm"]["quote"]["fields"] = json!({"extra": hex::encode(root)});
    batched["tpm"]["quote"]["batch"] = serde_json::to_value(paths[1].clone().unwrap()).unwrap();
    out.mode(
        "attest_tpm",
        "bundle-batch-of-3",
        1,
        &serde_json::to_vec(&json!({"bundle": batched})).unwrap(),
    );
    let no_tpm = bundle_for("shop-bot", &keys()[1].kid);
    out.mode(
        "attest_tpm",
        "bundle-no-tpm",
        1,
        &serde_json::to_vec(&json!({"bundle": no_tpm, "policy": {"require_tpm": false}})).unwrap(),
    );
    // Raw TPMS_ATTEST, as the TPM marshals them.
    let h = AttestHeader {
        signer: ari::attest::tpm::name_of(b"ak"),
        extra: Sha256::digest(b"binding").to_vec(),
        clock: 5,
        reset: 1,
        restart: 0,
        safe: true,
        firmware: 7,
    };
    let digest = ari::attest::tpm::pcr_digest([&[0u8; 32][..], &[7u8; 32][..]]);
    out.mode(
        "attest_tpm",
        "tpms-attest-quote",
        2,
        &h.quote([0x81, 0, 0], &digest),
    );
    let public = tpm_public(&keys()[1], ARI_KEY_ATTRIBUTES);
    let h = AttestHeader {
        extra: Vec::new(),
        ..h
    };
    out.mode(
        "attest_tpm",
        "tpms-attest-certify",
        3,
        &h.certify(&ari::attest::tpm::name_of(&public), &[]),
    );
}

fn conditions(out: &mut Out) {
    let doc = std::fs::read_to_string(repo().join("docs/formats.md")).unwrap();
    let facts = br#"{"unit_price":450,"quantity":2,"approved_by_user":true,"vendor":"acme"}"#;
    // The examples block right after the grammar block.
    let mut n = 0;
    let (mut in_block, mut grammar, mut examples) = (false, false, false);
    for line in doc.lines() {
        if line.starts_with("```") {
            if in_block && examples {
                break;
            }
            if in_block && grammar {
                examples = true;
            }
            in_block = !in_block;
            continue;
        }
        if in_block && line.starts_with("expr ") {
            grammar = true;
        }
        if in_block && examples && !line.trim().is_empty() {
            let mut v = line.as_bytes().to_vec();
            v.push(b'\n');
            v.extend_from_slice(facts);
            out.put("condition", &format!("formats-md-{n}"), &v);
            n += 1;
        }
    }
    for (name, e) in [
        (
            "all-names",
            "payment.amount <= 5000 && payment.currency == 'CNY' && payment.payee != \"x\" && payment.category in ['books'] && time.unix > 0 && time.utc_hour < 24 && time.utc_minute >= 0 && time.utc_weekday <= 7",
        ),
        (
            "nested",
            "!(facts.vendor == 'acme' || (facts.quantity > 3 && !facts.approved_by_user))",
        ),
        ("voucher-example", "facts.unit_price >= 400"),
        ("negative-literal", "facts.quantity >= -1 && true != false"),
    ] {
        let mut v = e.as_bytes().to_vec();
        v.push(b'\n');
        v.extend_from_slice(facts);
        out.put("condition", name, &v);
    }
}

/// Structures a real TPM (swtpm) made, kept as test vectors beside the cross-check with tss-esapi.
fn tpm_structures(out: &mut Out) {
    let dir = repo().join("tests/vectors/tpm");
    for (file, mode) in [
        ("quote_sha256.attest", 0),
        ("quote_two_banks.attest", 0),
        ("certify.attest", 0),
        ("quote_sha256.sig", 1),
        ("certify.sig", 1),
        ("ak.public", 2),
        ("ari_key.public", 2),
    ] {
        let bytes = std::fs::read(dir.join(file)).unwrap();
        out.mode("tpm_wire", file, mode, &bytes);
    }
}

fn configs(out: &mut Out) {
    let example = std::fs::read_to_string(repo().join("docs/arid.example.toml")).unwrap();
    out.put("config", "arid-example-toml", example.as_bytes());
    // The same file with its TPM block in force instead of the PKCS#11 one.
    let mut tpm = String::new();
    let mut section = "";
    for line in example.lines() {
        if line.starts_with("[backend]") {
            section = "pkcs11";
            continue;
        }
        if line.starts_with("# [backend]") {
            section = "tpm";
            tpm.push_str("[backend]\n");
            continue;
        }
        if line.starts_with('[') {
            section = "";
        }
        match section {
            "pkcs11" => {}
            "tpm" => {
                if let Some(l) = line.strip_prefix("# ") {
                    if !l.starts_with('#') {
                        tpm.push_str(l);
                        tpm.push('\n');
                    }
                }
            }
            _ => {
                tpm.push_str(line);
                tpm.push('\n');
            }
        }
    }
    out.put("config", "arid-example-tpm-toml", tpm.as_bytes());
    out.put(
        "config",
        "minimal",
        br#"state_dir = "/var/lib/ari"
[backend]
kind = "pkcs11"
module = "/usr/lib/softhsm/libsofthsm2.so"
token_label = "ari"
pin_file = "/etc/ari/pin"
[agent_socket]
path = "/run/ari/agent.sock"
[admin_socket]
path = "/run/ari/admin.sock"
"#,
    );
}

libfuzzer_sys::fuzz_target!(init: { write_seeds(); std::process::exit(0) }, |_data: &[u8]| {});

fn write_seeds() {
    let root = std::env::var_os("ARI_SEEDS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus"));
    let mut out = Out { root, count: 0 };
    wire(&mut out);
    vouchers(&mut out);
    payments(&mut out);
    sd_jwts(&mut out);
    mandates(&mut out);
    ap2_documents(&mut out);
    evidence(&mut out);
    attestations(&mut out);
    conditions(&mut out);
    configs(&mut out);
    tpm_structures(&mut out);
    println!("wrote {} seeds under {}", out.count, out.root.display());
}
