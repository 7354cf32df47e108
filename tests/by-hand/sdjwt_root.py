"""By hand (the OpenWallet Foundation's `sd-jwt` comes from PyPI): the SD-JWT reference
library verifies the root segment of a chain made by ari_core::sdjwt, with its disclosures,
and refuses it with an edited signature.

    python3 -m venv /tmp/sdjwt && /tmp/sdjwt/bin/pip install sd-jwt==0.10.4
    cargo test -p ari-core sdjwt::tests::chains_made_here -- --nocapture \\
        | grep '^made here' | sed 's/^made here (issuer_jwt_hash: \\(.*\\)): /\\1 /' > /tmp/made-here.txt
    /tmp/sdjwt/bin/python tests/by-hand/sdjwt_root.py tests/vectors/ap2/delegate_sd_jwt_vectors.json /tmp/made-here.txt
"""
import json
import sys

from jwcrypto.jwk import JWK
from sd_jwt.verifier import SDJWTVerifier

vectors = json.load(open(sys.argv[1]))
root = {k: v for k, v in vectors["keys"]["pinned"]["user-root"].items() if k != "d"}
key = lambda iss, header: JWK.from_json(json.dumps(root))
ok = True
for line in open(sys.argv[2]):
    _, chain = line.split()
    first = chain.split("~~")[0] + "~"
    mandate = SDJWTVerifier(first, key).get_verified_payload()["delegate_payload"][0]
    print("sd-jwt verified the root and its disclosures:", mandate["vct"], mandate["payee"],
          mandate["payment_amount"])
    jwt, rest = first.split("~", 1)
    h, p, s = jwt.split(".")
    edited = f"{h}.{p}.{s[:10]}{'A' if s[10] != 'A' else 'B'}{s[11:]}~{rest}"
    try:
        SDJWTVerifier(edited, key).get_verified_payload()
        print("NOT rejected: an edited signature")
        ok = False
    except Exception as e:
        print("  rejected an edited signature:", type(e).__name__)
sys.exit(0 if ok else 1)
