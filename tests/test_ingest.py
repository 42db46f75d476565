"""Ingest through its Lambda handler: Graph via ``responses``, AWS via moto.

Each test drives ``ingest.app.handler`` with a scheduler or operator event
against :class:`tests.graph_fakes.FakeGraph` and a moto table, and checks the
summary, what is stored, and the Graph and DynamoDB calls made.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
import requests
import responses

import ingest.app as app
from shared.backfill import BackfillPayloadError
from shared.config import get_settings
from shared.graph import GraphClient
from shared.ingestion import IngestError, IngestService
from shared.media import Mirror, Post, Rendition
from shared.repository import DynamoMediaRepository
from shared.state import IngestState
from shared.timestamps import utc_now
from shared.tokens import TokenStore
from tests.conftest import SECRET_ID, SENTINEL_TOKEN, AwsCalls
from tests.graph_fakes import (
    EXPIRED_TOKEN,
    HTML_PAGE,
    MALFORMED_JSON,
    NO_DATA,
    RATE_LIMITED,
    SERVER_ERROR,
    FakeGraph,
    Reply,
    carousel,
    error_body,
    graph_time,
    ids,
    image,
    reel,
    timeline,
)

WRITE_OPERATIONS = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
FAR_FUTURE = datetime(2100, 1, 1, tzinfo=UTC)


class LambdaContext:
    """The attributes of a Lambda context that Powertools reads."""

    function_name = "ingest"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:ingest"
    aws_request_id = "8f5e7d4c-0000-4000-8000-000000000001"

    def __init__(self, remaining_ms: int = 900_000) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@pytest.fixture(autouse=True)
def fresh_container() -> Iterator[None]:
    """GIVEN a cold Lambda container for every test."""
    app._container.cache_clear()
    yield
    app._container.cache_clear()


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Backoff pauses requested, recorded instead of slept."""
    recorded: list[float] = []
    monkeypatch.setattr(time, "sleep", recorded.append)
    return recorded


@pytest.fixture
def mock_graph(token_secret: str, sleeps: list[float]) -> Iterator[responses.RequestsMock]:
    """GIVEN AWS (moto) with the token secret, and no real HTTP (responses)."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def serve(mock: responses.RequestsMock, posts: list[dict[str, Any]]) -> FakeGraph:
    """GIVEN Graph serving ``posts`` (newest first)."""
    return FakeGraph(posts).install(mock)


def invoke(event: Any = None, context: LambdaContext | None = None) -> dict[str, Any]:
    """WHEN the ingest Lambda is invoked."""
    result: dict[str, Any] = app.handler({} if event is None else event, context or LambdaContext())
    return result


def repository() -> DynamoMediaRepository:
    return DynamoMediaRepository(get_settings())


def stored() -> dict[str, Post]:
    return {post.id: post for post in repository().posts_between(EPOCH, FAR_FUTURE)}


def state() -> IngestState:
    return repository().load_state()


def writes(aws_calls: AwsCalls, since: int = 0) -> list[str]:
    return [op for op in aws_calls.operations()[since:] if op in WRITE_OPERATIONS]


def recent(hours: float) -> datetime:
    return utc_now() - timedelta(hours=hours)


# -- paging and content --------------------------------------------------------


def test_paging_across_three_pages_stores_every_post(mock_graph: responses.RequestsMock) -> None:
    """GIVEN 210 posts (3 pages of 100) and an empty table
    WHEN the scheduled run goes
    THEN it reads 3 pages, stores all 210 and sets the high-water mark."""
    posts = timeline(210, newest=recent(1))
    fake = serve(mock_graph, posts)

    summary = invoke()

    assert summary["mode"] == "incremental"
    assert summary["graph_calls"] == fake.calls == 3
    assert (summary["seen"], summary["written"], summary["unchanged"]) == (210, 210, 0)
    assert summary["throttled"] is False
    assert sorted(stored()) == sorted(ids(posts))
    assert summary["high_water_mark"] == posts[0]["timestamp"].replace("+0000", "Z")
    assert state().high_water_mark == datetime.strptime(
        posts[0]["timestamp"], "%Y-%m-%dT%H:%M:%S%z"
    )


def test_a_run_short_of_time_stops_between_pages_and_the_next_run_carries_on(
    mock_graph: responses.RequestsMock,
) -> None:
    """GIVEN 210 posts (3 pages) and an invocation with under 2 minutes left
    WHEN the scheduled run goes, then runs again with time to spare
    THEN the first stores one page and stops, incomplete, without moving the
    high-water mark; the second reads all pages, writes only the rest, and sets it."""
    posts = timeline(210, newest=recent(1))
    fake = serve(mock_graph, posts)

    short = invoke(context=LambdaContext(remaining_ms=60_000))

    assert (short["graph_calls"], short["written"]) == (1, 100)
    assert short["out_of_time"] is True
    assert short["complete"] is False
    assert state().high_water_mark is None

    full = invoke()

    assert fake.calls == 4
    assert (full["written"], full["unchanged"]) == (110, 100)
    assert full["complete"] is True
    assert full["out_of_time"] is False
    assert sorted(stored()) == sorted(ids(posts))
    assert state().high_water_mark is not None


def test_carousel_children_and_reel_without_media_url_are_stored(
    mock_graph: responses.RequestsMock,
) -> None:
    """GIVEN a 4-item carousel and a reel whose media_url Instagram withheld
    WHEN ingest runs
    THEN one Graph call stores all children and the reel keeps its thumbnail."""
    album = carousel(recent(2), children=4)
    withheld = reel(recent(3))
    fake = serve(mock_graph, [album, withheld])

    invoke()

    assert fake.calls == 1  # children come by field expansion, not a call each
    posts = stored()
    kept_album = posts[album["id"]]
    assert kept_album.media_type == "CAROUSEL_ALBUM"
    assert [child.id for child in kept_album.children] == ids(album["children"]["data"])
    assert [child.media_type for child in kept_album.children] == [
        "IMAGE",
        "IMAGE",
        "VIDEO",
        "IMAGE",
    ]
    video = kept_album.children[2]
    assert video.media_url
    assert video.thumbnail_url
    assert video.image_url == video.thumbnail_url
    kept_reel = posts[withheld["id"]]
    assert (kept_reel.media_type, kept_reel.media_product_type) == ("VIDEO", "REELS")
    assert kept_reel.media_url is None
    assert kept_reel.thumbnail_url
    assert kept_reel.image_url == kept_reel.thumbnail_url


def test_graph_timestamp_round_trips_exactly(mock_graph: responses.RequestsMock) -> None:
    """GIVEN a post stamped "2026-04-30T05:30:00+0000"
    WHEN it is ingested and read back
    THEN it is 05:30:00 UTC to the second, and formats back to the same text."""
    post = image(datetime(2026, 4, 30, 5, 30, tzinfo=UTC))
    assert post["timestamp"] == "2026-04-30T05:30:00+0000"
    serve(mock_graph, [post])

    invoke()

    kept = stored()[post["id"]]
    assert kept.taken_at == datetime(2026, 4, 30, 5, 30, 0, tzinfo=UTC)
    assert graph_time(kept.taken_at) == "2026-04-30T05:30:00+0000"
    window = repository().posts_between(
        datetime(2026, 4, 30, 5, 30, tzinfo=UTC), datetime(2026, 4, 30, 5, 30, 1, tzinfo=UTC)
    )
    assert [p.id for p in window] == [post["id"]]


# -- incremental runs -------------------------------------------------------------


def test_idle_run_costs_one_graph_call_and_no_dynamodb_write(
    mock_graph: responses.RequestsMock, aws_calls: AwsCalls
) -> None:
    """GIVEN a table in sync with 150 posts
    WHEN the next scheduled run finds nothing new (CDN URLs re-signed)
    THEN it makes exactly 1 Graph call and 0 DynamoDB writes."""
    fake = serve(mock_graph, timeline(150, newest=recent(1)))
    invoke()
    calls_before, mark = fake.calls, len(aws_calls.calls)

    summary = invoke()

    assert fake.calls - calls_before == 1
    assert summary["graph_calls"] == 1
    assert writes(aws_calls, mark) == []
    assert (summary["written"], summary["unchanged"]) == (0, 100)


def test_new_post_is_picked_up_and_advances_the_mark(mock_graph: responses.RequestsMock) -> None:
    """GIVEN a table in sync
    WHEN a new post appears on Instagram
    THEN the next run stores it with one call and moves the high-water mark to it."""
    posts = timeline(120, newest=recent(5))
    fake = serve(mock_graph, posts)
    invoke()
    fresh = image(recent(0.5), caption="New charter photo")
    posts.insert(0, fresh)
    before = fake.calls

    summary = invoke()

    assert fake.calls - before == 1
    assert summary["written"] == 1
    assert stored()[fresh["id"]].caption == "New charter photo"
    assert summary["high_water_mark"] == fresh["timestamp"].replace("+0000", "Z")


def test_caption_edit_inside_overlap_is_picked_up(
    mock_graph: responses.RequestsMock, aws_calls: AwsCalls
) -> None:
    """GIVEN a stored post from two days ago
    WHEN its caption is edited on Instagram and no post is new
    THEN the next run rewrites exactly that post."""
    posts = timeline(30, newest=recent(1), step=timedelta(hours=5))
    serve(mock_graph, posts)
    invoke()
    edited = posts[8]  # 41 hours old: older than the newest, inside the overlap
    assert "children" not in edited
    edited["caption"] = "Fixed: dolphins off Point Loma"
    mark = len(aws_calls.calls)

    summary = invoke()

    assert (summary["written"], summary["unchanged"]) == (1, 29)
    assert writes(aws_calls, mark).count("TransactWriteItems") == 1
    assert stored()[edited["id"]].caption == "Fixed: dolphins off Point Loma"


def test_pinned_old_post_does_not_stop_or_widen_paging(
    mock_graph: responses.RequestsMock, aws_calls: AwsCalls, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GIVEN a two-year-old pinned post listed first and a table in sync
    WHEN a scheduled run reads page 1
    THEN it stops after that page (its last item decides), writes nothing, and
    looks the pinned post up on its own instead of reading two years of posts."""
    pinned = image(recent(24 * 730), caption="Pinned: book a charter")
    posts = [pinned, *timeline(150, newest=recent(1))]
    fake = serve(mock_graph, posts)
    invoke()
    ranges: list[tuple[datetime, datetime]] = []
    lookup = DynamoMediaRepository.stored_between

    def spy(self: DynamoMediaRepository, start: datetime, end: datetime) -> Any:
        ranges.append((start, end))
        return lookup(self, start, end)

    monkeypatch.setattr(DynamoMediaRepository, "stored_between", spy)
    before, mark = fake.calls, len(aws_calls.calls)

    summary = invoke()

    assert fake.calls - before == 1
    assert writes(aws_calls, mark) == []
    assert summary["unchanged"] == 100
    pinned_at = stored()[pinned["id"]].taken_at
    page_times = [Post.from_graph(post).taken_at for post in posts[1:100]]
    assert ranges == [(min(page_times), max(page_times)), (pinned_at, pinned_at)]
    assert state().high_water_mark == max(page_times)


# -- backfill -----------------------------------------------------------------------


def test_backfill_pages_back_to_since_and_rerun_writes_nothing(
    mock_graph: responses.RequestsMock, aws_calls: AwsCalls
) -> None:
    """GIVEN 400 posts a day apart, newest on 2026-04-30
    WHEN an operator backfills [2026-01-01, 2026-03-01) twice
    THEN the first run stores exactly that range and stops paging past since;
    the second writes nothing."""
    posts = timeline(400, newest=datetime(2026, 4, 30, 12, tzinfo=UTC), step=timedelta(days=1))
    fake = serve(mock_graph, posts)
    event = {"backfill": {"since": "2026-01-01", "until": "2026-03-01T00:00:00", "dry_run": False}}
    expected = [p["id"] for p in posts if "2026-01-01" <= p["timestamp"] < "2026-03-01"]

    first = invoke(event)

    assert first["mode"] == "backfill"
    assert first["graph_calls"] == fake.calls == 2  # page 2 ends before since
    assert first["written"] == len(expected) == 59
    assert sorted(stored()) == sorted(expected)
    assert state().high_water_mark is None  # a backfill is not a sync of the newest posts
    mark = len(aws_calls.calls)

    again = invoke(event)

    assert (again["written"], again["unchanged"]) == (0, 59)
    assert writes(aws_calls, mark) == []


def test_backfill_dry_run_reports_and_writes_nothing(
    mock_graph: responses.RequestsMock, aws_calls: AwsCalls
) -> None:
    """GIVEN 50 posts on Instagram and an empty table
    WHEN an operator dry-runs a backfill
    THEN the summary says what would be written and nothing is."""
    serve(mock_graph, timeline(50, newest=recent(1)))
    since = (utc_now() - timedelta(days=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    until = (utc_now() + timedelta(days=1)).strftime("%Y-%m-%d")
    mark = len(aws_calls.calls)

    summary = invoke({"backfill": {"since": since, "until": until, "dry_run": True}})

    assert summary["dry_run"] is True
    assert summary["would_write"] == 20  # 6 h apart: 20 posts in 5 days
    assert summary["written"] == 0
    assert writes(aws_calls, mark) == []
    assert stored() == {}


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"since": "2026-03-01", "until": "2026-03-01"}, "must be before"),
        ({"since": "2026-05-01", "until": "2026-01-01"}, "must be before"),
        ({"since": "2026-01-01", "until": "2026-05-01", "dryrun": True}, "unknown key(s) 'dryrun'"),
        ({"since": "last tuesday", "until": "2026-05-01"}, "backfill.since is not a date"),
        (["2026-01-01", "2026-05-01"], "backfill must be a JSON object, got a list"),
        ({"since": "2026-01-01", "until": "2026-05-01", "dry_run": "no"}, "dry_run must be"),
        ({"since": "1990-01-01", "until": "2026-05-01"}, "over the maximum"),
        ({"until": "2026-05-01"}, "backfill needs since"),
    ],
)
def test_bad_backfill_payload_is_rejected_before_any_call(
    mock_graph: responses.RequestsMock, aws_calls: AwsCalls, payload: Any, message: str
) -> None:
    """GIVEN Graph with posts
    WHEN an operator sends a bad backfill payload
    THEN the run raises a clear error, calls Graph 0 times and writes nothing."""
    fake = serve(mock_graph, timeline(10, newest=recent(1)))

    with pytest.raises(BackfillPayloadError) as raised:
        invoke({"backfill": payload})

    assert message in str(raised.value)
    assert fake.calls == 0
    assert writes(aws_calls) == []
    assert [svc for svc, _ in aws_calls.calls if svc == "dynamodb"] == []


# -- failures ------------------------------------------------------------------------


def test_expired_token_stops_the_run_with_a_clear_error_and_no_writes(
    mock_graph: responses.RequestsMock, aws_calls: AwsCalls
) -> None:
    """GIVEN Instagram answers 190/463 (session expired) and the secret holds no newer token
    WHEN ingest runs
    THEN it re-reads the secret once, does not retry, raises a clear error,
    writes no media and records the failure."""
    fake = serve(mock_graph, timeline(20, newest=recent(1)))
    fake.fail(EXPIRED_TOKEN)

    with pytest.raises(IngestError) as raised:
        invoke()

    text = str(raised.value)
    assert "rejected the access token" in text
    assert "code 190, subcode 463" in text
    assert fake.calls == 1
    assert aws_calls.operations().count("GetSecretValue") == 2  # first read + one re-read
    assert "TransactWriteItems" not in aws_calls.operations()
    assert writes(aws_calls) == ["PutItem"]  # the ingest-state item only
    assert stored() == {}
    recorded = state()
    assert recorded.consecutive_failures == 1
    assert recorded.last_error
    assert "subcode 463" in recorded.last_error
    assert raised.value.summary["graph_calls"] == 1


def test_rejected_token_is_retried_once_when_the_secret_was_rotated(
    mock_graph: responses.RequestsMock,
) -> None:
    """GIVEN a warm container holding a token that a rotation has just replaced
    WHEN Instagram rejects the cached token
    THEN ingest re-reads the secret, retries once with the new token and succeeds."""
    fake = serve(mock_graph, timeline(5, newest=recent(1)))
    invoke()
    rotated = "IGAArotatedTOKEN9876543210fedcba"
    boto3.client("secretsmanager", region_name="us-east-1").put_secret_value(
        SecretId=SECRET_ID, SecretString=json.dumps({"access_token": rotated})
    )
    fake.tokens = {rotated}
    before = fake.calls

    summary = invoke()

    assert summary["graph_calls"] == fake.calls - before == 2
    assert fake.requests[-1].headers["Authorization"] == f"Bearer {rotated}"


def test_throttling_stops_paging_at_once_and_later_runs_wait(
    mock_graph: responses.RequestsMock, aws_calls: AwsCalls
) -> None:
    """GIVEN 150 posts and Instagram answering 80002 (BUC header: 42 min to regain) on page 2
    WHEN ingest runs, and runs again right after
    THEN the first run stops at once (2 calls), keeps page 1 and says throttled;
    the second makes no Graph call at all."""
    fake = serve(mock_graph, timeline(150, newest=recent(1)))
    fake.fail(RATE_LIMITED, after=1)
    started = utc_now()

    summary = invoke()

    assert summary["throttled"] is True
    assert summary["graph_calls"] == fake.calls == 2
    assert summary["written"] == 100
    resume_after = state().resume_after
    assert resume_after is not None
    assert started + timedelta(minutes=41) <= resume_after <= utc_now() + timedelta(minutes=43)
    assert state().high_water_mark is None  # paging did not finish
    assert state().consecutive_failures == 0  # throttling is not a failure

    later = invoke()

    assert later["throttled"] is True
    assert later["graph_calls"] == 0
    assert fake.calls == 2
    assert later["resume_after"] == summary["resume_after"]


def test_server_errors_are_retried_with_backoff_then_the_run_gives_up_with_state_intact(
    mock_graph: responses.RequestsMock, aws_calls: AwsCalls, sleeps: list[float]
) -> None:
    """GIVEN a table in sync and Graph answering HTTP 500 to every call
    WHEN ingest runs
    THEN it tries 4 times with growing pauses, raises a clear error, deletes
    and writes no media, keeps the high-water mark and counts the failure;
    the next healthy run catches up and resets the count."""
    posts = timeline(120, newest=recent(2))
    fake = serve(mock_graph, posts)
    invoke()
    before_state, before_posts = state(), stored()
    fake.fail(*[SERVER_ERROR] * 4)
    posts.insert(0, image(recent(0.2)))
    mark = len(aws_calls.calls)

    with pytest.raises(IngestError) as raised:
        invoke()

    assert "HTTP 500" in str(raised.value)
    assert "gave up after 4 attempts" in str(raised.value)
    assert raised.value.summary["graph_calls"] == 4
    assert len(sleeps) == 3
    assert 0.25 <= sleeps[0] <= 0.5
    assert 0.5 <= sleeps[1] <= 1.0
    assert 1.0 <= sleeps[2] <= 2.0
    assert writes(aws_calls, mark) == ["PutItem"]  # the failure, recorded in the state
    assert stored() == before_posts
    after = state()
    assert after.high_water_mark == before_state.high_water_mark
    assert after.consecutive_failures == 1
    assert after.last_error
    assert "HTTP 500" in after.last_error

    recovered = invoke()

    assert recovered["written"] == 1
    assert state().consecutive_failures == 0
    assert state().last_error is None


def test_transient_errors_then_success_complete_the_run(
    mock_graph: responses.RequestsMock, sleeps: list[float]
) -> None:
    """GIVEN Graph failing twice (a read timeout, then code 2) before answering
    WHEN ingest runs
    THEN the retries succeed and every post is stored."""
    fake = serve(mock_graph, timeline(10, newest=recent(1)))
    fake.fail(requests.ReadTimeout("read timed out"), SERVER_ERROR)

    summary = invoke()

    assert summary["graph_calls"] == 3
    assert summary["written"] == 10
    assert len(sleeps) == 2


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (MALFORMED_JSON, "malformed JSON"),
        (HTML_PAGE, "an HTML page"),
        (NO_DATA, "no 'data' list"),
    ],
)
def test_unusable_page_is_a_clear_error_and_deletes_nothing(
    mock_graph: responses.RequestsMock,
    aws_calls: AwsCalls,
    reply: tuple[int, dict[str, str], str],
    message: str,
) -> None:
    """GIVEN a table in sync
    WHEN Graph answers a page with malformed JSON, an HTML page or no data
    THEN the run raises an error naming that, without retrying, deleting or writing media."""
    fake = serve(mock_graph, timeline(30, newest=recent(1)))
    invoke()
    before_posts, before_mark = stored(), state().high_water_mark
    fake.fail(reply)
    mark, calls = len(aws_calls.calls), fake.calls

    with pytest.raises(IngestError) as raised:
        invoke()

    assert message in str(raised.value)
    assert fake.calls - calls == 1
    assert writes(aws_calls, mark) == ["PutItem"]  # the failure, recorded in the state
    assert stored() == before_posts
    assert state().high_water_mark == before_mark


def test_next_link_to_a_foreign_host_is_not_followed(mock_graph: responses.RequestsMock) -> None:
    """GIVEN Graph whose paging.next points at another host
    WHEN ingest runs
    THEN page 1 is kept, the foreign URL is never requested, the run fails
    clearly and the high-water mark does not move."""
    fake = serve(mock_graph, timeline(150, newest=recent(1)))
    fake.next_base = "https://graph.instagram.com.evil.example/v25.0"

    with pytest.raises(IngestError) as raised:
        invoke()

    assert "another host" in str(raised.value)
    assert [call.request.url for call in mock_graph.calls] == fake.urls()
    assert fake.calls == 1
    assert len(stored()) == 100
    assert state().high_water_mark is None


def test_repeated_cursor_is_not_followed_in_a_loop(mock_graph: responses.RequestsMock) -> None:
    """GIVEN Graph that answers every page with the same next cursor
    WHEN ingest runs
    THEN it stops after the cursor repeats instead of looping."""
    fake = serve(mock_graph, timeline(150, newest=recent(1)))
    fake.repeat_cursor = True

    with pytest.raises(IngestError) as raised:
        invoke()

    assert "repeated a paging cursor" in str(raised.value)
    assert fake.calls == 2


# -- secrets and signals -----------------------------------------------------------------


def test_token_never_appears_in_logs_results_or_errors(
    mock_graph: responses.RequestsMock,
    logs: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """GIVEN Graph that embeds the token in next URLs and echoes it in errors,
    and a transport error quoting a URL with the token
    WHEN runs succeed, fail on retries and fail on the token
    THEN the token is in no log line, summary, exception text or stored state,
    and it was only ever sent as a header."""
    fake = serve(mock_graph, timeline(150, newest=recent(1)))
    leaky = requests.ConnectionError(
        f"Max retries exceeded with url: /me/media?access_token={SENTINEL_TOKEN}"
    )
    echo: Reply = (
        400,
        {},
        error_body(190, f"Cannot parse access token {SENTINEL_TOKEN}", subcode=467),
    )
    texts: list[str] = [json.dumps(invoke())]
    fake.fail(*[leaky] * 4)
    with pytest.raises(IngestError) as transient:
        invoke()
    fake.fail(echo)
    with pytest.raises(IngestError) as rejected:
        invoke()

    for error in (transient.value, rejected.value):
        texts += [str(error), repr(error), json.dumps(error.summary), str(error.__cause__)]
    texts.append(repr(state()))
    captured = logs.readouterr()
    texts += [captured.out, captured.err, caplog.text]
    texts += [repr(record.__dict__) for record in caplog.records]
    assert "Cannot parse access token ***" in captured.out  # the echo was logged, redacted
    assert "/me/media?access_token=***" in captured.out
    assert all(SENTINEL_TOKEN not in text for text in texts)
    assert all(SENTINEL_TOKEN not in url for url in fake.urls())
    assert all(r.headers["Authorization"] == f"Bearer {SENTINEL_TOKEN}" for r in fake.requests)


def emitted_metrics(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith('{"_aws"')]


def test_metrics_report_the_run_and_the_token_days_left(
    mock_graph: responses.RequestsMock, capsys: pytest.CaptureFixture[str]
) -> None:
    """GIVEN a token secret that says the token expires in 10 days
    WHEN one run succeeds and one fails
    THEN each emits TokenDaysLeft, IngestRunFailed and the run's counts."""
    expires = (utc_now() + timedelta(days=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    boto3.client("secretsmanager", region_name="us-east-1").put_secret_value(
        SecretId=SECRET_ID,
        SecretString=json.dumps({"access_token": SENTINEL_TOKEN, "expires_at": expires}),
    )
    fake = serve(mock_graph, timeline(30, newest=recent(1)))
    invoke()
    fake.fail(EXPIRED_TOKEN)
    with pytest.raises(IngestError):
        invoke()

    ok, failed = emitted_metrics(capsys.readouterr().out)

    assert ok["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "SailJadaGallery"
    assert ok["service"] == "ingest"
    assert 9.9 <= ok["TokenDaysLeft"][0] <= 10.0
    assert (ok["IngestRunFailed"], ok["GraphCalls"], ok["PostsWritten"]) == ([0.0], [1.0], [30.0])
    assert (ok["Throttled"], ok["IngestConsecutiveFailures"]) == ([0.0], [0.0])
    assert failed["IngestRunFailed"] == [1.0]
    assert failed["IngestConsecutiveFailures"] == [1.0]
    assert 9.9 <= failed["TokenDaysLeft"][0] <= 10.0


# -- the service with an image archive (wired by the lead) ---------------------------------


class FakeArchive:
    """Mirrors every image, except those of posts listed in ``failing``."""

    def __init__(self, failing: set[str] | None = None, *, explode: bool = False) -> None:
        self.failing = failing or set()
        self.explode = explode
        self.calls: list[tuple[str, Post | None]] = []

    def mirror(self, post: Post, previous: Post | None) -> Post:
        self.calls.append((post.id, previous))
        if self.explode:
            raise RuntimeError("S3 is down")
        if post.id in self.failing:
            return post
        children = tuple(
            replace(child, mirror=_mirror_of(child.id)) if child.image_url else child
            for child in post.children
        )
        return post.with_mirrors(_mirror_of(post.id) if post.image_url else None, children)


def _mirror_of(media_id: str) -> Mirror:
    original = Rendition(
        key=f"instagram/{media_id}/original.jpg", width=1080, height=1080, size=9000
    )
    thumb = Rendition(key=f"instagram/{media_id}/640.jpg", width=640, height=640, size=3000)
    return Mirror(original=original, thumbnails=(thumb,))


def service(archive: FakeArchive | None, clock: Any = utc_now) -> IngestService:
    settings = get_settings()
    return IngestService(
        GraphClient(settings, TokenStore(settings)),
        DynamoMediaRepository(settings),
        archive=archive,
        clock=clock,
    )


def test_new_posts_are_stored_with_their_mirrors_and_unchanged_ones_are_not_re_mirrored(
    mock_graph: responses.RequestsMock, aws_calls: AwsCalls
) -> None:
    """GIVEN new posts, one a carousel
    WHEN ingest runs with an archive, then again with nothing new
    THEN the first run stores every image's mirror; the second calls the archive
    for nothing and writes nothing."""
    album = carousel(recent(1), children=3)
    posts = [album, image(recent(2)), reel(recent(3))]
    serve(mock_graph, posts)
    archive = FakeArchive()

    first = service(archive).run({})

    assert sorted(archive.calls) == sorted((post_id, None) for post_id in ids(posts))
    assert (first["mirrored"], first["mirror_failures"]) == (3, 0)
    kept = stored()[album["id"]]
    assert kept.mirror == _mirror_of(album["id"])
    assert [child.mirror for child in kept.children] == [_mirror_of(c.id) for c in kept.children]
    archive.calls.clear()
    mark = len(aws_calls.calls)

    second = service(archive).run({})

    assert archive.calls == []
    assert writes(aws_calls, mark) == []
    assert second["unchanged"] == 3


def test_a_missing_mirror_is_retried_and_written_only_when_it_succeeds(
    mock_graph: responses.RequestsMock, aws_calls: AwsCalls
) -> None:
    """GIVEN a stored post whose image could not be mirrored
    WHEN later runs see it unchanged, first with the archive still failing, then working
    THEN the failing run writes nothing; the working run writes just that post."""
    posts = timeline(4, newest=recent(1))
    broken = posts[1]["id"]
    serve(mock_graph, posts)
    service(FakeArchive(failing={broken})).run({})
    assert stored()[broken].mirror is None
    mark = len(aws_calls.calls)

    still_failing = service(FakeArchive(failing={broken})).run({})

    assert (still_failing["written"], still_failing["mirror_failures"]) == (0, 1)
    assert writes(aws_calls, mark) == []
    archive = FakeArchive()

    healed = service(archive).run({})

    assert [post_id for post_id, _ in archive.calls] == [broken]
    assert healed["written"] == 1
    assert stored()[broken].mirror == _mirror_of(broken)


def test_changed_post_is_mirrored_against_its_stored_version(
    mock_graph: responses.RequestsMock,
) -> None:
    """GIVEN a mirrored post
    WHEN its caption changes
    THEN the archive gets the stored version (to reuse its copies) and the post is rewritten."""
    posts = timeline(3, newest=recent(1))
    serve(mock_graph, posts)
    service(FakeArchive()).run({})
    posts[0]["caption"] = "Edited"
    archive = FakeArchive()

    summary = service(archive).run({})

    assert len(archive.calls) == 1
    post_id, previous = archive.calls[0]
    assert post_id == posts[0]["id"]
    assert previous is not None
    assert previous.mirror == _mirror_of(post_id)
    assert summary["written"] == 1
    assert stored()[post_id].caption == "Edited"


def test_without_an_archive_a_caption_edit_keeps_the_stored_mirrors(
    mock_graph: responses.RequestsMock,
) -> None:
    """GIVEN posts mirrored by an earlier run
    WHEN a caption changes and ingest runs without an archive
    THEN the rewritten post keeps its mirrors."""
    posts = timeline(5, newest=recent(1))
    serve(mock_graph, posts)
    service(FakeArchive()).run({})
    album = next(post for post in posts if "children" in post)
    album["caption"] = "Edited album"

    summary = service(None).run({})

    assert summary["written"] == 1
    kept = stored()[album["id"]]
    assert kept.caption == "Edited album"
    assert kept.mirror == _mirror_of(album["id"])
    assert all(child.mirror == _mirror_of(child.id) for child in kept.children)


def test_dry_run_never_mirrors(mock_graph: responses.RequestsMock) -> None:
    """GIVEN new posts
    WHEN an operator dry-runs a backfill with an archive wired
    THEN the archive is never called."""
    serve(mock_graph, timeline(5, newest=datetime(2026, 4, 29, 12, tzinfo=UTC)))
    archive = FakeArchive()

    summary = service(archive).run(
        {"backfill": {"since": "2026-04-01", "until": "2026-05-01", "dry_run": True}}
    )

    assert summary["would_write"] == 5
    assert archive.calls == []


def test_an_archive_that_fails_outright_does_not_stop_the_run(
    mock_graph: responses.RequestsMock,
) -> None:
    """GIVEN an archive that raises (S3 unreachable)
    WHEN ingest runs
    THEN the posts are still stored, without mirrors, and the failures are counted."""
    serve(mock_graph, timeline(3, newest=recent(1)))

    summary = service(FakeArchive(explode=True)).run({})

    assert (summary["written"], summary["mirror_failures"]) == (3, 3)
    assert all(post.mirror is None for post in stored().values())


def test_idle_runs_refresh_last_success_at_most_hourly(
    mock_graph: responses.RequestsMock, aws_calls: AwsCalls
) -> None:
    """GIVEN a table in sync
    WHEN idle runs go 10 minutes and then 2 hours later
    THEN the first writes nothing; the second writes only the state item."""
    serve(mock_graph, timeline(10, newest=recent(1)))
    start = utc_now()
    service(None, clock=lambda: start).run({})
    mark = len(aws_calls.calls)

    service(None, clock=lambda: start + timedelta(minutes=10)).run({})

    assert writes(aws_calls, mark) == []
    assert state().last_success_at == start
    mark = len(aws_calls.calls)

    service(None, clock=lambda: start + timedelta(hours=2)).run({})

    assert writes(aws_calls, mark) == ["PutItem"]
    assert state().last_success_at == start + timedelta(hours=2)


# -- measured costs (figures for the report; counts, not timings) ----------------------------


def test_costs_of_a_1000_post_backfill_its_rerun_and_an_idle_run(
    mock_graph: responses.RequestsMock, aws_calls: AwsCalls, capsys: pytest.CaptureFixture[str]
) -> None:
    """GIVEN 1,000 posts on Instagram (every fifth a carousel of 3) and an empty table
    WHEN an operator backfills them all, runs the same backfill again, and the schedule runs
    THEN the backfill takes 10 Graph calls (children inline) and writes each post once;
    the re-run writes nothing; the idle scheduled run takes 1 call and writes nothing."""
    posts = timeline(1000, newest=recent(1))
    fake = serve(mock_graph, posts)
    since = (utc_now() - timedelta(days=400)).strftime("%Y-%m-%d")
    until = (utc_now() + timedelta(days=1)).strftime("%Y-%m-%d")
    event = {"backfill": {"since": since, "until": until}}
    figures: list[str] = []

    def measured(name: str, run_event: Any) -> tuple[dict[str, Any], list[str]]:
        calls, mark = fake.calls, len(aws_calls.calls)
        summary = invoke(run_event)
        ops = writes(aws_calls, mark)
        figures.append(
            f"{name}: graph_calls={fake.calls - calls} dynamodb_write_calls={len(ops)} "
            f"({', '.join(f'{op}={ops.count(op)}' for op in sorted(set(ops))) or 'none'}) "
            f"posts_written={summary['written']} unchanged={summary['unchanged']}"
        )
        return summary, ops

    backfill, backfill_ops = measured("1000-post backfill", event)
    rerun, rerun_ops = measured("same backfill again", event)
    idle, idle_ops = measured("idle scheduled run", {})

    with capsys.disabled():
        print("\n" + "\n".join(figures))
    assert backfill["graph_calls"] == 10
    assert backfill["written"] == 1000
    assert backfill_ops == ["TransactWriteItems"] * 40 + ["PutItem"]  # 25 posts each, + state
    assert rerun["graph_calls"] == 10
    assert rerun_ops == []
    assert rerun["unchanged"] == 1000
    assert idle["graph_calls"] == 1
    assert idle_ops == []
