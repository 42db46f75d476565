"""The local stack: every piece of the product, started in one process.

By default nothing leaves the machine: an embedded moto server stands in for
DynamoDB, S3 and Secrets Manager, and :mod:`local.fake_graph` for Instagram.
The handlers are the real ones (``ingest.app.handler``, ``serve.app.handler``),
configured only through the environment variables of the design brief, so
this is the Lambda code path. ``real_instagram`` and ``real_aws`` swap either
stand-in for the real service.
"""

from __future__ import annotations

import html
import json
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from local.fake_graph import LOCAL_TOKEN, FakeGraphServer, RecordedRequest
from local.http_adapter import LambdaHandler, LocalHttpApi
from local.images import ImageLibrary
from local.lambda_context import LocalLambdaContext
from local.samples import SampleData, load_samples
from shared import aws, config
from shared.config import Settings
from shared.redaction import redact, register_secret
from shared.timestamps import format_utc

LOCAL_TABLE = "sailjada-gallery-local"
LOCAL_BUCKET = "sailjada-gallery-local"
LOCAL_SECRET_ID = "sailjada-gallery/instagram-token"  # noqa: S105 (a name, not a secret)
# The route of template.yaml's HTTP API (a test keeps the two in step): any
# method on /g/{event_id} reaches serve; API Gateway itself answers 404 elsewhere.
SERVE_ROUTES = ("ANY /g/{event_id}",)
# Variables the local stack sets or clears; restored on close.
_MANAGED = (
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "MEDIA_TABLE",
    "MEDIA_BUCKET",
    "UPLOADS_PREFIX",
    "TOKEN_SECRET_ID",
    "IG_USER_ID",
    "GRAPH_API_URL",
    "MEDIA_HOSTS",
    "EVENT_TIMEZONE",
    "POST_GRACE_HOURS",
    "POWERTOOLS_LOG_LEVEL",
    "POWERTOOLS_METRICS_DISABLED",
    "POWERTOOLS_METRICS_NAMESPACE",
)


class StackError(RuntimeError):
    """The local stack cannot start; the message says what to change."""


@dataclass(frozen=True)
class StackOptions:
    """How to run the local stack (the command-line switches of ``python -m local``).

    Attributes
    ----------
    port
        Port of the gallery on 127.0.0.1; ``0`` picks a free one.
    ingest
        Whether to run ingest before serving.
    real_instagram
        Use the real Graph API with ``IG_ACCESS_TOKEN`` instead of the stand-in.
    real_aws
        Use real AWS (standard credentials, existing ``MEDIA_TABLE`` and
        ``MEDIA_BUCKET``) instead of the embedded moto server.
    cache_dir
        Where generated sample images are kept between runs.
    verbose
        Show the handlers' JSON logs and metrics.
    """

    port: int = 8000
    ingest: bool = True
    real_instagram: bool = False
    real_aws: bool = False
    cache_dir: Path = Path(".demo")
    verbose: bool = False


class LocalStack:
    """Start, seed and stop everything the local mode needs.

    Parameters
    ----------
    options
        What to run.
    out
        Receives the progress lines meant for the person at the terminal.
    env
        The process environment, which the handlers read; changed values are
        restored by :meth:`close`.
    """

    def __init__(
        self,
        options: StackOptions,
        *,
        out: Callable[[str], None] = print,
        env: MutableMapping[str, str] = os.environ,
    ) -> None:
        self.options = options
        self._out = out
        self._env = env
        self._saved = {name: env.get(name) for name in _MANAGED}
        self._samples: SampleData = load_samples()
        self._library = ImageLibrary(self._samples.images, cache_dir=options.cache_dir / "images")
        self._moto: Any = None
        self.graph: FakeGraphServer | None = None
        self.api: LocalHttpApi | None = None

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> None:
        """Bring everything up, in dependency order, printing progress.

        Raises
        ------
        StackError
            When a switch lacks what it needs, or the port is taken.
        """
        self._configure_logging()
        if self.options.real_aws:
            self._use_real_aws()
        if self.options.real_instagram:
            self._use_real_instagram()
        fake_aws = not self.options.real_aws
        # With real AWS, sample posts are never ingested, so the stand-in has no use.
        fake_graph = fake_aws and not self.options.real_instagram
        if fake_aws:
            # Sample uploads and the stand-in's CDN both need the images.
            self._render_images()
            self._start_moto()
        if fake_graph:
            self._start_fake_graph()
        self._reload_settings()
        if fake_aws:
            self._provision()
        if self.options.ingest:
            self._ingest()
        self._serve()

    def close(self) -> None:
        """Stop every server this stack started and restore the environment."""
        if self.api is not None:
            self.api.stop()
            self.api = None
        if self.graph is not None:
            self.graph.stop()
            self.graph = None
        if self._moto is not None:
            self._moto.stop()
            self._moto = None
        for name, value in self._saved.items():
            if value is None:
                self._env.pop(name, None)
            else:
                self._env[name] = value
        self._reload_settings()

    @property
    def url(self) -> str:
        """The gallery server's root (the index page)."""
        if self.api is None:
            raise RuntimeError("the local stack is not serving")
        return self.api.url

    @property
    def sample_events(self) -> list[str]:
        """The events seeded with sample guest uploads, oldest first (none with real AWS)."""
        if self.options.real_aws:
            return []
        return sorted({upload.event_id for upload in self._samples.uploads})

    # -- steps -----------------------------------------------------------------

    def _configure_logging(self) -> None:
        verbose = self.options.verbose
        self._env["POWERTOOLS_LOG_LEVEL"] = "INFO" if verbose else "WARNING"
        self._env["POWERTOOLS_METRICS_DISABLED"] = "false" if verbose else "true"
        self._env["POWERTOOLS_METRICS_NAMESPACE"] = "SailJadaGallery"
        # moto's web server logs every request; the adapter already prints one line each.
        logging.getLogger("werkzeug").setLevel(logging.INFO if verbose else logging.ERROR)

    def _start_moto(self) -> None:
        started = time.perf_counter()
        from moto.server import ThreadedMotoServer

        self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._moto.start()
        host, port = self._moto.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "UPLOADS_PREFIX", "POST_GRACE_HOURS"):
            self._env.pop(name, None)
        self._env.update(
            AWS_ENDPOINT_URL=endpoint,
            # moto accepts any credentials; these only keep boto3 from looking for real ones.
            AWS_ACCESS_KEY_ID="local",
            AWS_SECRET_ACCESS_KEY="local",  # noqa: S106
            AWS_REGION="us-east-1",
            AWS_DEFAULT_REGION="us-east-1",
            MEDIA_TABLE=LOCAL_TABLE,
            MEDIA_BUCKET=LOCAL_BUCKET,
            TOKEN_SECRET_ID=LOCAL_SECRET_ID,
            EVENT_TIMEZONE="America/Los_Angeles",
        )
        self._step(f"moto server (DynamoDB, S3, Secrets Manager) on {endpoint}", started)

    def _use_real_aws(self) -> None:
        missing = [name for name in ("MEDIA_TABLE", "MEDIA_BUCKET") if not self._env.get(name)]
        if missing:
            raise StackError(
                f"--real-aws needs {' and '.join(missing)} set to an existing table/bucket "
                "(e.g. from the deployed stack's outputs)"
            )
        endpoint = self._env.get("AWS_ENDPOINT_URL")
        self._out(
            f"- real AWS{' at ' + endpoint if endpoint else ''}: table "
            f"{self._env['MEDIA_TABLE']}, bucket {self._env['MEDIA_BUCKET']} "
            "(nothing is created or seeded)"
        )

    def _render_images(self) -> None:
        started = time.perf_counter()
        rendered = self._library.warm()
        self._step(
            f"sample images: {len(self._samples.images)} JPEGs ({rendered} rendered now, "
            f"cached in {self.options.cache_dir / 'images'})",
            started,
        )

    def _start_fake_graph(self) -> None:
        started = time.perf_counter()
        self.graph = FakeGraphServer(
            self._samples.media,
            page_size=10,
            images=self._library.jpeg,
            on_request=self._on_graph_call,
        ).start()
        self._env.pop("IG_USER_ID", None)
        self._env.update(GRAPH_API_URL=self.graph.graph_url, MEDIA_HOSTS="127.0.0.1")
        self._step(
            f"Graph API stand-in with {len(self._samples.media)} sample posts on "
            f"{self.graph.graph_url} (CDN on the same port)",
            started,
        )

    def _use_real_instagram(self) -> None:
        token = self._env.get("IG_ACCESS_TOKEN", "").strip()
        deployed_secret = self.options.real_aws and self._env.get("TOKEN_SECRET_ID")
        if not token and not deployed_secret:
            raise StackError(
                "--real-instagram needs IG_ACCESS_TOKEN set to a long-lived Instagram token "
                "(or, with --real-aws, TOKEN_SECRET_ID naming the deployed token secret)"
            )
        register_secret(token)
        for name in ("GRAPH_API_URL", "MEDIA_HOSTS"):
            self._restore(name)
        api = self._env.get("GRAPH_API_URL") or config.DEFAULT_GRAPH_API_URL
        self._out(f"- real Instagram Graph API at {api}")

    def _provision(self) -> None:
        started = time.perf_counter()
        from shared.models import create_table
        from shared.repository import DynamoMediaRepository

        settings = config.get_settings()
        create_table(settings)
        s3 = aws.s3_client()
        s3.create_bucket(Bucket=settings.media_bucket)
        token = LOCAL_TOKEN
        if self.options.real_instagram:
            token = self._env["IG_ACCESS_TOKEN"].strip()
        now = datetime.now(UTC)
        secret = {
            "access_token": token,
            "kind": "instagram",
            # A real token's age is unknown; these only feed the TokenDaysLeft metric.
            "expires_at": format_utc(now + timedelta(days=58)),
            "refreshed_at": format_utc(now - timedelta(days=2)),
        }
        aws.secrets_client().create_secret(Name=LOCAL_SECRET_ID, SecretString=json.dumps(secret))
        self._step(
            f"table {settings.media_table}, bucket {settings.media_bucket}, "
            f"token secret {LOCAL_SECRET_ID}",
            started,
        )
        started = time.perf_counter()
        for upload in self._samples.uploads:
            data = self._library.jpeg(upload.image)
            if data is None:
                raise StackError(f"sample image {upload.image} is missing")
            s3.put_object(
                Bucket=settings.media_bucket,
                Key=f"{settings.uploads_prefix}{upload.event_id}/{upload.filename}",
                Body=data,
                ContentType="image/jpeg",
                Metadata={"taken-at": format_utc(upload.taken_at)},
            )
        repository = DynamoMediaRepository(settings)
        for record in self._samples.events:
            repository.put_event(record)
        self._step(
            f"{len(self._samples.uploads)} guest uploads for {', '.join(self.sample_events)}; "
            f"{len(self._samples.events)} event record",
            started,
        )

    def _ingest(self) -> None:
        if self.options.real_aws and not self.options.real_instagram:
            self._out(
                "- ingest skipped: sample posts are never written into a real table "
                "(add --real-instagram to ingest real posts)"
            )
            return
        from ingest.app import handler

        payloads: list[dict[str, Any]] = []
        if not self.options.real_instagram:
            since = self._samples.first_day - timedelta(days=1)
            until = self._samples.last_day + timedelta(days=2)
            payloads.append({"backfill": {"since": since.isoformat(), "until": until.isoformat()}})
        # Then what the schedule sends every few minutes.
        payloads.append({})
        for payload in payloads:
            self._run_ingest(handler, payload)

    def _run_ingest(self, handler: LambdaHandler, payload: dict[str, Any]) -> None:
        started = time.perf_counter()
        cdn_before = self.graph.cdn_calls if self.graph else 0
        self._out(f"- ingest {json.dumps(payload)}")
        try:
            summary = handler(payload, LocalLambdaContext("ingest", timeout_seconds=300))
        except Exception as exc:
            # Serving still works (uploads show, Instagram is marked degraded).
            self._out(f"    ingest failed: {redact(str(exc))}")
            return
        shown = {
            key: summary.get(key)
            for key in ("mode", "graph_calls", "seen", "written", "unchanged", "throttled")
            if key in summary
        }
        if self.graph is not None:
            shown["image_downloads"] = self.graph.cdn_calls - cdn_before
        details = ", ".join(f"{key}={value}" for key, value in shown.items())
        self._step(f"done: {details}", started, indent="    ")

    def _serve(self) -> None:
        from serve.app import handler

        log = self._out if self.options.verbose else _quiet_requests(self._out)
        self.api = LocalHttpApi(
            handler,
            routes=SERVE_ROUTES,
            port=self.options.port,
            pages={"/": self._index_page},
            log=log,
        )
        try:
            self.api.start()
        except OSError as exc:
            self.api = None
            raise StackError(
                f"cannot listen on 127.0.0.1:{self.options.port} ({exc.strerror}); "
                "pass --port with a free port, or --port 0 for any"
            ) from None

    # -- helpers ---------------------------------------------------------------

    def _on_graph_call(self, request: RecordedRequest) -> None:
        if request.target == "graph":
            self._out(f"    Graph API {request.method} {request.path} -> {request.status}")

    def _step(self, text: str, started: float, indent: str = "- ") -> None:
        self._out(f"{indent}{text} ({time.perf_counter() - started:.1f} s)")

    def _restore(self, name: str) -> None:
        value = self._saved.get(name)
        if value is None:
            self._env.pop(name, None)
        else:
            self._env[name] = value

    def _reload_settings(self) -> None:
        config.get_settings.cache_clear()
        aws.reset_clients()

    def _index_page(self) -> str:
        settings = config.get_settings()
        rows = _event_rows(settings)
        body = "\n".join(
            f'<tr><td><a href="/g/{html.escape(event_id)}">{html.escape(event_id)}</a></td>'
            f"<td>{html.escape(title or '')}</td><td>{posts}</td><td>{uploads}</td>"
            f'<td><a href="/g/{html.escape(event_id)}?format=json">JSON</a></td></tr>'
            for event_id, title, posts, uploads in rows
        )
        empty = "" if rows else "<p>No posts or uploads yet.</p>"
        return _INDEX_TEMPLATE.format(
            rows=body, empty=empty, zone=html.escape(settings.event_timezone)
        )


def _event_rows(settings: Settings) -> list[tuple[str, str | None, int, int]]:
    """Events worth a link: upload folders, plus local days that have posts.

    A day whose posts already show under an upload event with that date is
    listed once, under the upload event.
    """
    from shared.repository import DynamoMediaRepository

    repository = DynamoMediaRepository(settings)
    posts = repository.posts_between(
        datetime(1970, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)
    )
    _, records = repository.load_meta()
    post_days = Counter(post.taken_at.astimezone(settings.zone).date() for post in posts)
    uploads: Counter[str] = Counter()
    paginator = aws.s3_client().get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=settings.media_bucket, Prefix=settings.uploads_prefix):
        for item in page.get("Contents", []):
            event_id = item["Key"][len(settings.uploads_prefix) :].split("/", 1)[0]
            uploads[event_id] += 1
    events: dict[str, tuple[int, int]] = {}
    for event_id, count in uploads.items():
        day = _day_of(event_id)
        events[event_id] = (post_days.get(day, 0) if day else 0, count)
    covered = {_day_of(event_id) for event_id in uploads}
    for day, count in post_days.items():
        if day not in covered:
            events[day.isoformat()] = (count, 0)
    return [
        (event_id, records[event_id].title if event_id in records else None, *counts)
        for event_id, counts in sorted(events.items(), reverse=True)
    ]


def _day_of(event_id: str) -> date | None:
    try:
        return date.fromisoformat(event_id[:10])
    except ValueError:
        return None


def _quiet_requests(out: Callable[[str], None]) -> Callable[[str], None]:
    """Print handler failures but not every successful request."""

    def log(line: str) -> None:
        if " -> 2" not in line and " -> 3" not in line:
            out("  " + line)

    return log


_INDEX_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>sailjada gallery: local mode</title>
<style>
body {{ font: 16px/1.5 system-ui, sans-serif; margin: 2rem auto; max-width: 52rem;
       padding: 0 1rem; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ text-align: left; padding: .4rem .6rem; border-bottom: 1px solid #ddd; }}
</style></head>
<body>
<h1>sailjada gallery: local mode</h1>
<p>Galleries served by the real <code>serve</code> handler behind a local API Gateway
adapter. Days are local days in {zone}.</p>
<table><thead><tr><th>Event</th><th>Title</th><th>Instagram posts</th><th>Guest uploads</th>
<th></th></tr></thead>
<tbody>
{rows}
</tbody></table>
{empty}
</body></html>
"""
