//! `admin.spending` in-process: holds, denials and what an agent may send that it must not
//! break; and payees that could display as another.

use super::InProcess;
use crate::protocol::{ErrorCode, Method};
use serde_json::{Value, json};

fn voucher<'a>(s: &'a Value, id: &str) -> &'a Value {
    s["vouchers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["id"] == id)
        .unwrap()
}

#[tokio::test]
async fn the_figures_split_holds_from_spending_and_survive_absurd_denials() {
    let d = InProcess::start().await;
    d.provision_self("shop-bot").await;
    let (l3, _) = d
        .issue("shop-bot", json!({"max_amount": 500, "budget": 800}))
        .await;
    let (l2, _) = d
        .issue(
            "shop-bot",
            json!({"level": "L2", "max_amount": 500, "budget": 1000}),
        )
        .await;
    d.pay(&l3, 400, "shop.example", "t1").await.unwrap();
    let held = d.pay(&l2, 300, "shop.example", "t2").await.unwrap();
    assert_eq!(held["status"], "pending_confirmation");
    // The largest amounts the protocol takes, denied twice in the same hour for the same
    // reason: their sum is past what SQLite's integers hold, and must not break the figures.
    for tx in ["huge-1", "huge-2"] {
        let refused = d.pay(&l3, i64::MAX as u64, "shop.example", tx).await;
        assert_eq!(refused.unwrap_err().code, ErrorCode::AmountOutOfRange);
    }

    let s = d.admin(Method::AdminSpending, json!({})).await.unwrap();
    let (a, b) = (voucher(&s, &l3), voucher(&s, &l2));
    assert_eq!(
        (&a["spent"], &a["held"], &a["remaining"]),
        (&json!(400), &json!(0), &json!(400))
    );
    assert_eq!(
        (&b["spent"], &b["held"], &b["remaining"]),
        (&json!(0), &json!(300), &json!(700))
    );
    assert_eq!((&a["state"], &b["level"]), (&json!("active"), &json!("L2")));
    let agent = &s["agents"][0];
    assert_eq!(agent["id"], "shop-bot");
    assert_eq!(agent["denials"], json!({"amount_out_of_range": 2}));
    assert_eq!(
        (&agent["pending"], &agent["overdue"]),
        (&json!(1), &json!(0))
    );
    let cny = &agent["amounts"][0];
    assert_eq!(
        (
            &cny["currency"],
            &cny["today"],
            &cny["lifetime"],
            &cny["held"]
        ),
        (&json!("CNY"), &json!(400), &json!(400), &json!(300))
    );
    assert_eq!(s["users"][0]["amounts"], agent["amounts"]);
    let hours: u64 = s["hourly"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["amount"].as_u64().unwrap())
        .sum();
    assert_eq!(
        hours, 400,
        "the chart counts what was authorized, not holds or denials"
    );

    // Confirmed, the hold becomes spending.
    d.admin(
        Method::AdminPaymentConfirm,
        json!({"decision": held["decision"]}),
    )
    .await
    .unwrap();
    let s = d
        .admin(Method::AdminSpending, json!({"agent": "shop-bot"}))
        .await
        .unwrap();
    let b = voucher(&s, &l2);
    assert_eq!(
        (&b["spent"], &b["held"], &b["remaining"]),
        (&json!(300), &json!(0), &json!(700))
    );
    assert_eq!(s["agents"][0]["amounts"][0]["lifetime"], 700);
    let unknown = d
        .admin(Method::AdminSpending, json!({"agent": "nobody"}))
        .await;
    assert_eq!(unknown.unwrap_err().code, ErrorCode::AgentNotFound);
}

#[tokio::test]
async fn a_payee_with_bidirectional_controls_is_refused_before_any_decision() {
    let d = InProcess::start().await;
    d.provision_self("shop-bot").await;
    let (v, _) = d.issue("shop-bot", json!({"max_amount": 500})).await;
    let before = d.log().len();
    // Displays as "shop.example" reversed around the override: another payee than it is.
    for payee in [
        "\u{202E}elpmaxe.pohs",
        "shop\u{2066}.example",
        "shop\u{200F}.example",
    ] {
        let refused = d.pay(&v, 10, payee, "bidi").await.unwrap_err();
        assert_eq!(refused.code, ErrorCode::InvalidParams, "{payee:?}");
    }
    assert_eq!(d.log().len(), before, "nothing was decided");
    d.pay(&v, 10, "shop.example", "plain").await.unwrap();
}
