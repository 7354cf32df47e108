#!/usr/bin/env python3
"""An agent asking arid for its identity and an attestation over a verifier's nonce."""

import json
import secrets

from ari_client import Client


def main():
    with Client() as ari:
        print(json.dumps(ari.call("agent.identity"), indent=2))
        nonce = secrets.token_hex(16)
        print(json.dumps(ari.call("agent.attest", {"nonce": nonce}), indent=2))


if __name__ == "__main__":
    main()
