"""A Lambda context object for invoking handlers outside Lambda."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field


@dataclass(frozen=True)
class LocalLambdaContext:
    """The attributes of Lambda's context that handlers and Powertools read.

    Parameters
    ----------
    function_name
        The function's name (``serve``, ``ingest``, ...).
    timeout_seconds
        The configured timeout, for :meth:`get_remaining_time_in_millis`.
    """

    function_name: str
    timeout_seconds: float = 30.0
    memory_limit_in_mb: int = 512
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = ""
    log_stream_name: str = "local"
    _deadline: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_deadline", time.monotonic() + self.timeout_seconds)
        object.__setattr__(self, "log_group_name", f"/aws/lambda/{self.function_name}")

    @property
    def invoked_function_arn(self) -> str:
        """A well-formed ARN in a dummy account, as Powertools logs it."""
        return f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the configured timeout."""
        return max(0, int((self._deadline - time.monotonic()) * 1000))
