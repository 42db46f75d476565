"""Sample photos: deterministic, photo-like JPEGs rendered with Pillow.

The local mode needs real images (ingest decodes and resizes them, the
browser test checks they load), but committing dozens of photos would bloat
the repository. Each image is drawn from its name instead: a sky and sea
gradient lit for the time of day, a sun or moon, a yacht, grain and a caption
strip, so the gallery looks like a gallery. Rendering is deterministic and
cached on disk, so only the first start pays for it.
"""

from __future__ import annotations

import io
import os
import random
import re
import threading
import zlib
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

# Bump when the drawing changes, so cached files from an older look are not reused.
RENDER_VERSION = "4"
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")

Color = tuple[int, int, int]

# Sky top, sky at the horizon, sea at the horizon, sea at the bottom, sun/moon.
_PALETTES: dict[str, tuple[Color, Color, Color, Color, Color]] = {
    "night": ((6, 10, 34), (34, 46, 96), (14, 22, 48), (2, 4, 12), (236, 236, 214)),
    "dawn": ((118, 146, 206), (250, 196, 156), (70, 96, 136), (18, 34, 60), (255, 226, 170)),
    "day": ((36, 104, 196), (164, 206, 240), (22, 100, 150), (6, 40, 72), (255, 250, 214)),
    "sunset": ((84, 38, 118), (252, 144, 72), (64, 40, 74), (12, 10, 28), (255, 178, 86)),
}
SCENES = tuple(_PALETTES)


@dataclass(frozen=True)
class ImageSpec:
    """How to draw one named sample image.

    Attributes
    ----------
    name
        The image's name: a file name without directories (``[A-Za-z0-9_.-]``).
    width, height
        Pixel size.
    scene
        One of :data:`SCENES`: the light of the time of day.
    label
        A line of text drawn on the image (e.g. the local time it shows).
    """

    name: str
    width: int = 1080
    height: int = 1350
    scene: str = "day"
    label: str = ""


class ImageLibrary:
    """Named sample JPEGs, rendered on first use and cached.

    Parameters
    ----------
    specs
        The images this library knows by name.
    cache_dir
        Where rendered files are kept between runs; memory only when ``None``.
    default_size
        Size for a name without a spec (tests invent names freely); ``None``
        makes unknown names unavailable.
    """

    def __init__(
        self,
        specs: Iterable[ImageSpec] = (),
        cache_dir: Path | None = None,
        default_size: tuple[int, int] | None = (320, 400),
    ) -> None:
        self._specs = {spec.name: spec for spec in specs}
        for name in self._specs:
            if not _SAFE_NAME.fullmatch(name):
                raise ValueError(f"unsafe image name: {name!r}")
        self._cache_dir = cache_dir
        self._default_size = default_size
        self._memory: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self.rendered = 0

    def jpeg(self, name: str) -> bytes | None:
        """Return the JPEG bytes of ``name``, or ``None`` when there is no such image.

        Names come from request paths, so anything that is not a plain file
        name is refused rather than resolved.
        """
        spec = self._spec(name)
        if spec is None:
            return None
        with self._lock:
            cached = self._memory.get(name)
        if cached is not None:
            return cached
        data = self._load_or_render(spec)
        with self._lock:
            self._memory[name] = data
        return data

    def warm(self) -> int:
        """Load or render every known image, in parallel; return how many were rendered.

        Pillow releases the GIL while drawing, blurring and encoding, so
        threads use every core.
        """
        before = self.rendered
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            list(pool.map(self.jpeg, self._specs))
        return self.rendered - before

    def _spec(self, name: str) -> ImageSpec | None:
        spec = self._specs.get(name)
        if spec is not None:
            return spec
        if self._default_size is None or not _SAFE_NAME.fullmatch(name):
            return None
        width, height = self._default_size
        return ImageSpec(name, width, height, SCENES[zlib.crc32(name.encode()) % len(SCENES)])

    def _load_or_render(self, spec: ImageSpec) -> bytes:
        path = None
        if self._cache_dir is not None:
            path = self._cache_dir / f"{spec.name}-{spec.width}x{spec.height}-v{RENDER_VERSION}.jpg"
            try:
                return path.read_bytes()
            except FileNotFoundError:
                pass
        data = render_jpeg(spec)
        with self._lock:
            self.rendered += 1
        if path is None:
            return data
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename: a concurrent reader never sees half a file.
        partial = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.part")
        partial.write_bytes(data)
        partial.replace(path)
        return data


def render_jpeg(spec: ImageSpec) -> bytes:
    """Draw one sample photo and encode it as a JPEG.

    Parameters
    ----------
    spec
        What to draw; the same spec always gives the same pixels.

    Returns
    -------
    bytes
        The JPEG file.
    """
    width, height = spec.width, spec.height
    # Seeded from the name: the same image every run (not a security use).
    rng = random.Random(zlib.crc32(spec.name.encode()))  # noqa: S311
    sky_top, sky_low, sea_top, sea_low, light = (
        _jitter(rng, color) for color in _PALETTES[spec.scene]
    )
    horizon = int(height * rng.uniform(0.5, 0.66))
    image = Image.new("RGB", (width, height))
    image.paste(_gradient(width, horizon, sky_top, sky_low), (0, 0))
    image.paste(_gradient(width, height - horizon, sea_top, sea_low), (0, horizon))
    draw = ImageDraw.Draw(image)
    if spec.scene == "night":
        for _ in range(rng.randint(60, 140)):
            x, y = rng.randrange(width), rng.randrange(horizon)
            draw.point((x, y), fill=(255, 255, 240))
    radius = rng.randint(width // 14, width // 7)
    cx = rng.randint(radius, width - radius)
    cy = horizon - rng.randint(radius // 3, max(radius, horizon // 2))
    draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=light)
    for _ in range(rng.randint(4, 10)):
        x, y = rng.randrange(width), rng.randint(min(horizon + 4, height), height)
        length = rng.randint(width // 27, width // 3)
        draw.line((x, y, x + length, y), fill=light, width=rng.randint(2, 5))
    _draw_yacht(draw, rng, width, height, horizon)
    # Grain: flat vector shapes would compress (and resize) unlike photos.
    grain = Image.frombytes("L", (width, height), rng.randbytes(width * height))
    image = Image.blend(image, grain.convert("RGB"), 0.06)
    if spec.label:
        font = ImageFont.load_default(size=max(14, width // 30))
        # Centred, above the bottom tenth: it survives a square thumbnail crop.
        ImageDraw.Draw(image).text(
            (width // 2, height * 86 // 100),
            spec.label,
            anchor="ms",
            font=font,
            fill=(255, 255, 255),
            stroke_width=2,
            stroke_fill=(0, 0, 0),
        )
    buffer = io.BytesIO()
    # Baseline JPEG: optimize/progressive would cost 4x the encoding time.
    image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def _jitter(rng: random.Random, color: Color) -> Color:
    r, g, b = (max(0, min(255, channel + rng.randint(-18, 18))) for channel in color)
    return (r, g, b)


def _gradient(width: int, height: int, top: Color, bottom: Color) -> Image.Image:
    mask = Image.linear_gradient("L").resize((max(1, width), max(1, height)))
    return Image.composite(
        Image.new("RGB", mask.size, bottom), Image.new("RGB", mask.size, top), mask
    )


def _draw_yacht(
    draw: ImageDraw.ImageDraw, rng: random.Random, width: int, height: int, horizon: int
) -> None:
    size = rng.randint(width // 10, width // 5)
    x = rng.randint(size, width - size)
    y = horizon + rng.randint(size // 3, max(size // 2, (height - horizon) // 3))
    hull = (238, 238, 232)
    draw.polygon(
        [
            (x - size, y),
            (x + size, y),
            (x + size * 7 // 10, y + size // 4),
            (x - size * 7 // 10, y + size // 4),
        ],
        fill=hull,
    )
    draw.line((x, y - 2 * size, x, y), fill=(60, 60, 60), width=max(2, size // 40))
    draw.polygon([(x + 3, y - 2 * size), (x + 3, y - 6), (x + size * 9 // 10, y - 6)], fill=hull)
    draw.polygon(
        [(x - 3, y - size * 8 // 5), (x - 3, y - 6), (x - size * 3 // 5, y - 6)], fill=hull
    )
