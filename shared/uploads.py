"""Guest uploads in S3: listing an event's photos and signing URLs to them.

Uploads live at ``s3://MEDIA_BUCKET/<UPLOADS_PREFIX><event_id>/<file>``. The
listing prefix always ends in ``/``: ``uploads/2026-04-29`` would also match
``uploads/2026-04-29-sunset/...``, another charter's photos.

``taken_at``: the design brief wants an upload's ``x-amz-meta-taken-at`` when
present, else its ``LastModified``. ListObjectsV2 does not return user
metadata; only HeadObject does, one call per object. Trade-off chosen: the
metadata of an S3 object never changes without its ETag or LastModified
changing, so each object is HEADed once per container (memoised by key, ETag
and LastModified) and every later listing costs one ListObjectsV2 per 1,000
keys and nothing else. The first request that sees new uploads pays one
HeadObject per new upload (concurrently, at most ``MAX_HEADS_PER_LISTING``
per request; the rest show LastModified until a later request fills them in).
A failed HEAD falls back to LastModified for that photo and is retried by the
next listing, so it never hides a photo.

Renditions: ingest (:mod:`shared.upload_thumbnails`) stores an upload's
resized copies in the same event folder, under a hidden subfolder named for
the file, with the pixel size in the name:
``<prefix><event_id>/.thumbs/<file>/w<W>x<H>.webp``. The one listing of the
event folder thus returns originals and renditions together, and pairing them
by name costs no AWS call. ``.thumbs/`` keys are never uploads themselves;
``.thumbs/<file>/failed`` marks an upload that could not be decoded.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from shared import aws
from shared.config import Settings
from shared.media import Rendition
from shared.observability import get_logger
from shared.presign import PresignedUrls, SigningCredentials
from shared.timestamps import parse_utc

if TYPE_CHECKING:
    from mypy_boto3_s3.type_defs import ObjectTypeDef

# Formats every current browser displays; HEIC/RAW would be broken images.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".gif", ".webp", ".avif"})
TAKEN_AT_METADATA = "taken-at"  # boto3 strips the ``x-amz-meta-`` prefix
MAX_HEADS_PER_LISTING = 500
# Eight HEADs in flight plus the listing stay inside botocore's default pool
# of ten connections per client.
_HEAD_WORKERS = 8
_MEMO_LIMIT = 50_000
THUMBS_FOLDER = ".thumbs/"
FAILED_MARKER = "failed"
RENDITION_CONTENT_TYPE = "image/webp"
_RENDITION_NAME = re.compile(r"w([1-9][0-9]{0,4})x([1-9][0-9]{0,4})\.webp")

logger = get_logger("serve")


@dataclass(frozen=True)
class Upload:
    """One guest photo in the bucket.

    Attributes
    ----------
    key
        The full object key (also the item id in the gallery JSON).
    taken_at
        ``x-amz-meta-taken-at`` when present and readable, else LastModified.
    size
        Bytes.
    renditions
        Its resized WebP copies from ``.thumbs/``, narrowest first; empty
        until ingest has made them (or when it could not).
    """

    key: str
    taken_at: datetime
    size: int
    renditions: tuple[Rendition, ...] = ()


class S3Uploads:
    """Lists an event's uploads with ListObjectsV2 (see the module docstring).

    Parameters
    ----------
    settings
        Supplies ``MEDIA_BUCKET`` and ``UPLOADS_PREFIX``.
    """

    def __init__(self, settings: Settings) -> None:
        self._bucket = settings.media_bucket
        self._prefix = settings.uploads_prefix
        self._taken_at: dict[tuple[str, str, datetime], datetime | None] = {}
        self._lock = threading.Lock()

    def prefix(self, event_id: str) -> str:
        """The listing prefix of an event, trailing slash included."""
        return f"{self._prefix}{event_id}/"

    def list_uploads(self, event_id: str) -> list[Upload]:
        """The event's displayable photos, in no particular order.

        Folder markers (keys ending in ``/``), empty objects and keys without
        an image extension are skipped; ``.thumbs/`` keys are attached to
        their upload as ``renditions``, never listed as uploads.

        Raises
        ------
        botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError
            When the bucket cannot be listed; a failed HeadObject does not raise.
        """
        folder = self.prefix(event_id)
        objects = []
        renditions: dict[str, list[Rendition]] = {}
        for obj in self._list(folder):
            thumb = split_thumbs_key(folder, obj["Key"])
            if thumb is not None:
                rendition = parse_rendition(obj["Key"], thumb[1], int(obj.get("Size", 0)))
                if rendition is not None:
                    renditions.setdefault(thumb[0], []).append(rendition)
            elif _displayable(obj):
                objects.append(obj)
        unknown = [obj for obj in objects if _memo_key(obj) not in self._taken_at]
        if unknown:
            self._read_metadata(unknown[:MAX_HEADS_PER_LISTING])
        uploads = []
        for obj in objects:
            last_modified: datetime = obj["LastModified"].astimezone(UTC)
            taken_at = self._taken_at.get(_memo_key(obj)) or last_modified
            key = obj["Key"]
            uploads.append(
                Upload(
                    key=key,
                    taken_at=taken_at,
                    size=int(obj["Size"]),
                    renditions=tuple(sorted(renditions.get(key, ()), key=_width)),
                )
            )
        return uploads

    def _list(self, prefix: str) -> Iterable[ObjectTypeDef]:
        # One ListObjectsV2 per page of 1,000 keys; no Delimiter, so a guest's
        # nested folder still shows.
        pages = (
            aws.s3_client()
            .get_paginator("list_objects_v2")
            .paginate(Bucket=self._bucket, Prefix=prefix)
        )
        for page in pages:
            yield from page.get("Contents", [])

    def _read_metadata(self, objects: list[ObjectTypeDef]) -> None:
        failures = 0
        for obj, (read, taken_at) in zip(
            objects, _head_pool().map(self._head, objects), strict=True
        ):
            if not read:
                failures += 1
                continue
            with self._lock:
                if len(self._taken_at) >= _MEMO_LIMIT:
                    self._taken_at.clear()
                self._taken_at[_memo_key(obj)] = taken_at
        if failures:
            logger.warning("HeadObject failed; LastModified used", extra={"failed": failures})

    def _head(self, obj: ObjectTypeDef) -> tuple[bool, datetime | None]:
        """``(read, taken_at)``: whether HeadObject answered, and the metadata time."""
        try:
            head = aws.s3_client().head_object(Bucket=self._bucket, Key=obj["Key"])
        except Exception:  # any failure: keep the photo, date it by LastModified
            return False, None
        value = head.get("Metadata", {}).get(TAKEN_AT_METADATA)
        try:
            return True, parse_utc(value) if value else None
        except ValueError:
            return True, None


def thumbs_folder(folder: str, upload_key: str) -> str:
    """Where the renditions of ``upload_key`` live, trailing slash included.

    Parameters
    ----------
    folder
        The upload's event folder, ``<prefix><event_id>/``.
    upload_key
        The upload, ``<folder><file>`` (``<file>`` may hold sub-folders).
    """
    return f"{folder}{THUMBS_FOLDER}{upload_key[len(folder) :]}/"


def rendition_key(folder: str, upload_key: str, width: int, height: int) -> str:
    """The key of one rendition: ``<folder>.thumbs/<file>/w<W>x<H>.webp``."""
    return f"{thumbs_folder(folder, upload_key)}w{width}x{height}.webp"


def split_thumbs_key(folder: str, key: str) -> tuple[str, str] | None:
    """``(upload_key, name)`` for ``<folder>.thumbs/<file>/<name>``; ``None`` for other keys."""
    start = folder + THUMBS_FOLDER
    if not key.startswith(start):
        return None
    file, _, name = key[len(start) :].rpartition("/")
    if not file:
        # A stray object right in .thumbs/: still hidden, but nobody's rendition.
        return "", name
    return folder + file, name


def parse_rendition(key: str, name: str, size: int) -> Rendition | None:
    """The rendition a ``.thumbs/`` key names, or ``None`` (a marker, a stray file)."""
    match = _RENDITION_NAME.fullmatch(name)
    if match is None or size <= 0:
        return None
    return Rendition(
        key, int(match.group(1)), int(match.group(2)), size, content_type=RENDITION_CONTENT_TYPE
    )


def is_image_name(key: str) -> bool:
    """Whether ``key`` ends in an extension of a format browsers display."""
    name = key.rsplit("/", 1)[-1]
    dot = name.rfind(".")
    return dot > 0 and name[dot:].lower() in IMAGE_EXTENSIONS


def _displayable(obj: ObjectTypeDef) -> bool:
    key: str = obj["Key"]
    if key.endswith("/") or int(obj.get("Size", 0)) == 0:
        return False
    return is_image_name(key)


def _width(rendition: Rendition) -> tuple[int, str]:
    return rendition.width, rendition.key


def _memo_key(obj: ObjectTypeDef) -> tuple[str, str, datetime]:
    return obj["Key"], str(obj.get("ETag", "")), obj["LastModified"]


@functools.cache
def _head_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=_HEAD_WORKERS, thread_name_prefix="s3-head")


def presigned_urls(settings: Settings) -> PresignedUrls:
    """Time-bucketed presigned URLs for ``MEDIA_BUCKET`` with the container's credentials.

    Used for uploads and for mirrored Instagram renditions under ``instagram/``.
    """
    import boto3

    # Resolved once per container; botocore refreshes expiring credentials.
    resolved = boto3.session.Session().get_credentials()

    def frozen() -> SigningCredentials:
        current = resolved.get_frozen_credentials() if resolved else None
        if current is None or not current.access_key or not current.secret_key:
            raise RuntimeError("no AWS credentials to sign media URLs with")
        return SigningCredentials(current.access_key, current.secret_key, current.token)

    return PresignedUrls(
        settings.media_bucket,
        settings.aws_region,
        frozen,
        settings.aws_endpoint_url,
    )
