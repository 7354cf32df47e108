//! AP2 mandates against JSON Schemas written from the AP2 specification (docs/schemas/ap2),
//! checked by Python's `jsonschema` (Debian's python3-jsonschema): the mandates ARI's types
//! write, and the ones AP2's own SDK wrote into its golden vectors.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use ari::mandate::{
    A2p2Limits, Amount, ClosedPaymentMandate, Cnf, Constraint, Frequency, Merchant,
    OpenPaymentMandate, PaymentInstrument, budget_major,
};
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;

fn open() -> OpenPaymentMandate {
    let sk = p256::ecdsa::SigningKey::from_slice(&[7; 32]).unwrap();
    let key = ari::jose::PublicKey::from_sec1(sk.verifying_key().to_sec1_point(false).as_bytes())
        .unwrap();
    OpenPaymentMandate {
        vct: ari::mandate::OPEN_VCT.into(),
        constraints: vec![
            Constraint::AmountRange {
                currency: "CNY".into(),
                max: 20_000,
                min: Some(100),
            },
            Constraint::Budget {
                currency: "CNY".into(),
                max: budget_major(50_000, "CNY"),
            },
            Constraint::AgentRecurrence {
                frequency: Frequency::Weekly,
                max_occurrences: Some(10),
            },
            Constraint::AllowedPayees {
                allowed: vec![
                    serde_json::to_value(Merchant {
                        id: "shop-1".into(),
                        name: "Shop".into(),
                        website: Some("https://shop.example".into()),
                    })
                    .unwrap(),
                    json!({"...": "bm90LWRpc2Nsb3NlZC1oZXJl"}),
                ],
            },
            Constraint::AllowedPaymentInstruments {
                allowed: vec![json!({"id": "card-1", "type": "card"})],
            },
            Constraint::ExecutionDate {
                not_before: Some("2026-12-06T00:00:00Z".into()),
                not_after: Some("2026-12-31T23:59:59Z".into()),
            },
        ],
        cnf: Cnf {
            kid: Some(key.thumbprint()),
            jwk: key.to_jwk(),
        },
        payment_instrument: Some(PaymentInstrument {
            id: "card-1".into(),
            kind: "card".into(),
            description: None,
        }),
        payee: None,
        payment_amount: None,
        execution_date: None,
        iat: Some(1_796_500_000),
        exp: Some(1_796_600_000),
        a2p2: Some(A2p2Limits {
            autonomy_level: "L3".into(),
            categories: vec!["groceries".into()],
            report_within_s: Some(3600),
            conditions: vec!["facts.quantity <= 3".into()],
            period_time_zone: Some("UTC".into()),
            budget_minor: None,
        }),
    }
}

fn closed() -> ClosedPaymentMandate {
    ClosedPaymentMandate {
        vct: ari::mandate::CLOSED_VCT.into(),
        transaction_id: "b64-sha256-of-the-checkout".into(),
        payee: Merchant {
            id: "shop-1".into(),
            name: "Shop".into(),
            website: None,
        },
        payment_amount: Amount {
            amount: 3750,
            currency: "CNY".into(),
        },
        payment_instrument: PaymentInstrument {
            id: "card-1".into(),
            kind: "card".into(),
            description: None,
        },
        execution_date: None,
        risk_data: Some(json!({"ari_attestation": "eyJ0eXAiOi..."})),
    }
}

fn case(name: &str, schema: &str, document: Value, valid: bool) -> Value {
    json!({"name": name, "schema": schema, "document": document, "valid": valid})
}

#[test]
fn mandates_validate_against_the_ap2_schemas_with_jsonschema() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let open = serde_json::to_value(open()).unwrap();
    let closed = serde_json::to_value(closed()).unwrap();
    let mut cases = vec![
        case("ARI open mandate", "open", open.clone(), true),
        case("ARI closed mandate", "closed", closed.clone(), true),
    ];
    // AP2's own SDK wrote these: the payment chains of its golden vectors, resolved here.
    let set: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("tests/vectors/ap2/delegate_sd_jwt_vectors.json"))
            .unwrap(),
    )
    .unwrap();
    for v in set["vectors"].as_array().unwrap() {
        let root_key: ari::jose::Jwk =
            serde_json::from_value(v["root_public_jwk"].clone()).unwrap();
        let got = ari::sdjwt::verify(
            v["compact_serialization"].as_str().unwrap(),
            &root_key.to_public_key().unwrap(),
            &ari::sdjwt::Expect {
                at: Some(1_785_268_700),
                skew: 300,
                ..Default::default()
            },
        )
        .unwrap();
        for (i, m) in got.mandates.iter().enumerate() {
            let schema = match m["vct"].as_str() {
                Some(ari::mandate::OPEN_VCT) => "open",
                Some(ari::mandate::CLOSED_VCT) => "closed",
                _ => continue,
            };
            cases.push(case(
                &format!("AP2 vector {} hop {i}", v["id"]),
                schema,
                m.clone(),
                true,
            ));
        }
    }
    // What the schemas must refuse.
    let mut unknown = open.clone();
    unknown["constraints"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "org.a2p2.autonomy_level", "level": "L3"}));
    cases.push(case(
        "an A2P2 constraint in constraints",
        "open",
        unknown,
        false,
    ));
    let mut budget = open.clone();
    budget["constraints"][1]["max"] = json!("500.00");
    cases.push(case("a budget as text", "open", budget, false));
    let mut date = open.clone();
    date["constraints"][5]["not_before"] = json!(1_796_500_000);
    cases.push(case(
        "an execution date in Unix seconds",
        "open",
        date,
        false,
    ));
    let mut payee = open.clone();
    payee["constraints"][3]["allowed"][0] = json!("shop-1");
    cases.push(case("a payee as a string", "open", payee, false));
    let mut with_cnf = closed.clone();
    with_cnf["cnf"] = open["cnf"].clone();
    cases.push(case(
        "a closed mandate naming a holder",
        "closed",
        with_cnf,
        false,
    ));
    let mut minor = closed;
    minor["payment_amount"]["amount"] = json!(37.5);
    cases.push(case("an amount with a fraction", "closed", minor, false));

    let tmp = crate::common::tempdir();
    let file = tmp.path().join("cases.json");
    std::fs::write(&file, serde_json::to_string(&cases).unwrap()).unwrap();
    let out = Command::new(crate::common::debian_python())
        .arg(root.join("tests/mandate_schema_check.py"))
        .arg(root.join("docs/schemas/ap2"))
        .arg(&file)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(out.status.success(), "{text}");
    assert_eq!(
        text.lines().filter(|l| l.starts_with("ok ")).count(),
        cases.len(),
        "{text}"
    );
}

#[test]
fn arictl_verifies_chains_made_by_ap2s_sdk_and_its_golden_vectors() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = crate::common::tempdir();
    let run = |jwk: &Value, chain: &str, aud: &str, nonce: &str| {
        let trust = dir.path().join("root.jwk");
        std::fs::write(&trust, jwk.to_string()).unwrap();
        let file = dir.path().join("chain.txt");
        std::fs::write(&file, chain).unwrap();
        let out = Command::new(crate::common::ARICTL)
            .args(["verify", "payment", "--trust"])
            .arg(&trust)
            .args(["--aud", aud, "--nonce", nonce, "--at", "1800000000"])
            .arg(&file)
            .output()
            .unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let sdk: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("tests/vectors/ap2/sdk_payment_chains.json")).unwrap(),
    )
    .unwrap();
    let golden: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("tests/vectors/ap2/delegate_sd_jwt_vectors.json"))
            .unwrap(),
    )
    .unwrap();
    let mut checked = 0;
    let sdk_cases = sdk["chains"].as_array().unwrap().iter().map(|c| {
        (
            c["name"].as_str().unwrap().to_string(),
            c["root_public_jwk"].clone(),
            c["mandate"].as_str().unwrap().to_string(),
            c["expected_aud"].as_str().unwrap().to_string(),
            c["expected_nonce"].as_str().unwrap().to_string(),
        )
    });
    let golden_cases = golden["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["id"].as_str().unwrap().ends_with("payment-chain"))
        .map(|v| {
            (
                v["id"].as_str().unwrap().to_string(),
                v["root_public_jwk"].clone(),
                v["compact_serialization"].as_str().unwrap().to_string(),
                v["verification"]["expected_aud"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                v["verification"]["expected_nonce"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        });
    for (name, jwk, chain, aud, nonce) in sdk_cases.chain(golden_cases) {
        let (ok, text) = run(&jwk, &chain, &aud, &nonce);
        assert!(ok, "{name}: {text}");
        assert!(text.contains("mandate OK"), "{name}: {text}");
        let (ok, _) = run(&jwk, &chain, &aud, "another-nonce");
        assert!(!ok, "{name}: another nonce");
        let cut = chain.rsplit_once("~~").unwrap().0.to_string() + "~";
        let (ok, _) = run(&jwk, &cut, &aud, &nonce);
        assert!(!ok, "{name}: without its last hop");
        checked += 1;
    }
    assert_eq!(checked, 9);
}

/// The venv python with the OpenWallet `sd_jwt` library (`ensure_sdjwt_python` in .ci/lib.sh).
fn sdjwt_python() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = std::env::var("ARI_SDJWT_PYTHON").unwrap_or_else(|_| {
        root.join("target/tools/sdjwt-venv/bin/python")
            .display()
            .to_string()
    });
    assert!(
        Path::new(&python).exists(),
        "{python}: the OpenWallet sd-jwt library's venv is missing; `. .ci/lib.sh; \
         ensure_sdjwt_python` makes it (.ci/test does)"
    );
    python
}

/// Runs tests/sdjwt_check.py on a chain: its output, and whether the library accepted it.
fn openwallet_check(chain: &str, root: &Value, aud: &str, nonce: &str) -> (bool, String) {
    let root_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut child = Command::new(sdjwt_python())
        .arg(root_dir.join("tests/sdjwt_check.py"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let input = json!({"chain": chain, "root_jwk": root, "aud": aud, "nonce": nonce});
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), input.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn the_daemons_payment_mandates_pass_the_openwallet_library_and_the_ap2_schemas() {
    use crate::common::{ARICTL, Daemon};
    use ari::protocol::Method;
    let d = Daemon::start();
    d.provision_self("shop-bot");
    // The child agent is arictl itself: same uid, another executable.
    let arictl_digest = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(std::fs::read(ARICTL).unwrap()))
    };
    d.admin()
        .call(
            Method::AdminAgentProvision,
            json!({"agent": "child-bot", "user": "alice@example.com",
                   "uid": crate::common::uid(), "exe_sha256": arictl_digest}),
        )
        .unwrap();
    let voucher = d
        .admin()
        .call(
            Method::AdminVoucherIssue,
            json!({"agent": "shop-bot", "level": "L3", "currency": "CNY", "max_amount": 5000,
                   "budget": 20000, "payees": ["shop.example", "cafe.example"],
                   "categories": ["groceries"], "funds_carrier": "card-7",
                   "report_within_s": 3600,
                   "expires_at": ari::clock::unix_now() + 86_400}),
        )
        .unwrap();
    let status = d.admin().call(Method::AdminStatus, json!({})).unwrap();
    let issuer_jwk = status["daemon_keys"]["issuer"]["jwk"].clone();

    // One hop: the agent pays on its own voucher.
    let direct = d
        .agent()
        .call(
            Method::PaymentAuthorize,
            json!({"voucher": voucher["id"],
                   "payment": {"amount": 1250, "currency": "CNY", "payee": "shop.example",
                               "category": "groceries", "transaction_id": "checkout-1"},
                   "aud": "merchant.example", "nonce": "merchant-nonce-1"}),
        )
        .unwrap();
    // Two hops: it delegates to the child, which pays.
    let child = d
        .agent()
        .call(
            Method::VoucherDelegate,
            json!({"voucher": voucher["id"], "agent": "child-bot",
            "a2p2": {"autonomy_level": "L3", "categories": ["groceries"],
                     "report_within_s": 3600},
            "constraints": [
                {"type": "payment.amount_range", "currency": "CNY", "max": 3000},
                {"type": "payment.budget", "currency": "CNY", "max": 80.00},
                {"type": "payment.allowed_payees",
                 "allowed": [{"id": "cafe.example", "name": "cafe.example"}]},
                {"type": "payment.allowed_payment_instruments",
                 "allowed": [{"id": "card-7", "type": "ari.funds_carrier"}]},
            ]}),
        )
        .unwrap();
    let (code, out, err) = d.arictl(&[
        "payment",
        "authorize",
        "--voucher",
        child["id"].as_str().unwrap(),
        "--amount",
        "2500",
        "--currency",
        "CNY",
        "--payee",
        "cafe.example",
        "--category",
        "groceries",
        "--transaction-id",
        "checkout-2",
        "--aud",
        "merchant.example",
        "--nonce",
        "merchant-nonce-2",
        "--no-proof",
    ]);
    assert_eq!(code, Some(0), "{out}{err}");
    let delegated: Value = serde_json::from_str(&out).unwrap();

    // For AP2's SDK as the oracle, by hand (tests/by-hand/ap2_verify_daemon.py).
    if let Ok(out) = std::env::var("ARI_MANDATES_OUT") {
        let chains: Vec<Value> = [
            ("direct", &direct, "merchant-nonce-1", "checkout-1"),
            ("delegated", &delegated, "merchant-nonce-2", "checkout-2"),
        ]
        .iter()
        .map(|(name, paid, nonce, tx)| {
            json!({"name": name, "mandate": paid["mandate"], "aud": "merchant.example",
                       "nonce": nonce, "transaction_id": tx})
        })
        .collect();
        std::fs::write(
            out,
            json!({"issuer_jwk": issuer_jwk, "chains": chains}).to_string(),
        )
        .unwrap();
    }
    // ARI's verifier reads its own chains as any AP2 chain, too.
    let dir = crate::common::tempdir();
    let trust = dir.path().join("issuer.jwk");
    std::fs::write(&trust, issuer_jwk.to_string()).unwrap();
    let chain_file = dir.path().join("chain.txt");
    std::fs::write(&chain_file, direct["mandate"].as_str().unwrap()).unwrap();
    let (code, out, err) = d.arictl(&[
        "verify",
        "payment",
        "--trust",
        trust.to_str().unwrap(),
        "--aud",
        "merchant.example",
        "--nonce",
        "merchant-nonce-1",
        chain_file.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{out}{err}");

    let mut cases = Vec::new();
    for (name, paid, nonce, segments) in [
        ("direct", &direct, "merchant-nonce-1", 2),
        ("delegated", &delegated, "merchant-nonce-2", 3),
    ] {
        let chain = paid["mandate"].as_str().unwrap();
        assert_eq!(chain.split("~~").count(), segments, "{name}");
        let (ok, text) = openwallet_check(chain, &issuer_jwk, "merchant.example", nonce);
        println!("{name}: {text}");
        assert!(ok, "{name}: the OpenWallet library refused it: {text}");
        let (ok, text) = openwallet_check(chain, &issuer_jwk, "merchant.example", "other-nonce");
        assert!(!ok && text.contains("nonce"), "{name}: {text}");
        let (ok, _) = openwallet_check(chain, &issuer_jwk, "another.example", nonce);
        assert!(!ok, "{name}: another audience");
        let forged = chain.replacen("~~", "~~e", 1);
        assert!(!openwallet_check(&forged, &issuer_jwk, "merchant.example", nonce).0);

        // Each mandate the chain discloses, against the schemas written from AP2's spec.
        let got = ari::sdjwt::verify(
            chain,
            &serde_json::from_value::<ari::jose::Jwk>(issuer_jwk.clone())
                .unwrap()
                .to_public_key()
                .unwrap(),
            &ari::sdjwt::Expect {
                aud: Some("merchant.example"),
                nonce: Some(nonce),
                at: Some(ari::clock::unix_now()),
                skew: 60,
                open: false,
            },
        )
        .unwrap();
        for (i, m) in got.mandates.iter().enumerate() {
            let schema = if i + 1 == got.mandates.len() {
                "closed"
            } else {
                "open"
            };
            cases.push(case(
                &format!("daemon {name} hop {i}"),
                schema,
                m.clone(),
                true,
            ));
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tmp = crate::common::tempdir();
    let file = tmp.path().join("cases.json");
    std::fs::write(&file, serde_json::to_string(&cases).unwrap()).unwrap();
    let out = Command::new(crate::common::debian_python())
        .arg(root.join("tests/mandate_schema_check.py"))
        .arg(root.join("docs/schemas/ap2"))
        .arg(&file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    println!("{text}");
    assert!(out.status.success(), "{text}");
    assert_eq!(text.lines().filter(|l| l.starts_with("ok ")).count(), 5);
}

/// A compact ES256 JWT over `payload`, signed with `sk` (a payment provider's receipt, a
/// merchant's checkout).
fn es256_jwt(sk: &p256::ecdsa::SigningKey, payload: &Value) -> String {
    use p256::ecdsa::signature::hazmat::PrehashSigner;
    let header = ari::jose::Header {
        alg: "ES256".into(),
        typ: "JWT".into(),
        kid: String::new(),
    };
    let input = ari::jose::SigningInput::new(&header, payload).unwrap();
    let sig: p256::ecdsa::Signature = sk.sign_prehash(&input.digest()).unwrap();
    input.finish(&sig.to_bytes())
}

#[test]
fn a_checkout_binds_the_payment_and_a_provider_receipt_backs_its_report() {
    use crate::common::{Daemon, remote_err};
    use ari::protocol::Method;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fixture: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("tests/vectors/ap2/receipt_checkout.json")).unwrap(),
    )
    .unwrap();
    // A checkout AP2's own SDK made and signed, as its MCP merchant sample does.
    let checkout = &fixture["checkouts"][0];
    let checkout_jwt = checkout["checkout_jwt"].as_str().unwrap();
    let merchant = checkout["expected"]["merchant"]["id"].as_str().unwrap();
    let total = checkout["expected"]["amount"]["amount"].as_u64().unwrap();

    let d = Daemon::start();
    d.provision_self("shop-bot");
    let v = d
        .admin()
        .call(
            Method::AdminVoucherIssue,
            json!({"agent": "shop-bot", "level": "L3", "currency": "USD", "max_amount": 50_000,
                   "budget": 100_000, "expires_at": ari::clock::unix_now() + 86_400}),
        )
        .unwrap();
    let mut c = d.agent();
    let pay = |c: &mut ari::client::Client, payee: &str, amount: u64, extra: Value| {
        let mut p = json!({"voucher": v["id"], "aud": "merchant.example",
                           "nonce": format!("nonce-{amount}-{payee}"),
                           "payment": {"amount": amount, "currency": "USD", "payee": payee}});
        for (k, x) in extra.as_object().unwrap() {
            if k == "transaction_id" {
                p["payment"][k] = x.clone();
            } else {
                p[k] = x.clone();
            }
        }
        c.call(Method::PaymentAuthorize, p)
    };
    let reason = |r: Result<Value, ari::client::ClientError>| remote_err(r).error.reason();
    let with_checkout = json!({"checkout_jwt": checkout_jwt});

    // Before the merchant's key is registered, its checkout binds nothing.
    assert_eq!(
        reason(pay(&mut c, merchant, total, with_checkout.clone())),
        "checkout_refused"
    );
    let dir = crate::common::tempdir();
    let jwk = dir.path().join("merchant.jwk");
    std::fs::write(&jwk, fixture["keys"]["merchant"].to_string()).unwrap();
    let (code, out, err) = d.arictl(&["merchant", "add", merchant, "--jwk", jwk.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}{err}");
    // Another payee, amount or transaction id than the checkout's: refused, nothing decided.
    assert_eq!(
        reason(pay(&mut c, "elsewhere", total, with_checkout.clone())),
        "checkout_refused"
    );
    assert_eq!(
        reason(pay(&mut c, merchant, total - 1, with_checkout.clone())),
        "checkout_refused"
    );
    let mut other_tx = with_checkout.clone();
    other_tx["transaction_id"] = json!("tx-1");
    assert_eq!(
        reason(pay(&mut c, merchant, total, other_tx)),
        "checkout_refused"
    );
    let mut forged = with_checkout.clone();
    forged["checkout_jwt"] = json!(checkout_jwt.replacen(".eyJ", ".eyK", 1));
    assert_eq!(
        reason(pay(&mut c, merchant, total, forged)),
        "checkout_refused"
    );

    // Bound: the transaction id is the checkout's hash, as AP2 defines it, and says so.
    let bound = pay(&mut c, merchant, total, with_checkout).unwrap();
    let closed_of = |paid: &Value| -> Value {
        let disclosure = paid["authorization"]
            .as_str()
            .unwrap()
            .split('~')
            .nth(1)
            .unwrap();
        serde_json::from_slice::<Value>(&ari::jose::b64url_decode(disclosure).unwrap()).unwrap()[1]
            .clone()
    };
    let closed = closed_of(&bound);
    assert_eq!(closed["transaction_id"], checkout["checkout_hash"]);
    assert_eq!(closed["risk_data"]["ari"]["checkout_verified"], true);
    // Without a checkout, the agent's own id still works, marked as such.
    let free = pay(
        &mut c,
        merchant,
        100,
        json!({"transaction_id": "agent-says-1"}),
    )
    .unwrap();
    assert_eq!(
        closed_of(&free)["risk_data"]["ari"]["checkout_verified"],
        false
    );
    assert_eq!(
        reason(pay(&mut c, merchant, 100, json!({}))),
        "invalid_params",
        "neither a checkout nor a transaction id"
    );

    // The provider's signed receipt backs a report; it must answer this very authorization.
    let psp = p256::ecdsa::SigningKey::from_slice(&[0x51; 32]).unwrap();
    let psp_key =
        ari::jose::PublicKey::from_sec1(psp.verifying_key().to_sec1_point(false).as_bytes())
            .unwrap();
    let receipt = |paid: &Value, status: &str| {
        let mut r = json!({"iss": "psp.example", "iat": ari::clock::unix_now(),
                           "status": status, "payment_id": "pay-1",
                           "reference": ari::ap2::receipt_reference(
                               paid["authorization"].as_str().unwrap())});
        if status == "Success" {
            r["psp_confirmation_id"] = json!("psp-77");
            r["network_confirmation_id"] = json!("net-88");
        } else {
            r["error"] = json!("declined");
            r["error_description"] = json!("the card was declined");
        }
        es256_jwt(&psp, &r)
    };
    let report = |c: &mut ari::client::Client, paid: &Value, outcome: &str, jwt: Option<String>| {
        let mut p = json!({"decision": paid["decision"], "outcome": outcome});
        if let Some(jwt) = jwt {
            p["receipt_jwt"] = json!(jwt);
            p["authorization"] = paid["authorization"].clone();
        }
        c.call(Method::PaymentReport, p)
    };
    // The authorization a receipt answers: the one signed for that decision, and given.
    let mut without = json!({"decision": bound["decision"], "outcome": "succeeded",
                             "receipt_jwt": "x.y.z"});
    assert_eq!(
        reason(c.call(Method::PaymentReport, without.clone())),
        "receipt_refused"
    );
    without["authorization"] = free["authorization"].clone();
    assert_eq!(
        reason(c.call(Method::PaymentReport, without)),
        "receipt_refused",
        "another decision's authorization"
    );
    assert_eq!(
        reason(report(
            &mut c,
            &bound,
            "succeeded",
            Some(receipt(&bound, "Success"))
        )),
        "receipt_refused",
        "no provider registered yet"
    );
    d.admin()
        .call(
            Method::AdminCounterpartyAdd,
            json!({"role": "provider", "name": "psp.example", "jwk": psp_key.to_jwk()}),
        )
        .unwrap();
    for (jwt, outcome) in [
        (receipt(&free, "Success"), "succeeded"),
        (receipt(&bound, "Error"), "succeeded"),
        (
            receipt(&bound, "Success").replacen(".eyJ", ".eyK", 1),
            "succeeded",
        ),
    ] {
        assert_eq!(
            reason(report(&mut c, &bound, outcome, Some(jwt))),
            "receipt_refused"
        );
    }
    let before = d.admin().call(Method::AdminStatus, json!({})).unwrap()["evidence"]["entries"]
        .as_u64()
        .unwrap();
    report(
        &mut c,
        &bound,
        "succeeded",
        Some(receipt(&bound, "Success")),
    )
    .unwrap();
    report(&mut c, &free, "succeeded", None).unwrap();
    let entry = |i: u64| -> Value {
        let e = d
            .admin()
            .call(Method::EvidenceEntry, json!({"index": i}))
            .unwrap();
        serde_json::from_str(e["entry"].as_str().unwrap()).unwrap()
    };
    let (signed, unsigned) = (entry(before), entry(before + 1));
    assert_eq!(signed["kind"], "payment.reported");
    assert_eq!(signed["fact"]["receipt_verified"], true);
    assert_eq!(signed["fact"]["receipt"]["provider"], "psp.example");
    assert_eq!(
        signed["fact"]["receipt"]["claims"]["psp_confirmation_id"],
        "psp-77"
    );
    assert_eq!(unsigned["fact"]["receipt_verified"], false);
    assert_eq!(unsigned["fact"]["checkout_verified"], false);
    assert_eq!(signed["fact"]["checkout_verified"], true);
}

#[test]
fn periodic_limits_count_per_utc_day_and_read_as_ap2_recurrences() {
    use crate::common::{Daemon, remote_err};
    use ari::protocol::Method;
    // Not across a UTC midnight: the day's counts would start again halfway.
    let to_midnight = 86_400 - ari::clock::unix_now().rem_euclid(86_400);
    if to_midnight < 30 {
        std::thread::sleep(std::time::Duration::from_secs(to_midnight as u64 + 1));
    }
    let d = Daemon::start();
    d.provision_self("shop-bot");
    let v = d
        .admin()
        .call(
            Method::AdminVoucherIssue,
            json!({"agent": "shop-bot", "level": "L3", "currency": "CNY", "max_amount": 500,
                   "budget": 1000, "max_payments": 2, "period": "DAILY",
                   "expires_at": ari::clock::unix_now() + 86_400}),
        )
        .unwrap();
    let status = d.admin().call(Method::AdminStatus, json!({})).unwrap();
    let issuer: ari::jose::Jwk =
        serde_json::from_value(status["daemon_keys"]["issuer"]["jwk"].clone()).unwrap();
    let got = ari::sdjwt::verify(
        v["voucher"].as_str().unwrap(),
        &issuer.to_public_key().unwrap(),
        &ari::sdjwt::Expect {
            open: true,
            ..Default::default()
        },
    )
    .unwrap();
    let m = &got.mandates[0];
    assert!(
        m["constraints"].as_array().unwrap().contains(
            &json!({"type": "payment.agent_recurrence", "frequency": "DAILY",
                              "max_occurrences": 2})
        ),
        "{m}"
    );
    assert_eq!(m["a2p2"]["period_time_zone"], "UTC");

    let mut c = d.agent();
    let mut n = 0;
    let mut pay = |c: &mut ari::client::Client, amount: u64| {
        n += 1;
        c.call(
            Method::PaymentAuthorize,
            json!({"voucher": v["id"], "aud": "shop.example", "nonce": format!("periodic-{n}"),
                   "payment": {"amount": amount, "currency": "CNY", "payee": "shop.example",
                               "transaction_id": format!("periodic-{n}")}}),
        )
    };
    let first = pay(&mut c, 500).unwrap();
    assert_eq!(
        remote_err(pay(&mut c, 501)).error.reason(),
        "amount_out_of_range"
    );
    let second = pay(&mut c, 500).unwrap();
    assert_eq!(
        remote_err(pay(&mut c, 1)).error.reason(),
        "payments_exhausted"
    );
    // A failed payment gives back its amount and its count for the day.
    c.call(
        Method::PaymentReport,
        json!({"decision": second["decision"], "outcome": "failed"}),
    )
    .unwrap();
    assert_eq!(
        remote_err(pay(&mut c, 501)).error.reason(),
        "amount_out_of_range"
    );
    pay(&mut c, 400).unwrap();
    // A refunded one gives back its amount only.
    c.call(
        Method::PaymentReport,
        json!({"decision": first["decision"], "outcome": "refunded"}),
    )
    .unwrap();
    assert_eq!(
        remote_err(pay(&mut c, 1)).error.reason(),
        "payments_exhausted"
    );
    // Limits per period are not handed on.
    let e = remote_err(c.call(
        Method::VoucherDelegate,
        json!({"voucher": v["id"], "agent": "shop-bot", "constraints": [],
               "a2p2": {"autonomy_level": "L3"}}),
    ));
    assert_eq!(e.error.reason(), "invalid_params");
}
