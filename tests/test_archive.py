"""The media archive: posts' images mirrored into S3 (moto), the CDN faked.

Posts are built the way ingest builds them, with :meth:`Post.from_graph` on
Graph-shaped media objects (:mod:`tests.graph_fakes`). The last two tests run
the archive against the local mode's fake Graph API and CDN over real HTTP,
with the real Graph client as ``refetch``, alone and inside the ingest service.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import boto3
import pytest
import responses
from PIL import Image

from bench.thumbnails import png_claiming
from local.fake_graph import LOCAL_TOKEN, FakeGraphServer, FakeMedia
from shared import config
from shared.archive import CACHE_CONTROL, STORE_FAILURE_LIMIT, S3ImageArchive
from shared.graph import GraphClient
from shared.graph_errors import GraphThrottledError
from shared.ingestion import IngestService
from shared.media import Mirror, Post
from shared.repository import DynamoMediaRepository
from shared.tokens import TokenStore
from tests.conftest import BUCKET, AwsCalls
from tests.graph_fakes import CDN, carousel, image, reel
from tests.media_fakes import CDN_ADDRESS, FakeDns, photo

if TYPE_CHECKING:
    from mypy_boto3_s3.type_defs import GetObjectOutputTypeDef

TAKEN_AT = datetime(2026, 4, 29, 23, 15, tzinfo=UTC)
EXPIRED = "URL signature expired"


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> FakeDns:
    """GIVEN DNS where Instagram's CDN edge resolves to a public address."""
    fake = FakeDns.install(monkeypatch)
    fake.answer(CDN.removeprefix("https://"), [CDN_ADDRESS])
    return fake


@pytest.fixture
def cdn(aws_env: None, dns: FakeDns) -> Iterator[responses.RequestsMock]:
    """GIVEN a fake CDN (nothing registered yet answers 'connection refused')."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


class Refetch:
    """A stand-in for ``GraphClient.get_media``: answers from a table, records calls."""

    def __init__(self, answers: dict[str, Post] | None = None, error: Exception | None = None):
        self.answers = answers or {}
        self.error = error
        self.calls: list[str] = []

    def __call__(self, media_id: str) -> Post | None:
        self.calls.append(media_id)
        if self.error is not None:
            raise self.error
        return self.answers.get(media_id)


def _archive(refetch: Callable[[str], Post | None] | None = None, **kwargs: Any) -> S3ImageArchive:
    return S3ImageArchive(config.get_settings(), refetch or Refetch(), **kwargs)


def _serve(cdn: responses.RequestsMock, url: str | None, body: bytes, **kwargs: Any) -> None:
    assert url is not None
    # Path only: the signed query changes on every Graph read.
    cdn.get(url.split("?", 1)[0], body=body, content_type="image/jpeg", **kwargs)


def _s3_object(key: str) -> tuple[GetObjectOutputTypeDef, bytes]:
    response = boto3.client("s3", region_name="us-east-1").get_object(Bucket=BUCKET, Key=key)
    return response, response["Body"].read()


def _keys() -> list[str]:
    listed = boto3.client("s3", region_name="us-east-1").list_objects_v2(Bucket=BUCKET)
    return sorted(item["Key"] for item in listed.get("Contents", []))


def _assert_mirror_matches_s3(mirror: Mirror | None) -> None:
    """Every recorded key exists, with the recorded bytes, size, type and caching."""
    assert mirror is not None
    for rendition in (mirror.original, *mirror.thumbnails):
        response, body = _s3_object(rendition.key)
        assert response["ContentType"] == rendition.content_type
        assert response["CacheControl"] == CACHE_CONTROL
        assert len(body) == rendition.size
        assert Image.open(io.BytesIO(body)).size == (rendition.width, rendition.height)


def test_a_photo_is_mirrored_with_thumbnails(cdn: responses.RequestsMock) -> None:
    """GIVEN a new IMAGE post whose media_url serves a 1080x1350 JPEG
    WHEN mirrored THEN the original and WebP thumbnails are in S3 under
    instagram/<media_id>/, and the post records their exact keys and sizes."""
    post = Post.from_graph(image(TAKEN_AT))
    source = photo(1080, 1350)
    _serve(cdn, post.media_url, source)
    archive = _archive()

    mirrored = archive.mirror(post, None)

    mirror = mirrored.mirror
    assert mirror is not None
    assert mirror.original.key == f"instagram/{post.id}/original.jpg"
    assert (mirror.original.width, mirror.original.height, mirror.original.size) == (
        1080,
        1350,
        len(source),
    )
    assert [(t.key, t.width, t.height) for t in mirror.thumbnails] == [
        (f"instagram/{post.id}/w320.webp", 320, 400),
        (f"instagram/{post.id}/w480.webp", 480, 600),
        (f"instagram/{post.id}/w640.webp", 640, 800),
        (f"instagram/{post.id}/w1080.webp", 1080, 1350),
    ]
    _assert_mirror_matches_s3(mirror)
    _, original = _s3_object(mirror.original.key)
    assert original == source
    # Everything else about the post is as Graph sent it.
    assert mirrored.media_url == post.media_url
    assert mirrored.caption == post.caption
    assert archive.stats.as_dict() == {
        "downloaded": 1,
        "mirrored": 1,
        "reused": 0,
        "failed": 0,
        "skipped": 0,
        "refetched": 0,
        "bytes": len(source),
        "stored_bytes": sum(r.size for r in (mirror.original, *mirror.thumbnails)),
    }


def test_a_carousel_mirrors_each_child_and_only_the_video_poster(
    cdn: responses.RequestsMock,
) -> None:
    """GIVEN a carousel of an image, an image and a video WHEN mirrored THEN each child gets a
    mirror (the video its poster), the album reuses its first child's, and neither the .mp4
    nor the album's own media_url (the first child's image again) is downloaded."""
    post = Post.from_graph(carousel(TAKEN_AT, children=3))
    first, second, video = post.children
    _serve(cdn, first.media_url, photo(400, 500))
    _serve(cdn, second.media_url, photo(500, 400, "PNG"))
    _serve(cdn, video.thumbnail_url, photo(360, 640))
    archive = _archive()

    mirrored = archive.mirror(post, None)

    assert len(cdn.calls) == 3
    assert not any(".mp4" in str(call.request.url) for call in cdn.calls)
    for child in mirrored.children:
        _assert_mirror_matches_s3(child.mirror)
    assert mirrored.mirror == mirrored.children[0].mirror
    assert mirrored.children[1].mirror is not None
    assert mirrored.children[1].mirror.original.key.endswith("/original.png")
    assert mirrored.children[2].mirror is not None
    assert mirrored.children[2].mirror.original.width == 360
    assert archive.stats.mirrored == 3


def test_a_reel_keeps_its_poster_and_a_reel_without_one_is_skipped(
    cdn: responses.RequestsMock,
) -> None:
    """GIVEN a reel whose media_url Instagram withheld, and a video with only a media_url
    WHEN mirrored THEN the first gets its poster mirrored; the second is skipped, its video
    never downloaded."""
    with_poster = Post.from_graph(reel(TAKEN_AT))
    bare = Post.from_graph(
        {**reel(TAKEN_AT), "thumbnail_url": None, "media_url": f"{CDN}/o1/v/clip_n.mp4?oh=1"}
    )
    _serve(cdn, with_poster.thumbnail_url, photo(360, 640))
    archive = _archive()

    poster = archive.mirror(with_poster, None).mirror
    unmirrored = archive.mirror(bare, None)

    _assert_mirror_matches_s3(poster)
    assert unmirrored.mirror is None
    assert len(cdn.calls) == 1
    assert (archive.stats.mirrored, archive.stats.skipped) == (1, 1)


def test_an_image_mirrored_once_is_not_fetched_again(cdn: responses.RequestsMock) -> None:
    """GIVEN a carousel mirrored on an earlier run, now re-read with fresh signatures, an
    edited caption and one more child WHEN mirrored with the stored post as previous
    THEN only the new child is downloaded; the others keep their mirrors."""
    graph_post = carousel(TAKEN_AT, children=2)
    first_run = Post.from_graph(graph_post)
    for child in first_run.children:
        _serve(cdn, child.media_url, photo(400, 500))
    stored = _archive().mirror(first_run, None)
    added = {"id": "17999999999999999", "media_type": "IMAGE", "media_url": f"{CDN}/v/new_n.jpg"}
    graph_post["children"]["data"].append(added)
    graph_post["caption"] = "Three cakes (edited)"
    reread = Post.from_graph(
        {**graph_post, "media_url": graph_post["media_url"].replace("oh=", "oh=fresh")}
    )
    _serve(cdn, added["media_url"], photo(400, 500))
    cdn.calls.reset()
    archive = _archive()

    mirrored = archive.mirror(reread, stored)

    assert [call.request.url for call in cdn.calls] == [added["media_url"]]
    assert [child.mirror for child in mirrored.children[:2]] == [
        child.mirror for child in stored.children
    ]
    assert mirrored.mirror == stored.mirror
    _assert_mirror_matches_s3(mirrored.children[2].mirror)
    assert (archive.stats.reused, archive.stats.downloaded) == (2, 1)


def test_an_expired_url_recovers_through_one_re_read(cdn: responses.RequestsMock) -> None:
    """GIVEN a stored post whose CDN URL now answers 403 'URL signature expired'
    WHEN mirrored THEN the post is read again once, and the fresh URL downloads."""
    post = Post.from_graph(image(TAKEN_AT))
    assert post.media_url is not None
    fresh = post.media_url.replace("oh=00_A", "oh=00_FRESH")
    _serve(cdn, post.media_url, EXPIRED.encode(), status=403)
    _serve(cdn, fresh, photo(400, 500))
    refetch = Refetch(
        {post.id: Post.from_graph({**image(TAKEN_AT, media_id=post.id), "media_url": fresh})}
    )
    archive = _archive(refetch)

    mirrored = archive.mirror(post, None)

    assert refetch.calls == [post.id]
    assert [call.request.url for call in cdn.calls] == [post.media_url, fresh]
    _assert_mirror_matches_s3(mirrored.mirror)
    assert (archive.stats.refetched, archive.stats.failed) == (1, 0)


def test_an_expired_carousel_is_re_read_once_for_all_children(cdn: responses.RequestsMock) -> None:
    """GIVEN a carousel whose every child URL expired WHEN mirrored
    THEN one re-read of the album renews all children's URLs."""
    post = Post.from_graph(carousel(TAKEN_AT, children=2))
    fresh_children = []
    for child in post.children:
        assert child.media_url is not None
        fresh_url = child.media_url.replace("oh=", "oh=FRESH")
        _serve(cdn, child.media_url, EXPIRED.encode(), status=403)
        _serve(cdn, fresh_url, photo(400, 500))
        fresh_children.append({"id": child.id, "media_type": "IMAGE", "media_url": fresh_url})
    renewed = carousel(TAKEN_AT, media_id=post.id)
    renewed["children"]["data"] = fresh_children
    refetch = Refetch({post.id: Post.from_graph(renewed)})
    archive = _archive(refetch)

    mirrored = archive.mirror(post, None)

    assert refetch.calls == [post.id]
    assert all(child.mirror is not None for child in mirrored.children)
    assert len(cdn.calls) == 4


@pytest.mark.parametrize(
    "refetch",
    [
        Refetch(),  # the post is gone from Graph
        Refetch(error=GraphThrottledError("(#80002) too many calls")),
        Refetch(error=RuntimeError("boom")),
    ],
    ids=["post-gone", "throttled", "unexpected"],
)
def test_a_failed_re_read_leaves_the_instagram_url(
    cdn: responses.RequestsMock, refetch: Refetch
) -> None:
    """GIVEN an expired URL and a re-read that fails WHEN mirrored THEN no exception; the post
    keeps its Instagram URL, the failure is counted, and the CDN is asked only once."""
    post = Post.from_graph(image(TAKEN_AT))
    _serve(cdn, post.media_url, EXPIRED.encode(), status=403)
    archive = _archive(refetch)

    mirrored = archive.mirror(post, None)

    assert mirrored.mirror is None
    assert mirrored.media_url == post.media_url
    assert len(cdn.calls) == 1
    assert (archive.stats.refetched, archive.stats.failed) == (1, 1)


def test_the_retry_after_a_re_read_happens_once(cdn: responses.RequestsMock) -> None:
    """GIVEN an expired URL whose fresh URL is expired too WHEN mirrored THEN exactly one
    re-read and one retry, then the failure is counted."""
    post = Post.from_graph(image(TAKEN_AT))
    _serve(cdn, post.media_url, EXPIRED.encode(), status=403)
    archive = _archive(Refetch({post.id: post}))

    assert archive.mirror(post, None).mirror is None
    assert len(cdn.calls) == 2
    assert archive.stats.failed == 1


def test_a_missing_image_is_not_re_read(cdn: responses.RequestsMock) -> None:
    """GIVEN a CDN answering 404 WHEN mirrored THEN no Graph re-read (only expiry warrants one)."""
    post = Post.from_graph(image(TAKEN_AT))
    _serve(cdn, post.media_url, b"Not Found", status=404)
    refetch = Refetch()

    assert _archive(refetch).mirror(post, None).mirror is None
    assert refetch.calls == []


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"<!DOCTYPE html><html>Sorry, this page isn't available.</html>", "text/html"),
        (png_claiming(20_000, 20_000), "image/png"),
        (photo(400, 500)[:2500], "image/jpeg"),
        (photo(64, 64, "GIF"), "image/jpeg"),
    ],
    ids=["html", "png-bomb", "truncated", "gif"],
)
def test_a_bad_image_leaves_the_post_on_instagram_and_is_counted(
    body: bytes, content_type: str, cdn: responses.RequestsMock
) -> None:
    """GIVEN a carousel whose first child's URL serves something that is no usable image
    WHEN mirrored THEN that child (and the album's cover) keeps Instagram's URL, the other
    child is mirrored, nothing of the bad one is stored, and nothing raises."""
    post = Post.from_graph(carousel(TAKEN_AT, children=2))
    bad, good = post.children
    assert bad.media_url is not None
    cdn.get(bad.media_url.split("?")[0], body=body, content_type=content_type)
    _serve(cdn, good.media_url, photo(400, 500))
    archive = _archive()

    mirrored = archive.mirror(post, None)

    assert mirrored.children[0].mirror is None
    assert mirrored.children[0].media_url == bad.media_url
    assert mirrored.mirror is None
    _assert_mirror_matches_s3(mirrored.children[1].mirror)
    assert not [key for key in _keys() if bad.id in key]
    assert (archive.stats.failed, archive.stats.mirrored) == (1, 1)


def test_a_url_off_the_allow_list_is_never_requested(cdn: responses.RequestsMock) -> None:
    """GIVEN a post whose media_url points at an attacker's host WHEN mirrored
    THEN no request is made to it and the failure is counted."""
    post = Post.from_graph(
        {**image(TAKEN_AT), "media_url": "https://scontent.cdninstagram.com@evil.net/x.jpg"}
    )
    cdn.get(re.compile(r".*"), body=photo(), content_type="image/jpeg")
    archive = _archive()

    assert archive.mirror(post, None).mirror is None
    assert len(cdn.calls) == 0
    assert archive.stats.failed == 1


def test_s3_failures_are_counted_and_pause_mirroring(
    cdn: responses.RequestsMock, aws_calls: AwsCalls
) -> None:
    """GIVEN S3 refusing every PutObject WHEN several posts are mirrored THEN none raises,
    each counts as failed, and after a few failures in a row the archive stops downloading
    until the pause is over."""
    posts = [Post.from_graph(image(TAKEN_AT + timedelta(minutes=i))) for i in range(5)]
    for post in posts:
        _serve(cdn, post.media_url, photo(400, 500))
    aws_calls.fail("PutObject")
    now = [1000.0]
    archive = _archive(clock=lambda: now[0])

    results = [archive.mirror(post, None) for post in posts]

    assert all(result.mirror is None for result in results)
    assert archive.stats.failed == 5
    assert len(cdn.calls) == STORE_FAILURE_LIMIT
    # Later (S3 is back), mirroring resumes.
    aws_calls.failing.clear()
    now[0] += 3600
    _assert_mirror_matches_s3(archive.mirror(posts[0], None).mirror)


def test_mirrors_survive_the_table_with_exact_keys_and_sizes(cdn: responses.RequestsMock) -> None:
    """GIVEN a mirrored carousel WHEN stored in DynamoDB and read back (as serve reads it)
    THEN every key, width, height, size and content type is unchanged."""
    post = Post.from_graph(carousel(TAKEN_AT, children=3))
    for child in post.children:
        _serve(cdn, child.image_url, photo(400, 500))
    mirrored = _archive().mirror(post, None)
    repository = DynamoMediaRepository(config.get_settings())

    repository.save_posts([mirrored], TAKEN_AT + timedelta(hours=1))
    (stored,) = repository.posts_between(TAKEN_AT, TAKEN_AT + timedelta(seconds=1))

    assert stored.mirror == mirrored.mirror
    assert [child.mirror for child in stored.children] == [
        child.mirror for child in mirrored.children
    ]


@pytest.fixture
def local_graph(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGraphServer]:
    """GIVEN the local mode's fake Graph API and CDN on 127.0.0.1 (real HTTP),
    and MEDIA_HOSTS listing 127.0.0.1 exactly, as local mode sets it."""
    media = [
        FakeMedia("17900000000000001", TAKEN_AT, media="sunset"),
        FakeMedia(
            "17900000000000002",
            TAKEN_AT + timedelta(minutes=5),
            media_type="CAROUSEL_ALBUM",
            children=(
                FakeMedia("17900000000000003", TAKEN_AT, media="deck"),
                FakeMedia(
                    "17900000000000004",
                    TAKEN_AT,
                    media_type="VIDEO",
                    media="clip",
                    thumbnail="clip-poster",
                ),
            ),
        ),
    ]
    with FakeGraphServer(media) as server:
        monkeypatch.setenv("GRAPH_API_URL", server.graph_url)
        monkeypatch.setenv("IG_ACCESS_TOKEN", LOCAL_TOKEN)
        monkeypatch.setenv("MEDIA_HOSTS", "127.0.0.1")
        config.get_settings.cache_clear()
        yield server


def test_local_mode_mirrors_over_real_http_and_renews_expired_links(
    local_graph: FakeGraphServer,
) -> None:
    """GIVEN posts read from the fake Graph API, whose CDN links then expire (5 days pass)
    WHEN mirrored with the real Graph client as refetch THEN each post is re-read once,
    every image is stored, and a later run downloads nothing."""
    settings = config.get_settings()
    client = GraphClient(settings, TokenStore(settings), sleep=lambda _: None)
    single, album = (client.get_media(i) for i in ("17900000000000001", "17900000000000002"))
    local_graph.advance_time(timedelta(days=5).total_seconds())
    local_graph.clear_requests()
    archive = S3ImageArchive(settings, client.get_media)

    mirrored = [archive.mirror(single, None), archive.mirror(album, None)]

    # One re-read per post; each image: one 403, one download (the .mp4 never).
    assert local_graph.graph_calls == 2
    assert local_graph.cdn_calls == 6
    _assert_mirror_matches_s3(mirrored[0].mirror)
    for child in mirrored[1].children:
        _assert_mirror_matches_s3(child.mirror)
    assert archive.stats.failed == 0

    local_graph.clear_requests()
    again = [
        archive.mirror(post, stored) for post, stored in zip((single, album), mirrored, strict=True)
    ]

    assert local_graph.requests == []
    assert again == mirrored


def test_ingest_runs_mirror_new_posts_once(local_graph: FakeGraphServer) -> None:
    """GIVEN the ingest service wired with the archive (as the ingest handler wires it)
    WHEN it runs twice, and a backfill runs after the CDN links expired
    THEN the first run mirrors every image and stores the mirrors, the later runs
    download nothing."""
    settings = config.get_settings()
    client = GraphClient(settings, TokenStore(settings), sleep=lambda _: None)
    archive = S3ImageArchive(settings, client.get_media)
    repository = DynamoMediaRepository(settings)
    service = IngestService(client, repository, archive=archive)

    first = service.run({})
    downloads = local_graph.cdn_calls
    service.run({})
    local_graph.advance_time(timedelta(days=6).total_seconds())
    service.run({"backfill": {"since": "2026-04-01", "until": "2026-05-01"}})

    assert first["mirror_failures"] == 0
    assert downloads == 3  # the single photo, the album's photo and its video's poster
    assert local_graph.cdn_calls == downloads
    stored = repository.posts_between(TAKEN_AT, TAKEN_AT + timedelta(hours=1))
    assert all(post.mirror is not None for post in stored)
    for post in stored:
        _assert_mirror_matches_s3(post.mirror)
