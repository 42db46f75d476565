"""A stand-in for the Instagram Graph API media edge, for ``responses``.

Builders make media objects shaped as the fact sheet describes (``+0000``
timestamps, string ids, children expanded inline, reels without
``media_url``); :class:`FakeGraph` serves them page by page with opaque
cursors, ``next`` URLs that embed the token (as Graph does), fresh CDN
signatures on every read, and scripted faults.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import responses
from requests import PreparedRequest

from tests.conftest import GRAPH, SENTINEL_TOKEN

CDN = "https://scontent-ams2-1.cdninstagram.com"
_ids = itertools.count(18027741234567890)

Reply = tuple[int, dict[str, str], str]
# A scripted fault: a reply to serve, or an exception the transport raises.
Fault = Reply | Exception


def graph_time(moment: datetime) -> str:
    """``2026-04-30T05:30:00+0000``: Graph's timestamp format."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


def new_id() -> str:
    """A fresh 17-digit media id."""
    return str(next(_ids))


def image(
    taken_at: datetime, *, media_id: str | None = None, caption: str = "Sunset run"
) -> dict[str, Any]:
    """An IMAGE post."""
    media_id = media_id or new_id()
    return {
        "id": media_id,
        "caption": caption,
        "media_type": "IMAGE",
        "media_product_type": "FEED",
        "media_url": f"{CDN}/v/t51.82787-15/{media_id}_n.jpg?oh=00_A&oe=6A2F427E",
        "permalink": f"https://www.instagram.com/p/{media_id}/",
        "timestamp": graph_time(taken_at),
    }


def reel(taken_at: datetime, *, media_id: str | None = None) -> dict[str, Any]:
    """A reel whose ``media_url`` Instagram withheld (licensed audio)."""
    media_id = media_id or new_id()
    return {
        "id": media_id,
        "caption": "Behind the bar",
        "media_type": "VIDEO",
        "media_product_type": "REELS",
        "thumbnail_url": f"{CDN}/v/t51.71878-15/{media_id}_thumb.jpg?oh=00_B&oe=6A30A113",
        "permalink": f"https://www.instagram.com/reel/{media_id}/",
        "timestamp": graph_time(taken_at),
        "is_shared_to_feed": True,
    }


def carousel(
    taken_at: datetime, *, children: int = 3, media_id: str | None = None
) -> dict[str, Any]:
    """A CAROUSEL_ALBUM with ``children`` items (every third one a video)."""
    media_id = media_id or new_id()
    items: list[dict[str, Any]] = []
    for index in range(children):
        child_id = new_id()
        if index % 3 == 2:
            items.append(
                {
                    "id": child_id,
                    "media_type": "VIDEO",
                    "media_url": f"{CDN}/o1/v/{child_id}_n.mp4?oh=00_C&oe=6A2C1F00",
                    "thumbnail_url": f"{CDN}/v/{child_id}t_n.jpg?oh=00_D&oe=6A2E0B10",
                }
            )
        else:
            items.append(
                {
                    "id": child_id,
                    "media_type": "IMAGE",
                    "media_url": f"{CDN}/v/{child_id}_n.jpg?oh=00_E&oe=6A2E0B10",
                }
            )
    return {
        "id": media_id,
        "caption": "Three cakes",
        "media_type": "CAROUSEL_ALBUM",
        "media_url": items[0]["media_url"] if items else None,
        "permalink": f"https://www.instagram.com/p/{media_id}/",
        "timestamp": graph_time(taken_at),
        "children": {"data": items},
    }


def timeline(
    count: int, *, newest: datetime, step: timedelta = timedelta(hours=6)
) -> list[dict[str, Any]]:
    """``count`` posts, newest first, ``step`` apart; every fifth a carousel."""
    posts: list[dict[str, Any]] = []
    for index in range(count):
        taken_at = newest - index * step
        if index % 5 == 4:
            posts.append(carousel(taken_at))
        elif index % 7 == 6:
            posts.append(reel(taken_at))
        else:
            posts.append(image(taken_at, caption=f"Post {index}"))
    return posts


def error_body(code: int, message: str, *, subcode: int | None = None) -> str:
    """A Graph error envelope."""
    error: dict[str, Any] = {
        "message": message,
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": "AcX1bN2yZ3kQ",
    }
    if subcode is not None:
        error["error_subcode"] = subcode
    return json.dumps({"error": error})


EXPIRED_TOKEN = (
    400,
    {"Content-Type": "application/json"},
    error_body(
        190,
        "Error validating access token: Session has expired on Tuesday, 01-Dec-25 06:00:00 PST.",
        subcode=463,
    ),
)
RATE_LIMITED = (
    400,
    {
        "Content-Type": "application/json",
        "X-Business-Use-Case-Usage": json.dumps(
            {
                "17841405822304914": [
                    {
                        "type": "instagram",
                        "call_count": 100,
                        "total_cputime": 12,
                        "total_time": 14,
                        "estimated_time_to_regain_access": 42,
                    }
                ]
            }
        ),
    },
    error_body(
        80002,
        "(#80002) There have been too many calls to this Instagram account. "
        "Wait a bit and try again.",
    ),
)
SERVER_ERROR = (
    500,
    {"Content-Type": "application/json"},
    error_body(2, "Service temporarily unavailable"),
)
HTML_PAGE = (
    200,
    {"Content-Type": "text/html"},
    "<!DOCTYPE html><html><body>Sorry, something went wrong</body></html>",
)
MALFORMED_JSON = (200, {"Content-Type": "application/json"}, '{"data": [{"id": "1"')
NO_DATA = (200, {"Content-Type": "application/json"}, json.dumps({"paging": {"cursors": {}}}))


@dataclass
class FakeGraph:
    """``GET /<user>/media`` and ``GET /<media-id>`` over a list of posts.

    Attributes
    ----------
    posts
        Media objects in the order Graph lists them (pinned ones first).
    tokens
        Tokens accepted in the ``Authorization: Bearer`` header.
    faults
        Scripted faults by call number (1-based): served instead of data.
    next_base
        Base of ``paging.next`` URLs (set another host to test host checks).
    requests
        Every request received, in order.
    """

    posts: list[dict[str, Any]]
    tokens: set[str] = field(default_factory=lambda: {SENTINEL_TOKEN})
    faults: dict[int, Fault] = field(default_factory=dict)
    next_base: str = GRAPH
    repeat_cursor: bool = False
    requests: list[PreparedRequest] = field(default_factory=list)
    _reads: int = 0

    def install(self, mock: responses.RequestsMock) -> FakeGraph:
        """Serve this fake's endpoints from ``mock``."""
        mock.add_callback(
            responses.GET,
            re.compile(re.escape(GRAPH) + r"/[A-Za-z0-9_]+/media(\?.*)?$"),
            self._media,
        )
        mock.add_callback(responses.GET, re.compile(re.escape(GRAPH) + r"/\d+(\?.*)?$"), self._one)
        return self

    def fail(self, *faults: Fault, after: int = 0) -> None:
        """Serve ``faults`` to consecutive calls, starting ``after`` normal calls from now."""
        first = self.calls + after + 1
        for index, fault in enumerate(faults):
            self.faults[first + index] = fault

    @property
    def calls(self) -> int:
        """Requests received so far."""
        return len(self.requests)

    def urls(self) -> list[str]:
        """Every requested URL."""
        return [str(request.url) for request in self.requests]

    def _media(self, request: PreparedRequest) -> Reply:
        rejected = self._receive(request)
        if rejected:
            return rejected
        query = parse_qs(urlsplit(str(request.url)).query)
        limit = int(query.get("limit", ["25"])[0])
        offset = _decode_cursor(query["after"][0]) if "after" in query else 0
        page = [self._signed(post) for post in self.posts[offset : offset + limit]]
        body: dict[str, Any] = {
            "data": page,
            "paging": {"cursors": {"before": _cursor(offset), "after": _cursor(offset + limit)}},
        }
        if offset + limit < len(self.posts):
            following = offset if self.repeat_cursor else offset + limit
            params = {
                "access_token": SENTINEL_TOKEN,
                "fields": query.get("fields", [""])[0],
                "limit": str(limit),
                "after": _cursor(following),
            }
            body["paging"]["next"] = f"{self.next_base}/17841405822304914/media?{urlencode(params)}"
        return 200, {"Content-Type": "application/json"}, json.dumps(body)

    def _one(self, request: PreparedRequest) -> Reply:
        rejected = self._receive(request)
        if rejected:
            return rejected
        media_id = urlsplit(str(request.url)).path.rsplit("/", 1)[-1]
        for post in self.posts:
            if post["id"] == media_id:
                return 200, {"Content-Type": "application/json"}, json.dumps(self._signed(post))
        return (
            400,
            {"Content-Type": "application/json"},
            error_body(100, "Unsupported get request."),
        )

    def _receive(self, request: PreparedRequest) -> Reply | None:
        self.requests.append(request)
        fault = self.faults.pop(self.calls, None)
        if isinstance(fault, Exception):
            raise fault
        if fault is not None:
            return fault
        bearer = str(request.headers.get("Authorization", "")).removeprefix("Bearer ")
        if bearer not in self.tokens:
            return EXPIRED_TOKEN
        return None

    def _signed(self, post: dict[str, Any]) -> dict[str, Any]:
        # The CDN re-signs URLs on every read: same path, new query.
        self._reads += 1
        text = json.dumps(post).replace("oe=", f"_nc_sid={self._reads}&oe=")
        signed: dict[str, Any] = json.loads(text)
        return signed


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def _decode_cursor(cursor: str) -> int:
    return int(base64.urlsafe_b64decode(cursor.encode()).decode().split(":")[1])


def ids(posts: Iterable[dict[str, Any]]) -> list[str]:
    """The ids of media objects."""
    return [str(post["id"]) for post in posts]
