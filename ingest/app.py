"""The ingest Lambda: translate a scheduler or operator event into one ingest run.

``{}`` (the schedule) runs incrementally; ``{"backfill": {...}}`` backfills.
The work is :class:`shared.ingestion.IngestService`, then (except on dry
runs and rejected payloads) :class:`shared.upload_thumbnails.UploadThumbnailer`
for guest uploads; this module only wires adapters (once per container), logs
and emits metrics.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from shared.archive import S3ImageArchive
from shared.config import get_settings
from shared.graph import GraphClient
from shared.ingestion import IngestError, IngestService
from shared.observability import get_logger, get_metrics
from shared.repository import DynamoMediaRepository
from shared.tokens import TokenStore
from shared.upload_thumbnails import UploadThumbnailer

logger = get_logger("ingest")
metrics = get_metrics("ingest")


@dataclass(frozen=True)
class _Container:
    service: IngestService
    tokens: TokenStore
    thumbnails: UploadThumbnailer


@functools.cache
def _container() -> _Container:
    """The container's adapters, built on first use and reused while warm."""
    settings = get_settings()
    tokens = TokenStore(settings)
    graph = GraphClient(settings, tokens)
    service = IngestService(
        graph,
        DynamoMediaRepository(settings),
        archive=S3ImageArchive(settings, graph.get_media, logger=logger),
        logger=logger,
    )
    return _Container(
        service=service, tokens=tokens, thumbnails=UploadThumbnailer(settings, logger=logger)
    )


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    """Run ingest once and return its summary.

    Parameters
    ----------
    event
        ``{}`` for an incremental run, or
        ``{"backfill": {"since": ..., "until": ..., "dry_run": false}}``.
    context
        The Lambda context.

    Returns
    -------
    dict
        The run summary (``mode``, ``graph_calls``, ``seen``, ``written``,
        ``unchanged``, ``throttled``, ..., and ``upload_thumbnails``:
        ``made``/``failed``/``pending``).

    Raises
    ------
    Exception
        A bad payload, or a run that cannot do its job; the message names the
        cause and never contains the token.
    """
    correlation_id = event.get("id") if isinstance(event, Mapping) else None
    logger.set_correlation_id(
        correlation_id if isinstance(correlation_id, str) else context.aws_request_id
    )
    remaining_ms = getattr(context, "get_remaining_time_in_millis", None)
    time_left = (lambda: remaining_ms() / 1000) if callable(remaining_ms) else None
    try:
        summary = _container().service.run(event, time_left)
    except Exception as exc:
        metrics.add_metric(name="IngestRunFailed", unit=MetricUnit.Count, value=1)
        if isinstance(exc, IngestError):
            # Instagram being down must not stall guests' thumbnails.
            _thumbnail_uploads(exc.summary, time_left)
            _run_metrics(exc.summary)
        raise
    finally:
        _token_metric()
    _thumbnail_uploads(summary, time_left)
    metrics.add_metric(name="IngestRunFailed", unit=MetricUnit.Count, value=0)
    _run_metrics(summary)
    return summary


def _thumbnail_uploads(summary: dict[str, Any], time_left: Callable[[], float] | None) -> None:
    """Make missing upload renditions and add their counts to ``summary``."""
    if summary.get("dry_run"):
        return  # a dry run writes nothing, renditions included
    summary["upload_thumbnails"] = _container().thumbnails.run(time_left=time_left).as_dict()


def _run_metrics(summary: Mapping[str, Any]) -> None:
    counts = {
        "GraphCalls": summary.get("graph_calls"),
        "PostsWritten": summary.get("written"),
        "Throttled": int(bool(summary.get("throttled"))),
        "MirrorFailures": summary.get("mirror_failures"),
        "UploadThumbnailFailures": summary.get("upload_thumbnails", {}).get("failed"),
        "IngestConsecutiveFailures": summary.get("consecutive_failures"),
    }
    for name, value in counts.items():
        if isinstance(value, int):
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def _token_metric() -> None:
    # Reported on every run, failed ones included: an expiring token is
    # exactly what the alarm on this metric has to catch before runs fail.
    try:
        days_left = _container().tokens.current().days_left()
    except Exception as exc:
        logger.warning(f"token expiry unknown: {exc}")
        return
    if days_left is not None:
        metrics.add_metric(name="TokenDaysLeft", unit=MetricUnit.Count, value=round(days_left, 2))
