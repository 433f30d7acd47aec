"""Samples in, regressions out. Rates come from the counters' deltas between samples, never from
their totals since the engine started, and a counter that went back (the engine restarted) is
a restart, not a negative rate."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from eventgate.watch.scrape import Sample, quantile
from eventgate.watch.thresholds import Thresholds


@dataclass(frozen=True)
class Breach:
    """A threshold green crossed: which, the value seen against the limit, and when."""

    threshold: str
    value: str
    limit: str
    at: datetime
    sample: int  # the sample that saw it, from 1
    why: str

    def line(self) -> str:
        return (f"{self.threshold}: {self.value} (limit {self.limit}) at "
                f"{self.at:%H:%M:%S} UTC, sample {self.sample}: {self.why}")


@dataclass
class Interval:
    """Users' requests counted since the last judged point."""

    requests: float = 0.0
    errors: float = 0.0
    buckets: dict[float, float] = field(default_factory=dict)
    errors_by_route: dict[str, float] = field(default_factory=dict)

    def add(self, before: Sample, after: Sample) -> None:
        self.requests += after.requests - before.requests
        self.errors += after.errors - before.errors
        for bound, count in after.buckets.items():
            self.buckets[bound] = (self.buckets.get(bound, 0.0) + count
                                   - before.buckets.get(bound, 0.0))
        for route, count in after.errors_by_route.items():
            grown = count - before.errors_by_route.get(route, 0.0)
            if grown > 0:
                self.errors_by_route[route] = self.errors_by_route.get(route, 0.0) + grown


@dataclass
class Judge:
    thresholds: Thresholds
    samples: int = 0
    restarts: list[datetime] = field(default_factory=list)
    judged_requests: float = 0.0
    worst_error_rate: float | None = None
    worst_p95_ms: float | None = None
    _previous: Sample | None = None
    _pending: Interval = field(default_factory=Interval)
    _waiting_run: int = 0
    _slow_run: list[float] = field(default_factory=list)  # p95 of each slow interval in a row

    def observe(self, sample: Sample) -> list[Breach]:
        """Judge one reachable sample against the one before it."""
        self.samples += 1
        breaches = self._gauges(sample)
        previous, self._previous = self._previous, sample
        if previous is None:
            return breaches
        if _restarted(previous, sample):
            # The counters began again from zero: what happened between the two samples is
            # unknown, and the new totals are this interval's own.
            self.restarts.append(sample.at)
            self._pending = Interval()
            self._pending.add(Sample(sample.at, True), sample)
            if len(self.restarts) > self.thresholds.max_restarts:
                breaches.append(self._breach(
                    "restarts", str(len(self.restarts)), str(self.thresholds.max_restarts),
                    sample, "the engine restarted (its start time changed or a counter went "
                    "back): it crashed or was restarted during the watch"))
            return breaches
        self._pending.add(previous, sample)
        if self._pending.requests >= self.thresholds.min_requests:
            breaches += self._rates(sample)
            self.judged_requests += self._pending.requests
            self._pending = Interval()
        return breaches

    def _gauges(self, s: Sample) -> list[Breach]:
        t, found = self.thresholds, []
        if s.gauges.get("database_up", 1) < 1:
            found.append(self._breach("database up", "0", "1", s,
                                      "the engine cannot reach its database"))
        if s.health_status is not None and s.health_status != 200:
            failing = ", ".join(s.health.get("failing", [])) or "?"
            found.append(self._breach("health", str(s.health_status), "200", s,
                                      f"/health says unhealthy (failing: {failing})"))
        active = s.gauges.get("plugins_active")
        if active is not None and active < t.min_plugins_active:
            found.append(self._breach("plugins active", f"{active:g}",
                                      f"≥ {t.min_plugins_active:g}", s, "plugins stopped"))
        if s.gauges.get("plugins_failed", 0) > 0:
            found.append(self._breach("plugins failed", f"{s.gauges['plugins_failed']:g}", "0",
                                      s, "a plugin failed to load"))
        waiting = s.gauges.get("pool_waiting_requests", 0)
        self._waiting_run = self._waiting_run + 1 if waiting > t.max_pool_waiting else 0
        if self._waiting_run >= t.pool_waiting_samples:
            in_use = s.gauges.get("pool_open", 0) - s.gauges.get("pool_idle", 0)
            found.append(self._breach(
                "pool waiting", f"{waiting:g} requests", f"≤ {t.max_pool_waiting:g}", s,
                f"the connection pool ran dry on {self._waiting_run} samples in a row "
                f"({in_use:g} of {s.gauges.get('pool_max', 0):g} connections in use)"))
        return found

    def _rates(self, s: Sample) -> list[Breach]:
        t, window, found = self.thresholds, self._pending, []
        rate = window.errors / window.requests
        self.worst_error_rate = max(rate, self.worst_error_rate or 0.0)
        if rate > t.max_error_rate:
            routes = ", ".join(f"{r} {n:g}" for r, n in sorted(
                window.errors_by_route.items(), key=lambda kv: -kv[1])[:3])
            found.append(self._breach(
                "5xx rate", f"{rate:.1%}", f"{t.max_error_rate:.1%}", s,
                f"{window.errors:g} of {window.requests:g} requests since the last judged "
                f"sample answered 5xx ({routes})"))
        p95 = quantile(0.95, window.buckets)
        if p95 is not None:
            p95_ms = p95 * 1000
            self.worst_p95_ms = max(p95_ms, self.worst_p95_ms or 0.0)
            self._slow_run = [*self._slow_run, p95_ms] if p95_ms > t.max_p95_ms else []
            needed = max(1, t.p95_intervals)
            if len(self._slow_run) >= needed:
                seen = ", ".join(f"{v:.0f}" for v in self._slow_run[-needed:])
                found.append(self._breach(
                    "p95 latency", f"{p95_ms:.0f} ms", f"{t.max_p95_ms:g} ms", s,
                    f"over the limit on {len(self._slow_run)} judged intervals in a row "
                    f"({seen} ms), the last over {window.requests:g} requests"))
        return found

    def _breach(self, threshold: str, value: str, limit: str, s: Sample, why: str) -> Breach:
        return Breach(threshold, value, limit, s.at, self.samples, why)


def _restarted(before: Sample, after: Sample) -> bool:
    started = before.gauges.get("started_at"), after.gauges.get("started_at")
    if None not in started and started[0] != started[1]:
        return True
    return after.requests < before.requests or any(
        after.buckets.get(bound, 0.0) < count for bound, count in before.buckets.items())
