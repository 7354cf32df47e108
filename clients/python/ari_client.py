"""Python client for the agent socket of `arid`, the ARI signing daemon.

An agent runtime uses it to learn which agent the daemon takes it to be, to get attestations and
payment authorizations signed by its key in the hardware key store, and to put its own decisions
on the evidence log. It needs nothing outside the Python 3.11 standard library.

The daemon speaks JSON-RPC 2.0 over a Unix stream socket, one JSON value per line
(docs/protocol.md). This client sends one call at a time and waits for its answer until a
deadline. The daemon identifies the caller from the connecting process itself (uid, executable,
cgroup), so there are no credentials to pass: the process that imports this module must be the
one registered as the agent.

Errors the daemon answers become `RemoteError` subclasses chosen by the stable `reason` (see
`ERRORS`); transport failures are `AriConnectionError`; answers that break the protocol are
`ProtocolError`. All of them derive from `AriError`.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Final, TypeVar

__all__ = [
    "DEFAULT_AGENT_SOCKET",
    "DEFAULT_TIMEOUT_S",
    "ERRORS",
    "AgentFrozen",
    "AriClient",
    "AriConnectionError",
    "AriError",
    "AriTimeout",
    "BadRequest",
    "Busy",
    "CheckoutRefused",
    "DaemonFault",
    "Denied",
    "Forbidden",
    "InvalidParams",
    "InvalidState",
    "NotFound",
    "NotYetCheckpointed",
    "ProtocolError",
    "ReceiptRefused",
    "RemoteError",
    "TemporaryError",
    "UnknownCaller",
    "VoucherRejected",
    "error_from_wire",
    "retry",
]

#: The agent socket of a system installation.
DEFAULT_AGENT_SOCKET: Final = "/run/ari/agent.sock"
#: The environment variable that names another agent socket.
SOCKET_ENV: Final = "ARI_AGENT_SOCKET"
#: How long a call may take, in seconds, unless the caller says otherwise.
DEFAULT_TIMEOUT_S: Final = 60.0
#: The longest answer line accepted; a longer one is a protocol error, not a memory hazard.
MAX_ANSWER_BYTES: Final = 16 * 1024 * 1024
#: The daemon's ceiling for `wait_ms` on `payment.status` and `evidence.checkpoint`.
MAX_WAIT_MS: Final = 30_000

JsonObject = dict[str, Any]
T = TypeVar("T")


# --- errors -------------------------------------------------------------------------------------


class AriError(Exception):
    """Base of every error this module raises."""


class AriConnectionError(AriError, ConnectionError):
    """The socket could not be reached, or the connection broke before the answer arrived.

    After a broken call the outcome on the daemon side is unknown: a payment may have been
    authorized even though its answer was lost. The next call opens a fresh connection.
    """


class AriTimeout(AriConnectionError, TimeoutError):
    """No answer arrived before the call's deadline; the connection was dropped."""


class ProtocolError(AriError):
    """The daemon's answer is not a JSON-RPC 2.0 response to the call that was sent."""


class RemoteError(AriError):
    """The daemon refused the call.

    `code` and `reason` are stable and name the error (docs/protocol.md, "Errors"); `message` is
    for people and may change; `retryable` is the daemon's advice on whether the same call may
    succeed later; `data` is the raw `error.data` object.
    """

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        retryable: bool,
        data: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{message} ({reason})")
        self.code = code
        self.reason = reason
        self.message = message
        self.retryable = retryable
        self.data: JsonObject = dict(data or {})

    @property
    def decision(self) -> str | None:
        """The id of the recorded payment decision this error reports, if there is one."""
        value = self.data.get("decision")
        return value if isinstance(value, str) else None

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(code={self.code}, reason={self.reason!r}, "
            f"message={self.message!r}, retryable={self.retryable})"
        )


class BadRequest(RemoteError):
    """The call itself was malformed: bad framing, unknown method, or bad params."""


class InvalidParams(BadRequest):
    """A param is missing, of the wrong type, unknown, or out of range."""


class UnknownCaller(RemoteError):
    """This process matches no registered agent (or several), or could not be measured."""


class AgentFrozen(RemoteError):
    """An operator froze this agent. A payment asked for while frozen is still recorded, so
    `decision` names it."""


class Forbidden(RemoteError):
    """The call is not allowed here: a method of the other socket, or another agent's voucher."""


class NotFound(RemoteError):
    """The named agent, voucher, decision or evidence entry does not exist (for this caller)."""


class InvalidState(RemoteError):
    """The object's state does not allow the call (say, reporting a decision twice)."""


class VoucherRejected(RemoteError):
    """A voucher is not acceptable: it does not verify, or a delegation would widen it."""


class Denied(RemoteError):
    """The policy refused a payment or delegation. `reason` says which check failed; for a
    payment, `decision` is the id of the recorded denial."""


class TemporaryError(RemoteError):
    """A condition that may clear by itself: the daemon advises retrying later."""


class Busy(TemporaryError):
    """Every signing session is taken and the queue is full."""


class NotYetCheckpointed(TemporaryError):
    """No signed checkpoint covers the entry or tree size yet."""


class WitnessRefused(RemoteError):
    """A witness refused the checkpoint (stale, inconsistent, or its answer did not verify)."""


class WitnessUnreachable(TemporaryError):
    """A witness could not be reached or did not answer in time."""


class CheckoutRefused(RemoteError):
    """The checkout JWT is not signed by a registered merchant, or does not match the payment."""


class ReceiptRefused(RemoteError):
    """The payment receipt is not signed by a registered provider for this payment."""


class DaemonFault(RemoteError):
    """The daemon or its key store failed; details are in the daemon's log, not here."""


#: The wire error table of docs/protocol.md: (code, reason, retryable, exception class).
#: A reason missing from it still raises `RemoteError`, with what the daemon sent.
ERRORS: Final[tuple[tuple[int, str, bool, type[RemoteError]], ...]] = (
    (-32700, "parse_error", False, BadRequest),
    (-32600, "invalid_request", False, BadRequest),
    (-32601, "method_not_found", False, BadRequest),
    (-32602, "invalid_params", False, InvalidParams),
    (-32603, "internal_error", False, DaemonFault),
    (-32001, "unknown_caller", False, UnknownCaller),
    (-32002, "agent_frozen", False, AgentFrozen),
    (-32003, "forbidden", False, Forbidden),
    (-32004, "agent_not_found", False, NotFound),
    (-32005, "agent_exists", False, RemoteError),
    (-32006, "invalid_state", False, InvalidState),
    (-32007, "certificate_mismatch", False, RemoteError),
    (-32008, "line_too_long", False, BadRequest),
    (-32009, "read_timeout", False, BadRequest),
    (-32010, "busy", True, Busy),
    (-32011, "backend_unavailable", True, TemporaryError),
    (-32012, "backend_error", False, DaemonFault),
    (-32013, "storage_error", True, TemporaryError),
    (-32014, "shutting_down", True, TemporaryError),
    (-32015, "voucher_not_found", False, NotFound),
    (-32016, "voucher_widens", False, VoucherRejected),
    (-32017, "decision_not_found", False, NotFound),
    (-32018, "untrusted_voucher", False, VoucherRejected),
    (-32019, "issuer_exists", False, RemoteError),
    (-32020, "voucher_revoked", False, Denied),
    (-32021, "voucher_not_yet_valid", False, Denied),
    (-32022, "voucher_expired", False, Denied),
    (-32023, "unknown_constraint", False, Denied),
    (-32024, "level_forbids_payment", False, Denied),
    (-32025, "report_overdue", False, Denied),
    (-32026, "currency_mismatch", False, Denied),
    (-32027, "amount_out_of_range", False, Denied),
    (-32028, "payee_not_allowed", False, Denied),
    (-32029, "category_not_allowed", False, Denied),
    (-32030, "outside_execution_date", False, Denied),
    (-32031, "condition_failed", False, Denied),
    (-32032, "payments_exhausted", False, Denied),
    (-32033, "budget_exhausted", False, Denied),
    (-32034, "duplicate_transaction", False, Denied),
    (-32035, "rejected_by_operator", False, Denied),
    (-32036, "entry_not_found", False, NotFound),
    (-32037, "not_yet_checkpointed", True, NotYetCheckpointed),
    (-32038, "witness_refused", False, WitnessRefused),
    (-32039, "witness_unreachable", True, WitnessUnreachable),
    (-32040, "checkout_refused", False, CheckoutRefused),
    (-32041, "receipt_refused", False, ReceiptRefused),
)

_BY_REASON: Final = {row[1]: row for row in ERRORS}
_BY_CODE: Final = {row[0]: row for row in ERRORS}
#: Errors after which the daemon closes the connection.
_CLOSING_REASONS: Final = frozenset({"line_too_long", "read_timeout", "shutting_down"})


def error_from_wire(error: Any) -> RemoteError:
    """Builds the exception for a JSON-RPC `error` object as the daemon sends it.

    The class is chosen by `data.reason`, or by `code` when the reason is absent. `retryable`
    is the daemon's own flag when it sent one, else the table's.
    """
    if not isinstance(error, dict):
        raise ProtocolError(f"an error that is not an object: {error!r}")
    code = error.get("code")
    message = error.get("message")
    data = error.get("data")
    if not isinstance(code, int) or isinstance(code, bool) or not isinstance(message, str):
        raise ProtocolError(f"an error without an integer code and a message: {error!r}")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ProtocolError(f"an error whose data is not an object: {error!r}")
    reason = data.get("reason")
    row = _BY_REASON.get(reason) if isinstance(reason, str) else _BY_CODE.get(code)
    if not isinstance(reason, str):
        reason = row[1] if row else ""
    retryable = data.get("retryable")
    if not isinstance(retryable, bool):
        retryable = row[2] if row else False
    cls = row[3] if row else RemoteError
    return cls(code, reason, message, retryable, data)


# --- client -------------------------------------------------------------------------------------


class AriClient:
    """A connection to the daemon's agent socket.

    `path` is the socket; without it, `$ARI_AGENT_SOCKET`, else `/run/ari/agent.sock`. `timeout`
    (seconds) bounds each call from sending to the end of its answer; calls that ask the daemon
    to wait (`wait_ms`) get that much longer. The connection is opened here, so an unreachable
    daemon fails at once with `AriConnectionError`; after a connection breaks, the next call
    reconnects. Calls from several threads are serialized.

    Use it as a context manager, or call `close()`.
    """

    def __init__(
        self, path: str | os.PathLike[str] | None = None, timeout: float = DEFAULT_TIMEOUT_S
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        if path is None:
            path = os.environ.get(SOCKET_ENV) or DEFAULT_AGENT_SOCKET
        self.path: str = os.fspath(path)
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._buffer = bytearray()
        self._next_id = 1
        self._lock = threading.Lock()
        self._connect()

    def __enter__(self) -> AriClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "open" if self._sock is not None else "closed"
        return f"AriClient({self.path!r}, {state})"

    def close(self) -> None:
        """Closes the connection; a later call would open a new one. Harmless when closed."""
        with self._lock:
            self._drop()

    # --- transport ---

    def _connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.path)
        except OSError as e:
            sock.close()
            raise AriConnectionError(f"cannot connect to {self.path}: {e}") from e
        self._sock = sock
        self._buffer.clear()
        return sock

    def _drop(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None
                self._buffer.clear()

    def call(
        self,
        method: str,
        params: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> Any:
        """Calls `method` with `params` (an object) and returns its `result`.

        Raises a `RemoteError` subclass when the daemon refuses the call, `AriConnectionError`
        (or `AriTimeout`) when the transport fails, `ProtocolError` on a malformed answer.
        """
        limit = self.timeout if timeout is None else timeout
        with self._lock:
            call_id = self._next_id
            self._next_id += 1
            request = {
                "jsonrpc": "2.0",
                "id": call_id,
                "method": method,
                "params": dict(params or {}),
            }
            try:
                line = json.dumps(
                    request, ensure_ascii=False, allow_nan=False, separators=(",", ":")
                )
            except (TypeError, ValueError) as e:
                raise TypeError(f"params of {method} are not plain JSON: {e}") from e
            deadline = time.monotonic() + limit
            sock = self._sock if self._sock is not None else self._connect()
            try:
                sock.settimeout(limit)
                sock.sendall(line.encode("utf-8") + b"\n")
                answer = self._read_line(sock, deadline)
            except ProtocolError:
                self._drop()
                raise
            except TimeoutError as e:
                self._drop()
                raise AriTimeout(f"{method}: no answer within {limit:g} s") from e
            except OSError as e:
                self._drop()
                raise AriConnectionError(f"{method}: connection to {self.path} failed: {e}") from e
            try:
                return self._decode(method, call_id, answer)
            except ProtocolError:
                self._drop()
                raise
            except RemoteError as e:
                if e.reason in _CLOSING_REASONS:
                    self._drop()
                raise

    def _read_line(self, sock: socket.socket, deadline: float) -> bytes:
        """Reads up to and without the next newline, skipping blank lines."""
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                line = bytes(self._buffer[:end]).rstrip(b"\r")
                del self._buffer[: end + 1]
                if line.strip():
                    return line
                continue
            if len(self._buffer) > MAX_ANSWER_BYTES:
                raise ProtocolError(f"an answer longer than {MAX_ANSWER_BYTES} bytes")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("deadline passed")
            sock.settimeout(remaining)
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionResetError("the daemon closed the connection before answering")
            self._buffer += chunk

    def _decode(self, method: str, call_id: int, line: bytes) -> Any:
        try:
            response = json.loads(line)
        except ValueError as e:
            raise ProtocolError(f"{method}: the answer is not JSON: {e}") from e
        if not isinstance(response, dict) or response.get("jsonrpc") != "2.0":
            raise ProtocolError(f"{method}: not a JSON-RPC 2.0 response: {line[:200]!r}")
        answer_id = response.get("id")
        has_error = "error" in response
        # An error with a null id answers the line the daemon could not read, which with one
        # call in flight is ours (a line too long, a read timeout).
        if answer_id != call_id and not (answer_id is None and has_error):
            raise ProtocolError(
                f"{method}: answer for another call (id {answer_id!r}, sent {call_id})"
            )
        if has_error == ("result" in response):
            raise ProtocolError(f"{method}: a response needs exactly one of result and error")
        if has_error:
            raise error_from_wire(response["error"])
        return response["result"]

    # --- agent methods ---

    def identity(self) -> JsonObject:
        """The agent the daemon takes this process to be: the agent view (id, user, status,
        selectors, public key and its protection attributes, certificate)."""
        return self._object(self.call("agent.identity"))

    def attest(self, nonce: str | None = None) -> JsonObject:
        """A runtime attestation over `nonce` (8 to 512 bytes, chosen by the verifier), signed
        by the agent's key: `{attestation, kid, bundle}`. Without a nonce a random one is used;
        it is the `nonce` claim of the attestation's payload."""
        if nonce is None:
            nonce = secrets.token_hex(16)
        return self._object(self.call("agent.attest", {"nonce": nonce}))

    def authorize(
        self,
        voucher: str,
        amount: int,
        currency: str,
        payee: str,
        *,
        aud: str,
        category: str | None = None,
        transaction_id: str | None = None,
        nonce: str | None = None,
        facts: Mapping[str, int | str | bool] | None = None,
    ) -> JsonObject:
        """Asks for a payment authorization under `voucher` (id, digest, or the voucher chain).

        `amount` is in minor units of `currency`; `aud` names the verifier the authorization is
        for and `nonce` should be that verifier's (a random one is used without it). Pass the
        checkout's own `transaction_id`: the daemon refuses a second authorization of the same
        one (`duplicate_transaction`), which makes a retry after a lost answer safe. Without one,
        a random id is sent and that protection is lost. `facts` feed the voucher's conditions.

        Returns the result: `{status: "authorized", decision, ledger_seq, log_index, mandate,
        authorization, chain, attestation}` (the receipt; `mandate` is the AP2 chain to hand the
        merchant), or `{status: "pending_confirmation", decision}` when an operator must confirm
        (follow it with `payment_status`). A refusal by
        the policy raises `Denied` (or `AgentFrozen`) carrying the recorded `decision`.
        """
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise TypeError("amount must be an int of minor units")
        payment: JsonObject = {
            "amount": amount,
            "currency": currency,
            "payee": payee,
            "transaction_id": (
                transaction_id if transaction_id is not None else secrets.token_hex(16)
            ),
        }
        if category is not None:
            payment["category"] = category
        params: JsonObject = {
            "voucher": voucher,
            "payment": payment,
            "aud": aud,
            "nonce": nonce if nonce is not None else secrets.token_hex(16),
        }
        if facts:
            params["facts"] = dict(facts)
        return self._object(self.call("payment.authorize", params))

    def payment_status(self, decision: str, wait_ms: int | None = None) -> JsonObject:
        """The view of one of this agent's decisions. With `wait_ms` (at most 30000), a pending
        decision is waited on until an operator confirms or rejects it, or the time is up."""
        params: JsonObject = {"decision": decision}
        if wait_ms is not None:
            params["wait_ms"] = wait_ms
        answer = self.call("payment.status", params, timeout=self._waiting(wait_ms))
        return self._object(answer)

    def report(self, decision: str, outcome: str, reference: str | None = None) -> JsonObject:
        """Reports how an authorized payment ended: `outcome` is `succeeded`, `failed` or
        `refunded`; `reference` is the payment rail's. Returns the decision view."""
        params: JsonObject = {"decision": decision, "outcome": outcome}
        if reference is not None:
            params["reference"] = reference
        return self._object(self.call("payment.report", params))

    def record(self, kind: str, body: Mapping[str, Any]) -> JsonObject:
        """Puts a decision of the agent on the evidence log as a statement signed by its key.
        `kind` is the agent's label (1 to 64 of letters, digits and `. _ - :`), `body` a JSON
        object of at most 16 KiB. Returns `{index, leaf_hash, statement, signature, batch}` once it
        is durable: the statement's bytes (base64url), the agent key's signature over the root of
        the statements signed together, and the statement's path to that root."""
        return self._object(self.call("evidence.record", {"kind": kind, "body": dict(body)}))

    def delegate(
        self,
        voucher: str,
        agent: str,
        constraints: Sequence[Mapping[str, Any]],
        *,
        a2p2: Mapping[str, Any] | None = None,
        not_before: int | None = None,
        expires_at: int | None = None,
    ) -> JsonObject:
        """Delegates part of `voucher` to another agent of the same user. `constraints` is the
        child's full list of AP2 constraints and `a2p2` its A2P2 limits, as its open mandate
        will hold them (disclosed values), each equal to or narrower than the parent's. Times
        are Unix seconds (default: the parent's window). Returns `{id, digest, voucher}`, the
        voucher being the whole chain from the root."""
        params: JsonObject = {
            "voucher": voucher,
            "agent": agent,
            "constraints": [dict(c) for c in constraints],
        }
        if a2p2 is not None:
            params["a2p2"] = dict(a2p2)
        if not_before is not None:
            params["not_before"] = not_before
        if expires_at is not None:
            params["expires_at"] = expires_at
        return self._object(self.call("voucher.delegate", params))

    # --- evidence reads ---

    def checkpoint(self, at_least: int | None = None, wait_ms: int | None = None) -> JsonObject:
        """The newest signed checkpoint `{origin, size, note}`. With `at_least` and `wait_ms`,
        waits until one covers that many entries (else `NotYetCheckpointed`)."""
        params: JsonObject = {}
        if at_least is not None:
            params["at_least"] = at_least
        if wait_ms is not None:
            params["wait_ms"] = wait_ms
        answer = self.call("evidence.checkpoint", params, timeout=self._waiting(wait_ms))
        return self._object(answer)

    def inclusion(self, index: int, tree_size: int | None = None) -> JsonObject:
        """The RFC 9162 inclusion proof `{index, tree_size, leaf_hash, hashes}` of entry `index`
        in the tree of `tree_size` entries (default: the newest checkpoint's)."""
        params: JsonObject = {"index": index}
        if tree_size is not None:
            params["tree_size"] = tree_size
        return self._object(self.call("evidence.inclusion", params))

    def consistency(self, first: int, second: int | None = None) -> JsonObject:
        """The RFC 9162 consistency proof `{from, to, hashes}` between tree sizes `first` and
        `second` (default: the newest checkpoint's)."""
        params: JsonObject = {"from": first}
        if second is not None:
            params["to"] = second
        return self._object(self.call("evidence.consistency", params))

    def entry(self, index: int) -> JsonObject:
        """One evidence entry about this agent: `{index, kind, leaf_hash, entry}`, `entry` being
        the exact text that was hashed."""
        return self._object(self.call("evidence.entry", {"index": index}))

    # --- helpers ---

    def _waiting(self, wait_ms: int | None) -> float:
        """The deadline of a call that lets the daemon wait `wait_ms`."""
        return self.timeout + (wait_ms or 0) / 1000.0

    @staticmethod
    def _object(result: Any) -> JsonObject:
        if not isinstance(result, dict):
            raise ProtocolError(f"expected an object as result, got {type(result).__name__}")
        return result


def retry(
    call: Callable[[], T],
    *,
    attempts: int = 5,
    base_delay: float = 0.1,
    max_delay: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Runs `call()`, running it again while it raises a `RemoteError` the daemon marked
    retryable (busy, key store unavailable, storage error, shutting down, not yet
    checkpointed), at most `attempts` times in all.

    Between tries it sleeps an exponential backoff, doubling from `base_delay` and capped at
    `max_delay` seconds, of which a random half is kept so that many agents do not retry in step.
    Any other error, and the last retryable one, is raised as is. Transport errors are not
    retried: after a lost answer the first call may have taken effect.
    """
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    for attempt in range(attempts):
        try:
            return call()
        except RemoteError as e:
            if not e.retryable or attempt == attempts - 1:
                raise
            delay = min(max_delay, base_delay * (2**attempt))
            sleep(delay / 2 + random.uniform(0, delay / 2))
    raise AssertionError("unreachable")  # pragma: no cover
