//! Delegation in-process: a child voucher that narrows its parent is signed by the parent
//! agent's key, recorded, and reserves its budget in the parent; one that widens is refused and
//! leaves no trace.

use super::{InProcess, kinds};
use crate::evidence::entry::Kind;
use crate::protocol::{ErrorCode, Method};
use serde_json::{Value, json};

#[tokio::test]
async fn narrowing_is_signed_and_reserved_and_widening_is_refused() {
    let d = InProcess::start().await;
    d.provision_self("shop-bot").await;
    // Another of the user's agents: another executable, so never this process.
    let child = d.provision("child-bot", &"ab".repeat(32)).await;
    let (parent, parent_compact) = d
        .issue(
            "shop-bot",
            json!({"level": "L4", "max_amount": 500, "budget": 1000,
                   "payees": ["shop.example", "cafe.example"]}),
        )
        .await;
    // As the child's open mandate will write them: the budget in yuan, as AP2 reads budgets.
    let narrow = json!({
        "a2p2": {"autonomy_level": "L3"},
        "constraints": [
            {"type": "payment.amount_range", "currency": "CNY", "max": 300},
            {"type": "payment.budget", "currency": "CNY", "max": 6.00},
            {"type": "payment.allowed_payees", "allowed": [{"id": "shop.example", "name": "shop.example"}]},
        ],
    });
    let delegate = |limits: Value| {
        let mut params = json!({"voucher": parent, "agent": "child-bot"});
        params
            .as_object_mut()
            .unwrap()
            .extend(limits.as_object().unwrap().clone());
        d.agent(Method::VoucherDelegate, params)
    };

    // Wider on any axis, or a constraint dropped: refused, nothing recorded or reserved.
    let before = d.log().len();
    let mut widened: Vec<Value> = [
        (
            0,
            json!({"type": "payment.amount_range", "currency": "CNY", "max": 501}),
        ),
        (
            2,
            json!({"type": "payment.allowed_payees", "allowed": [{"id": "evil.example", "name": "evil.example"}]}),
        ),
    ]
    .into_iter()
    .map(|(i, wider)| {
        let mut cs = narrow.clone();
        cs["constraints"][i] = wider;
        cs
    })
    .collect();
    let mut higher = narrow.clone();
    higher["a2p2"]["autonomy_level"] = json!("L5");
    widened.push(higher);
    let mut dropped = narrow.clone();
    dropped["constraints"].as_array_mut().unwrap().pop();
    widened.push(dropped);
    for cs in widened {
        let refused = delegate(cs.clone()).await.unwrap_err();
        assert_eq!(refused.code, ErrorCode::VoucherWidens, "{cs}");
    }
    assert_eq!(d.log().len(), before);
    assert_eq!(d.voucher(&parent).await["reserved"], 0);

    // Narrower: signed by the parent agent, recorded, its budget reserved in the parent.
    let made = delegate(narrow.clone()).await.unwrap();
    let entries = d.since(before);
    assert_eq!(kinds(&entries), [Kind::VoucherDelegated]);
    assert_eq!(entries[0].fact["from"], "shop-bot");
    assert_eq!(entries[0].agent.as_deref(), Some("child-bot"));
    assert_eq!(d.voucher(&parent).await["reserved"], 600);
    let child_compact = made["voucher"].as_str().unwrap();
    assert!(child_compact.starts_with(&parent_compact[..parent_compact.len() - 1]));
    let chain =
        crate::voucher::verify_chain(child_compact, &[d.issuer().await], crate::clock::unix_now())
            .unwrap();
    assert_eq!(chain.len(), 2);
    assert_eq!(chain[1].agent, "child-bot");
    assert_eq!(
        serde_json::to_value(&chain[1].cnf.jwk).unwrap(),
        child["key"]["jwk"]
    );

    // Only 400 is left to carve out; and the child voucher is the child's to spend.
    let before = d.log().len();
    let mut too_big = narrow.clone();
    too_big["constraints"][1]["max"] = json!(4.01);
    let refused = delegate(too_big).await.unwrap_err();
    assert_eq!(refused.code, ErrorCode::BudgetExhausted);
    assert_eq!(d.log().len(), before);
    let refused = d.pay(child_compact, 1, "shop.example", "c1").await;
    assert_eq!(refused.unwrap_err().code, ErrorCode::Forbidden);
}
