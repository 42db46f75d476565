"""Gallery and error pages (Jinja2, autoescaped) and the gallery's JSON body.

Every text from Instagram or S3 (captions, keys) reaches the page through
Jinja2's autoescape, and every URL in the gallery has already passed
:func:`shared.gallery.public_url` or was made by the service itself.

The CSP nonce is derived from the page's own content: a hash of the page as
rendered with a fixed placeholder. Identical content thus gives identical
bytes, so a strong ETag stays meaningful and a CDN can cache the page (a
cached page shares one nonce among its readers whichever way it was made). An
attacker cannot precompute it: any markup they smuggle into a caption changes
the hash. The same digest is the page's ETag, so the page is hashed once.

A 500-photo page holds ~2,000 presigned URLs of ~1 KB each (the Lambda
session token rides in every one), so URLs are HTML-escaped once per time
bucket and remembered, not once per render.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from markupsafe import Markup, escape

from shared.gallery import INSTAGRAM, UPLOADS, Gallery, GalleryItem, Picture
from shared.windows import parse_event_id

if TYPE_CHECKING:
    import jinja2

TEMPLATES = Path(__file__).with_name("templates")
# Tiles up to this index load eagerly: the first row on a laptop (the grid
# fits six columns), two to three rows on a phone.
EAGER_TILES = 6
_ALT_LENGTH = 125
# Replaced by the content-derived nonce after rendering, at its first and
# last occurrence only: the templates put the nonced <style> before and the
# nonced <script> after all guest content, so a caption that happens to hold
# this text stays as it was.
_NONCE_PLACEHOLDER = "csp-nonce-placeholder"
_ESCAPED_LIMIT = 50_000
_escaped: dict[str, Markup] = {}
_NOTICES = {
    INSTAGRAM: "The yacht's Instagram posts can't be loaded right now; "
    "showing guests' photos only. Please try again in a few minutes.",
    UPLOADS: "Guests' photos can't be loaded right now; "
    "showing the yacht's Instagram posts only. Please try again in a few minutes.",
}


@dataclass(frozen=True)
class RenderedPage:
    """An HTML page, the CSP nonce of its inline ``<style>``/``<script>`` and its ETag."""

    html: str
    nonce: str
    etag: str


@dataclass(slots=True)
class _Slide:
    href: str
    alt: str
    full_width: int | None
    full_height: int | None


@dataclass(slots=True)
class _Tile:
    src: str | None
    href: str | None
    slide: bool
    alt: str
    srcset: str | None = None
    width: int | None = None
    height: int | None = None
    full_width: int | None = None
    full_height: int | None = None
    lazy: bool = False
    badge: str | None = None
    caption: str | None = None
    permalink: str | None = None
    more: tuple[_Slide, ...] = ()


def render_gallery_json(gallery: Gallery) -> str:
    """The JSON body of a gallery: exactly the design brief's shape."""
    return json.dumps(gallery.to_json(), ensure_ascii=False, separators=(",", ":"))


def render_gallery_html(gallery: Gallery) -> RenderedPage:
    """The gallery page.

    Parameters
    ----------
    gallery
        The gallery to show.

    Returns
    -------
    RenderedPage
        The HTML and the nonce that the page's CSP must allow.
    """
    window = gallery.window
    zone = ZoneInfo(window.timezone)
    event = parse_event_id(window.event_id)
    day = f"{event.day:%A} {event.day.day} {event.day:%B %Y}"
    heading = window.title or (
        f"Charter of {day}" + (f" · {event.slug.replace('-', ' ')}" if event.slug else "")
    )
    if window.overridden:
        when: str | None = f"{_local(window.start, zone)} to {_local(window.end, zone)}"
    else:
        when = day if window.title else None
    count = len(gallery.items)
    synced = (
        {"iso": gallery.synced_at.isoformat(), "text": _local(gallery.synced_at, zone)}
        if gallery.synced_at
        else None
    )
    return _finish(
        "gallery.html",
        gallery=True,
        heading=heading,
        when=when,
        count=f"{count} photo" if count == 1 else f"{count} photos",
        synced=synced,
        notices=[_NOTICES[source] for source in gallery.degraded],
        tiles=[_tile(index, item, zone) for index, item in enumerate(gallery.items)],
    )


def render_error_html(heading: str, message: str) -> RenderedPage:
    """A small error page (400, 404, 405, 500, 503) without any script."""
    return _finish("error.html", gallery=False, heading=heading, message=message)


def _tile(index: int, item: GalleryItem, zone: ZoneInfo) -> _Tile:
    alt = _alt(item, zone)
    picture = item.picture
    caption = item.caption.strip() if item.caption else None
    if picture is None:
        return _Tile(None, None, False, alt, caption=caption, permalink=item.permalink)
    links_out = item.is_reel and item.permalink is not None
    slides = [
        (child.picture, f"{alt} ({number} of {len(item.children)})")
        for number, child in enumerate(item.children, start=1)
        if child.picture is not None
    ]
    first = slides[0][0] if slides and not links_out else picture
    badge = "▶ Reel" if item.is_reel else (f"{len(item.children)} photos" if slides else None)
    return _Tile(
        src=_attribute(picture.src),
        href=item.permalink if links_out else _attribute(first.full),
        slide=not links_out,
        alt=alt,
        srcset=_attribute(", ".join(f"{url} {w}w" for url, w in picture.srcset))
        if picture.srcset
        else None,
        width=picture.width,
        height=picture.height,
        full_width=first.full_width,
        full_height=first.full_height,
        lazy=index >= EAGER_TILES,
        badge=badge,
        caption=caption,
        permalink=item.permalink,
        more=() if links_out else tuple(_slide(p, text) for p, text in slides[1:]),
    )


def _slide(picture: Picture, alt: str) -> _Slide:
    return _Slide(_attribute(picture.full), alt, picture.full_width, picture.full_height)


def _alt(item: GalleryItem, zone: ZoneInfo) -> str:
    if item.caption and item.caption.strip():
        text = " ".join(item.caption.split())
        return text if len(text) <= _ALT_LENGTH else text[: _ALT_LENGTH - 1].rstrip() + "…"
    kind = "Guest photo" if item.source == "upload" else "Instagram post by @sailjada"
    return f"{kind}, {_local(item.taken_at, zone)}"


def _local(moment: datetime, zone: ZoneInfo) -> str:
    local = moment.astimezone(zone)
    return f"{local.day} {local:%b %Y, %H:%M %Z}"


def _finish(template: str, **context: Any) -> RenderedPage:
    """Render with the placeholder, derive nonce and ETag, put the nonce in."""
    chunks = list(_template(template).generate(nonce=_NONCE_PLACEHOLDER, **context))
    # Jinja yields each ``{{ nonce }}`` as a chunk of its own: the first and
    # the last such chunk are the <style> and <script> attributes.
    first = chunks.index(_NONCE_PLACEHOLDER)
    last = len(chunks) - 1 - chunks[::-1].index(_NONCE_PLACEHOLDER)
    digest = hashlib.sha256("".join(chunks).encode()).digest()
    nonce = base64.urlsafe_b64encode(digest[:18]).decode()
    chunks[first] = chunks[last] = nonce
    # The final bytes are a function of the placeholder version, so its
    # digest is a strong validator of them too.
    return RenderedPage("".join(chunks), nonce, '"' + digest.hex()[:40] + '"')


def _attribute(url: str) -> Markup:
    """``url`` escaped for an attribute, remembered (see the module docstring)."""
    escaped = _escaped.get(url)
    if escaped is None:
        if len(_escaped) >= _ESCAPED_LIMIT:
            _escaped.clear()
        escaped = _escaped[url] = escape(url)
    return escaped


def _template(name: str) -> jinja2.Template:
    return _environment().get_template(name)


@functools.cache
def _environment() -> jinja2.Environment:
    # Imported on the first render, not at cold start: JSON requests and
    # answers from the page cache never need it.
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
        undefined=jinja2.StrictUndefined,
    )


def as_json_error(message: str, **extra: Any) -> str:
    """A JSON error body: ``{"error": message, ...}``."""
    return json.dumps({"error": message, **extra}, separators=(",", ":"))
