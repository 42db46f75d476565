"""The serve function through its handler, AWS by moto.

Each test builds an API Gateway payload 2.0 event, calls ``serve.app.handler``
and checks the response: status, headers, the JSON body or the parsed DOM of
the HTML page (never substrings of the markup).
"""

from __future__ import annotations

import functools
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from PIL import Image

import shared.gallery
import shared.presign
from serve.app import handler
from shared.config import get_settings
from shared.events import EventRecord
from shared.media import MediaChild, Mirror, Post, Rendition
from shared.repository import DynamoMediaRepository
from shared.state import IngestState
from tests.conftest import BUCKET, AwsCalls

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

EVENT = "2026-04-29"
HOSTILE = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "javascript:alert(1)",
    "</p><a href=javascript:alert(1)>x</a>",
]


# -- a small DOM, so assertions look at elements, not at text ------------------

VOID = {"meta", "link", "img", "br", "hr", "input", "source", "area", "base", "col", "wbr"}


@dataclass
class Element:
    tag: str
    attrs: dict[str, str | None]
    children: list[Element | str] = field(default_factory=list)

    def iter(self) -> Iterator[Element]:
        yield self
        for child in self.children:
            if isinstance(child, Element):
                yield from child.iter()

    def find_all(self, tag: str | None = None, cls: str | None = None) -> list[Element]:
        return [
            element
            for element in self.iter()
            if (tag is None or element.tag == tag)
            and (cls is None or cls in (element.attrs.get("class") or "").split())
        ]

    def text(self) -> str:
        return "".join(child if isinstance(child, str) else child.text() for child in self.children)


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, dict(attrs))
        self.stack[-1].children.append(element)
        if tag not in VOID:
            self.stack.append(element)

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def dom(html: str) -> Element:
    builder = _TreeBuilder()
    builder.feed(html)
    builder.close()
    return builder.root


def page_urls(document: Element) -> list[str]:
    """Every URL the page links or loads: href, src and each srcset candidate."""
    urls = []
    for element in document.iter():
        for name in ("href", "src"):
            value = element.attrs.get(name)
            if value is not None:
                urls.append(value)
        srcset = element.attrs.get("srcset")
        if srcset:
            urls.extend(candidate.strip().split(" ")[0] for candidate in srcset.split(","))
    return urls


# -- requests and fixtures ------------------------------------------------------


def call(
    path: str,
    *,
    method: str = "GET",
    query: str = "",
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """WHEN a payload 2.0 event for ``method path?query`` reaches the handler."""
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": {"host": "gallery.example", "user-agent": "pytest", **(headers or {})},
        "requestContext": {
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1"},
            "stage": "$default",
            "domainName": "gallery.example",
        },
        "isBase64Encoded": False,
    }
    if query:
        event["queryStringParameters"] = {
            k: ",".join(v) for k, v in parse_qs(query, keep_blank_values=True).items()
        }
    result: dict[str, Any] = handler(event, None)
    return result


def gallery_json(event_id: str = EVENT, **kwargs: Any) -> dict[str, Any]:
    response = call(f"/g/{event_id}", query="format=json", **kwargs)
    assert response["statusCode"] == 200, response["body"]
    assert response["headers"]["Content-Type"] == "application/json"
    body: dict[str, Any] = json.loads(response["body"])
    return body


def gallery_page(event_id: str = EVENT) -> tuple[dict[str, Any], Element]:
    response = call(f"/g/{event_id}")
    assert response["statusCode"] == 200, response["body"]
    assert response["headers"]["Content-Type"] == "text/html; charset=utf-8"
    return response, dom(response["body"])


@dataclass
class Clock:
    """Monotonic seconds for the serve caches; tests move it forward."""

    now: float = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """GIVEN cache time under the test's control, and a fixed presigning instant."""
    fake = Clock()
    monkeypatch.setattr(shared.gallery, "monotonic", fake)
    fixed = datetime(2026, 5, 1, 12, 10, tzinfo=UTC).timestamp()
    monkeypatch.setattr(shared.presign, "epoch_seconds", lambda: fixed)
    return fake


@pytest.fixture
def aws(aws_env: None, aws_calls: AwsCalls, clock: Clock) -> Iterator[AwsCalls]:
    """GIVEN moto AWS, counted AWS calls and a controllable clock."""
    s3.cache_clear()
    yield aws_calls
    s3.cache_clear()


@functools.cache
def s3() -> S3Client:
    """The test's own S3 client (one per test: creating clients is slow)."""
    client: S3Client = boto3.client("s3", region_name="us-east-1")
    return client


def jpeg(width: int = 8, height: int = 6) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (30, 110, 160)).save(buffer, "JPEG")
    return buffer.getvalue()


JPEG = jpeg()


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def repository() -> DynamoMediaRepository:
    return DynamoMediaRepository(get_settings())


def save_posts(*posts: Post) -> None:
    repository().save_posts(list(posts), datetime.now(UTC))


def post(media_id: str, taken_at: str, **fields: Any) -> Post:
    defaults: dict[str, Any] = {
        "media_type": "IMAGE",
        "caption": f"caption {media_id}",
        "permalink": f"https://www.instagram.com/p/{media_id}/",
        "media_url": f"https://scontent.cdninstagram.com/v/{media_id}.jpg?oe=1&oh=2",
    }
    return Post(id=media_id, taken_at=utc(taken_at), **{**defaults, **fields})


def mirror(media_id: str) -> Mirror:
    return Mirror(
        original=Rendition(f"instagram/{media_id}/original.jpg", 1080, 1350, 200_000),
        thumbnails=(
            Rendition(f"instagram/{media_id}/320.jpg", 320, 400, 20_000),
            Rendition(f"instagram/{media_id}/640.jpg", 640, 800, 60_000),
        ),
    )


def upload(event_id: str, name: str, taken_at: str | None = None, body: bytes = JPEG) -> str:
    key = f"uploads/{event_id}/{name}"
    metadata = {"taken-at": taken_at} if taken_at else {}
    s3().put_object(Bucket=BUCKET, Key=key, Body=body, Metadata=metadata)
    return key


def ids(body: dict[str, Any]) -> list[str]:
    return [item["id"] for item in body["items"]]


# -- routing and validation -------------------------------------------------------

BAD_EVENT_PATHS = [
    "/g/../x",
    "/g/%2e%2e",
    "/g/%2E%2E/%2e%2e/etc/passwd",
    "/g/2026-02-30",
    "/g/" + "2026-04-29-" + "a" * 289,
    "/g/2026-04-29/",
    "/g/2026-04-29/x",
    "/g/2026-04-29-Sunset",
    "/g/2026-04-29-SUNSET",
    "/g/2026-04-29-caf%C3%A9",
    "/g/2026-04-29-café",
    "/g/2026-04-29%00",
    "/g/",
    "/g/2026-04-29-",
]


@pytest.mark.parametrize("path", BAD_EVENT_PATHS)
@pytest.mark.parametrize("query", ["", "format=json"])
def test_bad_event_ids_are_400_before_any_aws_call_or_settings(
    path: str, query: str, aws_calls: AwsCalls, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GIVEN a malformed event id, and settings that would fail if read
    WHEN the gallery is requested
    THEN 400 with a clear message, no AWS call, no stack trace."""
    monkeypatch.delenv("MEDIA_TABLE")
    response = call(path, query=query)
    assert response["statusCode"] == 400
    assert aws_calls.calls == []
    assert "Traceback" not in response["body"]
    if query:
        assert "event id" in json.loads(response["body"])["error"]
    else:
        assert dom(response["body"]).find_all("p", cls="empty")[0].text()


@pytest.mark.parametrize(
    "path", ["/", "/g", "/favicon.ico", "/gallery/2026-04-29", "/G/2026-04-29"]
)
def test_unknown_routes_are_404(path: str, aws_calls: AwsCalls) -> None:
    """GIVEN a path outside /g/{event_id} WHEN requested THEN 404 and no AWS call."""
    response = call(path)
    assert response["statusCode"] == 404
    assert aws_calls.calls == []


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_other_methods_are_405(method: str, aws_calls: AwsCalls) -> None:
    """GIVEN a method other than GET/HEAD WHEN sent to a gallery THEN 405 with Allow."""
    response = call(f"/g/{EVENT}", method=method)
    assert response["statusCode"] == 405
    assert response["headers"]["Allow"] == "GET, HEAD"
    assert aws_calls.calls == []


def test_unknown_format_is_400(aws_calls: AwsCalls) -> None:
    """GIVEN ?format=xml WHEN requested THEN 400 without AWS calls."""
    assert call(f"/g/{EVENT}", query="format=xml")["statusCode"] == 400
    assert aws_calls.calls == []


def test_function_url_and_named_stage_events_are_served(aws: AwsCalls) -> None:
    """GIVEN a Function URL event and an HTTP API event on a named stage
    WHEN each reaches the handler THEN both get the gallery."""
    upload(EVENT, "a.jpg")
    function_url_event = {
        "version": "2.0",
        "rawPath": f"/g/{EVENT}",
        "rawQueryString": "format=json",
        "headers": {"host": "abc.lambda-url.us-east-1.on.aws"},
        "queryStringParameters": {"format": "json"},
        "requestContext": {
            "http": {"method": "GET", "path": f"/g/{EVENT}"},
            "stage": "$default",
            "domainName": "abc.lambda-url.us-east-1.on.aws",
        },
        "isBase64Encoded": False,
    }
    response = handler(function_url_event, None)
    assert response["statusCode"] == 200
    assert len(json.loads(response["body"])["items"]) == 1
    staged = {
        **function_url_event,
        "rawPath": f"/prod/g/{EVENT}",
        "rawQueryString": "",
        "requestContext": {"http": {"method": "GET"}, "stage": "prod"},
    }
    del staged["queryStringParameters"]
    assert handler(staged, None)["statusCode"] == 200


def test_misconfiguration_is_a_500_without_stack_trace(
    aws_calls: AwsCalls, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GIVEN an EVENT_TIMEZONE that is not a zone WHEN a gallery is requested
    THEN 500, not cached, no stack trace and no AWS call."""
    monkeypatch.setenv("EVENT_TIMEZONE", "Mars/Olympus_Mons")
    response = call(f"/g/{EVENT}")
    assert response["statusCode"] == 500
    assert response["headers"]["Cache-Control"] == "no-store"
    assert "Traceback" not in response["body"]
    assert "Mars" not in response["body"]
    assert aws_calls.calls == []


# -- windows through the handler ------------------------------------------------------


def test_window_is_the_pacific_day_across_utc_midnight(aws: AwsCalls) -> None:
    """GIVEN posts around both edges of 29 April (Pacific)
    WHEN its gallery is read
    THEN 07:00Z on the 29th is in, 22:30 PDT (05:30Z on the 30th) is in,
    06:59:59Z on the 29th (the 28th locally) and 07:00Z on the 30th are out."""
    save_posts(
        post("before", "2026-04-29T06:59:59Z"),
        post("first", "2026-04-29T07:00:00Z"),
        post("evening", "2026-04-30T05:30:00Z"),
        post("last", "2026-04-30T06:59:59Z"),
        post("after", "2026-04-30T07:00:00Z"),
    )
    body = gallery_json()
    assert ids(body) == ["first", "evening", "last"]
    assert body["event"] == {
        "id": EVENT,
        "title": None,
        "start": "2026-04-29T07:00:00Z",
        "end": "2026-04-30T07:00:00Z",
        "timezone": "America/Los_Angeles",
    }
    assert ids(gallery_json("2026-04-30")) == ["after"]


def test_spring_forward_day_is_23_hours(aws: AwsCalls) -> None:
    """GIVEN posts around 8 March 2026 (clocks go 02:00 -> 03:00 PT)
    WHEN its gallery is read THEN the window is 08:00Z to 07:00Z next day."""
    save_posts(
        post("pst-evening-before", "2026-03-08T07:59:59Z"),
        post("first", "2026-03-08T08:00:00Z"),
        post("after-jump", "2026-03-08T10:30:00Z"),
        post("last", "2026-03-09T06:59:59Z"),
        post("next-day", "2026-03-09T07:00:00Z"),
    )
    body = gallery_json("2026-03-08")
    assert ids(body) == ["first", "after-jump", "last"]
    assert (body["event"]["start"], body["event"]["end"]) == (
        "2026-03-08T08:00:00Z",
        "2026-03-09T07:00:00Z",
    )


def test_fall_back_day_is_25_hours(aws: AwsCalls) -> None:
    """GIVEN posts around 1 November 2026 (clocks go 02:00 -> 01:00 PT)
    WHEN its gallery is read THEN the window is 07:00Z to 08:00Z next day,
    and both 01:30s (PDT and PST) are in."""
    save_posts(
        post("day-before", "2026-11-01T06:59:59Z"),
        post("first", "2026-11-01T07:00:00Z"),
        post("one-thirty-pdt", "2026-11-01T08:30:00Z"),
        post("one-thirty-pst", "2026-11-01T09:30:00Z"),
        post("late-pst", "2026-11-02T07:30:00Z"),
        post("next-day", "2026-11-02T08:00:00Z"),
    )
    body = gallery_json("2026-11-01")
    assert ids(body) == ["first", "one-thirty-pdt", "one-thirty-pst", "late-pst"]
    assert body["event"]["end"] == "2026-11-02T08:00:00Z"


def test_grace_hours_extend_the_window(aws: AwsCalls, monkeypatch: pytest.MonkeyPatch) -> None:
    """GIVEN POST_GRACE_HOURS=3 WHEN the gallery is read
    THEN a post 2 h after local midnight is in, one 3 h after is out."""
    monkeypatch.setenv("POST_GRACE_HOURS", "3")
    get_settings.cache_clear()
    save_posts(post("in", "2026-04-30T09:00:00Z"), post("out", "2026-04-30T10:00:00Z"))
    body = gallery_json()
    assert ids(body) == ["in"]
    assert body["event"]["end"] == "2026-04-30T10:00:00Z"


def test_event_record_overrides_window_and_title(aws: AwsCalls) -> None:
    """GIVEN an event record with title and an evening window
    WHEN the gallery is read on a cold container
    THEN the record's window is queried (one extra Query) and its title shown."""
    repository().put_event(
        EventRecord(
            "2026-04-29-sunset",
            title="Sunset sail <3",
            start=utc("2026-04-30T01:00:00Z"),
            end=utc("2026-04-30T09:00:00Z"),
        )
    )
    save_posts(post("afternoon", "2026-04-29T22:00:00Z"), post("night", "2026-04-30T08:00:00Z"))
    aws.calls.clear()
    body = gallery_json("2026-04-29-sunset")
    assert ids(body) == ["night"]
    assert body["event"]["title"] == "Sunset sail <3"
    assert (body["event"]["start"], body["event"]["end"]) == (
        "2026-04-30T01:00:00Z",
        "2026-04-30T09:00:00Z",
    )
    assert sorted(aws.operations()) == ["ListObjectsV2", "Query", "Query", "Query"]
    _, document = gallery_page("2026-04-29-sunset")
    assert document.find_all("h1")[0].text() == "Sunset sail <3"


# -- uploads --------------------------------------------------------------------


def test_slug_prefix_does_not_leak_between_events(aws: AwsCalls) -> None:
    """GIVEN uploads for 2026-04-29 and for 2026-04-29-sunset
    WHEN each gallery is read THEN each lists only its own folder."""
    plain = upload(EVENT, "a.jpg")
    sunset = upload("2026-04-29-sunset", "b.jpg")
    assert ids(gallery_json(EVENT)) == [plain]
    assert ids(gallery_json("2026-04-29-sunset")) == [sunset]


def test_upload_taken_at_prefers_metadata_over_last_modified(aws: AwsCalls) -> None:
    """GIVEN uploads with, without and with unreadable x-amz-meta-taken-at
    WHEN the gallery is read
    THEN the metadata time is used when readable, else LastModified."""
    with_meta = upload(EVENT, "with.jpg", taken_at="2026-04-29T18:45:00Z")
    garbage = upload(EVENT, "garbage.jpg", taken_at="yesterday-ish")
    without = upload(EVENT, "without.jpg")
    items = {item["id"]: item for item in gallery_json()["items"]}
    assert items[with_meta]["taken_at"] == "2026-04-29T18:45:00Z"
    head = s3().head_object
    for key in (garbage, without):
        last_modified = head(Bucket=BUCKET, Key=key)["LastModified"].astimezone(UTC)
        assert items[key]["taken_at"] == last_modified.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_folder_markers_and_non_images_are_skipped(aws: AwsCalls) -> None:
    """GIVEN a folder marker, an empty file, text, video, HEIC and images
    WHEN the gallery is read THEN only the displayable images are items."""
    s3().put_object(Bucket=BUCKET, Key=f"uploads/{EVENT}/", Body=b"")
    for name in ("notes.txt", ".DS_Store", "clip.mov", "IMG_1.HEIC", "noext"):
        upload(EVENT, name)
    upload(EVENT, "empty.jpg", body=b"")
    kept = [
        upload(EVENT, name, taken_at=f"2026-04-29T1{n}:00:00Z")
        for n, name in enumerate(["A.JPG", "b.jpeg", "c.png", "d.webp", "nested/e.jpg"])
    ]
    assert ids(gallery_json()) == kept


def test_listing_pages_past_1000_uploads(aws: AwsCalls) -> None:
    """GIVEN 1,001 uploads WHEN the gallery is read THEN all show, from two ListObjectsV2."""
    for n in range(1001):
        s3().put_object(Bucket=BUCKET, Key=f"uploads/{EVENT}/{n:04d}.jpg", Body=b"x")
    aws.calls.clear()
    assert len(gallery_json()["items"]) == 1001
    assert aws.operations().count("ListObjectsV2") == 2


# -- 0, 1 and 500 items; the AWS call budget ---------------------------------------------


def test_empty_gallery_shows_an_empty_state(aws: AwsCalls) -> None:
    """GIVEN no posts and no uploads WHEN the gallery is read
    THEN JSON has no items and the page says so, with no grid."""
    body = gallery_json()
    assert body["items"] == []
    assert body["degraded"] == []
    assert body["synced_at"] is None
    _, document = gallery_page()
    assert "No photos here yet" in document.find_all("p", cls="empty")[0].text()
    assert document.find_all("ul", cls="grid") == []


def test_single_item_gallery(aws: AwsCalls) -> None:
    """GIVEN one post WHEN the gallery is read THEN one item and one tile."""
    save_posts(post("only", "2026-04-29T20:00:00Z"))
    assert ids(gallery_json()) == ["only"]
    _, document = gallery_page()
    assert len(document.find_all("a", cls="tile")) == 1
    assert "1 photo " in document.find_all("p", cls="sub")[0].text()


def test_500_items_merge_oldest_first_in_two_calls_then_none(aws: AwsCalls) -> None:
    """GIVEN 250 posts and 250 uploads interleaved in time
    WHEN the gallery is read twice
    THEN 500 items oldest first; the first read is one META Query, one window
    Query, one ListObjectsV2 (+ one HeadObject per new upload); the repeat
    makes no AWS call; the page eager-loads only the first row."""
    start = utc("2026-04-29T08:00:00Z")
    save_posts(
        *(post(f"p{n:03d}", (start + timedelta(minutes=2 * n)).isoformat()) for n in range(250))
    )
    keys = [
        upload(EVENT, f"u{n:03d}.jpg", taken_at=(start + timedelta(minutes=2 * n + 1)).isoformat())
        for n in range(250)
    ]
    aws.calls.clear()
    body = gallery_json()
    assert len(body["items"]) == 500
    stamps = [item["taken_at"] for item in body["items"]]
    assert stamps == sorted(stamps)
    assert body["items"][0]["id"] == "p000"
    assert body["items"][1]["id"] == keys[0]
    operations = aws.operations()
    assert sorted(set(operations)) == ["HeadObject", "ListObjectsV2", "Query"]
    assert operations.count("Query") == 2
    assert operations.count("ListObjectsV2") == 1
    assert operations.count("HeadObject") == 250
    aws.calls.clear()
    _response, document = gallery_page()
    assert aws.calls == []
    images = [a.find_all("img")[0] for a in document.find_all("a", cls="tile")]
    assert len(images) == 500
    assert [img.attrs.get("loading") for img in images[:6]] == [None] * 6
    assert all(img.attrs.get("loading") == "lazy" for img in images[6:])
    assert gallery_json()["items"] == body["items"]
    assert aws.calls == []


def test_uncached_request_with_warm_meta_costs_two_calls(aws: AwsCalls, clock: Clock) -> None:
    """GIVEN a container that has read META and HEADed the uploads once
    WHEN another event is read, the first one again after its page expired, and
    again after META expired
    THEN the new event and the expired page each cost exactly Query +
    ListObjectsV2, and after META expired one more Query: no HeadObject again."""
    upload(EVENT, "a.jpg", taken_at="2026-04-29T20:00:00Z")
    gallery_json()
    aws.calls.clear()
    gallery_json("2026-04-30")
    assert sorted(aws.operations()) == ["ListObjectsV2", "Query"]
    clock.advance(shared.gallery.GALLERY_TTL + 1)
    aws.calls.clear()
    gallery_json()
    assert sorted(aws.operations()) == ["ListObjectsV2", "Query"]
    clock.advance(shared.gallery.META_TTL)
    aws.calls.clear()
    body = gallery_json()
    assert sorted(aws.operations()) == ["ListObjectsV2", "Query", "Query"]
    assert body["items"][0]["taken_at"] == "2026-04-29T20:00:00Z"


# -- caching ---------------------------------------------------------------------


def test_etag_and_304(aws: AwsCalls) -> None:
    """GIVEN a gallery WHEN re-requested with its ETag THEN 304 without body;
    a weak or * match also 304s; another tag gets the 200 again."""
    upload(EVENT, "a.jpg")
    first = call(f"/g/{EVENT}")
    etag = first["headers"]["ETag"]
    assert re.fullmatch(r'"[0-9a-f]{40}"', etag)
    for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        again = call(f"/g/{EVENT}", headers={"if-none-match": header})
        assert again["statusCode"] == 304, header
        assert again["body"] == ""
        assert again["headers"]["ETag"] == etag
        assert "stale-if-error" in again["headers"]["Cache-Control"]
    other = call(f"/g/{EVENT}", headers={"if-none-match": '"not-it"'})
    assert other["statusCode"] == 200
    assert other["body"] == first["body"]
    head = call(f"/g/{EVENT}", method="HEAD")
    assert head["statusCode"] == 200
    assert head["body"] == ""
    assert head["headers"]["ETag"] == etag
    head_304 = call(f"/g/{EVENT}", method="HEAD", headers={"If-None-Match": etag})
    assert head_304["statusCode"] == 304
    json_etag = call(f"/g/{EVENT}", query="format=json")["headers"]["ETag"]
    assert json_etag != etag


def test_cache_control_and_security_headers(aws: AwsCalls) -> None:
    """GIVEN a gallery WHEN served THEN it is CDN-cacheable and hardened."""
    headers, document = gallery_page()
    h = headers["headers"]
    directives = {d.strip().split("=")[0] for d in h["Cache-Control"].split(",")}
    assert {"public", "max-age", "s-maxage", "stale-while-revalidate", "stale-if-error"} <= (
        directives
    )
    assert h["X-Content-Type-Options"] == "nosniff"
    assert h["Referrer-Policy"] == "no-referrer"
    csp = dict(part.strip().split(" ", 1) for part in h["Content-Security-Policy"].split(";"))
    assert csp["frame-ancestors"] == "'none'"
    assert csp["default-src"] == "'none'"
    nonce = re.fullmatch(r"'nonce-([A-Za-z0-9_-]+)'", csp["script-src"])
    assert nonce is not None
    scripts = document.find_all("script")
    assert len(scripts) == 1
    assert scripts[0].attrs["nonce"] == nonce.group(1)
    assert document.find_all("style")[0].attrs["nonce"] == nonce.group(1)
    assert document.find_all("link")[0].attrs == {"rel": "icon", "href": "data:,"}


def test_etag_is_stable_across_rebuilds_and_follows_content(aws: AwsCalls, clock: Clock) -> None:
    """GIVEN a gallery rebuilt after the cache expired, same data
    WHEN served THEN same bytes and ETag (URLs and nonce are deterministic);
    after a new upload the ETag changes."""
    upload(EVENT, "a.jpg", taken_at="2026-04-29T20:00:00Z")
    first = call(f"/g/{EVENT}")
    clock.advance(61)
    aws.calls.clear()
    rebuilt = call(f"/g/{EVENT}")
    assert aws.calls, "the cache should have expired"
    assert rebuilt["body"] == first["body"]
    assert rebuilt["headers"]["ETag"] == first["headers"]["ETag"]
    upload(EVENT, "b.jpg", taken_at="2026-04-29T21:00:00Z")
    clock.advance(61)
    assert call(f"/g/{EVENT}")["headers"]["ETag"] != first["headers"]["ETag"]


# -- degradation -------------------------------------------------------------------


def test_table_down_still_shows_uploads(aws: AwsCalls, capsys: pytest.CaptureFixture[str]) -> None:
    """GIVEN DynamoDB Query failing WHEN the gallery is read
    THEN 200 with the uploads, degraded ["instagram"], a visible notice,
    a short cache lifetime and GalleryDegraded=1."""
    save_posts(post("p1", "2026-04-29T20:00:00Z"))
    key = upload(EVENT, "a.jpg")
    aws.fail("Query")
    body = gallery_json()
    assert body["degraded"] == ["instagram"]
    assert ids(body) == [key]
    response, document = gallery_page()
    notices = document.find_all("p", cls="notice")
    assert len(notices) == 1
    assert "Instagram" in notices[0].text()
    assert notices[0].attrs["role"] == "status"
    assert "max-age=10" in response["headers"]["Cache-Control"]
    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "_aws" in line]
    assert metrics[-1]["GalleryDegraded"] == [1.0]


def test_bucket_down_still_shows_posts(aws: AwsCalls) -> None:
    """GIVEN ListObjectsV2 failing WHEN the gallery is read
    THEN 200 with the posts, degraded ["uploads"] and a notice."""
    save_posts(post("p1", "2026-04-29T20:00:00Z"))
    upload(EVENT, "a.jpg")
    aws.fail("ListObjectsV2")
    body = gallery_json()
    assert body["degraded"] == ["uploads"]
    assert ids(body) == ["p1"]
    _, document = gallery_page()
    assert "Guests' photos" in document.find_all("p", cls="notice")[0].text()


def test_both_down_is_503_with_retry_after(aws: AwsCalls, clock: Clock) -> None:
    """GIVEN both DynamoDB and S3 failing WHEN the gallery is read
    THEN 503 with Retry-After, not cacheable, no stack trace (HTML and JSON);
    once both recover the gallery is back."""
    upload(EVENT, "a.jpg")
    aws.fail("Query")
    aws.fail("ListObjectsV2")
    page = call(f"/g/{EVENT}")
    assert page["statusCode"] == 503
    assert page["headers"]["Retry-After"] == "30"
    assert page["headers"]["Cache-Control"] == "no-store"
    assert "Traceback" not in page["body"]
    assert "injected" not in page["body"]
    assert dom(page["body"]).find_all("p", cls="empty")[0].attrs["role"] == "alert"
    as_json = call(f"/g/{EVENT}", query="format=json")
    assert as_json["statusCode"] == 503
    assert "error" in json.loads(as_json["body"])
    aws.failing.clear()
    assert gallery_json()["degraded"] == []


def test_degraded_gallery_recovers_after_a_short_ttl(aws: AwsCalls, clock: Clock) -> None:
    """GIVEN a degraded gallery cached while S3 failed
    WHEN S3 recovers and 10 s pass THEN the uploads are back."""
    key = upload(EVENT, "a.jpg")
    aws.fail("ListObjectsV2")
    assert gallery_json()["degraded"] == ["uploads"]
    aws.failing.clear()
    assert gallery_json()["degraded"] == ["uploads"], "still cached"
    clock.advance(11)
    body = gallery_json()
    assert body["degraded"] == []
    assert ids(body) == [key]


def test_failed_head_keeps_the_photo_with_last_modified(aws: AwsCalls, clock: Clock) -> None:
    """GIVEN HeadObject failing WHEN the gallery is read
    THEN the upload still shows (LastModified), nothing is degraded, and a
    later read fetches the metadata."""
    key = upload(EVENT, "a.jpg", taken_at="2026-04-29T20:00:00Z")
    aws.fail("HeadObject")
    body = gallery_json()
    assert ids(body) == [key]
    assert body["degraded"] == []
    assert body["items"][0]["taken_at"] != "2026-04-29T20:00:00Z"
    aws.failing.clear()
    clock.advance(61)
    assert gallery_json()["items"][0]["taken_at"] == "2026-04-29T20:00:00Z"


# -- content: URLs, mirrors, carousels, reels, sync time ----------------------------------


def test_instagram_urls_are_https_or_exact_http_media_hosts(
    aws: AwsCalls, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GIVEN MEDIA_HOSTS=cdninstagram.com,127.0.0.1 and posts with assorted URLs
    WHEN the gallery is read
    THEN https and http on an exactly listed host survive; javascript:, data:,
    http on other hosts (suffix matches included) and relative URLs are null."""
    monkeypatch.setenv("MEDIA_HOSTS", "cdninstagram.com,127.0.0.1")
    get_settings.cache_clear()
    cases = {
        "https": ("https://scontent.cdninstagram.com/a.jpg", "https://www.instagram.com/p/a/"),
        "local": ("http://127.0.0.1:8765/a.jpg", "http://127.0.0.1:8765/p/a/"),
        "suffix": ("http://scontent.cdninstagram.com/a.jpg", "http://www.instagram.com/p/a/"),
        "script": ("javascript:alert(1)", "javascript:alert(1)"),
        "data": ("data:image/png;base64,AAAA", "data:text/html,<script>1</script>"),
        "relative": ("/a.jpg", "//"),
        "spaced": (" https://x.example/a.jpg", "https://x.example/a b"),
    }
    save_posts(
        *(
            post(name, f"2026-04-29T1{n}:00:00Z", media_url=media, permalink=link)
            for n, (name, (media, link)) in enumerate(cases.items())
        )
    )
    items = {item["id"]: item for item in gallery_json()["items"]}
    assert items["https"]["url"] == cases["https"][0]
    assert items["https"]["permalink"] == cases["https"][1]
    assert items["local"]["url"] == cases["local"][0]
    assert items["local"]["permalink"] == cases["local"][1]
    for name in ("suffix", "script", "data", "relative", "spaced"):
        assert (items[name]["url"], items[name]["thumbnail_url"], items[name]["permalink"]) == (
            None,
            None,
            None,
        ), name
    _, document = gallery_page()
    for url in page_urls(document):
        assert url.startswith(("https://", "http://127.0.0.1:", "data:,")), url


def test_mirrored_post_uses_presigned_renditions_with_sizes(aws: AwsCalls) -> None:
    """GIVEN a post mirrored into the bucket (original 1080 px, thumbs 320/640)
    WHEN the gallery is read
    THEN url is the presigned original, thumbnail_url the 640 px thumb, the
    page's img has its width/height and a srcset of both thumbnails (the
    original only opens in the lightbox)."""
    save_posts(post("m1", "2026-04-29T20:00:00Z", mirror=mirror("m1")))
    item = gallery_json()["items"][0]
    for name, key in (("url", "original"), ("thumbnail_url", "640")):
        parsed = urlsplit(item[name])
        assert parsed.netloc == f"{BUCKET}.s3.us-east-1.amazonaws.com"
        assert parsed.path == f"/instagram/m1/{key}.jpg"
        query = parse_qs(parsed.query)
        assert query["X-Amz-Expires"] == ["3600"]
        assert "X-Amz-Signature" in query
    _, document = gallery_page()
    tile = document.find_all("a", cls="tile")[0]
    img = tile.find_all("img")[0]
    assert (img.attrs["width"], img.attrs["height"]) == ("640", "800")
    assert img.attrs["src"] == item["thumbnail_url"]
    widths = [c.strip().rsplit(" ", 1)[1] for c in (img.attrs["srcset"] or "").split(",")]
    assert widths == ["320w", "640w"]
    assert tile.attrs["href"] == item["url"]
    assert (tile.attrs["data-w"], tile.attrs["data-h"]) == ("1080", "1350")


def test_archive_renditions_pick_grid_srcset_and_lightbox_sizes(aws: AwsCalls) -> None:
    """GIVEN the archive's layout: WebP thumbnails 320/480/640/1080, JPEG original 1440
    WHEN the page is rendered
    THEN the grid shows the 480, srcset stops at 640, the lightbox opens the
    1080 thumbnail, and JSON's url is still the original."""
    renditions = tuple(
        Rendition(f"instagram/a1/w{w}.webp", w, w * 5 // 4, 1, "image/webp")
        for w in (320, 480, 640, 1080)
    )
    archived = Mirror(Rendition("instagram/a1/original.jpg", 1440, 1800, 1), renditions)
    save_posts(post("a1", "2026-04-29T20:00:00Z", mirror=archived))
    item = gallery_json()["items"][0]
    assert urlsplit(item["url"]).path == "/instagram/a1/original.jpg"
    assert urlsplit(item["thumbnail_url"]).path == "/instagram/a1/w480.webp"
    _, document = gallery_page()
    tile = document.find_all("a", cls="tile")[0]
    img = tile.find_all("img")[0]
    srcset = [c.strip().split(" ") for c in (img.attrs["srcset"] or "").split(",")]
    assert [(urlsplit(url).path, width) for url, width in srcset] == [
        ("/instagram/a1/w320.webp", "320w"),
        ("/instagram/a1/w480.webp", "480w"),
        ("/instagram/a1/w640.webp", "640w"),
    ]
    assert (img.attrs["width"], img.attrs["height"]) == ("480", "600")
    assert urlsplit(tile.attrs["href"] or "").path == "/instagram/a1/w1080.webp"
    assert (tile.attrs["data-w"], tile.attrs["data-h"]) == ("1080", "1350")


def test_presigned_urls_are_identical_across_requests(aws: AwsCalls, clock: Clock) -> None:
    """GIVEN two uncached reads in the same time bucket
    WHEN URLs are compared THEN they are identical, signed at the bucket start."""
    upload(EVENT, "a.jpg")
    first = gallery_json()["items"][0]["url"]
    clock.advance(61)
    assert gallery_json()["items"][0]["url"] == first
    assert parse_qs(urlsplit(first).query)["X-Amz-Date"] == ["20260501T120000Z"]


def test_carousel_children_and_reels(aws: AwsCalls) -> None:
    """GIVEN a 3-image carousel and a reel whose media_url Instagram withheld
    WHEN the gallery is read
    THEN JSON lists the children; the page opens the carousel as three slides
    and links the reel to Instagram by its thumbnail."""
    carousel = post(
        "c1",
        "2026-04-29T20:00:00Z",
        media_type="CAROUSEL_ALBUM",
        media_url=None,
        children=(
            MediaChild(
                "k1", "IMAGE", "https://scontent.cdninstagram.com/k1.jpg", mirror=mirror("k1")
            ),
            MediaChild("k2", "IMAGE", "https://scontent.cdninstagram.com/k2.jpg"),
            MediaChild(
                "k3",
                "VIDEO",
                "https://scontent.cdninstagram.com/k3.mp4",
                "https://scontent.cdninstagram.com/k3.jpg",
            ),
        ),
    )
    reel = post(
        "r1",
        "2026-04-29T21:00:00Z",
        media_type="VIDEO",
        media_product_type="REELS",
        media_url=None,
        thumbnail_url="https://scontent.cdninstagram.com/r1.jpg",
        permalink="https://www.instagram.com/reel/r1/",
    )
    save_posts(carousel, reel)
    items = {item["id"]: item for item in gallery_json()["items"]}
    children = items["c1"]["children"]
    assert [c["id"] for c in children] == ["k1", "k2", "k3"]
    assert children[1]["url"] == "https://scontent.cdninstagram.com/k2.jpg"
    assert children[2]["thumbnail_url"] == "https://scontent.cdninstagram.com/k3.jpg"
    assert children[2]["url"] == "https://scontent.cdninstagram.com/k3.mp4"
    assert urlsplit(children[0]["url"]).path == "/instagram/k1/original.jpg"
    assert items["c1"]["thumbnail_url"] == children[0]["thumbnail_url"]
    assert items["c1"]["url"] == children[0]["url"], "a mirrored child beats CDN URLs"
    assert items["r1"]["thumbnail_url"] == "https://scontent.cdninstagram.com/r1.jpg"
    _, document = gallery_page()
    cells = document.find_all("li")
    slides = [a for a in cells[0].find_all("a") if "data-slide" in a.attrs]
    assert [a.attrs["href"] for a in slides] == [c["url"] for c in children[:2]] + [
        children[2]["thumbnail_url"]
    ]
    reel_tile = cells[1].find_all("a", cls="tile")[0]
    assert reel_tile.attrs["href"] == "https://www.instagram.com/reel/r1/"
    assert "data-slide" not in reel_tile.attrs
    assert reel_tile.find_all("img")[0].attrs["src"] == "https://scontent.cdninstagram.com/r1.jpg"
    assert "Reel" in reel_tile.find_all("span", cls="badge")[0].text()


def test_captions_link_to_the_post_and_sync_time_shows(aws: AwsCalls) -> None:
    """GIVEN a post with a caption and an ingest state with last_success_at
    WHEN the gallery is read THEN synced_at is set and the page shows the caption
    as text next to a link to the post, and the last-synced time."""
    repository().save_state(IngestState(last_success_at=utc("2026-04-30T08:00:03Z")))
    save_posts(post("p1", "2026-04-29T20:00:00Z", caption="Sunset run\nwith dolphins"))
    assert gallery_json()["synced_at"] == "2026-04-30T08:00:03Z"
    _, document = gallery_page()
    caption = document.find_all("p", cls="cap")[0]
    assert caption.find_all("span", cls="cap-text")[0].text() == "Sunset run\nwith dolphins"
    assert caption.find_all("a", cls="post")[0].attrs["href"] == "https://www.instagram.com/p/p1/"
    time_element = document.find_all("time")[0]
    assert time_element.attrs["datetime"] == "2026-04-30T08:00:03+00:00"
    assert time_element.text() == "30 Apr 2026, 01:00 PDT"
    assert document.find_all("img")[0].attrs["alt"] == "Sunset run with dolphins"


# -- hostile content ---------------------------------------------------------------


def test_hostile_captions_keys_and_urls_are_inert(aws: AwsCalls) -> None:
    """GIVEN captions, S3 keys and Instagram URLs carrying markup and javascript:
    WHEN the page is parsed
    THEN there is exactly one script (ours, nonced), no event-handler attribute,
    no URL other than https/data:, and each hostile text survives as plain text."""
    save_posts(
        *(
            post(
                f"h{n}",
                f"2026-04-29T1{n}:00:00Z",
                caption=text,
                permalink=text,
                media_url=text if n % 2 else "https://scontent.cdninstagram.com/ok.jpg",
                thumbnail_url=text,
            )
            for n, text in enumerate(HOSTILE)
        )
    )
    keys = [
        upload(EVENT, f"{text}.jpg", taken_at=f"2026-04-29T2{n}:00:00Z")
        for n, text in enumerate(HOSTILE)
    ]
    body = gallery_json()
    captions = [item["caption"] for item in body["items"] if item["source"] == "instagram"]
    assert captions == HOSTILE
    assert all(item["permalink"] is None for item in body["items"])
    assert [item["id"] for item in body["items"] if item["source"] == "upload"] == keys
    response, document = gallery_page()
    nonce = re.search(r"'nonce-([^']+)'", response["headers"]["Content-Security-Policy"])
    assert nonce is not None
    scripts = document.find_all("script")
    assert len(scripts) == 1
    assert scripts[0].attrs.get("nonce") == nonce.group(1)
    for element in document.iter():
        assert not [name for name in element.attrs if name.startswith("on")], element.tag
    for url in page_urls(document):
        assert url.startswith(("https://", "data:,")), url
    assert [img for img in document.find_all("img") if img.attrs.get("src") == "x"] == []
    shown = [span.text() for span in document.find_all("span", cls="cap-text")]
    assert shown == HOSTILE
    upload_paths = {
        urlsplit(a.attrs["href"] or "").path
        for a in document.find_all("a", cls="tile")
        if "uploads" in (a.attrs["href"] or "")
    }
    assert len(upload_paths) == len(HOSTILE)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://scontent.cdninstagram.com/v/a.jpg?oh=1&oe=2", True),
        ("HTTPS://WWW.INSTAGRAM.COM/p/x/", True),
        ("https://www.instagram.com", True),
        ("http://127.0.0.1:8765/a.jpg", True),
        ("http://cdninstagram.com/a.jpg", True),
        ("http://scontent.cdninstagram.com/a.jpg", False),
        ("http://evil.example/a.jpg", False),
        ("javascript:alert(1)", False),
        ("JaVaScRiPt:alert(1)", False),
        ("data:image/png;base64,AAAA", False),
        ("//www.instagram.com/p/x/", False),
        ("/p/x/", False),
        ("https:/www.instagram.com/p/x/", False),
        ("https://user:pass@www.instagram.com/", False),
        ("https://www.instagram.com\\@evil.example/", False),
        ('https://x.example/"><img src=x onerror=alert(1)>', False),
        ("https://x.example/a b", False),
        (" https://x.example/", False),
        ("https://x.example/\x00", False),
        ("https://bücher.example/", False),
        ("", False),
        (None, False),
    ],
)
def test_public_url_policy(url: str | None, expected: bool) -> None:
    """GIVEN a URL from Instagram data and MEDIA_HOSTS cdninstagram.com,127.0.0.1
    WHEN checked THEN only https, or http on an exactly listed host, survives."""
    result = shared.gallery.public_url(url, frozenset({"cdninstagram.com", "127.0.0.1"}))
    assert result == (url if expected else None)


def test_small_thumbnails_leave_the_original_in_srcset(aws: AwsCalls) -> None:
    """GIVEN a mirror whose thumbnails are all narrower than the grid needs
    WHEN the page is rendered THEN srcset offers the original as well."""
    small = Mirror(
        original=Rendition("instagram/s1/original.jpg", 1080, 1080, 1),
        thumbnails=(Rendition("instagram/s1/150.jpg", 150, 150, 1),),
    )
    save_posts(post("s1", "2026-04-29T20:00:00Z", mirror=small))
    _, document = gallery_page()
    img = document.find_all("img")[0]
    widths = [c.strip().rsplit(" ", 1)[1] for c in (img.attrs["srcset"] or "").split(",")]
    assert widths == ["150w", "1080w"]
    assert (img.attrs["width"], img.attrs["height"]) == ("150", "150")
