"""Ingest: Graph calls and DynamoDB writes per run, backfill throughput, naive baseline.

The ingest handler runs as on Lambda (``ingest.app.handler``) against the
local fake Graph API (:mod:`local.fake_graph`, real HTTP on 127.0.0.1) and
moto in-process for DynamoDB. Graph calls are counted by the fake server
(requests it answered), DynamoDB writes by the botocore meter (items put in
the ``MEDIA`` partition, so the one ingest-state item is counted apart).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import requests

from bench import sampler
from bench.aws_meter import metered
from bench.dataset import fake_account, jpeg
from bench.env import (
    BENCH_TOKEN,
    configure,
    context,
    fast_moto_transactions,
    fresh_handler,
    moto_backend,
    quiet_stdout,
)
from bench.naive_graph import NaiveGraphClient
from bench.report import TIMES, Figure, Goal, Section
from bench.sampler import Profile
from local import fake_graph
from local.fake_graph import FakeGraphServer
from shared.ingestion import IngestService
from shared.models import MEDIA_PARTITION, META_PARTITION
from shared.repository import DynamoMediaRepository
from shared.state import IngestState

# Five years of posts: a page of 100 spans weeks, as on the real account, so
# an idle run's first page is older than the 3-day overlap.
SINCE = datetime(2021, 12, 1, tzinfo=UTC)
UNTIL = datetime(2026, 12, 1, tzinfo=UTC)
BACKFILL = {"backfill": {"since": "2021-12-01", "until": "2026-12-01"}}
DRY_RUN = {"backfill": {**BACKFILL["backfill"], "dry_run": True}}
# IngestFunction's Timeout in template.yaml.
INGEST_TIMEOUT_SECONDS = 900


@dataclass(frozen=True)
class RunFigures:
    """What one ingest run cost."""

    summary: dict[str, Any]
    graph_calls: int
    page_limit: str | None
    media_written: int
    state_written: int
    dynamodb_calls: int
    aws_calls: int
    seconds: float
    aws_seconds: float
    graph_seconds: float
    dynamodb_clients: int
    s3_puts: int
    profile: Profile | None = None
    cdn_downloads: int = 0

    @property
    def posts_per_second(self) -> float:
        """Posts seen per second of wall time."""
        return float(self.summary.get("seen", 0)) / self.seconds

    def breakdown(self) -> str:
        """Where the run's time went."""
        rest = self.seconds - self.aws_seconds - self.graph_seconds
        return (
            f"{self.seconds:.1f} s wall: {self.graph_seconds:.1f} s waiting for the fake Graph "
            f"API, {self.aws_seconds:.1f} s inside {self.aws_calls} AWS calls (moto "
            f"in-process), {rest:.1f} s in ingest code; botocore DynamoDB clients "
            f"created: {self.dynamodb_clients}"
            + (f"; {self.profile.describe()}" if self.profile else "")
        )


@contextmanager
def _timed_http() -> Iterator[list[float]]:
    """Sum the wall time of every HTTP request sent through requests."""
    spent: list[float] = []
    original = requests.Session.send

    def send(session: requests.Session, request: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(session, request, **kwargs)
        finally:
            spent.append(time.perf_counter() - started)

    session_class: Any = requests.Session
    session_class.send = send
    try:
        yield spent
    finally:
        session_class.send = original


def _measure(
    run: Callable[[], dict[str, Any]], graph: FakeGraphServer, *, sample: bool = False
) -> RunFigures:
    graph.clear_requests()
    summaries: list[dict[str, Any]] = []
    with metered() as meter, _timed_http() as http, quiet_stdout():
        started = time.perf_counter()
        if sample:
            profile: Profile | None = sampler.profile(
                lambda: summaries.append(run()), interval=0.005
            )
        else:
            profile = None
            summaries.append(run())
        seconds = time.perf_counter() - started
    summary = summaries[0]
    media_calls = [
        request
        for request in graph.requests
        if request.target == "graph" and request.path.endswith("/media")
    ]
    return RunFigures(
        summary=summary,
        graph_calls=graph.graph_calls,
        page_limit=media_calls[0].query.get("limit") if media_calls else None,
        media_written=meter.items_written(MEDIA_PARTITION),
        state_written=meter.items_written(META_PARTITION),
        dynamodb_calls=sum(1 for call in meter.calls if call.service == "dynamodb"),
        aws_calls=meter.count(),
        seconds=seconds,
        aws_seconds=meter.seconds(),
        graph_seconds=sum(http),
        dynamodb_clients=meter.clients_created["dynamodb"],
        s3_puts=meter.operations()["s3:PutObject"],
        profile=profile,
    )


@contextmanager
def _fast_loopback() -> Iterator[None]:
    """Turn on TCP_NODELAY in the fake Graph server for the block.

    The fake answers headers and body in two writes; with Nagle's algorithm on,
    each small answer then waits ~40 ms for the client's delayed ACK, which
    would make the fake, not ingest, the figure. ``disable_nagle_algorithm`` is
    socketserver's standard switch; the previous value is restored after.
    """
    handler_class: Any = fake_graph._GraphHandler
    previous = handler_class.disable_nagle_algorithm
    handler_class.disable_nagle_algorithm = True
    try:
        yield
    finally:
        handler_class.disable_nagle_algorithm = previous


def _instagram_jpeg(name: str) -> bytes:
    # What Instagram's CDN serves for a feed image: a 1080 x 1350 JPEG (~210 KB).
    return jpeg(1080, 1350, int(name) % 12 if name.isdigit() else 0)


def mirrored_backfill(posts: int) -> RunFigures:
    """A backfill of ``posts`` with the media archive mirroring every image.

    The fake CDN on 127.0.0.1 (listed exactly in ``MEDIA_HOSTS``) serves a
    photo-like JPEG per image; the archive downloads it, makes its
    renditions and stores them in S3 (moto in-process).
    """
    media = fake_account(posts, SINCE, UNTIL, seed=17)
    with FakeGraphServer(media, tokens=(BENCH_TOKEN,), images=_instagram_jpeg) as graph:
        configure({"GRAPH_API_URL": graph.graph_url, "MEDIA_HOSTS": "127.0.0.1"})
        with moto_backend():
            handler = fresh_handler("ingest.app")
            figures = _measure(lambda: handler(BACKFILL, context("ingest")), graph, sample=True)
            return replace(figures, cdn_downloads=graph.cdn_calls)


def run(section: Section, *, posts: int, mirror_posts: int = 0) -> None:
    """Measure idle, backfill and re-run costs, throughput and the naive baseline."""
    section.method += [
        f"A synthetic account of {posts:,} posts over five years (70 % images, 15 % carousels "
        "of 2-6 children, 15 % reels, a third of them without `media_url`) is served by "
        "`local/fake_graph.py` on 127.0.0.1 (real HTTP, real JSON, `paging.next` URLs).",
        "Runs go through `ingest.app.handler` as on Lambda, DynamoDB by moto in-process. "
        "Graph calls are the requests the fake server answered; DynamoDB writes are items "
        "put in the `MEDIA` partition, counted below PynamoDB by wrapping botocore's "
        "`BaseClient._make_api_call` (the ingest-state item in `META` is counted apart).",
        f"Order: backfill of all {posts:,} posts into an empty table, the same backfill "
        "again, then the idle scheduled run (`{}`) with the state a first scheduled run "
        "leaves (high-water mark = newest post, last success just now).",
        "Posts per second = posts seen / wall time of the backfill invocation; the time "
        "inside requests (the fake Graph API) and inside botocore (moto) is shown apart, and "
        "`bench/sampler.py` samples the stack every 5 ms during the first backfill to say "
        "where the rest goes. moto's TransactWriteItems deep-copies the whole table per "
        "item (O(n^2) over a backfill); the bench swaps that rollback snapshot for a "
        "shallow one for put-only transactions (`bench/env.py`), so the fake's cost stays "
        "flat as on DynamoDB.",
        "The naive baseline (`bench/naive_graph.py`, comparison only) lists media without "
        "field expansion and then calls `/{id}/children` and `/{child-id}` for each carousel "
        "child; it runs the same backfill, as a dry run into an empty table, through the "
        "product's `IngestService`, and so does the product's client for the comparison, "
        "so only the Graph strategy differs.",
        "Image mirroring is measured apart: in the big runs `MEDIA_HOSTS` allows no host "
        "of the fake CDN, so the media archive refuses each image URL at once "
        "(`mirror_failures` in the summaries, one warning logged per image) and those "
        "figures are the cost of Graph and DynamoDB. A separate backfill of a smaller "
        "account lets the archive mirror every image from the fake CDN (127.0.0.1 listed "
        "exactly in `MEDIA_HOSTS`, 1080x1350 JPEGs of ~210 KB), into moto's S3.",
        "The bench sets `disable_nagle_algorithm` on the fake's request handler: the fake "
        "writes headers and body separately, so without TCP_NODELAY each small answer "
        "waits for the client's delayed ACK (measured 46 ms vs 3 ms per call); "
        "`local/fake_graph.py` should set it itself.",
    ]
    media = fake_account(posts, SINCE, UNTIL)
    with (
        _fast_loopback(),
        FakeGraphServer(media, tokens=(BENCH_TOKEN,)) as graph,
        fast_moto_transactions(),
    ):
        # No image host is allowed, so the handler's media archive refuses each
        # URL at once and these figures stay the cost of Graph and DynamoDB;
        # mirroring is measured apart (mirrored_backfill).
        configure({"GRAPH_API_URL": graph.graph_url, "MEDIA_HOSTS": "cdn.invalid"})
        with moto_backend() as settings:
            handler = fresh_handler("ingest.app")

            def invoke(event: dict[str, Any]) -> Callable[[], dict[str, Any]]:
                return lambda: handler(event, context("ingest"))

            backfill = _measure(invoke(BACKFILL), graph, sample=True)
            rerun = _measure(invoke(BACKFILL), graph)
            # The state a first scheduled run leaves: the newest post as the mark.
            now = datetime.now(UTC).replace(microsecond=0)
            newest = max(item.timestamp for item in media)
            DynamoMediaRepository(settings).save_state(
                IngestState(high_water_mark=newest, last_run_at=now, last_success_at=now)
            )
            idle = _measure(invoke({}), graph)
        with moto_backend() as settings:
            dry_handler = fresh_handler("ingest.app")
            product = _measure(lambda: dry_handler(DRY_RUN, context("ingest")), graph)
            naive_source = NaiveGraphClient(graph.graph_url, BENCH_TOKEN)
            service = IngestService(naive_source, DynamoMediaRepository(settings))
            naive = _measure(lambda: service.run(DRY_RUN), graph)

    section.add(
        Figure(
            "Idle run: Graph calls",
            idle.graph_calls,
            "",
            Goal("<=", 1),
            detail=f"summary {_brief(idle.summary)}",
        )
    )
    section.add(
        Figure(
            "Idle run: DynamoDB media items written",
            idle.media_written,
            "",
            Goal("==", 0),
            detail=f"ingest-state items written: {idle.state_written}; "
            f"DynamoDB calls: {idle.dynamodb_calls}",
        )
    )
    section.add(
        Figure(
            f"Backfill of {posts:,} posts: Graph calls (limit={backfill.page_limit})",
            backfill.graph_calls,
            "",
            Goal("<=", posts // 100 + 1),
            detail=f"summary {_brief(backfill.summary)}",
        )
    )
    section.add(
        Figure(
            f"Backfill of {posts:,} posts: media items written",
            backfill.media_written,
            "",
            detail=f"{backfill.dynamodb_calls} DynamoDB calls",
        )
    )
    section.add(
        Figure(
            "Backfill re-run: media items written",
            rerun.media_written,
            "",
            Goal("==", 0),
            detail=f"Graph calls {rerun.graph_calls}; summary {_brief(rerun.summary)}",
        )
    )
    section.add(
        Figure(
            "Backfill throughput (local fakes)",
            round(backfill.posts_per_second),
            "posts/s",
            detail=backfill.breakdown(),
        )
    )
    section.add(
        Figure(
            "Backfill: botocore DynamoDB clients created",
            backfill.dynamodb_clients,
            "",
            detail=f"in one invocation that made {backfill.dynamodb_calls} DynamoDB calls; "
            "each client creation loads and parses botocore's JSON service model",
        )
    )
    section.add(
        Figure(
            "Backfill re-run throughput (local fakes)",
            round(rerun.posts_per_second),
            "posts/s",
            detail=rerun.breakdown(),
        )
    )
    if mirror_posts:
        with _fast_loopback():
            mirrored = mirrored_backfill(mirror_posts)
        _add_mirroring(section, mirrored, mirror_posts, posts)
    section.add(
        Figure(
            "Naive client (a call per carousel child): Graph calls",
            naive.graph_calls,
            "",
            detail=f"dry run: {naive.breakdown()}",
        )
    )
    section.add(
        Figure(
            "Naive / product Graph calls for the same backfill",
            round(naive.graph_calls / max(product.graph_calls, 1), 1),
            TIMES,
            detail=f"{naive.graph_calls:,} vs {product.graph_calls:,} calls; the same dry run "
            f"takes {naive.seconds:.1f} s vs {product.seconds:.1f} s against the local fake "
            f"(time waiting for Graph {naive.graph_seconds:.1f} s vs "
            f"{product.graph_seconds:.1f} s); on the real API each call costs a round trip "
            "of a few hundred ms and counts against the rate limit",
        )
    )


def _add_mirroring(section: Section, mirrored: RunFigures, sample: int, total: int) -> None:
    rate = mirrored.posts_per_second
    section.add(
        Figure(
            f"Backfill with image mirroring ({sample} posts): throughput",
            round(rate, 1),
            "posts/s",
            detail=f"{mirrored.cdn_downloads} image downloads, {mirrored.s3_puts} S3 PutObject; "
            f"{mirrored.breakdown()}; summary {_brief(mirrored.summary)}",
        )
    )
    section.add(
        Figure(
            f"Projected {total:,}-post backfill with mirroring, one invocation",
            round(total / rate / 60, 1),
            "min",
            Goal("<=", INGEST_TIMEOUT_SECONDS / 60),
            detail="at the sampled rate on this machine (Lambda's 1,024 MB is about 0.6 "
            "vCPU, so slower there); the goal is the ingest function's Timeout in "
            "template.yaml. A longer backfill is not lost: a run with under 2 minutes left "
            "starts no new page and says `out_of_time: true`; invoking the same payload "
            "again carries on, skipping stored and mirrored posts",
        )
    )


def _brief(summary: dict[str, Any]) -> str:
    keys = (
        "mode",
        "graph_calls",
        "seen",
        "written",
        "unchanged",
        "throttled",
        "complete",
        "mirrored",
        "mirror_failures",
    )
    return ", ".join(f"{key}={summary.get(key)}" for key in keys if key in summary)
