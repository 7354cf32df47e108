"""By-hand check (needs PyPI, so not in CI): sigstore-python's signed-note reader verifies the
ECDSA line of a checkpoint the daemon signed.

    python3 -m venv /tmp/sig && /tmp/sig/bin/pip install sigstore
    /tmp/sig/bin/python tests/by-hand/sigstore_checkpoint.py CHECKPOINT "$(arictl log vkey | sed -n 2p)"

CHECKPOINT is the published `checkpoint` file (or `arictl log checkpoint | jq -r .note`); the
second argument is the log's ECDSA verifier key (type 0x02). Exits non-zero with sigstore's
error when the signature does not verify.
"""
import base64, hashlib, sys
from sigstore._internal.rekor.checkpoint import SignedNote
from sigstore._internal.trust import Keyring
from sigstore_models.common.v1 import PublicKey, PublicKeyDetails
note = open(sys.argv[1]).read()
vkey = sys.argv[2]
name, keyid_hex, b64 = vkey.split("+", 2)
blob = base64.b64decode(b64)
assert blob[0] == 0x02, "not an ECDSA vkey"
spki = blob[1:]
pk = PublicKey(raw_bytes=base64.b64encode(spki).decode(), key_details=PublicKeyDetails.PKIX_ECDSA_P256_SHA_256)
keyring = Keyring([pk])
key_id = hashlib.sha256(spki).digest()
assert key_id[:4].hex() == keyid_hex
SignedNote.from_text(note).verify(keyring, key_id)
print("sigstore-python: ECDSA checkpoint signature OK for", name)
