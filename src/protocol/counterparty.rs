//! The operator's register of counterparties' keys: merchants, whose signed checkouts
//! `payment.authorize` binds a payment to, and payment providers, whose signed AP2 payment
//! receipts `payment.report` accepts.

use crate::jose::Jwk;
use serde::{Deserialize, Serialize};

/// What a registered key is trusted to sign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CounterpartyRole {
    /// A merchant: its checkout JWTs. Its name is its merchant id, the payee of its checkouts.
    Merchant,
    /// A payment provider: its AP2 payment receipts.
    Provider,
}

impl CounterpartyRole {
    /// `merchant` or `provider`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Merchant => "merchant",
            Self::Provider => "provider",
        }
    }
}

/// The params of `admin.counterparty_add`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CounterpartyParams {
    /// Merchant or provider.
    pub role: CounterpartyRole,
    /// Its name: for a merchant, its merchant id.
    pub name: String,
    /// Its public P-256 key.
    pub jwk: Jwk,
}

/// The params of `admin.counterparty_remove`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CounterpartyRef {
    /// Merchant or provider.
    pub role: CounterpartyRole,
    /// Its name.
    pub name: String,
}

/// The params of `admin.counterparty_list`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CounterpartyListParams {
    /// Only these (default: both roles).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<CounterpartyRole>,
}

/// A registered counterparty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counterparty {
    /// Merchant or provider.
    pub role: CounterpartyRole,
    /// Its name.
    pub name: String,
    /// Its key's thumbprint.
    pub kid: String,
    /// Its public key.
    pub jwk: Jwk,
}

/// The result of `admin.counterparty_list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterpartyList {
    /// By role, then name.
    pub counterparties: Vec<Counterparty>,
}

/// The result of `admin.counterparty_remove`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterpartyRemoved {
    /// Merchant or provider.
    pub role: CounterpartyRole,
    /// Its name.
    pub name: String,
    /// Always true.
    pub removed: bool,
}
