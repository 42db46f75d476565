"""Secrets Manager adapter: one secret's versions and staging labels.

The token store reads ``AWSCURRENT`` through it, and the rotation service
(:mod:`shared.rotation`) drives a rotation's versions with it. Secret values
never enter an error message: errors quote only the secret id, the version
id and the AWS error code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from shared.aws import secrets_client
from shared.tokens import CURRENT_STAGE, PENDING_STAGE

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

# GetSecretValue's answers for "no value under that version/label": a
# version id that does not exist, or Secrets Manager's value-less placeholder
# version that RotateSecret stages AWSPENDING before createSecret runs.
_NO_VALUE_CODES = frozenset({"ResourceNotFoundException", "SecretHasNoValueException"})


class SecretStoreError(RuntimeError):
    """A Secrets Manager call failed (access denied, throttled, unreachable, ...)."""


@dataclass(frozen=True)
class SecretDescription:
    """What ``DescribeSecret`` says about rotation and versions.

    Attributes
    ----------
    rotation_enabled
        ``None`` when rotation was never configured on the secret.
    stages
        Staging labels by version id.
    """

    rotation_enabled: bool | None
    stages: Mapping[str, tuple[str, ...]]

    def version_with(self, stage: str) -> str | None:
        """The id of the version carrying ``stage``, if any."""
        return next((vid for vid, labels in self.stages.items() if stage in labels), None)


@dataclass(frozen=True)
class StoredVersion:
    """One version's value (never shown by ``repr``) and metadata."""

    version_id: str
    secret_string: str = field(repr=False)
    created: datetime | None = None


class SecretVersions:
    """Versions of one secret in Secrets Manager.

    Parameters
    ----------
    secret_id
        The secret's name or ARN.
    client
        A Secrets Manager client; the container's shared one by default.
    """

    def __init__(self, secret_id: str, client: SecretsManagerClient | None = None) -> None:
        self.secret_id = secret_id
        self._client = client

    @property
    def client(self) -> SecretsManagerClient:
        """The client in use (created lazily, once per container)."""
        return self._client or secrets_client()

    def describe(self) -> SecretDescription:
        """Rotation state and staging labels (``DescribeSecret``).

        Raises
        ------
        SecretStoreError
            When the call fails.
        """
        try:
            metadata = self.client.describe_secret(SecretId=self.secret_id)
        except (ClientError, BotoCoreError) as exc:
            raise self._error("describe", exc) from None
        stages = {
            version_id: tuple(labels)
            for version_id, labels in metadata.get("VersionIdsToStages", {}).items()
        }
        return SecretDescription(rotation_enabled=metadata.get("RotationEnabled"), stages=stages)

    def read(self, stage: str, version_id: str | None = None) -> StoredVersion | None:
        """The value under ``stage`` (and ``version_id`` when given).

        Returns
        -------
        StoredVersion or None
            ``None`` when no value is stored there (yet).

        Raises
        ------
        SecretStoreError
            When the call fails for another reason, or the value is binary.
        """
        kwargs = {"VersionId": version_id} if version_id else {}
        try:
            response = self.client.get_secret_value(
                SecretId=self.secret_id, VersionStage=stage, **kwargs
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _NO_VALUE_CODES:
                return None
            raise self._error(f"read {stage}", exc) from None
        except BotoCoreError as exc:
            raise self._error(f"read {stage}", exc) from None
        if "SecretString" not in response:
            raise SecretStoreError(f"secret {self.secret_id} holds binary data, not JSON text")
        return StoredVersion(
            version_id=response["VersionId"],
            secret_string=response["SecretString"],
            created=response.get("CreatedDate"),
        )

    def put_pending(
        self, version_id: str, secret_string: str, rotation_token: str | None = None
    ) -> None:
        """Store ``secret_string`` as version ``version_id``, staged ``AWSPENDING``.

        ``rotation_token`` (the rotation event's ``RotationToken``) is sent
        along when given.

        Raises
        ------
        SecretStoreError
            When the call fails (for instance the version already holds
            another value: a version can never be changed).
        """
        kwargs = {"RotationToken": rotation_token} if rotation_token else {}
        try:
            self.client.put_secret_value(
                SecretId=self.secret_id,
                ClientRequestToken=version_id,
                SecretString=secret_string,
                VersionStages=[PENDING_STAGE],
                **kwargs,
            )
        except (ClientError, BotoCoreError) as exc:
            raise self._error(f"store version {version_id} as {PENDING_STAGE}", exc) from None

    def move_current(self, to_version_id: str, from_version_id: str | None) -> None:
        """Move ``AWSCURRENT`` to ``to_version_id``; the old version becomes ``AWSPREVIOUS``.

        Raises
        ------
        SecretStoreError
            When the call fails.
        """
        kwargs = {"RemoveFromVersionId": from_version_id} if from_version_id else {}
        try:
            self.client.update_secret_version_stage(
                SecretId=self.secret_id,
                VersionStage=CURRENT_STAGE,
                MoveToVersionId=to_version_id,
                **kwargs,
            )
        except (ClientError, BotoCoreError) as exc:
            raise self._error(f"move {CURRENT_STAGE} to version {to_version_id}", exc) from None

    def _error(self, action: str, exc: ClientError | BotoCoreError) -> SecretStoreError:
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            detail = f"{error.get('Code', 'ClientError')}: {error.get('Message', '')}"
        else:
            detail = f"{type(exc).__name__}: {exc}"
        return SecretStoreError(f"cannot {action} of secret {self.secret_id} ({detail})")
