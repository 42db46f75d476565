"""The benchmark's environment: fake AWS credentials, one table, one bucket.

Every section runs against moto (in-process or as a local server), never real
AWS: the credentials set here are dummies and ``AWS_PROFILE`` is removed.
"""

from __future__ import annotations

import copy
import importlib
import os
import sys
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import boto3
from moto import mock_aws

from local.lambda_context import LocalLambdaContext
from shared import aws, config, redaction
from shared.config import Settings
from shared.models import create_table

TABLE = "bench-media"
BUCKET = "bench-media-bucket"
REGION = "us-east-1"
GRAPH_URL = "https://graph.instagram.com/v25.0"
BENCH_TOKEN = "IGAAbenchTOKEN0123456789abcdefBENCH"  # noqa: S105 - accepted by the fake only

BASE_ENV: dict[str, str] = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "MEDIA_TABLE": TABLE,
    "MEDIA_BUCKET": BUCKET,
    "GRAPH_API_URL": GRAPH_URL,
    "IG_ACCESS_TOKEN": BENCH_TOKEN,
    "POWERTOOLS_METRICS_NAMESPACE": "SailJadaGallery",
}
_REMOVED = ("AWS_PROFILE", "AWS_ENDPOINT_URL", "TOKEN_SECRET_ID", "AWS_CONFIG_FILE")


@contextmanager
def quiet_stdout() -> Iterator[None]:
    """Send file descriptor 1 to /dev/null inside the block.

    The handlers log and emit EMF metrics to stdout as on Lambda; writing them
    is part of the cost measured, but the lines would drown the figures.
    Redirecting the descriptor (not ``sys.stdout``) also silences loggers that
    captured the stream when they were built.
    """
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def configure(extra: Mapping[str, str] | None = None) -> None:
    """Point this process at the benchmark's fake AWS and settings."""
    for name in _REMOVED:
        os.environ.pop(name, None)
    os.environ.update(BASE_ENV)
    os.environ.update(extra or {})
    reset_caches()


def reset_caches() -> None:
    """Forget cached settings, AWS clients and registered secrets."""
    config.get_settings.cache_clear()
    aws.reset_clients()
    redaction.forget_secrets()


def fresh_handler(module: str) -> Callable[[Any, Any], Any]:
    """A handler whose per-container state is empty, as in a new Lambda container.

    Settings and AWS clients are reset (:func:`reset_caches`); a handler module
    that memoises its wiring in a cached ``_container()`` (as ``ingest.app``
    does, and as its tests reset it) gets that cache cleared too. The module is
    not re-imported, so code holding a reference to it keeps working.
    """
    reset_caches()
    loaded = importlib.import_module(module)
    container = getattr(loaded, "_container", None)
    if callable(getattr(container, "cache_clear", None)):
        container.cache_clear()  # type: ignore[union-attr]
    handler: Callable[[Any, Any], Any] = loaded.handler
    return handler


def context(function: str) -> LocalLambdaContext:
    """A Lambda context for one invocation (the local mode's stand-in)."""
    return LocalLambdaContext(function_name=function, timeout_seconds=900)


@contextmanager
def moto_backend() -> Iterator[Settings]:
    """An in-process moto with the table and bucket created; yields the settings."""
    with mock_aws():
        reset_caches()
        settings = config.get_settings()
        create_table(settings)
        boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
        try:
            yield settings
        finally:
            reset_caches()


@contextmanager
def fast_moto_transactions() -> Iterator[None]:
    """Make moto's TransactWriteItems cost what DynamoDB's does: independent of table size.

    moto deep-copies the whole table once per item of a transaction, as its
    rollback snapshot. A backfill of 10,000 posts in transactions of 25 then
    copies the table 10,000 times and costs O(n²) in the fake alone. For
    transactions of ``Put`` and ``ConditionCheck`` only (all that ingest
    sends), a put replaces an item object and never mutates one, so a copy of
    the item dictionaries is an equally correct snapshot. Other transactions
    keep moto's own deep copy.
    """
    import moto.dynamodb.models as dynamodb_models
    from moto.dynamodb.models.table import Table

    namespace = vars(dynamodb_models)
    original = dynamodb_models.DynamoDBBackend.transact_write_items

    class _Snapshot:
        @staticmethod
        def deepcopy(value: Any) -> Any:
            if not isinstance(value, Table):
                return copy.deepcopy(value)
            snapshot = copy.copy(value)
            snapshot.items = defaultdict(
                dict,
                {
                    key: dict(inner) if isinstance(inner, dict) else inner
                    for key, inner in value.items.items()
                },
            )
            return snapshot

    def transact_write_items(backend: Any, transact_items: list[dict[str, Any]]) -> None:
        puts_only = all(next(iter(item)) in ("Put", "ConditionCheck") for item in transact_items)
        if not puts_only:
            return original(backend, transact_items)
        namespace["copy"] = _Snapshot
        try:
            return original(backend, transact_items)
        finally:
            namespace["copy"] = copy

    backend_class: Any = dynamodb_models.DynamoDBBackend
    backend_class.transact_write_items = transact_write_items
    try:
        yield
    finally:
        backend_class.transact_write_items = original
