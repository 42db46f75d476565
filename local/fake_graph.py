"""A stand-in for the Instagram Graph API and its CDN, on 127.0.0.1.

It answers the calls the pipeline makes, with the real API's shapes (see
``docs/instagram-graph-api.md``): ``/me/media`` with ``fields``, ``limit``,
``after``/``before`` cursors and full-URL ``paging.next``/``previous``,
inline ``children{...}`` expansion, ``+0000`` timestamps, only the requested
fields (absent is not ``null``), ``/{media-id}``, ``/{media-id}/children``,
``/me`` and ``refresh_access_token``. The token is accepted as
``access_token=`` or ``Authorization: Bearer``. Image URLs point at the same
server's ``/cdn/`` path, signed with ``oh=``/``oe=`` like Instagram's CDN, and
serve real JPEGs until ``oe`` passes.

Tests and benchmarks use it too: it counts requests, can be paged with any
page size, and injects the failures Instagram produces (:class:`Fault`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any, Literal
from urllib.parse import parse_qs, urlencode, urlsplit

from local.images import ImageLibrary
from local.loopback import LoopbackServer

GRAPH_VERSION = "v25.0"
FAKE_USER_ID = "17841400000000001"
FAKE_USERNAME = "sailjada"
# Shaped like an Instagram-login token (``IGAA...``); it opens nothing real.
LOCAL_TOKEN = "IGAAlocalDemoToken0000000000000000000000"  # noqa: S105
TOKEN_LIFETIME_SECONDS = 5183944
# Instagram refreshes only tokens at least this old.
REFRESH_MIN_AGE_SECONDS = 24 * 3600
MAX_LIMIT = 100

MEDIA_FIELDS = frozenset(
    {
        "id",
        "alt_text",
        "caption",
        "children",
        "comments_count",
        "is_comment_enabled",
        "is_shared_to_feed",
        "like_count",
        "media_product_type",
        "media_type",
        "media_url",
        "owner",
        "permalink",
        "shortcode",
        "thumbnail_url",
        "timestamp",
        "username",
    }
)
# Carousel children have no permalink, caption or counts (those belong to the album).
_CHILD_FIELDS = frozenset({"id", "media_type", "media_url", "thumbnail_url", "timestamp", "owner"})
USER_FIELDS = frozenset({"id", "user_id", "username", "account_type", "media_count"})

_PATH = re.compile(r"^/(?:v\d+\.\d+/)?(?P<node>[^/]+)(?:/(?P<edge>[^/]+))?/?$")
_CDN_PATH = re.compile(
    r"^/cdn/v/t51\.2885-15/(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]*)_n\.(?P<ext>jpg|mp4)$"
)

Target = Literal["graph", "cdn"]


@dataclass(frozen=True)
class FakeMedia:
    """One media object of the fake account.

    Attributes
    ----------
    id
        The media id (digits, as a string).
    timestamp
        Creation time, timezone-aware.
    media_type
        ``IMAGE``, ``VIDEO`` or ``CAROUSEL_ALBUM`` (any string is passed through).
    media_product_type
        ``FEED``, ``REELS``, ...; ``None`` omits the field.
    caption
        ``None`` omits the field, as Graph does for a post without caption.
    media
        Name of the CDN object behind ``media_url``; ``None`` withholds
        ``media_url`` (a reel with licensed audio). A ``VIDEO``'s media is an
        ``.mp4`` URL, which this CDN does not serve (only posters are images).
    thumbnail
        Name of the CDN image behind ``thumbnail_url`` (``VIDEO`` only).
    like_count
        ``None`` when the owner hides likes (the field is then omitted).
    children
        Carousel items.
    """

    id: str
    timestamp: datetime
    media_type: str = "IMAGE"
    media_product_type: str | None = "FEED"
    caption: str | None = None
    media: str | None = None
    thumbnail: str | None = None
    like_count: int | None = None
    comments_count: int = 0
    alt_text: str | None = None
    children: tuple[FakeMedia, ...] = ()

    @property
    def shortcode(self) -> str:
        """A stable shortcode derived from the id, shaped like Instagram's."""
        digest = hashlib.sha256(self.id.encode()).digest()
        return base64.urlsafe_b64encode(digest).decode()[:11].replace("-", "A").replace("_", "B")

    @property
    def permalink(self) -> str:
        """The post's public URL (reels live under ``/reel/``)."""
        kind = "reel" if self.media_product_type == "REELS" else "p"
        return f"https://www.instagram.com/{kind}/{self.shortcode}/"


@dataclass(frozen=True)
class Fault:
    """A failure to answer instead of the normal response.

    ``status=None`` with a ``delay`` answers normally, only late (a slow API).
    The factory methods build the failures the real API is known to produce.
    """

    status: int | None
    body: bytes = b""
    content_type: str = "application/json; charset=UTF-8"
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0

    @classmethod
    def graph_error(
        cls,
        status: int,
        code: int,
        message: str,
        *,
        subcode: int | None = None,
        is_transient: bool | None = None,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> Fault:
        """A Graph error envelope ``{"error": {...}}`` with the given status."""
        error: dict[str, Any] = {"message": message, "type": "OAuthException", "code": code}
        if subcode is not None:
            error["error_subcode"] = subcode
        if is_transient is not None:
            error["is_transient"] = is_transient
        error["fbtrace_id"] = "AfakeTrace" + secrets.token_hex(4)
        return cls(status, json.dumps({"error": error}).encode(), headers=headers)

    @classmethod
    def expired_token(cls) -> Fault:
        """Code 190, subcode 463, as HTTP 400 (Graph does not use 401)."""
        return cls.graph_error(
            400,
            190,
            "Error validating access token: Session has expired on Tuesday, 01-Dec-25 "
            "06:00:00 PST. The current time is Tuesday, 01-Dec-25 06:07:02 PST.",
            subcode=463,
        )

    @classmethod
    def invalid_token(cls) -> Fault:
        """Code 190 for a token Graph cannot parse (revoked, wrong host)."""
        return cls.graph_error(400, 190, "Invalid OAuth access token - Cannot parse access token")

    @classmethod
    def throttled(cls, regain_minutes: int = 15, status: int = 403) -> Fault:
        """Code 80002 (Instagram business use case limit) with its usage header.

        The HTTP status of throttling is not documented; blogs report 403.
        """
        usage = {
            FAKE_USER_ID: [
                {
                    "type": "instagram",
                    "call_count": 100,
                    "total_cputime": 12,
                    "total_time": 31,
                    "estimated_time_to_regain_access": regain_minutes,
                }
            ]
        }
        return cls.graph_error(
            status,
            80002,
            "(#80002) There have been too many calls to this Instagram account. "
            "Wait a bit and try again.",
            is_transient=True,
            headers=(("X-Business-Use-Case-Usage", json.dumps(usage)),),
        )

    @classmethod
    def server_error(cls, status: int = 500) -> Fault:
        """A 5xx with Graph's transient envelope (code 2)."""
        return cls.graph_error(
            status,
            2,
            "An unexpected error has occurred. Please retry your request later.",
            is_transient=True,
        )

    @classmethod
    def html_page(cls, status: int = 502) -> Fault:
        """An HTML error page from a proxy in front of the API."""
        body = b"<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1></body></html>"
        return cls(status, body, content_type="text/html; charset=utf-8")

    @classmethod
    def signature_expired(cls) -> Fault:
        """The CDN's answer to an expired image URL."""
        return cls(403, b"URL signature expired", content_type="text/plain")

    @classmethod
    def slow(cls, seconds: float) -> Fault:
        """Answer normally, after ``seconds``."""
        return cls(None, delay=seconds)


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake server answered."""

    target: Target
    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    status: int


@dataclass
class _PendingFault:
    fault: Fault
    remaining: int
    target: Target
    path_contains: str | None


@dataclass
class _Reply:
    status: int
    body: bytes
    content_type: str = "application/json; charset=UTF-8"
    headers: list[tuple[str, str]] = field(default_factory=list)


class _GraphRequestError(Exception):
    """Raised inside request handling to answer with a Graph error envelope."""

    def __init__(self, fault: Fault) -> None:
        super().__init__(fault.body.decode())
        self.fault = fault


class FakeGraphServer(LoopbackServer):
    """The fake Graph API and CDN, served from a thread on 127.0.0.1.

    Parameters
    ----------
    media
        The account's media, in any order (served newest first).
    page_size
        Items per page when the request has no ``limit``.
    images
        Returns the JPEG for a CDN object name, ``None`` when unknown
        (default: generated sample images, any name).
    tokens
        Tokens the API accepts; a refresh adds its new token.
    token_age
        How old the initial tokens are (refresh needs 24 h).
    cdn_ttl
        How long a signed image URL stays valid.
    port
        ``0`` picks a free port.
    on_request
        Called after every answered request (progress output, benchmarks).

    Examples
    --------
    >>> with FakeGraphServer(media, page_size=10) as graph:  # doctest: +SKIP
    ...     os.environ["GRAPH_API_URL"] = graph.graph_url
    """

    thread_name = "fake-graph"

    def __init__(
        self,
        media: Iterable[FakeMedia] = (),
        *,
        page_size: int = 25,
        images: Callable[[str], bytes | None] | None = None,
        tokens: Iterable[str] = (LOCAL_TOKEN,),
        token_age: timedelta = timedelta(days=2),
        cdn_ttl: timedelta = timedelta(days=4),
        port: int = 0,
        on_request: Callable[[RecordedRequest], None] | None = None,
    ) -> None:
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        super().__init__(port)
        self.page_size = page_size
        self.cdn_ttl = cdn_ttl
        self._images = images or ImageLibrary().jpeg
        self._on_request = on_request
        self._lock = threading.Lock()
        self._clock_offset = 0.0
        self._signing_key = secrets.token_bytes(16)
        self._media: list[FakeMedia] = []
        self._by_id: dict[str, FakeMedia] = {}
        self._top_level: set[str] = set()
        issued = self.now() - token_age.total_seconds()
        self._tokens: dict[str, float] = dict.fromkeys(tokens, issued)
        self._faults: list[_PendingFault] = []
        self._requests: list[RecordedRequest] = []
        self.set_media(media)

    # -- lifecycle -------------------------------------------------------------

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        """The Graph/CDN request handler, bound to this server."""
        return type("BoundGraphHandler", (_GraphHandler,), {"graph": self})

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``: the server root (API and CDN)."""
        return self.origin

    @property
    def graph_url(self) -> str:
        """The versioned API base, as ``GRAPH_API_URL`` takes it."""
        return f"{self.base_url}/{GRAPH_VERSION}"

    # -- test and benchmark controls -------------------------------------------

    def set_media(self, media: Iterable[FakeMedia]) -> None:
        """Replace the account's media (a new post, an edit, a deletion)."""
        ordered = sorted(media, key=lambda item: (item.timestamp, item.id), reverse=True)
        by_id = {child.id: child for item in ordered for child in item.children}
        by_id.update({item.id: item for item in ordered})
        with self._lock:
            self._media, self._by_id = ordered, by_id
            self._top_level = {item.id for item in ordered}

    def inject(
        self,
        fault: Fault,
        *,
        times: int = 1,
        target: Target = "graph",
        path_contains: str | None = None,
    ) -> None:
        """Answer the next ``times`` matching requests with ``fault``.

        Parameters
        ----------
        fault
            What to answer.
        times
            How many requests it applies to.
        target
            ``"graph"`` for API calls, ``"cdn"`` for image downloads.
        path_contains
            Only requests whose path contains this text.
        """
        with self._lock:
            self._faults.append(_PendingFault(fault, times, target, path_contains))

    def advance_time(self, seconds: float) -> None:
        """Move the server's clock forward, e.g. past the CDN URLs' ``oe``."""
        with self._lock:
            self._clock_offset += seconds

    def now(self) -> float:
        """The server's clock (Unix seconds), including :meth:`advance_time`."""
        return time.time() + self._clock_offset

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request answered so far, oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def graph_calls(self) -> int:
        """How many API calls (not image downloads) were answered."""
        return sum(1 for request in self.requests if request.target == "graph")

    @property
    def cdn_calls(self) -> int:
        """How many image downloads were answered."""
        return sum(1 for request in self.requests if request.target == "cdn")

    def clear_requests(self) -> None:
        """Forget the recorded requests."""
        with self._lock:
            self._requests.clear()

    @property
    def tokens(self) -> list[str]:
        """The tokens currently accepted, oldest first."""
        with self._lock:
            return list(self._tokens)

    def cdn_url(self, name: str, ext: str = "jpg") -> str:
        """A freshly signed CDN URL for image ``name``, valid for ``cdn_ttl``."""
        path = f"/cdn/v/t51.2885-15/{name}_n.{ext}"
        expires = f"{int(self.now() + self.cdn_ttl.total_seconds()):08X}"
        query = urlencode(
            {"_nc_cat": "1", "ccb": "1-7", "oh": self._signature(path, expires), "oe": expires}
        )
        return f"{self.base_url}{path}?{query}"

    # -- request handling (called from handler threads) -------------------------

    def _take_fault(self, target: Target, path: str) -> Fault | None:
        with self._lock:
            for pending in self._faults:
                if pending.target != target or pending.remaining <= 0:
                    continue
                if pending.path_contains and pending.path_contains not in path:
                    continue
                pending.remaining -= 1
                return pending.fault
        return None

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)
        if self._on_request is not None:
            self._on_request(request)

    def _signature(self, path: str, expires: str) -> str:
        mac = hmac.new(self._signing_key, f"{path}|{expires}".encode(), hashlib.sha256)
        return "00_" + base64.urlsafe_b64encode(mac.digest()[:18]).decode()

    def _answer_cdn(self, path: str, query: Mapping[str, str]) -> _Reply:
        match = _CDN_PATH.match(path)
        image = self._images(match["name"]) if match and match["ext"] == "jpg" else None
        if image is None:
            return _Reply(404, b"Not Found", "text/plain")
        expires = query.get("oe", "")
        if not hmac.compare_digest(query.get("oh", ""), self._signature(path, expires)):
            return _Reply(403, b"Bad URL hash", "text/plain")
        if int(expires, 16) < self.now():
            return _Reply(403, b"URL signature expired", "text/plain")
        return _Reply(200, image, "image/jpeg", [("Cache-Control", "max-age=1209600")])

    def _answer_graph(self, path: str, query: Mapping[str, str], bearer: str | None) -> _Reply:
        match = _PATH.match(path)
        if match is None:
            raise _error(400, 100, "Unknown path components: " + path)
        node, edge = match["node"], match["edge"]
        token = query.get("access_token") or bearer
        if node == "refresh_access_token" and edge is None:
            return _json_reply(self._refresh(token, query.get("grant_type")))
        self._check_token(token)
        fields = _parse_fields(query.get("fields"))
        if node in ("me", FAKE_USER_ID) and edge is None:
            _check_fields(fields, USER_FIELDS, "User")
            return _json_reply(_select({**self._user(), "id": FAKE_USER_ID}, fields, USER_FIELDS))
        _check_fields(fields, MEDIA_FIELDS, "Media")
        if node in ("me", FAKE_USER_ID) and edge == "media":
            return _json_reply(self._list_media(path, query, fields))
        with self._lock:
            media = self._by_id.get(node)
            top_level = node in self._top_level
        if media is None or edge not in (None, "children"):
            raise _error(
                400,
                100,
                f"Unsupported get request. Object with ID '{node}' does not exist, cannot be "
                "loaded due to missing permissions, or does not support this operation.",
                subcode=33,
            )
        if edge == "children":
            return _json_reply(
                {"data": [self._render(c, fields, child=True) for c in media.children]}
            )
        return _json_reply(self._render(media, fields, child=not top_level))

    def _check_token(self, token: str | None) -> None:
        if not token:
            raise _error(
                400,
                2500,
                "An active access token must be used to query information about the current user.",
            )
        with self._lock:
            known = token in self._tokens
        if not known:
            raise _GraphRequestError(Fault.invalid_token())

    def _refresh(self, token: str | None, grant_type: str | None) -> dict[str, Any]:
        if grant_type != "ig_refresh_token":
            raise _error(400, 100, "Unsupported grant type: " + str(grant_type))
        self._check_token(token)
        with self._lock:
            issued = self._tokens[str(token)]
            if self.now() - issued < REFRESH_MIN_AGE_SECONDS:
                # Meta does not document this error's text; the code is a guess.
                raise _error(
                    400,
                    100,
                    "The access token is less than 24 hours old and cannot be refreshed yet",
                )
            fresh = "IGAAlocal" + secrets.token_urlsafe(24)
            self._tokens[fresh] = self.now()
        return {"access_token": fresh, "token_type": "bearer", "expires_in": TOKEN_LIFETIME_SECONDS}

    def _user(self) -> dict[str, Any]:
        with self._lock:
            count = len(self._media)
        return {
            "user_id": FAKE_USER_ID,
            "username": FAKE_USERNAME,
            "account_type": "BUSINESS",
            "media_count": count,
        }

    def _list_media(
        self, path: str, query: Mapping[str, str], fields: dict[str, dict[str, Any] | None]
    ) -> dict[str, Any]:
        limit_text = query.get("limit") or str(self.page_size)
        if not limit_text.isdigit() or int(limit_text) < 1:
            raise _error(400, 100, "(#100) Param limit must be a positive integer")
        limit = min(int(limit_text), MAX_LIMIT)
        with self._lock:
            media = list(self._media)
        ids = [item.id for item in media]
        if query.get("after"):
            start = _cursor_position(ids, query["after"]) + 1
        elif query.get("before"):
            start = max(0, _cursor_position(ids, query["before"]) - limit)
        else:
            start = 0
        page = media[start : start + limit]
        body: dict[str, Any] = {"data": [self._render(item, fields, child=False) for item in page]}
        if not page:
            return body
        paging: dict[str, Any] = {
            "cursors": {"before": _cursor(page[0].id), "after": _cursor(page[-1].id)}
        }
        if start + limit < len(media):
            paging["next"] = self._page_url(path, query, after=_cursor(page[-1].id))
        if start > 0:
            paging["previous"] = self._page_url(path, query, before=_cursor(page[0].id))
        body["paging"] = paging
        return body

    def _page_url(self, path: str, query: Mapping[str, str], **cursor: str) -> str:
        # Like Graph: the same query (token included when it came as a
        # parameter), with the cursor replaced.
        params = {key: value for key, value in query.items() if key not in ("after", "before")}
        params.update(cursor)
        return f"{self.base_url}{path}?{urlencode(params)}"

    def _render(
        self, media: FakeMedia, fields: Mapping[str, dict[str, Any] | None], *, child: bool
    ) -> dict[str, Any]:
        allowed = _CHILD_FIELDS if child else MEDIA_FIELDS
        values: dict[str, Any] = {
            "id": media.id,
            "timestamp": media.timestamp.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+0000"),
            "media_type": media.media_type,
            "media_product_type": media.media_product_type,
            "caption": media.caption,
            "alt_text": media.alt_text,
            "owner": {"id": FAKE_USER_ID},
            "username": FAKE_USERNAME,
            "like_count": media.like_count,
            "comments_count": media.comments_count,
            "is_comment_enabled": True,
            "shortcode": media.shortcode,
            "permalink": media.permalink,
        }
        if media.media is not None:
            values["media_url"] = self.cdn_url(
                media.media, "mp4" if media.media_type == "VIDEO" else "jpg"
            )
        if media.thumbnail is not None and media.media_type == "VIDEO":
            values["thumbnail_url"] = self.cdn_url(media.thumbnail)
        if media.media_product_type == "REELS":
            values["is_shared_to_feed"] = True
        if "children" in fields and media.children:
            child_fields = fields["children"] or {"id": None}
            values["children"] = {
                "data": [self._render(item, child_fields, child=True) for item in media.children]
            }
        return _select(values, fields, allowed)


def _select(
    values: Mapping[str, Any], fields: Mapping[str, Any], allowed: frozenset[str]
) -> dict[str, Any]:
    # Graph always returns the id, and omits (never nulls) what it does not have.
    wanted = {"id", *fields} & allowed
    return {key: values[key] for key in values if key in wanted and values[key] is not None}


def _check_fields(fields: Mapping[str, Any], allowed: frozenset[str], node_type: str) -> None:
    for name, subfields in fields.items():
        if name not in allowed:
            raise _error(
                400, 100, f"Tried accessing nonexisting field ({name}) on node type ({node_type})"
            )
        if subfields:
            _check_fields(subfields, MEDIA_FIELDS, node_type)


def _parse_fields(text: str | None) -> dict[str, dict[str, Any] | None]:
    """Parse ``id,caption,children{id,media_url}`` into ``{name: subfields}``."""
    if not text:
        return {}
    position = 0

    def parse_level(closing: str | None) -> dict[str, dict[str, Any] | None]:
        nonlocal position
        level: dict[str, dict[str, Any] | None] = {}
        name = ""
        while position < len(text):
            char = text[position]
            position += 1
            if char == "{":
                level[name.strip()] = parse_level("}")
                name = ""
            elif char == ",":
                if name.strip():
                    level[name.strip()] = None
                name = ""
            elif char == closing:
                break
            else:
                name += char
        else:
            if closing is not None:
                raise _error(400, 100, "Syntax error: expected '}' in fields")
        if name.strip():
            level[name.strip()] = None
        return level

    return parse_level(None)


def _cursor(media_id: str) -> str:
    return base64.urlsafe_b64encode(f"cursor:{media_id}".encode()).decode().rstrip("=")


def _cursor_position(ids: list[str], cursor: str) -> int:
    try:
        decoded = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        decoded = ""
    media_id = decoded.removeprefix("cursor:")
    if not decoded.startswith("cursor:") or media_id not in ids:
        # Graph cursors die with the item they point at.
        raise _error(400, 100, "(#100) The cursor is invalid or has expired")
    return ids.index(media_id)


def _error(
    status: int, code: int, message: str, *, subcode: int | None = None
) -> _GraphRequestError:
    return _GraphRequestError(Fault.graph_error(status, code, message, subcode=subcode))


def _json_reply(body: Mapping[str, Any]) -> _Reply:
    return _Reply(200, json.dumps(body, ensure_ascii=False).encode())


class _GraphHandler(BaseHTTPRequestHandler):
    graph: FakeGraphServer
    protocol_version = "HTTP/1.1"
    server_version = "FakeGraph/1"
    # Headers and body go out in two writes; without TCP_NODELAY each small
    # answer would wait ~40 ms for the client's delayed ACK.
    disable_nagle_algorithm = True
    # An idle keep-alive connection must not pin a handler thread forever.
    timeout = 30

    def do_GET(self) -> None:
        self._handle(send_body=True)

    def do_HEAD(self) -> None:
        self._handle(send_body=False)

    def log_message(self, format: str, *args: Any) -> None:
        # Requests are recorded and reported through ``on_request`` instead.
        return

    def _handle(self, *, send_body: bool) -> None:
        parts = urlsplit(self.path)
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        target: Target = "cdn" if parts.path.startswith("/cdn/") else "graph"
        reply = self._reply(target, parts.path, query)
        # Recorded before answering: a client that got its response sees it counted.
        self.graph._record(
            RecordedRequest(
                target=target,
                method=self.command,
                path=parts.path,
                query=query,
                headers=dict(self.headers.items()),
                status=reply.status,
            )
        )
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers:
            self.send_header(name, value)
        self.end_headers()
        if send_body:
            self.wfile.write(reply.body)

    def _reply(self, target: Target, path: str, query: Mapping[str, str]) -> _Reply:
        fault = self.graph._take_fault(target, path)
        if fault is not None:
            time.sleep(fault.delay)
            if fault.status is not None:
                return _Reply(fault.status, fault.body, fault.content_type, list(fault.headers))
        if target == "cdn":
            return self.graph._answer_cdn(path, query)
        authorization = self.headers.get("Authorization", "")
        bearer = authorization[7:].strip() if authorization.lower().startswith("bearer ") else None
        try:
            reply = self.graph._answer_graph(path, query, bearer)
        except _GraphRequestError as exc:
            fault = exc.fault
            return _Reply(fault.status or 400, fault.body, fault.content_type, list(fault.headers))
        reply.headers.append(("facebook-api-version", GRAPH_VERSION))
        return reply
