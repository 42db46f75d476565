"""The Graph API client and the error classification, against ``responses``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses

from shared.config import get_settings
from shared.graph import MEDIA_FIELDS, GraphClient
from shared.graph_errors import (
    GraphAuthError,
    GraphError,
    GraphResponseError,
    GraphThrottledError,
    GraphTransientError,
    raise_for_graph_error,
    usage_from_headers,
)
from shared.redaction import register_secret
from shared.tokens import TokenRecord
from tests.conftest import GRAPH, SENTINEL_TOKEN
from tests.graph_fakes import (
    EXPIRED_TOKEN,
    RATE_LIMITED,
    SERVER_ERROR,
    FakeGraph,
    carousel,
    error_body,
    ids,
    image,
    reel,
    timeline,
)

NOW = datetime(2026, 4, 30, 12, 0, tzinfo=UTC)
ROTATED = "IGAArotatedTOKEN9876543210fedcba"


class Tokens:
    """A token source whose secret may hold a newer token after a rotation."""

    def __init__(self, *values: str) -> None:
        self.values = list(values)
        self.invalidated = 0
        for value in values:
            register_secret(value)

    def current(self) -> TokenRecord:
        return TokenRecord(access_token=self.values[0])

    def invalidate(self) -> None:
        self.invalidated += 1
        if len(self.values) > 1:
            self.values.pop(0)


@pytest.fixture
def mock() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


@pytest.fixture
def sleeps() -> list[float]:
    return []


def client(sleeps: list[float], tokens: Tokens | None = None, **options: Any) -> GraphClient:
    return GraphClient(
        get_settings(),
        tokens or Tokens(SENTINEL_TOKEN),
        sleep=sleeps.append,
        clock=lambda: NOW,
        **options,
    )


def reply(status: int, body: str, headers: dict[str, str] | None = None) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = body.encode()
    response.headers.update(headers or {"Content-Type": "application/json"})
    return response


# -- requests made ----------------------------------------------------------------------------


def test_first_page_asks_for_fields_children_and_limit_with_a_bearer_header(
    mock: responses.RequestsMock, sleeps: list[float]
) -> None:
    """GIVEN one page of posts
    WHEN the client reads it
    THEN it asks for every field with children expanded, limit=100, sends the
    token only as a header and sets (connect, read) timeouts."""
    fake = FakeGraph(timeline(3, newest=NOW)).install(mock)

    pages = list(client(sleeps).media_pages())

    assert len(pages) == 1
    assert not pages[0].has_next
    request = fake.requests[0]
    query = urlsplit(str(request.url)).query
    assert f"{GRAPH}/me/media?" in str(request.url)
    assert parse_qs(query)["limit"] == ["100"]
    assert parse_qs(query)["fields"] == [MEDIA_FIELDS]
    assert "children{id,media_type,media_url,thumbnail_url}" in MEDIA_FIELDS
    assert "access_token" not in str(request.url)
    assert request.headers["Authorization"] == f"Bearer {SENTINEL_TOKEN}"
    sent: Any = mock.calls[0].request
    assert sent.req_kwargs["timeout"] == (3.05, 10.0)


def test_pages_are_fetched_lazily_and_next_urls_lose_their_token(
    mock: responses.RequestsMock, sleeps: list[float]
) -> None:
    """GIVEN 250 posts and next URLs that embed the token
    WHEN a caller reads one page, then the rest
    THEN the second call happens only when asked for, without the token in its URL."""
    posts = timeline(250, newest=NOW)
    fake = FakeGraph(posts).install(mock)
    graph = client(sleeps)
    pages = graph.media_pages()

    first = next(pages)
    assert fake.calls == graph.calls == 1
    rest = list(pages)

    assert graph.calls == fake.calls == 3
    assert [post.id for page in (first, *rest) for post in page.posts] == ids(posts)
    assert all(SENTINEL_TOKEN not in url for url in fake.urls())
    assert "after=" in fake.urls()[1]


@pytest.mark.parametrize(
    "next_base",
    [
        "https://evil.example/v25.0",
        "https://graph.instagram.com.evil.example/v25.0",
        "http://graph.instagram.com/v25.0",
        "https://graph.facebook.com/v25.0",
    ],
)
def test_next_url_on_another_host_or_scheme_is_not_followed(
    mock: responses.RequestsMock, sleeps: list[float], next_base: str
) -> None:
    """GIVEN a paging.next on another origin
    WHEN the caller asks for the next page
    THEN the client raises without calling that URL."""
    fake = FakeGraph(timeline(150, newest=NOW), next_base=next_base).install(mock)
    pages = client(sleeps).media_pages()
    next(pages)

    with pytest.raises(GraphResponseError, match="another host"):
        next(pages)
    assert len(mock.calls) == fake.calls == 1


def test_repeated_cursor_stops_paging(mock: responses.RequestsMock, sleeps: list[float]) -> None:
    """GIVEN Graph that keeps answering the same cursor
    WHEN the client pages
    THEN it stops with an error at the first repeat."""
    fake = FakeGraph(timeline(150, newest=NOW), repeat_cursor=True).install(mock)

    with pytest.raises(GraphResponseError, match="repeated a paging cursor"):
        list(client(sleeps).media_pages())
    assert fake.calls == 2


def test_posts_parse_with_every_field_optional_and_unknown_types(
    mock: responses.RequestsMock, sleeps: list[float]
) -> None:
    """GIVEN a carousel, a reel without media_url, a bare post with an unknown
    media type and two unusable objects
    WHEN the page is read
    THEN the usable ones parse and the unusable ones are counted as skipped."""
    album, withheld = carousel(NOW, children=2), reel(NOW - timedelta(hours=1))
    bare = {"id": "17900000000000001", "timestamp": "2026-04-30T05:30:00+0000"}
    odd = {**image(NOW - timedelta(hours=3)), "media_type": "CAROUSEL_CONTAINER"}
    broken = [{"caption": "no id"}, {"id": "17900000000000002", "timestamp": "yesterday"}]
    FakeGraph([album, withheld, bare, odd, *broken]).install(mock)

    (page,) = client(sleeps).media_pages()

    assert page.skipped == 2
    by_id = {post.id: post for post in page.posts}
    assert len(by_id[album["id"]].children) == 2
    assert by_id[withheld["id"]].media_url is None
    assert by_id[withheld["id"]].image_url == by_id[withheld["id"]].thumbnail_url
    assert by_id[bare["id"]].taken_at == datetime(2026, 4, 30, 5, 30, tzinfo=UTC)
    assert by_id[bare["id"]].caption is None
    assert by_id[odd["id"]].media_type == "CAROUSEL_CONTAINER"


def test_get_media_reads_one_post_with_children(
    mock: responses.RequestsMock, sleeps: list[float]
) -> None:
    """GIVEN a carousel on Graph
    WHEN the archive asks for it again
    THEN one call returns it with fresh URLs and its children."""
    album = carousel(NOW, children=3)
    fake = FakeGraph([album]).install(mock)

    post = client(sleeps).get_media(album["id"])

    assert post.id == album["id"]
    assert [child.id for child in post.children] == ids(album["children"]["data"])
    assert "_nc_sid=" in (post.media_url or "")
    assert fake.calls == 1
    assert "fields=" in fake.urls()[0]


def test_get_media_refuses_a_non_id_without_calling(
    mock: responses.RequestsMock, sleeps: list[float]
) -> None:
    """GIVEN an id that would change the URL path
    WHEN get_media is asked for it
    THEN it raises ValueError and calls nothing."""
    with pytest.raises(ValueError, match="not a media id"):
        client(sleeps).get_media("../me/media")
    assert len(mock.calls) == 0


# -- failures -------------------------------------------------------------------------------------


def test_transient_errors_are_retried_a_bounded_number_of_times_with_backoff(
    mock: responses.RequestsMock, sleeps: list[float]
) -> None:
    """GIVEN Graph answering HTTP 500 forever
    WHEN the client reads a page
    THEN it makes 4 attempts with growing jittered pauses, then raises."""
    fake = FakeGraph([]).install(mock)
    fake.fail(*[SERVER_ERROR] * 10)
    graph = client(sleeps)

    with pytest.raises(GraphTransientError, match="gave up after 4 attempts"):
        list(graph.media_pages())

    assert graph.calls == fake.calls == 4
    assert len(sleeps) == 3
    for attempt, pause in enumerate(sleeps):
        ceiling = 0.5 * 2**attempt
        assert ceiling / 2 <= pause <= ceiling


def test_timeouts_and_resets_are_retried_and_their_text_is_redacted(
    mock: responses.RequestsMock, sleeps: list[float]
) -> None:
    """GIVEN a connect timeout, then connection resets that quote a URL with the token
    WHEN the client reads a page
    THEN it retries, and the final error names the cause without the token."""
    fake = FakeGraph([]).install(mock)
    leaky = requests.ConnectionError(f"reset; url: /me/media?access_token={SENTINEL_TOKEN}")
    fake.fail(requests.ConnectTimeout("connect timed out"), leaky, leaky, leaky)

    with pytest.raises(GraphTransientError) as raised:
        list(client(sleeps).media_pages())

    assert "unreachable" in str(raised.value)
    assert SENTINEL_TOKEN not in str(raised.value)
    assert fake.calls == 4


def test_transient_failure_then_success(mock: responses.RequestsMock, sleeps: list[float]) -> None:
    """GIVEN one read timeout before a good answer
    WHEN the client reads a page
    THEN it gets the page on the second attempt."""
    fake = FakeGraph(timeline(2, newest=NOW)).install(mock)
    fake.fail(requests.ReadTimeout("read timed out"))

    (page,) = client(sleeps).media_pages()

    assert len(page.posts) == 2
    assert fake.calls == 2
    assert len(sleeps) == 1


def test_rejected_token_is_not_retried_when_the_secret_still_holds_it(
    mock: responses.RequestsMock, sleeps: list[float]
) -> None:
    """GIVEN Graph answering 190/463 and no newer token
    WHEN the client reads a page
    THEN it re-reads the token once, does not call again and raises GraphAuthError."""
    fake = FakeGraph([]).install(mock)
    fake.fail(EXPIRED_TOKEN)
    tokens = Tokens(SENTINEL_TOKEN)

    with pytest.raises(GraphAuthError, match="code 190, subcode 463") as raised:
        list(client(sleeps, tokens).media_pages())

    assert (raised.value.code, raised.value.subcode, raised.value.status) == (190, 463, 400)
    assert fake.calls == 1
    assert tokens.invalidated == 1
    assert sleeps == []


def test_rejected_token_is_retried_once_with_a_rotated_one(
    mock: responses.RequestsMock, sleeps: list[float]
) -> None:
    """GIVEN a cached token that a rotation replaced
    WHEN Graph rejects it
    THEN the client retries once with the new token and succeeds."""
    fake = FakeGraph(timeline(2, newest=NOW), tokens={ROTATED}).install(mock)

    (page,) = client(sleeps, Tokens(SENTINEL_TOKEN, ROTATED)).media_pages()

    assert len(page.posts) == 2
    assert [r.headers["Authorization"] for r in fake.requests] == [
        f"Bearer {SENTINEL_TOKEN}",
        f"Bearer {ROTATED}",
    ]


def test_a_rotated_token_that_is_rejected_too_is_not_retried_again(
    mock: responses.RequestsMock, sleeps: list[float]
) -> None:
    """GIVEN two tokens that Graph both rejects
    WHEN the client reads a page
    THEN it tries each once, then raises."""
    fake = FakeGraph([], tokens=set()).install(mock)
    tokens = Tokens(SENTINEL_TOKEN, ROTATED, "IGAAthirdTOKEN000000000000000000")

    with pytest.raises(GraphAuthError):
        list(client(sleeps, tokens).media_pages())
    assert fake.calls == 2


def test_throttling_stops_all_calls_until_the_regain_time(
    mock: responses.RequestsMock, sleeps: list[float]
) -> None:
    """GIVEN Graph answering 80002 with a BUC header saying 42 minutes
    WHEN the client reads, and is asked again
    THEN it raises at once with retry_after = now + 42 min, and makes no further call."""
    fake = FakeGraph(timeline(2, newest=NOW)).install(mock)
    fake.fail(RATE_LIMITED)
    graph = client(sleeps)

    with pytest.raises(GraphThrottledError) as raised:
        list(graph.media_pages())
    with pytest.raises(GraphThrottledError):
        graph.get_media("17900000000000001")

    assert raised.value.retry_after == NOW + timedelta(minutes=42)
    assert raised.value.code == 80002
    assert fake.calls == 1
    assert sleeps == []


def test_throttling_without_a_regain_time_pauses_for_the_default(
    mock: responses.RequestsMock, sleeps: list[float]
) -> None:
    """GIVEN Graph answering code 4 without usage headers
    WHEN the client reads
    THEN retry_after is the default pause."""
    fake = FakeGraph([]).install(mock)
    fake.fail((400, {}, error_body(4, "(#4) Application request limit reached")))

    with pytest.raises(GraphThrottledError) as raised:
        list(client(sleeps).media_pages())
    assert raised.value.retry_after == NOW + timedelta(minutes=30)


def test_usage_near_the_limit_stops_before_the_next_call(
    mock: responses.RequestsMock, sleeps: list[float]
) -> None:
    """GIVEN a good page whose X-App-Usage says 97 %
    WHEN the caller asks for the next page
    THEN it gets the data, then GraphThrottledError without another call."""
    posts = timeline(150, newest=NOW)
    fake = FakeGraph(posts).install(mock)
    body = json.dumps({"data": posts[:100], "paging": {"next": f"{GRAPH}/1/media?after=x"}})
    usage = json.dumps({"call_count": 97, "total_time": 20, "total_cputime": 10})
    fake.fail((200, {"Content-Type": "application/json", "X-App-Usage": usage}, body))
    graph = client(sleeps)
    pages = graph.media_pages()

    assert len(next(pages).posts) == 100
    with pytest.raises(GraphThrottledError, match="97%") as raised:
        next(pages)
    assert raised.value.retry_after == NOW + timedelta(minutes=30)
    assert fake.calls == graph.calls == 1


def test_redirects_are_not_followed(mock: responses.RequestsMock, sleeps: list[float]) -> None:
    """GIVEN Graph answering a redirect elsewhere
    WHEN the client reads
    THEN it raises without following it."""
    mock.add(
        responses.GET,
        f"{GRAPH}/me/media",
        status=302,
        headers={"Location": "https://evil.example/"},
    )

    with pytest.raises(GraphResponseError, match="redirected"):
        list(client(sleeps).media_pages())
    assert len(mock.calls) == 1


# -- classification ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "expected", "text"),
    [
        (
            400,
            error_body(190, "Error validating access token", subcode=463),
            GraphAuthError,
            "subcode 463",
        ),
        (400, error_body(190, "Session invalidated", subcode=460), GraphAuthError, "code 190"),
        (400, error_body(102, "API session"), GraphAuthError, "code 102"),
        (400, error_body(4, "Application request limit reached"), GraphThrottledError, "code 4"),
        (400, error_body(17, "User request limit reached"), GraphThrottledError, "code 17"),
        (400, error_body(32, "Page request limit reached"), GraphThrottledError, "code 32"),
        (400, error_body(613, "Calls exceeded"), GraphThrottledError, "code 613"),
        (400, error_body(80001, "Page BUC"), GraphThrottledError, "code 80001"),
        (403, error_body(80002, "Too many calls"), GraphThrottledError, "code 80002"),
        (429, "", GraphThrottledError, "HTTP 429"),
        (500, error_body(1, "An unknown error occurred"), GraphTransientError, "code 1"),
        (400, error_body(2, "Service temporarily unavailable"), GraphTransientError, "code 2"),
        (502, "<html><body>Bad Gateway</body></html>", GraphTransientError, "HTTP 502"),
        (503, "", GraphTransientError, "HTTP 503"),
        (400, error_body(100, "Unsupported get request"), GraphResponseError, "code 100"),
        (400, error_body(10, "Permission denied"), GraphResponseError, "code 10"),
        (404, "Not Found", GraphResponseError, "HTTP 404"),
        (200, '{"data": [', GraphResponseError, "malformed JSON"),
        (200, "<!DOCTYPE html><html></html>", GraphResponseError, "an HTML page"),
        (200, "[1, 2]", GraphResponseError, "not an object"),
        (200, "", GraphResponseError, "malformed JSON"),
    ],
)
def test_responses_are_classified_from_the_envelope_status_and_body(
    status: int, body: str, expected: type[GraphError], text: str
) -> None:
    """GIVEN a Graph response
    WHEN it is classified
    THEN the matching error class is raised with a message that names the cause."""
    with pytest.raises(GraphError) as raised:
        raise_for_graph_error(reply(status, body))

    assert type(raised.value) is expected
    assert text in str(raised.value)


def test_a_good_response_passes() -> None:
    """GIVEN a 200 JSON object
    WHEN it is classified
    THEN nothing is raised."""
    raise_for_graph_error(reply(200, '{"data": []}'))


def test_error_texts_are_redacted() -> None:
    """GIVEN an error envelope that quotes the token
    WHEN it is classified
    THEN the exception text shows *** instead."""
    register_secret(SENTINEL_TOKEN)
    body = error_body(190, f"Invalid OAuth access token {SENTINEL_TOKEN}", subcode=467)

    with pytest.raises(GraphAuthError) as raised:
        raise_for_graph_error(reply(400, body))
    assert SENTINEL_TOKEN not in str(raised.value)
    assert "***" in str(raised.value)


def test_usage_headers_are_parsed() -> None:
    """GIVEN the three usage headers (and a garbled one)
    WHEN they are read
    THEN the highest percentage and the longest regain time come out."""
    buc = {"1784": [{"type": "instagram", "call_count": 40, "estimated_time_to_regain_access": 5}]}
    usage = usage_from_headers(
        {
            "X-App-Usage": json.dumps({"call_count": 28, "total_time": 96, "total_cputime": 25}),
            "x-business-use-case-usage": json.dumps(buc),
            "X-Ad-Account-Usage": "{not json",
        }
    )
    assert usage.percent == 96
    assert usage.near_limit
    assert usage.regain_after == timedelta(minutes=5)
    assert usage_from_headers({}).percent == 0
    assert not usage_from_headers({}).near_limit


def test_retry_after_header_sets_the_resume_time() -> None:
    """GIVEN an HTTP 429 with Retry-After: 120
    WHEN it is classified
    THEN retry_after is about two minutes away."""
    with pytest.raises(GraphThrottledError) as raised:
        raise_for_graph_error(reply(429, "", {"Retry-After": "120"}))
    retry_after = raised.value.retry_after
    assert retry_after is not None
    assert timedelta(seconds=110) <= retry_after - datetime.now(UTC) <= timedelta(seconds=121)
