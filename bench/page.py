"""The page: Lighthouse (mobile preset) on a 200-item gallery served locally.

The gallery is served the way the local mode serves it: the real
``serve.app.handler`` behind the local HTTP adapter
(:class:`local.http_adapter.LocalHttpApi`), moto as a real HTTP server for
DynamoDB and S3, so the page's presigned image URLs load real images from
moto. Instagram posts carry renditions made by the media archive's own
encoder (:func:`shared.thumbnails.process_image`), guest uploads are JPEGs.
"""

from __future__ import annotations

import base64
import gzip
import logging
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

import boto3

from bench import lighthouse
from bench.dataset import jpeg, stored_posts, upload_metadata, uploads
from bench.env import BUCKET, REGION, configure, fresh_handler, quiet_stdout
from bench.report import Figure, Goal, Section
from local.http_adapter import LambdaHandler, LocalHttpApi
from local.stack import SERVE_ROUTES
from shared import config
from shared.media import Mirror, Rendition
from shared.models import create_table
from shared.repository import DynamoMediaRepository
from shared.state import IngestState
from shared.thumbnails import process_image
from shared.upload_thumbnails import UploadThumbnailer

ITEMS = 200
EVENT_DAY = date(2026, 4, 29)
ZONE = ZoneInfo("America/Los_Angeles")
# Instagram's portrait size for posts; guest uploads as phones share them
# after the usual "optimise" step (full-resolution originals would be 3-5 MB).
POST_SIZE = (1080, 1350)
UPLOAD_SIZE = (1600, 1200)
VARIANTS = 12


@cache
def _source(variant: int) -> bytes:
    return jpeg(*POST_SIZE, variant)


@cache
def _processed(variant: int) -> tuple[tuple[int, int, str, bytes], ...]:
    processed = process_image(_source(variant))
    return tuple(
        (image.width, image.height, image.image_type.content_type, image.data)
        for image in processed.renditions
    )


class _Mirrors:
    """Stores real renditions for each image id, as the media archive does."""

    def __init__(self, s3: object) -> None:
        self._s3 = s3
        self.bytes = 0

    def __call__(self, item_id: str) -> Mirror:
        variant = int(item_id) % VARIANTS
        thumbnails = []
        for width, height, content_type, data in _processed(variant):
            extension = content_type.split("/")[-1]
            key = f"instagram/{item_id}/w{width}.{extension}"
            self._put(key, data, content_type)
            thumbnails.append(Rendition(key, width, height, len(data), content_type))
        original_key = f"instagram/{item_id}/original.jpg"
        original = _source(variant)
        self._put(original_key, original, "image/jpeg")
        rendition = Rendition(original_key, *POST_SIZE, len(original), "image/jpeg")
        return Mirror(original=rendition, thumbnails=tuple(thumbnails))

    def _put(self, key: str, data: bytes, content_type: str) -> None:
        self._s3.put_object(  # type: ignore[attr-defined]
            Bucket=BUCKET,
            Key=key,
            Body=data,
            ContentType=content_type,
            CacheControl="public, max-age=31536000, immutable",
        )
        self.bytes += len(data)


def seed(items: int) -> str:
    """Store a gallery of ``items`` (half posts, half uploads); returns its event id."""
    settings = config.get_settings()
    create_table(settings)
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=BUCKET)
    start_local = datetime(EVENT_DAY.year, EVENT_DAY.month, EVENT_DAY.day, tzinfo=ZONE)
    start, end = start_local.astimezone(UTC), (start_local + timedelta(days=1)).astimezone(UTC)
    event_id = f"{EVENT_DAY.isoformat()}-sunset"
    repository = DynamoMediaRepository(settings)
    posts = stored_posts(items // 2, start, end, seed=29, mirror=_Mirrors(s3))
    repository.save_posts(posts, datetime.now(UTC))
    now = datetime.now(UTC).replace(microsecond=0)
    repository.save_state(IngestState(high_water_mark=now, last_run_at=now, last_success_at=now))
    for index, upload in enumerate(uploads(items - items // 2, event_id, start, end, seed=29)):
        s3.put_object(
            Bucket=BUCKET,
            Key=upload.key,
            Body=jpeg(*UPLOAD_SIZE, index),
            ContentType="image/jpeg",
            Metadata=upload_metadata(upload),
        )
    # As the scheduled ingest runs do: grid renditions for every guest upload.
    UploadThumbnailer(settings, s3=s3, max_uploads=items).run()
    return event_id


def cdn_compressed(handler: LambdaHandler) -> LambdaHandler:
    """The handler as CloudFront delivers it: text bodies gzip-compressed.

    The deployed stack puts CloudFront (``Compress: true``) in front of the
    HTTP API; the local adapter does not compress. CloudFront compresses
    text responses of 1,000 bytes to 10 MB when the viewer accepts it (with
    brotli when it can; gzip level 6 here is the conservative stand-in).
    """

    def compressed(event: dict[str, Any], context: Any) -> Any:
        response = handler(event, context)
        accepts = "gzip" in (event.get("headers") or {}).get("accept-encoding", "")
        body = response.get("body") if isinstance(response, dict) else None
        headers = dict(response.get("headers") or {}) if isinstance(response, dict) else {}
        text = str(headers.get("Content-Type", "")).startswith(("text/", "application/json"))
        if not (accepts and text and isinstance(body, str) and not response.get("isBase64Encoded")):
            return response
        data = body.encode()
        if not 1000 <= len(data) <= 10_000_000:
            return response
        headers.update({"Content-Encoding": "gzip", "Vary": "Accept-Encoding"})
        return {
            **response,
            "headers": headers,
            "body": base64.b64encode(gzip.compress(data, 6)).decode(),
            "isBase64Encoded": True,
        }

    return compressed


def run(
    section: Section,
    *,
    runs: int,
    items: int = ITEMS,
) -> None:
    """Serve a gallery locally and run Lighthouse on it ``runs`` times.

    The figures are for the page as deployed (CloudFront compression
    emulated).
    """
    section.method += [
        f"Lighthouse {lighthouse.VERSION} (npm, installed into `.bench/lighthouse/`, "
        "git-ignored) with Debian's `/usr/bin/chromium` (`CHROME_PATH`), default config = "
        "mobile preset (Moto G Power emulation, simulated slow 4G, 4x CPU slowdown), "
        "performance category only. Version 12.8.2 rather than the 12.2.3 the issue names: "
        "12.2.3 cannot read Chromium 156's trace (the LCP element and five other "
        "diagnostics fail), and 13.x needs Node 22 (this machine has Node 20).",
        f"The gallery: {items // 2} Instagram posts whose images are mirrored renditions "
        "made by `shared.thumbnails.process_image` (WebP 320/480/640/1080 plus the JPEG "
        f"original) and {items - items // 2} guest uploads "
        f"({UPLOAD_SIZE[0]}x{UPLOAD_SIZE[1]} JPEGs, about 350 KB), all in one charter day.",
        "The goal figures are for the page as deployed: CloudFront (`Compress: true` in "
        "template.yaml) compresses the HTML, which the local adapter does not; the bench "
        "wraps the handler to gzip text bodies (level 6) when the browser accepts it, as "
        "CloudFront would (it would use brotli, a little smaller).",
        "Served like the local mode: `serve.app.handler` behind `local/http_adapter.py`'s "
        "`LocalHttpApi` (payload 2.0 events), DynamoDB and S3 by a moto server on "
        "127.0.0.1, so the page's presigned image URLs load real images.",
        f"{runs} runs; each figure is the median of the runs (all runs are listed).",
    ]
    try:
        lighthouse.executable()
    except lighthouse.LighthouseUnavailableError as exc:
        section.skipped = str(exc)
        print(f"  skipped: {exc}")
        return
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    try:
        host, port = moto.get_host_and_port()
        configure({"AWS_ENDPOINT_URL": f"http://{host}:{port}"})
        event_id = seed(items)
        handler = fresh_handler("serve.app")
        with LocalHttpApi(cdn_compressed(handler), routes=SERVE_ROUTES) as api, quiet_stdout():
            median, results = lighthouse.median_run(f"{api.url}/g/{event_id}", runs)
    finally:
        moto.stop()
        configure()
    scores = ", ".join(f"{run.score:.0f}" for run in results)
    lcps = ", ".join(f"{run.lcp_ms:.0f}" for run in results)
    section.add(
        Figure(
            f"Lighthouse performance score, {items} items (mobile)",
            median.score,
            "",
            Goal(">=", 95),
            detail=f"runs: {scores}",
        )
    )
    section.add(
        Figure(
            "Largest Contentful Paint (mobile, simulated)",
            round(median.lcp_ms),
            "ms",
            detail=f"runs: {lcps} ms; First Contentful Paint {median.fcp_ms:.0f} ms, "
            f"Total Blocking Time {median.tbt_ms:.0f} ms",
        )
    )
    section.add(
        Figure(
            "Cumulative Layout Shift",
            round(median.cls, 3),
            "",
            Goal("==", 0),
            detail="runs: " + ", ".join(f"{run.cls:.3f}" for run in results),
        )
    )
    warnings = "; ".join(median.warnings) or "none"
    section.add(
        Figure(
            "Bytes transferred on load (Lighthouse total-byte-weight)",
            round(median.transfer_bytes),
            "bytes",
            detail=f"Lighthouse warnings and failed audits: {warnings}",
        )
    )
