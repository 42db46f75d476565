"""Lighthouse, installed into a git-ignored folder and run against Debian's chromium.

Lighthouse 12.8.2, not the 12.2.3 the issue names: 12.2.3 cannot read the
performance trace of Chromium 156 (the LCP element and five other
diagnostics fail), and 13.x needs Node 22 where this machine has Node 20.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INSTALL_DIR = ROOT / ".bench" / "lighthouse"
VERSION = "12.8.2"
CHROME = "/usr/bin/chromium"
CHROME_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


class LighthouseUnavailableError(RuntimeError):
    """Lighthouse or chromium cannot be run here; the page section is skipped."""


@dataclass(frozen=True)
class LighthouseRun:
    """The figures of one Lighthouse run (mobile preset)."""

    score: float
    lcp_ms: float
    cls: float
    fcp_ms: float
    tbt_ms: float
    transfer_bytes: float
    warnings: tuple[str, ...]


def executable() -> Path:
    """The ``lighthouse`` CLI, installed with npm on first use.

    Raises
    ------
    LighthouseUnavailableError
        When chromium or npm is missing, or the install fails.
    """
    if not Path(CHROME).exists():
        raise LighthouseUnavailableError(f"{CHROME} not found (apt-get install chromium)")
    binary = INSTALL_DIR / "node_modules" / ".bin" / "lighthouse"
    if binary.exists() and _installed_version() == VERSION:
        return binary
    npm = shutil.which("npm")
    if npm is None:
        raise LighthouseUnavailableError("npm not found (Node.js 20 is needed for Lighthouse)")
    INSTALL_DIR.mkdir(parents=True, exist_ok=True)
    package_json = INSTALL_DIR / "package.json"
    if not package_json.exists():
        package_json.write_text('{"name": "bench-lighthouse", "private": true}\n')
    print(f"  installing lighthouse@{VERSION} into {INSTALL_DIR.relative_to(ROOT)} ...")
    result = subprocess.run(  # noqa: S603 - npm from PATH, fixed arguments
        [npm, "install", "--no-audit", "--no-fund", "-E", f"lighthouse@{VERSION}"],
        cwd=INSTALL_DIR,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0 or not binary.exists():
        raise LighthouseUnavailableError(f"npm install lighthouse failed: {result.stderr[-300:]}")
    return binary


def _installed_version() -> str | None:
    manifest = INSTALL_DIR / "node_modules" / "lighthouse" / "package.json"
    try:
        version = json.loads(manifest.read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None
    return str(version)


def run_once(url: str) -> LighthouseRun:
    """Run Lighthouse once on ``url``: default (mobile) config, performance only."""
    binary = executable()
    with tempfile.TemporaryDirectory(prefix="bench-lh-") as workdir:
        report_path = Path(workdir) / "report.json"
        env = dict(os.environ, CHROME_PATH=CHROME, TMPDIR=workdir)
        result = subprocess.run(  # noqa: S603 - our own install, fixed arguments
            [
                str(binary),
                url,
                "--quiet",
                "--only-categories=performance",
                "--output=json",
                f"--output-path={report_path}",
                f"--chrome-flags={' '.join(CHROME_FLAGS)}",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        if result.returncode != 0 or not report_path.exists():
            raise LighthouseUnavailableError(f"lighthouse failed: {result.stderr.strip()[-400:]}")
        report = json.loads(report_path.read_text())
    return _parse(report)


def _parse(report: dict[str, object]) -> LighthouseRun:
    categories = report["categories"]
    audits = report["audits"]
    if not isinstance(categories, dict) or not isinstance(audits, dict):
        raise LighthouseUnavailableError("lighthouse wrote a report without categories/audits")
    runtime_error = report.get("runtimeError")
    if isinstance(runtime_error, dict) and runtime_error.get("code") != "NO_ERROR":
        raise LighthouseUnavailableError(
            f"lighthouse runtime error: {runtime_error.get('message')}"
        )
    score = categories["performance"]["score"]
    if score is None:
        raise LighthouseUnavailableError("lighthouse gave no performance score")

    def numeric(audit: str) -> float:
        value = audits.get(audit, {}).get("numericValue")
        return float(value) if value is not None else float("nan")

    failed = tuple(
        f"{name}: {audit.get('errorMessage', '')[:120]}"
        for name, audit in audits.items()
        if isinstance(audit, dict) and audit.get("scoreDisplayMode") == "error"
    )
    run_warnings = report.get("runWarnings")
    listed = run_warnings if isinstance(run_warnings, list) else []
    warnings = tuple(str(warning) for warning in listed) + failed
    return LighthouseRun(
        score=round(float(score) * 100),
        lcp_ms=numeric("largest-contentful-paint"),
        cls=numeric("cumulative-layout-shift"),
        fcp_ms=numeric("first-contentful-paint"),
        tbt_ms=numeric("total-blocking-time"),
        transfer_bytes=numeric("total-byte-weight"),
        warnings=warnings,
    )


def median_run(url: str, runs: int) -> tuple[LighthouseRun, list[LighthouseRun]]:
    """Run Lighthouse ``runs`` times; the median of each figure, and every run."""
    results = [run_once(url) for _ in range(runs)]
    median = LighthouseRun(
        score=statistics.median(run.score for run in results),
        lcp_ms=statistics.median(run.lcp_ms for run in results),
        cls=statistics.median(run.cls for run in results),
        fcp_ms=statistics.median(run.fcp_ms for run in results),
        tbt_ms=statistics.median(run.tbt_ms for run in results),
        transfer_bytes=statistics.median(run.transfer_bytes for run in results),
        warnings=tuple(sorted({w for run in results for w in run.warnings})),
    )
    return median, results
