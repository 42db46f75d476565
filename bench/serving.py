"""Serve: AWS calls per request, handler time without AWS round trips, page bytes.

The real ``serve.app.handler`` answers API Gateway payload 2.0 events built by
the local mode's adapter (:func:`local.http_adapter.build_event`), against
moto in-process. A "new container" is what a Lambda cold start gives: the
settings are re-read, so the handler wires a new service with empty caches.
"""

from __future__ import annotations

import gc
import gzip
import json
import math
import statistics
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bench import sampler
from bench.aws_meter import AwsMeter, metered, replayable
from bench.dataset import jpeg, stored_posts, upload_metadata, uploads
from bench.env import BUCKET, context, fresh_handler, moto_backend, quiet_stdout
from bench.report import TIMES, Figure, Goal, Section
from bench.sampler import Profile
from local.http_adapter import Route, build_event
from local.stack import SERVE_ROUTES
from shared import aws
from shared.config import Settings
from shared.events import EventRecord
from shared.repository import DynamoMediaRepository
from shared.state import IngestState

ZONE = ZoneInfo("America/Los_Angeles")
TIME_GOAL_ITEMS = 500
_ROUTES = tuple(Route(key) for key in SERVE_ROUTES)
_HEADERS = (
    ("host", "gallery.example.com"),
    ("accept", "text/html"),
    ("accept-encoding", "gzip, br"),
    ("user-agent", "bench"),
)


@dataclass(frozen=True)
class Seeded:
    """An event in the table and bucket with a known number of items."""

    event_id: str
    posts: int
    uploads: int

    @property
    def items(self) -> int:
        """Instagram posts plus guest uploads."""
        return self.posts + self.uploads


def _local_day(day: date) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=ZONE)
    return start.astimezone(UTC), (start + timedelta(days=1)).astimezone(UTC)


def seed_event(settings: Settings, day: date, items: int, *, upload_body: bytes) -> Seeded:
    """Store half the items as mirrored Instagram posts and half as guest uploads."""
    event_id = f"{day.isoformat()}-bench"
    start, end = _local_day(day)
    posts = stored_posts(items // 2, start, end, seed=day.toordinal())
    DynamoMediaRepository(settings).save_posts(posts, datetime.now(UTC))
    s3 = aws.s3_client()
    photos = uploads(items - items // 2, event_id, start, end, seed=day.toordinal())
    for upload in photos:
        s3.put_object(
            Bucket=BUCKET,
            Key=upload.key,
            Body=upload_body,
            ContentType="image/jpeg",
            Metadata=upload_metadata(upload),
        )
    return Seeded(event_id, len(posts), len(photos))


def seed_meta(settings: Settings) -> None:
    """The ``META`` partition of a season in use: ingest state and event records."""
    repository = DynamoMediaRepository(settings)
    now = datetime.now(UTC).replace(microsecond=0)
    repository.save_state(IngestState(high_water_mark=now, last_run_at=now, last_success_at=now))
    for index in range(30):
        day = date(2026, 5, 1) + timedelta(days=index * 3)
        repository.put_event(EventRecord(f"{day.isoformat()}-charter", title=f"Charter {index}"))


def request(event_id: str, *, as_json: bool = False, etag: str | None = None) -> dict[str, Any]:
    """The payload 2.0 event API Gateway sends for ``GET /g/<event_id>``."""
    headers = list(_HEADERS)
    if etag:
        headers.append(("if-none-match", etag))
    target = f"/g/{event_id}" + ("?format=json" if as_json else "")
    event = build_event("GET", target, headers, b"", routes=_ROUTES)
    assert event is not None, "the serve route must match /g/<event_id>"
    return event


@contextmanager
def gallery_ttls(gallery: float | None = None, meta: float | None = None) -> Iterator[None]:
    """Shorten the serve container's cache lifetimes (``None`` keeps the product's).

    A TTL of 0 makes every request a gallery-cache miss in a warm container,
    which is what a request arriving after the TTL finds.
    """
    import shared.gallery

    saved = (shared.gallery.GALLERY_TTL, shared.gallery.DEGRADED_TTL, shared.gallery.META_TTL)
    if gallery is not None:
        shared.gallery.GALLERY_TTL = shared.gallery.DEGRADED_TTL = gallery
    if meta is not None:
        shared.gallery.META_TTL = meta
    try:
        yield
    finally:
        shared.gallery.GALLERY_TTL, shared.gallery.DEGRADED_TTL, shared.gallery.META_TTL = saved


def _new_container() -> Any:
    """The serve handler as a fresh Lambda container sees it (empty caches)."""
    return fresh_handler("serve.app")


def _invoke(handler: Any, event: dict[str, Any]) -> dict[str, Any]:
    with quiet_stdout():
        response: dict[str, Any] = handler(event, context("serve"))
    return response


def _calls(meter: AwsMeter) -> str:
    counts = meter.operations()
    return ", ".join(f"{name} {TIMES}{count}" for name, count in sorted(counts.items())) or "none"


def _check(response: dict[str, Any], status: int = 200) -> dict[str, Any]:
    if response["statusCode"] != status:
        raise RuntimeError(f"serve answered {response['statusCode']}, expected {status}")
    return response


def _count_calls(section: Section, seeded: Seeded) -> None:
    event = request(seeded.event_id)
    handler = _new_container()
    with metered() as cold:
        first = _check(_invoke(handler, event))
    with metered() as repeat:
        _check(_invoke(handler, event))
    etag = {name.lower(): value for name, value in first["headers"].items()}.get("etag")
    with metered() as revalidate:
        _check(_invoke(handler, request(seeded.event_id, etag=etag)), 304)
    with gallery_ttls(gallery=0):
        handler = _new_container()
        _invoke(handler, event)
        with metered() as meta_fresh:
            _check(_invoke(handler, event))
    with gallery_ttls(gallery=0, meta=0):
        handler = _new_container()
        _invoke(handler, event)
        with metered() as expired:
            _check(_invoke(handler, event))
    items = f"{seeded.items} items ({seeded.uploads} uploads)"
    section.add(
        Figure(
            "AWS calls, uncached request, new container",
            cold.count(),
            "",
            Goal("<=", 2),
            detail=f"{items}: {_calls(cold)}",
        )
    )
    section.add(
        Figure(
            "AWS calls, uncached request, warm container, META cached",
            meta_fresh.count(),
            "",
            Goal("<=", 2),
            detail=f"gallery cache expired, ingest state/event records still cached "
            f"(< {_product_ttl('META_TTL'):.0f} s old): {_calls(meta_fresh)}",
        )
    )
    section.add(
        Figure(
            "AWS calls, uncached request, warm container, all caches expired",
            expired.count(),
            "",
            Goal("<=", 2),
            detail=f"a request more than {_product_ttl('META_TTL'):.0f} s after the last one "
            f"(low traffic behind a CDN): {_calls(expired)}",
        )
    )
    section.add(
        Figure(
            "AWS calls, warm repeat",
            repeat.count(),
            "",
            Goal("==", 0),
            detail=f"same request within {_product_ttl('GALLERY_TTL'):.0f} s; "
            f"with If-None-Match it is a 304 with {revalidate.count()} calls",
        )
    )


def _product_ttl(name: str) -> float:
    import shared.gallery

    value: float = getattr(shared.gallery, name)
    return value


@dataclass(frozen=True)
class Timing:
    """Handler times of one gallery size, AWS round trips replayed."""

    items: int
    samples: tuple[float, ...]
    cpu_seconds: float
    calls_per_request: float
    profile: Profile | None

    def percentile(self, fraction: float) -> float:
        """The ``fraction`` quantile in milliseconds (nearest rank)."""
        ordered = sorted(self.samples)
        index = min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))
        return ordered[index] * 1000

    def describe(self) -> str:
        """Spread, CPU time and AWS calls of the timed requests."""
        return (
            f"{len(self.samples)} requests; min {min(self.samples) * 1000:.1f} ms, "
            f"mean {statistics.fmean(self.samples) * 1000:.1f} ms; process CPU time "
            f"{self.cpu_seconds / len(self.samples) * 1000:.1f} ms per request (all threads, "
            f"less sensitive to the machine's load than wall time); AWS calls replayed per "
            f"request: {self.calls_per_request:g}"
        )


def time_handler(seeded: Seeded, repeats: int, *, with_profile: bool = False) -> Timing:
    """Time uncached requests in a warm container with AWS answers replayed.

    The first request (a new container) runs against moto and records every
    HTTP answer; later requests get those bytes back at botocore's
    ``before-send`` hook, so they pay botocore's signing and parsing and
    PynamoDB's deserialization but no network and no service time. The
    gallery cache TTL is 0, so each timed request rebuilds and re-renders.
    """
    event = request(seeded.event_id)
    with gallery_ttls(gallery=0), replayable() as replay:
        handler = _new_container()
        listed = _invoke(handler, request(seeded.event_id, as_json=True))
        shown = len(json.loads(_check(listed)["body"])["items"])
        if shown != seeded.items:
            raise RuntimeError(f"gallery shows {shown} of {seeded.items} items")
        _check(_invoke(handler, event))
        replay.replaying = True
        for _ in range(3):
            _check(_invoke(handler, event))
        samples = []
        gc.collect()
        cpu_started = time.process_time()
        with metered() as meter:
            for _ in range(repeats):
                started = time.perf_counter()
                _check(_invoke(handler, event))
                samples.append(time.perf_counter() - started)
        cpu = time.process_time() - cpu_started
        profile = None
        if with_profile:
            profile = sampler.profile(lambda: [_invoke(handler, event) for _ in range(repeats)])
    return Timing(seeded.items, tuple(samples), cpu, meter.count() / repeats, profile)


def run(
    section: Section,
    *,
    sizes: Sequence[int],
    repeats: int,
    calls_items: int = 500,
    html_items: int = 200,
) -> None:
    """Seed galleries of each size, then count calls, time the handler and weigh the page."""
    section.method += [
        "Data: for N items, N/2 Instagram posts as ingest and the media archive store them "
        "(mirrored renditions, 15 % carousels of 2-6, 15 % reels, captions with emoji) and "
        "N/2 guest uploads with `x-amz-meta-taken-at`, all inside one charter's local day; "
        "the META partition holds the ingest state and 30 event records.",
        "Requests are API Gateway payload 2.0 events from the local mode's "
        "`build_event`, answered by `serve.app.handler`; AWS is moto in-process.",
        "AWS calls are counted below boto3 and PynamoDB by wrapping botocore's "
        "`BaseClient._make_api_call` (the technique of `tests/conftest.py`). A new "
        "container = settings re-read, so the handler wires a new service with empty caches; "
        "a warm-container cache miss is made by setting `shared.gallery.GALLERY_TTL` (and "
        "for the last case `META_TTL`) to 0 for the measurement.",
        "Handler time: uncached requests (gallery TTL 0) in a warm container, AWS round "
        "trips excluded by replay: the first request runs against moto and its HTTP answers "
        "are recorded at botocore's `before-send` hook (where moto itself answers); timed "
        "requests get the recorded bytes back instantly, so botocore still signs and parses "
        "and PynamoDB still deserializes, and only network and service time drop out. "
        f"{repeats} timed requests per size after 3 warm-ups; p50/p95 by nearest rank. "
        "Logs and EMF metrics are written as on Lambda (stdout sent to /dev/null).",
        f"Where the time goes at {TIME_GOAL_ITEMS} items: `bench/sampler.py` samples every "
        "thread's stack each millisecond during another round of the same requests.",
        "This machine is faster per core than Lambda: at the serve function's 1,024 MB "
        "Lambda gives about 0.6 vCPU, so expect roughly 1.5-2x these handler times there.",
        f"Page bytes: the HTML body for a {html_items}-item gallery, raw and gzip level 6 "
        "(what a CDN's on-the-fly compression does).",
    ]
    upload_body = jpeg(64, 80, 1)
    with moto_backend() as settings:
        seed_meta(settings)
        days = {size: date(2026, 4, 1) + timedelta(days=index) for index, size in enumerate(sizes)}
        seeded = {
            size: seed_event(settings, day, size, upload_body=upload_body)
            for size, day in days.items()
        }

        def event_of(items: int, day: date) -> Seeded:
            return seeded.get(items) or seed_event(settings, day, items, upload_body=upload_body)

        _count_calls(section, event_of(calls_items, date(2026, 3, 1)))
        for size in sizes:
            timing = time_handler(
                seeded[size],
                repeats if size <= TIME_GOAL_ITEMS else max(5, repeats // 2),
                with_profile=size == TIME_GOAL_ITEMS,
            )
            goal = Goal("<=", 10) if size == TIME_GOAL_ITEMS else None
            detail = timing.describe()
            if timing.profile is not None:
                detail += "; " + timing.profile.describe()
            section.add(
                Figure(
                    f"Handler time p50, {size:,} items",
                    round(timing.percentile(0.5), 2),
                    "ms",
                    goal,
                    detail,
                )
            )
            section.add(
                Figure(f"Handler time p95, {size:,} items", round(timing.percentile(0.95), 2), "ms")
            )
        _weigh_page(section, event_of(html_items, date(2026, 3, 2)))


def _weigh_page(section: Section, seeded: Seeded) -> None:
    body = _check(_invoke(_new_container(), request(seeded.event_id)))["body"].encode()
    as_json = _check(_invoke(_new_container(), request(seeded.event_id, as_json=True)))
    section.add(
        Figure(
            f"HTML bytes, {seeded.items} items (raw)",
            len(body),
            "bytes",
            detail=f"{len(body) / seeded.items:,.0f} bytes per item; the JSON body is "
            f"{len(as_json['body'].encode()):,} bytes",
        )
    )
    section.add(
        Figure(f"HTML bytes, {seeded.items} items (gzip -6)", len(gzip.compress(body, 6)), "bytes")
    )
