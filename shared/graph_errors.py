"""Graph API errors: one hierarchy, classified from the error envelope.

Every Graph endpoint (media listing, token refresh, ``debug_token``) answers
errors with the same envelope ``{"error": {"message", "type", "code",
"error_subcode", "fbtrace_id", "is_transient"}}``, so the classification lives
here once and both the Graph client and the token rotation use it:

- :class:`GraphAuthError`: the token is rejected (190, 102 and subcodes).
- :class:`GraphThrottledError`: a rate limit (4, 17, 32, 613, 80001, 80002,
  or HTTP 429); the caller stops calling, since more calls prolong the block.
- :class:`GraphTransientError`: worth a retry after a pause (1, 2, 5xx,
  timeouts, connection errors).
- :class:`GraphResponseError`: anything else that is not usable data
  (malformed JSON, an HTML page, an unexpected shape, other error codes).

Every message passes through :func:`shared.redaction.redact`: Graph embeds
the token in URLs and requests quotes URLs in its exceptions.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import requests

from shared.redaction import redact
from shared.timestamps import utc_now

AUTH_CODES = frozenset({102, 190})
THROTTLE_CODES = frozenset({4, 17, 32, 613, 80001, 80002})
TRANSIENT_CODES = frozenset({1, 2})
# Usage headers are percentages of the quota; Meta throttles at 100, so a
# run stops a little before that rather than provoke a block.
THROTTLE_USAGE_PERCENT = 95.0
_USAGE_HEADERS = ("x-app-usage", "x-business-use-case-usage", "x-ad-account-usage")
_MAX_DETAIL = 300


class GraphError(Exception):
    """A Graph API call failed; the message is already redacted.

    Attributes
    ----------
    code, subcode
        The envelope's ``code`` and ``error_subcode`` when there was one.
    status
        The HTTP status, ``None`` when no response arrived.
    fbtrace_id
        Meta's trace id, for a support request.
    """

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        subcode: int | None = None,
        status: int | None = None,
        fbtrace_id: str | None = None,
    ) -> None:
        super().__init__(redact(message))
        self.code = code
        self.subcode = subcode
        self.status = status
        self.fbtrace_id = fbtrace_id

    def __str__(self) -> str:
        # Redact again on output: a secret registered after this error was
        # built (a token read later in the run) must not leak either.
        return redact(super().__str__())


class GraphAuthError(GraphError):
    """Instagram rejected the token (expired, revoked, password changed, ...)."""


class GraphThrottledError(GraphError):
    """Instagram rate-limits this app or account; stop calling for now.

    Attributes
    ----------
    retry_after
        When calling may resume, if Meta said (``estimated_time_to_regain_access``
        or ``Retry-After``); ``None`` when unknown.
    """

    def __init__(self, message: str, *, retry_after: datetime | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class GraphTransientError(GraphError):
    """A failure that may go away on retry (5xx, codes 1/2, timeouts, resets)."""

    def gave_up(self, attempts: int) -> GraphTransientError:
        """The same failure, saying that retrying stopped after ``attempts`` tries."""
        return GraphTransientError(
            f"{self} (gave up after {attempts} attempts)",
            code=self.code,
            subcode=self.subcode,
            status=self.status,
            fbtrace_id=self.fbtrace_id,
        )


class GraphResponseError(GraphError):
    """A response that is not usable data, or an error that a retry cannot fix."""


@dataclass(frozen=True)
class Usage:
    """Rate-limit usage reported in Graph's response headers.

    Attributes
    ----------
    percent
        The highest percentage found in any usage header (0 when none sent).
    regain_after
        Meta's ``estimated_time_to_regain_access``, when it gave one.
    """

    percent: float = 0.0
    regain_after: timedelta | None = None

    @property
    def near_limit(self) -> bool:
        """Whether usage is close enough to 100 % that calling should stop."""
        return self.percent >= THROTTLE_USAGE_PERCENT


def usage_from_headers(headers: Mapping[str, str]) -> Usage:
    """Read ``X-App-Usage``, ``X-Business-Use-Case-Usage`` and ``X-Ad-Account-Usage``.

    Parameters
    ----------
    headers
        Response headers (case-insensitive mapping, as requests gives them).

    Returns
    -------
    Usage
        The highest usage percentage and the longest regain time; unreadable
        headers count as no information rather than as an error.
    """
    lowered = {key.lower(): value for key, value in headers.items()}
    percents: list[float] = []
    regain_minutes: list[float] = []
    for name in _USAGE_HEADERS:
        raw = lowered.get(name)
        if not raw:
            continue
        try:
            parsed = json.loads(raw)
        except ValueError:
            continue
        for entry in _usage_entries(parsed):
            for key, value in entry.items():
                if not isinstance(value, int | float) or isinstance(value, bool):
                    continue
                if key == "estimated_time_to_regain_access":
                    regain_minutes.append(float(value))
                elif key in {"call_count", "total_time", "total_cputime", "acc_id_util_pct"}:
                    percents.append(float(value))
    regain = timedelta(minutes=max(regain_minutes)) if any(regain_minutes) else None
    return Usage(percent=max(percents, default=0.0), regain_after=regain)


def _usage_entries(parsed: Any) -> list[Mapping[str, Any]]:
    # X-App-Usage is one object; X-Business-Use-Case-Usage maps ids to lists.
    if not isinstance(parsed, dict):
        return []
    if all(isinstance(value, list) for value in parsed.values()) and parsed:
        return [entry for value in parsed.values() for entry in value if isinstance(entry, dict)]
    return [parsed]


def raise_for_graph_error(response: requests.Response, *, now: datetime | None = None) -> None:
    """Raise the matching :class:`GraphError` when ``response`` is not usable data.

    A 2xx response with a JSON object body and no ``error`` key passes. Usage
    headers on a successful response do not raise (the data is good); read
    them with :func:`usage_from_headers` to decide whether to call again.

    Parameters
    ----------
    response
        The response of any Graph API call.
    now
        The current time, for a throttle's ``retry_after``; the clock when omitted.

    Raises
    ------
    GraphAuthError, GraphThrottledError, GraphTransientError, GraphResponseError
        As classified from the error envelope, the HTTP status and the body.
    """
    status = response.status_code
    body = _json_body(response)
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        raise _from_envelope(body["error"], response, now)
    if status == 429:
        raise GraphThrottledError(
            "Graph API throttled the call (HTTP 429)",
            retry_after=_retry_after(response, now),
            status=status,
        )
    if status >= 500:
        raise GraphTransientError(f"Graph API server error (HTTP {status})", status=status)
    if 300 <= status < 400:
        # Graph API calls are never redirected; following one could send the
        # Authorization header somewhere else.
        raise GraphResponseError(f"Graph API redirected the call (HTTP {status})", status=status)
    if status >= 400:
        raise GraphResponseError(
            f"Graph API refused the call (HTTP {status}): {_snippet(response)}", status=status
        )
    if body is _NOT_JSON:
        kind = "an HTML page" if _looks_like_html(response) else "malformed JSON"
        raise GraphResponseError(
            f"Graph API sent {kind} instead of JSON (HTTP {status}): {_snippet(response)}",
            status=status,
        )
    if not isinstance(body, dict):
        raise GraphResponseError(
            f"Graph API sent JSON that is not an object (HTTP {status})", status=status
        )


def graph_json(response: requests.Response, *, now: datetime | None = None) -> dict[str, Any]:
    """Return the JSON object of a successful Graph response.

    ``now`` is passed on to :func:`raise_for_graph_error`.

    Raises
    ------
    GraphError
        As :func:`raise_for_graph_error` classifies the response.
    """
    raise_for_graph_error(response, now=now)
    body: dict[str, Any] = response.json()
    return body


def error_from_exception(exc: requests.RequestException) -> GraphError:
    """Classify a transport failure (no usable response) as a redacted GraphError.

    Timeouts and connection errors are transient; anything else (an invalid
    URL, too many redirects) is not worth a retry.
    """
    detail = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, requests.Timeout | requests.ConnectionError):
        return GraphTransientError(f"Graph API unreachable ({detail})")
    return GraphResponseError(f"Graph API call failed ({detail})")


_NOT_JSON = object()


def _json_body(response: requests.Response) -> Any:
    try:
        return json.loads(response.content or b"")
    except ValueError:
        return _NOT_JSON


def _from_envelope(
    error: Mapping[str, Any], response: requests.Response, now: datetime | None
) -> GraphError:
    code = _int(error.get("code"))
    subcode = _int(error.get("error_subcode"))
    status = response.status_code
    trace = error.get("fbtrace_id")
    fbtrace_id = str(trace) if trace else None
    message = str(error.get("message") or "no message")[:_MAX_DETAIL]
    label = f"HTTP {status}, code {code}" + (f", subcode {subcode}" if subcode is not None else "")
    details: dict[str, Any] = {
        "code": code,
        "subcode": subcode,
        "status": status,
        "fbtrace_id": fbtrace_id,
    }
    if code in THROTTLE_CODES:
        return GraphThrottledError(
            f"Graph API rate limit reached ({label}): {message}",
            retry_after=_retry_after(response, now),
            **details,
        )
    if code in AUTH_CODES:
        return GraphAuthError(
            f"Graph API rejected the access token ({label}): {message}", **details
        )
    if code in TRANSIENT_CODES or status >= 500 or error.get("is_transient") is True:
        return GraphTransientError(f"Graph API temporary error ({label}): {message}", **details)
    return GraphResponseError(f"Graph API error ({label}): {message}", **details)


def _retry_after(response: requests.Response, now: datetime | None) -> datetime | None:
    regain = usage_from_headers(response.headers).regain_after
    header = response.headers.get("Retry-After", "")
    if header.strip().isdigit():
        seconds = timedelta(seconds=int(header.strip()))
        regain = max(regain, seconds) if regain else seconds
    return (now or utc_now()) + regain if regain else None


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _looks_like_html(response: requests.Response) -> bool:
    content_type = response.headers.get("Content-Type", "").lower()
    start = response.content[:200].lstrip().lower()
    return "html" in content_type or start.startswith((b"<!doctype html", b"<html"))


def _snippet(response: requests.Response) -> str:
    text = response.content[:120].decode("utf-8", "replace")
    return " ".join(text.split()) or "(empty body)"
