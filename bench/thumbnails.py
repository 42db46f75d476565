"""Mirrored thumbnails: the bytes a guest's phone downloads, against linking originals.

Sources are photo-like 1080 x 1350 JPEGs (Instagram's portrait feed size) from
:func:`textured_photo`: the local mode's sample scene (:mod:`local.images`)
with texture at every scale added on top. The texture matters: the sample
scenes and :func:`bench.dataset.jpeg` carry only pixel-level grain, which
downscaling averages away, so their 320 px thumbnails come out at 2-8 KB,
flattering every figure. Real photos have detail at all scales (their
spectrum falls off as 1/f); summing noise octaves of equal amplitude gives
the same, and sources of about 250 KB at quality 80, like Instagram's files.

Figures (``run`` adds them to a :class:`bench.report.Section`; ``python -m
bench.thumbnails`` prints them):

- average bytes of each rendition width (goal <= 60 KB for the grid size);
- the first screen of a 30-photo gallery on a phone: the renditions a
  browser picks from ``srcset`` for the grid cells in view, against the
  original files for the same cells;
- how fast a PNG header claiming 20000 x 20000 pixels is refused;
- the format decision: WebP against progressive JPEG at equal PSNR.
"""

from __future__ import annotations

import functools
import io
import math
import random
import statistics
import struct
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageChops, ImageEnhance, ImageStat

from bench.report import Figure, Goal, Section
from local.images import SCENES, ImageSpec, render_jpeg
from shared.thumbnails import (
    RENDITION_WIDTHS,
    WEBP_METHOD,
    WEBP_QUALITY,
    ImageRejectedError,
    process_image,
)

GALLERY_PHOTOS = 30
SOURCE_SIZE = (1080, 1350)
GRID_GOAL_BYTES = 60 * 1024
# Standard deviation, in grey levels, of the texture laid over each scene.
_TEXTURE_LEVELS = 12.0


@dataclass(frozen=True)
class Screen:
    """A device showing the gallery grid.

    Attributes
    ----------
    name
        For the report.
    width, height
        Viewport in CSS pixels.
    dpr
        Device pixels per CSS pixel.
    columns
        Grid columns.
    gap
        CSS pixels between cells.
    """

    name: str
    width: int
    height: int
    dpr: float
    columns: int
    gap: int = 4

    def cell_width(self) -> float:
        """A grid cell's width in CSS pixels."""
        return (self.width - self.gap * (self.columns - 1)) / self.columns

    def visible(self, aspect: float, photos: int) -> int:
        """How many cells of height ``aspect`` x width show on the first screen."""
        row = self.cell_width() * aspect + self.gap
        return min(photos, self.columns * math.ceil(self.height / row))


PHONE = Screen("phone 390x844 @3x, 3 columns", 390, 844, 3.0, 3)
PHONE_2X = Screen("phone 360x800 @2x, 3 columns", 360, 800, 2.0, 3)
LAPTOP = Screen("laptop 1440x900 @2x, 5 columns", 1440, 900, 2.0, 5)


@dataclass(frozen=True)
class Measured:
    """One source and its renditions' sizes."""

    source_bytes: int
    rendition_bytes: dict[int, int]
    seconds: float


@dataclass(frozen=True)
class ScreenBytes:
    """What the first screen of a gallery costs on one device."""

    screen: Screen
    visible: int
    chosen_width: int
    thumbnail_bytes: int
    original_bytes: int


@functools.cache
def textured_photo(
    width: int = SOURCE_SIZE[0], height: int = SOURCE_SIZE[1], seed: int = 0, quality: int = 80
) -> bytes:
    """A photo-like JPEG: a sample scene with texture at every scale.

    Parameters
    ----------
    width, height
        Pixel size.
    seed
        Picks the scene and the texture; the same seed gives the same bytes.
    quality
        JPEG quality of the result.
    """
    scene = render_jpeg(ImageSpec(f"bench-{seed}", width, height, SCENES[seed % len(SCENES)]))
    image = Image.open(io.BytesIO(scene)).convert("RGB")
    texture = _octave_noise(width, height, random.Random(seed))  # noqa: S311 - not crypto
    spread = ImageStat.Stat(texture).stddev[0] or 1.0
    texture = ImageEnhance.Contrast(texture).enhance(_TEXTURE_LEVELS / spread)
    # add(a, b, scale=1, offset=-128): the texture's mid-grey leaves a pixel as it was.
    image = ImageChops.add(image, Image.merge("RGB", [texture] * 3), 1.0, -128)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality, optimize=True)
    return buffer.getvalue()


def _octave_noise(width: int, height: int, rng: random.Random) -> Image.Image:
    """Noise of equal amplitude in every octave, from single pixels to the frame."""
    layers = 0
    combined: Image.Image | None = None
    scale = 1
    while True:
        w, h = max(2, -(-width // scale)), max(2, -(-height // scale))
        layer = Image.frombytes("L", (w, h), rng.randbytes(w * h))
        layer = layer.resize((width, height), Image.Resampling.BICUBIC)
        layers += 1
        combined = layer if combined is None else Image.blend(combined, layer, 1 / layers)
        if w <= 4 or h <= 4:
            return combined
        scale *= 2


def measure(sources: Sequence[bytes]) -> list[Measured]:
    """Run the archive's renditions (:func:`shared.thumbnails.process_image`) on each source."""
    measured = []
    for source in sources:
        started = time.perf_counter()
        processed = process_image(source)
        elapsed = time.perf_counter() - started
        sizes = {encoded.width: len(encoded.data) for encoded in processed.renditions}
        measured.append(Measured(len(source), sizes, elapsed))
    return measured


def average_bytes(measured: Sequence[Measured]) -> dict[int, float]:
    """Mean bytes of each rendition width."""
    widths = sorted({width for item in measured for width in item.rendition_bytes})
    return {
        width: statistics.fmean(
            item.rendition_bytes[width] for item in measured if width in item.rendition_bytes
        )
        for width in widths
    }


def srcset_pick(widths: Sequence[int], needed: float) -> int:
    """The width a browser takes from a ``w``-descriptor srcset: the narrowest that suffices."""
    return next((width for width in sorted(widths) if width >= needed), max(widths))


def first_screen(measured: Sequence[Measured], screen: Screen, aspect: float) -> ScreenBytes:
    """Bytes of the grid cells on the first screen: renditions against originals."""
    visible = screen.visible(aspect, len(measured))
    shown = measured[:visible]
    widths = sorted(set.intersection(*(set(item.rendition_bytes) for item in shown)))
    chosen = srcset_pick(widths, screen.cell_width() * screen.dpr)
    return ScreenBytes(
        screen=screen,
        visible=visible,
        chosen_width=chosen,
        thumbnail_bytes=sum(item.rendition_bytes[chosen] for item in shown),
        original_bytes=sum(item.source_bytes for item in shown),
    )


def format_comparison(sources: Sequence[bytes], width: int) -> tuple[float, float, float, float]:
    """Mean bytes and PSNR of WebP (as shipped) and progressive JPEG q80 at ``width``.

    Returns
    -------
    tuple
        ``(webp_bytes, webp_psnr, jpeg_bytes, jpeg_psnr)``.
    """
    webp_sizes: list[int] = []
    jpeg_sizes: list[int] = []
    webp_psnr: list[float] = []
    jpeg_psnr: list[float] = []
    for source in sources:
        image = Image.open(io.BytesIO(source)).convert("RGB")
        reference = image.resize(
            (width, round(image.height * width / image.width)), Image.Resampling.LANCZOS
        )
        for fmt, options, sizes, psnrs in (
            ("WEBP", {"quality": WEBP_QUALITY, "method": WEBP_METHOD}, webp_sizes, webp_psnr),
            ("JPEG", {"quality": 80, "optimize": True, "progressive": True}, jpeg_sizes, jpeg_psnr),
        ):
            buffer = io.BytesIO()
            reference.save(buffer, fmt, **options)
            sizes.append(buffer.tell())
            psnrs.append(_psnr(reference, Image.open(buffer).convert("RGB")))
    return (
        statistics.fmean(webp_sizes),
        statistics.fmean(webp_psnr),
        statistics.fmean(jpeg_sizes),
        statistics.fmean(jpeg_psnr),
    )


def bomb_refusal_seconds(runs: int = 50) -> float:
    """Median time :func:`process_image` takes to refuse a 20000 x 20000 PNG header."""
    bomb = png_claiming(20_000, 20_000)
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        try:
            process_image(bomb)
        except ImageRejectedError:
            samples.append(time.perf_counter() - started)
    if len(samples) != runs:
        raise AssertionError("a PNG claiming 400 megapixels was accepted")
    return statistics.median(samples)


def png_claiming(width: int, height: int) -> bytes:
    """A tiny, valid-looking PNG whose header claims ``width`` x ``height`` pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def _psnr(reference: Image.Image, decoded: Image.Image) -> float:
    rms = ImageStat.Stat(ImageChops.difference(reference, decoded)).rms
    mse = statistics.fmean(value * value for value in rms)
    return 99.0 if mse == 0 else 10 * math.log10(255**2 / mse)


def run(section: Section, photos: int = GALLERY_PHOTOS) -> None:
    """Measure thumbnail bytes and add the figures to ``section``."""
    width, height = SOURCE_SIZE
    sources = [textured_photo(width, height, seed) for seed in range(photos)]
    measured = measure(sources)
    averages = average_bytes(measured)
    section.method += [
        f"{photos} photo-like {width}x{height} JPEG sources (bench/thumbnails.py "
        "`textured_photo`: a sample scene plus equal-amplitude noise in every octave), "
        f"mean {statistics.fmean(len(s) for s in sources) / 1024:.0f} KB each, through "
        "`shared.thumbnails.process_image`, the archive's own code.",
        "First screen: the grid cells in the viewport (cell aspect 4:5), each served the "
        "rendition a browser picks from srcset (narrowest >= cell width x DPR), against "
        "linking the originals for the same cells.",
    ]
    for rendition_width in RENDITION_WIDTHS:
        grid_goal = Goal("<=", GRID_GOAL_BYTES / 1024) if rendition_width <= 480 else None
        section.add(
            Figure(
                f"Mean w{rendition_width} rendition of a {width}x{height} source",
                round(averages[rendition_width] / 1024, 1),
                "KB",
                grid_goal,
            )
        )
    section.add(
        Figure(
            "Renditions per image (decode + resize + encode)",
            round(statistics.median(item.seconds for item in measured) * 1000),
            "ms",
            detail="median; paid once per image by ingest",
        )
    )
    for screen in (PHONE, PHONE_2X, LAPTOP):
        result = first_screen(measured, screen, height / width)
        section.add(
            Figure(
                f"First screen of {photos} photos, {screen.name}",
                round(result.thumbnail_bytes / 1024),
                "KB",
                detail=f"{result.visible} cells at w{result.chosen_width}; linking the "
                f"originals instead: {result.original_bytes / 1024:.0f} KB "
                f"({result.original_bytes / result.thumbnail_bytes:.1f}x)",
            )
        )
    section.add(
        Figure(
            "PNG header claiming 20000x20000 refused in",
            round(bomb_refusal_seconds() * 1_000_000, 1),
            "us",
            detail="median of 50; refused from the header, no pixel buffer allocated",
        )
    )
    webp, webp_psnr, jpeg, jpeg_psnr = format_comparison(sources[:8], 320)
    section.add(
        Figure(
            "w320 WebP q80 bytes / progressive JPEG q80 bytes",
            round(webp / jpeg, 2),
            "x",
            detail=f"WebP {webp / 1024:.1f} KB at {webp_psnr:.1f} dB PSNR, "
            f"JPEG {jpeg / 1024:.1f} KB at {jpeg_psnr:.1f} dB",
        )
    )


if __name__ == "__main__":
    measured_section = Section("thumbnails", "Mirrored thumbnails")
    run(measured_section)
    for shown in measured_section.figures:
        if shown.detail:
            print(f"  {shown.name}: {shown.detail}")
