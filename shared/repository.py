"""The media repository: the port the domain uses, and its DynamoDB adapter.

Handlers and services depend on :class:`MediaRepository`; only
:class:`DynamoMediaRepository` knows about PynamoDB. Tests of the domain can
use an in-memory implementation of the same protocol.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from pynamodb.connection import Connection
from pynamodb.exceptions import PutError, TransactWriteError
from pynamodb.transactions import TransactWrite

from shared.config import Settings
from shared.events import EventRecord
from shared.media import MediaChild, Mirror, Post
from shared.models import (
    EVENT_SORT_PREFIX,
    MEDIA_PARTITION,
    META_PARTITION,
    STATE_SORT_KEY,
    EventItem,
    MediaItem,
    MetaItem,
    StateItem,
    bind_models,
)
from shared.state import IngestState
from shared.timestamps import format_utc, parse_utc

# DynamoDB allows 100 actions per transaction; 25 keeps each request far below
# the 4 MB transaction limit even for carousels with long captions.
_TRANSACTION_SIZE = 25
# Upper bound for "any media id" after the ``#`` in a sort key (ids are digits).
_SORT_KEY_CEILING = "#~"


@dataclass(frozen=True)
class StoredPost:
    """A post as stored, with what ingest needs to decide whether to rewrite it."""

    post: Post
    content_hash: str
    fetched_at: datetime


@dataclass(frozen=True)
class SaveResult:
    """What :meth:`MediaRepository.save_posts` did."""

    written: int = 0
    stale: int = 0


class MediaRepository(Protocol):
    """Storage of posts, ingest state and event records."""

    def posts_between(self, start: datetime, end: datetime) -> list[Post]:
        """Posts with ``start <= taken_at < end``, oldest first."""
        ...

    def stored_between(self, start: datetime, end: datetime) -> dict[str, StoredPost]:
        """Stored posts with ``start <= taken_at <= end``, by media id."""
        ...

    def save_posts(self, posts: Sequence[Post], fetched_at: datetime) -> SaveResult:
        """Upsert posts fetched at ``fetched_at``; a newer stored fetch wins."""
        ...

    def load_state(self) -> IngestState:
        """The ingest state (an empty one before the first run)."""
        ...

    def save_state(self, state: IngestState) -> None:
        """Replace the ingest state."""
        ...

    def load_meta(self) -> tuple[IngestState, dict[str, EventRecord]]:
        """Ingest state and every event record, in one read."""
        ...

    def put_event(self, record: EventRecord) -> None:
        """Create or replace an event record."""
        ...


class DynamoMediaRepository:
    """:class:`MediaRepository` on the ``MEDIA_TABLE`` through PynamoDB."""

    def __init__(self, settings: Settings) -> None:
        bind_models(settings)
        self._settings = settings
        self._transaction_connection: Connection | None = None

    # -- posts -----------------------------------------------------------------

    def posts_between(self, start: datetime, end: datetime) -> list[Post]:
        """Posts with ``start <= taken_at < end``, oldest first, in one Query."""
        # Timestamps are whole seconds, so "< end" is "<= end - 1 s, any id".
        last = format_utc(end - timedelta(seconds=1)) + _SORT_KEY_CEILING
        return [
            _post_from_item(item)
            for item in MediaItem.query(
                MEDIA_PARTITION, MediaItem.sk.between(format_utc(start), last)
            )
        ]

    def stored_between(self, start: datetime, end: datetime) -> dict[str, StoredPost]:
        """Stored posts with ``start <= taken_at <= end`` (both included), by id."""
        items = MediaItem.query(
            MEDIA_PARTITION,
            MediaItem.sk.between(format_utc(start), format_utc(end) + _SORT_KEY_CEILING),
        )
        return {
            item.media_id: StoredPost(_post_from_item(item), item.content_hash, item.fetched_at)
            for item in items
        }

    def save_posts(self, posts: Sequence[Post], fetched_at: datetime) -> SaveResult:
        """Upsert posts in transactions, each conditional on being the newest fetch.

        A transaction is all-or-nothing: if any item in it is stale (a newer
        fetch is already stored), its items are retried one by one, so one
        stale item never blocks the others.
        """
        written = stale = 0
        for chunk in _chunks(posts, _TRANSACTION_SIZE):
            items = [_item_from_post(post, fetched_at) for post in chunk]
            try:
                with TransactWrite(connection=self._connection()) as transaction:
                    for item in items:
                        transaction.save(item, condition=_newer_fetch(fetched_at))
                written += len(items)
            except TransactWriteError as exc:
                if not _only_condition_failures(exc):
                    raise
                for item in items:
                    try:
                        item.save(condition=_newer_fetch(fetched_at))
                        written += 1
                    except PutError as put_exc:
                        if put_exc.cause_response_code != "ConditionalCheckFailedException":
                            raise
                        stale += 1
        return SaveResult(written=written, stale=stale)

    def _connection(self) -> Connection:
        # One connection (one botocore client) per repository: building a
        # client costs 0.1-0.25 s, far more than the transaction it carries.
        if self._transaction_connection is None:
            self._transaction_connection = Connection(
                region=self._settings.aws_region,
                host=self._settings.aws_endpoint_url,
                connect_timeout_seconds=MediaItem.Meta.connect_timeout_seconds,
                read_timeout_seconds=MediaItem.Meta.read_timeout_seconds,
                max_retry_attempts=MediaItem.Meta.max_retry_attempts,
            )
        return self._transaction_connection

    # -- state and events ------------------------------------------------------

    def load_state(self) -> IngestState:
        """The ingest state, read with a consistent GetItem."""
        try:
            item = StateItem.get(META_PARTITION, STATE_SORT_KEY, consistent_read=True)
        except StateItem.DoesNotExist:
            return IngestState()
        return _state_from_item(item)

    def save_state(self, state: IngestState) -> None:
        """Replace the ingest state item."""
        StateItem(
            META_PARTITION,
            STATE_SORT_KEY,
            high_water_mark=state.high_water_mark,
            last_run_at=state.last_run_at,
            last_success_at=state.last_success_at,
            consecutive_failures=state.consecutive_failures,
            last_error=state.last_error,
            resume_after=state.resume_after,
        ).save()

    def load_meta(self) -> tuple[IngestState, dict[str, EventRecord]]:
        """Read the whole ``META`` partition: ingest state and event records."""
        state = IngestState()
        events: dict[str, EventRecord] = {}
        for item in MetaItem.query(META_PARTITION):
            if isinstance(item, StateItem):
                state = _state_from_item(item)
            elif isinstance(item, EventItem):
                record = _event_from_item(item)
                events[record.event_id] = record
        return state, events

    def put_event(self, record: EventRecord) -> None:
        """Create or replace one event record."""
        EventItem(
            META_PARTITION,
            EVENT_SORT_PREFIX + record.event_id,
            title=record.title,
            start=record.start,
            end=record.end,
        ).save()


def _newer_fetch(fetched_at: datetime):  # type: ignore[no-untyped-def]
    return MediaItem.pk.does_not_exist() | (MediaItem.fetched_at <= fetched_at)


def _only_condition_failures(exc: TransactWriteError) -> bool:
    reasons = exc.cancellation_reasons or []
    codes = {reason.code for reason in reasons if reason is not None}
    return bool(codes) and codes <= {"ConditionalCheckFailed", "None"}


def _chunks(posts: Sequence[Post], size: int) -> Iterable[Sequence[Post]]:
    for index in range(0, len(posts), size):
        yield posts[index : index + size]


def _item_from_post(post: Post, fetched_at: datetime) -> MediaItem:
    taken_at = format_utc(post.taken_at)
    return MediaItem(
        MEDIA_PARTITION,
        f"{taken_at}#{post.id}",
        media_id=post.id,
        taken_at=taken_at,
        media_type=post.media_type,
        media_product_type=post.media_product_type,
        caption=post.caption,
        permalink=post.permalink,
        media_url=post.media_url,
        thumbnail_url=post.thumbnail_url,
        children=[child.to_dict() for child in post.children] or None,
        mirror=post.mirror.to_dict() if post.mirror else None,
        content_hash=post.content_hash(),
        fetched_at=fetched_at,
    )


def _post_from_item(item: MediaItem) -> Post:
    return Post(
        id=item.media_id,
        taken_at=parse_utc(item.taken_at),
        media_type=item.media_type,
        media_product_type=item.media_product_type,
        caption=item.caption,
        permalink=item.permalink,
        media_url=item.media_url,
        thumbnail_url=item.thumbnail_url,
        children=tuple(MediaChild.from_dict(child) for child in item.children or ()),
        mirror=Mirror.from_dict(item.mirror),
    )


def _state_from_item(item: StateItem) -> IngestState:
    return IngestState(
        high_water_mark=item.high_water_mark,
        last_run_at=item.last_run_at,
        last_success_at=item.last_success_at,
        consecutive_failures=int(item.consecutive_failures or 0),
        last_error=item.last_error,
        resume_after=item.resume_after,
    )


def _event_from_item(item: EventItem) -> EventRecord:
    return EventRecord(
        event_id=item.sk.removeprefix(EVENT_SORT_PREFIX),
        title=item.title,
        start=item.start,
        end=item.end,
    )
