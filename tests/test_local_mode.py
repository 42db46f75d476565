"""Local mode: the Graph API stand-in, the sample data, the API Gateway adapter,
and the whole ``python -m local`` stack (HTTP and a real headless Chromium)."""

from __future__ import annotations

import base64
import io
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from PIL import Image

from local import images as images_module
from local.fake_graph import (
    FAKE_USER_ID,
    LOCAL_TOKEN,
    FakeGraphServer,
    FakeMedia,
    Fault,
)
from local.http_adapter import LocalHttpApi, Route
from local.images import ImageLibrary, ImageSpec, render_jpeg
from local.samples import CHARTER_ZONE, load_samples
from local.stack import SERVE_ROUTES
from shared.graph_errors import (
    GraphAuthError,
    GraphThrottledError,
    GraphTransientError,
    raise_for_graph_error,
    usage_from_headers,
)
from shared.timestamps import parse_graph_timestamp
from tests.browser import wait_until

ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2026, 4, 29, 12, 0, tzinfo=UTC)
AUTH = {"access_token": LOCAL_TOKEN}


def _posts(count: int) -> list[FakeMedia]:
    """``count`` IMAGE posts an hour apart, oldest first."""
    return [
        FakeMedia(
            id=str(18000000000000000 + n),
            timestamp=T0 + timedelta(hours=n),
            caption=f"post {n}",
            media=f"img{n}",
        )
        for n in range(count)
    ]


@pytest.fixture
def graph() -> Iterator[FakeGraphServer]:
    """GIVEN a running stand-in with 23 posts, 10 per page."""
    with FakeGraphServer(_posts(23), page_size=10) as server:
        yield server


# -- the Graph API stand-in ---------------------------------------------------


def test_media_pages_follow_next_urls_to_the_end(graph: FakeGraphServer) -> None:
    """GIVEN 23 posts and page size 10
    WHEN a client follows paging.next from /me/media
    THEN it gets 10, 10 and 3 posts, newest first, each once, and the last page has no next.
    """
    url: str | None = f"{graph.graph_url}/me/media"
    params: dict[str, str] | None = {"fields": "id,timestamp", **AUTH}
    pages: list[list[str]] = []
    while url:
        response = requests.get(url, params=params, timeout=5)
        assert response.status_code == 200
        body = response.json()
        pages.append([item["id"] for item in body["data"]])
        url = body["paging"].get("next")
        params = None  # the next URL is complete, token included
        if url:
            assert url.startswith(graph.graph_url + "/me/media?")
            query = parse_qs(urlsplit(url).query)
            assert query["access_token"] == [LOCAL_TOKEN]
            assert query["after"] == [body["paging"]["cursors"]["after"]]
    assert [len(page) for page in pages] == [10, 10, 3]
    expected = [post.id for post in reversed(_posts(23))]
    assert [media_id for page in pages for media_id in page] == expected
    assert graph.graph_calls == 3


def test_before_cursor_and_limit_page_backwards(graph: FakeGraphServer) -> None:
    """GIVEN a second page fetched with limit=5
    WHEN the client follows paging.previous
    THEN it gets the first five posts again, and the first page has no previous.
    """
    first = requests.get(f"{graph.graph_url}/me/media", params={"limit": "5", **AUTH}, timeout=5)
    assert "previous" not in first.json()["paging"]
    second = requests.get(first.json()["paging"]["next"], timeout=5).json()
    back = requests.get(second["paging"]["previous"], timeout=5).json()
    assert [item["id"] for item in back["data"]] == [item["id"] for item in first.json()["data"]]
    assert len(second["data"]) == 5


def test_only_requested_fields_and_graph_timestamps(graph: FakeGraphServer) -> None:
    """GIVEN posts with captions and images
    WHEN listed without fields, then with fields=timestamp,caption
    THEN the first gives ids only, the second exactly id+timestamp+caption, with
    timestamps in Graph's +0000 format.
    """
    bare = requests.get(f"{graph.graph_url}/me/media", params=AUTH, timeout=5).json()
    assert all(set(item) == {"id"} for item in bare["data"])
    body = requests.get(
        f"{graph.graph_url}/me/media", params={"fields": "timestamp,caption", **AUTH}, timeout=5
    ).json()
    newest = body["data"][0]
    assert set(newest) == {"id", "timestamp", "caption"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0000", newest["timestamp"])
    assert parse_graph_timestamp(newest["timestamp"]) == T0 + timedelta(hours=22)


def test_children_expand_and_reels_withhold_media_url() -> None:
    """GIVEN a carousel (an image and a video child) and a reel without media_url
    WHEN listed with children{...} and read one by one
    THEN children come inline, video items carry only thumbnail_url, a post
    without caption has no caption key, and /{id}/children lists the children.
    """
    carousel = FakeMedia(
        id="17896450804038745",
        timestamp=T0,
        media_type="CAROUSEL_ALBUM",
        caption=None,
        children=(
            FakeMedia(id="17880997618081620", timestamp=T0, media="child1"),
            FakeMedia(id="17871527143187462", timestamp=T0, media_type="VIDEO", thumbnail="poster"),
        ),
    )
    reel = FakeMedia(
        id="18041122334455667",
        timestamp=T0 - timedelta(days=1),
        media_type="VIDEO",
        media_product_type="REELS",
        caption="Behind the bar",
        thumbnail="reelposter",
    )
    fields = (
        "id,caption,media_type,media_product_type,media_url,thumbnail_url,"
        "children{id,media_type,media_url,thumbnail_url}"
    )
    with FakeGraphServer([carousel, reel]) as server:
        listed = requests.get(
            f"{server.graph_url}/me/media", params={"fields": fields, **AUTH}, timeout=5
        ).json()["data"]
        one = requests.get(
            f"{server.graph_url}/{reel.id}", params={"fields": fields, **AUTH}, timeout=5
        ).json()
        edge = requests.get(
            f"{server.graph_url}/{carousel.id}/children",
            params={"fields": "media_type,thumbnail_url", **AUTH},
            timeout=5,
        ).json()
        cdn_root = server.base_url + "/cdn/"
    album, clip = listed
    assert "caption" not in album
    assert "media_url" not in album
    image_child, video_child = album["children"]["data"]
    assert image_child["media_url"].startswith(cdn_root)
    assert "media_url" not in video_child
    assert "thumbnail_url" in video_child
    assert clip["media_product_type"] == "REELS"
    assert "media_url" not in clip
    assert "thumbnail_url" in clip
    assert one["id"] == reel.id
    assert "thumbnail_url" in one
    assert [child["media_type"] for child in edge["data"]] == ["IMAGE", "VIDEO"]


def test_token_by_header_or_parameter_and_bad_tokens_get_190(graph: FakeGraphServer) -> None:
    """GIVEN the stand-in accepting one token
    WHEN called with a Bearer header, with an unknown token and with none
    THEN the header works, the unknown token gets HTTP 400 code 190 (an auth
    error for the team's classifier), and no token gets HTTP 400 as well.
    """
    url = f"{graph.graph_url}/me"
    ok = requests.get(
        url,
        params={"fields": "user_id,username"},
        headers={"Authorization": f"Bearer {LOCAL_TOKEN}"},
        timeout=5,
    )
    assert ok.json() == {"id": FAKE_USER_ID, "user_id": FAKE_USER_ID, "username": "sailjada"}
    wrong = requests.get(url, params={"access_token": "IGAAnotTheToken"}, timeout=5)
    assert wrong.status_code == 400
    assert wrong.json()["error"]["code"] == 190
    with pytest.raises(GraphAuthError):
        raise_for_graph_error(wrong)
    assert requests.get(url, timeout=5).status_code == 400


def test_unknown_fields_ids_and_cursors_are_graph_errors(graph: FakeGraphServer) -> None:
    """GIVEN the stand-in
    WHEN asked for a nonexisting field, an unknown media id, or a bogus cursor
    THEN each answer is HTTP 400 with Graph's code 100.
    """
    for path, params in (
        ("/me/media", {"fields": "id,colour"}),
        ("/me/media", {"fields": "children{id,colour}"}),
        ("/99999", {}),
        ("/me/media", {"after": "bm90LWEtY3Vyc29y"}),
    ):
        response = requests.get(graph.graph_url + path, params={**params, **AUTH}, timeout=5)
        assert response.status_code == 400, path
        assert response.json()["error"]["code"] == 100, path


def test_injected_faults_are_served_then_normal_answers_resume(graph: FakeGraphServer) -> None:
    """GIVEN an expired-token fault, a throttle fault and two 500s injected
    WHEN five calls are made
    THEN they fail in that order, as the team's classifier expects (190/463,
    80002 with a regain time from the BUC header, transient 5xx), and the fifth succeeds.
    """
    graph.inject(Fault.expired_token())
    graph.inject(Fault.throttled(regain_minutes=20))
    graph.inject(Fault.server_error(), times=2)
    url = f"{graph.graph_url}/me/media"
    expired, throttled, error1, error2, ok = (
        requests.get(url, params=AUTH, timeout=5) for _ in range(5)
    )
    assert expired.status_code == 400
    assert expired.json()["error"]["error_subcode"] == 463
    with pytest.raises(GraphAuthError):
        raise_for_graph_error(expired)
    assert throttled.json()["error"]["code"] == 80002
    assert usage_from_headers(throttled.headers).regain_after == timedelta(minutes=20)
    with pytest.raises(GraphThrottledError) as caught:
        raise_for_graph_error(throttled)
    assert caught.value.retry_after is not None
    for failed in (error1, error2):
        assert failed.status_code == 500
        with pytest.raises(GraphTransientError):
            raise_for_graph_error(failed)
    assert ok.status_code == 200
    assert len(ok.json()["data"]) == 10
    assert [request.status for request in graph.requests] == [400, 403, 500, 500, 200]


def test_cdn_serves_signed_jpegs_until_oe_passes(graph: FakeGraphServer) -> None:
    """GIVEN an image URL from the API (signed with oh=/oe=)
    WHEN it is downloaded, tampered with, and downloaded after its expiry
    THEN it is a real JPEG at first, a tampered one gets 403 "Bad URL hash", an
    expired one 403 "URL signature expired", and a freshly read URL works again.
    """
    body = requests.get(
        f"{graph.graph_url}/me/media", params={"fields": "media_url", **AUTH}, timeout=5
    )
    url = body.json()["data"][0]["media_url"]
    assert {"oh", "oe"} <= set(parse_qs(urlsplit(url).query))
    image = requests.get(url, timeout=5)
    assert image.status_code == 200
    assert image.headers["Content-Type"] == "image/jpeg"
    assert Image.open(io.BytesIO(image.content)).format == "JPEG"
    tampered = requests.get(url.replace("img22_n", "img21_n"), timeout=5)
    assert (tampered.status_code, tampered.text) == (403, "Bad URL hash")
    graph.advance_time(graph.cdn_ttl.total_seconds() + 60)
    expired = requests.get(url, timeout=5)
    assert (expired.status_code, expired.text) == (403, "URL signature expired")
    refetched = requests.get(
        f"{graph.graph_url}/me/media", params={"fields": "media_url", **AUTH}, timeout=5
    )
    assert requests.get(refetched.json()["data"][0]["media_url"], timeout=5).status_code == 200
    assert graph.cdn_calls == 4


def test_cdn_fault_injection_applies_to_downloads_only(graph: FakeGraphServer) -> None:
    """GIVEN a CDN fault injected
    WHEN the API is called and then an image downloaded
    THEN the API answers normally and the download gets the injected 403.
    """
    graph.inject(Fault.signature_expired(), target="cdn")
    listed = requests.get(
        f"{graph.graph_url}/me/media", params={"fields": "media_url", **AUTH}, timeout=5
    )
    assert listed.status_code == 200
    download = requests.get(listed.json()["data"][0]["media_url"], timeout=5)
    assert (download.status_code, download.text) == (403, "URL signature expired")


def test_refresh_access_token_issues_a_working_token_only_after_24h() -> None:
    """GIVEN one token two days old
    WHEN it is refreshed, and then the brand-new token is refreshed at once
    THEN the first refresh returns a new bearer token valid for ~60 days that the
    API accepts; the second is refused because the token is under 24 h old.
    """
    with FakeGraphServer(_posts(1)) as server:
        refresh = f"{server.base_url}/refresh_access_token"
        first = requests.get(
            refresh, params={"grant_type": "ig_refresh_token", **AUTH}, timeout=5
        ).json()
        assert first["token_type"] == "bearer"
        assert first["expires_in"] > 59 * 86400
        new_token = first["access_token"]
        assert new_token != LOCAL_TOKEN
        assert server.tokens == [LOCAL_TOKEN, new_token]
        me = requests.get(f"{server.graph_url}/me", params={"access_token": new_token}, timeout=5)
        assert me.status_code == 200
        again = requests.get(
            refresh,
            params={"grant_type": "ig_refresh_token", "access_token": new_token},
            timeout=5,
        )
        assert again.status_code == 400
        assert server.tokens == [LOCAL_TOKEN, new_token]


# -- sample data and images ---------------------------------------------------


def test_samples_cover_the_cases_a_gallery_must_get_right() -> None:
    """GIVEN the bundled samples
    THEN there are 25-40 posts with carousels, a reel with only a poster, captions
    with emoji and hostile HTML, posts minutes either side of midnight Pacific, an
    image spec for every referenced image, and uploads for two events inside
    their event's local day.
    """
    samples = load_samples()
    media = samples.media
    assert 25 <= len(media) <= 40
    assert len({item.id for item in media}) == len(media)
    assert any(item.media_type == "CAROUSEL_ALBUM" and len(item.children) >= 3 for item in media)
    reels = [item for item in media if item.media_product_type == "REELS"]
    assert reels
    assert all(r.media_type == "VIDEO" and r.media is None and r.thumbnail for r in reels)
    captions = [item.caption or "" for item in media]
    assert any("<script>alert(1)</script>" in caption for caption in captions)
    assert any(re.search(r"[\U0001F300-\U0001FAFF]", caption) for caption in captions)
    assert any(item.caption is None for item in media)
    local_times = [item.timestamp.astimezone(CHARTER_ZONE) for item in media]
    assert any(t.hour == 23 and t.minute >= 50 for t in local_times)
    assert any(t.hour == 0 and t.minute <= 10 for t in local_times)
    names = {spec.name for spec in samples.images}
    referenced = {
        name
        for item in media
        for node in (item, *item.children)
        for name in (node.media, node.thumbnail)
        if name
    } | {upload.image for upload in samples.uploads}
    assert referenced <= names
    assert {upload.event_id for upload in samples.uploads} == {
        "2026-04-29",
        "2026-05-16-whale-watch",
    }
    for upload in samples.uploads:
        assert upload.taken_at.astimezone(CHARTER_ZONE).date().isoformat() == upload.event_id[:10]


def test_images_are_deterministic_jpegs_cached_on_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GIVEN a library with a cache directory
    WHEN an image is rendered, and a second library reads the same name
    THEN the bytes are a JPEG of the spec's size, the second library reads the
    cached file without rendering, and names with path parts are refused.
    """
    spec = ImageSpec("p123", 216, 270, "sunset", "@sailjada · test")
    first = ImageLibrary([spec], cache_dir=tmp_path).jpeg("p123")
    assert first is not None
    assert first == render_jpeg(spec)
    with Image.open(io.BytesIO(first)) as decoded:
        assert (decoded.format, decoded.size) == ("JPEG", (216, 270))
    assert list(tmp_path.glob("p123-216x270-*.jpg"))

    def no_rendering(spec: ImageSpec) -> bytes:
        raise AssertionError("rendered although cached")

    monkeypatch.setattr(images_module, "render_jpeg", no_rendering)
    assert ImageLibrary([spec], cache_dir=tmp_path).jpeg("p123") == first
    strict = ImageLibrary([spec], default_size=None)
    assert strict.jpeg("../etc/passwd") is None
    assert strict.jpeg("unknown") is None


# -- the API Gateway adapter ----------------------------------------------------


@dataclass
class RecordingHandler:
    """A stand-in Lambda handler that records its events and answers as told."""

    response: Any = field(default_factory=lambda: {"statusCode": 200, "body": "ok"})
    events: list[dict[str, Any]] = field(default_factory=list)
    contexts: list[Any] = field(default_factory=list)

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        self.events.append(event)
        self.contexts.append(context)
        if isinstance(self.response, Exception):
            raise self.response
        return self.response


def test_browser_request_becomes_a_payload_v2_event() -> None:
    """GIVEN the adapter with the template's route in front of a recording handler
    WHEN a browser-like GET with a query, repeated parameters, cookies and headers arrives
    THEN the handler gets API Gateway's payload 2.0 event for it and a Lambda context.
    """
    handler = RecordingHandler()
    with LocalHttpApi(handler, routes=SERVE_ROUTES) as api:
        response = requests.get(
            f"{api.url}/g/2026-04-29?format=json&tag=a&tag=b",
            headers={"Cookie": "a=1; b=2", "X-Custom": "yes", "User-Agent": "test-agent"},
            timeout=5,
        )
    assert response.status_code == 200
    (event,) = handler.events
    assert event["version"] == "2.0"
    assert event["routeKey"] == "ANY /g/{event_id}"
    assert event["rawPath"] == "/g/2026-04-29"
    assert event["rawQueryString"] == "format=json&tag=a&tag=b"
    assert event["queryStringParameters"] == {"format": "json", "tag": "a,b"}
    assert event["pathParameters"] == {"event_id": "2026-04-29"}
    assert event["cookies"] == ["a=1", "b=2"]
    assert event["headers"]["x-custom"] == "yes"
    assert "cookie" not in event["headers"]
    http = event["requestContext"]["http"]
    assert (http["method"], http["path"], http["userAgent"]) == (
        "GET",
        "/g/2026-04-29",
        "test-agent",
    )
    assert event["requestContext"]["stage"] == "$default"
    assert event["isBase64Encoded"] is False
    assert "body" not in event
    assert handler.contexts[0].get_remaining_time_in_millis() > 0


def test_bodies_and_path_parameters_are_encoded_like_api_gateway() -> None:
    """GIVEN the adapter
    WHEN a POST with a binary body and a percent-encoded path arrives
    THEN the body is base64 in the event and the path parameter is decoded.
    """
    handler = RecordingHandler()
    with LocalHttpApi(handler, routes=SERVE_ROUTES) as api:
        requests.post(
            f"{api.url}/g/2026-04-29%20x",
            data=b"\x00\xffbinary",
            headers={"Content-Type": "application/octet-stream"},
            timeout=5,
        )
    (event,) = handler.events
    assert event["requestContext"]["http"]["method"] == "POST"
    assert event["pathParameters"] == {"event_id": "2026-04-29 x"}
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == b"\x00\xffbinary"


def test_handler_responses_are_written_back_as_api_gateway_does() -> None:
    """GIVEN handlers answering with base64 bodies, cookies, or a bare dict
    WHEN requested through the adapter
    THEN status, headers and decoded body reach the client, cookies become
    Set-Cookie, and a value without statusCode becomes a JSON 200.
    """
    handler = RecordingHandler(
        {
            "statusCode": 201,
            "headers": {"Content-Type": "image/png", "ETag": '"abc"'},
            "cookies": ["s=1; Path=/"],
            "body": base64.b64encode(b"\x89PNG").decode(),
            "isBase64Encoded": True,
        }
    )
    with LocalHttpApi(handler, routes=SERVE_ROUTES) as api:
        response = requests.get(f"{api.url}/g/2026-04-29", timeout=5)
        assert (response.status_code, response.content) == (201, b"\x89PNG")
        assert response.headers["ETag"] == '"abc"'
        assert response.headers["Set-Cookie"] == "s=1; Path=/"
        handler.response = {"items": []}
        inferred = requests.get(f"{api.url}/g/2026-04-29", timeout=5)
    assert inferred.status_code == 200
    assert inferred.json() == {"items": []}
    assert inferred.headers["Content-Type"] == "application/json"


def test_a_failing_handler_gets_a_bare_500_and_unrouted_paths_a_404() -> None:
    """GIVEN a handler that raises, behind the adapter
    WHEN the route is requested, and then a path outside the route
    THEN the client sees API Gateway's bare 500 (no traceback), the cause goes
    to the local log, and the unrouted path is a 404 without invoking the handler.
    """
    handler = RecordingHandler(RuntimeError("secret detail in a traceback"))
    lines: list[str] = []
    with LocalHttpApi(handler, routes=SERVE_ROUTES, log=lines.append) as api:
        failed = requests.get(f"{api.url}/g/2026-04-29", timeout=5)
        unrouted = requests.get(f"{api.url}/elsewhere", timeout=5)
    assert failed.status_code == 500
    assert failed.json() == {"message": "Internal Server Error"}
    assert "secret detail" not in failed.text
    assert any("secret detail" in line for line in lines)
    assert unrouted.status_code == 404
    assert len(handler.events) == 1


def test_local_pages_are_served_by_the_adapter_itself() -> None:
    """GIVEN the adapter with an index page
    WHEN / is requested
    THEN the page comes back as HTML and the handler is not invoked.
    """
    handler = RecordingHandler()
    with LocalHttpApi(handler, routes=SERVE_ROUTES, pages={"/": lambda: "<p>index</p>"}) as api:
        response = requests.get(api.url + "/", timeout=5)
    assert response.text == "<p>index</p>"
    assert response.headers["Content-Type"].startswith("text/html")
    assert handler.events == []


def test_route_keys_match_like_api_gateway() -> None:
    """GIVEN route keys with methods, ANY and $default
    THEN matching respects the method and captures one path segment per parameter.
    """
    assert Route("GET /g/{event_id}").match("POST", "/g/x") is None
    assert Route("GET /g/{event_id}").match("GET", "/g/x/y") is None
    assert Route("ANY /g/{event_id}").match("DELETE", "/g/x") == {"event_id": "x"}
    assert Route("$default").match("GET", "/anything") == {}


def test_adapter_routes_match_the_sam_template() -> None:
    """GIVEN template.yaml's HTTP API event of the serve function
    THEN the local adapter routes the same method and path.
    """
    template = (ROOT / "template.yaml").read_text()
    event = template.split("Type: HttpApi", 1)[1].split("\n\n", 1)[0]
    method = re.search(r"Method: (\w+)", event)
    path = re.search(r"Path: (\S+)", event)
    assert method
    assert path
    assert (f"{method.group(1)} {path.group(1)}",) == SERVE_ROUTES


# -- the whole stack: python -m local -----------------------------------------


@dataclass
class DemoProcess:
    """A running ``python -m local`` and everything it printed."""

    process: subprocess.Popen[str]
    lines: list[str]
    url: str

    def output(self) -> str:
        return "\n".join(self.lines)

    def stop(self, sig: int = signal.SIGINT, timeout: float = 30) -> int:
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()  # never leave a demo behind a failed test
            self.process.wait()
            raise


def _fresh_machine_env(home: Path) -> dict[str, str]:
    # No AWS credentials, no profile, no token: what a newcomer's shell has.
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
    }


def _start_demo(
    tmp: Path,
    cache: Path,
    *args: str,
    sigint_ignored: bool = False,
    env: dict[str, str] | None = None,
) -> DemoProcess:
    home = tmp / "home"
    home.mkdir(exist_ok=True)
    process = subprocess.Popen(  # noqa: S603 (our own fixed command line)
        [sys.executable, "-m", "local", "--port", "0", "--cache-dir", str(cache), *args],
        cwd=ROOT,
        env={**_fresh_machine_env(home), **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # As a shell starts a background job (`make demo &`).
        preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
        if sigint_ignored
        else None,
    )
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("Serving after"):
                ready.set()
        ready.set()

    threading.Thread(target=read, daemon=True).start()
    ready.wait(timeout=180)
    found = next(
        (
            re.search(r"(http://127\.0\.0\.1:\d+)/", line)
            for line in lines
            if line.startswith("Serving after")
        ),
        None,
    )
    if found is None:
        process.kill()
        process.wait()
        pytest.fail("python -m local did not start:\n" + "\n".join(lines))
    return DemoProcess(process, lines, found.group(1))


@pytest.fixture(scope="module")
def image_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample image cache shared by this module's demo runs (rendered once)."""
    return tmp_path_factory.mktemp("image-cache")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, image_cache: Path) -> Iterator[DemoProcess]:
    """GIVEN `python -m local` running on a machine without AWS account or token."""
    running = _start_demo(tmp_path_factory.mktemp("demo"), image_cache)
    yield running
    if running.process.poll() is None:
        running.stop()


def test_demo_serves_the_sample_events_through_the_real_handlers(demo: DemoProcess) -> None:
    """GIVEN the demo started
    WHEN the index and an event's JSON are requested
    THEN the index links both sample events; the 2026-04-29 gallery holds its four
    uploads and its posts (the 23:58 post, not the 00:02 one), oldest first; and
    the whale-watch event carries its title and its hostile caption verbatim.
    """
    index = requests.get(demo.url + "/", timeout=10)
    assert index.status_code == 200
    assert 'href="/g/2026-04-29"' in index.text
    assert 'href="/g/2026-05-16-whale-watch"' in index.text
    gallery = requests.get(demo.url + "/g/2026-04-29", params={"format": "json"}, timeout=10).json()
    items = gallery["items"]
    assert gallery["degraded"] == []
    assert sum(item["source"] == "upload" for item in items) == 4
    captions = [item["caption"] for item in items if item["source"] == "instagram"]
    assert "Last toast before midnight 🥂" in captions
    assert not any(c and c.startswith("Just after midnight") for c in captions)
    assert [item["taken_at"] for item in items] == sorted(item["taken_at"] for item in items)
    whale = requests.get(
        demo.url + "/g/2026-05-16-whale-watch", params={"format": "json"}, timeout=10
    ).json()
    assert whale["event"]["title"] == "Whale watch off the Farallones"
    assert any(
        item["caption"] and "<script>alert(1)</script>" in item["caption"]
        for item in whale["items"]
    )
    assert "ingest failed" not in demo.output()


@pytest.mark.browser
def test_gallery_loads_in_headless_chromium_with_every_image(
    demo: DemoProcess, browser: Any
) -> None:
    """GIVEN the demo's gallery of 2026-05-16-whale-watch (uploads, carousel, reel)
    WHEN a real headless Chromium opens it and scrolls to the bottom
    THEN the page loads, every image has decoded (naturalWidth > 0), and the
    console shows no error.
    """
    items = requests.get(
        demo.url + "/g/2026-05-16-whale-watch", params={"format": "json"}, timeout=10
    ).json()["items"]
    assert len(items) == 9  # six posts and three guest uploads
    problems: list[str] = []
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))
    response = page.goto(demo.url + "/g/2026-05-16-whale-watch", wait_until="load")
    assert response is not None
    assert response.status == 200
    height = page.evaluate("document.body.scrollHeight")
    for _offset in range(0, int(height) + 900, 600):
        page.mouse.wheel(0, 600)
        page.wait_for_timeout(50)
    page.wait_for_load_state("networkidle")
    wait_until(page, "Array.from(document.querySelectorAll('img[src]')).every(img => img.complete)")
    # img[src]: the photo viewer's <img> stays empty until a photo is opened.
    sizes = page.evaluate(
        "Array.from(document.querySelectorAll('img[src]'))"
        ".map(img => [img.currentSrc, img.naturalWidth])"
    )
    assert len(sizes) >= len(items), sizes
    assert [src for src, width in sizes if width == 0] == []
    assert problems == []


def _children_of(pid: int) -> set[int]:
    """Ids of the live processes whose parent is ``pid`` (from /proc)."""
    children = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended while we looked
        if int(fields[1]) == pid:
            children.add(int(stat.parent.name))
    return children


def _port_open(url: str) -> bool:
    parts = urlsplit(url)
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((parts.hostname or "127.0.0.1", parts.port or 80)) == 0


def test_ctrl_c_stops_everything_it_started(tmp_path: Path, image_cache: Path) -> None:
    """GIVEN a demo started with --no-ingest as a shell starts a background job
    (SIGINT ignored), with the gallery, moto and the Graph stand-in listening
    WHEN it gets SIGINT (kill -INT, as Ctrl-C sends)
    THEN it exits 0 promptly, having started no child process, and none of its
    ports accepts connections any more.
    """
    running = _start_demo(tmp_path, image_cache, "--no-ingest", sigint_ignored=True)
    assert "- ingest" not in running.output()
    urls = [running.url, *re.findall(r"(http://127\.0\.0\.1:\d+)", running.output())]
    assert all(_port_open(url) for url in urls)
    # A request first: its handler thread may then be the one the kernel
    # delivers the signal to, which must still stop the process.
    assert requests.get(running.url + "/", timeout=10).status_code == 200
    child_pids = _children_of(running.process.pid)
    assert child_pids == set()
    started = time.monotonic()
    assert running.stop(signal.SIGINT) == 0, running.output()
    assert time.monotonic() - started < 15
    assert "Stopped." in running.output()
    assert not any(_port_open(url) for url in urls)


def test_real_instagram_switch_ingests_with_the_given_token(
    tmp_path: Path, image_cache: Path
) -> None:
    """GIVEN a Graph API reachable at GRAPH_API_URL (the stand-in, playing the real
    one) with two posts, and IG_ACCESS_TOKEN set
    WHEN the demo runs with --real-instagram
    THEN it makes the schedule's incremental run with that token (from the token
    secret, as a Bearer header), serves those posts with the sample uploads, and
    never prints the token.
    """
    posts = [
        FakeMedia(id="18000000000000101", timestamp=T0, caption="Real post", media="real1"),
        FakeMedia(id="18000000000000102", timestamp=T0 + timedelta(hours=1), media="real2"),
    ]
    with FakeGraphServer(posts) as graph:
        running = _start_demo(
            tmp_path,
            image_cache,
            "--real-instagram",
            env={
                "IG_ACCESS_TOKEN": LOCAL_TOKEN,
                "GRAPH_API_URL": graph.graph_url,
                "MEDIA_HOSTS": "127.0.0.1",
            },
        )
        try:
            gallery = requests.get(
                running.url + "/g/2026-04-29", params={"format": "json"}, timeout=10
            ).json()
        finally:
            assert running.stop() == 0
        media_calls = [r for r in graph.requests if r.path.endswith("/me/media")]
    assert len(media_calls) == 1
    assert media_calls[0].headers["Authorization"] == f"Bearer {LOCAL_TOKEN}"
    assert "- ingest {}" in running.output()
    assert "backfill" not in running.output()
    instagram = [item["id"] for item in gallery["items"] if item["source"] == "instagram"]
    assert sorted(instagram) == [post.id for post in posts]
    assert sum(item["source"] == "upload" for item in gallery["items"]) == 4
    assert LOCAL_TOKEN not in running.output()


def test_a_failed_ingest_is_reported_and_the_gallery_still_serves(
    tmp_path: Path, image_cache: Path
) -> None:
    """GIVEN --real-instagram with a token the Graph API rejects (code 190)
    WHEN the demo starts
    THEN it says ingest failed and why, without the token, and still serves the
    gallery with the guest uploads.
    """
    rejected = "IGAArejectedTokenValue0123456789"
    with FakeGraphServer(_posts(2)) as graph:
        running = _start_demo(
            tmp_path,
            image_cache,
            "--real-instagram",
            env={"IG_ACCESS_TOKEN": rejected, "GRAPH_API_URL": graph.graph_url},
        )
        try:
            response = requests.get(
                running.url + "/g/2026-04-29", params={"format": "json"}, timeout=10
            )
        finally:
            assert running.stop() == 0
    assert "ingest failed" in running.output()
    assert "190" in running.output()
    assert rejected not in running.output()
    assert response.status_code == 200
    assert sum(item["source"] == "upload" for item in response.json()["items"]) == 4


def test_real_aws_switch_serves_existing_data_and_writes_nothing(
    tmp_path: Path, image_cache: Path
) -> None:
    """GIVEN "real" AWS (a separate moto server at AWS_ENDPOINT_URL) holding a table
    and a bucket with one guest upload
    WHEN the demo runs with --real-aws
    THEN it serves that upload from that bucket, skips ingest, and creates or
    seeds nothing: the table stays empty and the bucket holds only that upload.
    """
    import boto3
    from moto.server import ThreadedMotoServer

    from shared.config import Settings
    from shared.models import MediaItem, create_table

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        settings = Settings(
            media_table="prod-media", media_bucket="prod-media", aws_endpoint_url=endpoint
        )
        create_table(settings)
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        s3.create_bucket(Bucket="prod-media")
        s3.put_object(
            Bucket="prod-media",
            Key="uploads/2026-04-29-dinner/guest.jpg",
            Body=render_jpeg(ImageSpec("guest", 64, 48)),
            Metadata={"taken-at": "2026-04-29T20:00:00Z"},
        )
        running = _start_demo(
            tmp_path,
            image_cache,
            "--real-aws",
            env={
                "AWS_ENDPOINT_URL": endpoint,
                "AWS_ACCESS_KEY_ID": "prod",
                "AWS_SECRET_ACCESS_KEY": "prod",
                "AWS_DEFAULT_REGION": "us-east-1",
                "MEDIA_TABLE": "prod-media",
                "MEDIA_BUCKET": "prod-media",
            },
        )
        try:
            gallery = requests.get(
                running.url + "/g/2026-04-29-dinner", params={"format": "json"}, timeout=10
            ).json()
        finally:
            assert running.stop() == 0
        keys = [item["Key"] for item in s3.list_objects_v2(Bucket="prod-media")["Contents"]]
        stored = list(MediaItem.scan())
    finally:
        server.stop()
    assert [item["id"] for item in gallery["items"]] == ["uploads/2026-04-29-dinner/guest.jpg"]
    assert "ingest skipped" in running.output()
    assert keys == ["uploads/2026-04-29-dinner/guest.jpg"]
    assert stored == []


def test_switches_without_what_they_need_fail_clearly(tmp_path: Path) -> None:
    """GIVEN a machine without AWS settings or an Instagram token
    WHEN the demo is started with --real-aws, or with --real-instagram
    THEN it exits 2 at once, naming the missing variable, having started nothing.
    """
    env = _fresh_machine_env(tmp_path)
    for switch, missing in (("--real-aws", "MEDIA_TABLE"), ("--real-instagram", "IG_ACCESS_TOKEN")):
        result = subprocess.run(  # noqa: S603 (our own fixed command line)
            [sys.executable, "-m", "local", "--port", "0", "--cache-dir", str(tmp_path), switch],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2, result.stdout + result.stderr
        assert missing in result.stderr
        assert "Traceback" not in result.stderr
        assert "Serving" not in result.stdout


def test_help_documents_the_switches() -> None:
    """GIVEN the command line
    WHEN --help is asked for
    THEN every switch is documented.
    """
    result = subprocess.run(
        [sys.executable, "-m", "local", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    for switch in ("--port", "--no-ingest", "--real-instagram", "--real-aws", "--cache-dir"):
        assert switch in result.stdout
