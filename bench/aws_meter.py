"""Count AWS calls, and replay AWS answers so handler time excludes the round trips.

Both work below boto3 and PynamoDB, the way ``tests/conftest.py``'s ``aws_calls``
fixture does: every AWS call of either library goes through botocore's
``BaseClient._make_api_call``, and moto answers in-process from its
``BotocoreStubber`` at botocore's ``before-send`` hook.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import botocore.client
import botocore.session
from moto.core.botocore_stubber import BotocoreStubber

# DynamoDB operations that write, and where each keeps the items it writes.
_WRITE_OPERATIONS = frozenset(
    {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
)


@dataclass(frozen=True)
class AwsCall:
    """One botocore API call: service, operation and its parameters."""

    service: str
    operation: str
    params: dict[str, Any]
    seconds: float


@dataclass
class AwsMeter:
    """Every AWS API call made while the meter is active (see :func:`metered`)."""

    calls: list[AwsCall] = field(default_factory=list)
    clients_created: Counter[str] = field(default_factory=Counter)

    def clear(self) -> None:
        """Forget the calls and client creations recorded so far."""
        self.calls.clear()
        self.clients_created.clear()

    def count(self) -> int:
        """How many API calls were made."""
        return len(self.calls)

    def seconds(self) -> float:
        """Wall time spent inside AWS calls (moto's work included), summed."""
        return sum(call.seconds for call in self.calls)

    def operations(self) -> Counter[str]:
        """Calls per ``service:Operation``."""
        return Counter(f"{call.service}:{call.operation}" for call in self.calls)

    def items_written(self, partition: str) -> int:
        """DynamoDB items written (put, updated or deleted) in one ``pk`` partition.

        A transaction or batch of 25 items counts 25: the figure is what the
        table is asked to store, not how it is batched.
        """
        return sum(
            1
            for call in self.calls
            for key in _written_keys(call)
            if key.get("pk", {}).get("S") == partition
        )


def _written_keys(call: AwsCall) -> Iterator[dict[str, Any]]:
    if call.service != "dynamodb" or call.operation not in _WRITE_OPERATIONS:
        return
    params = call.params
    if call.operation == "PutItem":
        yield params["Item"]
    elif call.operation in ("UpdateItem", "DeleteItem"):
        yield params["Key"]
    elif call.operation == "BatchWriteItem":
        for requests in params["RequestItems"].values():
            for request in requests:
                put = request.get("PutRequest")
                yield put["Item"] if put else request["DeleteRequest"]["Key"]
    else:
        for action in params["TransactItems"]:
            for kind, body in action.items():
                if kind != "ConditionCheck":
                    yield body.get("Item") or body["Key"]


@contextmanager
def metered() -> Iterator[AwsMeter]:
    """Record every botocore API call, and every client created, inside the block.

    Creating a botocore client loads and parses the service's JSON model
    (tens of milliseconds), so a client per call is a cost worth seeing.
    """
    meter = AwsMeter()
    original = botocore.client.BaseClient._make_api_call  # type: ignore[attr-defined]
    original_create = botocore.session.Session.create_client

    def creating(session: Any, service_name: str, *args: Any, **kwargs: Any) -> Any:
        meter.clients_created[service_name] += 1
        return original_create(session, service_name, *args, **kwargs)

    def recording(client: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
        started = time.perf_counter()
        try:
            return original(client, operation_name, api_params)
        finally:
            service = client.meta.service_model.service_name
            elapsed = time.perf_counter() - started
            meter.calls.append(AwsCall(service, operation_name, api_params, elapsed))

    botocore.client.BaseClient._make_api_call = recording  # type: ignore[attr-defined]
    session_class: Any = botocore.session.Session
    session_class.create_client = creating
    try:
        yield meter
    finally:
        botocore.client.BaseClient._make_api_call = original  # type: ignore[attr-defined]
        session_class.create_client = original_create


class ReplayMissError(RuntimeError):
    """A replayed run sent a request that was never recorded."""


@dataclass
class AwsReplay:
    """Moto's answers, recorded once, then served back without running moto.

    While recording, each HTTP request botocore sends is answered by moto as
    usual and the raw answer (status, headers, body bytes) is kept, keyed by
    method, URL and body. While replaying, the same request gets the kept
    bytes back at once. botocore still serializes, signs and parses, and
    PynamoDB still deserializes, so only the network and the service's own
    work (moto's, standing in for AWS) drop out of a timing.
    """

    replaying: bool = False
    _answers: dict[tuple[str, str, bytes], Any] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def recorded(self) -> int:
        """How many distinct requests have an answer."""
        return len(self._answers)

    def answer(self, stubber: BotocoreStubber, request: Any, original: Any) -> Any:
        """Answer one request: from the recording when replaying, else from moto."""
        key = (str(request.method), str(request.url), _body_bytes(request.body))
        if self.replaying:
            try:
                return self._answers[key]
            except KeyError:
                raise ReplayMissError(
                    f"no recorded answer for {request.method} {request.url}"
                ) from None
        answer = original(stubber, request)
        if answer is not None:
            status, headers, body = answer
            with self._lock:
                self._answers[key] = (status, dict(headers), body)
        return answer


def _body_bytes(body: Any) -> bytes:
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    # A streamed upload is never replayed; its identity is enough to keep
    # it from matching another request.
    return repr(id(body)).encode()


@contextmanager
def replayable() -> Iterator[AwsReplay]:
    """Record moto's answers inside the block; set ``replaying`` to serve them back.

    Must be used inside an active ``moto.mock_aws()``.
    """
    replay = AwsReplay()
    original = BotocoreStubber.process_request

    def process_request(stubber: BotocoreStubber, request: Any) -> Any:
        return replay.answer(stubber, request, original)

    stubber_class: Any = BotocoreStubber
    stubber_class.process_request = process_request
    try:
        yield replay
    finally:
        stubber_class.process_request = original
