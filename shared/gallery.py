"""The gallery of one event: Instagram posts of its window plus guest uploads.

The service reads the two sources concurrently (one DynamoDB Query for the
window, one ListObjectsV2 per 1,000 uploads), merges them oldest first and
degrades per source: a source that fails is named in ``degraded`` and the
other still shows; only when both fail is the gallery unavailable.

Per-container caches (a warm Lambda container answers repeats without AWS):

- ``META`` partition (ingest state, event records): ``META_TTL`` seconds. On a
  cold cache it is read *alongside* the window Query and the listing, using
  the default local-day window; only if an event record then overrides the
  window is the window queried again (one more call, only on a cold cache).
- whole galleries: ``GALLERY_TTL`` seconds, ``DEGRADED_TTL`` when a source
  failed (so a recovery shows quickly); an unavailable gallery is not cached.

URL policy: a URL that came from Instagram (``permalink``, media and
thumbnail URLs) is kept only when it is ``https``, or plain ``http`` on a host
that ``MEDIA_HOSTS`` lists exactly; otherwise it is ``None``. URLs the service
makes itself (presigned S3 URLs) are used as made.

No boto3 here: sources come in through :class:`~shared.repository.MediaRepository`
and :class:`UploadSource`, URLs through a ``sign(key) -> url`` callable.
"""

from __future__ import annotations

import functools
import re
import threading
import time
from collections.abc import Callable, Collection
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from shared.config import Settings
from shared.events import EventRecord
from shared.media import MediaChild, Mirror, Post, Rendition
from shared.observability import get_logger
from shared.state import IngestState
from shared.timestamps import format_utc
from shared.windows import EventId, EventWindow, event_window

if TYPE_CHECKING:
    # Types only: importing the adapters would pull PynamoDB into every
    # module that renders a page.
    from shared.repository import MediaRepository
    from shared.uploads import Upload

INSTAGRAM = "instagram"
UPLOADS = "uploads"
# Event records and the ingest state change rarely; a longer META cache keeps
# an uncached gallery at 2 AWS calls (window Query + listing).
META_TTL = 300.0
GALLERY_TTL = 60.0
DEGRADED_TTL = 10.0
# Mirrored renditions the page picks (see _mirrored_picture): the grid's
# src (sharp on a 2-column phone grid at 2x), where srcset stops, and the
# lightbox image (the original only when no thumbnail is that wide).
_GRID_WIDTH = 480
_SRCSET_WIDTH = 640
_LIGHTBOX_WIDTH = 1080
_SOURCE_ORDER = {INSTAGRAM: 0, "upload": 1}
# Stricter than urlsplit, on purpose: a host of letters, digits, dots and
# hyphens (no user info, no IDN), then an optional port, then a path/query
# free of whitespace, quotes, angle brackets, backslashes and control bytes.
_PUBLIC_URL = re.compile(
    r"(?P<scheme>https?)://(?P<host>[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?)(?::[0-9]{1,5})?"
    r"(?:[/?#][^\x00-\x20\x7f\"'<>`\\]*)?",
    re.ASCII | re.IGNORECASE,
)

logger = get_logger("serve")
T = TypeVar("T")


def monotonic() -> float:
    """The caches' default clock (a seam for tests that let time pass)."""
    return time.monotonic()


class UploadSource(Protocol):
    """Where guest uploads come from (adapter: :class:`shared.uploads.S3Uploads`)."""

    def list_uploads(self, event_id: str) -> list[Upload]:
        """The event's displayable uploads."""
        ...


class GalleryUnavailableError(RuntimeError):
    """Neither Instagram posts nor uploads could be read."""


@dataclass(frozen=True)
class Picture:
    """A still image as the page shows it.

    Attributes
    ----------
    src
        The grid-size URL (a mirrored thumbnail when there is one).
    full
        The full-size URL for the lightbox.
    width, height
        Pixel size of ``src``; ``None`` when unknown (uploads without
        renditions, unmirrored posts).
    full_width, full_height
        Pixel size of ``full``, when known.
    srcset
        ``(url, width)`` candidates from the mirrored renditions, smallest first.
    """

    src: str
    full: str
    width: int | None = None
    height: int | None = None
    full_width: int | None = None
    full_height: int | None = None
    srcset: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class GalleryChild:
    """One image or video of a carousel."""

    id: str
    media_type: str | None
    url: str | None
    thumbnail_url: str | None
    picture: Picture | None
    mirrored: bool = False

    def to_json(self) -> dict[str, Any]:
        """The child in the JSON response."""
        return {
            "id": self.id,
            "media_type": self.media_type,
            "url": self.url,
            "thumbnail_url": self.thumbnail_url,
        }


@dataclass(frozen=True)
class GalleryItem:
    """One entry of the gallery: an Instagram post or a guest upload.

    The first nine attributes are the JSON item of the design brief;
    ``picture`` and ``is_reel`` are for the page, which shows a video (a reel
    or a feed video) by its poster and links it to Instagram.
    """

    id: str
    source: str
    taken_at: datetime
    media_type: str | None
    caption: str | None
    permalink: str | None
    url: str | None
    thumbnail_url: str | None
    children: tuple[GalleryChild, ...] = ()
    picture: Picture | None = None
    is_reel: bool = False

    def to_json(self) -> dict[str, Any]:
        """The item in the JSON response, exactly the brief's keys."""
        return {
            "id": self.id,
            "source": self.source,
            "taken_at": format_utc(self.taken_at),
            "media_type": self.media_type,
            "caption": self.caption,
            "permalink": self.permalink,
            "url": self.url,
            "thumbnail_url": self.thumbnail_url,
            "children": [child.to_json() for child in self.children],
        }


@dataclass(frozen=True)
class Gallery:
    """An event's gallery, ready to render.

    Attributes
    ----------
    window
        The event and the bounds that were queried.
    items
        Oldest first (ties: Instagram before uploads, then by id).
    degraded
        Sources that could not be read: ``"instagram"``, ``"uploads"``.
    synced_at
        When ingest last finished a run (``last_success_at``), if known.
    """

    window: EventWindow
    items: tuple[GalleryItem, ...]
    degraded: tuple[str, ...] = ()
    synced_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON body of ``GET /g/{event_id}?format=json``."""
        window = self.window
        return {
            "event": {
                "id": window.event_id,
                "title": window.title,
                "start": format_utc(window.start),
                "end": format_utc(window.end),
                "timezone": window.timezone,
            },
            "items": [item.to_json() for item in self.items],
            "degraded": list(self.degraded),
            "synced_at": format_utc(self.synced_at) if self.synced_at else None,
        }


def public_url(url: str | None, http_hosts: Collection[str]) -> str | None:
    """Return ``url`` if a page may link or load it, else ``None``.

    Parameters
    ----------
    url
        A URL from Instagram data.
    http_hosts
        Hosts allowed over plain ``http`` (``MEDIA_HOSTS``, matched exactly,
        never as a suffix).

    Returns
    -------
    str or None
        ``url`` unchanged when it is ``https://<host>...`` or
        ``http://<exact host>...`` with an ASCII host name, no credentials,
        and no whitespace, quotes, angle brackets, backslashes or control
        characters anywhere; ``None`` for anything else (``javascript:``,
        ``data:``, relative URLs, other hosts over ``http``).
    """
    if not url:
        return None
    match = _PUBLIC_URL.fullmatch(url)
    if match is None:
        return None
    scheme, host = match.group("scheme").lower(), match.group("host").lower()
    if scheme == "https" or host in http_hosts:
        return url
    return None


class _TtlCache(Generic[T]):
    """A small thread-safe map whose entries expire; oldest evicted past ``limit``."""

    def __init__(self, limit: int = 256) -> None:
        self._entries: dict[str, tuple[float, T]] = {}
        self._limit = limit
        self._lock = threading.Lock()

    def get(self, key: str, now: float) -> T | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] <= now:
            return None
        return entry[1]

    def put(self, key: str, value: T, ttl: float, now: float) -> None:
        with self._lock:
            self._entries.pop(key, None)
            if len(self._entries) >= self._limit:
                del self._entries[next(iter(self._entries))]
            self._entries[key] = (now + ttl, value)


@dataclass(frozen=True)
class _Meta:
    state: IngestState
    events: dict[str, EventRecord]


class GalleryService:
    """Builds galleries from a media repository and an upload source.

    Parameters
    ----------
    settings
        ``EVENT_TIMEZONE``, ``POST_GRACE_HOURS`` and ``MEDIA_HOSTS``.
    repository
        Instagram posts, ingest state and event records.
    uploads
        Guest uploads.
    sign
        Turns an S3 key (an upload or a mirrored rendition) into a URL.
    on_built
        Called with every gallery actually built (not with cache hits): the
        handler logs it and counts degradations.
    clock
        Seconds for the caches; this module's :func:`monotonic` when omitted.
    """

    def __init__(
        self,
        settings: Settings,
        repository: MediaRepository,
        uploads: UploadSource,
        sign: Callable[[str], str],
        on_built: Callable[[Gallery], None] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._timezone = settings.event_timezone
        self._grace_hours = settings.post_grace_hours
        self._http_hosts = frozenset(settings.media_hosts)
        self._repository = repository
        self._uploads = uploads
        self._sign = sign
        self._on_built = on_built
        self._clock = clock or monotonic
        self._meta = _TtlCache[_Meta](limit=1)
        self._galleries = _TtlCache[Gallery]()

    def gallery(self, event: EventId) -> Gallery:
        """The event's gallery, from the container cache when fresh.

        Raises
        ------
        GalleryUnavailableError
            When neither source can be read.
        """
        now = self._clock()
        cached = self._galleries.get(event.value, now)
        if cached is not None:
            return cached
        gallery, complete = self._build(event)
        ttl = GALLERY_TTL if complete and not gallery.degraded else DEGRADED_TTL
        self._galleries.put(event.value, gallery, ttl, now)
        if self._on_built is not None:
            self._on_built(gallery)
        return gallery

    def _build(self, event: EventId) -> tuple[Gallery, bool]:
        meta = self._meta.get("meta", self._clock())
        meta_future = None if meta else _worker("meta").submit(self._repository.load_meta)
        uploads = _worker("uploads").submit(self._upload_items, event)
        window = self._window(event, meta)
        # The window Query runs on the calling thread: PynamoDB keeps one
        # botocore session per thread, so fewer threads mean fewer sessions
        # to build on a cold start.
        instagram_items = _outcome(lambda: self._instagram_items(window), INSTAGRAM)
        if meta_future is not None:
            meta = self._collect_meta(meta_future)
            final = self._window(event, meta)
            if (final.start, final.end) != (window.start, window.end):
                instagram_items = _outcome(lambda: self._instagram_items(final), INSTAGRAM)
            window = final
        upload_items = _outcome(uploads.result, UPLOADS)
        if instagram_items is None and upload_items is None:
            raise GalleryUnavailableError("neither Instagram posts nor uploads could be read")
        degraded = tuple(
            name
            for name, items in ((INSTAGRAM, instagram_items), (UPLOADS, upload_items))
            if items is None
        )
        merged = sorted(
            [*(instagram_items or ()), *(upload_items or ())],
            key=lambda item: (item.taken_at, _SOURCE_ORDER[item.source], item.id),
        )
        synced_at = meta.state.last_success_at if meta else None
        gallery = Gallery(window, tuple(merged), degraded, synced_at)
        return gallery, meta is not None

    def _window(self, event: EventId, meta: _Meta | None) -> EventWindow:
        record = meta.events.get(event.value) if meta else None
        return event_window(event, self._timezone, self._grace_hours, record)

    def _collect_meta(
        self, future: Future[tuple[IngestState, dict[str, EventRecord]]]
    ) -> _Meta | None:
        try:
            state, events = future.result()
        except Exception:  # the page still works without a title and sync time
            logger.warning("event records and ingest state unreadable", exc_info=True)
            return None
        meta = _Meta(state, events)
        self._meta.put("meta", meta, META_TTL, self._clock())
        return meta

    def _instagram_items(self, window: EventWindow) -> list[GalleryItem]:
        posts = self._repository.posts_between(window.start, window.end)
        return [self._post_item(post) for post in posts]

    def _upload_items(self, event: EventId) -> list[GalleryItem]:
        items = []
        for upload in self._uploads.list_uploads(event.value):
            url = self._sign(upload.key)
            picture = (
                # The largest rendition stands in for the original: the
                # lightbox then shows it instead of a multi-megabyte file,
                # while the JSON ``url`` still links the upload itself.
                self._mirrored_picture(Mirror(upload.renditions[-1], upload.renditions))
                if upload.renditions
                else Picture(src=url, full=url)
            )
            items.append(
                GalleryItem(
                    id=upload.key,
                    source="upload",
                    taken_at=upload.taken_at,
                    media_type="IMAGE",
                    caption=None,
                    permalink=None,
                    url=url,
                    thumbnail_url=picture.src,
                    picture=picture,
                )
            )
        return items

    def _post_item(self, post: Post) -> GalleryItem:
        children = tuple(self._child(child) for child in post.children)
        picture, url = self._post_picture(post, children)
        return GalleryItem(
            id=post.id,
            source=INSTAGRAM,
            taken_at=post.taken_at,
            media_type=post.media_type,
            caption=post.caption,
            permalink=public_url(post.permalink, self._http_hosts),
            url=url,
            thumbnail_url=picture.src if picture else None,
            children=children,
            picture=picture,
            is_reel=post.media_type == "VIDEO" or post.media_product_type == "REELS",
        )

    def _post_picture(
        self, post: Post, children: tuple[GalleryChild, ...]
    ) -> tuple[Picture | None, str | None]:
        """The post's still and its JSON ``url``: mirrored copies before CDN URLs.

        A carousel may carry its mirror on the children only; a mirrored child
        still beats the album's own expiring CDN URL.
        """
        if post.mirror is not None:
            return self._mirrored_picture(post.mirror), self._media_url(post.mirror, None)
        mirrored = next((c for c in children if c.mirrored and c.picture), None)
        if mirrored is not None and mirrored.picture is not None:
            return mirrored.picture, mirrored.url
        picture = self._picture(None, post.media_type, post.media_url, post.thumbnail_url)
        if picture is None:
            picture = next((child.picture for child in children if child.picture), None)
        url = public_url(post.media_url, self._http_hosts) or (picture.full if picture else None)
        return picture, url

    def _child(self, child: MediaChild) -> GalleryChild:
        picture = self._picture(
            child.mirror, child.media_type, child.media_url, child.thumbnail_url
        )
        url = self._media_url(child.mirror, child.media_url) or (picture.full if picture else None)
        return GalleryChild(
            id=child.id,
            media_type=child.media_type,
            url=url,
            thumbnail_url=picture.src if picture else None,
            picture=picture,
            mirrored=child.mirror is not None,
        )

    def _media_url(self, mirror: Mirror | None, media_url: str | None) -> str | None:
        """``url`` of the JSON: the mirrored original, else Instagram's media URL."""
        if mirror is not None:
            return self._sign(mirror.original.key)
        return public_url(media_url, self._http_hosts)

    def _picture(
        self,
        mirror: Mirror | None,
        media_type: str | None,
        media_url: str | None,
        thumbnail_url: str | None,
    ) -> Picture | None:
        if mirror is not None:
            return self._mirrored_picture(mirror)
        # A video's media_url is the video itself: only its poster is a still.
        candidates = (thumbnail_url,) if media_type == "VIDEO" else (media_url, thumbnail_url)
        still = next(
            (url for url in (public_url(c, self._http_hosts) for c in candidates) if url), None
        )
        return Picture(src=still, full=still) if still else None

    def _mirrored_picture(self, mirror: Mirror) -> Picture:
        original = mirror.original
        thumbnails = sorted(mirror.thumbnails, key=_rendition_order)
        shown = next(
            (t for t in thumbnails if t.width >= _GRID_WIDTH),
            thumbnails[-1] if thumbnails else original,
        )
        # Grid cells are at most ~250 CSS px: candidates up to the first one
        # _SRCSET_WIDTH wide cover a 3x phone; wider ones would only add
        # kilobytes of presigned URL to every tile.
        widths: dict[int, str] = {}
        for rendition in [*thumbnails, original]:
            if rendition.width > 0 and rendition.width not in widths:
                widths[rendition.width] = self._sign(rendition.key)
                if rendition.width >= _SRCSET_WIDTH:
                    break
        full = next((t for t in thumbnails if t.width >= _LIGHTBOX_WIDTH), original)
        return Picture(
            src=self._sign(shown.key),
            full=self._sign(full.key),
            width=shown.width or None,
            height=shown.height or None,
            full_width=full.width or None,
            full_height=full.height or None,
            srcset=tuple((url, width) for width, url in widths.items()) if len(widths) > 1 else (),
        )


def _rendition_order(rendition: Rendition) -> tuple[int, str]:
    return rendition.width, rendition.key


def _outcome(read: Callable[[], list[GalleryItem]], source: str) -> list[GalleryItem] | None:
    try:
        return read()
    except Exception:  # degrade this source; the other one still shows
        logger.warning("gallery source unavailable", extra={"source": source}, exc_info=True)
        return None


@functools.cache
def _worker(name: str) -> ThreadPoolExecutor:
    # One long-lived thread per job (META read, S3 listing): the same thread
    # serves every request of the container, keeping its clients warm.
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"gallery-{name}")
