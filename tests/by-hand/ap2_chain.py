"""By hand (AP2's SDK is not on PyPI at v0.2, so not in CI): AP2 v0.2's own verifier,
MandateClient().verify, on delegation chains made by ari_core::sdjwt with AP2's pinned keys.

    cargo test -p ari-core sdjwt::tests::chains_made_here -- --nocapture \
        | grep '^made here' | sed 's/^made here (issuer_jwt_hash: \(.*\)): /\1 /' > /tmp/made-here.txt
    cd <AP2 checkout, v0.2.0 or later> && PYTHONPATH=code/sdk/python <venv with cryptography,
        jwcrypto, pydantic, sd-jwt>/bin/python tests/by-hand/ap2_chain.py \
        tests/vectors/ap2/delegate_sd_jwt_vectors.json /tmp/made-here.txt

Each chain must be accepted, and refused for another audience and for an edited signature.
"""
import json, sys
from jwcrypto.jwk import JWK
from ap2.sdk.mandate import MandateClient
vectors = json.load(open(sys.argv[1]))
root = {k: v for k, v in vectors["keys"]["pinned"]["user-root"].items() if k != "d"}
root_pub = JWK.from_json(json.dumps(root))
ok = True


def edit_last_signature(chain):
    head, last = chain.rsplit("~~", 1)
    jwt, rest = last.split("~", 1)
    h, p, sig = jwt.split(".")
    sig = sig[:10] + ("A" if sig[10] != "A" else "B") + sig[11:]
    return f"{head}~~{h}.{p}.{sig}~{rest}"

for line in open(sys.argv[2]):
    mode, chain = line.split()
    payloads = MandateClient().verify(token=chain, key_or_provider=lambda t: root_pub,
                                      expected_aud="merchant", expected_nonce="merchant-nonce-789")
    print(f"issuer_jwt_hash={mode}: AP2 SDK accepted {len(payloads)} hops; last transaction_id =",
          payloads[-1]["transaction_id"])
    # A tampered chain: another audience, and a flipped signature byte.
    for label, kwargs, token in [
        ("wrong aud", dict(expected_aud="other", expected_nonce="merchant-nonce-789"), chain),
        ("edited last hop's signature", dict(expected_aud="merchant", expected_nonce="merchant-nonce-789"),
         edit_last_signature(chain)),
    ]:
        try:
            MandateClient().verify(token=token, key_or_provider=lambda t: root_pub, **kwargs)
            print("  NOT rejected:", label); ok = False
        except Exception as e:
            print(f"  rejected ({label}): {type(e).__name__}: {str(e)[:90]}")
sys.exit(0 if ok else 1)
