"""Safe decoding and renditions: real images made with Pillow, hostile ones too."""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageCms, ImageFile

from bench.thumbnails import png_claiming
from shared import thumbnails
from shared.image_types import JPEG, PNG, WEBP
from shared.thumbnails import (
    MAX_PIXELS,
    RENDITION_WIDTHS,
    ImageRejectedError,
    process_image,
    target_widths,
)
from tests.media_fakes import photo


def _open(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def test_a_portrait_photo_gets_every_rendition_at_exact_sizes() -> None:
    """GIVEN a 1080x1350 JPEG (Instagram's portrait size) WHEN processed
    THEN WebP renditions 320/480/640/1080 px wide, 4:5, whose recorded sizes are their real ones."""
    processed = process_image(photo(1080, 1350))

    assert processed.image_type is JPEG
    assert (processed.width, processed.height) == (1080, 1350)
    assert [r.width for r in processed.renditions] == list(RENDITION_WIDTHS)
    assert [r.height for r in processed.renditions] == [400, 600, 800, 1350]
    for rendition in processed.renditions:
        decoded = _open(rendition.data)
        assert decoded.format == "WEBP"
        assert rendition.image_type is WEBP
        assert decoded.size == (rendition.width, rendition.height)


def test_renditions_are_never_upscaled() -> None:
    """GIVEN a 500x400 PNG WHEN processed THEN 320 and 480 px, plus one at its own 500 px."""
    processed = process_image(photo(500, 400, "PNG"))

    assert processed.image_type is PNG
    assert [(r.width, r.height) for r in processed.renditions] == [
        (320, 256),
        (480, 384),
        (500, 400),
    ]


@pytest.mark.parametrize(
    ("source", "widths", "expected"),
    [
        (1080, (320, 640, 1080), [320, 640, 1080]),
        (1440, (320, 640, 1080), [320, 640, 1080]),
        (800, (320, 640, 1080), [320, 640, 800]),
        (200, (320, 640, 1080), [200]),
        (640, (320, 640, 1080), [320, 640]),
    ],
)
def test_target_widths(source: int, widths: tuple[int, ...], expected: list[int]) -> None:
    """GIVEN a source width WHEN renditions are planned THEN no width exceeds the source."""
    assert target_widths(source, widths) == expected


def test_exif_orientation_is_applied_and_metadata_dropped() -> None:
    """GIVEN a landscape JPEG whose EXIF says 'rotate 90' and which carries GPS, XMP and ICC
    WHEN processed THEN the renditions are upright portraits with no metadata at all."""
    source = Image.new("RGB", (400, 200), (0, 0, 255))
    source.paste((255, 0, 0), (0, 0, 40, 40))  # a red mark at the top left
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    exif[0x8825] = {1: "N", 2: (37.0, 48.0, 30.0)}  # GPSInfo
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    buffer = io.BytesIO()
    source.save(buffer, "JPEG", exif=exif.tobytes(), icc_profile=srgb, xmp=b"<x:xmpmeta/>")

    processed = process_image(buffer.getvalue())

    assert (processed.width, processed.height) == (200, 400)
    rendition = _open(processed.renditions[-1].data)
    assert rendition.size == (200, 400)
    # Rotated clockwise, the top-left mark is now at the top right.
    red, _, blue = rendition.convert("RGB").getpixel((190, 10))  # type: ignore[misc]
    assert red > 200
    assert blue < 60
    assert not rendition.getexif()
    assert not {"exif", "icc_profile", "xmp", "XML:com.adobe.xmp"} & set(rendition.info)


def test_transparency_is_flattened_on_white() -> None:
    """GIVEN a PNG with a fully transparent area WHEN processed THEN that area is white."""
    source = Image.new("RGBA", (200, 100), (0, 0, 0, 0))
    source.paste((0, 128, 0, 255), (100, 0, 200, 100))
    buffer = io.BytesIO()
    source.save(buffer, "PNG")

    rendition = _open(process_image(buffer.getvalue()).renditions[0].data).convert("RGB")

    assert all(channel > 240 for channel in rendition.getpixel((10, 10)))  # type: ignore[union-attr]
    assert rendition.getpixel((190, 50))[1] > 100  # type: ignore[index]


def test_webp_and_png_sources_are_accepted() -> None:
    """GIVEN WebP and PNG sources WHEN processed THEN each is recognised by its format."""
    assert process_image(photo(400, 500, "WEBP")).image_type is WEBP
    assert process_image(photo(400, 500, "PNG", alpha=True)).image_type is PNG


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF", "ICO", "PPM"])
def test_formats_outside_the_allow_list_are_refused(fmt: str) -> None:
    """GIVEN a valid image in a format not on the allow-list WHEN processed THEN refused."""
    with pytest.raises(ImageRejectedError, match="not a JPEG, PNG or WebP"):
        process_image(photo(64, 64, fmt))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"<!DOCTYPE html><html><body>Sorry, this page isn't available.</body></html>",
        b"\xff\xd8\xff\xe0" + b"\x00" * 64,
        photo(400, 500)[:3000],
    ],
    ids=["empty", "html", "jpeg-magic-only", "truncated-jpeg"],
)
def test_corrupt_or_truncated_files_are_refused(data: bytes) -> None:
    """GIVEN bytes that are not a whole image WHEN processed THEN refused, no half-grey output."""
    with pytest.raises(ImageRejectedError):
        process_image(data)


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every pixel decode Pillow starts (``ImageFile.load``)."""
    calls: list[str] = []
    original = ImageFile.ImageFile.load

    def recording(self: ImageFile.ImageFile) -> object:
        calls.append(str(self.format))
        return original(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", recording)
    return calls


@pytest.mark.parametrize(
    ("width", "height"),
    [(20_000, 20_000), (8_000, 8_000), (13_000, 10)],
    ids=["400MP", "64MP-below-pillow-warning", "too-wide"],
)
def test_a_header_claiming_too_many_pixels_is_refused_before_decoding(
    width: int, height: int, decodes: list[str]
) -> None:
    """GIVEN a 100-byte PNG whose header claims a huge size WHEN processed
    THEN refused from the header alone: no pixel buffer is ever allocated."""
    bomb = png_claiming(width, height)
    assert len(bomb) < 200

    with pytest.raises(ImageRejectedError, match=r"too large|exceeds the cap"):
        process_image(bomb)

    assert decodes == []


def test_the_cap_admits_sizes_below_it(decodes: list[str]) -> None:
    """GIVEN a real image well below the cap WHEN processed THEN it decodes (the cap is not
    refusing everything)."""
    source = photo(1080, 1350)
    assert MAX_PIXELS > 1080 * 1350

    process_image(source)

    assert set(decodes) == {"JPEG"}


def test_a_decompression_bomb_warning_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """GIVEN Pillow's own bomb threshold below an image's size (so Pillow only warns)
    WHEN processed THEN the warning is treated as an error and the image refused."""
    source = photo(160, 100)  # 16,000 px: above 10,000 (warning), below 20,000 (error)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)
    monkeypatch.setattr(thumbnails, "MAX_PIXELS", 10**9)

    with pytest.raises(ImageRejectedError, match="too large"):
        process_image(source)
