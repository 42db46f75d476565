"""The image formats the media archive accepts, and how to recognise them.

One allow-list serves both sides of mirroring: :mod:`shared.safe_fetch` checks
a download's ``Content-Type`` and magic bytes against it, and
:mod:`shared.thumbnails` lets Pillow open only these formats. Instagram's CDN
serves JPEG (occasionally WebP); PNG covers the local mode and uploads of
screenshots. Everything else (GIF, TIFF, HEIC, SVG, ...) is refused: each
extra decoder is extra attack surface for no gallery benefit.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ImageType:
    """One accepted image format.

    Attributes
    ----------
    content_type
        The canonical MIME type, used for S3 ``Content-Type``.
    extension
        File extension for S3 keys, without the dot.
    pillow_formats
        Pillow's names for the format: the first names the decoder to try,
        the others what ``Image.format`` may report for it (a JPEG with a
        multi-picture index, as iPhone photos have, opens as ``MPO``).
    signature
        ``(offset, bytes)`` pairs a file of this format has at its start.
    aliases
        Other ``Content-Type`` values servers send for it.
    """

    content_type: str
    extension: str
    pillow_formats: tuple[str, ...]
    signature: tuple[tuple[int, bytes], ...]
    aliases: tuple[str, ...] = ()

    def matches(self, head: bytes) -> bool:
        """Whether ``head`` (the first bytes of a file) has this format's signature."""
        return all(head[offset : offset + len(magic)] == magic for offset, magic in self.signature)


JPEG = ImageType(
    "image/jpeg",
    "jpg",
    ("JPEG", "MPO"),
    signature=((0, b"\xff\xd8\xff"),),
    aliases=("image/jpg", "image/pjpeg"),
)
PNG = ImageType("image/png", "png", ("PNG",), signature=((0, b"\x89PNG\r\n\x1a\n"),))
WEBP = ImageType("image/webp", "webp", ("WEBP",), signature=((0, b"RIFF"), (8, b"WEBP")))
IMAGE_TYPES = (JPEG, PNG, WEBP)
#: Bytes needed to tell the formats apart.
SIGNATURE_LENGTH = 12


def sniff_image_type(head: bytes) -> ImageType | None:
    """The accepted format whose magic bytes ``head`` starts with, else ``None``."""
    return next((kind for kind in IMAGE_TYPES if kind.matches(head)), None)


def image_type_for(content_type: str | None) -> ImageType | None:
    """The accepted format a ``Content-Type`` header names, else ``None``.

    Parameters are ignored (``image/jpeg; charset=binary`` is JPEG).
    """
    if not content_type:
        return None
    mime = content_type.split(";", 1)[0].strip().lower()
    return next(
        (kind for kind in IMAGE_TYPES if mime == kind.content_type or mime in kind.aliases), None
    )


def image_type_of_pillow_format(name: str | None) -> ImageType | None:
    """The accepted format Pillow reports as ``name`` (``Image.format``), else ``None``."""
    return next((kind for kind in IMAGE_TYPES if name in kind.pillow_formats), None)
