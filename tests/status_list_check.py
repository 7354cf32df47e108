"""Independent reading of ARI signer's voucher status list with PyJWT and Python's zlib.

Usage: python3 status_list_check.py TOKEN ISSUER_JWK VOUCHER
TOKEN is the published Status List Token (draft-ietf-oauth-status-list), ISSUER_JWK the issuer's
public JWK, VOUCHER a compact voucher (ending in '~') issued by the same daemon. Verifies the
token (ES256 under the JWK, typ statuslist+jwt, sub = the voucher's status uri), inflates `lst`
and prints the voucher's status: VALID, INVALID, SUSPENDED or the value in hex. Exits non-zero
on any failure. Nothing here is shared with the Rust code that wrote the list.
"""
import base64
import json
import sys
import time
import zlib
from pathlib import Path

import jwt

NAMES = {0: "VALID", 1: "INVALID", 2: "SUSPENDED"}

token = Path(sys.argv[1]).read_text().strip()
issuer = jwt.PyJWK(json.loads(Path(sys.argv[2]).read_text()), algorithm="ES256")
voucher = Path(sys.argv[3]).read_text().strip()

# The voucher's reference, read as a verifier reads it (signature checked too).
assert voucher.endswith("~"), "a voucher (an SD-JWT as presented) ends in '~'"
referenced = jwt.decode(voucher.split("~")[0], issuer.key, algorithms=["ES256"], options={"verify_aud": False})
ref = referenced["status"]["status_list"]
idx, uri = ref["idx"], ref["uri"]
assert isinstance(idx, int) and idx >= 0, ref

header = jwt.get_unverified_header(token)
assert header["typ"] == "statuslist+jwt", header
assert header["alg"] == "ES256", header
claims = jwt.decode(
    token,
    issuer.key,
    algorithms=["ES256"],
    options={"require": ["sub", "iat", "exp"], "verify_aud": False},
)
assert claims["sub"] == uri, (claims["sub"], uri)
assert claims["iat"] <= time.time() + 60 < claims["exp"] + 60, claims
assert claims.get("ttl", 1) > 0, claims

status_list = claims["status_list"]
bits = status_list["bits"]
assert bits in (1, 2, 4, 8), bits
lst = status_list["lst"]
assert "=" not in lst, "lst is base64url without padding"
raw = zlib.decompress(base64.urlsafe_b64decode(lst + "=" * (-len(lst) % 4)))
assert idx * bits // 8 < len(raw), (idx, len(raw))
# Index i lives in byte i*bits/8, at bit offset (i*bits) % 8 from the least significant bit.
value = (raw[idx * bits // 8] >> (idx * bits % 8)) & ((1 << bits) - 1)
print(NAMES.get(value, "0x%02x" % value))
