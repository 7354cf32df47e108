"""A minimal client for the arid agent socket (JSON-RPC 2.0, one message per line).

Usage:
    from ari_client import Client
    with Client() as ari:
        print(ari.call("agent.identity"))
"""

import itertools
import json
import os
import socket

DEFAULT_AGENT_SOCKET = "/run/ari/agent.sock"


class AriError(Exception):
    """An error answer from the daemon: `code`, `message` and optional `data`."""

    def __init__(self, error):
        super().__init__(f"{error.get('message')} (code {error.get('code')})")
        self.code = error.get("code")
        self.data = error.get("data")


class Client:
    """One connection to the daemon; calls are answered in order."""

    def __init__(self, path=None):
        path = path or os.environ.get("ARI_AGENT_SOCKET", DEFAULT_AGENT_SOCKET)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.connect(path)
        self._file = self._sock.makefile("rwb")
        self._ids = itertools.count(1)

    def call(self, method, params=None):
        """Calls `method` and returns its result, or raises AriError."""
        call_id = next(self._ids)
        request = {"jsonrpc": "2.0", "id": call_id, "method": method, "params": params or {}}
        self._file.write(json.dumps(request).encode() + b"\n")
        self._file.flush()
        line = self._file.readline()
        if not line:
            raise ConnectionError("arid closed the connection")
        answer = json.loads(line)
        if "error" in answer:
            raise AriError(answer["error"])
        return answer["result"]

    def close(self):
        self._file.close()
        self._sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
