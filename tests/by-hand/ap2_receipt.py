"""By hand (AP2's SDK is not on PyPI at v0.2, so not in CI): AP2 v0.2's own SDK and sample code
paths make merchant checkout JWTs, a payment mandate chain naming one of them, and payment
receipts for that chain; the script writes them with the public keys as a fixture that
`ari_core::ap2`'s tests verify offline (`checkouts_and_receipts_made_by_the_ap2_sdk_verify`).

    cd <AP2 checkout, v0.2.0 or later> && PYTHONPATH=code/sdk/python <venv with cryptography,
        jwcrypto, pydantic, sd-jwt>/bin/python <this repository>/tests/by-hand/ap2_receipt.py \\
        <this repository>/tests/vectors/ap2/receipt_checkout.json <AP2 commit>
    cargo test -p ari-core ap2::tests::checkouts_and_receipts_made_by_the_ap2_sdk

What is made, and how AP2 makes it:
- checkouts: a UCP `Checkout` model (with AP2's `merchant`), dumped with
  `model_dump(mode='json', exclude_none=True)` and signed with `jwt_helper.create_jwt`; one as the
  MCP merchant (`merchant_agent_mcp/server.py`: header without `kid` when the key has none, no
  `exp`), one as the A2A merchant (`merchant_agent/tools.py`: `kid`, `iat` and `exp` one hour on);
  each named by `utils.compute_sha256_b64url(checkout_jwt)`.
- a payment chain: an open payment mandate (`MandateClient.create`) and a closed one presented on
  it (`MandateClient.present`) whose `transaction_id` is the first checkout's hash.
- receipts: the reference `compute_sha256_b64url(MandateClient().get_closed_mandate_jwt(chain))`
  as the payment processor sample computes it; a Success receipt from
  `ReceiptClient.create_payment_receipt`, an Error receipt from the `PaymentReceipt` model, both
  `model_dump()`ed (the other status's members become null) and signed with `create_jwt` under
  the header `{"alg": "ES256", "typ": "JWT", "kid": ...}`.

The script checks that AP2 accepts what it made (`MandateClient.verify`,
`ReceiptClient.verify_receipt`) before writing. Keys are fresh each run; only public JWKs are
written.
"""
import json
import sys
import time

from jwcrypto.jwk import JWK

from ap2.sdk.generated.open_payment_mandate import AmountRange, OpenPaymentMandate, PaymentReference
from ap2.sdk.generated.payment_mandate import PaymentMandate
from ap2.sdk.generated.payment_receipt import PaymentReceipt
from ap2.sdk.generated.types.amount import Amount
from ap2.sdk.generated.types.checkout import Checkout, Status
from ap2.sdk.generated.types.item import Item
from ap2.sdk.generated.types.line_item import LineItem
from ap2.sdk.generated.types.link import Link
from ap2.sdk.generated.types.merchant import Merchant
from ap2.sdk.generated.types.payment_instrument import PaymentInstrument
from ap2.sdk.generated.types.pisp import PISP
from ap2.sdk.generated.types.total import Total
from ap2.sdk.jwt_helper import create_jwt, verify_jwt
from ap2.sdk.mandate import MandateClient
from ap2.sdk.receipt_wrapper import ReceiptClient
from ap2.sdk.sdjwt import compute_sd_hash, parse_token
from ap2.sdk.utils import compute_sha256_b64url

out_path, ap2_commit = sys.argv[1], sys.argv[2]
now = int(time.time())

merchant_key = JWK.generate(kty="EC", crv="P-256")  # no kid, like an MCP merchant key without one
provider_key = JWK.generate(kty="EC", crv="P-256", kid="merchant-payment-processor-key-1")
user_key = JWK.generate(kty="EC", crv="P-256", kid="user-root")
agent_key = JWK.generate(kty="EC", crv="P-256", kid="agent")


def public(key):
    return json.loads(key.export_public())


merchant = Merchant(id="merchant_1", name="Demo Merchant", website="https://demo-merchant.example")


def checkout(cart_id, items, currency):
    """A UCP checkout as AP2's merchant samples build it: per-line and overall totals, minor units."""
    line_items, subtotal = [], 0
    for idx, (sku, title, unit_price, qty) in enumerate(items):
        line_items.append(LineItem(
            id=f"li_{idx}", item=Item(id=sku, title=title, price=unit_price), quantity=qty,
            totals=[Total(type="subtotal", amount=unit_price * qty),
                    Total(type="total", amount=unit_price * qty)]))
        subtotal += unit_price * qty
    return Checkout(
        id=cart_id, merchant=merchant, line_items=line_items, status=Status.incomplete,
        currency=currency,
        totals=[Total(type="subtotal", amount=subtotal), Total(type="total", amount=subtotal)],
        links=[Link(type="privacy_policy", url="https://demo-merchant.example/privacy"),
               Link(type="terms_of_service", url="https://demo-merchant.example/tos")])


checkouts = []
# As merchant_agent_mcp/server.py create_checkout: kid only if the key has one, no iat/exp.
c1 = checkout("cart_mcp_1", [("supershoe_gold_9", "SuperShoe Gold", 19900, 1),
                             ("socks_best", "The Best Socks", 1250, 2)], "USD")
payload = c1.model_dump(mode="json", exclude_none=True)
header = {"alg": "ES256", "typ": "JWT"}
kid = json.loads(merchant_key.export()).get("kid")
if kid:
    header["kid"] = kid
jwt1 = create_jwt(header=header, payload=payload, private_key=merchant_key)
checkouts.append(dict(name="mcp-merchant", checkout_jwt=jwt1, exp=None,
                      checkout_hash=compute_sha256_b64url(jwt1),
                      expected=dict(id=c1.id, merchant=merchant.model_dump(exclude_none=True),
                                    amount=dict(amount=22400, currency="USD"))))
# As merchant_agent/tools.py create_checkout: kid "merchant-key-1", iat and exp now + 1 h.
c2 = checkout("cart_a2a_2", [("yen_item", "A yen-priced item", 4500, 1)], "JPY")
payload = c2.model_dump(mode="json", exclude_none=True)
payload["iat"] = now
payload["exp"] = now + 3600
jwt2 = create_jwt({"alg": "ES256", "typ": "JWT", "kid": "merchant-key-1"}, payload, merchant_key)
checkouts.append(dict(name="a2a-merchant", checkout_jwt=jwt2, exp=now + 3600,
                      checkout_hash=compute_sha256_b64url(jwt2),
                      expected=dict(id=c2.id, merchant=merchant.model_dump(exclude_none=True),
                                    amount=dict(amount=4500, currency="JPY"))))
for c in checkouts:
    assert verify_jwt(c["checkout_jwt"], JWK.from_json(json.dumps(public(merchant_key))))

# The payment chain: open mandate by the user, closed mandate by the agent for checkout 1.
client = MandateClient()
open_checkout_hash = "open-checkout-hash-not-part-of-this-fixture"
open_tok = client.create(
    payloads=[OpenPaymentMandate(
        constraints=[AmountRange(currency="USD", max=50000, min=0),
                     PaymentReference(conditional_transaction_id=open_checkout_hash)],
        cnf={"jwk": public(agent_key)})],
    issuer_key=user_key)
pisp = PISP(legal_name="Example PISP Ltd.", brand_name="ExamplePay", domain_name="pisp.example")
closed = PaymentMandate(
    transaction_id=checkouts[0]["checkout_hash"], payee=merchant,
    payment_amount=Amount(amount=22400, currency="USD"),
    payment_instrument=PaymentInstrument(id="stub", type="card", description="Card 4242"),
    pisp=pisp)
chain = client.present(holder_key=agent_key, mandate_token=open_tok, payloads=[closed],
                       aud="merchant-payment-processor", nonce="nonce-1")
user_pub = JWK.from_json(json.dumps(public(user_key)))
payloads = client.verify(token=chain, key_or_provider=lambda _t: user_pub,
                         expected_aud="merchant-payment-processor", expected_nonce="nonce-1")
assert payloads[-1]["transaction_id"] == checkouts[0]["checkout_hash"]

# The reference as merchant_payment_processor_mcp/server.py computes it, and the spec's reading
# (sd_hash of the final SD-JWT, disclosures included) for comparison.
reference = compute_sha256_b64url(client.get_closed_mandate_jwt(chain))
last = chain.rsplit("~~", 1)[-1]
reference_spec_reading = compute_sd_hash(parse_token(last))

receipts = []
success = ReceiptClient().create_payment_receipt(payment_mandate_content=closed, reference=reference)
error = PaymentReceipt(status="Error", iss=pisp.domain_name, iat=now, reference=reference,
                       payment_id="pay-error-1", error="insufficient_funds",
                       error_description="The issuer declined the payment.")
receipt_header = {"alg": "ES256", "typ": "JWT", "kid": provider_key.kid}
provider_pub = JWK.from_json(json.dumps(public(provider_key)))
for name, model in [("success", success), ("error", error)]:
    jwt = create_jwt(header=receipt_header, payload=model.model_dump(), private_key=provider_key)
    verdict = ReceiptClient().verify_receipt(jwt, provider_pub,
                                             has_reference_in_store_cb=lambda r: r == reference)
    assert verdict == {"verified": True}, verdict
    receipts.append(dict(name=name, status=model.root.status, receipt_jwt=jwt))

fixture = dict(
    generator="tests/by-hand/ap2_receipt.py",
    ap2_commit=ap2_commit,
    made_at=now,
    keys=dict(merchant=public(merchant_key), provider=public(provider_key),
              user=public(user_key), agent=public(agent_key)),
    checkouts=checkouts,
    payment_chain=chain,
    reference=reference,
    reference_spec_reading=reference_spec_reading,
    receipts=receipts,
)
with open(out_path, "w") as f:
    json.dump(fixture, f, indent=2)
    f.write("\n")
for c in checkouts:
    print(f"checkout {c['name']}: {c['checkout_jwt']}\n  hash {c['checkout_hash']}")
for r in receipts:
    print(f"receipt {r['name']}: {r['receipt_jwt']}")
print("merchant JWK:", json.dumps(public(merchant_key)))
print("provider JWK:", json.dumps(public(provider_key)))
print("reference (SDK):", reference, " spec reading:", reference_spec_reading)
print("wrote", out_path)
