"""Download images from the media CDN, and from nowhere else.

Ingest downloads whatever URL Graph hands it. Those URLs are data, not code
we wrote, so a download must not become a way to reach the Lambda's
neighbours (the instance metadata service at ``169.254.169.254``, the Lambda
runtime API on loopback, a VPC's private hosts) or to fill its memory. The
rules, from the design brief's ``MEDIA_HOSTS``:

- ``https`` only, to a host whose name ends with a ``MEDIA_HOSTS`` entry on a
  label boundary (``scontent-ams2-1.cdninstagram.com`` yes,
  ``evilcdninstagram.com`` and ``cdninstagram.com.evil.net`` no), on the
  default port. No userinfo (``https://cdninstagram.com@evil.net/``), no
  URL two parsers read differently, no IP literal.
- A host that ``MEDIA_HOSTS`` lists exactly (the local mode's ``127.0.0.1``)
  may use any port, any address but link-local, multicast or unspecified,
  and plain ``http`` when every address it has is loopback.
- Every other host must resolve to global addresses only; the check runs
  before the request *and* again on the socket actually connected, so a DNS
  answer that changes in between (rebinding) gains nothing.
- Redirects are followed by hand, at most :data:`MAX_REDIRECTS`, each hop
  checked like the first URL.
- The body is read in chunks and abandoned past ``max_bytes``, whatever
  ``Content-Length`` claimed; ``Content-Type`` and the magic bytes must both
  name an accepted format (:mod:`shared.image_types`); compressed transfer
  encodings are refused rather than inflated.
- (connect, read) timeouts, plus an overall deadline against a server that
  drips one byte per read timeout.

Error messages name the host and path only: the signed query (``oh=``) of a
CDN URL opens the image to anyone for days.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from http.cookiejar import DefaultCookiePolicy
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from shared.image_types import SIGNATURE_LENGTH, ImageType, image_type_for, sniff_image_type

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Instagram serves at most 1440 px wide images (a few hundred KB); 15 MiB
# leaves room for a large PNG in local mode and still bounds the memory.
DEFAULT_MAX_BYTES = 15 * 1024 * 1024
MAX_REDIRECTS = 3
# (connect, read): slightly over 3 s outlasts one lost SYN.
TIMEOUT = (3.05, 10.0)
DEADLINE_SECONDS = 30.0
MAX_URL_LENGTH = 4096
_CHUNK_BYTES = 64 * 1024
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_EXPIRED_STATUSES = frozenset({403, 410})
_HOSTNAME = re.compile(r"[a-z0-9-]+(?:\.[a-z0-9-]+)*")
_ACCEPT = "image/webp,image/jpeg,image/png;q=0.9"


class FetchError(Exception):
    """A download failed.

    Attributes
    ----------
    status
        The HTTP status of the failed response, ``None`` when there was none.
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status

    @property
    def expired(self) -> bool:
        """Whether the CDN refused a URL that is probably past its signature's life.

        Instagram answers an expired signed URL with ``403 URL signature
        expired``; ``410`` is the other status a CDN uses for it.
        """
        return self.status in _EXPIRED_STATUSES


class UnsafeUrlError(FetchError):
    """The URL (or an address it resolves to) is not allowed; nothing was sent."""


class TooLargeError(FetchError):
    """The body is larger than the byte cap; the download was abandoned."""


class NotAnImageError(FetchError):
    """The response is not an accepted image format."""


@dataclass(frozen=True)
class Download:
    """A downloaded image.

    Attributes
    ----------
    content
        The bytes, at most the fetcher's ``max_bytes``.
    image_type
        The format, from the magic bytes.
    url
        The URL finally served (after redirects).
    """

    content: bytes
    image_type: ImageType
    url: str


@dataclass(frozen=True)
class _Target:
    url: str
    scheme: str
    host: str
    port: int


@dataclass(frozen=True)
class HostPolicy:
    """Where downloads may go: the normalised ``MEDIA_HOSTS`` entries.

    Build it with :meth:`from_media_hosts`.
    """

    entries: tuple[str, ...]

    @classmethod
    def from_media_hosts(cls, hosts: Iterable[str]) -> HostPolicy:
        """Normalise ``MEDIA_HOSTS`` entries (case, dots, IPv6 brackets)."""
        entries = (host.strip().lower().strip(".").strip("[]") for host in hosts)
        return cls(tuple(entry for entry in entries if entry))

    def is_exact(self, host: str) -> bool:
        """Whether ``host`` is listed as it is (not only as a suffix)."""
        return host in self.entries

    def permits_name(self, host: str) -> bool:
        """Whether downloads may name ``host`` (addresses are checked separately)."""
        if self.is_exact(host):
            return True
        if ip_literal(host) is not None or not _HOSTNAME.fullmatch(host):
            return False
        # An IP entry is never a suffix: "127.0.0.1" must not admit "1.127.0.0.1".
        return any(
            host.endswith("." + entry) for entry in self.entries if ip_literal(entry) is None
        )

    def check_address(self, host: str, address: IPAddress, scheme: str) -> None:
        """Refuse a connection to ``address`` for ``host`` unless the rules allow it.

        Raises
        ------
        UnsafeUrlError
            For link-local, multicast or unspecified addresses (always), a
            non-global address of a host not listed exactly, and plain
            ``http`` anywhere but to the loopback address of such a host.
        """
        ip = _unmapped(address)
        if ip.is_link_local or ip.is_multicast or ip.is_unspecified:
            raise UnsafeUrlError(f"{host} resolves to {ip}, which is never fetched")
        exact = self.is_exact(host)
        if scheme == "http" and not (exact and ip.is_loopback):
            raise UnsafeUrlError(f"plain http to {host} ({ip}) is not allowed")
        if not ip.is_global and not exact:
            raise UnsafeUrlError(f"{host} resolves to non-public address {ip}")


class SafeFetcher:
    """Downloads images under :class:`HostPolicy` rules.

    Parameters
    ----------
    media_hosts
        The ``MEDIA_HOSTS`` entries (``Settings.media_hosts``).
    session
        HTTP session; by default the container's session for this policy,
        whose connections re-check the address they actually reach.
    max_bytes
        The most a download may read.
    timeout
        ``(connect, read)`` seconds per network operation.
    deadline
        Seconds one download may take in all, redirects included.
    """

    def __init__(
        self,
        media_hosts: Iterable[str],
        *,
        session: requests.Session | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        timeout: tuple[float, float] = TIMEOUT,
        deadline: float = DEADLINE_SECONDS,
    ) -> None:
        self.policy = HostPolicy.from_media_hosts(media_hosts)
        self._session = session or media_session(self.policy)
        self._max_bytes = max_bytes
        self._timeout = timeout
        self._deadline = deadline

    def fetch(self, url: str) -> Download:
        """Download one image.

        Parameters
        ----------
        url
            A CDN URL from Graph (``media_url`` or ``thumbnail_url``).

        Returns
        -------
        Download
            The bytes and their format.

        Raises
        ------
        UnsafeUrlError
            When the URL, a redirect or an address is not allowed (no request
            is sent to it).
        TooLargeError
            When the body exceeds the byte cap.
        NotAnImageError
            When the response is not an accepted image.
        FetchError
            For any other failure (HTTP status, network, timeout); ``expired``
            tells a dead signed URL apart.
        """
        deadline = time.monotonic() + self._deadline
        for _ in range(MAX_REDIRECTS + 1):
            target = self._check_url(url)
            self._check_resolution(target)
            where = _describe(target.url)
            try:
                with self._session.get(
                    target.url,
                    stream=True,
                    allow_redirects=False,
                    timeout=self._timeout,
                ) as response:
                    if response.status_code in _REDIRECT_STATUSES:
                        location = response.headers.get("Location")
                        if not location:
                            raise FetchError(f"redirect without Location from {where}")
                        url = urljoin(target.url, location)
                        continue
                    return self._accept(response, target, deadline)
            except requests.RequestException as exc:
                # requests quotes the URL (and its signature) in its messages.
                raise FetchError(f"download from {where} failed: {type(exc).__name__}") from None
        raise FetchError(f"more than {MAX_REDIRECTS} redirects from {_describe(url)}")

    def _check_url(self, url: str) -> _Target:
        if not isinstance(url, str) or len(url) > MAX_URL_LENGTH:
            raise UnsafeUrlError("not a usable URL")
        if not url.isascii() or any(ch <= " " or ch in "\\\x7f" for ch in url):
            raise UnsafeUrlError(f"URL with whitespace, controls or backslashes: {_describe(url)}")
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise UnsafeUrlError(f"scheme {scheme!r} is not allowed")
        if "@" in parts.netloc:
            raise UnsafeUrlError(f"URL with userinfo refused: {_describe(url)}")
        try:
            port = parts.port
            other = parse_url(url)
        except (ValueError, LocationParseError):
            raise UnsafeUrlError(f"malformed URL: {_describe(url)}") from None
        host = (parts.hostname or "").rstrip(".")
        # Refuse a URL that urllib3 (which connects) reads differently from us.
        if (other.host or "").strip("[]").lower().rstrip(".") != host or other.auth:
            raise UnsafeUrlError(f"ambiguous URL refused: {_describe(url)}")
        if not self.policy.permits_name(host):
            raise UnsafeUrlError(f"host {host!r} is not in MEDIA_HOSTS")
        default_port = 443 if scheme == "https" else 80
        exact = self.policy.is_exact(host)
        if scheme == "http" and not exact:
            raise UnsafeUrlError(f"plain http to {host} is not allowed")
        if port not in (None, default_port) and not exact:
            raise UnsafeUrlError(f"port {port} on {host} is not allowed")
        return _Target(url.split("#", 1)[0], scheme, host, port or default_port)

    def _check_resolution(self, target: _Target) -> None:
        literal = ip_literal(target.host)
        if literal is not None:
            addresses: set[IPAddress] = {literal}
        else:
            try:
                infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
            except (OSError, UnicodeError):
                raise FetchError(f"cannot resolve {target.host}") from None
            addresses = {ipaddress.ip_address(info[4][0]) for info in infos}
        if not addresses:
            raise FetchError(f"{target.host} has no address")
        for address in addresses:
            self.policy.check_address(target.host, address, target.scheme)

    def _accept(self, response: requests.Response, target: _Target, deadline: float) -> Download:
        where = _describe(target.url)
        if response.status_code != 200:
            raise FetchError(
                f"HTTP {response.status_code} from {where}", status=response.status_code
            )
        declared_type = image_type_for(response.headers.get("Content-Type"))
        if declared_type is None:
            raise NotAnImageError(
                f"{where} sent Content-Type {response.headers.get('Content-Type')!r}"
            )
        encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            raise NotAnImageError(f"{where} sent a {encoding}-encoded image")
        content = self._read(response, where, deadline)
        sniffed = sniff_image_type(content[:SIGNATURE_LENGTH])
        if sniffed is None:
            raise NotAnImageError(f"{where} sent bytes that are not JPEG, PNG or WebP")
        # The bytes decide the format: CDNs label WebP as JPEG now and then.
        return Download(content=content, image_type=sniffed, url=target.url)

    def _read(self, response: requests.Response, where: str, deadline: float) -> bytes:
        declared = response.headers.get("Content-Length", "").strip()
        if declared.isdigit() and int(declared) > self._max_bytes:
            raise TooLargeError(f"{where} announced {declared} bytes (cap {self._max_bytes})")
        body = bytearray()
        for chunk in response.iter_content(chunk_size=_CHUNK_BYTES):
            body += chunk
            if len(body) > self._max_bytes:
                raise TooLargeError(f"{where} sent more than {self._max_bytes} bytes")
            if time.monotonic() > deadline:
                raise FetchError(f"{where} took longer than {self._deadline:.0f} s")
        return bytes(body)


def ip_literal(host: str) -> IPAddress | None:
    """The address ``host`` spells, in any notation resolvers accept, else ``None``.

    Besides ``127.0.0.1`` and ``::1`` this catches the legacy IPv4 forms
    (``127.1``, ``0x7f.0.0.1``, ``2130706433``) that ``getaddrinfo`` would
    quietly turn into loopback.
    """
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    if not host or not re.fullmatch(r"[0-9a-fA-Fx.]+", host):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def _unmapped(address: IPAddress) -> IPAddress:
    # "::ffff:127.0.0.1" is loopback in disguise; Python 3.11 does not see it.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _describe(url: str) -> str:
    """``host/path`` of a URL: enough to debug, without the signed query."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    return f"{parts.hostname or '?'}{parts.path}"[:200]


def _check_peer(policy: HostPolicy, host: str, scheme: str, sock: socket.socket) -> socket.socket:
    """Check the address a socket really reached, after DNS did whatever it did."""
    try:
        peer = ipaddress.ip_address(sock.getpeername()[0])
        policy.check_address(host.strip("[]").lower(), peer, scheme)
    except BaseException:
        sock.close()
        raise
    return sock


def _pool_classes(policy: HostPolicy) -> dict[str, type[HTTPConnectionPool]]:
    """urllib3 pools whose new connections pass :func:`_check_peer`."""

    class CheckedHTTPConnection(HTTPConnection):
        def _new_conn(self) -> socket.socket:
            return _check_peer(policy, self.host, "http", super()._new_conn())

    class CheckedHTTPSConnection(HTTPSConnection):
        def _new_conn(self) -> socket.socket:
            return _check_peer(policy, self.host, "https", super()._new_conn())

    class CheckedHTTPConnectionPool(HTTPConnectionPool):
        ConnectionCls = CheckedHTTPConnection

    class CheckedHTTPSConnectionPool(HTTPSConnectionPool):
        ConnectionCls = CheckedHTTPSConnection

    return {"http": CheckedHTTPConnectionPool, "https": CheckedHTTPSConnectionPool}


class _CheckedAdapter(HTTPAdapter):
    """An adapter whose connections re-check their peer address."""

    def __init__(self, policy: HostPolicy) -> None:
        # Set before HTTPAdapter.__init__, which builds the pool manager.
        self._pool_classes = _pool_classes(policy)
        super().__init__(max_retries=0)

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = self._pool_classes


@functools.cache
def media_session(policy: HostPolicy) -> requests.Session:
    """The container's HTTP session for image downloads under ``policy``.

    It ignores proxy and ``.netrc`` settings from the environment (a proxy
    would hide the real peer; netrc would add credentials) and keeps no
    cookies between downloads.
    """
    session = requests.Session()
    session.trust_env = False
    session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
    session.headers.update(
        {
            "User-Agent": "sailjada-gallery-archive/1",
            "Accept": _ACCEPT,
            "Accept-Encoding": "identity",
        }
    )
    adapter = _CheckedAdapter(policy)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session
