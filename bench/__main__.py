"""``python -m bench`` (``make bench``): measure, print, and write BENCHMARKS.md.

Sections: ``cold`` (handler cold starts), ``serve`` (AWS calls, handler time,
page bytes), ``page`` (Lighthouse), ``ingest`` (Graph calls, writes,
throughput, naive baseline). ``--quick`` measures smaller sizes with fewer
repeats; BENCHMARKS.md is rewritten only by a full run of every section
unless ``--output`` names a file.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench import cold_start, ingestion, page, serving
from bench.diagnosis import findings
from bench.env import configure
from bench.report import Section, render_markdown, terminal_summary

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "BENCHMARKS.md"
SECTIONS = ("cold", "serve", "page", "ingest")
_TITLES = {
    "cold": "Cold start",
    "serve": "Serve",
    "page": "The page",
    "ingest": "Ingest",
}


@dataclass(frozen=True)
class Sizes:
    """How much each section measures."""

    cold_runs: int
    serve_sizes: tuple[int, ...]
    serve_repeats: int
    serve_calls_items: int
    serve_html_items: int
    lighthouse_runs: int
    page_items: int
    ingest_posts: int
    ingest_mirror_posts: int


FULL = Sizes(
    cold_runs=5,
    serve_sizes=(50, 500, 2000),
    serve_repeats=30,
    serve_calls_items=500,
    serve_html_items=200,
    lighthouse_runs=3,
    page_items=200,
    ingest_posts=10_000,
    ingest_mirror_posts=50,
)
QUICK = Sizes(
    cold_runs=3,
    serve_sizes=(50, 500),
    serve_repeats=15,
    serve_calls_items=500,
    serve_html_items=200,
    lighthouse_runs=1,
    page_items=200,
    ingest_posts=1_000,
    ingest_mirror_posts=20,
)

PREAMBLE = (
    "What guests and operators feel, as numbers, each beside its goal (issue 8). "
    "Everything runs on this machine against local stand-ins: moto for AWS, "
    "`local/fake_graph.py` for the Instagram Graph API, Debian's chromium for the page. "
    "Refresh with `make bench` (a few minutes); `python -m bench --quick` measures "
    "smaller sizes, `--only serve ingest` picks sections, `--skip-lighthouse` skips the page.",
    "Counts (AWS calls, Graph calls, writes) are exact and repeatable. Times depend on the "
    "machine and its load (two shared cores here); read them as orders of magnitude and "
    "compare runs made on the same machine.",
)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line of ``python -m bench``."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="smaller sizes, fewer repeats (about a minute)"
    )
    parser.add_argument(
        "--skip-lighthouse", action="store_true", help="skip the page (Lighthouse) section"
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=SECTIONS,
        metavar="SECTION",
        help=f"run only these sections ({', '.join(SECTIONS)})",
    )
    parser.add_argument(
        "--output",
        type=Path,
        help="write the report here (default: BENCHMARKS.md, full runs of every section only)",
    )
    return parser.parse_args(argv)


def run_sections(names: Sequence[str], sizes: Sizes) -> list[Section]:
    """Run the named sections in order; a section that fails is reported, not fatal."""
    runners: dict[str, Callable[[Section], None]] = {
        "cold": lambda section: cold_start.run(section, sizes.cold_runs),
        "serve": lambda section: serving.run(
            section,
            sizes=sizes.serve_sizes,
            repeats=sizes.serve_repeats,
            calls_items=sizes.serve_calls_items,
            html_items=sizes.serve_html_items,
        ),
        "page": lambda section: page.run(
            section,
            runs=sizes.lighthouse_runs,
            items=sizes.page_items,
        ),
        "ingest": lambda section: ingestion.run(
            section, posts=sizes.ingest_posts, mirror_posts=sizes.ingest_mirror_posts
        ),
    }
    sections = []
    for name in names:
        section = Section(name, _TITLES[name])
        sections.append(section)
        print(f"== {section.title}", flush=True)
        started = time.perf_counter()
        configure()
        try:
            runners[name](section)
        except Exception as exc:
            traceback.print_exc()
            section.skipped = f"failed: {type(exc).__name__}: {exc}"
        print(f"   ({time.perf_counter() - started:.0f} s)", flush=True)
    return sections


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; returns the process exit status."""
    args = parse_args(argv)
    names = [
        name for name in (args.only or SECTIONS) if not (args.skip_lighthouse and name == "page")
    ]
    sizes = QUICK if args.quick else FULL
    complete = not args.quick and names == list(SECTIONS)
    output: Path | None = args.output or (REPORT if complete else None)
    started = time.perf_counter()
    sections = run_sections(names, sizes)
    elapsed = time.perf_counter() - started
    print()
    print(terminal_summary(sections))
    if output is not None:
        command = "python -m bench" + (" " + " ".join(argv or sys.argv[1:])).rstrip()
        output.write_text(
            render_markdown(
                sections,
                command=command.strip(),
                preamble=PREAMBLE,
                findings=findings(sections),
                elapsed_seconds=elapsed,
            ),
            encoding="utf-8",
        )
        print(f"\nwrote {output}")
    else:
        print("\n(partial or quick run: BENCHMARKS.md not rewritten; use --output to save)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
