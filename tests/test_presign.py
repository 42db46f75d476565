"""Time-bucketed presigned URLs: botocore-identical signatures, stable within a bucket."""

from __future__ import annotations

import datetime as dt
from typing import Any
from unittest import mock
from urllib.parse import parse_qs, parse_qsl, urlsplit

import boto3
import botocore.auth
import pytest
import requests
from botocore.config import Config
from moto.server import ThreadedMotoServer

from shared.presign import (
    BUCKET_SECONDS,
    CREDENTIALS_RECHECK_SECONDS,
    PresignedUrls,
    SigningCredentials,
)

CREDENTIALS = SigningCredentials("AKIDEXAMPLE", "wJalr/K7MDENG+bPxRfiCYEXAMPLEKEY", "tok/en+=abc")
BUCKET_START = dt.datetime(2026, 4, 29, 23, 30, tzinfo=dt.UTC)
KEYS = [
    "uploads/2026-04-29/IMG 0001.jpg",
    'uploads/2026-04-29/"><img src=x onerror=alert(1)>.jpg',
    "uploads/2026-04-29/javascript:alert(1).jpg",
    "uploads/été/ü~+=&?#%.jpg",
    "instagram/17896450804038745/640.jpg",
]


def botocore_url(bucket: str, key: str, endpoint: str, style: str) -> str:
    session = boto3.session.Session(
        aws_access_key_id=CREDENTIALS.access_key,
        aws_secret_access_key=CREDENTIALS.secret_key,
        aws_session_token=CREDENTIALS.token,
        region_name="us-west-2",
    )
    s3_options: Any = {"addressing_style": style}
    client = session.client(
        "s3", endpoint_url=endpoint, config=Config(signature_version="s3v4", s3=s3_options)
    )
    frozen = BUCKET_START.replace(tzinfo=None)
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=frozen):
        url: str = client.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=3600
        )
    return url


def parts(url: str) -> tuple[str, str, str, list[tuple[str, str]]]:
    split = urlsplit(url)
    return split.scheme, split.netloc, split.path, sorted(parse_qsl(split.query))


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize(
    ("bucket", "endpoint", "style", "ours_endpoint"),
    [
        ("gallery-bucket", "https://s3.us-west-2.amazonaws.com", "virtual", None),
        ("gallery.bucket", "https://s3.us-west-2.amazonaws.com", "path", None),
        ("gallery-bucket", "http://127.0.0.1:5000", "path", "http://127.0.0.1:5000"),
    ],
)
def test_signature_matches_botocore(
    key: str, bucket: str, endpoint: str, style: str, ours_endpoint: str | None
) -> None:
    """GIVEN botocore's clock frozen at a bucket start
    WHEN both sign the same key THEN host, path and every query value (signature
    included) are identical."""
    ours = PresignedUrls(
        bucket,
        "us-west-2",
        lambda: CREDENTIALS,
        ours_endpoint,
        clock=lambda: BUCKET_START.timestamp() + 1799,
    ).url(key)
    assert parts(ours) == parts(botocore_url(bucket, key, endpoint, style))


def test_urls_are_identical_within_a_bucket_and_change_after() -> None:
    """GIVEN a clock moving through one 30-minute bucket into the next
    WHEN the same key is signed THEN the URL only changes at the bucket edge,
    and it is always valid for at least 30 more minutes."""
    now = [BUCKET_START.timestamp()]
    urls = PresignedUrls("gallery-bucket", "us-east-1", lambda: CREDENTIALS, clock=lambda: now[0])
    first = urls.url("uploads/2026-04-29/a.jpg")
    now[0] += BUCKET_SECONDS - 1
    assert urls.url("uploads/2026-04-29/a.jpg") == first
    assert urls.valid_until() - dt.datetime.fromtimestamp(now[0], dt.UTC) >= dt.timedelta(
        minutes=30
    )
    now[0] += 1
    later = urls.url("uploads/2026-04-29/a.jpg")
    assert later != first
    query = parse_qs(urlsplit(later).query)
    assert query["X-Amz-Date"] == ["20260430T000000Z"]
    assert query["X-Amz-Expires"] == ["3600"]


def test_rotated_credentials_sign_within_a_minute() -> None:
    """GIVEN credentials rotated in the middle of a bucket
    WHEN signing right away and a minute later
    THEN the old key signs until the next check, then the new key does."""
    current = [CREDENTIALS]
    now = [BUCKET_START.timestamp()]
    urls = PresignedUrls("gallery-bucket", "us-east-1", lambda: current[0], clock=lambda: now[0])
    before = urls.url("k.jpg")
    current[0] = SigningCredentials("AKIDNEW", "other-secret", None)
    assert urls.url("k.jpg") == before
    now[0] += CREDENTIALS_RECHECK_SECONDS
    after = parse_qs(urlsplit(urls.url("k.jpg")).query)
    assert after["X-Amz-Credential"][0].startswith("AKIDNEW/")
    assert "X-Amz-Security-Token" not in after
    assert urls.url("k.jpg") != before


def test_a_local_s3_endpoint_serves_the_presigned_url() -> None:
    """GIVEN a moto S3 server holding an object (local mode's endpoint)
    WHEN our path-style URL is fetched over HTTP THEN the object comes back.

    moto does not verify signatures; the botocore comparison above covers them.
    This checks the URL addresses the right object, key encoding included."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    try:
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        s3.create_bucket(Bucket="presign-bucket")
        s3.put_object(Bucket="presign-bucket", Key="uploads/2026-04-29/a b.jpg", Body=b"jpeg")
        url = PresignedUrls(
            "presign-bucket",
            "us-east-1",
            lambda: SigningCredentials("testing", "testing"),
            endpoint,
        ).url("uploads/2026-04-29/a b.jpg")
        response = requests.get(url, timeout=5)
        assert response.status_code == 200
        assert response.content == b"jpeg"
    finally:
        # moto's state is process-wide: leave nothing for other tests.
        requests.post(f"{endpoint}/moto-api/reset", timeout=5)
        server.stop()


def test_lifetime_must_outlast_the_bucket() -> None:
    """GIVEN a lifetime shorter than the bucket WHEN constructing THEN it is refused."""
    with pytest.raises(ValueError, match="bucket_seconds"):
        PresignedUrls("b", "us-east-1", lambda: CREDENTIALS, bucket_seconds=3600)
