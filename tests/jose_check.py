"""Independent check of ARI signer outputs with PyJWT (and `hashlib`), knowing only RFC 7515
and RFC 9901: a voucher is an SD-JWT, its mandate a disclosure; a payment authorization is a
key-binding SD-JWT signed by the agent, its closed mandate a disclosure.

Usage: python3 jose_check.py DIR
DIR holds issuer.jwk, agent.jwk, voucher.txt (the root voucher as presented: JWS, disclosures,
each ending in '~') and authorization.jwt (the authorization segment, same form). Prints one
line per object verified; exits non-zero on any failure.
"""
import base64
import hashlib
import json
import sys
from pathlib import Path

import jwt


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def segment(text: str) -> tuple[str, list[str]]:
    """The JWS and the disclosures of one SD-JWT segment as presented."""
    assert text.endswith("~"), "a segment as presented ends in '~'"
    jws, *disclosures = text[:-1].split("~")
    return jws, disclosures


def disclosed_item(claims: dict, disclosures: list[str]) -> dict:
    """The one delegate_payload item, found by the SHA-256 of its disclosure's text."""
    [ref] = claims["delegate_payload"]
    by_digest = {b64url(hashlib.sha256(d.encode()).digest()): d for d in disclosures}
    salt, value = json.loads(unb64(by_digest[ref["..."]]))
    assert isinstance(salt, str)
    return value


d = Path(sys.argv[1])
issuer = jwt.PyJWK(json.loads((d / "issuer.jwk").read_text()), algorithm="ES256")
agent_jwk = json.loads((d / "agent.jwk").read_text())
agent = jwt.PyJWK(agent_jwk, algorithm="ES256")

voucher = (d / "voucher.txt").read_text().strip()
jws, disclosures = segment(voucher)
header = jwt.get_unverified_header(jws)
assert header["typ"] == "dc+sd-jwt", header
claims = jwt.decode(jws, issuer.key, algorithms=["ES256"], options={"verify_aud": False})
assert claims["_sd_alg"] == "sha-256", claims
mandate = disclosed_item(claims, disclosures)
assert mandate["vct"] == "mandate.payment.open.1", mandate
assert mandate["cnf"]["jwk"] == agent_jwk, "the voucher is bound to the agent's key"
print("voucher ok", claims["agent"])

jws, disclosures = segment((d / "authorization.jwt").read_text().strip())
header = jwt.get_unverified_header(jws)
assert header["typ"] == "kb+sd-jwt", header
pay = jwt.decode(jws, agent.key, algorithms=["ES256"], audience="psp.example")
assert pay["sd_hash"] == b64url(hashlib.sha256(voucher.encode()).digest()), "bound to the voucher"
closed = disclosed_item(pay, disclosures)
assert closed["vct"] == "mandate.payment.1", closed
amount = closed["payment_amount"]
print("authorization ok", amount["amount"], amount["currency"])
