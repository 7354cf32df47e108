"""Independent check of an agent statement entry with PyJWT and hashlib.

Usage: python3 statement_check.py ENTRY AGENT_JWK
ENTRY holds the entry's exact bytes (as `evidence.entry` returns them); AGENT_JWK the agent's
public JWK as the operator saw it at provisioning. The agent's key signs the RFC 9162 root of
the statements it made together; the entry carries the statement, that signature and the
statement's path to the root. Prints one line; exits non-zero on failure.
"""
import base64
import hashlib
import json
import sys

import jwt


def b64(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def root_from_path(index, size, leaf, path):
    """RFC 9162 section 2.1.3.2: the root a leaf and its inclusion path lead to."""
    assert index < size
    fn, sn, r = index, size - 1, leaf
    for p in path:
        assert sn != 0, "path too long"
        if fn & 1 or fn == sn:
            r = hashlib.sha256(b"\x01" + p + r).digest()
            while fn & 1 == 0 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = hashlib.sha256(b"\x01" + r + p).digest()
        fn >>= 1
        sn >>= 1
    assert sn == 0, "path too short"
    return r


entry = json.loads(open(sys.argv[1], "rb").read())
agent_jwk = json.loads(open(sys.argv[2]).read())
assert entry["kind"] == "agent.statement", entry["kind"]
fact = entry["fact"]
assert fact["jwk"] == agent_jwk, "the entry names the agent's provisioned key"
key = jwt.PyJWK(agent_jwk, algorithm="ES256")
token = fact["signature"]
header = jwt.get_unverified_header(token)
assert header["typ"] == "ari-statements+jwt", header
signed = jwt.decode(token, key.key, algorithms=["ES256"], options={"verify_aud": False})
assert signed["iss"] == "urn:ari:agent:" + entry["agent"], signed
statement = b64(fact["statement"])
batch = fact["batch"]
assert batch["size"] == signed["size"], (batch, signed)
leaf = hashlib.sha256(b"\x00" + statement).digest()
path = [b64(h) for h in batch["path"]]
assert root_from_path(batch["index"], batch["size"], leaf, path) == b64(signed["root"]), \
    "the statement is not under the signed root"
claims = json.loads(statement)
assert claims["iss"] == "urn:ari:agent:" + entry["agent"], claims
assert claims["sub"] == entry["user"], claims
print("statement ok", claims["kind"], json.dumps(claims["body"], sort_keys=True),
      "batch", batch["index"], "of", batch["size"])
