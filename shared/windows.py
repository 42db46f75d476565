"""Event ids and event windows: which moments belong to a charter.

An event id is ``YYYY-MM-DD`` optionally followed by ``-<slug>``. Decision on
the "64 characters at most" of the design brief: the limit applies to the
**whole id** (date included), so a slug has at most 53 characters. The
brief's character list (lowercase letters, digits, hyphens) describes the
whole id just as well, and a cap on the whole id is what bounds the S3 prefix
and the URL. A slug is one or more of ``[a-z0-9]`` groups joined by single
hyphens: no leading, trailing or doubled hyphen (``2026-04-29-`` is a typo,
not a slug). The date must be a real calendar date (``2026-02-30`` is not).

The window of an event is its local calendar day in ``EVENT_TIMEZONE``,
computed with the zone's rules for that very day (23 or 25 hours long on a
DST change), extended by ``POST_GRACE_HOURS`` of elapsed time: ``[start, end)``.
An event record with both ``start`` and ``end`` replaces that window.

This module is pure domain code: no AWS, no settings lookup.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from shared.events import EventRecord

MAX_EVENT_ID_LENGTH = 64
# ASCII classes spelled out: ``\d`` would also accept non-ASCII digits.
_EVENT_ID = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})(?:-([a-z0-9]+(?:-[a-z0-9]+)*))?")


class InvalidEventIdError(ValueError):
    """The text is not an event id; the message is safe to show a guest."""


@dataclass(frozen=True)
class EventId:
    """A validated event id.

    Attributes
    ----------
    value
        The id as given, e.g. ``2026-04-29-sunset``.
    day
        The charter's local calendar date.
    slug
        The part after the date, or ``None``.
    """

    value: str
    day: date
    slug: str | None = None

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class EventWindow:
    """The moments that belong to an event: ``start <= t < end`` (UTC).

    Attributes
    ----------
    event_id
        The event's id.
    start, end
        Timezone-aware UTC bounds; ``end`` is excluded.
    timezone
        The IANA zone the local day was taken in.
    title
        The operator's title from the event record, if any.
    overridden
        Whether an event record set the bounds.
    """

    event_id: str
    start: datetime
    end: datetime
    timezone: str
    title: str | None = None
    overridden: bool = False

    def contains(self, moment: datetime) -> bool:
        """Whether ``moment`` belongs to the window (start included, end excluded)."""
        return self.start <= moment < self.end


def parse_event_id(text: str) -> EventId:
    """Validate an event id from a URL.

    Parameters
    ----------
    text
        The path segment after ``/g/``, already percent-decoded.

    Returns
    -------
    EventId
        The parsed id.

    Raises
    ------
    InvalidEventIdError
        When ``text`` is longer than 64 characters, does not follow the
        grammar (uppercase, non-ASCII, ``/``, dots, ...) or names a date that
        does not exist.
    """
    if len(text) > MAX_EVENT_ID_LENGTH:
        raise InvalidEventIdError(f"an event id has at most {MAX_EVENT_ID_LENGTH} characters")
    match = _EVENT_ID.fullmatch(text)
    if match is None:
        raise InvalidEventIdError(
            "an event id is YYYY-MM-DD, optionally followed by -slug "
            "(lowercase letters, digits and single hyphens)"
        )
    year, month, day, slug = match.groups()
    try:
        calendar_day = date(int(year), int(month), int(day))
    except ValueError:
        raise InvalidEventIdError(
            f"an event id starts with a real date; {year}-{month}-{day} is not one"
        ) from None
    return EventId(value=text, day=calendar_day, slug=slug)


def local_day_window(
    event: EventId, timezone: str, grace_hours: float = 0.0
) -> tuple[datetime, datetime]:
    """The UTC bounds of the event's local calendar day plus the grace period.

    Parameters
    ----------
    event
        The event whose day is wanted.
    timezone
        IANA zone name of the charters (``EVENT_TIMEZONE``).
    grace_hours
        Elapsed hours after local midnight that still count (``POST_GRACE_HOURS``).

    Returns
    -------
    tuple of datetime
        ``(start, end)`` in UTC, ``end`` excluded.
    """
    zone = ZoneInfo(timezone)
    # Each midnight is resolved with the offset in force on that date, so a
    # spring-forward day is 23 h and a fall-back day 25 h. Where midnight
    # itself falls in a DST gap (e.g. America/Santiago), fold=0 maps it to
    # the instant the day actually begins.
    start = datetime.combine(event.day, time(), tzinfo=zone).astimezone(UTC)
    next_midnight = datetime.combine(event.day + timedelta(days=1), time(), tzinfo=zone)
    end = next_midnight.astimezone(UTC) + timedelta(hours=grace_hours)
    return start, end


def event_window(
    event: EventId,
    timezone: str,
    grace_hours: float = 0.0,
    record: EventRecord | None = None,
) -> EventWindow:
    """The window of an event, with an event record's overrides applied.

    Parameters
    ----------
    event
        The event.
    timezone, grace_hours
        ``EVENT_TIMEZONE`` and ``POST_GRACE_HOURS``.
    record
        The event's record, if the table holds one. Its ``title`` is always
        used; its ``start``/``end`` replace the local-day window only when
        both are set and ``start < end`` (a half-set or inverted record must
        not hide a charter's photos).

    Returns
    -------
    EventWindow
        The bounds to query, in UTC.
    """
    title = record.title if record else None
    if record and record.start and record.end and record.start < record.end:
        return EventWindow(
            event_id=event.value,
            start=record.start.astimezone(UTC),
            end=record.end.astimezone(UTC),
            timezone=timezone,
            title=title,
            overridden=True,
        )
    start, end = local_day_window(event, timezone, grace_hours)
    return EventWindow(event.value, start, end, timezone, title)
