"""Smoke test of the benchmark harness (``make bench``), on tiny sizes so it cannot rot.

It checks that every section runs end to end against the real handlers and
that the report puts each figure beside its goal. It asserts no speed: speed
is what the benchmark itself reports.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import __main__ as bench_main
from bench.diagnosis import findings
from bench.page import cdn_compressed
from bench.report import Figure, Goal, Section, render_markdown

TINY = bench_main.Sizes(
    cold_runs=1,
    serve_sizes=(6,),
    serve_repeats=2,
    serve_calls_items=6,
    serve_html_items=6,
    lighthouse_runs=0,
    page_items=0,
    ingest_posts=150,
    ingest_mirror_posts=2,
)


@pytest.fixture
def restored_environment() -> Iterator[None]:
    """GIVEN the harness may point the process at its fake AWS: restore the environment after."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def test_every_section_but_lighthouse_runs_and_reports_its_figures(
    restored_environment: None, tmp_path: Path
) -> None:
    """GIVEN tiny sizes WHEN the cold, serve and ingest sections run
    THEN none fails, the exact counts are the product's, and the report shows them."""
    sections = bench_main.run_sections(["cold", "serve", "ingest"], TINY)

    assert [section.skipped for section in sections] == [None, None, None]
    figures = {figure.name: figure for section in sections for figure in section.figures}
    assert all(
        figure.value is not None for figure in figures.values() if figure.goal is not None
    ), [name for name, figure in figures.items() if figure.value is None]
    # Exact counts, independent of the machine: 150 posts at limit=100 are 2 pages.
    assert figures["Backfill of 150 posts: Graph calls (limit=100)"].value == 2
    assert figures["Backfill of 150 posts: media items written"].value == 150
    assert figures["Backfill re-run: media items written"].value == 0
    assert figures["AWS calls, warm repeat"].value == 0
    naive = figures["Naive client (a call per carousel child): Graph calls"].value
    assert naive is not None
    assert naive > 2
    report = tmp_path / "BENCHMARKS.md"
    report.write_text(
        render_markdown(
            sections,
            command="python -m bench",
            preamble=["smoke"],
            findings=findings(sections),
            elapsed_seconds=1.0,
        )
    )
    text = report.read_text()
    assert "| Ingest | Backfill re-run: media items written | 0 | = 0 | ✅ met |" in text
    assert "## Cold start" in text
    assert "**Method.**" in text


def test_a_missed_goal_is_listed_among_the_findings() -> None:
    """GIVEN one figure over its goal and one within WHEN findings are written
    THEN only the missed one is listed, with its value and goal."""
    section = Section("serve", "Serve")
    section.figures += [
        Figure("Handler time p50, 500 items", 42.0, "ms", Goal("<=", 10), "detail"),
        Figure("AWS calls, warm repeat", 0, "", Goal("==", 0)),
    ]

    notes = findings([section])

    assert len(notes) == 1
    assert "Handler time p50, 500 items" in notes[0]
    assert "42 ms" in notes[0]
    assert "≤ 10 ms" in notes[0]


def test_the_cdn_stand_in_compresses_html_only_when_the_browser_accepts_gzip() -> None:
    """GIVEN a handler answering a 5 kB page WHEN the CDN stand-in wraps it
    THEN a gzip-accepting request gets a gzip body and one without gets the page as is."""
    page = "<!doctype html>" + "<p>photo</p>" * 400

    def handler(event: dict[str, object], context: object) -> dict[str, object]:
        return {"statusCode": 200, "headers": {"Content-Type": "text/html"}, "body": page}

    wrapped = cdn_compressed(handler)
    compressed = wrapped({"headers": {"accept-encoding": "gzip, br"}}, None)
    plain = wrapped({"headers": {}}, None)

    assert compressed["isBase64Encoded"] is True
    assert compressed["headers"]["Content-Encoding"] == "gzip"
    assert plain["body"] == page
