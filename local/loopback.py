"""A threaded HTTP server on 127.0.0.1, for the local stand-ins and the local API."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self


class LoopbackServer:
    """Serve a request-handler class on a loopback port in a daemon thread.

    Subclasses provide :meth:`handler_class`; ``start``/``stop`` (or ``with``)
    own the thread and the port.
    """

    thread_name = "loopback-http"

    def __init__(self, port: int = 0) -> None:
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        """The request handler bound to this server's state."""
        raise NotImplementedError

    def start(self) -> Self:
        """Start serving in a daemon thread; returns ``self``.

        Raises
        ------
        OSError
            When the port is taken.
        """
        self._server = ThreadingHTTPServer(("127.0.0.1", self._port), self.handler_class())
        self._server.daemon_threads = True
        # A short poll interval makes stop() take ~0.1 s instead of 0.5 s.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.1,), name=self.thread_name, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:<port>``."""
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"
