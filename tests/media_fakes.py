"""Test doubles for the media archive: real image files and DNS.

Images are real files made with Pillow from the local mode's photo-like
sample scenes (:func:`local.images.render_jpeg`), re-encoded as each test
needs. DNS is faked at ``socket.getaddrinfo`` so no test resolves a real
name, and so a test can make a name resolve to whatever it attacks with.
"""

from __future__ import annotations

import io
import socket
from collections.abc import Sequence
from typing import Any

import pytest
from PIL import Image

from local.images import ImageSpec, render_jpeg

#: A public address (Meta's) for names the tests treat as Instagram's CDN.
CDN_ADDRESS = "157.240.22.63"
_MIN_SCENE = 160


def photo(width: int = 160, height: int = 200, fmt: str = "JPEG", **options: Any) -> bytes:
    """A photo-like image file of ``width`` x ``height`` in format ``fmt``."""
    # The sample scenes need some room to draw in; smaller sizes are scaled down.
    drawn = (max(width, _MIN_SCENE), max(height, _MIN_SCENE))
    scene = render_jpeg(ImageSpec(f"test-{width}x{height}", *drawn))
    if fmt == "JPEG" and not options and drawn == (width, height):
        return scene
    image: Image.Image = Image.open(io.BytesIO(scene))
    image = image.resize((width, height)) if drawn != (width, height) else image
    if fmt == "PNG" and options.pop("alpha", False):
        image = image.convert("RGBA")
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


class FakeDns:
    """``socket.getaddrinfo`` answering from a table; other names fail as NXDOMAIN.

    ``answer(host, [...], [...])`` queues answers: each lookup takes the next,
    the last one repeats (two answers model DNS rebinding). An answer entry is
    an address, or ``(address, port)`` to send the connection elsewhere.
    """

    def __init__(self) -> None:
        self.lookups: list[str] = []
        self._answers: dict[str, list[Sequence[str | tuple[str, int]]]] = {}

    def answer(self, host: str, *answers: Sequence[str | tuple[str, int]]) -> None:
        """Make ``host`` resolve to ``answers[0]``, then ``answers[1]``, ..."""
        self._answers[host] = list(answers)

    def getaddrinfo(
        self, host: str, port: int | str | None, *args: Any, **kwargs: Any
    ) -> list[tuple[Any, ...]]:
        self.lookups.append(host)
        queue = self._answers.get(host)
        if not queue:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        entries = queue.pop(0) if len(queue) > 1 else queue[0]
        results: list[tuple[Any, ...]] = []
        for entry in entries:
            address, target_port = entry if isinstance(entry, tuple) else (entry, int(port or 0))
            if ":" in address:
                results.append(
                    (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, target_port, 0, 0))
                )
            else:
                results.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, target_port)))
        return results

    @classmethod
    def install(cls, monkeypatch: pytest.MonkeyPatch) -> FakeDns:
        """Replace ``socket.getaddrinfo`` for one test."""
        dns = cls()
        monkeypatch.setattr(socket, "getaddrinfo", dns.getaddrinfo)
        return dns
