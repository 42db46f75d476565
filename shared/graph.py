"""Instagram Graph API client: the account's media, page by page.

Built on one ``requests.Session`` per container. Every call has (connect,
read) timeouts and sends the token as an ``Authorization: Bearer`` header;
the token Graph embeds in ``paging.next`` URLs is stripped before the URL is
followed, so it never sits in a URL that an exception or a log might quote.

Failures are classified by :mod:`shared.graph_errors`: transient ones are
retried a bounded number of times with exponential backoff and full jitter;
a rejected token is re-read once (a rotation may just have replaced it);
throttling stops all calls of this client until Meta's regain time, since
more calls prolong the block.
"""

from __future__ import annotations

import functools
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import requests

from shared.config import Settings
from shared.graph_errors import (
    GraphAuthError,
    GraphResponseError,
    GraphThrottledError,
    GraphTransientError,
    Usage,
    error_from_exception,
    graph_json,
    usage_from_headers,
)
from shared.media import MalformedPostError, Post
from shared.timestamps import format_utc, utc_now
from shared.tokens import TokenRecord

# Children by field expansion: a carousel costs no extra call per child.
MEDIA_FIELDS = (
    "id,caption,media_type,media_product_type,media_url,permalink,thumbnail_url,timestamp,"
    "children{id,media_type,media_url,thumbnail_url}"
)
PAGE_LIMIT = 100
# (connect, read): a slightly-over-3 s connect timeout outlasts one lost SYN.
TIMEOUT = (3.05, 10.0)
MAX_ATTEMPTS = 4
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 8.0
# When Meta throttles without saying for how long.
DEFAULT_THROTTLE_PAUSE = timedelta(minutes=30)
# The media edge returns at most 10K posts: 100 pages of 100. A cursor chain
# longer than that is Graph misbehaving, not more data.
MAX_PAGES = 120
_MEDIA_ID = re.compile(r"[A-Za-z0-9_]{1,64}")


class TokenSource(Protocol):
    """Where the client gets its token (:class:`shared.tokens.TokenStore`)."""

    def current(self) -> TokenRecord:
        """The token to use now."""
        ...

    def invalidate(self) -> None:
        """Forget a cached token so that the next :meth:`current` reads it again."""
        ...


@dataclass(frozen=True)
class MediaPage:
    """One page of ``/<user>/media``.

    Attributes
    ----------
    posts
        The page's posts in the order Graph sent them (pinned posts first).
    skipped
        Media objects without a usable ``id`` or ``timestamp``.
    has_next
        Whether Graph offered a further page.
    """

    posts: tuple[Post, ...]
    skipped: int
    has_next: bool


@functools.cache
def http_session() -> requests.Session:
    """The container's HTTP session (connection reuse across runs)."""
    session = requests.Session()
    session.headers["User-Agent"] = "sailjada-gallery-ingest/1"
    return session


class GraphClient:
    """Reads the account's media from the Instagram Graph API.

    Parameters
    ----------
    settings
        ``GRAPH_API_URL`` and ``IG_USER_ID`` are used.
    tokens
        The token source; read before every call (it caches).
    session
        HTTP session; the container's shared one by default.
    sleep
        Called with the backoff in seconds between retries (tests pass a
        recorder so they do not wait).
    clock
        The current UTC time.
    page_limit
        ``limit`` of each media page.
    max_attempts
        Attempts per call for transient failures, first one included.
    """

    def __init__(
        self,
        settings: Settings,
        tokens: TokenSource,
        *,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], datetime] = utc_now,
        page_limit: int = PAGE_LIMIT,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        self._base = settings.graph_api_url.rstrip("/")
        base_parts = urlsplit(self._base)
        self._origin = (base_parts.scheme, base_parts.netloc.lower())
        self._user_id = settings.ig_user_id
        self._tokens = tokens
        self._session = session or http_session()
        self._sleep = sleep or time.sleep
        self._clock = clock
        self._page_limit = page_limit
        self._max_attempts = max(1, max_attempts)
        # (until, why): while throttled, no call is made at all.
        self._blocked: tuple[datetime, str] | None = None
        self.calls = 0
        self.usage = Usage()

    def media_pages(self) -> Iterator[MediaPage]:
        """Yield the account's media pages, newest first, one call per page.

        Pages are fetched lazily: a caller that stops iterating makes no
        further call.

        Raises
        ------
        GraphError
            When a page cannot be read; pages already yielded stay valid.
        """
        url = f"{self._base}/{quote(self._user_id, safe='')}/media"
        params: dict[str, str] | None = {"fields": MEDIA_FIELDS, "limit": str(self._page_limit)}
        followed: set[str] = set()
        for _ in range(MAX_PAGES):
            body = self._get(url, params)
            page, next_url = _parse_page(body)
            yield page
            if next_url is None:
                return
            url = self._next_url(next_url, followed)
            params = None
        raise GraphResponseError(f"Graph API paging did not end after {MAX_PAGES} pages")

    def get_media(self, media_id: str) -> Post:
        """Read one post again (fresh CDN URLs for the media archive).

        Raises
        ------
        ValueError
            When ``media_id`` is not a Graph id.
        GraphError
            When the call fails or the object is not a usable post.
        """
        if not _MEDIA_ID.fullmatch(media_id):
            raise ValueError(f"not a media id: {media_id[:80]!r}")
        body = self._get(f"{self._base}/{media_id}", {"fields": MEDIA_FIELDS})
        try:
            return Post.from_graph(body)
        except MalformedPostError as exc:
            raise GraphResponseError(f"Graph API sent an unusable media object: {exc}") from None

    def _get(self, url: str, params: Mapping[str, str] | None) -> dict[str, Any]:
        token_retried = False
        attempt = 0
        while True:
            attempt += 1
            self._check_not_blocked()
            token = self._tokens.current().access_token
            try:
                body = self._call(url, params, token)
            except GraphAuthError:
                if token_retried or not self._token_changed(token):
                    raise
                token_retried = True
                attempt -= 1  # a new token is a fresh start, not a retry
            except GraphThrottledError as exc:
                raise self._block(exc) from None
            except GraphTransientError as exc:
                if attempt >= self._max_attempts:
                    raise exc.gave_up(attempt) from None
                self._sleep(self._backoff(attempt))
            else:
                return body

    def _call(self, url: str, params: Mapping[str, str] | None, token: str) -> dict[str, Any]:
        self.calls += 1
        try:
            response = self._session.get(
                url,
                params=params,
                headers={"Authorization": f"Bearer {token}"},
                timeout=TIMEOUT,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise error_from_exception(exc) from None
        self.usage = usage_from_headers(response.headers)
        body = graph_json(response, now=self._clock())
        if self.usage.near_limit:
            # The data is good, but the next call would push into a block.
            until = self._clock() + (self.usage.regain_after or DEFAULT_THROTTLE_PAUSE)
            self._blocked = (until, f"usage at {self.usage.percent:.0f}% of the rate limit")
        return body

    def _token_changed(self, rejected: str) -> bool:
        self._tokens.invalidate()
        return self._tokens.current().access_token != rejected

    def _check_not_blocked(self) -> None:
        if self._blocked is None:
            return
        until, why = self._blocked
        if self._clock() < until:
            raise GraphThrottledError(
                f"Graph API throttling ({why}); not calling until {format_utc(until)}",
                retry_after=until,
            )

    def _block(self, exc: GraphThrottledError) -> GraphThrottledError:
        until = exc.retry_after or self._clock() + DEFAULT_THROTTLE_PAUSE
        self._blocked = (until, f"code {exc.code}" if exc.code else f"HTTP {exc.status}")
        if exc.retry_after is not None:
            return exc
        return GraphThrottledError(
            str(exc),
            retry_after=until,
            code=exc.code,
            subcode=exc.subcode,
            status=exc.status,
            fbtrace_id=exc.fbtrace_id,
        )

    @staticmethod
    def _backoff(attempt: int) -> float:
        # Jitter spreads the retries of concurrent runs instead of syncing them.
        ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not crypto

    def _next_url(self, next_url: str, followed: set[str]) -> str:
        parts = urlsplit(next_url)
        if (parts.scheme, parts.netloc.lower()) != self._origin:
            raise GraphResponseError(
                f"Graph API paging.next points at another host ({parts.hostname!r}); not followed"
            )
        query = [
            (key, value)
            for key, value in parse_qsl(parts.query, keep_blank_values=True)
            if key != "access_token"
        ]
        clean = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))
        cursor = dict(query).get("after") or clean
        if cursor in followed:
            raise GraphResponseError("Graph API repeated a paging cursor; stopped paging")
        followed.add(cursor)
        return clean


def _parse_page(body: Mapping[str, Any]) -> tuple[MediaPage, str | None]:
    data = body.get("data")
    if not isinstance(data, list):
        raise GraphResponseError("Graph API media page has no 'data' list")
    posts: list[Post] = []
    skipped = 0
    for item in data:
        try:
            posts.append(Post.from_graph(item))
        except MalformedPostError:
            skipped += 1
    paging = body.get("paging")
    next_url = paging.get("next") if isinstance(paging, dict) else None
    if not isinstance(next_url, str) or not next_url:
        next_url = None
    page = MediaPage(posts=tuple(posts), skipped=skipped, has_next=next_url is not None)
    return page, next_url
