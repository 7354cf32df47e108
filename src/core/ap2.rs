//! AP2 v0.2 documents around a payment that are not mandates: the merchant's signed checkout,
//! the payment provider's receipt, and the hashes that tie them to the mandates.
//!
//! A *checkout JWT* is the merchant's compact ES256 JWS over a UCP Checkout object
//! (`dev.ucp.shopping.checkout`, AP2 `code/sdk/schemas/ucp/types/checkout.json`), with AP2's
//! `merchant` member added. AP2 names it by [`checkout_hash`]: the closed checkout mandate's
//! `checkout_hash` and the closed payment mandate's `transaction_id` both carry that value.
//! [`verify_checkout`] checks the merchant's signature and reads what a payment needs from it:
//! the checkout `id`, the `merchant`, the grand total (the one `totals` entry of type `total`,
//! an integer in the currency's minor unit) and the `currency`.
//!
//! A *payment receipt* (`payment_receipt.json`) is the payment provider's signed answer to a
//! closed payment mandate: `status` `Success` (with the PSP's and the network's confirmation
//! ids) or `Error` (with an error code and description), bound to the mandate by `reference`.
//! [`verify_receipt`] checks its signature, the members its status requires and its reference;
//! [`receipt_reference`] computes the reference the way AP2's SDK does.
//!
//! Both are plain JWTs: the header must say `ES256` and its `typ`, if present, `JWT` (AP2's
//! samples write `{"alg":"ES256","typ":"JWT"}`, with a `kid` when the key has one). A `kid` is
//! never used: the caller passes the key it trusts for the merchant or the provider.
//!
//! The module is pure: callers pass `now`. It never accepts something no signature covers, and
//! every refusal names the check that failed.

use crate::jose::{self, JoseError, PublicKey};
use crate::mandate::{Amount, Merchant};
use crate::sdjwt;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The merchant id a checkout JWT names, read WITHOUT checking its signature: only to pick the
/// key [`verify_checkout`] is then given.
pub fn checkout_merchant(checkout_jwt: &str) -> Option<String> {
    let payload = checkout_jwt.split('.').nth(1)?;
    let claims: Value = serde_json::from_slice(&jose::b64url_decode(payload).ok()?).ok()?;
    claims
        .get("merchant")?
        .get("id")?
        .as_str()
        .map(str::to_string)
}

/// The JWS `typ` AP2's merchants and payment providers write on checkouts and receipts. A header
/// without `typ` is accepted too (AP2's SDK verifies neither), and the comparison ignores ASCII
/// case, as RFC 7515 asks for media types.
pub const JWT_TYP: &str = "JWT";

/// The `type` of the UCP `totals` entry that holds what the buyer pays.
pub const TOTAL_TYPE: &str = "total";

/// Which AP2 document a refusal is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Document {
    /// The merchant's checkout JWT.
    Checkout,
    /// The payment provider's receipt JWT.
    Receipt,
}

impl std::fmt::Display for Document {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Checkout => "checkout",
            Self::Receipt => "payment receipt",
        })
    }
}

/// Why a checkout or a receipt was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Ap2Error {
    /// The JWS failed: not three base64url segments, not ES256, a `typ` other than `JWT`, or a
    /// signature that does not verify under the key given.
    #[error("{document}: {source}")]
    Jose {
        /// The document refused.
        document: Document,
        /// What the JWS check said.
        #[source]
        source: JoseError,
    },
    /// The signed payload is not a JSON object.
    #[error("{document}: the payload is not a JSON object")]
    Payload {
        /// The document refused.
        document: Document,
    },
    /// A member the document requires is absent (or `null`).
    #[error("{document}: member {member} is missing")]
    Missing {
        /// The document refused.
        document: Document,
        /// The member's name.
        member: &'static str,
    },
    /// A member is present but not what the format says it is.
    #[error("{document}: member {member} is not {expected}")]
    Invalid {
        /// The document refused.
        document: Document,
        /// The member's name.
        member: &'static str,
        /// What it should have been.
        expected: &'static str,
    },
    /// A receipt carries a member that belongs to the other status.
    #[error("payment receipt: member {member} may not appear when status is {status}")]
    Unexpected {
        /// The member's name.
        member: &'static str,
        /// The receipt's status.
        status: ReceiptStatus,
    },
    /// The checkout's `exp` has passed.
    #[error("checkout: expired at {exp}, checked at {now}")]
    Expired {
        /// The checkout's `exp`, Unix seconds.
        exp: i64,
        /// The time of the check, Unix seconds.
        now: i64,
    },
    /// The receipt is bound to another closed mandate.
    #[error("payment receipt: reference {found:?} is not the expected {expected:?}")]
    Reference {
        /// The reference the caller computed.
        expected: String,
        /// The reference the receipt carries.
        found: String,
    },
}

/// The hash AP2 names a checkout by: base64url SHA-256 of the checkout JWT's compact text
/// exactly as the merchant sent it. It is the closed checkout mandate's `checkout_hash` and the
/// closed payment mandate's `transaction_id` (Verifiable Intent defines it the same way).
///
/// AP2 lets an SD-JWT with another `_sd_alg` hash with that algorithm instead; ARI's mandates
/// use SHA-256 only, which is also what AP2 prescribes when `_sd_alg` is absent.
pub fn checkout_hash(checkout_jwt: &str) -> String {
    sdjwt::digest(checkout_jwt)
}

/// What a payment needs from a merchant's checkout, read from a verified checkout JWT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkout {
    /// The checkout session's id (UCP `id`).
    pub id: String,
    /// The merchant (`merchant`, AP2's extension of the UCP checkout): who is paid.
    pub merchant: Merchant,
    /// The grand total in the currency's minor unit, and the currency (`currency`, ISO 4217).
    pub amount: Amount,
    /// [`checkout_hash`] of the JWT: the closed payment mandate's `transaction_id`.
    pub hash: String,
}

/// Verifies a merchant's checkout JWT under the merchant's key and reads it.
///
/// Checks, in order: the JWS (ES256, `typ` `JWT` or absent, the signature under
/// `merchant_key`); `exp`, if present, against `now` (RFC 7519: expired from `exp` on); then the
/// members: `id` (string), `merchant` (`id` and `name` strings, `website` optional), `currency`
/// (three capital letters) and `totals`, which must hold exactly one entry of type `total` whose
/// `amount` is a non-negative integer. UCP allows signed amounts for discounts; a total to pay
/// cannot be negative.
///
/// Other UCP members (`line_items`, `status`, `links`, `expires_at`, …) are not read. UCP's
/// `expires_at` is the session's expiry as an RFC 3339 string; only the JWT's `exp` is checked.
pub fn verify_checkout(
    checkout_jwt: &str,
    merchant_key: &PublicKey,
    now: i64,
) -> Result<Checkout, Ap2Error> {
    let claims = verify_jwt(checkout_jwt, merchant_key, Document::Checkout)?;
    let claims = Claims {
        map: &claims,
        document: Document::Checkout,
    };
    if let Some(exp) = claims.optional_integer("exp")?
        && now >= exp
    {
        return Err(Ap2Error::Expired { exp, now });
    }
    read_checkout(&claims, checkout_hash(checkout_jwt))
}

/// Reads the members of a checkout payload whose signature has been checked.
fn read_checkout(claims: &Claims<'_>, hash: String) -> Result<Checkout, Ap2Error> {
    let invalid = |member, expected| Ap2Error::Invalid {
        document: Document::Checkout,
        member,
        expected,
    };
    let id = claims.string("id")?;
    let merchant = Merchant::deserialize(claims.required("merchant")?)
        .map_err(|_| invalid("merchant", "a merchant with string id and name"))?;
    let currency = claims.string("currency")?;
    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(invalid("currency", "an ISO 4217 alphabetic code"));
    }
    let totals = claims
        .required("totals")?
        .as_array()
        .ok_or_else(|| invalid("totals", "an array"))?;
    let mut grand = totals
        .iter()
        .filter(|t| t.get("type").and_then(Value::as_str) == Some(TOTAL_TYPE));
    let (Some(total), None) = (grand.next(), grand.next()) else {
        return Err(invalid(
            "totals",
            "a list with exactly one entry of type total",
        ));
    };
    let amount = total
        .get("amount")
        .and_then(Value::as_u64)
        .ok_or_else(|| invalid("totals", "a total whose amount is a non-negative integer"))?;
    Ok(Checkout {
        id,
        merchant,
        amount: Amount { amount, currency },
        hash,
    })
}

/// A receipt's `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReceiptStatus {
    /// The payment went through.
    Success,
    /// The payment failed.
    Error,
}

impl std::fmt::Display for ReceiptStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Success => "Success",
            Self::Error => "Error",
        })
    }
}

/// How a payment ended, with the members its status requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `status` `Success`.
    Success {
        /// The transaction's confirmation id at the payment service provider.
        psp_confirmation_id: String,
        /// The transaction's confirmation id at the network.
        network_confirmation_id: String,
    },
    /// `status` `Error`.
    Error {
        /// The error code.
        error: String,
        /// A human-readable description of the error.
        error_description: String,
    },
}

/// An AP2 payment receipt (`payment_receipt.json`). On the wire its members are flat, `status`
/// among them; here the status and the members only it allows form the [`Outcome`], so a
/// success without confirmation ids cannot be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentReceipt {
    /// Who issued the receipt. AP2's SDK writes the PISP's domain name, or `""` without one.
    pub iss: String,
    /// When it was issued, Unix seconds.
    pub iat: i64,
    /// The hash of the closed payment mandate it answers (see [`receipt_reference`]).
    pub reference: String,
    /// The payment's identifier.
    pub payment_id: String,
    /// The status and the members that go with it.
    pub outcome: Outcome,
}

impl PaymentReceipt {
    /// The receipt's `status`.
    pub fn status(&self) -> ReceiptStatus {
        match self.outcome {
            Outcome::Success { .. } => ReceiptStatus::Success,
            Outcome::Error { .. } => ReceiptStatus::Error,
        }
    }
}

/// The receipt's members as they travel.
#[derive(Serialize)]
struct WireReceipt<'a> {
    status: ReceiptStatus,
    iss: &'a str,
    iat: i64,
    reference: &'a str,
    payment_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    psp_confirmation_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    network_confirmation_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_description: Option<&'a str>,
}

/// Serializes as the flat JSON object of `payment_receipt.json`, the JWT payload.
impl Serialize for PaymentReceipt {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (psp, network, error, description) = match &self.outcome {
            Outcome::Success {
                psp_confirmation_id,
                network_confirmation_id,
            } => (
                Some(psp_confirmation_id.as_str()),
                Some(network_confirmation_id.as_str()),
                None,
                None,
            ),
            Outcome::Error {
                error,
                error_description,
            } => (
                None,
                None,
                Some(error.as_str()),
                Some(error_description.as_str()),
            ),
        };
        WireReceipt {
            status: self.status(),
            iss: &self.iss,
            iat: self.iat,
            reference: &self.reference,
            payment_id: &self.payment_id,
            psp_confirmation_id: psp,
            network_confirmation_id: network,
            error,
            error_description: description,
        }
        .serialize(serializer)
    }
}

/// Verifies a payment provider's receipt JWT under the provider's key and checks that it
/// answers the closed mandate whose reference is `expected_reference` (see
/// [`receipt_reference`]).
///
/// Checks, in order: the JWS (ES256, `typ` `JWT` or absent, the signature under
/// `provider_key`); `status`, `iss`, `iat`, `reference` and `payment_id`; for `Success`,
/// `psp_confirmation_id` and `network_confirmation_id`, for `Error`, `error` and
/// `error_description`. The schema says the members of one status appear only with it, so a
/// member of the other status is refused; `null` counts as absent (AP2's SDK writes the
/// other status's members as `null`). Last, `reference` must equal `expected_reference`.
pub fn verify_receipt(
    receipt_jwt: &str,
    provider_key: &PublicKey,
    expected_reference: &str,
) -> Result<PaymentReceipt, Ap2Error> {
    let claims = verify_jwt(receipt_jwt, provider_key, Document::Receipt)?;
    let receipt = read_receipt(&Claims {
        map: &claims,
        document: Document::Receipt,
    })?;
    if receipt.reference != expected_reference {
        return Err(Ap2Error::Reference {
            expected: expected_reference.to_string(),
            found: receipt.reference,
        });
    }
    Ok(receipt)
}

/// Reads the members of a receipt payload whose signature has been checked.
fn read_receipt(claims: &Claims<'_>) -> Result<PaymentReceipt, Ap2Error> {
    let status = match claims.required("status")?.as_str() {
        Some("Success") => ReceiptStatus::Success,
        Some("Error") => ReceiptStatus::Error,
        _ => {
            return Err(Ap2Error::Invalid {
                document: Document::Receipt,
                member: "status",
                expected: "Success or Error",
            });
        }
    };
    let iss = claims.string("iss")?;
    let iat = claims.optional_integer("iat")?.ok_or(Ap2Error::Missing {
        document: Document::Receipt,
        member: "iat",
    })?;
    let reference = claims.string("reference")?;
    let payment_id = claims.string("payment_id")?;
    let (required, refused) = match status {
        ReceiptStatus::Success => (
            ["psp_confirmation_id", "network_confirmation_id"],
            ["error", "error_description"],
        ),
        ReceiptStatus::Error => (
            ["error", "error_description"],
            ["psp_confirmation_id", "network_confirmation_id"],
        ),
    };
    if let Some(member) = refused
        .into_iter()
        .find(|m| claims.map.get(*m).is_some_and(|v| !v.is_null()))
    {
        return Err(Ap2Error::Unexpected { member, status });
    }
    let [first, second] = required;
    let (first, second) = (claims.string(first)?, claims.string(second)?);
    let outcome = match status {
        ReceiptStatus::Success => Outcome::Success {
            psp_confirmation_id: first,
            network_confirmation_id: second,
        },
        ReceiptStatus::Error => Outcome::Error {
            error: first,
            error_description: second,
        },
    };
    Ok(PaymentReceipt {
        iss,
        iat,
        reference,
        payment_id,
        outcome,
    })
}

/// The `reference` a payment receipt carries for a closed mandate, computed as AP2's SDK and
/// samples compute it: base64url SHA-256 of the leaf hop's issuer-signed JWT alone, the text
/// after the last `~~` up to its first `~` (`MandateClient.get_closed_mandate_jwt`, then
/// `compute_sha256_b64url`). `presentation` may be the whole delegation chain as presented or
/// just the leaf JWT: both give the same reference.
///
/// The specification reads differently. `agent_authorization.md` (Mandate Receipt) says the
/// reference is a hash over the final SD-JWT of the chain "calculated in the same manner as
/// `sd_hash`", which would cover the leaf's disclosures as well (its `<jwt>~<disclosures>~`,
/// [`sdjwt::Segment::sd_hash`]) and use the SD-JWT's `_sd_alg`. AP2's SDK chose the JWT alone so
/// the reference does not change with the disclosures presented. Receipts made by AP2 follow the
/// SDK, so this function does too; the two readings agree only for a leaf without disclosures,
/// which AP2's leaves never are.
pub fn receipt_reference(presentation: &str) -> String {
    let leaf = presentation.rsplit("~~").next().unwrap_or(presentation);
    let jwt = leaf.split('~').next().unwrap_or(leaf);
    sdjwt::digest(jwt)
}

/// Checks the JWS (ES256, `typ` `JWT` or none, the signature) and returns the payload's members.
fn verify_jwt(
    jwt: &str,
    key: &PublicKey,
    document: Document,
) -> Result<Map<String, Value>, Ap2Error> {
    let jose = |source| Ap2Error::Jose { document, source };
    let (_, payload) = jose::verify_with(jwt, key, |header| match header.get("typ") {
        None => Ok(()),
        Some(Value::String(typ)) if typ.eq_ignore_ascii_case(JWT_TYP) => Ok(()),
        Some(other) => Err(JoseError::Type {
            expected: JWT_TYP.into(),
            found: other
                .as_str()
                .map_or_else(|| other.to_string(), str::to_string),
        }),
    })
    .map_err(jose)?;
    serde_json::from_slice(&payload).map_err(|_| Ap2Error::Payload { document })
}

/// A verified payload's members, read with errors that name the document and the member.
struct Claims<'a> {
    map: &'a Map<String, Value>,
    document: Document,
}

impl Claims<'_> {
    /// A member that must be present and not `null`.
    fn required(&self, member: &'static str) -> Result<&Value, Ap2Error> {
        match self.map.get(member) {
            None | Some(Value::Null) => Err(Ap2Error::Missing {
                document: self.document,
                member,
            }),
            Some(value) => Ok(value),
        }
    }

    /// A required string member.
    fn string(&self, member: &'static str) -> Result<String, Ap2Error> {
        self.required(member)?
            .as_str()
            .map(str::to_string)
            .ok_or(Ap2Error::Invalid {
                document: self.document,
                member,
                expected: "a string",
            })
    }

    /// An integer member that may be absent (or `null`).
    fn optional_integer(&self, member: &'static str) -> Result<Option<i64>, Ap2Error> {
        match self.map.get(member) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => value.as_i64().map(Some).ok_or(Ap2Error::Invalid {
                document: self.document,
                member,
                expected: "an integer",
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
    use super::*;
    use crate::jose::Jwk;
    use p256::ecdsa::signature::hazmat::PrehashSigner;
    use p256::ecdsa::{Signature, SigningKey};
    use serde_json::json;
    use sha2::{Digest, Sha256};

    fn key(seed: u8) -> (SigningKey, PublicKey) {
        let sk = SigningKey::from_slice(&[seed; 32]).unwrap();
        let pk = PublicKey::from_sec1(sk.verifying_key().to_sec1_point(false).as_bytes()).unwrap();
        (sk, pk)
    }

    /// A compact JWS over `payload` with exactly the header members given.
    fn sign(header: &Value, payload: &impl Serialize, sk: &SigningKey) -> String {
        let mut text = jose::b64url(header.to_string().as_bytes());
        text.push('.');
        text.push_str(&jose::b64url(&serde_json::to_vec(payload).unwrap()));
        let sig: Signature = sk.sign_prehash(&Sha256::digest(text.as_bytes())).unwrap();
        text.push('.');
        text.push_str(&jose::b64url(&sig.to_bytes()));
        text
    }

    fn jwt_header() -> Value {
        json!({"alg": "ES256", "typ": "JWT", "kid": "merchant-key-1"})
    }

    /// A checkout shaped as AP2's sample merchant makes it (`merchant_agent/tools.py`).
    fn checkout_payload() -> Value {
        json!({
            "id": "cart-7",
            "merchant": {"id": "merchant_1", "name": "Demo Merchant",
                         "website": "https://demo-merchant.example"},
            "line_items": [{"id": "li_0",
                            "item": {"id": "sku-1", "title": "Gold Sneaker", "price": 19900},
                            "quantity": 1,
                            "totals": [{"type": "subtotal", "amount": 19900},
                                       {"type": "total", "amount": 19900}]}],
            "status": "incomplete",
            "currency": "USD",
            "totals": [{"type": "subtotal", "amount": 19900},
                       {"type": "total", "amount": 19900}],
            "links": [{"type": "privacy_policy", "url": "https://demo-merchant.example/privacy"}],
            "iat": 1_000,
            "exp": 4_600,
        })
    }

    /// The checkout JWT inside the closed checkout mandate of AP2's `checkout_mandate.md`.
    const DOC_CHECKOUT_JWT: &str = include_str!("../../tests/vectors/ap2/checkout_mandate_doc.jwt");

    #[test]
    fn the_checkout_hash_of_the_spec_example_is_the_one_its_mandates_carry() {
        // `checkout_hash` of the closed checkout mandate and `transaction_id` of the closed
        // payment mandate in AP2's documentation.
        assert_eq!(
            checkout_hash(DOC_CHECKOUT_JWT.trim_end()),
            "NivWhuqfzcvZNapvIEJ2-3tsdQLkiuIcye2g46WVgX8"
        );
    }

    #[test]
    fn the_spec_example_checkout_reads_as_its_merchant_and_total() {
        let jwt = DOC_CHECKOUT_JWT.trim_end();
        // No key is published for it: the signature cannot be checked, the members can.
        let payload = jwt.split('.').nth(1).unwrap();
        let map: Map<String, Value> =
            serde_json::from_slice(&jose::b64url_decode(payload).unwrap()).unwrap();
        let claims = Claims {
            map: &map,
            document: Document::Checkout,
        };
        let checkout = read_checkout(&claims, checkout_hash(jwt)).unwrap();
        assert_eq!(checkout.id, "09414145-b70b-483a-b85c-aa0fa0c45800");
        assert_eq!(checkout.merchant.id, "merchant_1");
        assert_eq!(checkout.merchant.name, "Demo Merchant");
        assert_eq!(
            checkout.amount,
            Amount {
                amount: 19900,
                currency: "USD".into()
            }
        );
        assert_eq!(checkout.hash, "NivWhuqfzcvZNapvIEJ2-3tsdQLkiuIcye2g46WVgX8");
        let (_, someone) = key(9);
        assert!(matches!(
            verify_checkout(jwt, &someone, 0),
            Err(Ap2Error::Jose {
                document: Document::Checkout,
                source: JoseError::Signature
            })
        ));
    }

    #[test]
    fn a_signed_checkout_verifies_and_reads() {
        let (sk, pk) = key(1);
        let jwt = sign(&jwt_header(), &checkout_payload(), &sk);
        let checkout = verify_checkout(&jwt, &pk, 2_000).unwrap();
        assert_eq!(checkout.id, "cart-7");
        assert_eq!(
            checkout.merchant.website.as_deref(),
            Some("https://demo-merchant.example")
        );
        assert_eq!(checkout.amount.amount, 19900);
        assert_eq!(checkout.amount.currency, "USD");
        assert_eq!(checkout.hash, checkout_hash(&jwt));
        // Without kid, without typ, typ in lower case, and without exp: all accepted.
        for header in [
            json!({"alg": "ES256", "typ": "JWT"}),
            json!({"alg": "ES256"}),
            json!({"alg": "ES256", "typ": "jwt"}),
        ] {
            let jwt = sign(&header, &checkout_payload(), &sk);
            assert!(verify_checkout(&jwt, &pk, 2_000).is_ok(), "{header}");
        }
        let mut payload = checkout_payload();
        payload.as_object_mut().unwrap().remove("exp");
        let jwt = sign(&jwt_header(), &payload, &sk);
        assert!(verify_checkout(&jwt, &pk, i64::MAX).is_ok());
    }

    #[test]
    fn a_checkout_is_refused_for_its_signature_key_and_type() {
        let (sk, pk) = key(1);
        let (_, other) = key(2);
        let jwt = sign(&jwt_header(), &checkout_payload(), &sk);
        let bad_signature = || Ap2Error::Jose {
            document: Document::Checkout,
            source: JoseError::Signature,
        };
        // Another key.
        assert_eq!(
            verify_checkout(&jwt, &other, 2_000).unwrap_err(),
            bad_signature()
        );
        // A signature edited in its middle.
        let (head, sig) = jwt.rsplit_once('.').unwrap();
        let mut sig = sig.to_string();
        let flipped = if sig.as_bytes()[20] == b'A' { "B" } else { "A" };
        sig.replace_range(20..21, flipped);
        assert_eq!(
            verify_checkout(&format!("{head}.{sig}"), &pk, 2_000).unwrap_err(),
            bad_signature()
        );
        // A payload changed under the merchant's signature (a lower total).
        let mut cheaper = checkout_payload();
        cheaper["totals"][1]["amount"] = json!(100);
        let parts: Vec<&str> = jwt.split('.').collect();
        let cheaper = jose::b64url(cheaper.to_string().as_bytes());
        assert_eq!(
            verify_checkout(&format!("{}.{cheaper}.{}", parts[0], parts[2]), &pk, 2_000)
                .unwrap_err(),
            bad_signature()
        );
        // Another type of JWT: an SD-JWT hop is not a checkout.
        let hop = sign(
            &json!({"alg": "ES256", "typ": "kb+sd-jwt"}),
            &checkout_payload(),
            &sk,
        );
        assert!(matches!(
            verify_checkout(&hop, &pk, 2_000),
            Err(Ap2Error::Jose {
                source: JoseError::Type { .. },
                ..
            })
        ));
    }

    #[test]
    fn a_checkout_is_refused_once_expired() {
        let (sk, pk) = key(1);
        let jwt = sign(&jwt_header(), &checkout_payload(), &sk);
        assert!(verify_checkout(&jwt, &pk, 4_599).is_ok());
        assert_eq!(
            verify_checkout(&jwt, &pk, 4_600).unwrap_err(),
            Ap2Error::Expired {
                exp: 4_600,
                now: 4_600
            }
        );
        let mut payload = checkout_payload();
        payload["exp"] = json!("4600");
        let jwt = sign(&jwt_header(), &payload, &sk);
        assert!(matches!(
            verify_checkout(&jwt, &pk, 0),
            Err(Ap2Error::Invalid { member: "exp", .. })
        ));
    }

    #[test]
    fn a_checkout_without_what_a_payment_needs_is_refused_naming_the_member() {
        let (sk, pk) = key(1);
        let refused = |edit: &dyn Fn(&mut Value)| {
            let mut payload = checkout_payload();
            edit(&mut payload);
            verify_checkout(&sign(&jwt_header(), &payload, &sk), &pk, 2_000).unwrap_err()
        };
        let missing = |member| Ap2Error::Missing {
            document: Document::Checkout,
            member,
        };
        for member in ["id", "merchant", "currency", "totals"] {
            assert_eq!(
                refused(&|p| {
                    p.as_object_mut().unwrap().remove(member);
                }),
                missing(member)
            );
        }
        assert_eq!(
            refused(&|p| p["merchant"] = Value::Null),
            missing("merchant")
        );
        let invalid = |e: Ap2Error| match e {
            Ap2Error::Invalid { member, .. } => member,
            other => panic!("{other}"),
        };
        assert_eq!(
            invalid(refused(&|p| p["merchant"] = json!({"name": "No Id"}))),
            "merchant"
        );
        assert_eq!(invalid(refused(&|p| p["id"] = json!(7))), "id");
        assert_eq!(
            invalid(refused(&|p| p["currency"] = json!("usd"))),
            "currency"
        );
        assert_eq!(invalid(refused(&|p| p["totals"] = json!({}))), "totals");
        // No total, two totals, a negative total, a total in major units.
        assert_eq!(
            invalid(refused(&|p| {
                p["totals"].as_array_mut().unwrap().pop();
            })),
            "totals"
        );
        assert_eq!(
            invalid(refused(&|p| {
                p["totals"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"type": "total", "amount": 1}));
            })),
            "totals"
        );
        assert_eq!(
            invalid(refused(&|p| p["totals"][1]["amount"] = json!(-5))),
            "totals"
        );
        assert_eq!(
            invalid(refused(&|p| p["totals"][1]["amount"] = json!(199.0))),
            "totals"
        );
        // A payload that is not an object.
        assert_eq!(
            verify_checkout(&sign(&jwt_header(), &json!([1]), &sk), &pk, 0).unwrap_err(),
            Ap2Error::Payload {
                document: Document::Checkout
            }
        );
    }

    fn success() -> PaymentReceipt {
        PaymentReceipt {
            iss: "psp.example".into(),
            iat: 1_000,
            reference: "ref-of-the-closed-mandate".into(),
            payment_id: "pay-1".into(),
            outcome: Outcome::Success {
                psp_confirmation_id: "psp-1".into(),
                network_confirmation_id: "net-1".into(),
            },
        }
    }

    fn failure() -> PaymentReceipt {
        PaymentReceipt {
            outcome: Outcome::Error {
                error: "insufficient_funds".into(),
                error_description: "The card was declined.".into(),
            },
            ..success()
        }
    }

    #[test]
    fn receipts_of_both_statuses_verify_and_serialize_flat() {
        let (sk, pk) = key(4);
        for receipt in [success(), failure()] {
            let jwt = sign(&jwt_header(), &receipt, &sk);
            let got = verify_receipt(&jwt, &pk, "ref-of-the-closed-mandate").unwrap();
            assert_eq!(got, receipt);
        }
        assert_eq!(
            serde_json::to_value(success()).unwrap(),
            json!({"status": "Success", "iss": "psp.example", "iat": 1000,
                   "reference": "ref-of-the-closed-mandate", "payment_id": "pay-1",
                   "psp_confirmation_id": "psp-1", "network_confirmation_id": "net-1"})
        );
        assert_eq!(failure().status(), ReceiptStatus::Error);
        assert_eq!(
            serde_json::to_value(failure()).unwrap()["error_description"],
            "The card was declined."
        );
        // The other status's members as null, as AP2's SDK writes them, are absent.
        let mut wire = serde_json::to_value(success()).unwrap();
        wire["error"] = Value::Null;
        wire["error_description"] = Value::Null;
        let jwt = sign(&jwt_header(), &wire, &sk);
        assert_eq!(
            verify_receipt(&jwt, &pk, "ref-of-the-closed-mandate").unwrap(),
            success()
        );
    }

    #[test]
    fn a_receipt_is_refused_for_its_signature_key_reference_and_members() {
        let (sk, pk) = key(4);
        let (_, other) = key(5);
        let reference = "ref-of-the-closed-mandate";
        let jwt = sign(&jwt_header(), &success(), &sk);
        let bad_signature = Ap2Error::Jose {
            document: Document::Receipt,
            source: JoseError::Signature,
        };
        assert_eq!(
            verify_receipt(&jwt, &other, reference).unwrap_err(),
            bad_signature
        );
        let (head, _) = jwt.rsplit_once('.').unwrap();
        let foreign = sign(&jwt_header(), &success(), &key(5).0);
        let (_, foreign_sig) = foreign.rsplit_once('.').unwrap();
        assert_eq!(
            verify_receipt(&format!("{head}.{foreign_sig}"), &pk, reference).unwrap_err(),
            bad_signature
        );
        assert_eq!(
            verify_receipt(&jwt, &pk, "another-mandate").unwrap_err(),
            Ap2Error::Reference {
                expected: "another-mandate".into(),
                found: reference.into()
            }
        );

        let refused = |receipt: &PaymentReceipt, edit: &dyn Fn(&mut Value)| {
            let mut wire = serde_json::to_value(receipt).unwrap();
            edit(&mut wire);
            verify_receipt(&sign(&jwt_header(), &wire, &sk), &pk, reference).unwrap_err()
        };
        let missing = |member| Ap2Error::Missing {
            document: Document::Receipt,
            member,
        };
        for member in [
            "status",
            "iss",
            "iat",
            "reference",
            "payment_id",
            "psp_confirmation_id",
            "network_confirmation_id",
        ] {
            let got = refused(&success(), &|w| {
                w.as_object_mut().unwrap().remove(member);
            });
            assert_eq!(got, missing(member), "{member}");
        }
        for member in ["error", "error_description"] {
            let got = refused(&failure(), &|w| {
                w.as_object_mut().unwrap().remove(member);
            });
            assert_eq!(got, missing(member), "{member}");
        }
        // A member of the other status.
        assert_eq!(
            refused(&success(), &|w| w["error"] = json!("late")),
            Ap2Error::Unexpected {
                member: "error",
                status: ReceiptStatus::Success
            }
        );
        assert_eq!(
            refused(&failure(), &|w| w["network_confirmation_id"] = json!("n")),
            Ap2Error::Unexpected {
                member: "network_confirmation_id",
                status: ReceiptStatus::Error
            }
        );
        // The Mandate Receipt prose spells the status in lower case; the schema does not.
        assert!(matches!(
            refused(&success(), &|w| w["status"] = json!("success")),
            Ap2Error::Invalid {
                member: "status",
                ..
            }
        ));
        assert!(matches!(
            refused(&success(), &|w| w["iat"] = json!("1000")),
            Ap2Error::Invalid { member: "iat", .. }
        ));
    }

    #[test]
    fn the_receipt_reference_is_the_leaf_jwt_alone() {
        let chain = "aaa.bbb.ccc~d1~d2~~hop.jwt.sig~d3~~leaf.jwt.sig~d4~d5~";
        let reference = receipt_reference(chain);
        assert_eq!(reference, sdjwt::digest("leaf.jwt.sig"));
        assert_eq!(receipt_reference("leaf.jwt.sig"), reference);
        assert_eq!(receipt_reference("leaf.jwt.sig~"), reference);
        assert_eq!(receipt_reference("x.y.z~d~~leaf.jwt.sig~other~"), reference);
    }

    /// Checkouts, a payment chain and receipts made by AP2's own SDK
    /// (`tests/by-hand/ap2_receipt.py`), frozen in `tests/vectors/ap2/receipt_checkout.json`.
    #[test]
    fn checkouts_and_receipts_made_by_the_ap2_sdk_verify() {
        let set: Value = serde_json::from_str(include_str!(
            "../../tests/vectors/ap2/receipt_checkout.json"
        ))
        .unwrap();
        let public = |name: &str| -> PublicKey {
            let jwk: Jwk = serde_json::from_value(set["keys"][name].clone()).unwrap();
            jwk.to_public_key().unwrap()
        };
        let (merchant, provider) = (public("merchant"), public("provider"));
        let made_at = set["made_at"].as_i64().unwrap();

        for c in set["checkouts"].as_array().unwrap() {
            let name = c["name"].as_str().unwrap();
            let jwt = c["checkout_jwt"].as_str().unwrap();
            let got =
                verify_checkout(jwt, &merchant, made_at).unwrap_or_else(|e| panic!("{name}: {e}"));
            let want = &c["expected"];
            assert_eq!(got.hash, c["checkout_hash"].as_str().unwrap(), "{name}");
            assert_eq!(got.id, want["id"].as_str().unwrap(), "{name}");
            assert_eq!(
                serde_json::to_value(&got.merchant).unwrap(),
                want["merchant"],
                "{name}"
            );
            assert_eq!(
                serde_json::to_value(&got.amount).unwrap(),
                want["amount"],
                "{name}"
            );
            assert!(verify_checkout(jwt, &provider, made_at).is_err(), "{name}");
            if let Some(exp) = c["exp"].as_i64() {
                assert_eq!(
                    verify_checkout(jwt, &merchant, exp).unwrap_err(),
                    Ap2Error::Expired { exp, now: exp },
                    "{name}"
                );
            }
        }

        // The SDK's reference for the payment chain, and how the spec's reading differs.
        let chain = set["payment_chain"].as_str().unwrap();
        let reference = receipt_reference(chain);
        assert_eq!(reference, set["reference"].as_str().unwrap());
        let leaf = sdjwt::split(chain).unwrap().pop().unwrap();
        assert_eq!(reference, leaf.issuer_jwt_hash());
        assert_eq!(
            leaf.sd_hash(),
            set["reference_spec_reading"].as_str().unwrap()
        );
        assert_ne!(reference, leaf.sd_hash());
        // The chain's closed mandate names the first checkout by its hash.
        let closed = leaf
            .disclosures
            .iter()
            .map(|d| sdjwt::Disclosure::parse(d).unwrap().value)
            .find(|v| v.get("transaction_id").is_some())
            .unwrap();
        assert_eq!(
            closed["transaction_id"],
            set["checkouts"][0]["checkout_hash"]
        );

        for r in set["receipts"].as_array().unwrap() {
            let name = r["name"].as_str().unwrap();
            let jwt = r["receipt_jwt"].as_str().unwrap();
            let got = verify_receipt(jwt, &provider, &reference)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(
                got.status().to_string(),
                r["status"].as_str().unwrap(),
                "{name}"
            );
            assert!(
                verify_receipt(jwt, &merchant, &reference).is_err(),
                "{name}"
            );
            assert!(matches!(
                verify_receipt(jwt, &provider, &leaf.sd_hash()),
                Err(Ap2Error::Reference { .. })
            ));
        }
    }
}
