"""Token rotation: the four steps of the secret's Secrets Manager rotation function.

Secrets Manager calls the function once per step, each time with the same
``ClientRequestToken``, which is the id of the new secret version:

- ``createSecret``: renew the ``AWSCURRENT`` token (see
  :meth:`shared.tokens.TokenRecord.renewal_method`) and store the result as
  ``AWSPENDING`` under that version id. A retry finds the version already
  stored and does not call Instagram again.
- ``setSecret``: nothing to do; Instagram holds no copy to update.
- ``testSecret``: one Graph call (``/me``) with the pending token.
- ``finishSecret``: move ``AWSCURRENT`` to the new version; the old one
  becomes ``AWSPREVIOUS``.

No step writes to ``AWSCURRENT`` except the last, so a failure anywhere
leaves the token in use as it was. Errors say what happened and what the
operator can do; they never quote a token or the app secret.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from shared.graph_errors import GraphAuthError, GraphError, GraphResponseError
from shared.redaction import redact, register_secret
from shared.timestamps import format_utc, utc_now
from shared.tokens import (
    CURRENT_STAGE,
    FACEBOOK,
    INSTAGRAM,
    PENDING_STAGE,
    RenewalMethod,
    TokenExpiredError,
    TokenPolicyError,
    TokenRecord,
    TokenUnavailableError,
)

if TYPE_CHECKING:
    from shared.secrets import SecretDescription, StoredVersion
    from shared.token_endpoints import Identity, IssuedToken

# Secrets Manager's ClientRequestToken: 32 to 64 printable characters.
_VERSION_ID = re.compile(r"[!-~]{32,64}")
_MAX_SECRET_ID = 2048


class Step(StrEnum):
    """The rotation steps, named as Secrets Manager sends them."""

    CREATE = "createSecret"
    SET = "setSecret"
    TEST = "testSecret"
    FINISH = "finishSecret"


class RotationError(RuntimeError):
    """A rotation step failed or was refused; the message tells the operator why."""

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))


class RotationRequestError(RotationError, ValueError):
    """The invocation event is not a rotation step for this function."""


class SecretVersionStore(Protocol):
    """The versions of the token secret (:class:`shared.secrets.SecretVersions`)."""

    secret_id: str

    def describe(self) -> SecretDescription:
        """Rotation state and staging labels."""
        ...

    def read(self, stage: str, version_id: str | None = None) -> StoredVersion | None:
        """The value under ``stage`` (and ``version_id``), ``None`` when there is none."""
        ...

    def put_pending(
        self, version_id: str, secret_string: str, rotation_token: str | None = None
    ) -> None:
        """Store a new version staged ``AWSPENDING``."""
        ...

    def move_current(self, to_version_id: str, from_version_id: str | None) -> None:
        """Move ``AWSCURRENT`` between versions."""
        ...


class TokenIssuer(Protocol):
    """Instagram's and Facebook's token endpoints.

    Implemented by :class:`shared.token_endpoints.TokenEndpoints`.
    """

    def refresh_instagram(self, access_token: str) -> IssuedToken:
        """``refresh_access_token`` for an Instagram-login token."""
        ...

    def exchange_facebook(self, access_token: str, app_id: str, app_secret: str) -> IssuedToken:
        """``fb_exchange_token`` for a Facebook-login user token."""
        ...

    def identify(self, access_token: str, kind: str, *, retry: bool = True) -> Identity:
        """One ``/me`` call with ``access_token`` (retried when transient, if ``retry``)."""
        ...


@dataclass(frozen=True)
class RotationRequest:
    """One invocation by Secrets Manager.

    Attributes
    ----------
    step
        ``createSecret``, ``setSecret``, ``testSecret`` or ``finishSecret``.
    secret_id
        The secret's ARN.
    version_id
        The ``ClientRequestToken``: the new version's id.
    rotation_token
        ``RotationToken``, when Secrets Manager sends one: passed back with
        ``PutSecretValue`` so that Secrets Manager can tell the write comes
        from this rotation (needed when the function works through an
        assumed role).
    """

    step: Step
    secret_id: str
    version_id: str
    rotation_token: str | None = field(default=None, repr=False)

    @classmethod
    def from_event(cls, event: Any) -> RotationRequest:
        """Validate a rotation event ``{"Step", "SecretId", "ClientRequestToken"}``.

        Other keys are ignored: Secrets Manager adds some (``RotationToken``).

        Raises
        ------
        RotationRequestError
            When a key is missing or malformed.
        """
        if not isinstance(event, Mapping):
            raise RotationRequestError("the event is not a JSON object")
        missing = sorted({"Step", "SecretId", "ClientRequestToken"} - event.keys())
        if missing:
            raise RotationRequestError(f"the rotation event lacks {', '.join(missing)}")
        step, secret_id, version_id = (
            event["Step"],
            event["SecretId"],
            event["ClientRequestToken"],
        )
        if not isinstance(step, str) or step not in set(Step):
            raise RotationRequestError(
                f"unknown rotation step {str(step)[:40]!r}: expected one of {', '.join(Step)}"
            )
        if not isinstance(secret_id, str) or not 0 < len(secret_id) <= _MAX_SECRET_ID:
            raise RotationRequestError("SecretId must be a secret name or ARN")
        if not isinstance(version_id, str) or not _VERSION_ID.fullmatch(version_id):
            raise RotationRequestError(
                "ClientRequestToken must be 32 to 64 printable characters (a version id)"
            )
        rotation_token = event.get("RotationToken")
        if not isinstance(rotation_token, str) or not rotation_token:
            rotation_token = None
        register_secret(rotation_token)
        return cls(Step(step), secret_id, version_id, rotation_token)


@dataclass(frozen=True)
class StepOutcome:
    """What a step did; safe to log and return (no token in it).

    Attributes
    ----------
    step, version_id
        As requested.
    action
        ``created``, ``reused`` (retry of a stored ``createSecret``),
        ``nothing_to_set``, ``tested``, ``promoted`` or ``already_current``.
    expires_at
        The new token's expiry, when this step knows it.
    """

    step: Step
    version_id: str
    action: str
    expires_at: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready summary for logs and the handler's return value."""
        return {
            "step": str(self.step),
            "version_id": self.version_id,
            "action": self.action,
            "expires_at": format_utc(self.expires_at) if self.expires_at else None,
        }


class TokenRotation:
    """Runs the rotation steps of the token secret.

    Parameters
    ----------
    secrets
        The secret's versions.
    issuer
        The token endpoints.
    clock
        The current UTC time (for ``refreshed_at``/``expires_at`` and the
        24-hour rule).
    """

    def __init__(
        self,
        secrets: SecretVersionStore,
        issuer: TokenIssuer,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._secrets = secrets
        self._issuer = issuer
        self._clock = clock

    @property
    def secret_id(self) -> str:
        """The rotated secret's id."""
        return self._secrets.secret_id

    def run(self, step: Step, version_id: str, rotation_token: str | None = None) -> StepOutcome:
        """Check the version is staged for rotation, then run ``step`` on it.

        As in AWS's rotation template: rotation must not be turned off, the
        version must be staged ``AWSPENDING``, and a version already
        ``AWSCURRENT`` means the rotation is done (a late retry; nothing to
        do). ``createSecret`` also accepts a version that does not exist yet:
        Secrets Manager creates a value-less placeholder first, but an
        operator or a test driving the steps by hand does not.

        Raises
        ------
        RotationError
            When the step is refused or fails; ``AWSCURRENT`` is unchanged
            unless ``finishSecret`` succeeded.
        SecretStoreError
            When Secrets Manager cannot be used.
        """
        description = self._secrets.describe()
        if description.rotation_enabled is False:
            raise RotationError(
                f"rotation is turned off for secret {self.secret_id} (cancel-rotate-secret?); "
                "deploy the stack again: its rotation schedule turns it back on"
            )
        stages = description.stages.get(version_id)
        if stages is None and step != Step.CREATE:
            raise RotationError(
                f"{step}: version {version_id} is not a version of secret {self.secret_id}"
            )
        if stages is not None and CURRENT_STAGE in stages:
            return StepOutcome(step, version_id, "already_current")
        if stages is not None and PENDING_STAGE not in stages:
            raise RotationError(
                f"{step}: version {version_id} of secret {self.secret_id} is not staged "
                f"{PENDING_STAGE} (its stages: {', '.join(stages) or 'none'})"
            )
        if step == Step.CREATE:
            return self.create(version_id, rotation_token)
        if step == Step.SET:
            return StepOutcome(step, version_id, "nothing_to_set")
        if step == Step.TEST:
            return self.test(version_id)
        return self.finish(version_id, description)

    def create(self, version_id: str, rotation_token: str | None = None) -> StepOutcome:
        """Renew the current token and store it as ``AWSPENDING`` (idempotent).

        ``rotation_token`` is the event's ``RotationToken``, passed back to
        Secrets Manager with the write.

        Raises
        ------
        RotationError
            When the token cannot be renewed (expired, under 24 h old,
            rejected, Graph unavailable, ...); nothing is stored.
        """
        current = self._require(self._secrets.read(CURRENT_STAGE), CURRENT_STAGE)
        record = self._parse(current, CURRENT_STAGE)
        existing = self._secrets.read(PENDING_STAGE, version_id)
        if existing is not None:
            self._check_not_stale(existing, current)
            # A retry: the new token is stored already; asking again would
            # only mint another one.
            stored = self._parse(existing, PENDING_STAGE)
            return StepOutcome(Step.CREATE, version_id, "reused", stored.expires_at)
        renewed = self._renew(record)
        self._secrets.put_pending(version_id, renewed.to_secret_string(), rotation_token)
        return StepOutcome(Step.CREATE, version_id, "created", renewed.expires_at)

    def test(self, version_id: str) -> StepOutcome:
        """Prove the pending token works with one Graph call.

        Raises
        ------
        RotationError
            When no pending value exists or Graph refuses the token; the
            pending version is then never promoted.
        """
        pending = self._require(self._secrets.read(PENDING_STAGE, version_id), PENDING_STAGE)
        record = self._parse(pending, PENDING_STAGE)
        try:
            self._issuer.identify(record.access_token, record.kind)
        except GraphError as exc:
            raise RotationError(
                f"testSecret: the pending token of secret {self.secret_id} (version "
                f"{version_id}) failed its Graph call: {_describe(exc)}. Nothing was promoted: "
                f"{CURRENT_STAGE} still holds the token in use. {self._retry_help(version_id)}"
            ) from None
        return StepOutcome(Step.TEST, version_id, "tested", record.expires_at)

    def finish(self, version_id: str, description: SecretDescription) -> StepOutcome:
        """Move ``AWSCURRENT`` to ``version_id``; the old version becomes ``AWSPREVIOUS``."""
        current = description.version_with(CURRENT_STAGE)
        if current == version_id:
            return StepOutcome(Step.FINISH, version_id, "already_current")
        self._secrets.move_current(version_id, current)
        return StepOutcome(Step.FINISH, version_id, "promoted")

    def _renew(self, record: TokenRecord) -> TokenRecord:
        now = self._clock()
        try:
            record.check_renewable(now)
            method = record.renewal_method()
            credentials = record.app_credentials
            if method is RenewalMethod.INSTAGRAM_REFRESH:
                issued = self._issuer.refresh_instagram(record.access_token)
            elif method is RenewalMethod.FACEBOOK_EXCHANGE and credentials is not None:
                issued = self._issuer.exchange_facebook(record.access_token, *credentials)
            else:  # RenewalMethod.PAGE_REVALIDATE: the token does not expire
                self._issuer.identify(record.access_token, record.kind)
                return record.renewed(record.access_token, None, now)
            renewed = self._with_user_id(
                record.renewed(issued.access_token, issued.expires_in, now)
            )
        except TokenExpiredError as exc:
            raise RotationError(
                f"createSecret refused for secret {self.secret_id}: {exc}. "
                f"{self._put_new_token_help(record)} {CURRENT_STAGE} is unchanged."
            ) from None
        except TokenPolicyError as exc:
            raise RotationError(
                f"createSecret refused for secret {self.secret_id}: {exc}. "
                f"{CURRENT_STAGE} is unchanged."
            ) from None
        except GraphError as exc:
            raise RotationError(self._renewal_failure(record, exc)) from None
        return renewed

    def _with_user_id(self, record: TokenRecord) -> TokenRecord:
        # The account id only informs the operator, so one try, no waiting:
        # a failure here must not cost the fresh token (testSecret still
        # proves the token works).
        if record.kind != INSTAGRAM or record.user_id is not None:
            return record
        try:
            identity = self._issuer.identify(record.access_token, INSTAGRAM, retry=False)
        except GraphError:
            return record
        return replace(record, user_id=identity.user_id)

    def _renewal_failure(self, record: TokenRecord, exc: GraphError) -> str:
        issuer = "Instagram" if record.kind == INSTAGRAM else "Facebook"
        head = f"createSecret failed for secret {self.secret_id}"
        if isinstance(exc, GraphAuthError):
            return (
                f"{head}: {issuer} rejected the current token ({_describe(exc)}); it can no "
                f"longer be renewed. {self._put_new_token_help(record)} "
                f"{CURRENT_STAGE} is unchanged."
            )
        hint = ""
        if (
            isinstance(exc, GraphResponseError)
            and record.kind == INSTAGRAM
            and record.refreshed_at is None
        ):
            hint = (
                " If the token was issued less than 24 h ago, Instagram cannot refresh it "
                "yet: rotate again tomorrow."
            )
        return (
            f"{head}: could not renew the token at {issuer}: {_describe(exc)}.{hint} "
            f"{CURRENT_STAGE} is unchanged and still in use; rotate again later with "
            f"'aws secretsmanager rotate-secret --secret-id {self.secret_id}'."
        )

    def _check_not_stale(self, pending: StoredVersion, current: StoredVersion) -> None:
        # A version can never change, so a pending token made before an
        # operator put a new current token would promote the old one.
        if pending.created and current.created and pending.created < current.created:
            raise RotationError(
                f"createSecret: version {pending.version_id} of secret {self.secret_id} holds "
                f"a token renewed before the current token was put ({format_utc(pending.created)}"
                f" < {format_utc(current.created)}) and cannot be changed. "
                f"{self._retry_help(pending.version_id)}"
            )

    def _require(self, version: StoredVersion | None, stage: str) -> StoredVersion:
        if version is None:
            raise RotationError(
                f"secret {self.secret_id} has no {stage} value"
                + (" (createSecret has not stored one)" if stage == PENDING_STAGE else "")
            )
        return version

    def _parse(self, version: StoredVersion, stage: str) -> TokenRecord:
        try:
            return TokenRecord.from_secret_string(version.secret_string)
        except TokenUnavailableError as exc:
            raise RotationError(
                f"the {stage} value of secret {self.secret_id} (version {version.version_id}) "
                f"is unusable: {exc}. "
                + (self._put_new_token_help(None) if stage == CURRENT_STAGE else "")
            ) from None

    def _put_new_token_help(self, record: TokenRecord | None) -> str:
        if record is not None and record.kind == FACEBOOK:
            if record.app_credentials is not None:
                example = (
                    '{"access_token":"<NEW_USER_TOKEN>","kind":"facebook",'
                    '"app_id":"<APP_ID>","app_secret":"<APP_SECRET>"}'
                )
            else:
                example = '{"access_token":"<NEW_PAGE_TOKEN>","kind":"facebook"}'
        else:
            example = '{"access_token":"<NEW_LONG_LIVED_TOKEN>"}'
        return (
            "Get a new long-lived token (docs/token-runbook.md) and put it with: "
            f"aws secretsmanager put-secret-value --secret-id {self.secret_id} "
            f"--secret-string '{example}'"
        )

    def _retry_help(self, version_id: str) -> str:
        return (
            "To rotate again, first clear the failed attempt: aws secretsmanager "
            f"update-secret-version-stage --secret-id {self.secret_id} --version-stage "
            f"{PENDING_STAGE} --remove-from-version-id {version_id}"
        )


def _describe(exc: Exception) -> str:
    trace = getattr(exc, "fbtrace_id", None)
    return f"{exc} (fbtrace_id {trace})" if trace else str(exc)
