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
use ari::voucher::status::{STATUS_LIST_TYP, StatusList, StatusType};
use ari_fuzz::{
    ARI_KEY_ATTRIBUTES, AttestHeader, NOW, b64, build_receipt, complete_tpm_bundle, issuer, jws,
    keys, sign_chain, tpm_bundle_template, tpm_public,
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

/// Root voucher claims for `holder` (keys()[1]) and a delegation to keys()[2].
fn chain_claims() -> Vec<Value> {
    let root = json!({
        "iss": format!("urn:ari:issuer:{}", issuer().kid), "sub": "alice@example.com",
        "iat": NOW - 3600, "nbf": NOW - 3600, "exp": NOW + 86_400 * 30, "jti": "v-root-1",
        "vct": ari::voucher::VOUCHER_VCT, "agent": "shop-bot",
        "cnf": {"jwk": keys()[1].jwk()}, "constraints": constraints(5000, "L4"),
    });
    let mut child = root.clone();
    child["iss"] = json!("shop-bot");
    child["agent"] = json!("helper-bot");
    child["jti"] = json!("v-child-1");
    child["cnf"] = json!({"jwk": keys()[2].jwk()});
    child["constraints"] = constraints(2000, "L3");
    vec![root, child]
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

fn authorization(agent: &str, level: &str, amount: u64) -> Value {
    json!({
        "iss": "urn:ari:agent:".to_string() + agent, "sub": "alice@example.com", "aud": "psp.example",
        "iat": NOW - 60, "exp": NOW + 240, "jti": "pay-1", "nonce": "8c1d44e0a9b2",
        "agent": agent, "instance": "i-1", "transaction_id": "c0ffee-1", "payee": "shop.example",
        "amount": amount, "currency": "CNY", "category": "groceries", "level": level,
        "confirmed": false, "log_index": 97, "report_by": NOW + 3600,
    })
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
    let chain = sign_chain(&claims);
    out.mode("voucher", "root-raw", 0, chain[0].as_bytes());
    out.mode(
        "voucher",
        "root-and-delegation-raw",
        0,
        chain.join("\n").as_bytes(),
    );
    out.mode(
        "voucher",
        "root-claims",
        1,
        &serde_json::to_vec(&claims[..1]).unwrap(),
    );
    out.mode(
        "voucher",
        "root-and-delegation-claims",
        1,
        &serde_json::to_vec(&claims).unwrap(),
    );
    let mut unknown = claims[0].clone();
    unknown["constraints"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "com.example.moon_phase", "phase": "full"}));
    out.mode(
        "voucher",
        "unknown-constraint-claims",
        1,
        &serde_json::to_vec(&[unknown]).unwrap(),
    );

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
    json!({"sub": "https://pay.example.com/ari/status/vouchers", "iat": NOW, "exp": NOW + 3600,
           "ttl": 300, "status_list": list.encode()})
}

fn payments(out: &mut Out) {
    let claims = chain_claims();
    let input = json!({
        "chain": [claims[0]],
        "authorization": authorization("shop-bot", "L4", 1250),
        "bundle": bundle_for("shop-bot", &keys()[1].kid),
    });
    out.mode(
        "payment",
        "root-l4-payment",
        1,
        &serde_json::to_vec(&input).unwrap(),
    );
    let (receipt, _) = build_receipt(&mut input.clone());
    assert!(
        ari::payment::verify(&receipt, &[issuer().pk], None, NOW).is_ok(),
        "the seed receipt verifies"
    );
    out.mode(
        "payment",
        "root-l4-receipt",
        0,
        &serde_json::to_vec(&receipt).unwrap(),
    );
    let mut delegated = json!({
        "chain": claims,
        "authorization": authorization("helper-bot", "L3", 900),
        "bundle": bundle_for("helper-bot", &keys()[2].kid),
        "status": status_claims(),
    });
    out.mode(
        "payment",
        "delegated-l3-payment",
        1,
        &serde_json::to_vec(&delegated).unwrap(),
    );
    let (receipt, _) = build_receipt(&mut delegated);
    assert!(ari::payment::verify(&receipt, &[issuer().pk], None, NOW).is_ok());
    out.mode(
        "payment",
        "delegated-l3-receipt",
        0,
        &serde_json::to_vec(&receipt).unwrap(),
    );
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
    evidence(&mut out);
    attestations(&mut out);
    conditions(&mut out);
    configs(&mut out);
    tpm_structures(&mut out);
    println!("wrote {} seeds under {}", out.count, out.root.display());
}
