"""A small sampling profiler over all threads, to say where a figure's time goes.

pyinstrument follows one thread; the gallery service reads its two sources on
a thread pool, so this samples every thread's stack (``sys._current_frames``)
every millisecond instead. Each busy sample is attributed twice: to the
package or file of the innermost frame (self time: ``botocore``,
``dateutil``, ``shared/presign.py``...) and to the innermost function of this
repository on the stack (inclusive time: ``shared/uploads.py:_list``), which
names the code to change.
"""

from __future__ import annotations

import sys
import sysconfig
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parent.parent
_STDLIB = Path(sysconfig.get_paths()["stdlib"]).resolve()
_OWN_PACKAGES = ("shared", "serve", "ingest", "refresh", "local")
# Frames where an idle thread waits: not work, whoever's thread it is.
_IDLE = (
    "threading.py",
    "concurrent/futures/thread.py",
    "queue.py",
    "selectors.py",
    "socket.py",
    "ssl.py",
    "socketserver.py",
)


@dataclass(frozen=True)
class Profile:
    """Shares of busy samples, largest first."""

    samples: int
    by_package: list[tuple[str, float]]
    by_function: list[tuple[str, float]]

    def describe(self, top: int = 6) -> str:
        """A one-line summary for a report."""
        if not self.samples:
            return "no samples"
        packages = ", ".join(f"{name} {share:.0%}" for name, share in self.by_package[:top])
        functions = ", ".join(f"{name} {share:.0%}" for name, share in self.by_function[:top])
        return (
            f"sampled self time by package: {packages}; inclusive time by innermost "
            f"project function: {functions} ({self.samples} samples, all threads)"
        )


def profile(work: Callable[[], object], interval: float = 0.001) -> Profile:
    """Run ``work`` while sampling every other thread's stack."""
    packages: Counter[str] = Counter()
    functions: Counter[str] = Counter()
    done = threading.Event()
    sampler_id: list[int] = []

    def sample() -> None:
        sampler_id.append(threading.get_ident())
        while not done.is_set():
            for thread_id, frame in sys._current_frames().items():
                if thread_id in sampler_id:
                    continue
                leaf = _location(frame)
                if leaf is None or leaf.endswith(_IDLE):
                    continue
                packages[_package(leaf)] += 1
                functions[_own_function(frame)] += 1
            time.sleep(interval)

    # A sampler thread runs when the working thread drops the GIL; with the
    # default 5 ms switch interval that is mostly where C code releases it
    # voluntarily (hmac, I/O), which would skew the shares towards those
    # calls. A 10 us interval lets the sampler in within 10 us of waking.
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    thread = threading.Thread(target=sample, name="bench-sampler", daemon=True)
    thread.start()
    try:
        work()
    finally:
        done.set()
        thread.join()
        sys.setswitchinterval(switch_interval)
    total = sum(packages.values())
    return Profile(
        samples=total,
        by_package=[(name, count / total) for name, count in packages.most_common()],
        by_function=[(name, count / total) for name, count in functions.most_common()],
    )


def _location(frame: FrameType) -> str | None:
    filename = frame.f_code.co_filename
    if filename.startswith("<"):
        return None
    return str(Path(filename).resolve()).replace("\\", "/")


def _package(path: str) -> str:
    if "/site-packages/" in path:
        return path.split("/site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    resolved = Path(path)
    if resolved.is_relative_to(ROOT):
        return resolved.relative_to(ROOT).as_posix()
    if resolved.is_relative_to(_STDLIB):
        return "stdlib " + resolved.relative_to(_STDLIB).as_posix().split("/", 1)[0]
    return resolved.name


def _own_function(frame: FrameType | None) -> str:
    while frame is not None:
        path = Path(frame.f_code.co_filename)
        if path.is_absolute() and path.is_relative_to(ROOT):
            relative = path.relative_to(ROOT).as_posix()
            if relative.startswith(_OWN_PACKAGES) and "/site-packages/" not in relative:
                return f"{relative}:{frame.f_code.co_name}"
        elif not path.is_absolute() and path.as_posix().startswith(_OWN_PACKAGES):
            # Jinja2 compiles templates with their relative name as the file.
            return f"{path.as_posix()}:{frame.f_code.co_name}"
        frame = frame.f_back
    return "(other threads: fake servers, moto)"
