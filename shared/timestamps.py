"""UTC timestamps: Graph's ``+0000`` format in, ``...Z`` ISO 8601 out."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

GRAPH_FORMAT = "%Y-%m-%dT%H:%M:%S%z"


def utc_now() -> datetime:
    """The current time, timezone-aware UTC, to the second."""
    return datetime.now(UTC).replace(microsecond=0)


def parse_graph_timestamp(value: str) -> datetime:
    """Parse Graph's ``2026-04-30T05:30:00+0000`` (offset without colon) to UTC.

    Raises
    ------
    ValueError
        When ``value`` is not in that exact format.
    """
    return datetime.strptime(value, GRAPH_FORMAT).astimezone(UTC)


def format_utc(moment: datetime) -> str:
    """Format an aware datetime as ``2026-04-30T05:30:00Z`` (UTC, to the second)."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: timestamps must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_utc(value: str) -> datetime:
    """Parse a date or ISO 8601 datetime; no offset means UTC.

    Parameters
    ----------
    value
        ``2026-01-01``, ``2026-01-01T10:00:00``, ``2026-01-01T10:00:00Z`` or
        ``2026-01-01T10:00:00+02:00``.

    Raises
    ------
    ValueError
        When ``value`` is neither a date nor an ISO 8601 datetime.
    """
    if not isinstance(value, str):
        raise ValueError(f"expected a date string, got {type(value).__name__}")
    text = value.strip()
    if len(text) == 10:
        return datetime.combine(date.fromisoformat(text), time(), tzinfo=UTC)
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)
