"""A local HTTP server in front of a Lambda handler, shaped like API Gateway.

Each browser request becomes an HTTP API payload format 2.0 event, the
handler runs exactly as on Lambda, and its response (a ``statusCode`` dict,
or any JSON value, which API Gateway turns into a 200 JSON response) is
written back. A handler that raises gets API Gateway's bare 500; the
traceback goes to the local console only. Requests reach the handler one at
a time, as in a single Lambda container.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from local.lambda_context import LocalLambdaContext
from local.loopback import LoopbackServer

LambdaHandler = Callable[[dict[str, Any], Any], Any]

# API Gateway's request payload limit.
MAX_BODY_BYTES = 10 * 1024 * 1024
_TEXT_TYPES = re.compile(r"^(text/|application/(json|xml|javascript|x-www-form-urlencoded))")
_INTERNAL_ERROR = (
    500,
    [("Content-Type", "application/json")],
    b'{"message":"Internal Server Error"}',
)


@dataclass(frozen=True)
class Route:
    """An API Gateway route: ``routeKey`` and the path template it matches.

    Parameters
    ----------
    key
        ``"GET /g/{event_id}"``, ``"ANY /g/{event_id}"`` or ``"$default"``.
    """

    key: str

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """Path parameters when ``method`` and ``path`` match, else ``None``."""
        if self.key == "$default":
            return {}
        route_method, _, template = self.key.partition(" ")
        if route_method not in ("ANY", method):
            return None
        pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
        found = re.fullmatch(pattern, path)
        if found is None:
            return None
        return {name: unquote(value) for name, value in found.groupdict().items()}


def build_event(
    method: str,
    target: str,
    headers: Sequence[tuple[str, str]],
    body: bytes,
    *,
    routes: Sequence[Route],
    source_ip: str = "127.0.0.1",
) -> dict[str, Any] | None:
    """Build the payload 2.0 event API Gateway would send for one request.

    Parameters
    ----------
    method, target
        The request line's method and target (path and query, still encoded).
    headers
        The request headers in order; repeated names are joined with commas
        and ``Cookie`` moves to ``cookies``, as API Gateway does.
    body
        The raw request body.
    routes
        The API's routes in priority order.
    source_ip
        The client address.

    Returns
    -------
    dict or None
        The event, or ``None`` when no route matches (API Gateway then
        answers 404 without invoking the function).
    """
    parts = urlsplit(target)
    path = parts.path or "/"
    matched = next(
        ((route, params) for route in routes if (params := route.match(method, path)) is not None),
        None,
    )
    if matched is None:
        return None
    route, path_parameters = matched
    joined: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        lowered = name.lower()
        if lowered == "cookie":
            cookies.extend(part.strip() for part in value.split(";") if part.strip())
            continue
        joined[lowered] = f"{joined[lowered]},{value}" if lowered in joined else value
    now = datetime.now(UTC)
    host = joined.get("host", "127.0.0.1")
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.key,
        "rawPath": path,
        "rawQueryString": parts.query,
        "headers": joined,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": host,
            "domainPrefix": host.split(".")[0],
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": joined.get("user-agent", ""),
            },
            "requestId": uuid.uuid4().hex,
            "routeKey": route.key,
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    if parts.query:
        query: dict[str, str] = {}
        for name, value in parse_qsl(parts.query, keep_blank_values=True):
            query[name] = f"{query[name]},{value}" if name in query else value
        event["queryStringParameters"] = query
    if path_parameters:
        event["pathParameters"] = path_parameters
    if body:
        if _TEXT_TYPES.match(joined.get("content-type", "")):
            event["body"] = body.decode("utf-8", "replace")
        else:
            event["body"] = base64.b64encode(body).decode()
            event["isBase64Encoded"] = True
    return event


def translate_response(result: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """Turn a handler's return value into status, headers and body, as API Gateway does.

    Raises
    ------
    ValueError
        When the value is not a valid payload 2.0 response (API Gateway
        then answers 500).
    """
    if not (isinstance(result, Mapping) and "statusCode" in result):
        # Payload 2.0 infers a JSON 200 from any other return value.
        return 200, [("Content-Type", "application/json")], json.dumps(result).encode()
    status = result["statusCode"]
    if not isinstance(status, int) or not 100 <= status <= 599:
        raise ValueError(f"invalid statusCode: {status!r}")
    headers = [(str(name), str(value)) for name, value in (result.get("headers") or {}).items()]
    headers.extend(("Set-Cookie", str(cookie)) for cookie in result.get("cookies") or ())
    body = result.get("body") or ""
    if not isinstance(body, str):
        raise ValueError("body must be a string")
    data = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()
    return status, headers, data


class LocalHttpApi(LoopbackServer):
    """Serve a Lambda handler over HTTP on 127.0.0.1, API Gateway style.

    Parameters
    ----------
    handler
        The Lambda handler, e.g. ``serve.app.handler``.
    routes
        The API's route keys, e.g. ``("GET /g/{event_id}",)``; ``$default``
        sends everything.
    function_name
        For the Lambda context.
    port
        ``0`` picks a free port.
    pages
        Extra pages served by the adapter itself (path -> HTML maker), such
        as the local index; they never reach the handler.
    log
        Receives one line per request (method, path, status, milliseconds).
    """

    thread_name = "local-http-api"

    def __init__(
        self,
        handler: LambdaHandler,
        *,
        routes: Sequence[str] = ("$default",),
        function_name: str = "serve",
        port: int = 0,
        pages: Mapping[str, Callable[[], str]] | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(port)
        self._handler = handler
        self._routes = tuple(Route(key) for key in routes)
        self._function_name = function_name
        self._pages = dict(pages or {})
        self._log = log
        self._invoke_lock = threading.Lock()

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        """The request handler, bound to this adapter."""
        return type("BoundApiHandler", (_ApiHandler,), {"api": self})

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return self.origin

    def respond(
        self, method: str, target: str, headers: Sequence[tuple[str, str]], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """Answer one request: a local page, the handler's response, or an error."""
        path = urlsplit(target).path
        page = self._pages.get(path)
        if page is not None and method in ("GET", "HEAD"):
            html = page().encode()
            return 200, [("Content-Type", "text/html; charset=utf-8")], html
        event = build_event(method, target, headers, body, routes=self._routes)
        if event is None:
            return 404, [("Content-Type", "application/json")], b'{"message":"Not Found"}'
        context = LocalLambdaContext(self._function_name)
        try:
            with self._invoke_lock:
                result = self._handler(event, context)
            return translate_response(result)
        except Exception:
            # Like API Gateway: the client sees a bare 500, the log has the cause.
            self.note(f"{self._function_name} handler failed:\n{traceback.format_exc()}")
            return _INTERNAL_ERROR

    def note(self, line: str) -> None:
        """Pass one line to the ``log`` callback, if any."""
        if self._log is not None:
            self._log(line)


class _ApiHandler(BaseHTTPRequestHandler):
    api: LocalHttpApi
    protocol_version = "HTTP/1.1"
    server_version = "LocalHttpApi/1"
    # Headers and body go out in two writes; without TCP_NODELAY each small
    # answer would wait ~40 ms for the client's delayed ACK.
    disable_nagle_algorithm = True
    timeout = 30

    # Every method reaches the handler: it answers 405 for the ones it refuses.
    def do_GET(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_OPTIONS(self) -> None:
        self._handle()

    def log_message(self, format: str, *args: Any) -> None:
        # One line per request is written by _handle through ``log`` instead.
        return

    def _handle(self) -> None:
        started = time.perf_counter()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            status, headers, body = (
                413,
                [("Content-Type", "application/json")],
                b'{"message":"Request Entity Too Large"}',
            )
            self.close_connection = True
        else:
            request_body = self.rfile.read(length) if length else b""
            status, headers, body = self.api.respond(
                self.command, self.path, list(self.headers.items()), request_body
            )
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        elapsed = (time.perf_counter() - started) * 1000
        self.api.note(f"{self.command} {self.path} -> {status} ({elapsed:.0f} ms)")
