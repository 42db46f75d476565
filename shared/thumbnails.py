"""Safe decoding and resized renditions of one image (Pillow).

Decoding is where a hostile file does its damage, so it is fenced in:

- only JPEG, PNG and WebP decoders are tried (:mod:`shared.image_types`);
- the size in the header is checked *before* any pixel is decoded
  (:data:`MAX_PIXELS`, :data:`MAX_SIDE`): a PNG claiming 20000 x 20000 is
  refused after reading a few dozen bytes, and Pillow's own
  ``DecompressionBombWarning`` is an error here, not a log line;
- a truncated or corrupt file is an error, never a half-grey thumbnail.

Renditions are what a phone should download: EXIF orientation applied,
colours converted to sRGB, transparency flattened on white, every metadata
block (EXIF with its GPS position, XMP, ICC) dropped, and never upscaled.

They are WebP (quality 80, no metadata). On photo-like 1080 x 1350 sources
WebP came out 15-25 % smaller than progressive JPEG at the same PSNR
(``bench/thumbnails.py``), every browser a guest brings decodes it (Safari
since 14), and Lighthouse flags JPEG thumbnails as a missed "modern image
format". The cost is encode time, about 4x JPEG's, paid once per image by
ingest. The original stays as Instagram served it (JPEG) for anyone who
wants the file itself.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from shared.image_types import IMAGE_TYPES, WEBP, ImageType, image_type_of_pillow_format

#: Widths (px) of the renditions: grid cells on phones at 2x and 3x density
#: (320, 480), grid cells on laptops (640) and the full-size view (1080).
RENDITION_WIDTHS = (320, 480, 640, 1080)
#: At most 40 megapixels (about 120 MB decoded as RGB, within a 512 MB
#: Lambda): Instagram's largest image is 1440 x 1800, 2.6 MP.
MAX_PIXELS = 40_000_000
MAX_SIDE = 12_000
WEBP_QUALITY = 80
#: libwebp effort: method 2 halves encode time against the default 4 (124 vs
#: 245 ms an image, measured) for about 1 % more bytes; mirroring is the bulk of
#: a backfill's time, so speed wins.
WEBP_METHOD = 2
# The decoders Image.open may try; MPO opens through the JPEG decoder.
_DECODERS = tuple(kind.pillow_formats[0] for kind in IMAGE_TYPES)
_WHITE = (255, 255, 255)
_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


class ImageRejectedError(ValueError):
    """The bytes are not an image we decode: wrong format, too large, corrupt."""


@dataclass(frozen=True)
class EncodedImage:
    """One rendition, encoded.

    Attributes
    ----------
    data
        The file's bytes.
    width, height
        Its pixel size.
    image_type
        Its format.
    """

    data: bytes
    width: int
    height: int
    image_type: ImageType = WEBP


@dataclass(frozen=True)
class ProcessedImage:
    """A decoded source image and its renditions.

    Attributes
    ----------
    image_type
        The source's format.
    width, height
        The source's size as displayed (after EXIF orientation).
    renditions
        Resized copies, narrowest first.
    """

    image_type: ImageType
    width: int
    height: int
    renditions: tuple[EncodedImage, ...]


def process_image(data: bytes, widths: Sequence[int] = RENDITION_WIDTHS) -> ProcessedImage:
    """Decode an image safely and encode its renditions.

    Parameters
    ----------
    data
        The source file.
    widths
        Rendition widths wanted; widths above the source's are replaced by
        one rendition at the source's own width (nothing is upscaled).

    Returns
    -------
    ProcessedImage
        The source's format and displayed size, and the renditions.

    Raises
    ------
    ImageRejectedError
        When the format is not allowed, the header claims too many pixels,
        or the file does not decode.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data), formats=_DECODERS) as source:
                image_type = image_type_of_pillow_format(source.format)
                if image_type is None:
                    raise ImageRejectedError(f"format {source.format} is not allowed")
                check_dimensions(*source.size)
                source.load()
                image = _display_ready(source)
        except ImageRejectedError:
            raise
        except UnidentifiedImageError:
            raise ImageRejectedError("not a JPEG, PNG or WebP image") from None
        except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
            raise ImageRejectedError(f"image too large: {exc}") from None
        except (OSError, SyntaxError, ValueError) as exc:
            # Pillow reports corrupt and truncated files through all three.
            raise ImageRejectedError(f"image does not decode: {exc}") from None
    renditions = tuple(_encode(image, width) for width in target_widths(image.width, widths))
    return ProcessedImage(image_type, image.width, image.height, renditions)


def check_dimensions(width: int, height: int) -> None:
    """Refuse a size beyond :data:`MAX_SIDE` per side or :data:`MAX_PIXELS` in all.

    Raises
    ------
    ImageRejectedError
        When the image is too large (or has no pixels).
    """
    if width < 1 or height < 1:
        raise ImageRejectedError(f"image has no pixels ({width}x{height})")
    if width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_PIXELS:
        raise ImageRejectedError(
            f"image of {width}x{height} pixels exceeds the cap "
            f"({MAX_SIDE} px per side, {MAX_PIXELS // 1_000_000} MP)"
        )


def target_widths(source_width: int, widths: Sequence[int] = RENDITION_WIDTHS) -> list[int]:
    """The rendition widths for a source ``source_width`` pixels wide.

    Each wanted width up to the source's, plus the source's own width when
    it is narrower than the widest wanted: a 800 px source gives 320, 480,
    640 and 800; a 200 px source gives 200 alone.
    """
    chosen = sorted({width for width in widths if 0 < width <= source_width})
    if widths and source_width < max(widths) and source_width not in chosen:
        chosen.append(source_width)
    return chosen


def _display_ready(source: Image.Image) -> Image.Image:
    """An RGB, sRGB, upright copy of ``source`` with no metadata attached."""
    image = ImageOps.exif_transpose(source)
    image = _to_srgb(image, source.info.get("icc_profile"))
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        flattened = Image.new("RGB", rgba.size, _WHITE)
        flattened.paste(rgba, mask=rgba.getchannel("A"))
        image = flattened
    elif image.mode != "RGB":
        image = image.convert("RGB")
    image.info.clear()
    return image


def _to_srgb(image: Image.Image, icc_profile: bytes | None) -> Image.Image:
    """Convert from an embedded colour profile (an iPhone's Display P3) to sRGB.

    Dropping the profile without converting would shift every colour, since
    browsers read untagged images as sRGB.
    """
    if not icc_profile or image.mode not in ("RGB", "RGBA", "CMYK"):
        return image
    output_mode = "RGBA" if image.mode == "RGBA" else "RGB"
    try:
        converted = ImageCms.profileToProfile(
            image,
            ImageCms.ImageCmsProfile(io.BytesIO(icc_profile)),
            _SRGB,
            outputMode=output_mode,
        )
    except (ImageCms.PyCMSError, OSError, ValueError):
        return image  # an unreadable profile: the pixels are still usable as they are
    return converted if converted is not None else image


def _encode(image: Image.Image, width: int) -> EncodedImage:
    height = max(1, round(image.height * width / image.width))
    resized = (
        image
        if width == image.width
        else image.resize((width, height), Image.Resampling.LANCZOS, reducing_gap=3.0)
    )
    buffer = io.BytesIO()
    # No exif/icc_profile/xmp arguments: the rendition carries pixels only.
    resized.save(buffer, "WEBP", quality=WEBP_QUALITY, method=WEBP_METHOD)
    return EncodedImage(buffer.getvalue(), resized.width, resized.height, WEBP)
