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
            kid: key.thumbprint(),
            jwk: key.to_jwk(),
        },
        payment_instrument: Some(PaymentInstrument {
            id: "card-1".into(),
            kind: "card".into(),
            description: None,
        }),
        iat: Some(1_796_500_000),
        exp: Some(1_796_600_000),
        a2p2: Some(A2p2Limits {
            autonomy_level: "L3".into(),
            categories: vec!["groceries".into()],
            report_within_s: Some(3600),
            conditions: vec!["facts.quantity <= 3".into()],
            period_time_zone: Some("UTC".into()),
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
                at: 1_785_268_700,
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
