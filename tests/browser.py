"""Headless Chromium for the page tests: Debian's ``/usr/bin/chromium`` via Playwright.

A tool's own browser download cannot reach its host here, so the tests drive
the system Chromium with the flags that keep it off the (closed) network.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless=new",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    *(["--no-sandbox"] if os.geteuid() == 0 else []),
]


@pytest.fixture
def browser() -> Iterator[Any]:
    """GIVEN Debian's headless Chromium driven by Playwright (skipped loudly if missing)."""
    if shutil.which(CHROMIUM) is None:
        pytest.skip(
            f"!!! BROWSER TEST SKIPPED: {CHROMIUM} is missing. "
            "Install it with `apt-get install chromium` (scripts/ensure-chromium.sh)."
        )
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            yield instance
        finally:
            instance.close()


def wait_until(page: Any, expression: str, timeout: float = 15.0) -> None:
    """Poll a JavaScript expression until it is truthy.

    Playwright's ``wait_for_function`` evaluates its predicate with ``eval``
    once it has to poll, which the page's CSP (rightly) forbids; evaluating
    from the test side is not subject to the page's CSP.
    """
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for: {expression}")
        page.wait_for_timeout(50)
