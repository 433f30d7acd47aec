"""The `eventgate watch` verb: the guide's "monitor for 5 minutes" after the switch, with live
progress, the watch's verdict files and a notification when green regresses."""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

from rich.markup import escape

from eventgate.cli.common import notifier, warn
from eventgate.cli.console import console
from eventgate.errors import ConfigError
from eventgate.migrate.notify import notifying
from eventgate.watch import reports
from eventgate.watch.checklist import Item
from eventgate.watch.run import PASS, REGRESSION, Seen, watch
from eventgate.watch.thresholds import Thresholds, from_file, overridden

FLAGS = {"max_error_rate": "share of 5xx, e.g. 0.01", "max_p95_ms": "milliseconds",
         "max_pool_waiting": "requests", "min_plugins_active": "plugins",
         "max_restarts": "restarts", "min_requests": "requests per judged interval"}


def configure_watch(p: argparse.ArgumentParser) -> None:
    p.add_argument("--base-url", help="green's engine [env EVENTGATE_BASE_URL]")
    p.add_argument("--duration", type=_seconds, default="5m",
                   help="how long to watch: seconds, or 30s / 5m (default 5m, the guide's)")
    p.add_argument("--interval", type=_seconds, default="10s",
                   help="time between samples (default 10s)")
    p.add_argument("--thresholds", type=Path, metavar="FILE",
                   help="TOML with a [thresholds] table (keys as the flags below, with _)")
    for name, unit in FLAGS.items():
        p.add_argument(f"--{name.replace('_', '-')}", type=float, dest=name,
                       help=f"threshold ({unit}; default {getattr(Thresholds(), name):g})")
    p.add_argument("--reports", default="reports",
                   help="reports directory (default reports): watch-verdict.json, "
                   "watch-junit.xml, allure-results/")


def _seconds(text: str) -> float:
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min)?\s*", text)
    if not found:
        raise argparse.ArgumentTypeError(f"{text!r} is not a time (e.g. 300, 30s, 5m)")
    value, unit = float(found[1]), found[2] or "s"
    seconds = value * {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0}[unit]
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be more than zero")
    return seconds


def cmd_watch(args: argparse.Namespace) -> int:
    """Watch green after the switch (the guide's "monitor for 5 minutes"): sample its /health
    and /metrics every --interval for --duration, judge the 5xx rate and p95 from the counters'
    deltas, database up, plugins and the pool against the thresholds, and stop at the first
    regression; exit 0 pass, 1 regression, 3 unreachable."""
    base_url = args.base_url or os.environ.get("EVENTGATE_BASE_URL")
    if not base_url:
        raise ConfigError("no engine to watch: give --base-url or set EVENTGATE_BASE_URL")
    thresholds = Thresholds()
    if args.thresholds:
        thresholds = from_file(args.thresholds, thresholds)
    thresholds = overridden(thresholds, {n: getattr(args, n) for n in FLAGS}, source="flags")
    if args.interval > args.duration:
        raise ConfigError(f"--interval ({args.interval:g} s) is longer than --duration "
                          f"({args.duration:g} s)")
    console.print(f"watching {escape(base_url)} for {args.duration:g} s, every "
                  f"{args.interval:g} s: {escape(thresholds.describe())}", soft_wrap=True)
    announce = notifier()
    with notifying(announce, None, warn):
        if announce is not None:
            announce.started("watch", base_url)
        report = watch(base_url, duration_s=args.duration, interval_s=args.interval,
                       thresholds=thresholds, on_sample=_progress)
        written = reports.write(report, Path(args.reports))
        if announce is not None:
            if report.outcome == PASS:
                announce.succeeded(f"watch of {base_url}: {report.summary()}")
            else:
                announce.failed(report.summary())
    _print(report.outcome, report.summary(), report.checklist, written)
    return report.exit_code


def _progress(seen: Seen) -> None:
    if not seen.reachable:
        console.print(f"  [red]{seen.offset_s:6.1f} s[/] no answer: {escape(seen.problem)}",
                      soft_wrap=True)
        return
    p95 = "-" if seen.p95_ms is None else f"{seen.p95_ms:.0f} ms"
    pool = "-" if seen.pool_in_use is None else f"{seen.pool_in_use:g} in use"
    console.print(f"  {seen.offset_s:6.1f} s  requests {seen.requests:g}  5xx "
                  f"{seen.errors:g}  p95 {p95}  db {'up' if seen.database_up else 'DOWN'}  "
                  f"plugins {seen.plugins_active or 0:g}  pool {pool}", soft_wrap=True)


def _print(outcome: str, summary: str, checklist: list[Item], written: list[Path]) -> None:
    colour = {PASS: "green", REGRESSION: "red"}.get(outcome, "yellow")
    console.print("post-deployment checklist (immediate):")
    for item in checklist:
        mark = {"checked": "✓", "failed": "✗"}.get(item.state, "·")
        console.print(f"  {mark} {escape(item.text)}: {item.state}", soft_wrap=True)
    console.print(f"[{colour}]watch: {escape(summary)}[/]", soft_wrap=True)
    console.print(f"reports: {', '.join(str(p) for p in written)}", soft_wrap=True)
