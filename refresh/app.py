"""The refresh Lambda: the token secret's Secrets Manager rotation function.

Secrets Manager invokes it with ``{"Step", "SecretId", "ClientRequestToken"}``
once per rotation step; the work is :class:`shared.rotation.TokenRotation`.
This module only validates the event, wires the adapters, logs and emits
``RotationFailed`` (1 on a failed step, 0 otherwise) and
``RotationSucceeded`` (1 on a successful ``finishSecret``).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from shared.config import get_settings
from shared.observability import get_logger, get_metrics
from shared.rotation import RotationRequest, Step, TokenRotation
from shared.secrets import SecretVersions
from shared.token_endpoints import TokenEndpoints

logger = get_logger("refresh")
metrics = get_metrics("refresh")


@metrics.log_metrics
def handler(event: Any, context: Any) -> dict[str, Any]:
    """Run one rotation step.

    Parameters
    ----------
    event
        ``{"Step": "createSecret"|"setSecret"|"testSecret"|"finishSecret",
        "SecretId": <arn>, "ClientRequestToken": <version id>}``.
    context
        The Lambda context (its request id goes into the logs when present).

    Returns
    -------
    dict
        What the step did (``step``, ``version_id``, ``action``,
        ``expires_at``); never a token.

    Raises
    ------
    Exception
        A refused or failed step; the message says why and what to do, and
        ``AWSCURRENT`` is unchanged unless ``finishSecret`` succeeded.
    """
    keys: dict[str, Any] = {"request_id": getattr(context, "aws_request_id", None)}
    endpoints: TokenEndpoints | None = None
    try:
        request = RotationRequest.from_event(event)
        keys.update(
            step=str(request.step), secret_id=request.secret_id, version_id=request.version_id
        )
        endpoints = TokenEndpoints(get_settings().graph_api_url)
        rotation = TokenRotation(SecretVersions(request.secret_id), endpoints)
        outcome = rotation.run(request.step, request.version_id, request.rotation_token)
    except Exception:
        metrics.add_metric(name="RotationFailed", unit=MetricUnit.Count, value=1)
        graph_calls = endpoints.calls if endpoints else 0
        logger.exception("rotation step failed", extra={**keys, "graph_calls": graph_calls})
        raise
    metrics.add_metric(name="RotationFailed", unit=MetricUnit.Count, value=0)
    if outcome.step is Step.FINISH:
        metrics.add_metric(name="RotationSucceeded", unit=MetricUnit.Count, value=1)
    summary = outcome.as_dict()
    logger.info("rotation step done", extra={**keys, **summary, "graph_calls": endpoints.calls})
    return summary
