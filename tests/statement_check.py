"""Independent check of an agent statement entry with PyJWT.

Usage: python3 statement_check.py ENTRY AGENT_JWK
ENTRY holds the entry's exact bytes (as `evidence.entry` returns them); AGENT_JWK the agent's
public JWK as the operator saw it at provisioning. Prints one line; exits non-zero on failure.
"""
import json
import sys

import jwt

entry = json.loads(open(sys.argv[1], "rb").read())
agent_jwk = json.loads(open(sys.argv[2]).read())
assert entry["kind"] == "agent.statement", entry["kind"]
fact = entry["fact"]
assert fact["jwk"] == agent_jwk, "the entry names the agent's provisioned key"
key = jwt.PyJWK(agent_jwk, algorithm="ES256")
token = fact["statement"]
header = jwt.get_unverified_header(token)
assert header["typ"] == "ari-statement+jwt", header
claims = jwt.decode(token, key.key, algorithms=["ES256"], options={"verify_aud": False})
assert claims["iss"] == "urn:ari:agent:" + entry["agent"], claims
assert claims["sub"] == entry["user"], claims
print("statement ok", claims["kind"], json.dumps(claims["body"], sort_keys=True))
