"""Keep secrets out of logs, exception texts, metrics and results.

Graph puts the access token in URLs (``paging.next`` embeds it), and an
exception from requests quotes the URL, so every text that leaves the process
goes through :func:`redact`. Secrets are registered by value when they are
loaded and scrubbed wherever they appear, plus any ``access_token=``-style
query parameter whatever its value.
"""

from __future__ import annotations

import re
import threading

_SECRET_PARAMS = re.compile(
    r"(?i)((?:access_token|fb_exchange_token|client_secret|app_secret|input_token)"
    r"(?:=|%3D|\"\s*:\s*\"|'\s*:\s*'))[^&\s\"'<>]+"
)
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._\-|]+")
_REDACTED = "***"
_MIN_SECRET_LENGTH = 8

_lock = threading.Lock()
_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Remember a secret value so that :func:`redact` scrubs it everywhere."""
    if value and len(value) >= _MIN_SECRET_LENGTH:
        with _lock:
            _secrets.add(value)


def redact(text: str) -> str:
    """Return ``text`` with every registered secret and token parameter masked.

    Parameters
    ----------
    text
        Any text bound for a log line, an exception, a metric or a response.

    Returns
    -------
    str
        The same text with secrets replaced by ``***``.
    """
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, _REDACTED)
    text = _SECRET_PARAMS.sub(lambda m: m.group(1) + _REDACTED, text)
    return _BEARER.sub(lambda m: m.group(1) + _REDACTED, text)


def forget_secrets() -> None:
    """Drop registered secrets (tests only)."""
    with _lock:
        _secrets.clear()
