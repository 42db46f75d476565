"""The media domain: Instagram posts as the gallery knows them.

Parsing is defensive because Graph treats every field as optional, may send
enum values we have never seen (``CAROUSEL_CONTAINER``) and withholds
``media_url`` on reels with licensed audio. Only ``id`` and ``timestamp`` are
required: without them a post can be neither keyed nor placed in a window.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from shared.timestamps import format_utc, parse_graph_timestamp


class MalformedPostError(ValueError):
    """A media object without a usable ``id`` or ``timestamp``."""


@dataclass(frozen=True)
class Rendition:
    """One stored image in S3: the original or a resized thumbnail."""

    key: str
    width: int
    height: int
    size: int
    content_type: str = "image/jpeg"


@dataclass(frozen=True)
class Mirror:
    """The copies of one image kept in ``MEDIA_BUCKET`` (see :mod:`shared.archive`)."""

    original: Rendition
    thumbnails: tuple[Rendition, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form for storage."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Mirror | None:
        """Rebuild a mirror from :meth:`to_dict` output; ``None`` stays ``None``."""
        if not data:
            return None
        return cls(
            original=Rendition(**data["original"]),
            thumbnails=tuple(Rendition(**thumb) for thumb in data.get("thumbnails", ())),
        )


@dataclass(frozen=True)
class MediaChild:
    """One item of a carousel album."""

    id: str
    media_type: str | None = None
    media_url: str | None = None
    thumbnail_url: str | None = None
    mirror: Mirror | None = None

    @property
    def image_url(self) -> str | None:
        """The URL of a still image: a video's poster, else the media itself."""
        return self.thumbnail_url if self.media_type == "VIDEO" else self.media_url

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form for storage."""
        data = asdict(self)
        data["mirror"] = self.mirror.to_dict() if self.mirror else None
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MediaChild:
        """Rebuild a child from :meth:`to_dict` output."""
        return cls(
            id=str(data["id"]),
            media_type=data.get("media_type"),
            media_url=data.get("media_url"),
            thumbnail_url=data.get("thumbnail_url"),
            mirror=Mirror.from_dict(data.get("mirror")),
        )


@dataclass(frozen=True)
class Post:
    """One Instagram post of the account, as stored and served."""

    id: str
    taken_at: datetime
    media_type: str | None = None
    media_product_type: str | None = None
    caption: str | None = None
    permalink: str | None = None
    media_url: str | None = None
    thumbnail_url: str | None = None
    children: tuple[MediaChild, ...] = field(default_factory=tuple)
    mirror: Mirror | None = None

    @property
    def image_url(self) -> str | None:
        """The URL of a still image: a video's poster, else the media itself.

        A reel whose ``media_url`` Instagram withheld still has its poster.
        """
        if self.media_type == "VIDEO":
            return self.thumbnail_url
        return self.media_url or self.thumbnail_url

    @classmethod
    def from_graph(cls, data: Mapping[str, Any]) -> Post:
        """Build a post from one Graph API media object.

        Parameters
        ----------
        data
            An element of ``/<user>/media``'s ``data`` array, with ``children``
            expanded inline (``children{...}``) when present.

        Raises
        ------
        MalformedPostError
            When ``id`` or ``timestamp`` is missing or unreadable.
        """
        if not isinstance(data, Mapping):
            raise MalformedPostError("media object is not a JSON object")
        media_id = data.get("id")
        if not isinstance(media_id, str | int) or not str(media_id).strip():
            raise MalformedPostError("media object has no id")
        try:
            taken_at = parse_graph_timestamp(str(data.get("timestamp")))
        except ValueError as exc:
            raise MalformedPostError(f"media {media_id} has no valid timestamp") from exc
        children_block = data.get("children")
        children_data = children_block.get("data", []) if isinstance(children_block, dict) else []
        children = tuple(
            MediaChild(
                id=str(child["id"]),
                media_type=_text(child.get("media_type")),
                media_url=_text(child.get("media_url")),
                thumbnail_url=_text(child.get("thumbnail_url")),
            )
            for child in children_data
            if isinstance(child, dict) and child.get("id")
        )
        return cls(
            id=str(media_id),
            taken_at=taken_at,
            media_type=_text(data.get("media_type")),
            media_product_type=_text(data.get("media_product_type")),
            caption=_text(data.get("caption")),
            permalink=_text(data.get("permalink")),
            media_url=_text(data.get("media_url")),
            thumbnail_url=_text(data.get("thumbnail_url")),
            children=children,
        )

    def content_hash(self) -> str:
        """A digest of what the gallery shows of this post.

        Signed CDN URLs change their query (``oh=``/``oe=``) on every fetch, so
        only their path counts: re-reading an unchanged post must not count as
        a change, or every run would rewrite every item.
        """
        content = {
            "id": self.id,
            "taken_at": format_utc(self.taken_at),
            "media_type": self.media_type,
            "media_product_type": self.media_product_type,
            "caption": self.caption,
            "permalink": self.permalink,
            "media_url": _url_path(self.media_url),
            "thumbnail_url": _url_path(self.thumbnail_url),
            "children": [
                [c.id, c.media_type, _url_path(c.media_url), _url_path(c.thumbnail_url)]
                for c in self.children
            ],
        }
        encoded = json.dumps(content, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(encoded).hexdigest()[:32]

    def with_mirrors(self, mirror: Mirror | None, children: tuple[MediaChild, ...]) -> Post:
        """Return a copy carrying mirrored images."""
        return replace(self, mirror=mirror, children=children)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return str(value)


def _url_path(url: str | None) -> str | None:
    if not url:
        return None
    # The CDN host varies by edge too (scontent-ams2-1, scontent-lax3-1, ...).
    return urlsplit(url).path
