"""The DynamoDB media repository (PynamoDB) against moto."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from shared.config import get_settings
from shared.events import EventRecord
from shared.media import MediaChild, Mirror, Post, Rendition
from shared.repository import DynamoMediaRepository
from shared.state import IngestState
from tests.conftest import AwsCalls

T0 = datetime(2026, 4, 29, 12, 0, tzinfo=UTC)
FETCHED = datetime(2026, 4, 30, 8, 0, tzinfo=UTC)


@pytest.fixture
def repo(aws_env: None) -> DynamoMediaRepository:
    """GIVEN the table in moto."""
    return DynamoMediaRepository(get_settings())


def post(index: int, *, at: datetime | None = None, caption: str = "Sunset run") -> Post:
    media_id = str(18000000000000000 + index)
    return Post(
        id=media_id,
        taken_at=at or T0 + timedelta(minutes=index),
        media_type="IMAGE",
        media_product_type="FEED",
        caption=caption,
        permalink=f"https://www.instagram.com/p/{media_id}/",
        media_url=f"https://scontent.cdninstagram.com/v/{media_id}.jpg?oe=1",
    )


def test_posts_round_trip_with_children_and_mirrors(repo: DynamoMediaRepository) -> None:
    """GIVEN a carousel with a mirrored child and a reel without media_url
    WHEN they are saved and read back
    THEN every field survives."""
    rendition = Rendition(
        key="instagram/1/w640.webp", width=640, height=480, size=1234, content_type="image/webp"
    )
    mirror = Mirror(
        original=Rendition("instagram/1/original.jpg", 1080, 810, 9999), thumbnails=(rendition,)
    )
    album = replace(
        post(1),
        media_type="CAROUSEL_ALBUM",
        children=(
            MediaChild(
                id="1",
                media_type="IMAGE",
                media_url="https://x.cdninstagram.com/1.jpg",
                mirror=mirror,
            ),
            MediaChild(
                id="2",
                media_type="VIDEO",
                media_url="https://x.cdninstagram.com/2.mp4",
                thumbnail_url="https://x.cdninstagram.com/2.jpg",
            ),
        ),
        mirror=mirror,
    )
    withheld = replace(
        post(2),
        media_type="VIDEO",
        media_product_type="REELS",
        media_url=None,
        thumbnail_url="https://x.cdninstagram.com/r.jpg",
    )

    assert repo.save_posts([album, withheld], FETCHED).written == 2

    assert repo.posts_between(T0, T0 + timedelta(hours=1)) == [album, withheld]


def test_window_is_one_query_start_included_end_excluded_oldest_first(
    repo: DynamoMediaRepository, aws_calls: AwsCalls
) -> None:
    """GIVEN posts at 12:00, 12:01, 12:02 and 12:03
    WHEN the window [12:01, 12:03) is read
    THEN one Query returns 12:01 and 12:02, oldest first."""
    repo.save_posts([post(3), post(0), post(2), post(1)], FETCHED)
    mark = len(aws_calls.calls)

    window = repo.posts_between(T0 + timedelta(minutes=1), T0 + timedelta(minutes=3))

    assert [p.id for p in window] == [post(1).id, post(2).id]
    assert aws_calls.operations()[mark:] == ["Query"]


def test_stored_between_includes_both_ends_with_hash_and_fetch_time(
    repo: DynamoMediaRepository,
) -> None:
    """GIVEN stored posts
    WHEN the ingest lookup reads [12:01, 12:02]
    THEN both ends are included, with each post's content hash and fetch time."""
    repo.save_posts([post(0), post(1), post(2), post(3)], FETCHED)

    found = repo.stored_between(T0 + timedelta(minutes=1), T0 + timedelta(minutes=2))

    assert sorted(found) == [post(1).id, post(2).id]
    assert found[post(1).id].content_hash == post(1).content_hash()
    assert found[post(1).id].fetched_at == FETCHED


def test_an_older_fetch_never_overwrites_a_newer_one(repo: DynamoMediaRepository) -> None:
    """GIVEN two overlapping runs: B fetched later than A and saved first
    WHEN A saves its older copy afterwards
    THEN B's copy stays, A's write counts as stale, and the others of A's batch are written."""
    newer = post(1, caption="Edited later")
    repo.save_posts([newer], FETCHED + timedelta(minutes=5))

    result = repo.save_posts([post(1, caption="Original"), post(2)], FETCHED)

    assert (result.written, result.stale) == (1, 1)
    stored = {p.id: p for p in repo.posts_between(T0, T0 + timedelta(hours=1))}
    assert stored[newer.id].caption == "Edited later"
    assert post(2).id in stored


def test_a_newer_fetch_overwrites(repo: DynamoMediaRepository) -> None:
    """GIVEN a stored post
    WHEN a later fetch with a new caption is saved
    THEN it replaces the stored one."""
    repo.save_posts([post(1)], FETCHED)

    result = repo.save_posts([post(1, caption="Fixed")], FETCHED + timedelta(hours=1))

    assert (result.written, result.stale) == (1, 0)
    assert repo.posts_between(T0, T0 + timedelta(hours=1))[0].caption == "Fixed"


def test_many_posts_are_written_in_transactions_of_25(
    repo: DynamoMediaRepository, aws_calls: AwsCalls
) -> None:
    """GIVEN 60 new posts
    WHEN they are saved
    THEN 3 TransactWriteItems calls write them all."""
    mark = len(aws_calls.calls)

    result = repo.save_posts([post(i) for i in range(60)], FETCHED)

    assert result.written == 60
    assert aws_calls.operations()[mark:] == ["TransactWriteItems"] * 3


def test_state_and_events_are_read_in_one_query(
    repo: DynamoMediaRepository, aws_calls: AwsCalls
) -> None:
    """GIVEN a saved ingest state and an event record
    WHEN the META partition is loaded
    THEN one Query returns both, exactly as saved."""
    state = IngestState(
        high_water_mark=T0,
        last_run_at=FETCHED,
        last_success_at=FETCHED,
        consecutive_failures=2,
        last_error="GraphTransientError: HTTP 500",
        resume_after=FETCHED + timedelta(minutes=42),
    )
    repo.save_state(state)
    event = EventRecord(
        "2026-04-29-sunset", title="Sunset sail", start=T0, end=T0 + timedelta(hours=4)
    )
    repo.put_event(event)
    mark = len(aws_calls.calls)

    loaded_state, events = repo.load_meta()

    assert aws_calls.operations()[mark:] == ["Query"]
    assert loaded_state == state == repo.load_state()
    assert events == {"2026-04-29-sunset": event}


def test_empty_state_before_the_first_run(repo: DynamoMediaRepository) -> None:
    """GIVEN an empty table
    WHEN the state is loaded
    THEN it is the empty state."""
    assert repo.load_state() == IngestState()
