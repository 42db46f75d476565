"""The token: its policy (days left, 24-hour rule, expiry, renewal method) and the token store."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.exceptions import ClientError

from shared.config import get_settings
from shared.redaction import redact
from shared.tokens import (
    CACHE_SECONDS,
    RenewalMethod,
    TokenExpiredError,
    TokenPolicyError,
    TokenRecord,
    TokenStore,
    TokenTooYoungError,
    TokenUnavailableError,
)
from tests.conftest import SECRET_ID, SENTINEL_TOKEN, AwsCalls

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
APP_SECRET = "appSECRETsentinel0123456789"


def put_current(value: dict[str, object]) -> None:
    """GIVEN an operator put ``value`` as the secret's new AWSCURRENT version."""
    boto3.client("secretsmanager", region_name="us-east-1").put_secret_value(
        SecretId=SECRET_ID, SecretString=json.dumps(value)
    )


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- token policy ----------------------------------------------------------------


def test_days_left_counts_down_to_expiry_and_goes_negative_after() -> None:
    # GIVEN a token expiring in 20.5 days
    record = TokenRecord(SENTINEL_TOKEN, expires_at=NOW + timedelta(days=20, hours=12))
    # THEN days left is 20.5 now, and negative (expired) a month later
    assert record.days_left(NOW) == pytest.approx(20.5)
    assert not record.is_expired(NOW)
    assert record.days_left(NOW + timedelta(days=30)) == pytest.approx(-9.5)
    assert record.is_expired(NOW + timedelta(days=30))


def test_unknown_or_never_expiry_has_no_days_left_and_is_not_expired() -> None:
    # GIVEN a token without expires_at (first put, or a Page token)
    record = TokenRecord(SENTINEL_TOKEN, kind="facebook")
    # THEN there is no countdown to report
    assert record.days_left(NOW) is None
    assert not record.is_expired(NOW)


@pytest.mark.parametrize(
    ("age", "refusable"),
    [(timedelta(hours=23, minutes=59), True), (timedelta(hours=24), False)],
)
def test_instagram_token_under_24_hours_old_cannot_be_renewed(
    age: timedelta, refusable: bool
) -> None:
    # GIVEN an Instagram-login token refreshed ``age`` ago
    record = TokenRecord(
        SENTINEL_TOKEN, refreshed_at=NOW - age, expires_at=NOW + timedelta(days=59)
    )
    # WHEN its renewal is checked
    if refusable:
        with pytest.raises(TokenTooYoungError) as raised:
            record.check_renewable(NOW)
        # THEN the message says when a rotation will work
        assert "at least 24 h old" in str(raised.value)
        assert "2026-05-01T12:01:00Z" in str(raised.value)
    else:
        record.check_renewable(NOW)


def test_expired_token_cannot_be_renewed() -> None:
    # GIVEN a token that expired yesterday
    record = TokenRecord(SENTINEL_TOKEN, expires_at=NOW - timedelta(days=1))
    # WHEN / THEN its renewal is refused, naming the expiry
    with pytest.raises(TokenExpiredError, match=r"expired at 2026-04-30T12:00:00Z"):
        record.check_renewable(NOW)


def test_young_facebook_token_is_not_held_to_instagrams_24_hour_rule() -> None:
    # GIVEN a Facebook-login user token exchanged an hour ago
    record = TokenRecord(
        SENTINEL_TOKEN,
        kind="facebook",
        refreshed_at=NOW - timedelta(hours=1),
        expires_at=NOW + timedelta(days=59),
        extra={"app_id": "1234", "app_secret": APP_SECRET},
    )
    # WHEN / THEN nothing refuses it locally
    record.check_renewable(NOW)


@pytest.mark.parametrize(
    ("kind", "expires", "extra", "method"),
    [
        ("instagram", True, {}, RenewalMethod.INSTAGRAM_REFRESH),
        (
            "facebook",
            True,
            {"app_id": "1", "app_secret": APP_SECRET},
            RenewalMethod.FACEBOOK_EXCHANGE,
        ),
        (
            "facebook",
            False,
            {"app_id": 1234, "app_secret": APP_SECRET},
            RenewalMethod.FACEBOOK_EXCHANGE,
        ),
        ("facebook", False, {}, RenewalMethod.PAGE_REVALIDATE),
    ],
)
def test_renewal_method_follows_the_login_flavour(
    kind: str, expires: bool, extra: dict[str, object], method: RenewalMethod
) -> None:
    # GIVEN a token of each flavour
    record = TokenRecord(
        SENTINEL_TOKEN, kind=kind, expires_at=NOW if expires else None, extra=extra
    )
    # THEN it is renewed the flavour's way
    assert record.renewal_method() is method


@pytest.mark.parametrize(
    ("kind", "extra", "message"),
    [
        ("facebook", {}, "needs 'app_id' and 'app_secret'"),
        ("facebook", {"app_id": "1234"}, "needs 'app_id' and 'app_secret'"),
        ("twitter", {}, "unknown token kind 'twitter'"),
    ],
)
def test_token_that_cannot_be_renewed_gets_a_clear_reason(
    kind: str, extra: dict[str, object], message: str
) -> None:
    # GIVEN an expiring Facebook user token without app credentials, or an unknown kind
    record = TokenRecord(SENTINEL_TOKEN, kind=kind, expires_at=NOW, extra=extra)
    # WHEN / THEN the policy says what is missing
    with pytest.raises(TokenPolicyError, match=message):
        record.renewal_method()


def test_renewed_record_counts_its_lifetime_from_the_answer_and_keeps_the_rest() -> None:
    # GIVEN a Facebook record with app credentials and a user id
    record = TokenRecord(
        SENTINEL_TOKEN,
        kind="facebook",
        user_id="17841400000000001",
        extra={"app_id": "1234", "app_secret": APP_SECRET},
    )
    fresh = "EAAfreshTOKEN0123456789abcdef"
    # WHEN it is renewed with expires_in 60 days
    renewed = record.renewed(fresh, 5184000, NOW)
    # THEN expiry and refresh time come from the answer; kind, user and app keys stay
    assert renewed.access_token == fresh
    assert renewed.refreshed_at == NOW
    assert renewed.expires_at == NOW + timedelta(days=60)
    assert (renewed.kind, renewed.user_id) == ("facebook", "17841400000000001")
    assert renewed.app_credentials == ("1234", APP_SECRET)
    # AND the new token is scrubbed from any text from now on
    assert redact(f"token={fresh}!") == "token=***!"


def test_secret_json_round_trips_and_never_shows_in_repr() -> None:
    # GIVEN a secret JSON as refresh writes it
    text = json.dumps(
        {
            "access_token": SENTINEL_TOKEN,
            "kind": "facebook",
            "expires_at": "2026-06-30T12:00:00Z",
            "refreshed_at": "2026-05-01T12:00:00Z",
            "user_id": "17841400000000001",
            "app_id": "1234",
            "app_secret": APP_SECRET,
        }
    )
    # WHEN it is parsed and written back
    record = TokenRecord.from_secret_string(text)
    # THEN nothing is lost, and neither secret is in the repr
    assert json.loads(record.to_secret_string()) == json.loads(text)
    assert record.days_left(NOW) == pytest.approx(60)
    assert SENTINEL_TOKEN not in repr(record)
    assert APP_SECRET not in repr(record)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json " + SENTINEL_TOKEN, "not valid JSON"),
        (json.dumps([SENTINEL_TOKEN]), "not a JSON object"),
        (json.dumps({"token": SENTINEL_TOKEN}), "no access_token"),
        (json.dumps({"access_token": SENTINEL_TOKEN, "expires_at": "soon"}), "bad date"),
    ],
)
def test_malformed_secret_is_a_clear_error_that_does_not_quote_it(text: str, message: str) -> None:
    # WHEN a malformed secret is parsed
    with pytest.raises(TokenUnavailableError, match=message) as raised:
        TokenRecord.from_secret_string(text)
    # THEN the error does not quote the token
    assert SENTINEL_TOKEN not in str(raised.value)


# -- token store -----------------------------------------------------------------


def test_store_reads_awscurrent_not_a_pending_rotation(token_secret: str) -> None:
    # GIVEN a rotation has staged a new token AWSPENDING but not finished
    boto3.client("secretsmanager", region_name="us-east-1").put_secret_value(
        SecretId=token_secret,
        ClientRequestToken="c" * 36,
        SecretString=json.dumps({"access_token": "IGAApendingTOKEN0123456789"}),
        VersionStages=["AWSPENDING"],
    )
    # WHEN ingest asks for the token
    record = TokenStore(get_settings()).current()
    # THEN it gets the one in use
    assert record.access_token == SENTINEL_TOKEN


def test_store_caches_per_container_and_rereads_after_invalidate_or_expiry(
    token_secret: str, aws_calls: AwsCalls
) -> None:
    # GIVEN a warm store
    clock = Clock()
    store = TokenStore(get_settings(), clock=clock)
    assert store.current().access_token == SENTINEL_TOKEN
    # WHEN it is asked again within the cache time
    store.current()
    # THEN Secrets Manager was read once
    assert aws_calls.operations().count("GetSecretValue") == 1

    # GIVEN a rotation replaces the token
    put_current({"access_token": "IGAArotatedTOKEN0123456789"})
    # WHEN Instagram rejects the cached token and ingest invalidates it
    store.invalidate()
    # THEN the next read gets the new token
    assert store.current().access_token == "IGAArotatedTOKEN0123456789"
    assert aws_calls.operations().count("GetSecretValue") == 2

    # WHEN the cache time passes
    put_current({"access_token": "IGAAthirdTOKEN0123456789ab"})
    clock.now += CACHE_SECONDS - 1
    assert store.current().access_token == "IGAArotatedTOKEN0123456789"
    clock.now += 1
    # THEN the secret is read again
    assert store.current().access_token == "IGAAthirdTOKEN0123456789ab"
    assert aws_calls.operations().count("GetSecretValue") == 3


def test_store_prefers_the_secret_over_ig_access_token(
    token_secret: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN both TOKEN_SECRET_ID and a stray IG_ACCESS_TOKEN
    monkeypatch.setenv("IG_ACCESS_TOKEN", "IGAAlocalDEVtoken0123456789")
    get_settings.cache_clear()
    # WHEN / THEN the secret wins
    assert TokenStore(get_settings()).current().access_token == SENTINEL_TOKEN


def test_store_falls_back_to_ig_access_token_only_without_a_secret(
    monkeypatch: pytest.MonkeyPatch, aws_calls: AwsCalls
) -> None:
    # GIVEN local mode: IG_ACCESS_TOKEN and no TOKEN_SECRET_ID
    monkeypatch.setenv("IG_ACCESS_TOKEN", "IGAAlocalDEVtoken0123456789")
    get_settings.cache_clear()
    # WHEN the token is read
    record = TokenStore(get_settings()).current()
    # THEN it is the local one, read without any AWS call
    assert record.access_token == "IGAAlocalDEVtoken0123456789"
    assert aws_calls.calls == []
    assert redact("IGAAlocalDEVtoken0123456789") == "***"


def test_store_without_any_token_says_what_to_set() -> None:
    # GIVEN neither TOKEN_SECRET_ID nor IG_ACCESS_TOKEN
    # WHEN / THEN the error names both variables
    with pytest.raises(TokenUnavailableError, match=r"TOKEN_SECRET_ID.*IG_ACCESS_TOKEN"):
        TokenStore(get_settings()).current()


def test_store_with_a_missing_secret_is_a_clear_error(
    aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN TOKEN_SECRET_ID names a secret that does not exist
    monkeypatch.setenv("TOKEN_SECRET_ID", "gallery/no-such-secret")
    get_settings.cache_clear()
    # WHEN / THEN the error names the secret
    with pytest.raises(TokenUnavailableError, match="gallery/no-such-secret not found"):
        TokenStore(get_settings()).current()


def test_store_when_secrets_manager_denies_access_is_a_clear_error(
    token_secret: str, aws_calls: AwsCalls
) -> None:
    # GIVEN the function's role may not read the secret
    aws_calls.fail(
        "GetSecretValue",
        ClientError(
            {"Error": {"Code": "AccessDeniedException", "Message": "not authorized"}},
            "GetSecretValue",
        ),
    )
    # WHEN / THEN the error carries the AWS error code
    with pytest.raises(TokenUnavailableError, match="AccessDeniedException"):
        TokenStore(get_settings()).current()
