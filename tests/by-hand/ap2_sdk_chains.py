"""By hand (AP2's SDK is not on PyPI at v0.2, so not in CI): payment mandate chains of depth 2, 3
and 4 made entirely by AP2 v0.2's own SDK, with real AP2 constraints, written with the public
keys as a fixture (`tests/vectors/ap2/sdk_payment_chains.json`) that ARI's verifier can read
offline.

    cd <AP2 checkout, v0.2.0 or later> && PYTHONPATH=code/sdk/python <venv with cryptography,
        jwcrypto, pydantic, sd-jwt>/bin/python <this repository>/tests/by-hand/ap2_sdk_chains.py \\
        <this repository>/tests/vectors/ap2/sdk_payment_chains.json <AP2 commit>

How AP2's SDK makes each part (code/sdk/python/ap2/sdk/):
- the root: `MandateClient.create(payloads=[OpenPaymentMandate], issuer_key)` (mandate.py), which
  is `sdjwt/sd_jwt.create`: the open mandate is the one array-element disclosure of
  `delegate_payload`; `payment.allowed_payees.allowed[*]` and
  `payment.allowed_payment_instruments.allowed[*]` become element disclosures of their own (the
  schema's `x-selectively-disclosable-array`, read by `DisclosureMetadata.from_model`).
- every later hop: `MandateClient.present(holder_key, mandate_token, payloads=[...], aud, nonce,
  hash_mode)`, which is `sdjwt/kb_sd_jwt.create`. The hop's `typ` follows from the payload: an
  open mandate with `cnf` makes an intermediate `kb+sd-jwt+kb`, a closed mandate (no `cnf`) the
  terminal `kb+sd-jwt`. `hash_mode` ('sd_hash', the default, or 'issuer_jwt_hash') picks the
  binding to the preceding segment (`common.compute_binding`). `present` parses `mandate_token` as
  ONE SD-JWT (a `~~`-joined chain fails: "empty disclosure segment"), so for depth 3 and 4 the
  last segment is presented and the result spliced back after the earlier segments, the same
  join AP2's own multi-hop tests and golden-vector generator do by hand
  (chain_tests.py::test_three_step_bank_sa_cp_merchant_flow, generate_vectors.py).
- `payment.agent_recurrence`: `create`/`present` dump models without `mode='json'`, so the
  `Frequency` enum is not JSON-serializable (TypeError). Worked around inside pydantic: a
  subclass of AP2's `AgentRecurrence` with `use_enum_values=True`, so the frequency is still
  validated against AP2's enum but kept as the plain string "ON_DEMAND" (pydantic then warns that
  the constraint union got a subclass instance; that warning alone is silenced).
- `payment.reference` is left out: AP2's checker reports it as a violation unless the verifier
  passes an open checkout mandate's hash, and these chains have no checkout mandate.
- `transaction_id` is B64U(SHA-256("checkout:<chain name>")), a placeholder: there is no checkout
  JWT behind it.

One chain (`depth3-issuer-jwt-hash-root-redacted`) is made the same way and then has one root
disclosure (an allowed payee the payment does not use) removed after signing, as AP2's own
issuer_jwt_hash_tests.py does: its first hop binds with issuer_jwt_hash, so it still verifies.

Before writing, the script checks that AP2 accepts every chain (`MandateClient().verify` with the
expected aud and nonce), that `PaymentMandateChain.parse([last open, closed]).verify(
expected_transaction_id=..., mandate_context=MandateContext(total_amount=0, total_uses=0))`
reports no violations (and the same for every earlier open mandate of the chain), and that it refuses a wrong
nonce. Keys are fresh on each run; only public JWKs are written. Open mandates have iat
2026-01-01 and exp 2100-01-01; the SDK sets each hop's iat to the time of the run and no exp.
"""
import base64
import json
import sys
import warnings

from jwcrypto.jwk import JWK
from pydantic import ConfigDict

from ap2.sdk.constraints import MandateContext
from ap2.sdk.generated.open_payment_mandate import (AgentRecurrence, AllowedPayees,
                                                    AllowedPaymentInstruments, AmountRange, Budget,
                                                    Frequency, OpenPaymentMandate)
from ap2.sdk.generated.payment_mandate import PaymentMandate
from ap2.sdk.generated.types.amount import Amount
from ap2.sdk.generated.types.merchant import Merchant
from ap2.sdk.generated.types.payment_instrument import PaymentInstrument
from ap2.sdk.mandate import MandateClient
from ap2.sdk.payment_mandate_chain import PaymentMandateChain
from ap2.sdk.utils import compute_sha256_b64url

out_path, ap2_commit = sys.argv[1], sys.argv[2]

OPEN_IAT = 1767225600  # 2026-01-01T00:00:00Z
OPEN_EXP = 4102444800  # 2100-01-01T00:00:00Z
EXECUTION_DATE = "2026-12-01T10:00:00Z"


class AgentRecurrenceJson(AgentRecurrence):
    """AP2's AgentRecurrence, keeping the validated Frequency as its string value, so that
    MandateClient.create/present can JSON-serialize it (their model_dump has no mode='json')."""
    model_config = ConfigDict(use_enum_values=True)


# Pydantic warns that OpenPaymentMandate's constraint union was handed a subclass instance; it then
# serializes it by its own (subclass) schema, which is the point. Only that warning is silenced.
warnings.filterwarnings("ignore", message="Pydantic serializer warnings", category=UserWarning)


def public(key):
    return json.loads(key.export_public())


def cnf(key):
    return {"jwk": public(key)}


def b64json(segment):
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


M1 = Merchant(id="merchant-1", name="Demo Merchant", website="https://demo-merchant.example")
M2 = Merchant(id="merchant-2", name="Second Shop", website="https://second-shop.example")
M3 = Merchant(id="merchant-3", name="Third Store")
CARD1 = PaymentInstrument(id="card-4242", type="card", description="Visa 4242")
CARD2 = PaymentInstrument(id="card-5555", type="card", description="Mastercard 5555")
DPC = PaymentInstrument(id="dpc-1", type="dpc")


def open_mandate(holder, *, max_minor, budget_major, payees, instruments, uses, min_minor=100):
    return OpenPaymentMandate(
        constraints=[
            AmountRange(currency="USD", min=min_minor, max=max_minor),
            Budget(currency="USD", max=budget_major),
            AllowedPayees(allowed=payees),
            AllowedPaymentInstruments(allowed=instruments),
            AgentRecurrenceJson(frequency=Frequency.ON_DEMAND, max_occurrences=uses),
        ],
        cnf=cnf(holder), iat=OPEN_IAT, exp=OPEN_EXP)


# Each open mandate down the chain narrows the one before it.
LEVELS = [
    dict(max_minor=50000, budget_major=1000, payees=[M1, M2, M3], instruments=[CARD1, CARD2, DPC],
         uses=12),
    dict(max_minor=30000, budget_major=250.5, payees=[M1, M2], instruments=[CARD1, CARD2], uses=6),
    dict(max_minor=20000, budget_major=200, payees=[M1], instruments=[CARD1], uses=3),
]


def closed_mandate(name, amount):
    return PaymentMandate(
        transaction_id=compute_sha256_b64url(f"checkout:{name}"), payee=M1,
        payment_amount=Amount(amount=amount, currency="USD"), payment_instrument=CARD1,
        execution_date=EXECUTION_DATE, risk_data={"device": "by-hand"})


def strip_tilde(s):
    return s[:-1] if s.endswith("~") else s


def make_chain(name, bindings, amount):
    """A chain of len(bindings) + 1 segments: a root open mandate, len(bindings) - 1 delegating
    hops, and a terminal closed mandate; bindings[i] is the hash_mode of hop i + 1."""
    depth = len(bindings) + 1
    keys = [JWK.generate(kty="EC", crv="P-256", kid=f"{name}-{role}")
            for role in ["user"] + [f"agent{i}" for i in range(1, depth)]]
    client = MandateClient()
    segments = [client.create(payloads=[open_mandate(keys[1], **LEVELS[0])], issuer_key=keys[0])]
    hops = []
    aud = nonce = None
    for i, mode in enumerate(bindings, start=1):
        terminal = i == depth - 1
        holder = keys[i]
        payload = (closed_mandate(name, amount) if terminal
                   else open_mandate(keys[i + 1], **LEVELS[i]))
        aud = f"https://merchant.example/{name}" if terminal else f"agent{i + 1}.{name}"
        nonce = f"nonce-{name}-{i}"
        presented = client.present(holder_key=holder, mandate_token=segments[-1],
                                   payloads=[payload], aud=aud, nonce=nonce, hash_mode=mode)
        prev, new = presented.split("~~")
        assert prev == strip_tilde(segments[-1])
        segments.append(new)
        hops.append(dict(typ=b64json(new.split(".")[0])["typ"], signer_kid=holder.kid,
                         binding=mode, aud=aud, nonce=nonce))
    chain = "~~".join([strip_tilde(s) for s in segments[:-1]] + [segments[-1]])
    return chain, keys, hops, aud, nonce


def drop_root_disclosure(chain, merchant_id):
    """Remove the root's disclosure of the allowed payee `merchant_id`."""
    root, rest = chain.split("~~", 1)
    parts = root.split("~")
    kept = [p for p in parts[1:] if b64json(p)[-1] != M_BY_ID[merchant_id]]
    assert len(kept) == len(parts) - 2, "exactly one disclosure dropped"
    return "~".join([parts[0]] + kept) + "~~" + rest


M_BY_ID = {m.id: m.model_dump(exclude_none=True) for m in (M1, M2, M3)}

SPECS = [
    ("depth2-sd-hash", ["sd_hash"], 12345,
     "root open payment mandate -> terminal closed payment mandate; sd_hash"),
    ("depth2-issuer-jwt-hash", ["issuer_jwt_hash"], 4999,
     "root open payment mandate -> terminal closed payment mandate; issuer_jwt_hash"),
    ("depth3-sd-hash", ["sd_hash", "sd_hash"], 19999,
     "root -> one kb+sd-jwt+kb delegation -> terminal; sd_hash on both hops"),
    ("depth3-issuer-jwt-hash", ["issuer_jwt_hash", "issuer_jwt_hash"], 15000,
     "root -> one kb+sd-jwt+kb delegation -> terminal; issuer_jwt_hash on both hops"),
    ("depth3-issuer-jwt-hash-root-redacted", ["issuer_jwt_hash", "sd_hash"], 10000,
     "root -> delegation (issuer_jwt_hash) -> terminal (sd_hash); after signing, the root's "
     "disclosure of allowed payee merchant-3 is removed, which issuer_jwt_hash permits"),
    ("depth4-sd-hash", ["sd_hash", "sd_hash", "sd_hash"], 20000,
     "root -> two kb+sd-jwt+kb delegations -> terminal; sd_hash on every hop; the amount (20000) "
     "is the last open mandate's amount_range max and its whole budget (200.0), both inclusive"),
    ("depth4-mixed", ["issuer_jwt_hash", "sd_hash", "issuer_jwt_hash"], 100,
     "root -> two kb+sd-jwt+kb delegations -> terminal; issuer_jwt_hash, sd_hash, issuer_jwt_hash; "
     "the amount (100) is the amount_range min, inclusive"),
]

chains = []
for name, bindings, amount, description in SPECS:
    chain, keys, hops, aud, nonce = make_chain(name, bindings, amount)
    if name.endswith("root-redacted"):
        chain = drop_root_disclosure(chain, "merchant-3")
    depth = len(bindings) + 1
    assert chain.count("~~") == depth - 1 and chain.endswith("~")
    root_pub = JWK.from_json(json.dumps(public(keys[0])))
    payloads = MandateClient().verify(token=chain, key_or_provider=lambda _t: root_pub,
                                      expected_aud=aud, expected_nonce=nonce)
    assert len(payloads) == depth, payloads
    tx = payloads[-1]["transaction_id"]
    assert tx == compute_sha256_b64url(f"checkout:{name}")
    context = dict(total_amount=0, total_uses=0)
    # AP2's checker takes exactly (open, closed); run it on every open mandate of the chain.
    by_open_hop = [PaymentMandateChain.parse([p, payloads[-1]]).verify(
        expected_transaction_id=tx, mandate_context=MandateContext(**context))
        for p in payloads[:-1]]
    violations, root_violations = by_open_hop[-1], by_open_hop[0]
    assert all(v == [] for v in by_open_hop), (name, by_open_hop)
    try:
        MandateClient().verify(token=chain, key_or_provider=lambda _t: root_pub,
                               expected_aud=aud, expected_nonce=nonce + "-other")
        raise AssertionError(f"{name}: AP2 accepted a wrong nonce")
    except ValueError as e:
        assert "nonce mismatch" in str(e), e
    payees = [c for c in payloads[0]["constraints"] if c["type"] == "payment.allowed_payees"][0]
    if name.endswith("root-redacted"):
        assert [m["id"] for m in payees["allowed"]] == ["merchant-1", "merchant-2"], payees
    print(f"{name}: AP2 accepted {depth} hops ({', '.join(h['binding'] for h in hops)}); "
          f"violations (last open, closed): {violations}; (root open, closed): {root_violations}")
    chains.append(dict(
        name=name, depth=depth, description=description,
        root_public_jwk=public(keys[0]),
        hop_public_jwks=[public(k) for k in keys[1:]],
        hops=hops,
        expected_aud=aud, expected_nonce=nonce, expected_transaction_id=tx,
        mandate_context=context,
        ap2_verdict=dict(accepted=True, hop_count=len(payloads), violations=violations,
                         root_open_violations=root_violations,
                         violations_by_open_hop=by_open_hop, wrong_nonce="rejected"),
        ap2_payloads=payloads,
        mandate=chain,
    ))

fixture = dict(
    generator="tests/by-hand/ap2_sdk_chains.py",
    ap2_commit=ap2_commit,
    note=("Made entirely by AP2's SDK (MandateClient.create / present); public keys only. "
          "`mandate` is the ~~-joined chain; `ap2_payloads` is what MandateClient().verify "
          "returned (one effective payload per hop); `violations` is "
          "PaymentMandateChain.parse([ap2_payloads[-2], ap2_payloads[-1]]).verify("
          "expected_transaction_id, mandate_context=MandateContext(**mandate_context)), "
          "`root_open_violations` the same with ap2_payloads[0], `violations_by_open_hop` with each "
          "open mandate in turn."),
    chains=chains,
)
with open(out_path, "w") as f:
    json.dump(fixture, f, indent=2)
    f.write("\n")
print("wrote", out_path)
