"""The bundled sample data of the local mode.

Four charters and some days around them, chosen to show the cases a gallery
must get right: posts minutes before and after midnight Pacific (they belong
to different events), the spring-forward day (a 23-hour window), New Year's
Eve across the year boundary, carousels (one with a video whose ``media_url``
is withheld), reels with only a poster, captions with emoji, other scripts,
hostile HTML and Instagram's maximum length, a post without caption, and
guest uploads for two events (one with an operator-set title).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from local.fake_graph import FakeMedia
from local.images import ImageSpec
from shared.events import EventRecord

CHARTER_ZONE = ZoneInfo("America/Los_Angeles")

_LONG_CAPTION = (
    "What a day on the water. We slipped our lines at dawn, motored past Alcatraz while the "
    "fog was still burning off, and set sail outside the Golden Gate. The humpbacks found us "
    "before we found them: three blows on the horizon, then a tail, then a full breach close "
    "enough to hear. Thank you to every guest for the patience, the binoculars and the "
    "snacks. Notes for next time: bring layers, bring sunscreen, bring a second memory card. "
) * 5 + "#sailjada #whalewatching #farallones #sanfrancisco #sailing"
_HOSTILE_CAPTION = (
    "<script>alert(1)</script> \"quoted\" & 'single' "
    '<img src=x onerror="alert(2)"> {{ 7*7 }} javascript:alert(3)'
)


@dataclass(frozen=True)
class _PostSpec:
    local_time: str
    caption: str | None
    kind: str = "IMAGE"
    children: int = 0
    video_child: bool = False
    likes: int | None = None
    alt_text: str | None = None


_POSTS: tuple[_PostSpec, ...] = (
    # New Year's Eve: 23:59 PST is already 2026 in UTC.
    _PostSpec("2025-12-31 18:00", "New Year's Eve charter: canapés and city lights", "CAROUSEL", 3),
    _PostSpec("2025-12-31 21:30", "Fireworks warm-up 🎇", likes=87),
    _PostSpec("2025-12-31 23:59", "Happy New Year from the bay 🎆", likes=312),
    _PostSpec("2026-01-01 00:01", "2026! 🥳 First sail of the year starts now."),
    _PostSpec("2026-01-17 11:00", "Winter sail, crisp and clear ❄️", likes=45),
    _PostSpec("2026-01-17 14:30", "Alcatraz from the water"),
    _PostSpec("2026-02-14 17:10", "Valentine's sunset sail ❤️", likes=120),
    _PostSpec("2026-02-14 19:05", "Dinner for two on deck", "CAROUSEL", 2),
    # Spring forward: 01:59 PST is followed by 03:00 PDT.
    _PostSpec("2026-03-07 23:55", "The night before the early charter 🌙"),
    _PostSpec("2026-03-08 00:30", "Midnight departure"),
    _PostSpec("2026-03-08 01:59", "One minute before the clocks jump ⏰"),
    _PostSpec("2026-03-08 03:01", "...and it is 3 AM. Daylight saving time at sea."),
    _PostSpec("2026-03-08 17:40", "Golden hour under full sail", "CAROUSEL", 2),
    _PostSpec("2026-03-08 23:50", "Still out at ten to midnight 🌌"),
    # The first sample event (guest uploads, no title).
    _PostSpec("2026-04-29 10:05", "Boarding at Sausalito ⛵️ Welcome aboard! #sailjada", likes=64),
    _PostSpec("2026-04-29 12:40", "Lunch at anchor: three courses 🍽️", "CAROUSEL", 3),
    _PostSpec("2026-04-29 15:20", "Dolphins off the bow 🐬🐬 (sound on!)", "REEL"),
    _PostSpec("2026-04-29 19:45", "Sunset run", likes=210),
    _PostSpec("2026-04-29 23:58", "Last toast before midnight 🥂"),
    _PostSpec("2026-04-30 00:02", "Just after midnight: stars over the Golden Gate ✨"),
    _PostSpec("2026-04-30 09:00", None),
    # The second sample event (guest uploads and an operator-set title).
    _PostSpec("2026-05-16 06:50", _HOSTILE_CAPTION),
    _PostSpec(
        "2026-05-16 09:10",
        "Humpbacks! 🐋 Swipe for the breach →",
        "CAROUSEL",
        4,
        video_child=True,
        likes=540,
    ),
    _PostSpec("2026-05-16 11:30", "Breach in slow motion 🌊", "REEL", likes=1210),
    _PostSpec("2026-05-16 13:15", _LONG_CAPTION),
    _PostSpec("2026-05-16 16:45", "🐋🐋🐋 #whalewatching #farallones 🌊🌊"),
    _PostSpec("2026-05-16 18:30", "¡Qué día! 今日は最高 · يوم رائع · Καλή θάλασσα"),
    _PostSpec("2026-06-06 10:00", "Summer season opener ☀️"),
    _PostSpec(
        "2026-06-06 13:00",
        "Hoisting the main",
        alt_text="Two crew members raising the mainsail",
        likes=77,
    ),
)


@dataclass(frozen=True)
class SampleUpload:
    """One guest photo for an event's upload folder.

    Attributes
    ----------
    event_id
        The event folder (``<UPLOADS_PREFIX><event_id>/``).
    filename
        The object's file name, as a guest's phone would name it.
    taken_at
        When it was taken (stored as ``x-amz-meta-taken-at``).
    image
        The sample image's name in the library.
    """

    event_id: str
    filename: str
    taken_at: datetime
    image: str


_UPLOADS: tuple[tuple[str, str, str, tuple[int, int]], ...] = (
    ("2026-04-29", "IMG_0001.jpg", "2026-04-29 11:02", (1200, 1600)),
    ("2026-04-29", "IMG_0002.jpg", "2026-04-29 12:55", (1600, 1200)),
    ("2026-04-29", "IMG_0007.JPG", "2026-04-29 19:50", (1600, 1200)),
    ("2026-04-29", "IMG_0012.jpg", "2026-04-29 23:40", (1200, 1600)),
    ("2026-05-16-whale-watch", "DSC_1042.jpg", "2026-05-16 09:30", (1600, 1200)),
    ("2026-05-16-whale-watch", "family photo (1).jpg", "2026-05-16 14:05", (1200, 1600)),
    ("2026-05-16-whale-watch", "DSC_1077.jpg", "2026-05-16 18:45", (1600, 1200)),
)

_EVENTS = (EventRecord("2026-05-16-whale-watch", title="Whale watch off the Farallones"),)


@dataclass(frozen=True)
class SampleData:
    """Everything the local mode loads: posts, uploads, event records, images."""

    media: tuple[FakeMedia, ...]
    uploads: tuple[SampleUpload, ...]
    events: tuple[EventRecord, ...]
    images: tuple[ImageSpec, ...]

    @property
    def first_day(self) -> date:
        """The local date of the oldest sample post."""
        return min(item.timestamp for item in self.media).astimezone(CHARTER_ZONE).date()

    @property
    def last_day(self) -> date:
        """The local date of the newest sample post."""
        return max(item.timestamp for item in self.media).astimezone(CHARTER_ZONE).date()


def load_samples() -> SampleData:
    """Build the sample data set (deterministic: the same on every call).

    Returns
    -------
    SampleData
        29 posts over 10 local days, 7 guest uploads for two events, one
        event record, and the specs of every image they show.
    """
    media: list[FakeMedia] = []
    images: list[ImageSpec] = []
    for number, spec in enumerate(_POSTS, start=1):
        moment = _local(spec.local_time)
        post_id = f"1802774{number:010d}"
        label = f"@sailjada · {moment:%a %d %b %Y %H:%M %Z}"
        children: list[FakeMedia] = []
        for index in range(spec.children):
            child_id = f"1788099{number:04d}{index:06d}"
            video = spec.video_child and index == spec.children - 1
            images.append(ImageSpec(f"c{child_id}", 1080, 1080, _scene(moment), label))
            children.append(
                FakeMedia(
                    id=child_id,
                    timestamp=moment,
                    media_type="VIDEO" if video else "IMAGE",
                    media_product_type=None,
                    # Licensed audio withholds media_url on every video, children too.
                    media=None if video else f"c{child_id}",
                    thumbnail=f"c{child_id}" if video else None,
                )
            )
        reel = spec.kind == "REEL"
        if spec.kind == "IMAGE":
            images.append(ImageSpec(f"p{post_id}", 1080, 1350, _scene(moment), label))
        elif reel:
            images.append(ImageSpec(f"p{post_id}", 1080, 1920, _scene(moment), label))
        media.append(
            FakeMedia(
                id=post_id,
                timestamp=moment,
                media_type={"CAROUSEL": "CAROUSEL_ALBUM", "REEL": "VIDEO"}.get(spec.kind, "IMAGE"),
                media_product_type="REELS" if reel else "FEED",
                caption=spec.caption,
                media=f"p{post_id}" if spec.kind == "IMAGE" else None,
                thumbnail=f"p{post_id}" if reel else None,
                like_count=spec.likes,
                comments_count=number % 7,
                alt_text=spec.alt_text,
                children=tuple(children),
            )
        )
    uploads: list[SampleUpload] = []
    for number, (event_id, filename, local_time, (width, height)) in enumerate(_UPLOADS, start=1):
        moment = _local(local_time)
        name = f"u{number:03d}"
        label = f"Guest photo · {moment:%a %d %b %Y %H:%M %Z}"
        images.append(ImageSpec(name, width, height, _scene(moment), label))
        uploads.append(SampleUpload(event_id, filename, moment.astimezone(UTC), name))
    return SampleData(tuple(media), tuple(uploads), _EVENTS, tuple(images))


def _local(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=CHARTER_ZONE)


def _scene(moment: datetime) -> str:
    hour = moment.astimezone(CHARTER_ZONE).hour
    if hour < 6 or hour >= 21:
        return "night"
    if hour < 9:
        return "dawn"
    if hour < 17:
        return "day"
    return "sunset"
