"""HTTP plumbing of the serve function: events in, cacheable and hardened responses out.

Requests arrive as API Gateway HTTP API payload 2.0 events; a Lambda
Function URL sends the same shape (REST-style 1.0 events are read too).

Caching: every 200 carries a strong ETag over its bytes and answers a
matching ``If-None-Match`` with 304. Lifetimes are bounded by the presigned
image URLs a page holds: they stay valid for at least 30 minutes after the
page is made (see :mod:`shared.presign`), and the longest a cache may serve a
page here is ``s-maxage`` + ``stale-if-error`` = 25 minutes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qsl

FRESH_CACHE = "public, max-age=60, s-maxage=300, stale-while-revalidate=300, stale-if-error=1200"
# A degraded page should be replaced soon after the source recovers.
DEGRADED_CACHE = "public, max-age=10, s-maxage=30, stale-while-revalidate=30, stale-if-error=1200"
# 400/404/405 depend only on the URL.
ERROR_CACHE = "public, max-age=300, s-maxage=300"
NO_STORE = "no-store"
RETRY_AFTER_SECONDS = 30

HTML = "text/html; charset=utf-8"
JSON = "application/json"
_NON_HTML_CSP = "default-src 'none'; frame-ancestors 'none'; sandbox"
_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Strict-Transport-Security": "max-age=31536000",
}


@dataclass(frozen=True)
class Request:
    """The parts of an HTTP request the serve function looks at.

    Attributes
    ----------
    method
        Upper case.
    path
        The raw (still percent-encoded) path, without an API stage prefix.
    query
        Query parameters; repeated names are joined with ``,`` as API
        Gateway does.
    headers
        Lower-case names.
    """

    method: str
    path: str
    query: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> Request:
        """Read a payload 2.0 (HTTP API, Function URL) or 1.0 (REST) event."""
        context = event.get("requestContext") or {}
        http = context.get("http") or {}
        method = str(http.get("method") or event.get("httpMethod") or "GET").upper()
        raw_path = event.get("rawPath")
        if raw_path is not None:
            path = str(raw_path)
            stage = context.get("stage")
            # An HTTP API's named stage (not $default) prefixes rawPath.
            if stage and stage != "$default" and path.startswith(f"/{stage}/"):
                path = path[len(stage) + 1 :]
        else:
            path = str(event.get("path") or "/")
        query = event.get("queryStringParameters")
        if query is None:
            query = _joined(parse_qsl(str(event.get("rawQueryString") or ""), True))
        headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
        return cls(method, path, {str(k): str(v) for k, v in query.items()}, headers)


@dataclass(frozen=True)
class Response:
    """An HTTP response, turned into the Lambda proxy result by :meth:`to_event`."""

    status: int
    body: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)

    def to_event(self, *, include_body: bool = True) -> dict[str, Any]:
        """The Lambda proxy result; ``include_body=False`` answers a HEAD."""
        return {
            "statusCode": self.status,
            "headers": dict(self.headers),
            "body": self.body if include_body else "",
            "isBase64Encoded": False,
        }


def content_security_policy(nonce: str, http_image_origins: Iterable[str] = ()) -> str:
    """The CSP of an HTML page.

    Parameters
    ----------
    nonce
        The nonce of the page's inline ``<style>`` and ``<script>``.
    http_image_origins
        Plain-http image sources that the page may load (the local endpoint,
        exact ``MEDIA_HOSTS``); everything else must be https.

    Returns
    -------
    str
        No script or style without the nonce, no framing, no plugins, no
        forms, no base URL changes; images from https and the listed origins.
    """
    images = " ".join(["https:", "data:", *http_image_origins])
    return (
        f"default-src 'none'; img-src {images}; style-src 'nonce-{nonce}'; "
        f"script-src 'nonce-{nonce}'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    )


def html_response(
    status: int,
    html: str,
    csp: str,
    cache_control: str,
    *,
    etag: str | None = None,
    **headers: str,
) -> Response:
    """An HTML response with an ETag (``etag`` when the renderer already hashed the page)."""
    return _response(status, html, HTML, csp, cache_control, headers, etag)


def json_response(status: int, body: str, cache_control: str, **headers: str) -> Response:
    """A JSON response with an ETag and the security headers."""
    return _response(status, body, JSON, _NON_HTML_CSP, cache_control, headers)


def strong_etag(body: str) -> str:
    """A strong entity tag over the exact bytes of ``body``."""
    return '"' + hashlib.sha256(body.encode()).hexdigest()[:40] + '"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an ``If-None-Match`` header matches ``etag``.

    Uses the weak comparison that RFC 9110 prescribes for ``If-None-Match``
    (``W/"x"`` matches ``"x"``); ``*`` matches anything.
    """
    if not if_none_match:
        return False
    for candidate in if_none_match.split(","):
        tag = candidate.strip()
        if tag == "*" or tag.removeprefix("W/") == etag:
            return True
    return False


def conditional(request: Request, response: Response) -> Response:
    """``304 Not Modified`` (no body) if the client already holds ``response``."""
    etag = response.headers.get("ETag")
    if response.status != 200 or etag is None:
        return response
    if not etag_matches(request.headers.get("if-none-match"), etag):
        return response
    kept = {k: v for k, v in response.headers.items() if k != "Content-Type"}
    return replace(response, status=304, body="", headers=kept)


def _response(
    status: int,
    body: str,
    content_type: str,
    csp: str,
    cache_control: str,
    extra: Mapping[str, str],
    etag: str | None = None,
) -> Response:
    headers = {
        "Content-Type": content_type,
        "Cache-Control": cache_control,
        "Content-Security-Policy": csp,
        **_SECURITY_HEADERS,
        **{name.replace("_", "-"): value for name, value in extra.items()},
    }
    if status == 200:
        headers["ETag"] = etag or strong_etag(body)
    return Response(status, body, headers)


def _joined(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    query: dict[str, str] = {}
    for name, value in pairs:
        query[name] = f"{query[name]},{value}" if name in query else value
    return query
