"""Tests of ari_client: the live ones against a running arid, the rest against a scripted socket.

The live tests need a daemon whose agent socket serves this interpreter as an agent, and say so
loudly when the environment does not describe one. `cargo test --test daemon python_client::` sets it up
(a dev daemon on a throwaway token) and runs this file. The variables:

    ARI_AGENT_SOCKET   the agent socket
    ARI_ADMIN_SOCKET   the admin socket, for freezing the agent with arictl
    ARI_TEST_ARICTL    the arictl binary
    ARI_TEST_AGENT     the id of the agent this interpreter is
    ARI_TEST_KID       that agent's key thumbprint, as the operator saw it at provisioning
    ARI_TEST_VOUCHER   a compact voucher for the agent with an amount range, a budget and payees
    ARI_TEST_CHILD     another agent of the same user, to delegate to
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import unittest
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import ari_client  # noqa: E402
from ari_client import (  # noqa: E402
    AgentFrozen,
    AriClient,
    AriConnectionError,
    AriError,
    AriTimeout,
    BadRequest,
    Busy,
    Denied,
    Forbidden,
    InvalidParams,
    InvalidState,
    NotFound,
    NotYetCheckpointed,
    ProtocolError,
    RemoteError,
    TemporaryError,
    VoucherRejected,
    retry,
)

ENV = (
    "ARI_AGENT_SOCKET",
    "ARI_ADMIN_SOCKET",
    "ARI_TEST_ARICTL",
    "ARI_TEST_AGENT",
    "ARI_TEST_KID",
    "ARI_TEST_VOUCHER",
    "ARI_TEST_CHILD",
)


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def jws_part(token: str, part: int) -> dict[str, Any]:
    """The header (0) or payload (1) of a compact JWS, unverified; a trailing `~` is allowed."""
    value = json.loads(b64url_decode(token.split("~")[0].split(".")[part]))
    assert isinstance(value, dict), value
    return value


def disclosed_mandate(segment: str) -> dict[str, Any]:
    """The mandate an SD-JWT segment (as presented) discloses, its concealed array elements
    replaced by the values the segment discloses (RFC 9901), unverified."""
    jws, *disclosures = segment.rstrip("~").split("~")
    by_digest = {
        base64.urlsafe_b64encode(hashlib.sha256(d.encode()).digest()).rstrip(b"=").decode():
            json.loads(b64url_decode(d))[-1]
        for d in disclosures
    }

    def resolve(value: Any) -> Any:
        if isinstance(value, list):
            return [resolve(by_digest[v["..."]]) if isinstance(v, dict) and "..." in v
                    else resolve(v) for v in value]
        if isinstance(value, dict):
            return {k: resolve(v) for k, v in value.items()}
        return value

    [item] = jws_part(jws, 1)["delegate_payload"]
    mandate = resolve(by_digest[item["..."]])
    assert isinstance(mandate, dict), mandate
    return mandate


def node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_from_inclusion(index: int, size: int, leaf: bytes, path: list[bytes]) -> bytes:
    """RFC 9162 section 2.1.3.2: the root an inclusion proof leads to."""
    if index >= size:
        raise ValueError("index beyond the tree")
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            raise ValueError("proof too long")
        if fn & 1 or fn == sn:
            r = node(p, r)
            if not fn & 1:
                while not (fn & 1 or fn == 0):
                    fn >>= 1
                    sn >>= 1
        else:
            r = node(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ValueError("proof too short")
    return r


class LiveDaemon(unittest.TestCase):
    """Against the real daemon named by the environment; fails, never skips, without one."""

    env: dict[str, str]
    client: AriClient
    constraints: dict[str, dict[str, Any]]
    a2p2: dict[str, Any]

    @classmethod
    def setUpClass(cls) -> None:
        missing = [name for name in ENV if not os.environ.get(name)]
        if missing:
            raise RuntimeError(
                "the live tests need a running arid that serves this interpreter as an agent; "
                f"not set: {', '.join(missing)}. Run them with `cargo test --test daemon "
                "python_client::` from the repository, or see clients/python/README.md"
            )
        cls.env = {name: os.environ[name] for name in ENV}
        mandate = disclosed_mandate(cls.env["ARI_TEST_VOUCHER"])
        cls.constraints = {c["type"]: c for c in mandate["constraints"]}
        cls.a2p2 = mandate["a2p2"]
        for kind in ("payment.amount_range", "payment.budget", "payment.allowed_payees"):
            if kind not in cls.constraints or (
                kind == "payment.amount_range" and "max" not in cls.constraints[kind]
            ):
                raise RuntimeError(f"ARI_TEST_VOUCHER needs a {kind} constraint with a max")
        cls.client = AriClient(cls.env["ARI_AGENT_SOCKET"], timeout=30)
        cls.addClassCleanup(cls.client.close)

    # --- the voucher's limits ---

    @property
    def voucher(self) -> str:
        return self.env["ARI_TEST_VOUCHER"]

    @property
    def max_amount(self) -> int:
        return int(self.constraints["payment.amount_range"]["max"])

    @property
    def currency(self) -> str:
        return str(self.constraints["payment.amount_range"]["currency"])

    @property
    def payee(self) -> str:
        return str(self.constraints["payment.allowed_payees"]["allowed"][0]["id"])

    def arictl(self, *args: str) -> str:
        out = subprocess.run(
            [self.env["ARI_TEST_ARICTL"], "--admin-socket", self.env["ARI_ADMIN_SOCKET"], *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
        self.assertEqual(out.returncode, 0, f"arictl {' '.join(args)}: {out.stderr}")
        return out.stdout

    # --- tests ---

    def test_identity_is_the_provisioned_agent_running_this_interpreter(self) -> None:
        me = self.client.identity()
        self.assertEqual(me["agent"], self.env["ARI_TEST_AGENT"])
        self.assertEqual(me["status"], "active")
        self.assertEqual(me["key"]["kid"], self.env["ARI_TEST_KID"])
        self.assertEqual(me["key"]["jwk"]["kid"], self.env["ARI_TEST_KID"])
        self.assertFalse(me["key"]["attributes"]["extractable"])
        self.assertEqual(me["selectors"]["uid"], os.getuid())
        exe = Path("/proc/self/exe").read_bytes()
        self.assertEqual(me["selectors"]["exe_sha256"], hashlib.sha256(exe).hexdigest())

    def test_attestation_binds_the_nonce_and_this_process(self) -> None:
        nonce = "verifier-nonce-0001"
        got = self.client.attest(nonce)
        header, claims = jws_part(got["attestation"], 0), jws_part(got["attestation"], 1)
        self.assertEqual(header["typ"], "ari-attest+jwt")
        self.assertEqual(header["kid"], self.env["ARI_TEST_KID"])
        self.assertEqual(got["kid"], self.env["ARI_TEST_KID"])
        self.assertEqual(claims["nonce"], nonce)
        self.assertEqual(claims["sub"], self.env["ARI_TEST_AGENT"])
        self.assertEqual(claims["runtime"]["pid"], os.getpid())
        # Without a nonce the client picks a random one.
        self.assertGreaterEqual(len(jws_part(self.client.attest()["attestation"], 1)["nonce"]), 8)
        with self.assertRaises(InvalidParams) as cm:
            self.client.attest("short")
        self.assertEqual((cm.exception.code, cm.exception.reason), (-32602, "invalid_params"))
        self.assertFalse(cm.exception.retryable)

    def test_a_payment_within_the_limits_is_authorized_reported_and_not_repeated(self) -> None:
        amount = self.max_amount // 2
        tx = "checkout-within-limits"
        got = self.client.authorize(
            self.voucher, amount, self.currency, self.payee,
            aud="psp.example", transaction_id=tx, nonce="psp-nonce-0001",
        )
        self.assertEqual(got["status"], "authorized")
        for key in ("decision", "ledger_seq", "log_index", "authorization", "chain", "attestation"):
            self.assertIn(key, got)
        self.assertEqual(jws_part(got["authorization"], 0)["alg"], "ES256")
        hop = jws_part(got["authorization"], 1)
        expected = {
            "aud": "psp.example",
            "nonce": "psp-nonce-0001",
            "jti": got["decision"],
            "log_index": got["log_index"],
        }
        self.assertEqual({k: hop.get(k) for k in expected}, expected)
        closed = disclosed_mandate(got["authorization"])
        self.assertEqual(closed["payment_amount"], {"amount": amount, "currency": self.currency})
        self.assertEqual(closed["payee"]["id"], self.payee)
        self.assertEqual(closed["transaction_id"], tx)
        self.assertEqual(closed["risk_data"]["ari"]["agent"], self.env["ARI_TEST_AGENT"])
        self.assertEqual(got["mandate"], got["chain"][0] + "~" + got["authorization"])

        status = self.client.payment_status(got["decision"])
        self.assertEqual((status["status"], status["amount"]), ("authorized", amount))
        done = self.client.report(got["decision"], "succeeded", reference="rail-42")
        self.assertEqual((done["outcome"], done["reference"]), ("succeeded", "rail-42"))
        with self.assertRaises(InvalidState):
            self.client.report(got["decision"], "succeeded")

        with self.assertRaises(Denied) as cm:
            self.client.authorize(
                self.voucher, amount, self.currency, self.payee,
                aud="psp.example", transaction_id=tx,
            )
        self.assertEqual(cm.exception.reason, "duplicate_transaction")

    def test_an_over_limit_payment_raises_a_recorded_denial(self) -> None:
        with self.assertRaises(Denied) as cm:
            self.client.authorize(
                self.voucher, self.max_amount + 1, self.currency, self.payee, aud="psp.example"
            )
        e = cm.exception
        self.assertIsInstance(e, RemoteError)
        self.assertIsInstance(e, AriError)
        self.assertEqual((e.code, e.reason, e.retryable), (-32027, "amount_out_of_range", False))
        self.assertTrue(e.decision, "a denial names its recorded decision")
        status = self.client.payment_status(e.decision or "")
        self.assertEqual((status["status"], status["reason"]), ("denied", "amount_out_of_range"))
        with self.assertRaises(NotFound) as nf:
            self.client.payment_status("no-such-decision")
        self.assertEqual(nf.exception.reason, "decision_not_found")

    def test_a_recorded_statement_is_signed_logged_and_provably_included(self) -> None:
        body = {"offer": "X", "price": 1999, "why": "cheapest in stock"}
        got = self.client.record("offer.chosen", body)
        # The statement's bytes, under a signature over the root of the statements signed with
        # it (this one alone, or a batch): `batch` is its path to that root.
        statement_bytes = b64url_decode(got["statement"])
        statement = json.loads(statement_bytes)
        self.assertEqual((statement["kind"], statement["body"]), ("offer.chosen", body))
        self.assertEqual(jws_part(got["signature"], 0)["typ"], "ari-statements+jwt")
        signed = jws_part(got["signature"], 1)
        batch = got["batch"]
        self.assertEqual(batch["size"], signed["size"])
        self.assertEqual(
            root_from_inclusion(
                batch["index"],
                batch["size"],
                hashlib.sha256(b"\x00" + statement_bytes).digest(),
                [b64url_decode(h) for h in batch["path"]],
            ),
            b64url_decode(signed["root"]),
        )

        index = got["index"]
        entry = self.client.entry(index)
        leaf = hashlib.sha256(b"\x00" + entry["entry"].encode()).digest()
        self.assertEqual(b64url_decode(got["leaf_hash"]), leaf)
        self.assertEqual(entry["kind"], "agent.statement")

        cp = self.client.checkpoint(at_least=index + 1, wait_ms=10_000)
        origin, size, root = cp["note"].split("\n")[:3]
        self.assertEqual((origin, int(size)), (cp["origin"], cp["size"]))
        proof = retry(lambda: self.client.inclusion(index, cp["size"]))
        hashes = [b64url_decode(h) for h in proof["hashes"]]
        self.assertEqual(
            root_from_inclusion(index, cp["size"], leaf, hashes), base64.b64decode(root)
        )
        with self.assertRaises(NotYetCheckpointed) as cm:
            self.client.inclusion(index, cp["size"] + 1_000_000)
        self.assertTrue(cm.exception.retryable)
        with self.assertRaises(InvalidParams):
            self.client.record("no spaces allowed", body)

    def test_delegation_narrows_and_refuses_to_widen(self) -> None:
        narrow = []
        for c in self.constraints.values():
            c = dict(c)
            if c["type"] == "payment.amount_range":
                c["max"] = min(c["max"], 100)
            if c["type"] == "payment.budget":
                c["max"] = min(c["max"], 10)  # major units, as AP2 writes budgets
            narrow.append(c)
        child = self.client.delegate(
            self.voucher, self.env["ARI_TEST_CHILD"], narrow, a2p2=self.a2p2
        )
        self.assertEqual(set(child), {"id", "digest", "voucher"})
        claims = jws_part(child["voucher"].split("~~")[-1], 1)
        self.assertEqual(claims["agent"], self.env["ARI_TEST_CHILD"])
        self.assertEqual(claims["jti"], child["id"])
        # The parent's holder cannot spend the child's voucher.
        with self.assertRaises(Forbidden):
            self.client.authorize(child["voucher"], 1, self.currency, self.payee, aud="psp")

        wide = [
            dict(c, max=self.max_amount + 1) if c["type"] == "payment.amount_range" else c
            for c in narrow
        ]
        with self.assertRaises(VoucherRejected) as cm:
            self.client.delegate(self.voucher, self.env["ARI_TEST_CHILD"], wide, a2p2=self.a2p2)
        self.assertEqual(cm.exception.reason, "voucher_widens")

    def test_a_frozen_agent_is_refused_until_unfrozen(self) -> None:
        agent = self.env["ARI_TEST_AGENT"]
        self.arictl("agent", "freeze", agent)
        try:
            with self.assertRaises(AgentFrozen) as cm:
                self.client.identity()
            self.assertEqual((cm.exception.code, cm.exception.retryable), (-32002, False))
            with self.assertRaises(AgentFrozen) as cm:
                self.client.authorize(self.voucher, 1, self.currency, self.payee, aud="psp")
            decision = cm.exception.decision
            self.assertTrue(decision, "a frozen agent's payment is recorded")
            with self.assertRaises(AgentFrozen):
                self.client.record("while.frozen", {})
        finally:
            self.arictl("agent", "unfreeze", agent)
        self.assertEqual(self.client.identity()["status"], "active")
        status = self.client.payment_status(decision or "")
        self.assertEqual((status["status"], status["reason"]), ("denied", "agent_frozen"))

    def test_the_example_agent_runs_end_to_end(self) -> None:
        def run(amount: int) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, str(HERE / "example_agent.py"),
                 "--socket", self.env["ARI_AGENT_SOCKET"], "--voucher", self.voucher,
                 "--amount", str(amount), "--currency", self.currency, "--payee", self.payee],
                capture_output=True, text=True, timeout=120,
            )

        ok = run(1)
        self.assertEqual(ok.returncode, 0, ok.stdout + ok.stderr)
        self.assertIn(f"agent {self.env['ARI_TEST_AGENT']} ", ok.stdout)
        self.assertIn("payment authorized", ok.stdout)
        self.assertIn("reported succeeded", ok.stdout)
        denied = run(self.max_amount + 1)
        self.assertEqual(denied.returncode, 2, denied.stdout + denied.stderr)
        self.assertIn("payment refused: amount_out_of_range", denied.stdout)

    def test_an_absent_socket_is_a_connection_error(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            with self.assertRaises(AriConnectionError) as cm:
                AriClient(Path(tmp) / "absent.sock")
        self.assertIsInstance(cm.exception, ConnectionError)


class ScriptedDaemon:
    """A one-connection socket server that answers each line it reads with the next reply."""

    def __init__(self, replies: list[bytes | None]) -> None:
        self.tmp = tempfile.TemporaryDirectory()
        self.path = os.path.join(self.tmp.name, "agent.sock")
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        self.listener.listen(1)
        self.replies = replies
        self.requests: list[dict[str, Any]] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn, conn.makefile("rb") as lines:
            for reply in self.replies:
                line = lines.readline()
                if not line:
                    return
                self.requests.append(json.loads(line))
                if reply is None:  # say nothing, close
                    return
                conn.sendall(reply)
            lines.readline()  # hold the connection until the client closes it

    def close(self) -> None:
        self.listener.close()
        self.thread.join(timeout=5)
        self.tmp.cleanup()


def error_line(call_id: Any, code: int, data: dict[str, Any]) -> bytes:
    err = {"code": code, "message": "scripted", "data": data}
    return json.dumps({"jsonrpc": "2.0", "error": err, "id": call_id}).encode() + b"\n"


class ScriptedAnswers(unittest.TestCase):
    """How the client reads answers a real daemon rarely or never gives."""

    def scripted(
        self, *replies: bytes | None, timeout: float = 10
    ) -> tuple[ScriptedDaemon, AriClient]:
        server = ScriptedDaemon(list(replies))
        self.addCleanup(server.close)
        client = AriClient(server.path, timeout=timeout)
        self.addCleanup(client.close)
        return server, client

    def test_calls_are_json_rpc_lines_with_increasing_ids(self) -> None:
        server, client = self.scripted(
            b'{"jsonrpc":"2.0","result":{"a":1},"id":1}\n',
            b'\n{"jsonrpc":"2.0","result":{"b":2},"id":2}\r\n',
        )
        self.assertEqual(client.identity(), {"a": 1})
        self.assertEqual(client.inclusion(3, tree_size=9), {"b": 2})
        self.assertEqual(
            server.requests,
            [
                {"jsonrpc": "2.0", "id": 1, "method": "agent.identity", "params": {}},
                {"jsonrpc": "2.0", "id": 2, "method": "evidence.inclusion",
                 "params": {"index": 3, "tree_size": 9}},
            ],
        )

    def test_the_error_table_picks_the_class_and_fills_gaps(self) -> None:
        _, client = self.scripted(
            error_line(1, -32010, {"reason": "busy"}),
            error_line(2, -32033, {"reason": "budget_exhausted", "retryable": False,
                                   "decision": "d1"}),
            error_line(3, -39999, {"reason": "brand_new", "retryable": True}),
        )
        with self.assertRaises(Busy) as busy:
            client.identity()
        self.assertTrue(busy.exception.retryable)  # from the table: the daemon did not say
        self.assertIsInstance(busy.exception, TemporaryError)
        with self.assertRaises(Denied) as denied:
            client.identity()
        self.assertEqual(denied.exception.decision, "d1")
        with self.assertRaises(RemoteError) as new:
            client.identity()
        self.assertIs(type(new.exception), RemoteError)
        self.assertEqual((new.exception.reason, new.exception.retryable), ("brand_new", True))

    def test_an_error_for_an_unreadable_line_is_raised_and_the_connection_dropped(self) -> None:
        _, client = self.scripted(error_line(None, -32008, {"reason": "line_too_long"}))
        with self.assertRaises(BadRequest) as cm:
            client.identity()
        self.assertEqual(cm.exception.reason, "line_too_long")
        self.assertIn("closed", repr(client))

    def test_malformed_answers_are_protocol_errors(self) -> None:
        for reply in (
            b"not json\n",
            b'{"jsonrpc":"2.0","result":{},"id":99}\n',
            b'{"jsonrpc":"2.0","id":1}\n',
            b'{"jsonrpc":"1.0","result":{},"id":1}\n',
            b'{"jsonrpc":"2.0","result":[1],"id":1}\n',
            b'{"jsonrpc":"2.0","error":"no","id":1}\n',
        ):
            with self.subTest(reply=reply):
                _, client = self.scripted(reply)
                with self.assertRaises(ProtocolError):
                    client.identity()

    def test_a_silent_daemon_times_out_and_a_closed_one_is_a_connection_error(self) -> None:
        _, slow = self.scripted(b"", timeout=0.2)  # answers nothing, keeps the line open
        with self.assertRaises(AriTimeout):
            slow.identity()
        _, gone = self.scripted(None)
        with self.assertRaises(AriConnectionError):
            gone.identity()

    def test_every_reason_of_the_table_maps_to_its_class(self) -> None:
        for code, reason, retryable, cls in ari_client.ERRORS:
            e = ari_client.error_from_wire({"code": code, "message": "m",
                                            "data": {"reason": reason}})
            self.assertIs(type(e), cls)
            self.assertEqual((e.code, e.reason, e.retryable), (code, reason, retryable))
            self.assertEqual(isinstance(e, TemporaryError), retryable, reason)
        by_code = ari_client.error_from_wire({"code": -32002, "message": "m"})
        self.assertIsInstance(by_code, AgentFrozen)
        self.assertEqual(by_code.reason, "agent_frozen")


class Retry(unittest.TestCase):
    def test_retryable_errors_are_retried_with_bounded_backoff(self) -> None:
        sleeps: list[float] = []
        calls = []

        def flaky() -> str:
            calls.append(1)
            if len(calls) < 4:
                raise Busy(-32010, "busy", "busy", True)
            return "done"

        self.assertEqual(retry(flaky, attempts=5, base_delay=0.1, max_delay=0.3,
                               sleep=sleeps.append), "done")
        self.assertEqual(len(sleeps), 3)
        for slept, cap in zip(sleeps, (0.1, 0.2, 0.3)):
            self.assertGreaterEqual(slept, cap / 2)
            self.assertLessEqual(slept, cap)

    def test_the_last_retryable_error_and_any_other_error_propagate(self) -> None:
        sleeps: list[float] = []
        calls = []

        def always_busy() -> None:
            calls.append(1)
            raise Busy(-32010, "busy", "busy", True)

        with self.assertRaises(Busy):
            retry(always_busy, attempts=3, sleep=sleeps.append)
        self.assertEqual((len(calls), len(sleeps)), (3, 2))

        def denied() -> None:
            calls.append(1)
            raise Denied(-32033, "budget_exhausted", "no", False)

        calls.clear()
        with self.assertRaises(Denied):
            retry(denied, sleep=sleeps.append)
        self.assertEqual(len(calls), 1)


if __name__ == "__main__":
    unittest.main()
