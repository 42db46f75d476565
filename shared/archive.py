"""The media archive: each post's images copied into S3, with thumbnails.

Instagram's ``media_url``/``thumbnail_url`` are signed CDN links that die
after a few days (``403 URL signature expired``), so a gallery that links
them breaks within a week. Ingest hands every new or changed post to
:meth:`S3ImageArchive.mirror`, which keeps, per image (each carousel child,
and each video's poster):

- ``instagram/<media_id>/original.<ext>``: the bytes as Instagram served them;
- ``instagram/<media_id>/w<width>.webp``: renditions (:mod:`shared.thumbnails`)
  that serve puts in ``srcset``;

all with ``Cache-Control: immutable`` (a media id's image never changes on
Instagram, so neither do its keys), and records them on the post as
:class:`~shared.media.Mirror` objects whose keys, widths, heights and byte
sizes are exact.

Videos are not copied: a reel's audio is often licensed to Instagram only
(the very reason Graph withholds ``media_url``), video files are 10-100x an
image's size, and the gallery shows a reel as its poster linked to Instagram.

Failure never spreads: a bad image (refused URL, dead link, not an image, too
large) is counted in :attr:`S3ImageArchive.stats` and leaves that item with
its Instagram URL; an expired link gets one re-read of the post through
``refetch`` and one retry; S3 errors are retried by botocore's standard mode,
then counted. After :data:`STORE_FAILURE_LIMIT` failed stores in a row the
archive stops downloading for :data:`STORE_PAUSE_SECONDS`, since S3 is
evidently down and each attempt would only burn the run's time.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from shared.aws import s3_client
from shared.config import Settings
from shared.media import MediaChild, Mirror, Post, Rendition
from shared.observability import get_logger
from shared.redaction import redact
from shared.safe_fetch import Download, FetchError, SafeFetcher
from shared.thumbnails import ImageRejectedError, ProcessedImage, process_image

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MIRROR_PREFIX = "instagram/"
CACHE_CONTROL = "public, max-age=31536000, immutable"
STORE_FAILURE_LIMIT = 3
STORE_PAUSE_SECONDS = 300.0
# Graph ids are digits; anything else must not shape an S3 key.
_MEDIA_ID = re.compile(r"[A-Za-z0-9_]{1,64}")

Refetch = Callable[[str], Post | None]


@dataclass
class ArchiveStats:
    """What an archive did since it was created (counts of images, and bytes).

    Attributes
    ----------
    downloaded
        Images fetched from the CDN.
    mirrored
        Images stored in S3 (original and renditions).
    reused
        Images already mirrored before (no download).
    failed
        Images left with their Instagram URL (see the log for why).
    skipped
        Items with no still image to copy (a reel without poster).
    refetched
        Posts read again from Graph for fresh URLs.
    bytes
        Bytes downloaded from the CDN.
    stored_bytes
        Bytes written to S3.
    """

    downloaded: int = 0
    mirrored: int = 0
    reused: int = 0
    failed: int = 0
    skipped: int = 0
    refetched: int = 0
    bytes: int = 0
    stored_bytes: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counts, for a log line or a run summary."""
        return asdict(self)


class S3ImageArchive:
    """Mirrors posts' images into ``MEDIA_BUCKET`` (the ingest ``ImageArchive``).

    Parameters
    ----------
    settings
        ``MEDIA_BUCKET`` and ``MEDIA_HOSTS`` are used.
    refetch
        Reads a post again for fresh CDN URLs (``GraphClient.get_media``);
        called at most once per :meth:`mirror` call, only after a CDN
        refused an expired link.
    fetcher
        The image downloader; a :class:`~shared.safe_fetch.SafeFetcher` for
        ``MEDIA_HOSTS`` by default.
    s3
        S3 client; the container's by default.
    logger
        Structured logger; ingest's by default.
    clock
        Monotonic seconds (tests move it to end the storage pause).
    """

    def __init__(
        self,
        settings: Settings,
        refetch: Refetch,
        *,
        fetcher: SafeFetcher | None = None,
        s3: S3Client | None = None,
        logger: Logger | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._bucket = settings.media_bucket
        self._refetch = refetch
        self._fetcher = fetcher or SafeFetcher(settings.media_hosts)
        self._s3 = s3
        self._logger = logger or get_logger("ingest")
        self._clock = clock
        self._store_failures = 0
        self._paused_until = 0.0
        self.stats = ArchiveStats()

    def mirror(self, post: Post, previous: Post | None) -> Post:
        """Return ``post`` with its images mirrored.

        Parameters
        ----------
        post
            The post as just read from Graph (:meth:`Post.from_graph`).
        previous
            The stored version of the post, if any: an image it already has a
            mirror for (same media id) is reused, never downloaded again.

        Returns
        -------
        Post
            ``post`` with ``mirror`` set (a carousel's is its cover child's)
            and each child's ``mirror`` set; an image that could not be
            mirrored keeps ``mirror=None``. Never raises for a bad image.
        """
        known = _known_mirrors(previous)
        fresh = _FreshUrls(post.id, self._reread)
        if not post.children:
            return post.with_mirrors(self._mirror_one(post.id, _still_url(post), known, fresh), ())
        children = tuple(
            replace(child, mirror=self._mirror_one(child.id, _still_url(child), known, fresh))
            for child in post.children
        )
        # Graph's media_url of an album is its first item's image (a video
        # item's poster is the closest still): reuse that child's copy rather
        # than download the same picture twice.
        cover = next((child.mirror for child in children if _still_url(child)), None)
        return post.with_mirrors(cover, children)

    # -- one image ------------------------------------------------------------

    def _mirror_one(
        self, media_id: str, url: str | None, known: dict[str, Mirror], fresh: _FreshUrls
    ) -> Mirror | None:
        reused = known.get(media_id)
        if reused is not None:
            self.stats.reused += 1
            return reused
        if not url:
            self.stats.skipped += 1
            return None
        if not _MEDIA_ID.fullmatch(media_id):
            self._failed(media_id, "not a Graph media id")
            return None
        if self._store_failures >= STORE_FAILURE_LIMIT and self._clock() < self._paused_until:
            self._failed(media_id, "S3 is failing; mirroring paused")
            return None
        try:
            download = self._download(media_id, url, fresh)
            processed = process_image(download.content)
            mirror = self._store(media_id, download, processed)
        except (FetchError, ImageRejectedError, BotoCoreError, ClientError) as exc:
            self._failed(media_id, str(exc))
            return None
        except Exception as exc:
            # A decoder surprise (MemoryError, a Pillow bug): one image must
            # not cost the post its other images, or the run.
            self._failed(media_id, f"{type(exc).__name__}: {exc}", unexpected=True)
            return None
        self.stats.mirrored += 1
        return mirror

    def _download(self, media_id: str, url: str, fresh: _FreshUrls) -> Download:
        try:
            download = self._fetcher.fetch(url)
        except FetchError as exc:
            renewed = fresh.url_for(media_id) if exc.expired else None
            if renewed is None:
                raise
            download = self._fetcher.fetch(renewed)
        self.stats.downloaded += 1
        self.stats.bytes += len(download.content)
        return download

    def _store(self, media_id: str, download: Download, processed: ProcessedImage) -> Mirror:
        prefix = f"{MIRROR_PREFIX}{media_id}/"
        thumbnails = tuple(
            self._put(
                f"{prefix}w{encoded.width}.{encoded.image_type.extension}",
                encoded.data,
                encoded.image_type.content_type,
                encoded.width,
                encoded.height,
            )
            for encoded in processed.renditions
        )
        # The original last: a mirror is recorded only once every object exists.
        original = self._put(
            f"{prefix}original.{download.image_type.extension}",
            download.content,
            download.image_type.content_type,
            processed.width,
            processed.height,
        )
        return Mirror(original=original, thumbnails=thumbnails)

    def _put(self, key: str, data: bytes, content_type: str, width: int, height: int) -> Rendition:
        try:
            self._client().put_object(
                Bucket=self._bucket,
                Key=key,
                Body=data,
                ContentType=content_type,
                CacheControl=CACHE_CONTROL,
            )
        except (BotoCoreError, ClientError):
            self._store_failures += 1
            if self._store_failures >= STORE_FAILURE_LIMIT:
                self._paused_until = self._clock() + STORE_PAUSE_SECONDS
            raise
        self._store_failures = 0
        self.stats.stored_bytes += len(data)
        return Rendition(key, width, height, len(data), content_type)

    def _client(self) -> S3Client:
        if self._s3 is None:
            self._s3 = s3_client()
        return self._s3

    def _reread(self, post_id: str) -> Post | None:
        self.stats.refetched += 1
        try:
            return self._refetch(post_id)
        except Exception as exc:
            # The Graph client already retries and honours throttling; a
            # failed re-read only means these images keep Instagram's URLs.
            self._logger.warning(
                "re-reading a post for fresh image URLs failed",
                extra={"media_id": post_id, "reason": redact(str(exc))[:500]},
            )
            return None

    def _failed(self, media_id: str, reason: str, *, unexpected: bool = False) -> None:
        self.stats.failed += 1
        extra = {"media_id": media_id[:64], "reason": redact(reason)[:500]}
        if unexpected:
            self._logger.exception("image not mirrored", extra=extra)
        else:
            self._logger.warning("image not mirrored", extra=extra)


class _FreshUrls:
    """Fresh CDN URLs for one post's images, read from Graph at most once.

    All URLs of one Graph response expire together, so when a carousel's
    links are dead the single re-read of the post renews every child's.
    """

    def __init__(self, post_id: str, reread: Refetch) -> None:
        self._post_id = post_id
        self._reread = reread
        self._done = False
        self._post: Post | None = None

    def url_for(self, media_id: str) -> str | None:
        """A fresh URL for ``media_id`` (the post or one of its children)."""
        if not self._done:
            self._done = True
            self._post = self._reread(self._post_id)
        post = self._post
        if post is None:
            return None
        if media_id == post.id:
            return _still_url(post)
        return next((_still_url(child) for child in post.children if child.id == media_id), None)


def _still_url(item: Post | MediaChild) -> str | None:
    """The URL of the still image to mirror: a video's poster, never the video."""
    if item.media_type == "VIDEO":
        return item.thumbnail_url
    return item.image_url


def _known_mirrors(previous: Post | None) -> dict[str, Mirror]:
    if previous is None:
        return {}
    known = {child.id: child.mirror for child in previous.children if child.mirror}
    if previous.mirror is not None:
        known.setdefault(previous.id, previous.mirror)
    return known
