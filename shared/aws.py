"""AWS clients, created lazily and once per container.

Module import stays cheap (no client is built at import time) so a cold start
pays only for the clients a request actually uses.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from shared.config import get_settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_secretsmanager import SecretsManagerClient

# Short timeouts: a guest must get a degraded page quickly rather than wait
# for a slow dependency; "standard" retry mode adds backoff with jitter.
_CLIENT_CONFIG: dict[str, Any] = {
    "connect_timeout": 2,
    "read_timeout": 5,
    "retries": {"mode": "standard", "max_attempts": 3},
}


def _client(service: str) -> Any:
    import boto3
    from botocore.config import Config

    settings = get_settings()
    extra: dict[str, Any] = {}
    if service == "s3":
        # Virtual-host addressing does not resolve against a local endpoint.
        style = "path" if settings.aws_endpoint_url else "virtual"
        extra["s3"] = {"addressing_style": style}
        extra["signature_version"] = "s3v4"
    return boto3.session.Session().client(  # type: ignore[call-overload]
        service,
        region_name=settings.aws_region,
        config=Config(**_CLIENT_CONFIG, **extra),
    )


@functools.cache
def s3_client() -> S3Client:
    """The container's S3 client."""
    client: S3Client = _client("s3")
    return client


@functools.cache
def secrets_client() -> SecretsManagerClient:
    """The container's Secrets Manager client."""
    client: SecretsManagerClient = _client("secretsmanager")
    return client


def reset_clients() -> None:
    """Forget cached clients (tests and local mode switch endpoints)."""
    s3_client.cache_clear()
    secrets_client.cache_clear()
