"""Event records: operator-set overrides of a charter's title and window."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class EventRecord:
    """An optional record in the table for one ``event_id``.

    ``start``/``end`` (UTC, end excluded) replace the default local-day window
    when both are set; ``title`` is shown on the page.
    """

    event_id: str
    title: str | None = None
    start: datetime | None = None
    end: datetime | None = None
