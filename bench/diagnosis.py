"""Why a figure misses, and what would fix it: found by profiling, shown while it applies.

Each diagnosis is tied to a figure and a condition on it (usually "misses its
goal"), so BENCHMARKS.md stops repeating it once the figure is fixed. The
what-if numbers were measured with ``bench/sampler.py`` and one-off patches on
this machine (CPU time per request, 500 items, AWS replayed) when the
diagnosis was written; the live profile of each run is in the figure's detail.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bench.report import Figure, Section


@dataclass(frozen=True)
class Diagnosis:
    """A finding about one figure, shown when ``applies`` holds for it."""

    figure: str
    applies: Callable[[Figure], bool]
    text: str


def _missed(figure: Figure) -> bool:
    return figure.status == "MISSED"


def _more_than(limit: float) -> Callable[[Figure], bool]:
    return lambda figure: figure.value is not None and figure.value > limit


DIAGNOSES: tuple[Diagnosis, ...] = (
    Diagnosis(
        "AWS calls, uncached request, new container",
        _missed,
        "A new container HEADs every guest upload once (`shared/uploads.py`, "
        "`S3Uploads.list_uploads` -> `_read_metadata`) because ListObjectsV2 does not return "
        "`x-amz-meta-taken-at`; later requests reuse the memo. Fix: make the taken-at time "
        "readable from the listing or the table, e.g. an S3 `ObjectCreated` notification "
        "(or the upload path) writing one item per upload into the media table under "
        "the event's partition, so serve reads posts and uploads with Queries and no HEAD; "
        "or put the time in the key (`uploads/<event>/<taken_at>-<name>.jpg`).",
    ),
    Diagnosis(
        "AWS calls, uncached request, warm container, all caches expired",
        _missed,
        "The third call is the META partition Query (`shared/gallery.py`, "
        "`GalleryService._build` -> `repository.load_meta`), now cached for `META_TTL` = "
        "300 s against 60 s for galleries, so an uncached gallery costs Query + "
        "ListObjectsV2 unless the container saw no request for 5 minutes. Further fix: "
        "refresh META in the background after answering, so no guest request waits on it.",
    ),
    Diagnosis(
        "Handler time p50, 500 items",
        _missed,
        "Where the CPU goes (see the live profile in the figure's detail): botocore parsing "
        "the S3 listing, most of it `dateutil` parsing each `LastModified` "
        "(botocore's default timestamp parser); botocore's DynamoDB JSON parsing plus "
        "PynamoDB deserializing ~14 attributes per post; the page render (Jinja2 escaping "
        "five long presigned URLs per image, then the nonce `str.replace` and the ETag hash "
        "over ~1 MB of HTML). One-off what-ifs (2026-12-04, CPU per request, 500 items, "
        "patched in a scratch run): 73 ms as is; "
        "48 ms with a fast ISO-8601 timestamp parser on the S3 client (in `shared/aws.py` "
        "`_client`: `session._session.get_component('response_parser_factory')"
        ".set_parser_defaults(timestamp_parser=...)`); 68 ms with short unsigned CDN URLs "
        "for mirrored images instead of presigned ones (HTML 1.06 MB -> 0.38 MB); 46 ms "
        "with both. Further: a `ProjectionExpression` in `DynamoMediaRepository."
        "posts_between` for only what serve shows (no `content_hash`, `fetched_at`, keys), "
        "or one compact JSON `view` attribute per post; a srcset of two widths, not four. "
        "10 ms at 500 items is below what botocore + PynamoDB parsing alone costs in CPython; "
        "reaching it needs the page cached per event (it is, for `GALLERY_TTL`) or "
        "precomputed when ingest or an upload changes the event.",
    ),
    Diagnosis(
        "Lighthouse performance score",
        _missed,
        "The grid loads guest uploads at full size: `GalleryService._upload_items` uses the "
        "presigned original as `src` (no rendition exists for uploads), so the first screen "
        "downloads several 250-350 KB photos (phone originals would be 3-5 MB each) while "
        "the LCP image competes for the simulated slow-4G bandwidth. Lighthouse's "
        "'Properly size images' audit puts the waste at ~4 MB. Fix: make renditions of "
        "uploads too (an S3 `ObjectCreated` trigger running `shared.thumbnails."
        "process_image`, keys like the archive's) and serve them with `srcset`; the "
        "what-if figure shows the gain. Next: the HTML is ~2 KB per item (five presigned "
        "URLs per image), which a CDN domain for renditions would cut by two thirds, and "
        "fewer eager tiles (`shared/render.py` `EAGER_TILES`) with `fetchpriority=high` on "
        "the first one would shorten LCP.",
    ),
    Diagnosis(
        "Backfill: botocore DynamoDB clients created",
        _more_than(5),
        "`DynamoMediaRepository.save_posts` (`shared/repository.py`) builds a new PynamoDB "
        "`Connection` for every transaction of 25 posts (`_connection()`), and each new "
        "`Connection` creates a new botocore client, re-reading botocore's endpoint and "
        "DynamoDB JSON models: 0.1-0.25 s each here, which is most of the 'ingest code' "
        "time of a backfill (one client per 25 posts) and the same on Lambda. Fix: create the "
        "`Connection` once per repository (e.g. in `__init__` or a cached property) or pass "
        "the models' own `MediaItem._get_connection().connection`.",
    ),
    Diagnosis(
        "Projected 10,000-post backfill with mirroring",
        _missed,
        "Mirroring is CPU-bound in WebP encoding (`shared/thumbnails.py` `_encode`, ~90 % of "
        "the sampled time): `process_image` takes ~245 ms of CPU per 1080x1350 source for "
        "four widths, ~150 ms of it for the 1080-px WebP (2026-12-04, this machine). "
        "`IngestService.run` (`shared/ingestion.py`) now stops between pages when the "
        "invocation has under 2 minutes left (`out_of_time: true`), so a large backfill "
        "takes several invocations of the same payload, each skipping what is stored and "
        "mirrored; `WEBP_METHOD` 4 -> 2 already halved encode time (245 -> 124 ms). "
        "Further fixes, largest first: mirror a page's images on a small thread pool "
        "(Pillow releases the GIL while encoding) with more memory (1,769 MB = 1 vCPU); "
        "skip the 1080-px WebP when the original is itself ~1080 px wide.",
    ),
)


def findings(sections: Sequence[Section]) -> list[str]:
    """The report's closing section: missed goals with their diagnosis, then other findings."""
    lines: list[str] = []
    for section in sections:
        for figure in section.figures:
            notes = [
                d.text for d in DIAGNOSES if figure.name.startswith(d.figure) and d.applies(figure)
            ]
            missed = figure.goal is not None and figure.status in ("MISSED", "not measured")
            if not (missed or notes):
                continue
            head = f"- **{figure.name}** ({section.title}): {figure.shown_value()}"
            if figure.goal is not None:
                head += f" against a goal of {figure.shown_goal()}"
            lines.append(head + ". " + " ".join(notes or [figure.detail]))
    return lines or ["Every figure with a goal meets it."]
