"""The Instagram access token: the secret's JSON shape, its policy, the token store.

The secret (``TOKEN_SECRET_ID``) holds ``{"access_token", "kind", "expires_at",
"refreshed_at", "user_id", ...}``; only ``access_token`` is required. Every
token value read is registered with :mod:`shared.redaction` before it can
reach a log line.

Token policy (pure, no AWS, no HTTP): how long a token has left, whether it
can be renewed now, and how. A token is renewed one of three ways:

- ``kind: "instagram"`` (Instagram login): ``refresh_access_token``, possible
  only once the token is at least 24 hours old and not expired.
- ``kind: "facebook"`` with ``app_id`` and ``app_secret`` in the secret (a
  Facebook-login user token): ``fb_exchange_token``.
- ``kind: "facebook"`` without app credentials and without ``expires_at``: a
  long-lived Page token, which does not expire; it is re-validated and
  carried over unchanged.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from shared.config import Settings
from shared.redaction import register_secret
from shared.timestamps import format_utc, parse_utc, utc_now

# Secrets Manager staging labels: the version in use, and a rotation's new one.
CURRENT_STAGE = "AWSCURRENT"
PENDING_STAGE = "AWSPENDING"
INSTAGRAM = "instagram"
FACEBOOK = "facebook"
# Instagram refuses to refresh a token younger than this (refresh_access_token docs).
MIN_REFRESH_AGE = timedelta(hours=24)
_SECONDS_PER_DAY = 86400.0
# Short enough that a finished rotation is picked up within minutes, long
# enough that a warm container does not read the secret on every run.
CACHE_SECONDS = 300.0


class TokenUnavailableError(RuntimeError):
    """No usable token: the secret is missing, unreadable or malformed."""


class TokenPolicyError(RuntimeError):
    """The token cannot be renewed as it stands; the message says why."""


class TokenExpiredError(TokenPolicyError):
    """The token has expired: only a new token from a login can replace it."""


class TokenTooYoungError(TokenPolicyError):
    """The token is under 24 hours old: Instagram will not refresh it yet."""


class RenewalMethod(Enum):
    """How a rotation gets the next token from the current one."""

    INSTAGRAM_REFRESH = "refresh_access_token"
    FACEBOOK_EXCHANGE = "fb_exchange_token"
    PAGE_REVALIDATE = "page token re-validation"


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

    @property
    def app_credentials(self) -> tuple[str, str] | None:
        """``(app_id, app_secret)`` from the secret, when both are set."""
        app_id, app_secret = self.extra.get("app_id"), self.extra.get("app_secret")
        if app_id and isinstance(app_secret, str) and app_secret:
            return str(app_id), app_secret
        return None

    def days_left(self, now: datetime | None = None) -> float | None:
        """Days until the token expires (negative once expired).

        Parameters
        ----------
        now
            The current time; :func:`shared.timestamps.utc_now` when omitted.

        Returns
        -------
        float or None
            ``None`` when the expiry is unknown or never (a Page token).
        """
        if self.expires_at is None:
            return None
        moment = now or utc_now()
        return (self.expires_at - moment).total_seconds() / _SECONDS_PER_DAY

    def is_expired(self, now: datetime | None = None) -> bool:
        """Whether ``expires_at`` is known and has passed."""
        left = self.days_left(now)
        return left is not None and left <= 0

    def renewal_method(self) -> RenewalMethod:
        """How this token is renewed (see the module docstring).

        Raises
        ------
        TokenPolicyError
            For an unknown ``kind``, or a Facebook user token (it has an
            expiry) without the ``app_id``/``app_secret`` its exchange needs.
        """
        if self.kind == INSTAGRAM:
            return RenewalMethod.INSTAGRAM_REFRESH
        if self.kind != FACEBOOK:
            raise TokenPolicyError(
                f"unknown token kind {self.kind[:40]!r}: expected 'instagram' or 'facebook'"
            )
        if self.app_credentials is not None:
            return RenewalMethod.FACEBOOK_EXCHANGE
        if self.expires_at is None:
            return RenewalMethod.PAGE_REVALIDATE
        raise TokenPolicyError(
            "a Facebook-login user token expires, and exchanging it needs 'app_id' and "
            "'app_secret' in the secret JSON; add them (keep every other key)"
        )

    def check_renewable(self, now: datetime) -> None:
        """Refuse a renewal that Instagram or Facebook would refuse anyway.

        Raises
        ------
        TokenExpiredError
            When ``expires_at`` has passed.
        TokenTooYoungError
            When an Instagram-login token was refreshed under 24 hours ago.
        """
        if self.expires_at is not None and self.is_expired(now):
            raise TokenExpiredError(
                f"the token expired at {format_utc(self.expires_at)} and can no longer be "
                "refreshed or exchanged"
            )
        if self.kind == INSTAGRAM and self.refreshed_at is not None:
            allowed_from = self.refreshed_at + MIN_REFRESH_AGE
            if now < allowed_from:
                raise TokenTooYoungError(
                    f"the token was refreshed at {format_utc(self.refreshed_at)}, less than "
                    "24 hours ago; Instagram refreshes only tokens at least 24 h old: rotate "
                    f"again after {format_utc(allowed_from)}"
                )

    def renewed(self, access_token: str, expires_in: float | None, now: datetime) -> TokenRecord:
        """The record after a refresh or exchange answered at ``now``.

        Parameters
        ----------
        access_token
            The token Instagram or Facebook returned (registered for redaction).
        expires_in
            Its lifetime in seconds; ``None`` when the endpoint sent none.
        now
            When the answer arrived: the new ``refreshed_at``.
        """
        register_secret(access_token)
        expires_at = now + timedelta(seconds=expires_in) if expires_in else None
        return replace(self, access_token=access_token, expires_at=expires_at, refreshed_at=now)

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
    # Imported here: the token policy above stays free of AWS imports.
    from shared.secrets import SecretStoreError, SecretVersions

    try:
        version = SecretVersions(secret_id).read(CURRENT_STAGE)
    except SecretStoreError as exc:
        raise TokenUnavailableError(f"cannot read the token secret: {exc}") from None
    if version is None:
        raise TokenUnavailableError(
            f"token secret {secret_id} not found, or it has no {CURRENT_STAGE} value"
        )
    return version.secret_string
