//! Payments in-process: an L3 authorization within its limits and the denials around it, L2
//! holds confirmed and rejected by the operator, a decision voided when the key store cannot
//! sign, and L4 reports with the block an overdue one puts on the voucher.

use super::{InProcess, kinds};
use crate::evidence::entry::Kind;
use crate::payment::Receipt;
use crate::protocol::{ErrorCode, Method};
use serde_json::{Value, json};

/// The receipt a payment's answer carries, checked offline against the daemon's issuer key.
async fn verified(d: &InProcess, answer: &Value) -> crate::payment::Verified {
    let receipt: Receipt = serde_json::from_value(answer.clone()).unwrap();
    crate::payment::verify(
        &receipt,
        &[d.issuer().await],
        None,
        crate::clock::unix_now(),
    )
    .unwrap()
}

#[tokio::test]
async fn l3_signs_within_the_limits_and_records_each_denial() {
    let d = InProcess::start().await;
    d.provision_self("shop-bot").await;
    let (v, _) = d
        .issue(
            "shop-bot",
            json!({"max_amount": 500, "budget": 800, "payees": ["shop.example"]}),
        )
        .await;

    let before = d.log().len();
    let paid = d.pay(&v, 400, "shop.example", "t1").await.unwrap();
    assert_eq!(paid["status"], "authorized");
    let entry = d.entry_since(before, Kind::PaymentAuthorized, &paid["decision"]);
    assert_eq!(paid["log_index"], json!(before));
    // The log holds exactly the mandate that was signed, and the receipt verifies offline.
    let jwt = paid["authorization"].as_str().unwrap();
    assert_eq!(entry.fact["mandate"], jwt.split('.').nth(1).unwrap());
    let checked = verified(&d, &paid).await;
    assert_eq!(checked.claims.amount, 400);
    assert_eq!(checked.claims.log_index, before as u64);
    assert!(!checked.claims.confirmed);

    for (amount, payee, tx, code) in [
        (501, "shop.example", "t2", ErrorCode::AmountOutOfRange),
        (401, "shop.example", "t3", ErrorCode::BudgetExhausted),
        (10, "evil.example", "t4", ErrorCode::PayeeNotAllowed),
    ] {
        let before = d.log().len();
        let refused = d.pay(&v, amount, payee, tx).await.unwrap_err();
        assert_eq!(refused.code, code, "{tx}");
        let decision = json!(refused.decision.unwrap());
        let entry = d.entry_since(before, Kind::PaymentDenied, &decision);
        assert_eq!(entry.fact["reason"], code.reason(), "{tx}");
        let row = d.decision(decision.as_str().unwrap()).await;
        assert_eq!(row["status"], "denied", "{tx}");
    }
    let view = d.voucher(&v).await;
    assert_eq!(
        (&view["spent"], &view["payments"]),
        (&json!(400), &json!(1))
    );
    // What is left is still there to spend.
    d.pay(&v, 400, "shop.example", "t5").await.unwrap();
}

#[tokio::test]
async fn l2_holds_until_the_operator_confirms_or_rejects() {
    let d = InProcess::start().await;
    d.provision_self("shop-bot").await;
    let (v, _) = d
        .issue("shop-bot", json!({"level": "L2", "budget": 1000}))
        .await;

    // Held: recorded as pending, its amount taken from the budget, nothing signed yet.
    let before = d.log().len();
    let held = d.pay(&v, 600, "shop.example", "h1").await.unwrap();
    assert_eq!(held["status"], "pending_confirmation");
    assert!(held.get("authorization").is_none());
    d.entry_since(before, Kind::PaymentPending, &held["decision"]);
    assert_eq!(d.voucher(&v).await["spent"], 600);
    let status = json!({"decision": held["decision"]});
    let waiting = d
        .agent(Method::PaymentStatus, status.clone())
        .await
        .unwrap();
    assert_eq!(waiting["status"], "pending_confirmation");

    // Confirmed: signed now, as confirmed, and the agent collects it with its status.
    let before = d.log().len();
    let confirmed = d
        .admin(Method::AdminPaymentConfirm, status.clone())
        .await
        .unwrap();
    assert_eq!(confirmed["status"], "authorized");
    d.entry_since(before, Kind::PaymentConfirmed, &held["decision"]);
    let done = d
        .agent(Method::PaymentStatus, status.clone())
        .await
        .unwrap();
    let checked = verified(&d, &done).await;
    assert!(checked.claims.confirmed);
    assert_eq!(checked.claims.amount, 600);
    let again = d.admin(Method::AdminPaymentConfirm, status).await;
    assert_eq!(again.unwrap_err().code, ErrorCode::InvalidState);

    // Rejected: denied with the operator's note, and the amount comes back.
    let held = d.pay(&v, 300, "shop.example", "h2").await.unwrap();
    assert_eq!(d.voucher(&v).await["spent"], 900);
    let before = d.log().len();
    let decision = json!({"decision": held["decision"]});
    let mut reject = decision.clone();
    reject["note"] = json!("not this shop");
    let rejected = d.admin(Method::AdminPaymentReject, reject).await.unwrap();
    assert_eq!(rejected["status"], "denied");
    assert_eq!(rejected["reason"], ErrorCode::RejectedByOperator.reason());
    let entry = d.entry_since(before, Kind::PaymentRejected, &held["decision"]);
    assert_eq!(entry.fact["note"], "not this shop");
    assert_eq!(d.voucher(&v).await["spent"], 600);
    let late = d.admin(Method::AdminPaymentConfirm, decision).await;
    assert_eq!(late.unwrap_err().code, ErrorCode::InvalidState);
    assert_eq!(
        d.log().len(),
        before + 1,
        "a refused confirmation records nothing"
    );
}

#[tokio::test]
async fn a_signature_the_key_store_cannot_make_voids_the_decision_and_returns_the_money() {
    let d = InProcess::start().await;
    d.provision_self("shop-bot").await;
    let (v, _) = d.issue("shop-bot", json!({"budget": 1000})).await;
    d.pay(&v, 100, "shop.example", "v1").await.unwrap();

    // The agent's key disappears from the store behind the daemon's back.
    use crate::backend::Backend as _;
    d.keys.destroy_key(d.key_of("shop-bot")).await.unwrap();
    let before = d.log().len();
    let refused = d.pay(&v, 300, "shop.example", "v2").await.unwrap_err();
    assert_eq!(refused.code, ErrorCode::BackendError);

    // The decision was recorded before signing, so it is voided in the log, not forgotten.
    let entries = d.since(before);
    assert_eq!(
        kinds(&entries),
        [Kind::PaymentAuthorized, Kind::PaymentVoided]
    );
    let decision = &entries[0].fact["decision"];
    assert_eq!(entries[1].fact["decision"], *decision);
    assert_eq!(entries[1].fact["reason"], "signing_failed");
    let row = d.decision(decision.as_str().unwrap()).await;
    assert_eq!(row["status"], "void");
    assert!(row["authorization"].is_null());
    let view = d.voucher(&v).await;
    assert_eq!(
        (&view["spent"], &view["payments"]),
        (&json!(100), &json!(1))
    );
}

#[tokio::test]
async fn l4_reports_are_recorded_and_an_overdue_one_blocks_the_voucher() {
    let d = InProcess::start().await;
    d.provision_self("shop-bot").await;
    let (v, _) = d
        .issue(
            "shop-bot",
            json!({"level": "L4", "budget": 1000, "report_within_s": 60}),
        )
        .await;
    let first = d.pay(&v, 400, "shop.example", "o1").await.unwrap();
    let first_id = first["decision"].as_str().unwrap().to_string();
    let checked = verified(&d, &first).await;
    let deadline = d.decision(&first_id).await["report_deadline"].clone();
    assert_eq!(checked.claims.report_by, deadline.as_i64());
    // Unreported but not yet due: the voucher still pays.
    d.pay(&v, 1, "shop.example", "o2").await.unwrap();

    d.let_report_deadline_pass(&first_id);
    let before = d.log().len();
    let blocked = d.pay(&v, 1, "shop.example", "o3").await.unwrap_err();
    assert_eq!(blocked.code, ErrorCode::ReportOverdue);
    let entry = d.entry_since(before, Kind::PaymentDenied, &json!(blocked.decision));
    assert_eq!(entry.fact["reason"], ErrorCode::ReportOverdue.reason());

    let report = |outcome: &str| json!({"decision": first_id, "outcome": outcome});
    let before = d.log().len();
    let mut succeeded = report("succeeded");
    succeeded["reference"] = json!("psp-1");
    let r = d.agent(Method::PaymentReport, succeeded).await.unwrap();
    assert_eq!(
        (&r["outcome"], &r["reference"]),
        (&json!("succeeded"), &json!("psp-1"))
    );
    let entry = d.entry_since(before, Kind::PaymentReported, &first["decision"]);
    assert_eq!(entry.fact["outcome"], "succeeded");
    d.pay(&v, 1, "shop.example", "o4").await.unwrap();
    assert_eq!(d.voucher(&v).await["spent"], 402);

    // A refund gives the amount back; a second account of the same payment is refused.
    let before = d.log().len();
    d.agent(Method::PaymentReport, report("refunded"))
        .await
        .unwrap();
    let entry = d.entry_since(before, Kind::PaymentReported, &first["decision"]);
    assert_eq!(entry.fact["outcome"], "refunded");
    assert_eq!(d.voucher(&v).await["spent"], 2);
    let twice = d.agent(Method::PaymentReport, report("failed")).await;
    assert_eq!(twice.unwrap_err().code, ErrorCode::InvalidState);
    assert_eq!(d.log().len(), before + 1);
}
