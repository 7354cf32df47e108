"""Independent check of ARI signer outputs with PyJWT (and the `cryptography` package).

Usage: python3 jose_check.py DIR
DIR holds issuer.jwk, agent.jwk, voucher.txt (compact voucher, ending in '~') and
authorization.jwt. Prints one line per object verified; exits non-zero on any failure.
"""
import json
import sys
from pathlib import Path

import jwt

d = Path(sys.argv[1])
issuer = jwt.PyJWK(json.loads((d / "issuer.jwk").read_text()), algorithm="ES256")
agent_jwk = json.loads((d / "agent.jwk").read_text())
agent = jwt.PyJWK(agent_jwk, algorithm="ES256")

voucher = (d / "voucher.txt").read_text().strip()
assert voucher.endswith("~"), "an SD-JWT without disclosures ends in '~'"
jws = voucher[:-1]
header = jwt.get_unverified_header(jws)
assert header["typ"] == "dc+sd-jwt", header
claims = jwt.decode(jws, issuer.key, algorithms=["ES256"], options={"verify_aud": False})
assert claims["cnf"]["jwk"] == agent_jwk, "the voucher is bound to the agent's key"
print("voucher ok", claims["agent"])

token = (d / "authorization.jwt").read_text().strip()
header = jwt.get_unverified_header(token)
assert header["typ"] == "ari-payment+jwt", header
pay = jwt.decode(token, agent.key, algorithms=["ES256"], audience="psp.example")
print("authorization ok", pay["amount"], pay["currency"])
