"""The Instagram access token: the secret's JSON shape, and the token store.

The secret (``TOKEN_SECRET_ID``) holds ``{"access_token", "kind", "expires_at",
"refreshed_at", "user_id", ...}``; only ``access_token`` is required. Every
token value read is registered with :mod:`shared.redaction` before it can
reach a log line.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.config import Settings
from shared.redaction import register_secret
from shared.timestamps import format_utc, parse_utc

CURRENT_STAGE = "AWSCURRENT"
# Short enough that a finished rotation is picked up within minutes, long
# enough that a warm container does not read the secret on every run.
CACHE_SECONDS = 300.0


class TokenUnavailableError(RuntimeError):
    """No usable token: the secret is missing, unreadable or malformed."""


@dataclass(frozen=True)
class TokenRecord:
    """The parsed token secret.

    Attributes
    ----------
    access_token
        The token itself; never logged.
    kind
        ``"instagram"`` (Instagram login) or ``"facebook"`` (Facebook login).
    expires_at
        When the token dies; ``None`` when unknown or never (a Page token).
    refreshed_at
        When the token was last refreshed or exchanged.
    extra
        Other keys of the secret JSON (``app_id``, ``app_secret``, ...), kept
        so a rotation carries them over.
    """

    access_token: str
    kind: str = "instagram"
    expires_at: datetime | None = None
    refreshed_at: datetime | None = None
    user_id: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"TokenRecord(kind={self.kind!r}, expires_at={self.expires_at!r}, token=***)"

    @classmethod
    def from_secret_string(cls, secret_string: str) -> TokenRecord:
        """Parse the secret's JSON.

        Raises
        ------
        TokenUnavailableError
            When the JSON is malformed or has no ``access_token``; the message
            never quotes the secret.
        """
        try:
            data = json.loads(secret_string)
        except (TypeError, ValueError):
            raise TokenUnavailableError("token secret is not valid JSON") from None
        if not isinstance(data, dict):
            raise TokenUnavailableError("token secret is not a JSON object")
        token = data.get("access_token")
        if not isinstance(token, str) or not token.strip():
            raise TokenUnavailableError("token secret has no access_token")
        register_secret(token)
        register_secret(data.get("app_secret"))
        try:
            expires_at = _optional_time(data.get("expires_at"))
            refreshed_at = _optional_time(data.get("refreshed_at"))
        except ValueError as exc:
            raise TokenUnavailableError(f"token secret has a bad date: {exc}") from None
        known = {"access_token", "kind", "expires_at", "refreshed_at", "user_id"}
        return cls(
            access_token=token.strip(),
            kind=str(data.get("kind") or "instagram"),
            expires_at=expires_at,
            refreshed_at=refreshed_at,
            user_id=str(data["user_id"]) if data.get("user_id") else None,
            extra={key: value for key, value in data.items() if key not in known},
        )

    def to_secret_string(self) -> str:
        """Serialize back to the secret's JSON shape."""
        data: dict[str, Any] = dict(self.extra)
        data.update(
            access_token=self.access_token,
            kind=self.kind,
            expires_at=format_utc(self.expires_at) if self.expires_at else None,
            refreshed_at=format_utc(self.refreshed_at) if self.refreshed_at else None,
            user_id=self.user_id,
        )
        return json.dumps({key: value for key, value in data.items() if value is not None})


def _optional_time(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    return parse_utc(str(value))


class TokenStore:
    """Reads the current token for Graph calls, cached per container.

    ``AWSCURRENT`` is read explicitly from Secrets Manager when
    ``TOKEN_SECRET_ID`` is set; otherwise ``IG_ACCESS_TOKEN`` is used (local
    and dev only).
    """

    def __init__(
        self,
        settings: Settings,
        read_secret: Callable[[str], str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._read_secret = read_secret or _read_current_secret
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: TokenRecord | None = None
        self._cached_at = 0.0

    def current(self) -> TokenRecord:
        """The current token record, from cache when fresh.

        Raises
        ------
        TokenUnavailableError
            When no token is configured or the secret cannot be used.
        """
        with self._lock:
            if self._cached is not None and self._clock() - self._cached_at < CACHE_SECONDS:
                return self._cached
            record = self._load()
            self._cached, self._cached_at = record, self._clock()
            return record

    def invalidate(self) -> None:
        """Forget the cached token: the next :meth:`current` reads it again.

        Called after Instagram rejects a token, since a rotation may just have
        replaced it.
        """
        with self._lock:
            self._cached = None

    def _load(self) -> TokenRecord:
        secret_id = self._settings.token_secret_id
        if secret_id:
            return TokenRecord.from_secret_string(self._read_secret(secret_id))
        if self._settings.ig_access_token:
            register_secret(self._settings.ig_access_token)
            return TokenRecord(access_token=self._settings.ig_access_token)
        raise TokenUnavailableError(
            "no Instagram token configured: set TOKEN_SECRET_ID (or IG_ACCESS_TOKEN locally)"
        )


def _read_current_secret(secret_id: str) -> str:
    from botocore.exceptions import BotoCoreError, ClientError

    from shared.aws import secrets_client

    try:
        response = secrets_client().get_secret_value(SecretId=secret_id, VersionStage=CURRENT_STAGE)
    except (ClientError, BotoCoreError) as exc:
        raise TokenUnavailableError(f"cannot read the token secret: {exc}") from None
    return response["SecretString"]
