"""By hand (AP2's SDK is not on PyPI at v0.2, so not in CI): AP2 v0.2's own SDK as the oracle for
payment mandate chains the daemon (ARI) emits.

Input: a JSON file
    {"issuer_jwk": {public P-256 JWK of the daemon's issuer key},
     "chains": [{"name": str, "mandate": "<~~-joined chain>", "aud": str, "nonce": str,
                 "transaction_id": str}, ...]}
(a chain may carry its own "issuer_jwk", which then wins over the top-level one).

    cd <AP2 checkout, v0.2.0 or later> && PYTHONPATH=code/sdk/python <venv with cryptography,
        jwcrypto, pydantic, sd-jwt>/bin/python <this repository>/tests/by-hand/ap2_verify_daemon.py \\
        /tmp/daemon-chains.json

To run it on the chains AP2's SDK made (tests/vectors/ap2/sdk_payment_chains.json), convert them:

    jq '{issuer_jwk: .chains[0].root_public_jwk, chains: [.chains[] | {name, mandate,
        issuer_jwk: .root_public_jwk, aud: .expected_aud, nonce: .expected_nonce,
        transaction_id: .expected_transaction_id}]}' \\
        <this repository>/tests/vectors/ap2/sdk_payment_chains.json > /tmp/sdk-chains.json

For each chain, one line per check:
1. `MandateClient().verify(token, key_or_provider=lambda _t: issuer_jwk, expected_aud=aud,
   expected_nonce=nonce)` accepts it (signatures, typ, cnf walk, sd_hash/issuer_jwt_hash
   binding, terminal aud/nonce/iat, exp/iat times).
2. AP2's payment-chain checker: `PaymentMandateChain.parse([last open mandate, closed mandate])
   .verify(expected_transaction_id=transaction_id, mandate_context=MandateContext(total_amount=0,
   total_uses=0))` reports no violation. `parse` takes exactly two payloads, so for chains with
   delegation hops the last open mandate (the one the terminal hop's signer was delegated) is
   used; every earlier open mandate (the root's first) is then checked against the closed mandate
   the same way, and must report none either.
3. AP2 refuses tampered copies: a flipped character in the last hop's signature; a wrong nonce; a
   wrong audience; and the root presented without one of its disclosures (a payee or instrument
   element if there is one), which changes what the first hop's `sd_hash` covers. If the first
   hop binds with `issuer_jwt_hash` instead, dropping a root disclosure is allowed by design, so
   there the dropped copy must be accepted, and the line says so.

Exit status 0 only if every check of every chain went as expected.
"""
import base64
import json
import sys

from jwcrypto.jwk import JWK

from ap2.sdk.constraints import MandateContext
from ap2.sdk.mandate import MandateClient
from ap2.sdk.payment_mandate_chain import PaymentMandateChain

data = json.load(open(sys.argv[1]))
failures = 0


def b64json(segment):
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def check(ok, name, text):
    global failures
    failures += not ok
    print(f"{'ok  ' if ok else 'FAIL'} {name}: {text}")


def verify(token, key, aud, nonce):
    return MandateClient().verify(token=token, key_or_provider=lambda _t: key,
                                  expected_aud=aud, expected_nonce=nonce)


def flip_last_signature(chain):
    head, last = chain.rsplit("~~", 1) if "~~" in chain else ("", chain)
    jwt, rest = last.split("~", 1)
    h, p, sig = jwt.split(".")
    sig = sig[:10] + ("A" if sig[10] != "A" else "B") + sig[11:]
    return (head + "~~" if head else "") + f"{h}.{p}.{sig}~{rest}"


def drop_root_disclosure(chain):
    """The chain with one root disclosure removed, and a description of it. Prefers an element
    disclosure that is not the mandate itself (a payee or instrument)."""
    root, rest = chain.split("~~", 1)
    parts = root.split("~")
    disclosures = [d for d in parts[1:] if d]
    if not disclosures:
        return None, "the root has no disclosure", False
    decoded = [b64json(d) for d in disclosures]
    others = [i for i, v in enumerate(decoded) if not (isinstance(v[-1], dict) and "vct" in v[-1])]
    i = others[-1] if others else len(disclosures) - 1
    value = decoded[i][-1]
    what = (json.dumps(value)[:60] if others else "the mandate item itself (the root has no other)")
    kept = disclosures[:i] + disclosures[i + 1:]
    return "~".join([parts[0]] + kept) + "~~" + rest, what, bool(others)


for entry in data["chains"]:
    name, chain = entry["name"], entry["mandate"]
    aud, nonce, tx = entry["aud"], entry["nonce"], entry["transaction_id"]
    key = JWK.from_json(json.dumps(entry.get("issuer_jwk", data.get("issuer_jwk"))))
    segments = chain.split("~~")
    headers = [b64json(s.split(".")[0]) for s in segments]
    bodies = [b64json(s.split(".")[1]) for s in segments]
    bindings = ["sd_hash" if "sd_hash" in b else "issuer_jwt_hash" if "issuer_jwt_hash" in b
                else "none" for b in bodies[1:]]
    print(f"== {name}: {len(segments)} segments, typ {[h.get('typ') for h in headers]}, "
          f"bindings {bindings}")

    # 1. AP2 accepts the chain.
    try:
        payloads = verify(chain, key, aud, nonce)
        check(len(payloads) == len(segments), name,
              f"AP2 MandateClient().verify accepted it: {len(payloads)} payloads, "
              f"vct {[p.get('vct') for p in payloads]}")
    except Exception as e:
        payloads = None
        check(False, name, f"AP2 MandateClient().verify refused it: {type(e).__name__}: {e}")

    # 2. AP2's constraint checker on (last open, closed), then on each earlier open mandate.
    if payloads is not None and len(payloads) >= 2:
        context = MandateContext(total_amount=0, total_uses=0)
        for idx in range(len(payloads) - 2, -1, -1):
            label = ("last open mandate" if idx == len(payloads) - 2
                     else "root open mandate" if idx == 0 else f"open mandate of segment {idx}")
            try:
                violations = PaymentMandateChain.parse([payloads[idx], payloads[-1]]).verify(
                    expected_transaction_id=tx, mandate_context=context)
                check(violations == [], name,
                      f"AP2 PaymentMandateChain.verify ({label} vs closed, transaction_id, "
                      f"MandateContext(0, 0)): violations {violations}")
            except Exception as e:
                check(False, name, f"AP2 PaymentMandateChain.parse ({label} vs closed) failed: "
                      f"{type(e).__name__}: {str(e)[:300]}")
    elif payloads is not None:
        check(False, name, "no closed mandate: the chain has a single segment")

    # 3. Tampered copies.
    def refused(label, token, a, n, why=None):
        try:
            verify(token, key, a, n)
            check(False, name, f"AP2 accepted the copy with {label}")
        except Exception as e:
            msg = f"{type(e).__name__}: {str(e)[:120]}"
            check(why is None or why in str(e), name, f"AP2 refused the copy with {label} ({msg})")

    refused("a flipped character in the last hop's signature", flip_last_signature(chain), aud,
            nonce)
    refused("a wrong nonce", chain, aud, nonce + "-wrong", "nonce mismatch")
    refused("a wrong audience", chain, aud + "-wrong", nonce, "aud mismatch")
    if len(segments) >= 2:
        dropped, what, element = drop_root_disclosure(chain)
        if dropped is None:
            check(False, name, f"cannot drop a root disclosure: {what}")
        elif bindings[0] == "sd_hash":
            refused(f"a root disclosure dropped ({what})", dropped, aud, nonce, "sd_hash mismatch")
        elif bindings[0] == "issuer_jwt_hash" and element:
            try:
                verify(dropped, key, aud, nonce)
                check(True, name, f"AP2 accepted the copy with a root disclosure dropped ({what}), "
                      "as issuer_jwt_hash allows")
            except Exception as e:
                check(False, name, f"AP2 refused the copy with a root disclosure dropped ({what}) "
                      f"under issuer_jwt_hash: {type(e).__name__}: {str(e)[:120]}")
        else:
            refused(f"a root disclosure dropped ({what})", dropped, aud, nonce)

print(f"{'all checks passed' if not failures else f'{failures} check(s) FAILED'}")
sys.exit(1 if failures else 0)
