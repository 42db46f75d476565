"""Presigned S3 GET URLs that stay identical within a time bucket.

botocore's ``generate_presigned_url`` signs with the current second, so two
requests a second apart produce different URLs and no browser or CDN can
reuse an image it already holds. Here every URL is signed as of the start of
its time bucket (``X-Amz-Date`` = bucket start): within a bucket the same key
always gives the same URL. With a 30-minute bucket and a one-hour lifetime
every URL handed out stays valid for at least 30 more minutes, which bounds
how long pages holding it may be cached (see :mod:`shared.http`).

The signature is AWS Signature Version 4 in query-string form, exactly what
botocore produces for S3 (``UNSIGNED-PAYLOAD``, only ``host`` signed); a test
checks it byte for byte against botocore. Doing it here is also ~100x faster
than botocore per URL, which matters for a 500-photo page: the signing key
and the query string are derived once per bucket, each URL then costs one
SHA-256 and one HMAC.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple
from urllib.parse import quote, urlsplit

BUCKET_SECONDS = 1800
EXPIRES_SECONDS = 3600  # the brief's ceiling for presigned URLs
_ALGORITHM = "AWS4-HMAC-SHA256"
_MEMO_LIMIT = 20_000
# botocore refreshes temporary credentials well before they expire, so
# looking at them once a minute (not once per URL) is soon enough.
CREDENTIALS_RECHECK_SECONDS = 60


def epoch_seconds() -> float:
    """The default clock of time buckets (a seam for tests that let time pass)."""
    return time.time()


class SigningCredentials(NamedTuple):
    """AWS credentials to sign with (botocore's frozen credentials, checked)."""

    access_key: str
    secret_key: str
    token: str | None = None


@dataclass(frozen=True)
class _BucketSigner:
    """Everything that is constant for one time bucket and one credential."""

    starts_at: int
    identity: tuple[str, str | None]
    signing_key: bytes
    query: str
    sts_prefix: str
    # URLs already made in this bucket: a gallery rebuilt after its cache
    # expired signs nothing again.
    made: dict[str, str] = field(default_factory=dict)


class PresignedUrls:
    """Time-bucketed SigV4 presigned GET URLs for the objects of one bucket.

    Parameters
    ----------
    bucket
        ``MEDIA_BUCKET``.
    region
        The bucket's region.
    credentials
        Returns the current credentials (botocore refreshes them).
    endpoint_url
        ``AWS_ENDPOINT_URL`` (local mode, tests); URLs then use path style on
        that endpoint. ``None`` means AWS S3 with virtual-hosted URLs.
    bucket_seconds, expires_seconds
        Time bucket length and URL lifetime; the lifetime must exceed the
        bucket so a URL is never handed out already expired.
    clock
        Seconds since the epoch; this module's :func:`epoch_seconds` when omitted.
    """

    def __init__(
        self,
        bucket: str,
        region: str,
        credentials: Callable[[], SigningCredentials],
        endpoint_url: str | None = None,
        *,
        bucket_seconds: int = BUCKET_SECONDS,
        expires_seconds: int = EXPIRES_SECONDS,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if not 0 < bucket_seconds < expires_seconds <= 7 * 24 * 3600:
            raise ValueError("need 0 < bucket_seconds < expires_seconds <= 7 days")
        self._region = region
        self._credentials = credentials
        self._bucket_seconds = bucket_seconds
        self._expires = expires_seconds
        self._clock = clock or epoch_seconds
        self._lock = threading.Lock()
        self._current: _BucketSigner | None = None
        self._credentials_checked_at = float("-inf")
        if endpoint_url:
            parts = urlsplit(endpoint_url)
            self._scheme, self._host = parts.scheme, parts.netloc
            self._path_prefix = parts.path.rstrip("/") + "/" + quote(bucket, safe="") + "/"
        elif "." in bucket:
            # A dotted bucket name breaks the TLS wildcard of virtual hosting.
            self._scheme, self._host = "https", f"s3.{region}.amazonaws.com"
            self._path_prefix = f"/{bucket}/"
        else:
            self._scheme, self._host = "https", f"{bucket}.s3.{region}.amazonaws.com"
            self._path_prefix = "/"

    def valid_until(self) -> datetime:
        """When URLs made now stop working (bucket start + lifetime)."""
        starts_at = self._bucket_start(self._clock())
        return datetime.fromtimestamp(starts_at + self._expires, UTC)

    def url(self, key: str) -> str:
        """The presigned GET URL of ``key``.

        Parameters
        ----------
        key
            The object key, any characters S3 allows.

        Returns
        -------
        str
            The same string for the same key until the time bucket ends.
        """
        signer = self._signer()
        made = signer.made.get(key)
        if made is not None:
            return made
        path = self._path_prefix + quote(key, safe="/~")
        canonical = f"GET\n{path}\n{signer.query}\nhost:{self._host}\n\nhost\nUNSIGNED-PAYLOAD"
        string_to_sign = signer.sts_prefix + hashlib.sha256(canonical.encode()).hexdigest()
        signature = hmac.digest(signer.signing_key, string_to_sign.encode(), "sha256").hex()
        url = f"{self._scheme}://{self._host}{path}?{signer.query}&X-Amz-Signature={signature}"
        if len(signer.made) < _MEMO_LIMIT:
            signer.made[key] = url
        return url

    def _bucket_start(self, now: float) -> int:
        return int(now // self._bucket_seconds) * self._bucket_seconds

    def _signer(self) -> _BucketSigner:
        now = self._clock()
        starts_at = self._bucket_start(now)
        current = self._current
        if (
            current is not None
            and current.starts_at == starts_at
            and now < self._credentials_checked_at + CREDENTIALS_RECHECK_SECONDS
        ):
            return current
        credentials = self._credentials()
        identity = (credentials.access_key, credentials.token)
        with self._lock:
            self._credentials_checked_at = now
            signer = self._current
            if signer is None or signer.starts_at != starts_at or signer.identity != identity:
                signer = self._current = self._derive(starts_at, credentials)
            return signer

    def _derive(self, starts_at: int, credentials: SigningCredentials) -> _BucketSigner:
        moment = datetime.fromtimestamp(starts_at, UTC)
        amz_date = moment.strftime("%Y%m%dT%H%M%SZ")
        datestamp = amz_date[:8]
        scope = f"{datestamp}/{self._region}/s3/aws4_request"
        params = {
            "X-Amz-Algorithm": _ALGORITHM,
            "X-Amz-Credential": f"{credentials.access_key}/{scope}",
            "X-Amz-Date": amz_date,
            "X-Amz-Expires": str(self._expires),
            "X-Amz-SignedHeaders": "host",
        }
        if credentials.token:
            params["X-Amz-Security-Token"] = credentials.token
        query = "&".join(
            f"{quote(name, safe='-_.~')}={quote(value, safe='-_.~')}"
            for name, value in sorted(params.items())
        )
        key = ("AWS4" + credentials.secret_key).encode()
        for part in (datestamp, self._region, "s3", "aws4_request"):
            key = hmac.digest(key, part.encode(), "sha256")
        return _BucketSigner(
            starts_at=starts_at,
            identity=(credentials.access_key, credentials.token),
            signing_key=key,
            query=query,
            sts_prefix=f"{_ALGORITHM}\n{amz_date}\n{scope}\n",
        )
