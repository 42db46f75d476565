"""The ingest service: keep our own copy of every post of the account.

One run reads ``/<user>/media`` page by page (newest first) and stores what is
new or changed:

- **Incremental** (the schedule): stop once a page's last post (in page order;
  pinned posts come first) is older than the high-water mark minus
  :data:`OVERLAP`, so an idle run costs one Graph call, and a caption edited
  within the overlap is still seen. The mark only advances when the run paged
  all the way to its cutoff, so an interrupted run leaves no gap behind it.
- **Backfill** (an operator): page back to ``since`` and upsert every post in
  ``[since, until)``; a dry run writes nothing and reports ``would_write``.
  A completed backfill whose ``until`` is in the future also moves the mark.

Each page costs one range read of stored posts (plus one per pinned post);
only posts whose content hash differs (or whose images are not mirrored yet)
are written, conditionally, so an older fetch never overwrites a newer one.
Throttling is not an error: the run stops calling and records when to resume.
Any other failure is recorded in the ingest state (redacted) and raised as
:class:`IngestError`; what was stored stays stored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlsplit

from aws_lambda_powertools import Logger

from shared.backfill import BackfillRequest, backfill_from_event
from shared.graph import DEFAULT_THROTTLE_PAUSE, MediaPage
from shared.graph_errors import GraphThrottledError
from shared.media import MediaChild, Mirror, Post
from shared.observability import get_logger
from shared.redaction import redact
from shared.repository import MediaRepository, StoredPost
from shared.state import IngestState
from shared.timestamps import format_utc, utc_now

# Late caption edits on recent posts are the edits that matter to a gallery;
# three days covers a charter's "I'll fix the caption tomorrow".
OVERLAP = timedelta(days=3)
# A page of 100 posts whose images all need mirroring takes about a minute;
# no new page is started with less than this left of the Lambda's time.
PAGE_TIME_RESERVE_SECONDS = 120.0
# An idle run does not rewrite the state item just to say it ran; it refreshes
# ``last_success_at`` at most this often.
SUCCESS_HEARTBEAT = timedelta(hours=1)
LAST_ERROR_LIMIT = 500


class ImageArchive(Protocol):
    """Mirrors a post's images into S3 (:class:`shared.archive.S3ImageArchive`)."""

    def mirror(self, post: Post, previous: Post | None) -> Post:
        """Return ``post`` with mirrors set, reusing ``previous``'s when unchanged.

        Never raises for a bad image; a failed image keeps ``mirror=None``.
        """
        ...


class MediaSource(Protocol):
    """The account's media, newest first (:class:`shared.graph.GraphClient`)."""

    calls: int

    def media_pages(self) -> Iterator[MediaPage]:
        """Yield media pages lazily, one Graph call each."""
        ...


class IngestError(RuntimeError):
    """A run could not do its job; the message names the cause (redacted).

    Attributes
    ----------
    summary
        What the run did before it failed (same keys as a run's summary).
    """

    def __init__(self, message: str, summary: Mapping[str, Any]) -> None:
        super().__init__(redact(message))
        self.summary = dict(summary)

    def __str__(self) -> str:
        return redact(super().__str__())


@dataclass
class _Run:
    """Counters and progress of one run."""

    mode: str
    started_at: datetime
    request: BackfillRequest | None
    calls_before: int
    pages: int = 0
    seen: int = 0
    written: int = 0
    unchanged: int = 0
    stale: int = 0
    skipped: int = 0
    out_of_range: int = 0
    duplicates: int = 0
    would_write: int = 0
    mirrored: int = 0
    mirror_failures: int = 0
    complete: bool = False
    out_of_time: bool = False
    newest: datetime | None = None
    ids: set[str] = field(default_factory=set)

    @property
    def dry_run(self) -> bool:
        return self.request is not None and self.request.dry_run

    def in_range(self, post: Post) -> bool:
        request = self.request
        return request is None or request.since <= post.taken_at < request.until


class IngestService:
    """Runs ingest: incremental by default, backfill on request.

    Parameters
    ----------
    source
        The account's media (the Graph client).
    repository
        Where posts and the ingest state live.
    archive
        Mirrors images into S3; without one, posts are stored without new
        mirrors (and keep the ones they have).
    clock
        The current UTC time.
    overlap
        How far behind the high-water mark an incremental run still reads.
    logger
        The function's structured logger.
    """

    def __init__(
        self,
        source: MediaSource,
        repository: MediaRepository,
        *,
        archive: ImageArchive | None = None,
        clock: Callable[[], datetime] = utc_now,
        overlap: timedelta = OVERLAP,
        logger: Logger | None = None,
    ) -> None:
        self._source = source
        self._repository = repository
        self._archive = archive
        self._clock = clock
        self._overlap = overlap
        self._logger = logger or get_logger("ingest")

    def run(self, event: Any, time_left: Callable[[], float] | None = None) -> dict[str, Any]:
        """Run ingest for one Lambda event.

        Parameters
        ----------
        event
            ``{}`` (or anything without ``backfill``) for an incremental run;
            ``{"backfill": {"since", "until", "dry_run"}}`` for a backfill.
        time_left
            Seconds the invocation has left. Below
            :data:`PAGE_TIME_RESERVE_SECONDS` no new page is started: the run
            ends with ``"out_of_time": true`` and ``"complete": false``, the
            high-water mark stays, and the next run (or the same backfill
            again) carries on, skipping what is already stored and mirrored.

        Returns
        -------
        dict
            The run summary: ``mode``, ``graph_calls``, ``seen``, ``written``,
            ``unchanged``, ``throttled`` and more detail.

        Raises
        ------
        shared.backfill.BackfillPayloadError
            For a bad event or backfill payload, before any call or write.
        IngestError
            When the run cannot do its job; the cause is recorded in the state.
        """
        request = backfill_from_event(event)
        run = _Run(
            mode="backfill" if request else "incremental",
            started_at=self._clock(),
            request=request,
            calls_before=self._source.calls,
        )
        try:
            state = self._repository.load_state()
        except Exception as exc:
            raise IngestError(
                f"ingest {run.mode} run failed: cannot read the ingest state: {exc}",
                self._summary(run),
            ) from exc

        if state.resume_after is not None and run.started_at < state.resume_after:
            summary = self._summary(run, state, throttled=True, resume_after=state.resume_after)
            self._logger.warning("Instagram throttled us earlier; skipping this run", extra=summary)
            return summary

        try:
            self._page_through(run, state, time_left)
        except GraphThrottledError as exc:
            resume_after = exc.retry_after or self._clock() + DEFAULT_THROTTLE_PAUSE
            if not run.dry_run:
                self._save_state(
                    replace(state, last_run_at=run.started_at, resume_after=resume_after)
                )
            summary = self._summary(run, state, throttled=True, resume_after=resume_after)
            self._logger.warning(f"run stopped early: {exc}", extra=summary)
            return summary
        except Exception as exc:
            raise self._failed(run, state, exc) from exc

        new_state = self._succeeded(run, state)
        summary = self._summary(run, new_state)
        self._logger.info("ingest run finished", extra=summary)
        return summary

    # -- paging -------------------------------------------------------------

    def _page_through(
        self, run: _Run, state: IngestState, time_left: Callable[[], float] | None
    ) -> None:
        cutoff = self._cutoff(run, state)
        for page in self._source.media_pages():
            self._ingest_page(run, page)
            last = page.posts[-1] if page.posts else None
            if not page.has_next or (cutoff and last and last.taken_at < cutoff):
                run.complete = True
                return
            if time_left is not None and time_left() < PAGE_TIME_RESERVE_SECONDS:
                run.out_of_time = True
                return

    def _cutoff(self, run: _Run, state: IngestState) -> datetime | None:
        if run.request is not None:
            return run.request.since
        if state.high_water_mark is None:
            return None  # first run: read everything there is
        return state.high_water_mark - self._overlap

    def _ingest_page(self, run: _Run, page: MediaPage) -> None:
        fetched_at = self._clock()
        run.pages += 1
        run.seen += len(page.posts)
        run.skipped += page.skipped
        candidates: list[Post] = []
        for post in page.posts:
            if post.id in run.ids:
                # Graph may repeat a post across pages when new ones arrive mid-run.
                run.duplicates += 1
                continue
            run.ids.add(post.id)
            if not run.in_range(post):
                run.out_of_range += 1
                continue
            candidates.append(post)
            if run.newest is None or post.taken_at > run.newest:
                run.newest = post.taken_at
        stored = self._stored(candidates)
        to_write: list[Post] = []
        for post in candidates:
            ready = self._prepare(run, post, stored.get(post.id))
            if ready is None:
                run.unchanged += 1
            else:
                to_write.append(ready)
        if run.dry_run:
            run.would_write += len(to_write)
        elif to_write:
            result = self._repository.save_posts(to_write, fetched_at)
            run.written += result.written
            run.stale += result.stale

    def _stored(self, posts: Sequence[Post]) -> dict[str, StoredPost]:
        """The stored versions of a page's posts: one range read, plus one per pinned post.

        A page lists a contiguous stretch of the timeline, so the stored items
        between its oldest and newest post are just its own posts. Pinned posts
        break that: listed first but possibly years older, they would stretch
        the range over every post in between, so each gets its own exact read.
        """
        if not posts:
            return {}
        in_order: list[Post] = []
        pinned: list[Post] = []
        newest_later: datetime | None = None
        for post in reversed(posts):
            if newest_later is not None and post.taken_at < newest_later:
                pinned.append(post)
            else:
                in_order.append(post)
                newest_later = post.taken_at
        found = self._repository.stored_between(in_order[0].taken_at, in_order[-1].taken_at)
        for post in pinned:
            found.update(self._repository.stored_between(post.taken_at, post.taken_at))
        return found

    # -- one post -------------------------------------------------------------

    def _prepare(self, run: _Run, post: Post, stored: StoredPost | None) -> Post | None:
        """The post to write, or ``None`` when the stored one is still right."""
        previous = stored.post if stored else None
        changed = stored is None or stored.content_hash != post.content_hash()
        if run.dry_run or self._archive is None:
            # Dry runs never mirror.
            return _keep_mirrors(post, previous) if changed else None
        if not changed and previous is not None and not _lacks_mirror(previous):
            return None
        mirrored = self._mirror(run, self._archive, post, previous)
        if changed or _mirrors(mirrored) != _mirrors(previous):
            return mirrored
        return None  # a failed mirror of an unchanged post is no reason to write

    def _mirror(self, run: _Run, archive: ImageArchive, post: Post, previous: Post | None) -> Post:
        try:
            mirrored = archive.mirror(post, previous)
        except Exception as exc:
            # The archive degrades per image; if it fails as a whole, the post
            # is still stored, and the next run tries its images again.
            self._logger.warning(f"mirroring media {post.id} failed: {redact(str(exc))}")
            run.mirror_failures += 1
            return _keep_mirrors(post, previous)
        if _lacks_mirror(mirrored):
            run.mirror_failures += 1
        else:
            run.mirrored += 1
        return mirrored

    # -- outcome --------------------------------------------------------------

    def _succeeded(self, run: _Run, state: IngestState) -> IngestState:
        if run.dry_run:
            return state
        high_water_mark = state.high_water_mark
        # A backfill up to the present read the newest posts too: it may move
        # the mark, so the first scheduled run after it is an idle one.
        reached_present = run.request is None or run.request.until > run.started_at
        newest = run.newest if run.complete and reached_present else None
        if newest is not None and (high_water_mark is None or newest > high_water_mark):
            high_water_mark = newest
        new_state = replace(
            state,
            high_water_mark=high_water_mark,
            last_run_at=run.started_at,
            last_success_at=run.started_at,
            consecutive_failures=0,
            last_error=None,
            resume_after=None,
        )
        unchanged = (
            replace(new_state, last_run_at=state.last_run_at, last_success_at=state.last_success_at)
            == state
        )
        heartbeat_due = (
            state.last_success_at is None
            or run.started_at - state.last_success_at >= SUCCESS_HEARTBEAT
        )
        if unchanged and not heartbeat_due:
            return state
        self._save_state(new_state)
        return new_state

    def _failed(self, run: _Run, state: IngestState, exc: Exception) -> IngestError:
        cause = redact(f"{type(exc).__name__}: {exc}")
        failed_state = replace(
            state,
            last_run_at=run.started_at,
            consecutive_failures=state.consecutive_failures + 1,
            last_error=cause[:LAST_ERROR_LIMIT],
        )
        if not run.dry_run:
            self._save_state(failed_state)
        else:
            failed_state = state
        summary = self._summary(run, failed_state)
        self._logger.error(f"ingest {run.mode} run failed: {cause}", extra=summary)
        return IngestError(f"ingest {run.mode} run failed: {cause}", summary)

    def _save_state(self, state: IngestState) -> None:
        try:
            self._repository.save_state(state)
        except Exception as exc:
            # The run's own outcome matters more than its bookkeeping; the
            # next run starts from the state as last saved.
            self._logger.error(f"cannot save the ingest state: {redact(str(exc))}")

    def _summary(
        self,
        run: _Run,
        state: IngestState | None = None,
        *,
        throttled: bool = False,
        resume_after: datetime | None = None,
    ) -> dict[str, Any]:
        summary: dict[str, Any] = {
            "mode": run.mode,
            "graph_calls": self._source.calls - run.calls_before,
            "pages": run.pages,
            "seen": run.seen,
            "written": run.written,
            "unchanged": run.unchanged,
            "stale": run.stale,
            "skipped": run.skipped,
            "duplicates": run.duplicates,
            "mirrored": run.mirrored,
            "mirror_failures": run.mirror_failures,
            "throttled": throttled,
            "complete": run.complete,
            "out_of_time": run.out_of_time,
        }
        if run.request is not None:
            summary.update(run.request.describe(), out_of_range=run.out_of_range)
            if run.dry_run:
                summary["would_write"] = run.would_write
        if resume_after is not None:
            summary["resume_after"] = format_utc(resume_after)
        if state is not None:
            mark = state.high_water_mark
            summary["high_water_mark"] = format_utc(mark) if mark else None
            summary["consecutive_failures"] = state.consecutive_failures
        return summary


def _lacks_mirror(post: Post) -> bool:
    """Whether an image of ``post`` (or of a carousel child) has no S3 copy yet."""
    if post.image_url and post.mirror is None:
        return True
    return any(child.image_url and child.mirror is None for child in post.children)


def _mirrors(post: Post | None) -> tuple[Mirror | None, tuple[tuple[str, Mirror | None], ...]]:
    if post is None:
        return None, ()
    return post.mirror, tuple((child.id, child.mirror) for child in post.children)


def _keep_mirrors(post: Post, previous: Post | None) -> Post:
    """Carry ``previous``'s mirrors over to images that did not change.

    A caption edit must not drop the S3 copies of an image when no archive
    runs (dry runs, metadata-only runs); a changed image drops its copy.
    """
    if previous is None:
        return post
    kept = {child.id: child for child in previous.children}

    def carried(child: MediaChild) -> MediaChild:
        old = kept.get(child.id)
        if old is None or not _same_image(child.image_url, old.image_url):
            return child
        return replace(child, mirror=old.mirror)

    mirror = previous.mirror if _same_image(post.image_url, previous.image_url) else None
    return post.with_mirrors(mirror, tuple(carried(child) for child in post.children))


def _same_image(url: str | None, other: str | None) -> bool:
    # CDN URLs are re-signed on every read (query) and served from varying
    # edges (host); the path names the image.
    if not url or not other:
        return False
    return urlsplit(url).path == urlsplit(other).path
