"""The safe image downloader: only MEDIA_HOSTS, only public addresses, only images.

The CDN is faked with ``responses`` and DNS with :class:`FakeDns`; every
refused URL is also registered with ``responses`` as a willing server, so
"never requested" is checked against a server that would have answered.
"""

from __future__ import annotations

import io
import re
import socket
import threading
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
import responses

from shared import safe_fetch
from shared.image_types import JPEG, PNG, WEBP
from shared.safe_fetch import (
    MAX_REDIRECTS,
    FetchError,
    NotAnImageError,
    SafeFetcher,
    TooLargeError,
    UnsafeUrlError,
    media_session,
)
from tests.media_fakes import CDN_ADDRESS, FakeDns, photo

CDN = "https://scontent-ams2-1.cdninstagram.com"
IMAGE_URL = f"{CDN}/v/t51.82787-15/4912_n.jpg?_nc_cat=1&oh=00_AfB1&oe=6A2F427E"
DEFAULT_HOSTS = ("cdninstagram.com", "fbcdn.net")
CAP = 256 * 1024


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> FakeDns:
    """GIVEN DNS where the CDN names resolve to a public address."""
    fake = FakeDns.install(monkeypatch)
    for host in ("scontent-ams2-1.cdninstagram.com", "scontent.xx.fbcdn.net"):
        fake.answer(host, [CDN_ADDRESS])
    return fake


@pytest.fixture
def cdn(dns: FakeDns) -> Iterator[responses.RequestsMock]:
    """GIVEN a fake web where every URL would answer with a real JPEG."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def fetcher() -> SafeFetcher:
    """GIVEN a fetcher for the default MEDIA_HOSTS, with a small byte cap."""
    return SafeFetcher(DEFAULT_HOSTS, max_bytes=CAP)


def _serve_everything(cdn: responses.RequestsMock) -> None:
    cdn.get(re.compile(r".*"), body=photo(), content_type="image/jpeg")


def test_downloads_an_image_from_a_cdn_host(
    cdn: responses.RequestsMock, fetcher: SafeFetcher
) -> None:
    """GIVEN a JPEG on an Instagram CDN edge WHEN fetched THEN its bytes and format come back."""
    jpeg = photo()
    cdn.get(IMAGE_URL, body=jpeg, content_type="image/jpeg")

    download = fetcher.fetch(IMAGE_URL)

    assert download.content == jpeg
    assert download.image_type is JPEG
    assert len(cdn.calls) == 1
    # The signed query goes to the CDN unchanged.
    assert cdn.calls[0].request.url == IMAGE_URL


@pytest.mark.parametrize(
    "url",
    [
        "https://evilcdninstagram.com/v/x.jpg",
        "https://cdninstagram.com.evil.net/v/x.jpg",
        "https://scontent.cdninstagram.com.evil.net/v/x.jpg",
        "http://scontent-ams2-1.cdninstagram.com/v/x.jpg",
        "https://scontent.cdninstagram.com@evil.net/v/x.jpg",
        "https://user:secret@scontent-ams2-1.cdninstagram.com/v/x.jpg",
        "https://scontent.cdninstagram.com\\@evil.net/v/x.jpg",
        "https://evil.net\\.cdninstagram.com/v/x.jpg",
        "https://scontent-ams2-1.cdninstagram.com:8443/v/x.jpg",
        "https://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://169.254.169.254/latest/meta-data/",
        "https://127.0.0.1/v/x.jpg",
        "https://[::1]/v/x.jpg",
        "https://[::ffff:127.0.0.1]/v/x.jpg",
        "https://2130706433/v/x.jpg",
        "https://0x7f.0.0.1/v/x.jpg",
        "https://10.0.0.8/v/x.jpg",
        "https://157.240.22.63/v/x.jpg",
        "ftp://scontent-ams2-1.cdninstagram.com/v/x.jpg",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "https://scontent-ams2-1.cdninstagram.com /v/x.jpg",
        "https://scöntent.cdninstagram.com/v/x.jpg",
        "https://%65vil.cdninstagram.com/v/x.jpg",
        "",
    ],
)
def test_refuses_urls_outside_the_allow_list_without_a_request(
    url: str, cdn: responses.RequestsMock, dns: FakeDns, fetcher: SafeFetcher
) -> None:
    """GIVEN a server that would answer anything WHEN a bypass URL is fetched
    THEN it is refused, and nothing is requested from anyone."""
    _serve_everything(cdn)

    with pytest.raises(UnsafeUrlError):
        fetcher.fetch(url)

    assert len(cdn.calls) == 0
    # Refused on its name alone: not even resolved.
    assert dns.lookups == []


@pytest.mark.parametrize(
    "addresses",
    [
        ["10.0.0.5"],
        ["127.0.0.1"],
        ["169.254.169.254"],
        ["::1"],
        ["::ffff:10.0.0.5"],
        ["fe80::1"],
        ["100.64.0.1"],
        ["0.0.0.0"],  # noqa: S104 - an address to refuse, not to bind
        [CDN_ADDRESS, "192.168.1.10"],
    ],
)
def test_refuses_a_cdn_name_that_resolves_to_a_private_address(
    addresses: list[str], cdn: responses.RequestsMock, dns: FakeDns, fetcher: SafeFetcher
) -> None:
    """GIVEN a MEDIA_HOSTS name whose DNS points inside WHEN fetched THEN refused, not requested."""
    dns.answer("internal.cdninstagram.com", addresses)
    _serve_everything(cdn)

    with pytest.raises(UnsafeUrlError):
        fetcher.fetch("https://internal.cdninstagram.com/v/x.jpg")

    assert len(cdn.calls) == 0


def test_an_unresolvable_name_is_a_fetch_error(
    cdn: responses.RequestsMock, fetcher: SafeFetcher
) -> None:
    """GIVEN a CDN name DNS does not know WHEN fetched THEN a plain FetchError, no request."""
    _serve_everything(cdn)

    with pytest.raises(FetchError) as raised:
        fetcher.fetch("https://gone.cdninstagram.com/v/x.jpg")

    assert not isinstance(raised.value, UnsafeUrlError)
    assert len(cdn.calls) == 0


@pytest.mark.parametrize(
    "location",
    [
        "https://169.254.169.254/latest/meta-data/",
        "http://127.0.0.1:9001/2018-06-01/runtime/invocation/next",
        "https://evil.net/x.jpg",
        "https://internal.fbcdn.net/x.jpg",
        "http://scontent-ams2-1.cdninstagram.com/v/x.jpg",
    ],
)
def test_a_redirect_away_from_the_allow_list_is_not_followed(
    location: str, cdn: responses.RequestsMock, dns: FakeDns, fetcher: SafeFetcher
) -> None:
    """GIVEN the CDN redirects to a private or foreign place WHEN fetched
    THEN the redirect is refused and its target never requested."""
    dns.answer("internal.fbcdn.net", ["10.20.30.40"])
    dns.answer("evil.net", [CDN_ADDRESS])
    cdn.get(IMAGE_URL, status=302, headers={"Location": location})
    _serve_everything(cdn)

    with pytest.raises(UnsafeUrlError):
        fetcher.fetch(IMAGE_URL)

    assert [call.request.url for call in cdn.calls] == [IMAGE_URL]


def test_a_redirect_to_another_cdn_host_is_followed(
    cdn: responses.RequestsMock, fetcher: SafeFetcher
) -> None:
    """GIVEN the CDN redirects (relatively, then to another edge) WHEN fetched THEN followed."""
    final = "https://scontent.xx.fbcdn.net/v/moved_n.jpg?oh=1"
    cdn.get(IMAGE_URL, status=301, headers={"Location": "/v/elsewhere_n.jpg"})
    cdn.get(f"{CDN}/v/elsewhere_n.jpg", status=307, headers={"Location": final})
    cdn.get(final, body=photo(fmt="PNG"), content_type="image/png")

    download = fetcher.fetch(IMAGE_URL)

    assert download.image_type is PNG
    assert download.url == final
    assert len(cdn.calls) == 3


def test_redirects_are_bounded(cdn: responses.RequestsMock, fetcher: SafeFetcher) -> None:
    """GIVEN a CDN URL that redirects to itself WHEN fetched THEN it gives up after the bound."""
    cdn.get(IMAGE_URL, status=302, headers={"Location": IMAGE_URL})

    with pytest.raises(FetchError, match="redirects"):
        fetcher.fetch(IMAGE_URL)

    assert len(cdn.calls) == MAX_REDIRECTS + 1


class _EndlessBody(io.RawIOBase):
    """A response body that never ends, counting what it handed out."""

    def __init__(self) -> None:
        self.served = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        size = len(buffer)
        buffer[:size] = b"\xff" * size
        self.served += size
        return size


def test_the_byte_cap_aborts_a_stream_that_lies_about_its_length(
    cdn: responses.RequestsMock, fetcher: SafeFetcher
) -> None:
    """GIVEN a body that claims 100 bytes and never ends WHEN fetched
    THEN the download stops just past the cap."""
    body = _EndlessBody()
    cdn.get(
        IMAGE_URL,
        body=io.BufferedReader(body),
        headers={"Content-Length": "100", "Content-Type": "image/jpeg"},
        auto_calculate_content_length=False,
    )

    with pytest.raises(TooLargeError):
        fetcher.fetch(IMAGE_URL)

    assert CAP < body.served <= CAP + 256 * 1024


def test_an_announced_oversize_body_is_not_read(
    cdn: responses.RequestsMock, fetcher: SafeFetcher
) -> None:
    """GIVEN a Content-Length above the cap WHEN fetched THEN refused before reading the body."""
    body = _EndlessBody()
    cdn.get(
        IMAGE_URL,
        body=io.BufferedReader(body),
        headers={"Content-Length": str(CAP + 1), "Content-Type": "image/jpeg"},
        auto_calculate_content_length=False,
    )

    with pytest.raises(TooLargeError):
        fetcher.fetch(IMAGE_URL)

    assert body.served == 0


@pytest.mark.parametrize(
    ("content_type", "body", "headers"),
    [
        ("text/html; charset=utf-8", b"<!DOCTYPE html><html>login</html>", {}),
        ("image/gif", b"GIF89a\x01\x00\x01\x00", {}),
        ("image/svg+xml", b"<svg xmlns='http://www.w3.org/2000/svg'/>", {}),
        ("image/jpeg", b"<!DOCTYPE html><html>not a jpeg</html>", {}),
        ("image/jpeg", b"GIF89a\x01\x00\x01\x00", {}),
        ("image/jpeg", photo(), {"Content-Encoding": "gzip"}),
        ("video/mp4", b"\x00\x00\x00\x18ftypmp42", {}),
    ],
)
def test_only_images_are_accepted(
    content_type: str,
    body: bytes,
    headers: dict[str, str],
    cdn: responses.RequestsMock,
    fetcher: SafeFetcher,
) -> None:
    """GIVEN the CDN answers 200 with something that is not an accepted image
    WHEN fetched THEN NotAnImageError."""
    cdn.get(IMAGE_URL, body=body, content_type=content_type, headers=headers)

    with pytest.raises(NotAnImageError):
        fetcher.fetch(IMAGE_URL)


def test_the_magic_bytes_decide_the_format(
    cdn: responses.RequestsMock, fetcher: SafeFetcher
) -> None:
    """GIVEN WebP bytes labelled image/jpeg WHEN fetched THEN it is known as WebP."""
    cdn.get(IMAGE_URL, body=photo(fmt="WEBP"), content_type="image/jpeg")

    assert fetcher.fetch(IMAGE_URL).image_type is WEBP


@pytest.mark.parametrize(("status", "expired"), [(403, True), (410, True), (404, False)])
def test_http_errors_say_whether_the_link_expired(
    status: int, expired: bool, cdn: responses.RequestsMock, fetcher: SafeFetcher
) -> None:
    """GIVEN the CDN refuses the URL WHEN fetched THEN the error tells an expired link apart,
    and its message carries no signed query."""
    cdn.get(IMAGE_URL, status=status, body="URL signature expired", content_type="text/plain")

    with pytest.raises(FetchError) as raised:
        fetcher.fetch(IMAGE_URL)

    assert raised.value.status == status
    assert raised.value.expired is expired
    assert "oh=" not in str(raised.value)


def test_the_overall_deadline_stops_a_dripping_server(
    cdn: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GIVEN a server whose every chunk comes 20 s late WHEN fetched THEN the deadline ends it."""
    ticks = iter(range(0, 10_000, 20))
    monkeypatch.setattr(safe_fetch, "time", SimpleNamespace(monotonic=lambda: float(next(ticks))))
    cdn.get(IMAGE_URL, body=io.BufferedReader(_EndlessBody()), content_type="image/jpeg")

    with pytest.raises(FetchError, match="longer than"):
        SafeFetcher(DEFAULT_HOSTS, max_bytes=10 * CAP, deadline=30.0).fetch(IMAGE_URL)


def test_a_host_listed_exactly_may_be_plain_http_on_loopback(
    cdn: responses.RequestsMock, dns: FakeDns
) -> None:
    """GIVEN MEDIA_HOSTS lists 127.0.0.1 and localhost exactly (local mode)
    WHEN their http URLs on any port are fetched THEN they download."""
    fetcher = SafeFetcher(["127.0.0.1", "localhost"])
    dns.answer("localhost", ["127.0.0.1"])
    local = "http://127.0.0.1:8765/cdn/v/t51.2885-15/sunset_n.jpg?oh=x&oe=1"
    named = "http://localhost:8765/cdn/v/t51.2885-15/sunset_n.jpg"
    cdn.get(local, body=photo(), content_type="image/jpeg")
    cdn.get(named, body=photo(), content_type="image/jpeg")

    assert fetcher.fetch(local).image_type is JPEG
    assert fetcher.fetch(named).image_type is JPEG


@pytest.mark.parametrize(
    ("hosts", "url"),
    [
        # An exact IP entry is not a suffix.
        (["127.0.0.1"], "http://1.127.0.0.1/x.jpg"),
        (["127.0.0.1"], "http://127.0.0.2:8765/x.jpg"),
        (["127.0.0.1"], "http://localhost:8765/x.jpg"),
        # Listing a link-local address does not open the metadata service.
        (["169.254.169.254"], "http://169.254.169.254/latest/meta-data/"),
        # Exact listing allows a private address, but http only on loopback.
        (["cdn.yacht.internal"], "http://cdn.yacht.internal/x.jpg"),
        # A suffix entry's subdomains get no local-mode allowances.
        (["localhost"], "http://evil.localhost/x.jpg"),
    ],
)
def test_local_mode_allowances_stay_exact(
    hosts: list[str], url: str, cdn: responses.RequestsMock, dns: FakeDns
) -> None:
    """GIVEN local-mode MEDIA_HOSTS WHEN a near-miss URL is fetched THEN refused, not requested."""
    dns.answer("cdn.yacht.internal", ["10.1.2.3"])
    dns.answer("evil.localhost", ["127.0.0.1"])
    _serve_everything(cdn)

    with pytest.raises(UnsafeUrlError):
        SafeFetcher(hosts).fetch(url)

    assert len(cdn.calls) == 0


def test_an_exactly_listed_private_host_is_fetched_over_https(
    cdn: responses.RequestsMock, dns: FakeDns
) -> None:
    """GIVEN MEDIA_HOSTS lists an internal CDN name exactly WHEN fetched over https THEN allowed."""
    dns.answer("cdn.yacht.internal", ["10.1.2.3"])
    cdn.get("https://cdn.yacht.internal/x.jpg", body=photo(), content_type="image/jpeg")

    assert SafeFetcher(["cdn.yacht.internal"]).fetch("https://cdn.yacht.internal/x.jpg")


@pytest.fixture
def silent_listener() -> Iterator[tuple[int, list[bytes]]]:
    """A TCP listener on 127.0.0.1 recording what each connection sends."""
    server = socket.create_server(("127.0.0.1", 0))
    received: list[bytes] = []

    def accept() -> None:
        try:
            connection, _ = server.accept()
        except OSError:
            return
        with connection:
            connection.settimeout(5)
            chunks = []
            try:
                while chunk := connection.recv(4096):
                    chunks.append(chunk)
            except OSError:
                pass
            received.append(b"".join(chunks))

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1], received
    server.close()
    thread.join(timeout=5)


def test_dns_rebinding_is_caught_on_the_connected_socket(
    dns: FakeDns, silent_listener: tuple[int, list[bytes]]
) -> None:
    """GIVEN a CDN name that resolves to a public address for the check, then to loopback
    for the connection (DNS rebinding) WHEN fetched for real (no responses mock)
    THEN the connected peer is refused before a single byte is sent."""
    port, received = silent_listener
    dns.answer("rebind.cdninstagram.com", [CDN_ADDRESS], [("127.0.0.1", port)])

    with pytest.raises(UnsafeUrlError, match="non-public"):
        SafeFetcher(DEFAULT_HOSTS).fetch("https://rebind.cdninstagram.com/v/x.jpg")

    assert dns.lookups == ["rebind.cdninstagram.com", "rebind.cdninstagram.com"]
    for _ in range(50):
        if received:
            break
        threading.Event().wait(0.1)
    assert received == [b""]


def test_one_session_per_container_for_the_same_hosts() -> None:
    """GIVEN two fetchers for the same MEDIA_HOSTS THEN they share one HTTP session,
    which ignores proxy and netrc settings from the environment."""
    first = SafeFetcher(["cdninstagram.com", "fbcdn.net"])
    second = SafeFetcher(["CDNINSTAGRAM.COM.", "fbcdn.net"])

    session = media_session(first.policy)
    assert media_session(second.policy) is session
    assert session.trust_env is False
