"""The `eventgate report` verb: options, and the one-line summary of the HTML it wrote."""

from __future__ import annotations

import argparse
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from rich.markup import escape

from eventgate.cli.console import console
from eventgate.reports.html import build_report

DEFAULT_RESULTS = "reports/allure-results"
DEFAULT_OUTPUT = "reports/allure-report/index.html"


def configure_report(p: argparse.ArgumentParser) -> None:
    """The verb's own options; cli/main.py adds --dsn, --bundle and --traceback (unused
    here: the report reads files only)."""
    p.add_argument("--results", default=DEFAULT_RESULTS, metavar="DIR",
                   help="Allure results written by eventgate gate or pytest --alluredir "
                   f"(default {DEFAULT_RESULTS})")
    p.add_argument("--output", default=DEFAULT_OUTPUT, metavar="FILE",
                   help="the HTML file to write; a directory, or a path not ending in .html, "
                   f"gets index.html inside (default {DEFAULT_OUTPUT})")
    p.add_argument("--name", default="eventgate acceptance report",
                   help="the report's title (default: eventgate acceptance report)")
    p.add_argument("--language", default="en",
                   help="the report's interface language, e.g. en, de, fr, es (default en)")


def status(text: str) -> AbstractContextManager[Any]:
    """A spinner on a terminal; in a CI log, where a spinner shows nothing, one plain line."""
    if console.is_terminal:
        return console.status(escape(text))
    console.print(f"{escape(text)} …")
    return nullcontext()


def output_file(value: str) -> Path:
    path = Path(value)
    if path.is_dir() or path.suffix.lower() not in (".html", ".htm"):
        return path / "index.html"
    return path


def cmd_report(args: argparse.Namespace) -> int:
    """Build reports/allure-report/index.html from reports/allure-results: one self-contained
    HTML file (Allure 3, Allure 2-style view, no analytics) that QA opens from disk, offline;
    needs node 20.19 or newer, and npm once to install the pinned Allure into tools/allure."""
    output = output_file(args.output)
    report = build_report(Path(args.results), output, name=args.name, language=args.language,
                          status=status)
    if report.npm_ci_ran:
        console.print("installed the pinned Allure into tools/allure/node_modules (npm ci)")
    console.print(f"[green]report[/]: {escape(report.summary())}; built in "
                  f"{report.duration_s:.1f} s")
    for name in report.tally.unreadable:
        console.print(f"[yellow]warning:[/] unreadable result file skipped: {escape(name)}")
    return 0
