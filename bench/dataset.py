"""Synthetic but realistic data: posts as stored, Graph API media objects, uploads, JPEGs.

Everything is deterministic (seeded), so two runs measure the same data. The
mix follows the account's real shape: mostly single images, some carousels
(2-6 children), some reels (a third of them without ``media_url``, as when
Instagram withholds it for licensed audio), captions of varied length with
emoji and hashtags, and a few posts without a caption.
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

from PIL import Image, ImageDraw, ImageFilter

from local.fake_graph import FakeMedia
from shared.media import MediaChild, Mirror, Post, Rendition
from shared.thumbnails import RENDITION_WIDTHS
from shared.timestamps import format_utc

CDN = "https://scontent-lax3-1.cdninstagram.com"
_WORD_TEXT = (
    "sunset sail jada bay anchor swim dolphins lunch crew champagne breeze golden hour "
    "harbor island cove paddle snorkel laughter friends birthday toast spinnaker wake "
    "calm glassy water whales sea lions picnic captain galley music dance stars"
)
_WORDS = tuple(_WORD_TEXT.split())
_EMOJI = ("⛵", "🌅", "🐬", "🥂", "☀️", "🌊", "❤️", "🎉")


@dataclass(frozen=True)
class Upload:
    """One guest upload: its key under the uploads prefix and when it was taken."""

    key: str
    taken_at: datetime


def media_id(index: int) -> str:
    """A 17-digit Instagram-style media id."""
    return str(17_900_000_000_000_000 + index)


def caption(rng: random.Random) -> str | None:
    """A caption of 0-6 sentences, sometimes with emoji and hashtags."""
    if rng.random() < 0.1:
        return None
    words = [rng.choice(_WORDS) for _ in range(rng.randint(4, 45))]
    text = " ".join(words).capitalize() + "."
    if rng.random() < 0.5:
        text += " " + "".join(rng.sample(_EMOJI, rng.randint(1, 3)))
    if rng.random() < 0.4:
        text += " " + " ".join(f"#{rng.choice(_WORDS)}" for _ in range(rng.randint(1, 5)))
    return text


def _cdn_url(path: str, rng: random.Random) -> str:
    # Signed CDN URLs: the signature and expiry change on every fetch.
    return (
        f"{CDN}/v/t51.82787-15/{path}?_nc_cat=1&ccb=1-7&oh=00_Af{rng.getrandbits(40):x}&oe=6A2F427E"
    )


def mirror_of(item_id: str) -> Mirror:
    """The renditions the media archive records for one 1080 x 1350 image."""
    original = Rendition(f"instagram/{item_id}/original.jpg", 1080, 1350, 210_000)
    thumbnails = tuple(
        Rendition(
            f"instagram/{item_id}/w{width}.webp",
            width,
            width * 1350 // 1080,
            width * 45,
            "image/webp",
        )
        for width in RENDITION_WIDTHS
    )
    return Mirror(original=original, thumbnails=thumbnails)


@dataclass(frozen=True)
class _Spec:
    """One post of the synthetic account, before it is shaped for a consumer."""

    id: str
    taken_at: datetime
    media_type: str
    product_type: str
    caption: str | None
    withheld: bool = False
    children: tuple[tuple[str, str], ...] = ()


def _specs(count: int, start: datetime, end: datetime, seed: int) -> list[_Spec]:
    """``count`` posts spread over ``[start, end)``, newest first."""
    rng = random.Random(seed)  # noqa: S311 - synthetic data, seeded to repeat
    span = (end - start).total_seconds()
    moments = sorted((rng.uniform(0, span) for _ in range(count)), reverse=True)
    specs = []
    for index, offset in enumerate(moments):
        item_id = media_id(index)
        taken_at = start + timedelta(seconds=int(offset))
        roll = rng.random()
        text = caption(rng)
        if roll < 0.70:
            specs.append(_Spec(item_id, taken_at, "IMAGE", "FEED", text))
        elif roll < 0.85:
            children = tuple(
                (f"{item_id}{n:02d}", "IMAGE" if rng.random() < 0.85 else "VIDEO")
                for n in range(rng.randint(2, 6))
            )
            specs.append(
                _Spec(item_id, taken_at, "CAROUSEL_ALBUM", "FEED", text, children=children)
            )
        else:
            withheld = rng.random() < 1 / 3
            specs.append(_Spec(item_id, taken_at, "VIDEO", "REELS", text, withheld=withheld))
    return specs


def fake_account(count: int, start: datetime, end: datetime, *, seed: int = 7) -> list[FakeMedia]:
    """The synthetic account as the local fake Graph API serves it."""
    return [
        FakeMedia(
            id=spec.id,
            timestamp=spec.taken_at,
            media_type=spec.media_type,
            media_product_type=spec.product_type,
            caption=spec.caption,
            media=None if spec.withheld else spec.id,
            thumbnail=spec.id if spec.media_type == "VIDEO" else None,
            children=tuple(
                FakeMedia(
                    id=child_id,
                    timestamp=spec.taken_at,
                    media_type=child_type,
                    media_product_type=None,
                    media=child_id,
                    thumbnail=child_id if child_type == "VIDEO" else None,
                )
                for child_id, child_type in spec.children
            ),
        )
        for spec in _specs(count, start, end, seed)
    ]


def stored_posts(
    count: int,
    start: datetime,
    end: datetime,
    *,
    seed: int = 11,
    mirror: Callable[[str], Mirror] = mirror_of,
) -> list[Post]:
    """Posts as ingest and the media archive store them: parsed and mirrored.

    ``mirror`` gives the renditions of one image id (default: keys and sizes
    as the archive would record them, with no object behind them).
    """
    rng = random.Random(seed)  # noqa: S311 - synthetic data, seeded to repeat
    posts = []
    for spec in _specs(count, start, end, seed):
        video = spec.media_type == "VIDEO"
        media_url = (
            None if spec.withheld else _cdn_url(f"{spec.id}_n.{'mp4' if video else 'jpg'}", rng)
        )
        children = tuple(
            MediaChild(
                id=child_id,
                media_type=child_type,
                media_url=_cdn_url(f"{child_id}_n.jpg", rng),
                thumbnail_url=_cdn_url(f"{child_id}_t.jpg", rng) if child_type == "VIDEO" else None,
                mirror=mirror(child_id),
            )
            for child_id, child_type in spec.children
        )
        posts.append(
            Post(
                id=spec.id,
                taken_at=spec.taken_at,
                media_type=spec.media_type,
                media_product_type=spec.product_type,
                caption=spec.caption,
                permalink=f"https://www.instagram.com/p/C{spec.id[-9:]}/",
                media_url=media_url,
                thumbnail_url=_cdn_url(f"{spec.id}_t.jpg", rng) if video else None,
                children=children,
                mirror=mirror(spec.id),
            )
        )
    return posts


def uploads(
    count: int, event_id: str, start: datetime, end: datetime, *, seed: int = 13
) -> list[Upload]:
    """Guest uploads of one event, with ``taken_at`` inside its window."""
    rng = random.Random(seed)  # noqa: S311 - synthetic data, seeded to repeat
    span = (end - start).total_seconds()
    return [
        Upload(
            key=f"uploads/{event_id}/IMG_{index:04d}.jpg",
            taken_at=start + timedelta(seconds=int(rng.uniform(0, span))),
        )
        for index in range(count)
    ]


def upload_metadata(upload: Upload) -> dict[str, str]:
    """The S3 user metadata a guest upload carries (``x-amz-meta-taken-at``)."""
    return {"taken-at": format_utc(upload.taken_at)}


def jpeg(width: int, height: int, variant: int, *, quality: int = 82) -> bytes:
    """A photo-like JPEG (sky, sea, sun, a sail, grain) of the given size.

    The grain gives it the byte size of a real photo: about 20 KB at 320 x 400
    and 210 KB at 1080 x 1350, quality 82.
    """
    return _jpeg(width, height, variant % 12, quality)


@cache
def _jpeg(width: int, height: int, variant: int, quality: int) -> bytes:
    rng = random.Random(variant)  # noqa: S311 - synthetic image, seeded to repeat
    image = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(image)
    horizon = int(height * rng.uniform(0.35, 0.6))
    sky = (rng.randint(120, 255), rng.randint(90, 200), rng.randint(60, 220))
    sea = (rng.randint(0, 60), rng.randint(60, 140), rng.randint(110, 200))
    for y in range(height):
        top, colour = (y / max(horizon, 1), sky) if y < horizon else ((y - horizon) / height, sea)
        shade = tuple(max(0, min(255, int(c * (1 - 0.4 * top)))) for c in colour)
        draw.line([(0, y), (width, y)], fill=shade)
    sun = rng.randint(width // 6, width // 3)
    cx, cy = rng.randint(0, width), horizon - rng.randint(0, horizon // 2)
    draw.ellipse([cx - sun // 2, cy - sun // 2, cx + sun // 2, cy + sun // 2], fill=(255, 220, 150))
    mast = rng.randint(width // 4, 3 * width // 4)
    draw.polygon(
        [(mast, horizon - height // 3), (mast, horizon), (mast + width // 6, horizon)],
        fill=(245, 245, 240),
    )
    image = image.filter(ImageFilter.GaussianBlur(2))
    grain = Image.effect_noise((width, height), 40).convert("RGB")
    image = Image.blend(image, grain, 0.15)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality, optimize=True)
    return buffer.getvalue()
