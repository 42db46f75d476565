"""The ingest state: where the next run continues from."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class IngestState:
    """The single ingest-state item.

    Attributes
    ----------
    high_water_mark
        The newest post timestamp known to be stored with nothing missing
        before it; it only advances when a run pages all the way down to it.
    last_run_at, last_success_at
        When a run last started and last finished its job.
    consecutive_failures
        Runs in a row that raised; reset by a success.
    last_error
        The cause of the last failure, already redacted (never a token).
    resume_after
        While Instagram throttles us, runs before this time make no Graph call.
    """

    high_water_mark: datetime | None = None
    last_run_at: datetime | None = None
    last_success_at: datetime | None = None
    consecutive_failures: int = 0
    last_error: str | None = None
    resume_after: datetime | None = None
