"""The token endpoints of Instagram and Facebook, over HTTP.

- Instagram login: ``GET https://graph.instagram.com/refresh_access_token``
  (``grant_type=ig_refresh_token``; the endpoint is not versioned).
- Facebook login: ``GET https://graph.facebook.com/<version>/oauth/access_token``
  (``grant_type=fb_exchange_token``).
- Either flavour: ``GET <host>/<version>/me`` proves a token works.

Tokens are bound to their flavour's host, so the host follows the token's
kind and only the version comes from ``GRAPH_API_URL``; when
``GRAPH_API_URL`` points at a host other than Meta's two (the local mode's
stand-in, a test server), every call goes to that host instead.

Every call has (connect, read) timeouts; transient failures are retried a
few times with backoff; errors are classified by :mod:`shared.graph_errors`,
whose messages are redacted. Tokens received are registered for redaction
before anything else happens to them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests

from shared.graph_errors import (
    GraphResponseError,
    GraphTransientError,
    error_from_exception,
    graph_json,
)
from shared.redaction import register_secret
from shared.tokens import FACEBOOK, INSTAGRAM

# (connect, read): a slightly-over-3 s connect timeout outlasts one lost SYN.
TIMEOUT = (3.05, 10.0)
MAX_ATTEMPTS = 3
BACKOFF_SECONDS = 1.0
# Each flavour's tokens work only on its own host.
_HOST_OF_KIND = {INSTAGRAM: "graph.instagram.com", FACEBOOK: "graph.facebook.com"}
_FIELDS_OF_KIND = {INSTAGRAM: "user_id,username", FACEBOOK: "id,name"}


@dataclass(frozen=True)
class IssuedToken:
    """A token endpoint's answer.

    Attributes
    ----------
    access_token
        The new token (not shown by ``repr``).
    expires_in
        Its lifetime in seconds; ``None`` when the endpoint sent none.
    """

    access_token: str = field(repr=False)
    expires_in: int | None


@dataclass(frozen=True)
class Identity:
    """Who a token belongs to, from ``/me``."""

    user_id: str | None
    username: str | None


class TokenEndpoints:
    """Calls the token endpoints and ``/me``.

    Parameters
    ----------
    graph_api_url
        ``GRAPH_API_URL`` (version included).
    session
        HTTP session; a new one by default.
    sleep
        Called with the pause in seconds between retries (tests record it).

    Attributes
    ----------
    calls
        HTTP calls made so far, retries included.
    """

    def __init__(
        self,
        graph_api_url: str,
        *,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        parts = urlsplit(graph_api_url.rstrip("/"))
        self._version_path = parts.path
        # None: a stand-in serves every flavour at GRAPH_API_URL's origin.
        self._origin: str | None = (
            None
            if (parts.hostname or "").lower() in _HOST_OF_KIND.values()
            else f"{parts.scheme}://{parts.netloc}"
        )
        self._session = session or requests.Session()
        self._sleep = sleep or time.sleep
        self.calls = 0

    def refresh_instagram(self, access_token: str) -> IssuedToken:
        """Refresh an Instagram-login token (``ig_refresh_token``).

        Raises
        ------
        GraphError
            When the call fails (``GraphAuthError``: the token is rejected).
        """
        body = self._get(
            f"{self._origin_of(INSTAGRAM)}/refresh_access_token",
            {"grant_type": "ig_refresh_token", "access_token": access_token},
        )
        return _issued(body)

    def exchange_facebook(self, access_token: str, app_id: str, app_secret: str) -> IssuedToken:
        """Exchange a Facebook-login user token for a long-lived one (``fb_exchange_token``).

        Raises
        ------
        GraphError
            When the call fails (``GraphAuthError``: the token is rejected).
        """
        body = self._get(
            f"{self._origin_of(FACEBOOK)}{self._version_path}/oauth/access_token",
            {
                "grant_type": "fb_exchange_token",
                "client_id": app_id,
                "client_secret": app_secret,
                "fb_exchange_token": access_token,
            },
        )
        return _issued(body)

    def identify(self, access_token: str, kind: str, *, retry: bool = True) -> Identity:
        """Call ``/me`` with ``access_token``: proof that the token works.

        Parameters
        ----------
        access_token
            The token to try (sent as a Bearer header, never in the URL).
        kind
            ``instagram`` or ``facebook``: which host and fields.
        retry
            Whether transient failures are retried; a caller that can do
            without the answer passes ``False`` rather than wait.

        Raises
        ------
        GraphError
            When the call fails (``GraphAuthError``: the token is rejected).
        """
        body = self._get(
            f"{self._origin_of(kind)}{self._version_path}/me",
            {"fields": _FIELDS_OF_KIND.get(kind, "id")},
            headers={"Authorization": f"Bearer {access_token}"},
            attempts=MAX_ATTEMPTS if retry else 1,
        )
        user_id = body.get("user_id") or body.get("id")
        username = body.get("username") or body.get("name")
        return Identity(
            user_id=str(user_id) if user_id else None,
            username=str(username) if username else None,
        )

    def _origin_of(self, kind: str) -> str:
        return self._origin or f"https://{_HOST_OF_KIND.get(kind, _HOST_OF_KIND[INSTAGRAM])}"

    def _get(
        self,
        url: str,
        params: Mapping[str, str],
        headers: Mapping[str, str] | None = None,
        attempts: int = MAX_ATTEMPTS,
    ) -> dict[str, Any]:
        attempt = 1
        while True:
            try:
                return self._call(url, params, headers)
            except GraphTransientError as exc:
                if attempts == 1:
                    raise
                if attempt >= attempts:
                    raise exc.gave_up(attempt) from None
            self._sleep(BACKOFF_SECONDS * 2 ** (attempt - 1))
            attempt += 1

    def _call(
        self, url: str, params: Mapping[str, str], headers: Mapping[str, str] | None
    ) -> dict[str, Any]:
        self.calls += 1
        try:
            response = self._session.get(
                url, params=params, headers=headers, timeout=TIMEOUT, allow_redirects=False
            )
        except requests.RequestException as exc:
            # "from None": requests quotes the URL, token parameters included.
            raise error_from_exception(exc) from None
        return graph_json(response)


def _issued(body: Mapping[str, Any]) -> IssuedToken:
    token = body.get("access_token")
    if not isinstance(token, str) or not token.strip():
        raise GraphResponseError("the token endpoint answered without an access_token")
    register_secret(token.strip())
    return IssuedToken(access_token=token.strip(), expires_in=_seconds(body.get("expires_in")))


def _seconds(value: Any) -> int | None:
    # Meta sends a number; a numeric string is tolerated, anything else is "unknown".
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        seconds = int(value)
    except (ValueError, OverflowError):
        return None
    return seconds if seconds > 0 else None
