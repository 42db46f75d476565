"""The operator's backfill request, validated strictly before any call or write.

``{"backfill": {"since": "2026-01-01", "until": "2026-05-01", "dry_run": false}}``:
``since`` and ``until`` are dates or ISO 8601 datetimes (no offset means UTC),
``since < until``, the range at most :data:`MAX_RANGE`; ``dry_run`` is an
optional boolean. Anything else is refused with a message that says what to
fix, because the operator types this payload by hand into
``aws lambda invoke``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shared.timestamps import format_utc, parse_utc

# Instagram's media edge returns at most the newest 10K posts; ten years of
# them is already far more than one account publishes. A larger range is a
# typo (2062 for 2026), not a request.
MAX_RANGE = timedelta(days=3653)
_REQUIRED = ("since", "until")
_ALLOWED = frozenset({"since", "until", "dry_run"})
_EXAMPLE = '{"backfill": {"since": "2026-01-01", "until": "2026-05-01", "dry_run": false}}'


class BackfillPayloadError(ValueError):
    """The ingest event or its ``backfill`` payload is unusable; nothing was done."""


@dataclass(frozen=True)
class BackfillRequest:
    """A validated backfill: posts with ``since <= taken_at < until`` (UTC)."""

    since: datetime
    until: datetime
    dry_run: bool = False

    def describe(self) -> dict[str, Any]:
        """The request as JSON-ready values, for the run summary."""
        return {
            "since": format_utc(self.since),
            "until": format_utc(self.until),
            "dry_run": self.dry_run,
        }


def backfill_from_event(event: Any) -> BackfillRequest | None:
    """Read the backfill request of an ingest event, if it has one.

    Parameters
    ----------
    event
        The Lambda event. The schedule sends ``{}``; any event without a
        ``backfill`` key is an incremental run.

    Returns
    -------
    BackfillRequest or None
        ``None`` for an incremental run.

    Raises
    ------
    BackfillPayloadError
        When the event is not a JSON object or its ``backfill`` is invalid.
    """
    if not isinstance(event, Mapping):
        raise BackfillPayloadError(
            f"the ingest event must be a JSON object, got {_kind(event)}; e.g. {_EXAMPLE}"
        )
    if "backfill" not in event:
        return None
    return parse_backfill(event["backfill"])


def parse_backfill(payload: Any) -> BackfillRequest:
    """Validate a ``backfill`` payload.

    Parameters
    ----------
    payload
        The value of the event's ``backfill`` key.

    Returns
    -------
    BackfillRequest
        The range in UTC and the dry-run flag.

    Raises
    ------
    BackfillPayloadError
        When the payload is not an object, has unknown or missing keys, an
        unreadable date, ``since >= until``, a range over :data:`MAX_RANGE`
        or a non-boolean ``dry_run``.
    """
    if not isinstance(payload, Mapping):
        raise BackfillPayloadError(
            f"backfill must be a JSON object, got {_kind(payload)}; e.g. {_EXAMPLE}"
        )
    unknown = sorted(str(key) for key in payload if key not in _ALLOWED)
    if unknown:
        raise BackfillPayloadError(
            f"backfill has unknown key(s) {', '.join(map(repr, unknown))}; "
            f"allowed: since, until, dry_run"
        )
    missing = [key for key in _REQUIRED if key not in payload]
    if missing:
        raise BackfillPayloadError(f"backfill needs {' and '.join(missing)}; e.g. {_EXAMPLE}")
    since = _moment(payload, "since")
    until = _moment(payload, "until")
    if since >= until:
        raise BackfillPayloadError(
            f"backfill.since ({format_utc(since)}) must be before "
            f"backfill.until ({format_utc(until)})"
        )
    if until - since > MAX_RANGE:
        raise BackfillPayloadError(
            f"backfill range of {(until - since).days} days is over the maximum of "
            f"{MAX_RANGE.days} days; split it or check the years"
        )
    dry_run = payload.get("dry_run", False)
    if not isinstance(dry_run, bool):
        raise BackfillPayloadError(
            f"backfill.dry_run must be true or false, got {_kind(dry_run)} {_show(dry_run)}"
        )
    return BackfillRequest(since=since, until=until, dry_run=dry_run)


def _moment(payload: Mapping[str, Any], key: str) -> datetime:
    value = payload[key]
    if not isinstance(value, str):
        raise BackfillPayloadError(
            f"backfill.{key} must be a date string like 2026-01-01, got {_kind(value)}"
        )
    try:
        return parse_utc(value)
    except (ValueError, OverflowError):
        raise BackfillPayloadError(
            f"backfill.{key} is not a date (2026-01-01) or ISO 8601 datetime "
            f"(2026-01-01T10:00:00Z): {_show(value)}"
        ) from None


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    return names.get(type(value), f"a {type(value).__name__}")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
