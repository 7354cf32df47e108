//! The agent lifecycle in-process: a frozen agent is refused (its attempt recorded as a denial)
//! until an operator unfreezes it.

use super::{InProcess, kinds};
use crate::evidence::entry::Kind;
use crate::protocol::{ErrorCode, Method};
use serde_json::json;

#[tokio::test]
async fn a_frozen_agent_cannot_authorize_until_it_is_unfrozen() {
    let d = InProcess::start().await;
    d.provision_self("shop-bot").await;
    let (v, _) = d.issue("shop-bot", json!({"budget": 1000})).await;
    d.pay(&v, 100, "shop.example", "f1").await.unwrap();
    let agent = json!({"agent": "shop-bot"});

    let before = d.log().len();
    let frozen = d
        .admin(Method::AdminAgentFreeze, agent.clone())
        .await
        .unwrap();
    assert_eq!(frozen["status"], "frozen");
    let frozen_entry = d.since(before);
    assert_eq!(kinds(&frozen_entry), [Kind::AgentFrozen]);
    assert_eq!(frozen_entry[0].agent.as_deref(), Some("shop-bot"));

    let before = d.log().len();
    let refused = d.pay(&v, 100, "shop.example", "f2").await.unwrap_err();
    assert_eq!(refused.code, ErrorCode::AgentFrozen);
    let entry = d.entry_since(before, Kind::PaymentDenied, &json!(refused.decision));
    assert_eq!(entry.fact["reason"], ErrorCode::AgentFrozen.reason());
    let identity = d.agent(Method::AgentIdentity, json!({})).await;
    assert_eq!(identity.unwrap_err().code, ErrorCode::AgentFrozen);

    let before = d.log().len();
    d.admin(Method::AdminAgentUnfreeze, agent).await.unwrap();
    assert_eq!(kinds(&d.since(before)), [Kind::AgentUnfrozen]);
    let identity = d.agent(Method::AgentIdentity, json!({})).await.unwrap();
    assert_eq!(identity["status"], "active");
    d.pay(&v, 100, "shop.example", "f3").await.unwrap();
    assert_eq!(d.voucher(&v).await["spent"], 200);
}
