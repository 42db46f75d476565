"""The refresh Lambda as Secrets Manager's rotation function for the token secret.

moto cannot invoke a rotation Lambda, so each test drives the four steps
itself, as Secrets Manager would: the same ``ClientRequestToken`` for every
step of one rotation. Instagram and Facebook are ``responses`` mocks.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses

from local.fake_graph import FAKE_USER_ID, FakeGraphServer
from refresh import app
from shared.aws import secrets_client
from shared.config import get_settings
from shared.rotation import RotationError, RotationRequestError
from shared.timestamps import format_utc, parse_utc, utc_now
from shared.tokens import TokenStore
from tests.conftest import GRAPH, SECRET_ID, SENTINEL_TOKEN, AwsCalls
from tests.graph_fakes import EXPIRED_TOKEN, RATE_LIMITED, SERVER_ERROR

IG_REFRESH = "https://graph.instagram.com/refresh_access_token"
IG_ME = f"{GRAPH}/me"
FB_GRAPH = "https://graph.facebook.com/v25.0"
FB_EXCHANGE = f"{FB_GRAPH}/oauth/access_token"
FB_ME = f"{FB_GRAPH}/me"
NEW_TOKEN = "IGAAnewROTATEDtoken0123456789abcdef"
NEW_FB_TOKEN = "EAAnewEXCHANGEDtoken0123456789abcdef"
APP_SECRET = "appSECRETsentinel0123456789"
IG_USER_ID = "17841400000000001"
LIFETIME = 5183944
STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")
JSON = {"Content-Type": "application/json"}


class LambdaContext:
    aws_request_id = "5b1e2c3d-0000-4000-8000-000000000004"


@dataclass
class Rotation:
    """One rotation attempt: its version id, as Secrets Manager would send it."""

    version_id: str

    def step(self, step: str) -> dict[str, Any]:
        """WHEN Secrets Manager invokes the function for ``step``."""
        event = {"Step": step, "SecretId": SECRET_ID, "ClientRequestToken": self.version_id}
        result: dict[str, Any] = app.handler(event, LambdaContext())
        return result

    def run_all(self) -> list[dict[str, Any]]:
        """WHEN Secrets Manager runs the whole rotation."""
        return [self.step(step) for step in STEPS]


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Backoff pauses requested, recorded instead of slept."""
    recorded: list[float] = []
    monkeypatch.setattr("time.sleep", recorded.append)
    return recorded


@pytest.fixture
def http(sleeps: list[float]) -> Iterator[responses.RequestsMock]:
    """GIVEN no real HTTP: Instagram and Facebook are mocked per test."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def logs(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> pytest.CaptureFixture[str]:
    """Powertools log lines and EMF metrics, captured from stdout.

    The Powertools handler keeps the ``sys.stdout`` of import time (as on
    Lambda, where it never changes); point it at this test's capture.
    """
    handler = app.logger.logger_handler
    assert isinstance(handler, logging.StreamHandler)
    # capsys swaps sys.stdout only when the test body starts, so the handler
    # writes to whatever sys.stdout is at the time of each line.
    monkeypatch.setattr(handler, "stream", _CurrentStdout())
    return capsys


class _CurrentStdout:
    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


@pytest.fixture
def rotation(token_secret: str, http: responses.RequestsMock) -> Rotation:
    """GIVEN the token secret with rotation turned on, and a new rotation's version id."""
    # moto keeps the value under a new AWSCURRENT version when rotation is
    # turned on without a Lambda; the real service would start a rotation.
    client().rotate_secret(
        SecretId=SECRET_ID, RotationRules={"AutomaticallyAfterDays": 30}, RotateImmediately=False
    )
    return Rotation(version_id=str(uuid.uuid4()))


def client() -> Any:
    # The container's client: one per test (conftest resets it), not one per call.
    return secrets_client()


def put_current(**fields: Any) -> str:
    """GIVEN the operator put this token JSON (sentinel token by default); returns its version."""
    value = {"access_token": SENTINEL_TOKEN, **fields}
    response = client().put_secret_value(SecretId=SECRET_ID, SecretString=json.dumps(value))
    version_id: str = response["VersionId"]
    return version_id


def read(stage: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(
        client().get_secret_value(SecretId=SECRET_ID, VersionStage=stage)["SecretString"]
    )
    return value


def stages() -> dict[str, list[str]]:
    versions: dict[str, list[str]] = client().describe_secret(SecretId=SECRET_ID)[
        "VersionIdsToStages"
    ]
    return versions


def current_version() -> str:
    return next(vid for vid, labels in stages().items() if "AWSCURRENT" in labels)


def ago(**delta: float) -> str:
    return format_utc(utc_now() - timedelta(**delta))


def ahead(**delta: float) -> str:
    return format_utc(utc_now() + timedelta(**delta))


def use_facebook_host(monkeypatch: pytest.MonkeyPatch) -> None:
    """GIVEN the stack runs with Facebook login (GRAPH_API_URL on graph.facebook.com)."""
    monkeypatch.setenv("GRAPH_API_URL", FB_GRAPH)
    get_settings.cache_clear()


def instagram_refresh_answers(mock: responses.RequestsMock, token: str = NEW_TOKEN) -> None:
    """GIVEN Instagram refreshes the token and ``/me`` accepts the new one."""
    mock.get(
        IG_REFRESH,
        json={"access_token": token, "token_type": "bearer", "expires_in": LIFETIME},
    )
    mock.get(IG_ME, json={"user_id": IG_USER_ID, "username": "sailjada", "id": "9000"})


def metric_values(output: str, name: str) -> list[float]:
    """Values of one EMF metric in captured stdout."""
    values: list[float] = []
    for line in output.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and "_aws" in entry and name in entry:
            raw = entry[name]
            values.extend(raw if isinstance(raw, list) else [raw])
    return values


def failure_text(exc: BaseException) -> str:
    """The exception as the Lambda runtime would print it, chain included."""
    return "".join(traceback.format_exception(exc))


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for secret in (SENTINEL_TOKEN, NEW_TOKEN, NEW_FB_TOKEN, APP_SECRET):
            assert secret not in text


# -- whole rotations -----------------------------------------------------------------


def test_whole_rotation_of_an_instagram_login_token(
    rotation: Rotation, http: responses.RequestsMock, logs: pytest.CaptureFixture[str]
) -> None:
    # GIVEN an Instagram-login token refreshed 10 days ago, and Instagram answering
    put_current(refreshed_at=ago(days=10), expires_at=ahead(days=50))
    old_version = current_version()
    instagram_refresh_answers(http)
    before = utc_now()

    # WHEN Secrets Manager runs the four steps
    results = rotation.run_all()

    # THEN AWSCURRENT holds the refreshed token, with its lifetime from expires_in
    current = read("AWSCURRENT")
    assert current["access_token"] == NEW_TOKEN
    assert current["kind"] == "instagram"
    assert current["user_id"] == IG_USER_ID
    refreshed_at = parse_utc(current["refreshed_at"])
    assert before <= refreshed_at <= utc_now()
    assert parse_utc(current["expires_at"]) == refreshed_at + timedelta(seconds=LIFETIME)
    # AND the old token is kept as AWSPREVIOUS
    assert read("AWSPREVIOUS")["access_token"] == SENTINEL_TOKEN
    assert "AWSPREVIOUS" in stages()[old_version]
    assert current_version() == rotation.version_id
    # AND Instagram was asked once to refresh the current token; /me checked the new one
    calls = [(urlsplit(call.request.url or "").path, call.request) for call in http.calls]
    assert [path for path, _ in calls] == ["/refresh_access_token", "/v25.0/me", "/v25.0/me"]
    refresh_query = parse_qs(urlsplit(calls[0][1].url or "").query)
    assert refresh_query == {"grant_type": ["ig_refresh_token"], "access_token": [SENTINEL_TOKEN]}
    assert all(req.headers["Authorization"] == f"Bearer {NEW_TOKEN}" for _, req in calls[1:])
    # AND each step reports what it did, without a token
    assert [r["action"] for r in results] == ["created", "nothing_to_set", "tested", "promoted"]
    assert results[0]["expires_at"] == current["expires_at"]
    # AND the success is counted, no failure is
    output = logs.readouterr().out
    assert output.count('"message":"rotation step done"') == 4
    assert metric_values(output, "RotationSucceeded") == [1]
    assert metric_values(output, "RotationFailed") == [0, 0, 0, 0]
    assert_no_secret(output, json.dumps(results))
    # AND ingest's token store now reads the new token
    assert TokenStore(get_settings()).current().access_token == NEW_TOKEN


def test_whole_rotation_of_a_facebook_login_user_token(
    rotation: Rotation, http: responses.RequestsMock, logs: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a Facebook-login user token with the app's credentials in the secret
    # (GRAPH_API_URL left at graph.instagram.com: Facebook tokens go to their own host)
    put_current(
        kind="facebook",
        app_id="1234567890",
        app_secret=APP_SECRET,
        user_id=IG_USER_ID,
        expires_at=ahead(days=20),
        refreshed_at=ago(days=40),
    )
    http.get(
        FB_EXCHANGE,
        json={"access_token": NEW_FB_TOKEN, "token_type": "bearer", "expires_in": 5184000},
    )
    http.get(FB_ME, json={"id": "10158000000000000", "name": "Jada Charters"})

    # WHEN Secrets Manager runs the four steps
    rotation.run_all()

    # THEN AWSCURRENT holds the exchanged token, and keeps the app credentials
    current = read("AWSCURRENT")
    assert current["access_token"] == NEW_FB_TOKEN
    assert (current["kind"], current["user_id"]) == ("facebook", IG_USER_ID)
    assert (current["app_id"], current["app_secret"]) == ("1234567890", APP_SECRET)
    assert parse_utc(current["expires_at"]) == parse_utc(current["refreshed_at"]) + timedelta(
        days=60
    )
    assert read("AWSPREVIOUS")["access_token"] == SENTINEL_TOKEN
    # AND the exchange sent the documented parameters to graph.facebook.com
    exchange = http.calls[0].request
    assert parse_qs(urlsplit(exchange.url or "").query) == {
        "grant_type": ["fb_exchange_token"],
        "client_id": ["1234567890"],
        "client_secret": [APP_SECRET],
        "fb_exchange_token": [SENTINEL_TOKEN],
    }
    assert http.calls[1].request.headers["Authorization"] == f"Bearer {NEW_FB_TOKEN}"
    assert len(http.calls) == 2
    # AND neither token nor the app secret was logged
    assert_no_secret(logs.readouterr().out)


def test_never_expiring_page_token_is_revalidated_and_carried_over(
    rotation: Rotation, http: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a long-lived Page token (Facebook login, no expiry, no app credentials)
    use_facebook_host(monkeypatch)
    put_current(kind="facebook", user_id=IG_USER_ID)
    http.get(FB_ME, json={"id": "134895793791914", "name": "Jada Charters"})

    # WHEN Secrets Manager runs the four steps
    rotation.run_all()

    # THEN the same token is current again, re-validated now, still without an expiry
    current = read("AWSCURRENT")
    assert current["access_token"] == SENTINEL_TOKEN
    assert "expires_at" not in current
    assert parse_utc(current["refreshed_at"]) <= utc_now()
    assert current_version() == rotation.version_id
    # AND only /me was called (once to re-validate, once to test): no exchange
    assert [urlsplit(c.request.url or "").path for c in http.calls] == ["/v25.0/me"] * 2


def test_first_put_token_without_dates_is_rotated_and_gets_them(
    rotation: Rotation, http: responses.RequestsMock
) -> None:
    # GIVEN the operator put only {"access_token": ...} (the fixture's secret)
    instagram_refresh_answers(http)
    # WHEN the rotation runs
    rotation.run_all()
    # THEN refresh filled in kind, dates and the account id
    current = read("AWSCURRENT")
    assert set(current) == {"access_token", "kind", "expires_at", "refreshed_at", "user_id"}


def test_account_id_lookup_failing_does_not_cost_the_fresh_token(
    rotation: Rotation, http: responses.RequestsMock, sleeps: list[float]
) -> None:
    # GIVEN Instagram refreshes the token, but /me fails once right after
    http.get(
        IG_REFRESH, json={"access_token": NEW_TOKEN, "token_type": "bearer", "expires_in": LIFETIME}
    )
    http.get(IG_ME, status=500, headers=JSON, body=SERVER_ERROR[2])
    # WHEN createSecret runs
    result = rotation.step("createSecret")
    # THEN the fresh token is stored without the informational user_id, without waiting
    assert result["action"] == "created"
    pending = read("AWSPENDING")
    assert pending["access_token"] == NEW_TOKEN
    assert "user_id" not in pending
    assert sleeps == []


# -- failures leave AWSCURRENT alone ----------------------------------------------------


@pytest.mark.parametrize(
    ("replies", "cause", "calls"),
    [
        ([SERVER_ERROR] * 3, "gave up after 3 attempts", 3),
        (
            [
                requests.ConnectionError(
                    f"Max retries exceeded with url: {IG_REFRESH}?access_token={SENTINEL_TOKEN}"
                )
            ]
            * 3,
            "Graph API unreachable",
            3,
        ),
        ([RATE_LIMITED], "rate limit", 1),
        ([(200, {"Content-Type": "text/html"}, "<html>Sorry</html>")], "HTML page", 1),
    ],
    ids=["5xx", "connection-error", "throttled", "html"],
)
def test_graph_failure_during_create_leaves_awscurrent_unchanged_with_a_clear_error(
    rotation: Rotation,
    http: responses.RequestsMock,
    logs: pytest.CaptureFixture[str],
    sleeps: list[float],
    replies: list[Any],
    cause: str,
    calls: int,
) -> None:
    # GIVEN a token old enough to refresh, and Instagram failing
    put_current(refreshed_at=ago(days=30), expires_at=ahead(days=30))
    version_before = current_version()
    for reply in replies:
        if isinstance(reply, Exception):
            http.get(IG_REFRESH, body=reply)
        else:
            http.get(IG_REFRESH, status=reply[0], headers=reply[1], body=reply[2])

    # WHEN createSecret runs
    with pytest.raises(RotationError) as raised:
        rotation.step("createSecret")

    # THEN the error names the cause and says the token in use is untouched
    message = str(raised.value)
    assert cause in message
    assert "AWSCURRENT is unchanged" in message
    assert f"aws secretsmanager rotate-secret --secret-id {SECRET_ID}" in message
    # AND AWSCURRENT is the same version with the same token; nothing is pending
    assert current_version() == version_before
    assert read("AWSCURRENT")["access_token"] == SENTINEL_TOKEN
    assert rotation.version_id not in stages()
    # AND transient failures were retried with backoff, throttling was not
    assert len(http.calls) == calls
    assert sleeps == ([1.0, 2.0] if calls == 3 else [])
    # AND the failure is counted, and no token leaks anywhere
    output = logs.readouterr()
    assert metric_values(output.out, "RotationFailed") == [1]
    assert '"message":"rotation step failed"' in output.out
    assert "Traceback" in output.out
    assert_no_secret(output.out, output.err, failure_text(raised.value))


def test_failing_test_step_promotes_nothing(
    rotation: Rotation, http: responses.RequestsMock, logs: pytest.CaptureFixture[str]
) -> None:
    # GIVEN createSecret stored a new token, but Graph rejects it at testSecret
    put_current(refreshed_at=ago(days=30), expires_at=ahead(days=30))
    version_before = current_version()
    http.get(
        IG_REFRESH, json={"access_token": NEW_TOKEN, "token_type": "bearer", "expires_in": LIFETIME}
    )
    http.get(IG_ME, json={"user_id": IG_USER_ID})
    rotation.step("createSecret")
    rotation.step("setSecret")
    http.get(IG_ME, status=400, headers=JSON, body=EXPIRED_TOKEN[2])

    # WHEN testSecret runs
    with pytest.raises(RotationError) as raised:
        rotation.step("testSecret")

    # THEN the error says nothing was promoted and how to clear the attempt
    message = str(raised.value)
    assert "Nothing was promoted" in message
    assert f"--version-stage AWSPENDING --remove-from-version-id {rotation.version_id}" in message
    # AND AWSCURRENT still holds the old token; the new one is only pending
    assert current_version() == version_before
    assert read("AWSCURRENT")["access_token"] == SENTINEL_TOKEN
    assert stages()[rotation.version_id] == ["AWSPENDING"]
    output = logs.readouterr()
    assert metric_values(output.out, "RotationFailed") == [0, 0, 1]
    assert metric_values(output.out, "RotationSucceeded") == []
    assert_no_secret(output.out, output.err, failure_text(raised.value))


def test_retried_create_with_the_same_request_token_does_not_call_instagram_again(
    rotation: Rotation, http: responses.RequestsMock
) -> None:
    # GIVEN createSecret already stored a refreshed token for this rotation
    put_current(refreshed_at=ago(days=30), expires_at=ahead(days=30))
    instagram_refresh_answers(http)
    first = rotation.step("createSecret")
    calls_after_first = len(http.calls)

    # WHEN Secrets Manager retries createSecret with the same ClientRequestToken
    second = rotation.step("createSecret")

    # THEN Instagram is not called again and the pending token is the first one
    assert len(http.calls) == calls_after_first
    assert (first["action"], second["action"]) == ("created", "reused")
    assert second["expires_at"] == first["expires_at"]
    assert read("AWSPENDING")["access_token"] == NEW_TOKEN


def test_token_under_24_hours_old_is_refused_clearly(
    rotation: Rotation, http: responses.RequestsMock
) -> None:
    # GIVEN the token was refreshed two hours ago
    refreshed = utc_now() - timedelta(hours=2)
    put_current(refreshed_at=format_utc(refreshed), expires_at=ahead(days=59))
    version_before = current_version()

    # WHEN createSecret runs
    with pytest.raises(RotationError) as raised:
        rotation.step("createSecret")

    # THEN the error explains the 24-hour rule and when to rotate, without calling Instagram
    message = str(raised.value)
    assert "at least 24 h old" in message
    assert f"rotate again after {format_utc(refreshed + timedelta(hours=24))}" in message
    assert len(http.calls) == 0
    assert current_version() == version_before


def test_expired_token_is_refused_with_instructions_to_put_a_new_one(
    rotation: Rotation, http: responses.RequestsMock
) -> None:
    # GIVEN the token expired yesterday
    put_current(refreshed_at=ago(days=61), expires_at=ago(days=1))
    version_before = current_version()

    # WHEN createSecret runs
    with pytest.raises(RotationError) as raised:
        rotation.step("createSecret")

    # THEN the error tells the operator exactly how to put a new token
    message = str(raised.value)
    assert "expired at" in message
    assert "docs/token-runbook.md" in message
    assert (
        f"aws secretsmanager put-secret-value --secret-id {SECRET_ID} "
        """--secret-string '{"access_token":"<NEW_LONG_LIVED_TOKEN>"}'"""
    ) in message
    assert len(http.calls) == 0
    assert current_version() == version_before
    assert_no_secret(failure_text(raised.value))


def test_token_instagram_rejects_is_refused_with_instructions_to_put_a_new_one(
    rotation: Rotation, http: responses.RequestsMock, logs: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a token with no recorded expiry that Instagram says has expired (190/463)
    http.get(IG_REFRESH, status=400, headers=JSON, body=EXPIRED_TOKEN[2])

    # WHEN createSecret runs
    with pytest.raises(RotationError) as raised:
        rotation.step("createSecret")

    # THEN the error names the rejection and the fix, and AWSCURRENT is unchanged
    message = str(raised.value)
    assert "Instagram rejected the current token" in message
    assert "code 190, subcode 463" in message
    assert "fbtrace_id AcX1bN2yZ3kQ" in message
    assert "aws secretsmanager put-secret-value" in message
    assert read("AWSCURRENT")["access_token"] == SENTINEL_TOKEN
    assert len(http.calls) == 1
    output = logs.readouterr()
    assert_no_secret(output.out, output.err, failure_text(raised.value))


def test_facebook_user_token_without_app_credentials_is_refused(
    rotation: Rotation, http: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN an expiring Facebook-login user token but no app_id/app_secret
    use_facebook_host(monkeypatch)
    put_current(kind="facebook", expires_at=ahead(days=9))

    # WHEN / THEN createSecret says what to add
    with pytest.raises(RotationError, match="needs 'app_id' and 'app_secret'"):
        rotation.step("createSecret")
    assert len(http.calls) == 0


def test_pending_token_older_than_the_current_one_is_not_reused(
    rotation: Rotation, http: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN createSecret stored a token, then the operator put a new token by hand
    put_current(refreshed_at=ago(days=30))
    instagram_refresh_answers(http)
    rotation.step("createSecret")
    later = datetime.now().timestamp() + 60
    monkeypatch.setattr("moto.secretsmanager.models.time.time", lambda: later)
    put_current(access_token="IGAAoperatorPUTtoken0123456789")
    calls = len(http.calls)

    # WHEN createSecret is retried for the old rotation
    with pytest.raises(RotationError) as raised:
        rotation.step("createSecret")

    # THEN it refuses to promote the stale token and says how to clear it
    assert "--version-stage AWSPENDING --remove-from-version-id" in str(raised.value)
    assert len(http.calls) == calls
    assert read("AWSCURRENT")["access_token"] == "IGAAoperatorPUTtoken0123456789"


def test_rotation_token_from_the_event_is_passed_back_with_the_write(
    rotation: Rotation, http: responses.RequestsMock, logs: pytest.CaptureFixture[str]
) -> None:
    # GIVEN Secrets Manager's event carries a RotationToken (and may add other keys)
    instagram_refresh_answers(http)
    writes: list[dict[str, Any]] = []
    client().meta.events.register(
        "provide-client-params.secrets-manager.PutSecretValue",
        lambda params, **_: writes.append(dict(params)),
    )
    rotation_token = "rotationTOKENfromSecretsManager0123456789"
    event = {
        "Step": "createSecret",
        "SecretId": SECRET_ID,
        "ClientRequestToken": rotation.version_id,
        "RotationToken": rotation_token,
        "SomeFutureKey": 1,
    }

    # WHEN createSecret runs
    app.handler(event, LambdaContext())

    # THEN the pending version was written with that RotationToken, which is not logged
    assert [(w["ClientRequestToken"], w["RotationToken"]) for w in writes] == [
        (rotation.version_id, rotation_token)
    ]
    assert rotation_token not in logs.readouterr().out


# -- staging checks, as in AWS's rotation template ------------------------------------


def test_finish_is_idempotent_and_steps_after_it_do_nothing(
    rotation: Rotation, http: responses.RequestsMock, logs: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a finished rotation
    instagram_refresh_answers(http)
    rotation.run_all()
    calls = len(http.calls)
    # WHEN Secrets Manager retries finishSecret and testSecret
    finish = rotation.step("finishSecret")
    test = rotation.step("testSecret")
    # THEN nothing changes and no Graph call is made
    assert (finish["action"], test["action"]) == ("already_current", "already_current")
    assert current_version() == rotation.version_id
    assert len(http.calls) == calls


def test_step_for_a_version_not_staged_awspending_is_refused(
    rotation: Rotation, http: responses.RequestsMock
) -> None:
    # GIVEN the AWSPREVIOUS version's id
    previous = next(vid for vid, labels in stages().items() if "AWSPREVIOUS" in labels)
    # WHEN / THEN a step for it is refused, and AWSCURRENT does not move
    current = current_version()
    with pytest.raises(RotationError, match="is not staged AWSPENDING"):
        Rotation(previous).step("finishSecret")
    assert current_version() == current


@pytest.mark.parametrize("step", ["setSecret", "testSecret", "finishSecret"])
def test_step_for_an_unknown_version_is_refused(
    rotation: Rotation, http: responses.RequestsMock, step: str
) -> None:
    # GIVEN no createSecret ran for this version
    current = current_version()
    # WHEN / THEN any later step is refused
    with pytest.raises(RotationError, match="is not a version of secret"):
        rotation.step(step)
    assert current_version() == current


def test_step_is_refused_when_rotation_is_turned_off(
    rotation: Rotation, http: responses.RequestsMock
) -> None:
    # GIVEN rotation was cancelled on the secret (moto's cancel-rotate-secret needs a
    # rotation Lambda, so the flag is set directly on moto's model)
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.secretsmanager.models import FakeSecret, secretsmanager_backends

    secret = secretsmanager_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].secrets[SECRET_ID]
    assert isinstance(secret, FakeSecret)
    secret.rotation_enabled = False
    assert client().describe_secret(SecretId=SECRET_ID)["RotationEnabled"] is False

    # WHEN / THEN createSecret is refused without calling Instagram
    with pytest.raises(RotationError, match="rotation is turned off"):
        rotation.step("createSecret")
    assert len(http.calls) == 0


@pytest.mark.parametrize(
    "event",
    [
        {"Step": "createSecret", "SecretId": SECRET_ID},
        {"Step": "dropSecret", "SecretId": SECRET_ID, "ClientRequestToken": "a" * 36},
        {"Step": "createSecret", "SecretId": SECRET_ID, "ClientRequestToken": "short"},
        {"Step": "createSecret", "SecretId": "", "ClientRequestToken": "a" * 36},
        {"backfill": {}},
        [],
    ],
    ids=["no-token", "unknown-step", "short-token", "empty-id", "ingest", "list"],
)
def test_malformed_event_is_refused_before_any_call(
    token_secret: str,
    aws_calls: AwsCalls,
    logs: pytest.CaptureFixture[str],
    event: Any,
) -> None:
    # WHEN the function is invoked with something that is not a rotation step
    with pytest.raises(RotationRequestError):
        app.handler(event, LambdaContext())
    # THEN no AWS call was made and the failure is counted
    assert aws_calls.calls == []
    assert metric_values(logs.readouterr().out, "RotationFailed") == [1]


def test_rotation_against_the_local_graph_stand_in_over_real_http(
    token_secret: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the local mode's Graph stand-in on 127.0.0.1, which knows the sentinel
    # token as two days old, and GRAPH_API_URL pointing at it
    with FakeGraphServer(tokens=(SENTINEL_TOKEN,), token_age=timedelta(days=2)) as graph:
        monkeypatch.setenv("GRAPH_API_URL", graph.graph_url)
        get_settings.cache_clear()

        # WHEN Secrets Manager runs the four steps
        Rotation(str(uuid.uuid4())).run_all()

        # THEN the refresh went to the stand-in's unversioned endpoint, and the
        # token it minted is current and accepted
        current = read("AWSCURRENT")
        assert current["access_token"] != SENTINEL_TOKEN
        assert current["access_token"] in graph.tokens
        assert current["user_id"] == FAKE_USER_ID
        paths = [request.path for request in graph.requests]
        assert paths == ["/refresh_access_token", "/v25.0/me", "/v25.0/me"]


def test_young_token_without_a_recorded_refresh_gets_instagrams_refusal_and_a_hint(
    token_secret: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN an operator put a token issued an hour ago (no refreshed_at recorded)
    with FakeGraphServer(tokens=(SENTINEL_TOKEN,), token_age=timedelta(hours=1)) as graph:
        monkeypatch.setenv("GRAPH_API_URL", graph.graph_url)
        get_settings.cache_clear()

        # WHEN createSecret runs
        with pytest.raises(RotationError) as raised:
            Rotation(str(uuid.uuid4())).step("createSecret")

    # THEN Instagram's refusal is explained, and AWSCURRENT is unchanged
    assert "less than 24 h ago" in str(raised.value)
    assert "rotate again tomorrow" in str(raised.value)
    assert read("AWSCURRENT") == {"access_token": SENTINEL_TOKEN}
