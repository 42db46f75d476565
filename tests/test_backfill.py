"""Validation of the operator's backfill payload (no AWS, no HTTP needed)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from shared.backfill import (
    BackfillPayloadError,
    BackfillRequest,
    backfill_from_event,
    parse_backfill,
)


def test_dates_are_utc_midnights_and_dry_run_defaults_to_false() -> None:
    """GIVEN plain dates
    WHEN the payload is parsed
    THEN since/until are UTC midnights and it is a real run."""
    request = parse_backfill({"since": "2026-01-01", "until": "2026-05-01"})

    assert request == BackfillRequest(
        since=datetime(2026, 1, 1, tzinfo=UTC),
        until=datetime(2026, 5, 1, tzinfo=UTC),
        dry_run=False,
    )
    assert request.describe() == {
        "since": "2026-01-01T00:00:00Z",
        "until": "2026-05-01T00:00:00Z",
        "dry_run": False,
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-04-29T10:30:00", datetime(2026, 4, 29, 10, 30, tzinfo=UTC)),
        ("2026-04-29T10:30:00Z", datetime(2026, 4, 29, 10, 30, tzinfo=UTC)),
        ("2026-04-29T10:30:00+02:00", datetime(2026, 4, 29, 8, 30, tzinfo=UTC)),
        ("2026-04-29T10:30:00-07:00", datetime(2026, 4, 29, 17, 30, tzinfo=UTC)),
    ],
)
def test_iso_datetimes_without_offset_are_utc_and_offsets_are_honoured(
    text: str, expected: datetime
) -> None:
    """GIVEN an ISO 8601 datetime as since
    WHEN the payload is parsed
    THEN it becomes that instant in UTC (no offset meaning UTC)."""
    request = parse_backfill({"since": text, "until": "2026-05-01", "dry_run": True})

    assert request.since == expected
    assert request.dry_run is True


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (["2026-01-01", "2026-05-01"], "backfill must be a JSON object, got a list"),
        ("2026-01-01..2026-05-01", "backfill must be a JSON object, got a string"),
        (None, "got null"),
        ({"since": "2026-05-01", "until": "2026-05-01"}, "must be before"),
        ({"since": "2026-05-02", "until": "2026-05-01"}, "must be before"),
        ({"since": "2026-01-01", "until": "2026-05-01", "extra": 1}, "unknown key(s) 'extra'"),
        ({"since": "2026-01-01", "until": "2026-05-01", "Since": "x"}, "unknown key(s) 'Since'"),
        ({"since": "2026-01-01"}, "backfill needs until"),
        ({}, "backfill needs since and until"),
        ({"since": "garbage", "until": "2026-05-01"}, "backfill.since is not a date"),
        ({"since": "2026-02-30", "until": "2026-05-01"}, "backfill.since is not a date"),
        ({"since": "2026-01-01", "until": "2026-05-01T25:00"}, "backfill.until is not a date"),
        ({"since": "2026-01-01", "until": "9999-12-31T23:59:59-05:00"}, "backfill.until"),
        ({"since": 20260101, "until": "2026-05-01"}, "must be a date string"),
        ({"since": "2026-01-01", "until": "2026-05-01", "dry_run": "false"}, "dry_run must be"),
        ({"since": "2026-01-01", "until": "2026-05-01", "dry_run": 0}, "dry_run must be"),
        ({"since": "2000-01-01", "until": "2026-05-01"}, "over the maximum of 3653 days"),
    ],
)
def test_bad_payloads_are_refused_with_a_message_that_says_what_to_fix(
    payload: Any, message: str
) -> None:
    """GIVEN a malformed backfill payload
    WHEN it is parsed
    THEN BackfillPayloadError names the problem."""
    with pytest.raises(BackfillPayloadError) as raised:
        parse_backfill(payload)

    assert message in str(raised.value)


def test_events_without_backfill_are_incremental_runs() -> None:
    """GIVEN the scheduler's {} or an EventBridge event
    WHEN the event is read
    THEN there is no backfill request."""
    assert backfill_from_event({}) is None
    assert backfill_from_event({"id": "abc", "source": "aws.scheduler", "detail": {}}) is None


def test_an_event_that_is_not_an_object_is_refused() -> None:
    """GIVEN an event that is a list
    WHEN the event is read
    THEN it is refused."""
    with pytest.raises(BackfillPayloadError, match="ingest event must be a JSON object"):
        backfill_from_event([{"backfill": {}}])


def test_backfill_key_in_an_event_is_validated() -> None:
    """GIVEN an event with a backfill key
    WHEN the event is read
    THEN its payload is validated like parse_backfill does."""
    request = backfill_from_event({"backfill": {"since": "2026-04-01", "until": "2026-04-02"}})
    assert request is not None
    assert request.until == datetime(2026, 4, 2, tzinfo=UTC)
    with pytest.raises(BackfillPayloadError, match="got null"):
        backfill_from_event({"backfill": None})
