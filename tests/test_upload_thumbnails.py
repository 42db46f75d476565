"""Guest upload renditions: made by the ingest handler, shown by the serve handler.

Ingest runs against an idle Instagram account (``responses``) and moto S3
holding real JPEG/PNG uploads made with Pillow; serve then reads the same
bucket, so each test checks the whole path an upload's thumbnail takes.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

import boto3
import pytest
import responses
from PIL import Image

import ingest.app as ingest_app
import shared.gallery
from shared.archive import CACHE_CONTROL
from shared.upload_thumbnails import MAX_UPLOADS_PER_RUN
from tests.conftest import BUCKET, AwsCalls
from tests.graph_fakes import FakeGraph
from tests.test_ingest import LambdaContext, emitted_metrics
from tests.test_serve import HOSTILE, Clock, gallery_json, gallery_page, page_urls

EVENT = "2026-04-29"
FOLDER = f"uploads/{EVENT}/"


@pytest.fixture(autouse=True)
def fresh_container() -> Iterator[None]:
    """GIVEN a cold ingest container for every test."""
    ingest_app._container.cache_clear()
    yield
    ingest_app._container.cache_clear()


@pytest.fixture
def graph(token_secret: str) -> Iterator[FakeGraph]:
    """GIVEN moto AWS with the token secret and an Instagram account with no posts."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield FakeGraph([]).install(mock)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """GIVEN serve's cache time under the test's control."""
    fake = Clock()
    monkeypatch.setattr(shared.gallery, "monotonic", fake)
    return fake


class TimedContext(LambdaContext):
    """A Lambda context whose remaining time is scripted, in milliseconds."""

    def __init__(self, *remaining_ms: int) -> None:
        self._remaining = list(remaining_ms)

    def get_remaining_time_in_millis(self) -> int:
        return self._remaining.pop(0) if len(self._remaining) > 1 else self._remaining[0]


def photo(width: int, height: int, fmt: str = "JPEG") -> bytes:
    """A photo-like image: a gradient with noise, so sizes resemble a camera's."""
    base = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    noise = Image.effect_noise((width, height), 40).convert("RGB")
    buffer = io.BytesIO()
    Image.blend(base, noise, 0.3).save(buffer, fmt, quality=92)
    return buffer.getvalue()


def s3() -> Any:
    return boto3.client("s3", region_name="us-east-1")


def put(name: str, body: bytes) -> str:
    key = f"{FOLDER}{name}"
    s3().put_object(Bucket=BUCKET, Key=key, Body=body)
    return key


def keys(prefix: str = "uploads/") -> list[str]:
    pages = s3().get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))


def run_ingest(context: LambdaContext | None = None) -> dict[str, Any]:
    """WHEN the scheduled ingest run goes."""
    result: dict[str, Any] = ingest_app.handler({}, context or LambdaContext())
    return result


# -- ingest --------------------------------------------------------------------------


def test_renditions_are_made_once_for_image_uploads(graph: FakeGraph, aws_calls: AwsCalls) -> None:
    """GIVEN a 1600x1200 JPEG, a 500x400 PNG, a GIF and a text file uploaded
    WHEN ingest runs twice
    THEN the first run stores WebP renditions of the JPEG and PNG beside them
    (exact sizes in the key, immutable caching), leaves every original as it
    was, and the second run reads no upload and writes nothing."""
    jpeg, png = photo(1600, 1200), photo(500, 400, "PNG")
    put("IMG_0001.jpg", jpeg)
    put("shot.png", png)
    put("party.gif", b"GIF89a not decoded here")
    put("notes.txt", b"hello")

    summary = run_ingest()

    assert summary["upload_thumbnails"] == {"made": 2, "failed": 0, "pending": 0}
    thumbs = [key for key in keys() if "/.thumbs/" in key]
    assert thumbs == [
        f"{FOLDER}.thumbs/IMG_0001.jpg/w1080x810.webp",
        f"{FOLDER}.thumbs/IMG_0001.jpg/w320x240.webp",
        f"{FOLDER}.thumbs/IMG_0001.jpg/w480x360.webp",
        f"{FOLDER}.thumbs/IMG_0001.jpg/w640x480.webp",
        f"{FOLDER}.thumbs/shot.png/w320x256.webp",
        f"{FOLDER}.thumbs/shot.png/w480x384.webp",
        f"{FOLDER}.thumbs/shot.png/w500x400.webp",
    ]
    for key in thumbs:
        head = s3().head_object(Bucket=BUCKET, Key=key)
        assert (head["ContentType"], head["CacheControl"]) == ("image/webp", CACHE_CONTROL)
        body = s3().get_object(Bucket=BUCKET, Key=key)["Body"].read()
        with Image.open(io.BytesIO(body)) as image:
            assert image.format == "WEBP"
            assert f"w{image.width}x{image.height}.webp" == key.rsplit("/", 1)[1]
    assert s3().get_object(Bucket=BUCKET, Key=f"{FOLDER}IMG_0001.jpg")["Body"].read() == jpeg
    assert s3().get_object(Bucket=BUCKET, Key=f"{FOLDER}shot.png")["Body"].read() == png

    aws_calls.calls.clear()
    again = run_ingest()

    assert again["upload_thumbnails"] == {"made": 0, "failed": 0, "pending": 0}
    s3_calls = [op for service, op in aws_calls.calls if service == "s3"]
    assert s3_calls == ["ListObjectsV2"]


def test_corrupt_upload_is_counted_marked_and_not_retried(
    graph: FakeGraph, aws_calls: AwsCalls, logs: pytest.CaptureFixture[str]
) -> None:
    """GIVEN a truncated JPEG next to a good one
    WHEN ingest runs twice
    THEN the first run makes the good one's renditions, counts the bad one,
    leaves a `failed` marker beside it and emits UploadThumbnailFailures=1;
    the second run does not read the bad upload again."""
    good = put("good.jpg", photo(400, 300))
    bad_bytes = photo(400, 300)[:300]
    bad = put("bad.jpg", bad_bytes)

    first = run_ingest()

    assert first["upload_thumbnails"] == {"made": 1, "failed": 1, "pending": 0}
    assert f"{FOLDER}.thumbs/bad.jpg/failed" in keys()
    assert not [key for key in keys() if key.startswith(f"{FOLDER}.thumbs/bad.jpg/w")]
    assert s3().get_object(Bucket=BUCKET, Key=bad)["Body"].read() == bad_bytes
    (metrics,) = emitted_metrics(logs.readouterr().out)
    assert metrics["UploadThumbnailFailures"] == [1.0]

    aws_calls.calls.clear()
    second = run_ingest()

    assert second["upload_thumbnails"] == {"made": 0, "failed": 0, "pending": 0}
    assert "GetObject" not in aws_calls.operations()
    assert good in keys()


def test_s3_read_failure_is_counted_and_retried_next_run(
    graph: FakeGraph, aws_calls: AwsCalls
) -> None:
    """GIVEN an upload and GetObject failing
    WHEN ingest runs, then runs again with S3 healthy
    THEN the first run succeeds with the failure counted and no marker, and the
    second run makes the renditions."""
    put("a.jpg", photo(400, 300))
    aws_calls.fail("GetObject")

    first = run_ingest()

    assert first["upload_thumbnails"] == {"made": 0, "failed": 1, "pending": 0}
    assert not [key for key in keys() if "/.thumbs/" in key]

    aws_calls.failing.clear()
    second = run_ingest()

    assert second["upload_thumbnails"] == {"made": 1, "failed": 0, "pending": 0}


def test_a_run_processes_at_most_the_per_run_bound(graph: FakeGraph) -> None:
    """GIVEN two more uploads than one run may process
    WHEN ingest runs twice
    THEN the first run makes MAX_UPLOADS_PER_RUN and reports 2 pending, the
    second makes the last 2."""
    small = photo(64, 48)
    for n in range(MAX_UPLOADS_PER_RUN + 2):
        put(f"IMG_{n:04d}.jpg", small)

    first = run_ingest()
    second = run_ingest()

    assert first["upload_thumbnails"] == {"made": MAX_UPLOADS_PER_RUN, "failed": 0, "pending": 2}
    assert second["upload_thumbnails"] == {"made": 2, "failed": 0, "pending": 0}
    folders = {key.rsplit("/", 1)[0] for key in keys() if "/.thumbs/" in key}
    assert len(folders) == MAX_UPLOADS_PER_RUN + 2


def test_a_run_stops_starting_uploads_when_lambda_time_runs_low(graph: FakeGraph) -> None:
    """GIVEN three uploads and a Lambda whose remaining time falls to 30 s
    after the first upload
    WHEN ingest runs
    THEN one upload gets renditions and two are left pending."""
    for n in range(3):
        put(f"IMG_{n}.jpg", photo(64, 48))

    summary = run_ingest(TimedContext(600_000, 30_000))

    assert summary["upload_thumbnails"] == {"made": 1, "failed": 0, "pending": 2}


def test_dry_run_backfill_makes_no_renditions(graph: FakeGraph, aws_calls: AwsCalls) -> None:
    """GIVEN an upload WHEN a dry-run backfill runs THEN no S3 object is read or written."""
    put("a.jpg", photo(64, 48))
    aws_calls.calls.clear()

    summary = ingest_app.handler(
        {"backfill": {"since": "2026-01-01", "until": "2026-05-01", "dry_run": True}},
        LambdaContext(),
    )

    assert "upload_thumbnails" not in summary
    assert not [op for service, op in aws_calls.calls if service == "s3"]


# -- serve ---------------------------------------------------------------------------


def test_gallery_shows_upload_renditions_with_exact_sizes(
    graph: FakeGraph, aws_calls: AwsCalls, clock: Clock
) -> None:
    """GIVEN a 4032x3024 phone photo whose renditions ingest made
    WHEN the gallery is read as JSON and as a page
    THEN `url` is the original and `thumbnail_url` the 480 px rendition; the
    grid img is 480x360 with srcset 320/480/640; the lightbox opens the 1080
    rendition with its size; no .thumbs key is an item."""
    original = put("IMG_0001.jpg", photo(4032, 3024))
    run_ingest()

    item = gallery_json()["items"]
    assert [i["id"] for i in item] == [original]
    assert unquote(urlsplit(item[0]["url"]).path) == f"/{original}"
    thumb = f"/{FOLDER}.thumbs/IMG_0001.jpg/"
    assert unquote(urlsplit(item[0]["thumbnail_url"]).path) == f"{thumb}w480x360.webp"

    _, document = gallery_page()
    (tile,) = document.find_all("a", cls="tile")
    (img,) = tile.find_all("img")
    assert img.attrs["src"] == item[0]["thumbnail_url"]
    assert (img.attrs["width"], img.attrs["height"]) == ("480", "360")
    srcset = [c.strip().split(" ") for c in (img.attrs["srcset"] or "").split(",")]
    assert [(unquote(urlsplit(url).path), width) for url, width in srcset] == [
        (f"{thumb}w320x240.webp", "320w"),
        (f"{thumb}w480x360.webp", "480w"),
        (f"{thumb}w640x480.webp", "640w"),
    ]
    assert unquote(urlsplit(tile.attrs["href"] or "").path) == f"{thumb}w1080x810.webp"
    assert (tile.attrs["data-w"], tile.attrs["data-h"]) == ("1080", "810")


def test_uploads_with_renditions_cost_the_same_aws_calls(
    graph: FakeGraph, aws_calls: AwsCalls, clock: Clock
) -> None:
    """GIVEN three uploads with renditions (four .thumbs keys each), a corrupt
    one with its failure marker, and one added after ingest ran
    WHEN the gallery is read cold, then again after its cache expired
    THEN the cold read costs the two Queries, one ListObjectsV2 and one
    HeadObject per original only; the expired one exactly Query + ListObjectsV2;
    items are the five originals, the unprocessed and the corrupt one shown
    by their original URL."""
    made = [put(f"IMG_{n}.jpg", photo(1200, 900)) for n in range(3)]
    corrupt = put("broken.jpg", b"\xff\xd8\xff not really")
    run_ingest()
    late = put("late.jpg", photo(64, 48))
    aws_calls.calls.clear()

    body = gallery_json()

    operations = aws_calls.operations()
    assert sorted(operations) == ["HeadObject"] * 5 + ["ListObjectsV2", "Query", "Query"]
    by_id = {item["id"]: item for item in body["items"]}
    assert sorted(by_id) == sorted([*made, corrupt, late])
    for key in (corrupt, late):
        assert by_id[key]["thumbnail_url"] == by_id[key]["url"]
        assert unquote(urlsplit(by_id[key]["url"]).path) == f"/{key}"
    for key in made:
        assert "/.thumbs/" in unquote(urlsplit(by_id[key]["thumbnail_url"]).path)

    clock.advance(shared.gallery.GALLERY_TTL + 1)
    aws_calls.calls.clear()
    gallery_json()
    assert sorted(aws_calls.operations()) == ["ListObjectsV2", "Query"]


def test_hostile_upload_names_with_renditions_stay_inert(graph: FakeGraph, clock: Clock) -> None:
    """GIVEN uploads whose names carry markup and javascript:, with renditions
    WHEN the page is parsed
    THEN no element has an event handler, every URL is https, and each tile's
    image is that upload's rendition."""
    originals = [put(f"{text}.jpg", photo(64, 48)) for text in HOSTILE]
    run_ingest()

    body = gallery_json()
    _, document = gallery_page()

    assert sorted(item["id"] for item in body["items"]) == sorted(originals)
    for element in document.iter():
        assert not [name for name in element.attrs if name.startswith("on")], element.tag
    for url in page_urls(document):
        assert url.startswith(("https://", "data:,")), url
    shown = sorted(
        unquote(urlsplit(tile.find_all("img")[0].attrs["src"] or "").path)
        for tile in document.find_all("a", cls="tile")
    )
    assert shown == sorted(
        f"/{FOLDER}.thumbs/{key[len(FOLDER) :]}/w64x48.webp" for key in originals
    )
