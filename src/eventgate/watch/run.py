"""The watch: green sampled every interval for a window, judged as it goes, stopped at the first
regression so that a switch back happens within one interval of the breach."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from eventgate import http_client
from eventgate.watch.checklist import Item, answer
from eventgate.watch.judging import Breach, Judge
from eventgate.watch.scrape import Sample, quantile, take
from eventgate.watch.thresholds import Thresholds

PASS, REGRESSION, UNREACHABLE = "pass", "regression", "unreachable"
EXIT_CODES = {PASS: 0, REGRESSION: 1, UNREACHABLE: 3}


@dataclass(frozen=True)
class Seen:
    """One sample as the progress line and the verdict show it."""

    sample: int
    at: datetime
    offset_s: float
    reachable: bool
    requests: float  # the users' requests since the watch began
    errors: float
    p95_ms: float | None  # of the requests since the previous sample
    database_up: float | None
    plugins_active: float | None
    pool_in_use: float | None
    pool_waiting: float | None
    problem: str = ""


@dataclass
class WatchReport:
    base_url: str
    thresholds: Thresholds
    duration_s: float
    interval_s: float
    started: datetime
    ended: datetime | None = None
    outcome: str = PASS
    seen: list[Seen] = field(default_factory=list)
    breaches: list[Breach] = field(default_factory=list)
    unreachable: str = ""
    restarts: list[datetime] = field(default_factory=list)
    judged_requests: float = 0.0
    worst_error_rate: float | None = None
    worst_p95_ms: float | None = None
    checklist: list[Item] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.outcome]

    def summary(self) -> str:
        if self.outcome == REGRESSION:
            return "regression: " + "; ".join(b.line() for b in self.breaches)
        if self.outcome == UNREACHABLE:
            return f"unreachable: {self.unreachable}"
        return (f"pass: {len(self.seen)} samples, {self.judged_requests:g} users' requests "
                f"judged, worst 5xx {_rate(self.worst_error_rate)}, worst p95 "
                f"{_ms(self.worst_p95_ms)}")

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["exit_code"] = self.exit_code
        data["summary"] = self.summary()
        return data


def watch(base_url: str, *, duration_s: float, interval_s: float, thresholds: Thresholds,
          on_sample: Callable[[Seen], None] | None = None) -> WatchReport:
    """Sample `base_url` at 0, interval, 2 intervals, ... up to `duration_s`."""
    base_url = base_url.rstrip("/")
    report = WatchReport(base_url, thresholds, duration_s, interval_s, datetime.now(UTC))
    judge, first, previous = Judge(thresholds), None, None
    misses = 0
    begin = time.monotonic()
    timeout = httpx.Timeout(max(1.0, min(interval_s, 10.0)))
    with http_client.client(timeout=timeout) as client:
        n = 0
        while True:
            sample = take(client, base_url)
            n += 1
            if sample.reachable:
                first = first or sample
                misses = 0
                report.breaches = judge.observe(sample)
            else:
                misses += 1
            seen = _seen(n, begin, sample, first, previous)
            report.seen.append(seen)
            if on_sample is not None:
                on_sample(seen)
            if report.breaches:
                report.outcome = REGRESSION
                break
            if misses >= thresholds.unreachable_samples:
                report.outcome, report.unreachable = UNREACHABLE, (
                    f"{base_url} did not answer {misses} samples in a row: {sample.problem}")
                break
            previous = sample if sample.reachable else previous
            due = begin + n * interval_s
            if due - begin > duration_s + 1e-9:
                break
            time.sleep(max(0.0, due - time.monotonic()))
    report.ended = datetime.now(UTC)
    report.restarts = judge.restarts
    report.judged_requests = judge.judged_requests
    report.worst_error_rate, report.worst_p95_ms = judge.worst_error_rate, judge.worst_p95_ms
    report.checklist = answer(report.breaches, judge.samples, judge.judged_requests,
                              stopped_early=report.outcome != PASS)
    return report


def _seen(n: int, begin: float, s: Sample, first: Sample | None,
          previous: Sample | None) -> Seen:
    offset = round(time.monotonic() - begin, 3)
    if not s.reachable or first is None:
        return Seen(n, s.at, offset, False, 0, 0, None, None, None, None, None, s.problem)
    p95 = None
    if previous is not None:
        delta = {b: c - previous.buckets.get(b, 0.0) for b, c in s.buckets.items()}
        q = quantile(0.95, delta) if all(v >= 0 for v in delta.values()) else None
        p95 = None if q is None else round(q * 1000, 1)
    g = s.gauges
    in_use = (g["pool_open"] - g["pool_idle"]) if {"pool_open", "pool_idle"} <= set(g) else None
    return Seen(n, s.at, offset, True, max(0.0, s.requests - first.requests),
                max(0.0, s.errors - first.errors), p95, g.get("database_up"),
                g.get("plugins_active"), in_use, g.get("pool_waiting_requests"))


def _rate(value: float | None) -> str:
    return "not judged" if value is None else f"{value:.1%}"


def _ms(value: float | None) -> str:
    return "not judged" if value is None else f"{value:.0f} ms"
