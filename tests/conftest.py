"""Shared fixtures: configuration, moto-backed AWS, AWS call counting and faults."""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import botocore.client
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from shared import aws, config, redaction
from shared.models import create_table

TABLE = "gallery-media"
BUCKET = "gallery-bucket"
SECRET_ID = "gallery/instagram-token"
# The `browser` fixture for the page tests.
pytest_plugins = ["tests.browser"]

SENTINEL_TOKEN = "IGAAsentinelTOKEN0123456789abcdef"
GRAPH = "https://graph.instagram.com/v25.0"


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """GIVEN a clean, fully configured environment for every test."""
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "TOKEN_SECRET_ID", "IG_ACCESS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("MEDIA_TABLE", TABLE)
    monkeypatch.setenv("MEDIA_BUCKET", BUCKET)
    monkeypatch.setenv("GRAPH_API_URL", GRAPH)
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "SailJadaGallery")
    _reset_caches()
    yield
    _reset_caches()


@pytest.fixture(autouse=True)
def offline_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """GIVEN no DNS: only IP literals and localhost resolve, anything else fails at once.

    Tests never reach the internet; without this, a lookup of a CDN host can
    hang until the resolver times out. Tests that need names resolve them with
    ``tests.media_fakes.FakeDns``.
    """
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name != "localhost":
            try:
                ipaddress.ip_address(name.strip("[]"))
            except ValueError:
                raise socket.gaierror(socket.EAI_NONAME, "offline test: no DNS") from None
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


class _CurrentStdout:
    """Writes to whatever ``sys.stdout`` is at the time (pytest swaps it per phase)."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


@pytest.fixture
def logs(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> pytest.CaptureFixture[str]:
    """Powertools log lines and EMF metrics of every function, captured from stdout.

    A Powertools handler keeps the ``sys.stdout`` of import time (as on Lambda,
    where it never changes); point it at this test's capture.
    """
    for service in ("ingest", "serve", "refresh"):
        for handler in logging.getLogger(service).handlers:
            if isinstance(handler, logging.StreamHandler):
                monkeypatch.setattr(handler, "stream", _CurrentStdout())
    return capsys


def _reset_caches() -> None:
    config.get_settings.cache_clear()
    aws.reset_clients()
    redaction.forget_secrets()


@pytest.fixture
def aws_env() -> Iterator[None]:
    """GIVEN moto-backed AWS with the table, the bucket and no token secret yet."""
    with mock_aws():
        create_table(config.get_settings())
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=BUCKET)
        yield


@pytest.fixture
def token_secret(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> str:
    """GIVEN the token secret holding the sentinel token; returns its id."""
    boto3.client("secretsmanager", region_name="us-east-1").create_secret(
        Name=SECRET_ID, SecretString=json.dumps({"access_token": SENTINEL_TOKEN})
    )
    monkeypatch.setenv("TOKEN_SECRET_ID", SECRET_ID)
    config.get_settings.cache_clear()
    return SECRET_ID


@dataclass
class AwsCalls:
    """Every AWS API call made through botocore (boto3 and PynamoDB alike)."""

    calls: list[tuple[str, str]] = field(default_factory=list)
    failing: dict[str, Exception] = field(default_factory=dict)

    def fail(self, operation: str, error: Exception | None = None) -> None:
        """Make every call of ``operation`` (e.g. ``Query``) raise ``error``."""
        self.failing[operation] = error or ClientError(
            {"Error": {"Code": "InternalServerError", "Message": "injected fault"}},
            operation,
        )

    def operations(self) -> list[str]:
        """The operation names called, in order."""
        return [operation for _, operation in self.calls]


@pytest.fixture
def aws_calls(monkeypatch: pytest.MonkeyPatch) -> AwsCalls:
    """Count AWS calls and inject faults, below boto3 and PynamoDB."""
    recorder = AwsCalls()
    original = botocore.client.BaseClient._make_api_call  # type: ignore[attr-defined]

    def recording(self: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
        recorder.calls.append((self.meta.service_model.service_name, operation_name))
        if operation_name in recorder.failing:
            raise recorder.failing[operation_name]
        return original(self, operation_name, api_params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", recording)
    return recorder
