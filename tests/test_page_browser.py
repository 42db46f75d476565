"""The gallery page in a real headless Chromium (Debian's ``/usr/bin/chromium``).

A moto server stands in for AWS (as in local mode), so the presigned image
URLs really load; a tiny HTTP server turns browser requests into payload 2.0
events for ``serve.app.handler``. The page must load without console errors
or third-party requests, open the full-size view, move through it by keyboard
and swipe, and not shift its layout while images arrive.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
import requests
from PIL import Image, ImageDraw

from serve.app import handler
from shared import aws, config
from shared.media import MediaChild, Mirror, Post, Rendition
from shared.models import create_table
from shared.repository import DynamoMediaRepository
from shared.state import IngestState
from tests.browser import wait_until
from tests.conftest import BUCKET

pytestmark = pytest.mark.browser

SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "gallery.png"
EVENT = "2026-04-29"
PALETTE = [(14, 94, 138), (229, 158, 61), (36, 140, 110), (190, 70, 80), (90, 80, 160)]


def jpeg(width: int, height: int, colour: tuple[int, int, int], label: str) -> bytes:
    image = Image.new("RGB", (width, height), colour)
    draw = ImageDraw.Draw(image)
    draw.ellipse((width // 4, height // 4, 3 * width // 4, 3 * height // 4), fill=(250, 245, 230))
    draw.text((12, 12), label, fill=(0, 0, 0))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=80)
    return buffer.getvalue()


@pytest.fixture
def local_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """GIVEN a moto server on loopback as the AWS endpoint (local mode's setup)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    # The server shares moto's in-process state: start and leave it empty.
    requests.post(f"{endpoint}/moto-api/reset", timeout=5)
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    config.get_settings.cache_clear()
    aws.reset_clients()
    try:
        yield endpoint
    finally:
        requests.post(f"{endpoint}/moto-api/reset", timeout=5)
        server.stop()


def mirrored(s3: Any, media_id: str, colour: tuple[int, int, int], ratio: float) -> Mirror:
    renditions = []
    for width in (320, 640, 1080):
        height = round(width * ratio)
        key = f"instagram/{media_id}/{width}.jpg"
        s3.put_object(
            Bucket=BUCKET,
            Key=key,
            Body=jpeg(width, height, colour, media_id),
            ContentType="image/jpeg",
        )
        renditions.append(Rendition(key, width, height, 1))
    return Mirror(original=renditions[-1], thumbnails=tuple(renditions[:-1]))


def seed(endpoint: str) -> None:
    """GIVEN uploads, mirrored posts, a carousel, a reel and a hostile caption."""
    settings = config.get_settings()
    create_table(settings)
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    start = datetime(2026, 4, 29, 17, 0, tzinfo=UTC)
    posts = [
        Post(
            id=f"1790000000000000{n}",
            taken_at=start + timedelta(minutes=50 * n),
            media_type="IMAGE",
            caption=caption,
            permalink=f"https://www.instagram.com/p/SJ{n}/",
            mirror=mirrored(s3, f"p{n}", PALETTE[n % 5], 1.25 if n % 2 else 0.8),
        )
        for n, caption in enumerate(
            ["Leaving the marina", "Sunset run <script>alert(1)</script>", "Dolphins!"]
        )
    ]
    posts.append(
        Post(
            id="17896450804038745",
            taken_at=start + timedelta(hours=3),
            media_type="CAROUSEL_ALBUM",
            caption="Three views from the bow",
            permalink="https://www.instagram.com/p/SJcarousel/",
            children=tuple(
                MediaChild(f"k{n}", "IMAGE", mirror=mirrored(s3, f"k{n}", PALETTE[n], 1.0))
                for n in range(3)
            ),
        )
    )
    posts.append(
        Post(
            id="18041122334455667",
            taken_at=start + timedelta(hours=4),
            media_type="VIDEO",
            media_product_type="REELS",
            caption="Behind the helm",
            permalink="https://www.instagram.com/reel/SJreel/",
            mirror=mirrored(s3, "reel", PALETTE[4], 1.78),
        )
    )
    repository = DynamoMediaRepository(settings)
    repository.save_posts(posts, datetime.now(UTC))
    repository.save_state(IngestState(last_success_at=datetime(2026, 4, 30, 8, 0, 3, tzinfo=UTC)))
    for n in range(9):
        width, height = (1200, 900) if n % 3 else (900, 1200)
        s3.put_object(
            Bucket=BUCKET,
            Key=f"uploads/{EVENT}/IMG_{n:04d}.jpg",
            Body=jpeg(width, height, PALETTE[(n + 2) % 5], f"guest {n}"),
            ContentType="image/jpeg",
            Metadata={"taken-at": (start + timedelta(minutes=25 * n + 10)).isoformat()},
        )


class _GalleryHandler(BaseHTTPRequestHandler):
    """Turns a browser request into a payload 2.0 event for the Lambda handler."""

    def do_GET(self) -> None:
        self._serve("GET")

    def do_HEAD(self) -> None:
        self._serve("HEAD")

    def _serve(self, method: str) -> None:
        url = urlsplit(self.path)
        event = {
            "version": "2.0",
            "rawPath": url.path,
            "rawQueryString": url.query,
            "headers": {name.lower(): value for name, value in self.headers.items()},
            "requestContext": {"http": {"method": method, "path": url.path}, "stage": "$default"},
        }
        result = handler(event, None)
        body = result["body"].encode()
        self.send_response(result["statusCode"])
        for name, value in result["headers"].items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""


@pytest.fixture
def gallery_url(local_aws: str) -> Iterator[str]:
    """GIVEN the gallery served on loopback through the real handler."""
    seed(local_aws)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _GalleryHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/g/{EVENT}"
    finally:
        server.shutdown()
        server.server_close()


def watch(page: Any, origin_hosts: set[str]) -> list[str]:
    """Collect console errors, page errors, failed loads and foreign requests."""
    problems: list[str] = []
    page.on(
        "console",
        lambda message: (
            problems.append(f"console: {message.text}") if message.type == "error" else None
        ),
    )
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("requestfailed", lambda request: record_failure(problems, request))
    page.on(
        "response",
        lambda response: (
            problems.append(f"HTTP {response.status}: {response.url}")
            if response.status >= 400
            else None
        ),
    )

    def check_host(request: Any) -> None:
        url = urlsplit(request.url)
        if url.scheme != "data" and url.netloc not in origin_hosts:
            problems.append(f"third-party request: {request.url}")

    page.on("request", check_host)
    return problems


def record_failure(problems: list[str], request: Any) -> None:
    """Record a failed load, except one the page itself cancelled.

    Stepping through the viewer replaces an image that is still loading; the
    browser then aborts that load (``net::ERR_ABORTED``), which is no error.
    """
    if request.failure != "net::ERR_ABORTED":
        problems.append(f"failed ({request.failure}): {request.url}")


def scroll_through(page: Any) -> None:
    """Scroll to the bottom and back so lazy images load (screenshots do not)."""
    height = page.evaluate("document.body.scrollHeight")
    for _y in range(0, height + 800, 400):
        page.mouse.wheel(0, 400)
        page.wait_for_timeout(30)
    page.wait_for_load_state("networkidle")
    page.evaluate("window.scrollTo(0, 0)")
    wait_until(
        page,
        "[...document.images].filter(i => i.closest('.grid'))"
        ".every(i => i.complete && i.naturalWidth > 0)",
    )


def lightbox_state(page: Any) -> dict[str, Any]:
    state: dict[str, Any] = page.evaluate(
        """() => {
          const box = document.getElementById('lb'), img = box.querySelector('img');
          return {open: box.open, src: img.getAttribute('src'),
                  loaded: img.complete && img.naturalWidth > 0,
                  counter: box.querySelector('.lb-n').textContent,
                  caption: box.querySelector('.lb-text').textContent,
                  focused: document.activeElement && document.activeElement.className};
        }"""
    )
    return state


def test_gallery_in_chromium(browser: Any, gallery_url: str, local_aws: str) -> None:
    """GIVEN a seeded gallery served through the handler
    WHEN Chromium loads it on a laptop, opens the full-size view and navigates
    THEN no console error, no third-party request, no layout shift; the viewer
    opens on click and Enter, moves with arrows and swipes, and closes on Escape."""
    hosts = {urlsplit(gallery_url).netloc, urlsplit(local_aws).netloc}
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    problems = watch(page, hosts)
    page.add_init_script(
        "window.__cls = 0; new PerformanceObserver(l => l.getEntries().forEach("
        "e => { if (!e.hadRecentInput) window.__cls += e.value; }))"
        ".observe({type: 'layout-shift', buffered: true});"
    )
    response = page.goto(gallery_url, wait_until="load")
    assert response is not None
    assert response.status == 200
    scroll_through(page)
    tiles = page.locator("a.tile")
    assert tiles.count() == 14
    assert page.locator("h1").inner_text() == "Charter of Wednesday 29 April 2026"
    assert page.locator(".cap-text").nth(1).inner_text() == "Sunset run <script>alert(1)</script>"
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert page.evaluate("window.__cls") < 0.01

    # WHEN the first tile is clicked THEN the full-size image opens.
    tiles.first.click()
    wait_until(page, "document.querySelector('#lb img').naturalWidth > 0")
    first = lightbox_state(page)
    assert first["open"]
    assert first["loaded"]
    assert first["src"] == tiles.first.get_attribute("href")
    assert first["counter"].startswith("1 / ")
    assert first["caption"] == "Leaving the marina"
    assert first["focused"] == "lb-close"

    # WHEN ArrowRight / ArrowLeft are pressed THEN it moves and comes back.
    page.keyboard.press("ArrowRight")
    second = lightbox_state(page)
    assert second["counter"].startswith("2 / ")
    assert second["src"] != first["src"]
    page.keyboard.press("ArrowLeft")
    assert lightbox_state(page)["src"] == first["src"]

    # WHEN Escape is pressed THEN it closes and focus returns to the tile.
    page.keyboard.press("Escape")
    closed = lightbox_state(page)
    assert not closed["open"]
    assert page.evaluate("document.activeElement === document.querySelector('a.tile')")

    # WHEN the carousel tile is opened by keyboard THEN its children follow each other.
    carousel = page.locator("li", has_text="Three views from the bow").locator("a.tile")
    carousel.focus()
    page.keyboard.press("Enter")
    wait_until(page, "document.getElementById('lb').open")
    start = int(lightbox_state(page)["counter"].split(" / ")[0])
    for step in (1, 2):
        page.keyboard.press("ArrowRight")
        state = lightbox_state(page)
        assert state["counter"].startswith(f"{start + step} / ")
        assert state["caption"] == "Three views from the bow"
    wait_until(page, "document.querySelector('#lb img').naturalWidth > 0")
    page.keyboard.press("Escape")

    # THEN the reel links out to Instagram instead of opening the viewer.
    reel = page.locator("li", has_text="Behind the helm").locator("a.tile")
    assert reel.get_attribute("href") == "https://www.instagram.com/reel/SJreel/"
    assert reel.get_attribute("data-slide") is None
    context.close()
    assert problems == []


def test_swipe_on_a_phone(browser: Any, gallery_url: str, local_aws: str) -> None:
    """GIVEN a phone-sized touch screen
    WHEN the viewer is opened and swiped left, then right
    THEN it shows the next photo, then the previous one; the grid has 2 columns."""
    hosts = {urlsplit(gallery_url).netloc, urlsplit(local_aws).netloc}
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True
    )
    page = context.new_page()
    problems = watch(page, hosts)
    page.goto(gallery_url, wait_until="networkidle")
    columns = page.evaluate(
        "getComputedStyle(document.querySelector('.grid')).gridTemplateColumns.split(' ').length"
    )
    assert columns == 2
    page.locator("a.tile").first.tap()
    wait_until(page, "document.getElementById('lb').open")
    swipe = """(dx) => {
      const box = document.getElementById('lb');
      const touch = (x) => new Touch({identifier: 1, target: box, clientX: x, clientY: 400});
      box.dispatchEvent(new TouchEvent('touchstart', {touches: [touch(200)], bubbles: true}));
      box.dispatchEvent(new TouchEvent('touchend',
        {changedTouches: [touch(200 + dx)], bubbles: true}));
    }"""
    page.evaluate(swipe, -120)
    assert lightbox_state(page)["counter"].startswith("2 / ")
    page.evaluate(swipe, 120)
    assert lightbox_state(page)["counter"].startswith("1 / ")
    page.evaluate(swipe, 10)  # a tap-sized movement is not a swipe
    assert lightbox_state(page)["counter"].startswith("1 / ")
    wait_until(page, "document.querySelector('#lb img').naturalWidth > 0")
    context.close()
    assert problems == []
