"""Renditions of guest uploads, made by ingest after each Instagram sync.

A phone photo is several megabytes; a gallery grid needs a few tens of
kilobytes per tile. Each image upload ``<prefix><event_id>/<file>`` gets the
same WebP renditions as a mirrored Instagram image
(:func:`shared.thumbnails.process_image`), stored beside it as
``<prefix><event_id>/.thumbs/<file>/w<W>x<H>.webp`` (layout:
:mod:`shared.uploads`), so serve finds them in the listing it already makes.

One :meth:`UploadThumbnailer.run` lists the uploads prefix, picks the image
uploads without any ``.thumbs/<file>/`` key (newest first, so a live charter
is served first) and processes at most ``max_uploads`` of them, stopping
earlier when the Lambda's remaining time runs low; the rest wait for the next
run. An upload that is too large or does not decode gets a
``.thumbs/<file>/failed`` marker so it is never tried again; an S3 error is
counted and left for the next run. Nothing is ever deleted or overwritten
outside ``.thumbs/``, and nothing here raises into the ingest run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from shared.archive import CACHE_CONTROL
from shared.aws import s3_client
from shared.config import Settings
from shared.image_types import IMAGE_TYPES
from shared.observability import get_logger
from shared.redaction import redact
from shared.thumbnails import ImageRejectedError, process_image
from shared.uploads import FAILED_MARKER, THUMBS_FOLDER, rendition_key, thumbs_folder

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectTypeDef

#: At most this many uploads are processed per run (about 1 s each for a
#: 12 MP photo); a burst of uploads is worked off over several runs.
MAX_UPLOADS_PER_RUN = 50
#: Bytes read of one upload at most: a 40 MP JPEG (the decoder's pixel cap,
#: :data:`shared.thumbnails.MAX_PIXELS`) stays well below it.
MAX_UPLOAD_BYTES = 40 * 1024 * 1024
#: No new upload is started with less Lambda time left than this: one
#: 40 MP image takes several seconds to decode and encode four times.
TIME_RESERVE_SECONDS = 60.0
#: S3 errors in a row after which the run stops: S3 is evidently failing.
S3_FAILURE_LIMIT = 3
_CHUNK = 1024 * 1024
# S3 keys are at most 1,024 bytes; a rendition name is at most "w12000x12000.webp".
# An upload whose folder leaves no room keeps its original (nothing to retry).
_MAX_FOLDER_BYTES = 1024 - len("w12000x12000.webp")
# Only what process_image decodes; a GIF or AVIF upload keeps its original.
_DECODABLE = tuple(f".{ext}" for ext in {"jpg", "jpeg", *(kind.extension for kind in IMAGE_TYPES)})


# "bad_image" is marked and never retried; "s3_error" is left for the next run.
_Outcome = Literal["made", "bad_image", "s3_error"]


class UploadTooLargeError(ValueError):
    """An upload is larger than :data:`MAX_UPLOAD_BYTES`."""


@dataclass
class UploadThumbnailStats:
    """What one run did.

    Attributes
    ----------
    made
        Uploads whose renditions were stored.
    failed
        Uploads that could not be processed (marked when the image itself
        is bad, else retried next run), plus a failed listing.
    pending
        Image uploads still without renditions when the run stopped.
    """

    made: int = 0
    failed: int = 0
    pending: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counts, for the run summary."""
        return asdict(self)


@dataclass(frozen=True)
class _Candidate:
    key: str
    folder: str
    size: int
    last_modified: datetime


class UploadThumbnailer:
    """Makes the missing renditions of guest uploads in ``MEDIA_BUCKET``.

    Parameters
    ----------
    settings
        ``MEDIA_BUCKET`` and ``UPLOADS_PREFIX`` are used.
    s3
        S3 client; the container's by default (created on first use).
    logger
        Structured logger; ingest's by default.
    max_uploads
        Uploads processed per run at most.
    max_bytes
        Bytes read of one upload at most.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        s3: S3Client | None = None,
        logger: Logger | None = None,
        max_uploads: int = MAX_UPLOADS_PER_RUN,
        max_bytes: int = MAX_UPLOAD_BYTES,
    ) -> None:
        self._bucket = settings.media_bucket
        self._prefix = settings.uploads_prefix
        self._s3 = s3
        self._logger = logger or get_logger("ingest")
        self._max_uploads = max_uploads
        self._max_bytes = max_bytes

    def run(self, time_left: Callable[[], float] | None = None) -> UploadThumbnailStats:
        """Make renditions for uploads lacking them, within this run's bounds.

        Parameters
        ----------
        time_left
            Seconds the Lambda has left (from its context); no new upload is
            started below :data:`TIME_RESERVE_SECONDS`. ``None``: only the
            count bounds the run.

        Returns
        -------
        UploadThumbnailStats
            Counts of the run. Never raises.
        """
        stats = UploadThumbnailStats()
        try:
            todo = self._lacking_renditions()
        except (BotoCoreError, ClientError) as exc:
            stats.failed += 1
            self._logger.warning(
                "uploads not listed; no renditions made", extra={"reason": redact(str(exc))[:500]}
            )
            return stats
        s3_failures = 0
        for index, upload in enumerate(todo):
            out_of_time = time_left is not None and time_left() < TIME_RESERVE_SECONDS
            if index >= self._max_uploads or out_of_time or s3_failures >= S3_FAILURE_LIMIT:
                stats.pending = len(todo) - index
                break
            outcome = self._make(upload)
            if outcome == "made":
                stats.made += 1
            else:
                stats.failed += 1
            s3_failures = s3_failures + 1 if outcome == "s3_error" else 0
        if stats.made or stats.failed or stats.pending:
            self._logger.info("upload renditions", extra=stats.as_dict())
        return stats

    def _lacking_renditions(self) -> list[_Candidate]:
        """Image uploads with no ``.thumbs/<file>/`` key, newest first."""
        uploads: dict[str, _Candidate] = {}
        done: set[str] = set()
        for obj in self._objects():
            key = obj["Key"]
            event, slash, rest = key[len(self._prefix) :].partition("/")
            if not event or not slash or not rest or key.endswith("/"):
                continue  # not inside an event folder, or a folder marker
            folder = f"{self._prefix}{event}/"
            if rest.startswith(THUMBS_FOLDER):
                done.add(key[: key.rfind("/") + 1])
            elif rest.lower().endswith(_DECODABLE) and int(obj.get("Size", 0)) > 0:
                uploads[key] = _Candidate(
                    key, folder, int(obj["Size"]), obj["LastModified"].astimezone(UTC)
                )
        todo = [
            c
            for c in uploads.values()
            if (thumbs := thumbs_folder(c.folder, c.key)) not in done
            and len(thumbs.encode()) <= _MAX_FOLDER_BYTES
        ]
        return sorted(todo, key=lambda c: (c.last_modified, c.key), reverse=True)

    def _objects(self) -> Iterator[ObjectTypeDef]:
        pages = (
            self._client()
            .get_paginator("list_objects_v2")
            .paginate(Bucket=self._bucket, Prefix=self._prefix)
        )
        for page in pages:
            yield from page.get("Contents", [])

    def _make(self, upload: _Candidate) -> _Outcome:
        """Store one upload's renditions; a failure is logged, and marked if final."""
        try:
            processed = process_image(self._read(upload))
            for encoded in processed.renditions:
                self._put(
                    rendition_key(upload.folder, upload.key, encoded.width, encoded.height),
                    encoded.data,
                    encoded.image_type.content_type,
                )
        except (BotoCoreError, ClientError) as exc:
            self._failed(upload, str(exc))
            return "s3_error"
        except (ImageRejectedError, UploadTooLargeError) as exc:
            self._failed(upload, str(exc), mark=True)
            return "bad_image"
        except Exception as exc:
            # A decoder surprise (MemoryError, a Pillow bug) would recur on
            # the same bytes: mark it rather than retry it every run.
            self._failed(upload, f"{type(exc).__name__}: {exc}", mark=True, unexpected=True)
            return "bad_image"
        return "made"

    def _read(self, upload: _Candidate) -> bytes:
        if upload.size > self._max_bytes:
            raise UploadTooLargeError(f"{upload.size} bytes (cap {self._max_bytes})")
        body = self._client().get_object(Bucket=self._bucket, Key=upload.key)["Body"]
        data = bytearray()
        try:
            # The object may have been replaced by a larger one since the
            # listing: the cap holds on what is actually streamed.
            for chunk in body.iter_chunks(_CHUNK):
                data += chunk
                if len(data) > self._max_bytes:
                    raise UploadTooLargeError(f"more than {self._max_bytes} bytes")
        finally:
            body.close()
        return bytes(data)

    def _put(self, key: str, data: bytes, content_type: str) -> None:
        self._client().put_object(
            Bucket=self._bucket,
            Key=key,
            Body=data,
            ContentType=content_type,
            CacheControl=CACHE_CONTROL,
        )

    def _failed(
        self, upload: _Candidate, reason: str, *, mark: bool = False, unexpected: bool = False
    ) -> None:
        extra = {"upload": upload.key[:300], "reason": redact(reason)[:500]}
        log = self._logger.exception if unexpected else self._logger.warning
        log("upload renditions not made", extra=extra)
        if not mark:
            return
        try:
            self._put(thumbs_folder(upload.folder, upload.key) + FAILED_MARKER, b"", "text/plain")
        except (BotoCoreError, ClientError) as exc:
            self._logger.warning(
                "failure marker not stored; the upload is tried again next run",
                extra={**extra, "reason": redact(str(exc))[:500]},
            )

    def _client(self) -> S3Client:
        if self._s3 is None:
            self._s3 = s3_client()
        return self._s3
