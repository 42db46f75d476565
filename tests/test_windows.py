"""Event ids and event windows (pure domain: no AWS)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from shared.events import EventRecord
from shared.windows import (
    MAX_EVENT_ID_LENGTH,
    InvalidEventIdError,
    event_window,
    local_day_window,
    parse_event_id,
)

LA = "America/Los_Angeles"


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


@pytest.mark.parametrize(
    ("text", "day", "slug"),
    [
        ("2026-04-29", date(2026, 4, 29), None),
        ("2026-04-29-sunset", date(2026, 4, 29), "sunset"),
        ("2026-04-29-sunset-cruise-2", date(2026, 4, 29), "sunset-cruise-2"),
        ("2028-02-29", date(2028, 2, 29), None),
        ("2026-04-29-" + "a" * 53, date(2026, 4, 29), "a" * 53),
    ],
)
def test_valid_event_ids_parse(text: str, day: date, slug: str | None) -> None:
    """GIVEN a well-formed id WHEN parsed THEN its date and slug come out."""
    event = parse_event_id(text)
    assert (event.value, event.day, event.slug) == (text, day, slug)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "../x",
        "..",
        "%2e%2e",
        "2026-02-30",
        "2027-02-29",
        "2026-13-01",
        "0000-01-01",
        "2026-4-29",
        "2026-04-29/",
        "2026-04-29/x",
        "2026-04-29-",
        "2026-04-29--sunset",
        "2026-04-29-sunset-",
        "2026-04-29-Sunset",
        "2026-04-29-SUNSET",
        "2026-04-29_sunset",
        "2026-04-29-café",
        "\uff12\uff10\uff12\uff16-04-29",  # full-width digits: ``\\d`` would accept them
        "2026-04-29\n",
        " 2026-04-29",
        "2026-04-29-" + "a" * 54,  # 65 characters in all
        "2026-04-29-" + "a" * 289,  # 300 characters
    ],
)
def test_malformed_event_ids_are_rejected(text: str) -> None:
    """GIVEN a malformed id WHEN parsed THEN InvalidEventIdError says why."""
    with pytest.raises(InvalidEventIdError):
        parse_event_id(text)


def test_the_64_character_limit_counts_the_whole_id() -> None:
    """GIVEN ids of 64 and 65 characters WHEN parsed THEN only the first passes."""
    longest = "2026-04-29-" + "s" * (MAX_EVENT_ID_LENGTH - 11)
    assert len(longest) == 64
    assert parse_event_id(longest).slug == "s" * 53
    with pytest.raises(InvalidEventIdError, match="64"):
        parse_event_id(longest + "s")


@pytest.mark.parametrize(
    ("day", "start", "end", "hours"),
    [
        # An ordinary PDT day: local midnight is 07:00 UTC.
        ("2026-04-29", "2026-04-29T07:00:00Z", "2026-04-30T07:00:00Z", 24),
        # Spring forward (8 March 2026, 02:00 -> 03:00): a 23-hour day.
        ("2026-03-08", "2026-03-08T08:00:00Z", "2026-03-09T07:00:00Z", 23),
        # Fall back (1 November 2026, 02:00 -> 01:00): a 25-hour day.
        ("2026-11-01", "2026-11-01T07:00:00Z", "2026-11-02T08:00:00Z", 25),
        # Winter (PST): local midnight is 08:00 UTC.
        ("2026-12-31", "2026-12-31T08:00:00Z", "2027-01-01T08:00:00Z", 24),
    ],
)
def test_local_day_window_follows_dst(day: str, start: str, end: str, hours: int) -> None:
    """GIVEN a Pacific date WHEN its window is computed THEN it is that local day, DST-correct."""
    window_start, window_end = local_day_window(parse_event_id(day), LA)
    assert (window_start, window_end) == (utc(start), utc(end))
    assert window_end - window_start == timedelta(hours=hours)


def test_midnight_in_a_dst_gap_starts_the_day_when_the_clock_jumps() -> None:
    """GIVEN Santiago's spring-forward day, whose local midnight does not exist
    WHEN its window is computed
    THEN it starts at 01:00 local (04:00 UTC) and is 23 hours long."""
    start, end = local_day_window(parse_event_id("2026-09-06"), "America/Santiago")
    assert start == utc("2026-09-06T04:00:00Z")
    assert end - start == timedelta(hours=23)


def test_grace_hours_extend_the_end_only() -> None:
    """GIVEN POST_GRACE_HOURS=6 WHEN the window is computed THEN the end moves 6 h later."""
    start, end = local_day_window(parse_event_id("2026-04-29"), LA, grace_hours=6)
    assert (start, end) == (utc("2026-04-29T07:00:00Z"), utc("2026-04-30T13:00:00Z"))


def test_grace_hours_are_elapsed_time_across_a_dst_change() -> None:
    """GIVEN 3 grace hours on the night clocks fall back
    WHEN the window is computed THEN the end is 3 real hours after local midnight."""
    _, end = local_day_window(parse_event_id("2026-10-31"), LA, grace_hours=3)
    assert end == utc("2026-11-01T07:00:00Z") + timedelta(hours=3)


def test_window_is_half_open() -> None:
    """GIVEN a window WHEN moments at its edges are tested THEN start is in, end is out."""
    window = event_window(parse_event_id("2026-04-29"), LA)
    assert window.contains(window.start)
    assert not window.contains(window.end)
    assert window.contains(window.end - timedelta(seconds=1))


def test_a_post_at_2230_pacific_belongs_to_that_pacific_date() -> None:
    """GIVEN 22:30 PDT on 29 April (05:30 UTC on 30 April)
    WHEN windows are compared THEN it is in 29 April's window, not 30 April's."""
    moment = utc("2026-04-30T05:30:00Z")
    assert event_window(parse_event_id("2026-04-29"), LA).contains(moment)
    assert not event_window(parse_event_id("2026-04-30"), LA).contains(moment)


def test_event_record_overrides_window_and_title() -> None:
    """GIVEN a record with title, start and end WHEN the window is computed THEN it wins."""
    record = EventRecord(
        "2026-04-29-sunset",
        title="Sunset sail",
        start=utc("2026-04-29T23:00:00Z"),
        end=utc("2026-04-30T04:00:00Z"),
    )
    window = event_window(parse_event_id("2026-04-29-sunset"), LA, 6, record)
    assert (window.start, window.end) == (record.start, record.end)
    assert window.title == "Sunset sail"
    assert window.overridden


@pytest.mark.parametrize(
    "record",
    [
        EventRecord("2026-04-29", title="Only a title"),
        EventRecord("2026-04-29", title="Half", start=utc("2026-04-29T23:00:00Z")),
        EventRecord(
            "2026-04-29",
            title="Inverted",
            start=utc("2026-04-30T04:00:00Z"),
            end=utc("2026-04-29T23:00:00Z"),
        ),
    ],
)
def test_incomplete_records_keep_the_local_day_but_give_the_title(record: EventRecord) -> None:
    """GIVEN a record without a usable start/end WHEN the window is computed
    THEN the local-day window stays and the title still applies."""
    window = event_window(parse_event_id("2026-04-29"), LA, 0, record)
    assert (window.start, window.end) == local_day_window(parse_event_id("2026-04-29"), LA)
    assert window.title == record.title
    assert not window.overridden
