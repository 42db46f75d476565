"""Cold start: import and init of each handler in a fresh process, against boto3's own.

A Lambda cold start runs the handler module's import (with its module-level
init) before the first request. The floor for any Python function that talks
to AWS is ``import boto3; boto3.client("s3")``, so each handler is timed as a
ratio to that floor, measured in the same run, on the same machine.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import statistics
import subprocess
import sys
from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from bench.env import BASE_ENV, BUCKET, configure
from bench.report import TIMES, Figure, Goal, Section
from shared import aws
from shared.config import get_settings
from shared.models import create_table

ROOT = Path(__file__).resolve().parent.parent
HANDLERS = ("ingest.app", "serve.app", "refresh.app")
BASELINE = "baseline"
RATIO_GOAL = Goal("<=", 1.3)
_IMPORTTIME_LINE = re.compile(r"import time:\s+(\d+) \|\s+\d+ \| *(\S+)")

# Runs in the child: time from before the first import to after the init,
# measured inside the process so interpreter start-up (the same for all) is
# left out.
_PROBE = """
import importlib, json, sys, time
start = time.perf_counter()
if sys.argv[1] == "baseline":
    import boto3
    boto3.client("s3")
else:
    module = importlib.import_module(sys.argv[1])
    if len(sys.argv) > 2:
        status = module.handler(json.loads(sys.argv[2]), None)["statusCode"]
        if status != 200:
            raise SystemExit(f"the first request answered {status}")
print(time.perf_counter() - start)
"""
FIRST_REQUEST = "serve.app"


def _child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env.update(BASE_ENV)
    env.update(extra or {})
    env["PYTHONPATH"] = str(ROOT)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def time_import(
    target: str, first_request: dict[str, Any] | None = None, endpoint: str | None = None
) -> float:
    """Seconds to import ``target`` (or the boto3 floor) in a fresh interpreter.

    With ``first_request``, the time runs on to the end of the handler's
    answer to that event, its AWS calls going to ``endpoint``.
    """
    arguments = [target] if first_request is None else [target, json.dumps(first_request)]
    extra = {"AWS_ENDPOINT_URL": endpoint} if endpoint else None
    result = subprocess.run(  # noqa: S603 - our own interpreter and probe
        [sys.executable, "-c", _PROBE, *arguments],
        cwd=ROOT,
        env=_child_env(extra),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"importing {target} failed: {last}")
    return float(result.stdout.strip().splitlines()[-1])


def import_profile(target: str, top: int = 6) -> list[tuple[str, float]]:
    """The distributions that cost ``target``'s import the most, in ms.

    Sums ``python -X importtime``'s self time per top-level package, so
    ``botocore`` gets its own share whoever imported it first. A diagnostic
    run, never a timed one: the option itself slows imports down.
    """
    startup = _startup_packages()
    costs = {
        package: ms
        for package, ms in _self_time_by_package(f"import {target}").items()
        if package not in startup
    }
    return sorted(costs.items(), key=lambda item: item[1], reverse=True)[:top]


@functools.cache
def _startup_packages() -> frozenset[str]:
    return frozenset(_self_time_by_package("pass"))


def _self_time_by_package(code: str) -> dict[str, float]:
    result = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-X", "importtime", "-c", code],
        cwd=ROOT,
        env=_child_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    costs: dict[str, float] = {}
    for line in result.stderr.splitlines():
        match = _IMPORTTIME_LINE.match(line)
        if match:
            package = match.group(2).split(".")[0]
            costs[package] = costs.get(package, 0.0) + int(match.group(1)) / 1000
    return costs


def run(section: Section, runs: int, targets: Sequence[str] = HANDLERS) -> None:
    """Measure each handler's cold import ``runs`` times, interleaved with the floor."""
    section.method += [
        "Each figure times, inside a fresh `python -c` process (no `-X importtime`), from "
        "before the first import to after `importlib.import_module(<handler>)` returns: "
        "the module's import and its module-level init, as Lambda's INIT phase runs it. "
        "Interpreter start-up is the same for every process and is left out.",
        'The floor is `import boto3; boto3.client("s3")`, timed the same way in the same '
        "run; each handler is reported as median(handler) / median(floor).",
        f"{runs} timed runs per target, interleaved (floor, ingest, serve, refresh, floor, "
        "...), after one untimed warm-up of each so bytecode caches exist "
        "(as in a deployed artifact with `.pyc` files).",
        "serve.app defers its AWS imports to the first request, so a second serve figure "
        "runs on to the end of a first `GET /g/<event>` (4 items) answered against a moto "
        "server on 127.0.0.1: what a guest waits for on a cold container, without network.",
    ]
    available = [target for target in targets if _importable(target)]
    missing = [target for target in targets if target not in available]
    order = [BASELINE, *available]
    for target in order:
        time_import(target)
    samples: dict[str, list[float]] = {target: [] for target in order}
    for _ in range(runs):
        for target in order:
            samples[target].append(time_import(target))
    floor = statistics.median(samples[BASELINE])
    section.add(
        Figure(
            'Floor: import boto3; boto3.client("s3")',
            round(floor * 1000, 1),
            "ms",
            detail=_spread(samples[BASELINE]),
        )
    )
    for target in available:
        median = statistics.median(samples[target])
        profile = ", ".join(f"{name} {ms:.0f} ms" for name, ms in import_profile(target))
        section.add(
            Figure(
                f"Cold start {target} (import + init) / floor",
                round(median / floor, 2),
                TIMES,
                RATIO_GOAL,
                detail=f"{median * 1000:.0f} ms median ({_spread(samples[target])}); "
                f"self import time by package (-X importtime): {profile}",
            )
        )
    if FIRST_REQUEST in available:
        first = _first_request_times(runs)
        median = statistics.median(first)
        section.add(
            Figure(
                f"Cold start {FIRST_REQUEST}, import + first request / floor",
                round(median / floor, 2),
                TIMES,
                detail=f"{median * 1000:.0f} ms median ({_spread(first)}): the guest's "
                "wait on a cold container (Lambda INIT plus the first invocation, which "
                "imports what the module defers, wires the service and makes its AWS "
                "calls to a moto server on 127.0.0.1)",
            )
        )
    for target in missing:
        section.add(
            Figure(
                f"Cold start {target} (import + init) / floor",
                None,
                TIMES,
                RATIO_GOAL,
                detail="the handler module does not exist yet",
            )
        )


def _first_request_times(runs: int) -> list[float]:
    from moto.server import ThreadedMotoServer

    from bench import serving
    from bench.dataset import jpeg

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    try:
        host, port = moto.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        configure({"AWS_ENDPOINT_URL": endpoint})
        settings = get_settings()
        create_table(settings)
        aws.s3_client().create_bucket(Bucket=BUCKET)
        seeded = serving.seed_event(settings, date(2026, 4, 29), 4, upload_body=jpeg(64, 80, 1))
        event = serving.request(seeded.event_id)
        time_import(FIRST_REQUEST, event, endpoint)
        return [time_import(FIRST_REQUEST, event, endpoint) for _ in range(runs)]
    finally:
        moto.stop()
        configure()


def _importable(target: str) -> bool:
    return (ROOT / (target.replace(".", "/") + ".py")).is_file()


def _spread(samples: Sequence[float]) -> str:
    shown = ", ".join(f"{value * 1000:.0f}" for value in sorted(samples))
    return f"runs {shown} ms"
