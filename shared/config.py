"""Runtime configuration, read once per container from the environment.

The variables and their defaults are the public contract in the design brief
(``MEDIA_TABLE``, ``MEDIA_BUCKET``, ``UPLOADS_PREFIX``, ...). Nothing else is
needed to run a handler; AWS endpoints come from the standard
``AWS_ENDPOINT_URL`` variable, which boto3 and PynamoDB honour on their own.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_GRAPH_API_URL = "https://graph.instagram.com/v25.0"
DEFAULT_MEDIA_HOSTS = ("cdninstagram.com", "fbcdn.net")


class ConfigError(RuntimeError):
    """A required variable is missing or a value cannot be used."""


@dataclass(frozen=True)
class Settings:
    """Validated configuration of one container.

    Attributes mirror the environment variables of the design brief.
    """

    media_table: str
    media_bucket: str
    uploads_prefix: str = "uploads/"
    token_secret_id: str | None = None
    ig_access_token: str | None = None
    ig_user_id: str = "me"
    graph_api_url: str = DEFAULT_GRAPH_API_URL
    media_hosts: tuple[str, ...] = DEFAULT_MEDIA_HOSTS
    event_timezone: str = "America/Los_Angeles"
    post_grace_hours: float = 0.0
    aws_region: str = "us-east-1"
    aws_endpoint_url: str | None = None

    @property
    def zone(self) -> ZoneInfo:
        """The charters' local time zone."""
        return ZoneInfo(self.event_timezone)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from environment variables.

        Parameters
        ----------
        env
            The variables to read; ``os.environ`` when omitted.

        Raises
        ------
        ConfigError
            When a required variable is missing or a value is malformed.
        """
        env = os.environ if env is None else env
        media_table = _required(env, "MEDIA_TABLE")
        media_bucket = _required(env, "MEDIA_BUCKET")
        uploads_prefix = env.get("UPLOADS_PREFIX") or "uploads/"
        if not uploads_prefix.endswith("/"):
            uploads_prefix += "/"
        timezone = env.get("EVENT_TIMEZONE") or "America/Los_Angeles"
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ConfigError(f"EVENT_TIMEZONE is not an IANA time zone: {timezone!r}") from exc
        grace_text = env.get("POST_GRACE_HOURS") or "0"
        try:
            grace = float(grace_text)
        except ValueError as exc:
            raise ConfigError(f"POST_GRACE_HOURS is not a number: {grace_text!r}") from exc
        if not 0 <= grace <= 72:
            raise ConfigError("POST_GRACE_HOURS must be between 0 and 72")
        hosts = tuple(
            host.strip().lower().strip(".")
            for host in (env.get("MEDIA_HOSTS") or ",".join(DEFAULT_MEDIA_HOSTS)).split(",")
            if host.strip()
        )
        return cls(
            media_table=media_table,
            media_bucket=media_bucket,
            uploads_prefix=uploads_prefix,
            token_secret_id=env.get("TOKEN_SECRET_ID") or None,
            ig_access_token=env.get("IG_ACCESS_TOKEN") or None,
            ig_user_id=env.get("IG_USER_ID") or "me",
            graph_api_url=(env.get("GRAPH_API_URL") or DEFAULT_GRAPH_API_URL).rstrip("/"),
            media_hosts=hosts,
            event_timezone=timezone,
            post_grace_hours=grace,
            aws_region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
            aws_endpoint_url=env.get("AWS_ENDPOINT_URL") or None,
        )


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name)
    if not value:
        raise ConfigError(f"{name} is required but not set")
    return value


@functools.cache
def get_settings() -> Settings:
    """Return this container's settings, read from the environment on first use."""
    return Settings.from_env()
