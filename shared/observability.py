"""Structured JSON logs and EMF metrics (AWS Lambda Powertools), secret-safe.

Every serialized log line passes through :func:`shared.redaction.redact`, so a
token can not leak through a message, an ``extra`` field or a traceback.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter
from aws_lambda_powertools.logging.types import PowertoolsLogRecord

from shared.redaction import redact

METRICS_NAMESPACE = "SailJadaGallery"


class RedactingFormatter(LambdaPowertoolsFormatter):
    """Powertools JSON formatter that scrubs secrets from the final line."""

    def serialize(self, log: dict[str, Any] | PowertoolsLogRecord) -> str:
        return redact(super().serialize(log))


def get_logger(service: str) -> Logger:
    """Return the structured logger of one function.

    Parameters
    ----------
    service
        The function's name (``ingest``, ``serve``, ``refresh``); it becomes the
        ``service`` key of every line.
    """
    return Logger(service=service, logger_formatter=RedactingFormatter())


def get_metrics(service: str) -> Metrics:
    """Return the EMF metrics collector of one function."""
    return Metrics(namespace=METRICS_NAMESPACE, service=service)
