"""The serve Lambda: ``GET``/``HEAD /g/{event_id}``, the guest gallery as HTML or JSON.

A thin handler: it turns the API Gateway (payload 2.0) or Function URL event
into a call of :class:`shared.gallery.GalleryService` and the result into a
cacheable response. The event id is validated before settings, clients or
any AWS call are touched; everything AWS-related is imported on the first
gallery request only, so a 400 or 404 costs no boto3 import.

Routes: ``/g/{event_id}`` (``?format=json`` for JSON); any other path is 404,
any other method on ``/g/...`` is 405. No response carries a stack trace.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from shared.config import Settings, get_settings
from shared.http import (
    DEGRADED_CACHE,
    ERROR_CACHE,
    FRESH_CACHE,
    NO_STORE,
    RETRY_AFTER_SECONDS,
    Request,
    Response,
    conditional,
    content_security_policy,
    html_response,
    json_response,
)
from shared.observability import get_logger
from shared.windows import EventId, InvalidEventIdError, parse_event_id

if TYPE_CHECKING:
    from shared.gallery import Gallery, GalleryService

ROUTE_PREFIX = "/g/"
ALLOWED_METHODS = ("GET", "HEAD")
FORMATS = ("html", "json")
_PAGE_CACHE_LIMIT = 512
_HOST = re.compile(r"[a-z0-9.-]+")

logger = get_logger("serve")


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Lambda entry point (handler string ``serve.app.handler``).

    Parameters
    ----------
    event
        An API Gateway HTTP API payload 2.0 or Function URL event.
    context
        The Lambda context (unused).

    Returns
    -------
    dict
        The proxy result: ``statusCode``, ``headers``, ``body``.
    """
    head = False
    try:
        request = Request.from_event(event)
        head = request.method == "HEAD"
        response = route(request)
    except Exception:  # the guest gets a plain error page, the log gets the cause
        logger.exception("unhandled error while serving")
        response = _internal_error()
    return response.to_event(include_body=not head)


def route(request: Request) -> Response:
    """Answer one request (see the module docstring for the routes)."""
    if not request.path.startswith(ROUTE_PREFIX):
        return _error(404, "Not found", "There is no page at this address.", False)
    wants_json = request.query.get("format") == "json"
    if request.method not in ALLOWED_METHODS:
        return _error(
            405,
            "Method not allowed",
            "Only GET and HEAD are supported.",
            wants_json,
            Allow=", ".join(ALLOWED_METHODS),
        )
    output = request.query.get("format", "html")
    if output not in FORMATS:
        return _error(400, "Bad request", "format must be html or json.", wants_json)
    try:
        event = parse_event_id(unquote(request.path[len(ROUTE_PREFIX) :]))
    except InvalidEventIdError as exc:
        return _error(400, "Not a gallery address", str(exc), wants_json)
    return conditional(request, _container().respond(event, output))


@dataclass
class _Container:
    """What a warm container keeps between requests: the service and rendered pages."""

    settings: Settings
    service: GalleryService
    image_origins: tuple[str, ...]
    pages: dict[tuple[str, str], tuple[Gallery, Response]] = field(default_factory=dict)

    def respond(self, event: EventId, output: str) -> Response:
        from shared.gallery import GalleryUnavailableError

        try:
            gallery = self.service.gallery(event)
        except GalleryUnavailableError:
            _count_degraded(True)
            return _error(
                503,
                "Gallery temporarily unavailable",
                "The photos can't be loaded right now. Please try again in a minute.",
                output == "json",
                cache=NO_STORE,
                Retry_After=str(RETRY_AFTER_SECONDS),
            )
        cached = self.pages.get((event.value, output))
        if cached is not None and cached[0] is gallery:
            return cached[1]
        response = self._render(gallery, output)
        if len(self.pages) >= _PAGE_CACHE_LIMIT:
            self.pages.clear()
        self.pages[(event.value, output)] = (gallery, response)
        return response

    def _render(self, gallery: Gallery, output: str) -> Response:
        from shared.render import render_gallery_html, render_gallery_json

        cache = DEGRADED_CACHE if gallery.degraded else FRESH_CACHE
        if output == "json":
            return json_response(200, render_gallery_json(gallery), cache)
        page = render_gallery_html(gallery)
        csp = content_security_policy(page.nonce, self.image_origins)
        return html_response(200, page.html, csp, cache, etag=page.etag)


_current: _Container | None = None


def _container() -> _Container:
    """The container's service, rebuilt only when the settings object changes."""
    global _current
    settings = get_settings()
    if _current is None or _current.settings is not settings:
        from shared.gallery import GalleryService
        from shared.repository import DynamoMediaRepository
        from shared.uploads import S3Uploads, presigned_urls

        service = GalleryService(
            settings,
            DynamoMediaRepository(settings),
            S3Uploads(settings),
            presigned_urls(settings).url,
            on_built=_built,
        )
        _current = _Container(settings, service, _http_image_origins(settings))
    return _current


def _http_image_origins(settings: Settings) -> tuple[str, ...]:
    """Plain-http image origins the page may load: the local endpoint, exact MEDIA_HOSTS."""
    origins = [f"http://{host}:*" for host in settings.media_hosts if _HOST.fullmatch(host)]
    endpoint = urlsplit(settings.aws_endpoint_url or "")
    if endpoint.scheme == "http" and endpoint.hostname and _HOST.fullmatch(endpoint.hostname):
        origins.append(f"http://{endpoint.netloc}")
    return tuple(origins)


def _built(gallery: Gallery) -> None:
    logger.info(
        "gallery built",
        extra={
            "event_id": gallery.window.event_id,
            "items": len(gallery.items),
            "degraded": list(gallery.degraded),
        },
    )
    _count_degraded(bool(gallery.degraded))


def _count_degraded(degraded: bool) -> None:
    """Emit ``GalleryDegraded`` (0 or 1) for every gallery built or refused."""
    from aws_lambda_powertools.metrics import MetricUnit

    from shared.observability import get_metrics

    metrics = get_metrics("serve")
    metrics.add_metric(name="GalleryDegraded", unit=MetricUnit.Count, value=int(degraded))
    metrics.flush_metrics()


def _internal_error() -> Response:
    try:
        return _error(500, "Something went wrong", "Please try again in a minute.", False, NO_STORE)
    except Exception:  # even the error page failed: answer in plain text
        logger.exception("error page failed")
        return Response(
            500,
            "Something went wrong. Please try again in a minute.",
            {
                "Content-Type": "text/plain; charset=utf-8",
                "Cache-Control": NO_STORE,
                "X-Content-Type-Options": "nosniff",
            },
        )


def _error(
    status: int,
    heading: str,
    message: str,
    as_json: bool,
    cache: str = ERROR_CACHE,
    **headers: str,
) -> Response:
    from shared.render import as_json_error, render_error_html

    if as_json:
        return json_response(status, as_json_error(message), cache, **headers)
    page = render_error_html(heading, message)
    return html_response(status, page.html, content_security_policy(page.nonce), cache, **headers)
