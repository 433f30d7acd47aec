"""One look at a running engine: its /health and its /metrics (Prometheus text, read with
prometheus_client's own parser), reduced to what the watch judges."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from eventgate.engine.observability import (
    DATABASE_UP,
    PLUGINS,
    POOL_CONNECTIONS,
    PROCESS_START,
    REQUEST_DURATION,
)

# The watch's own requests: they are not the users' traffic, so no rate counts them.
PROBE_ROUTES = frozenset({"/health", "/metrics"})


@dataclass(frozen=True)
class Sample:
    """What one scrape saw. `requests` and `buckets` are cumulative counters over the users'
    routes (PROBE_ROUTES left out); a gauge the engine did not export is absent."""

    at: datetime
    reachable: bool
    problem: str = ""
    health_status: int | None = None
    health: dict[str, Any] = field(default_factory=dict)
    requests: float = 0.0
    errors: float = 0.0  # answered 5xx
    # upper bound (seconds, +Inf as math.inf) -> requests at or under it
    buckets: dict[float, float] = field(default_factory=dict)
    gauges: dict[str, float] = field(default_factory=dict)
    # route -> requests answered 5xx on it, to name where errors come from
    errors_by_route: dict[str, float] = field(default_factory=dict)


def take(client: httpx.Client, base_url: str) -> Sample:
    """Scrape `base_url` once; an engine that does not answer is a Sample that says why."""
    now = datetime.now(UTC)
    try:
        health = client.get(f"{base_url}/health")
        metrics = client.get(f"{base_url}/metrics")
    except httpx.HTTPError as exc:
        return Sample(now, False, problem=f"{type(exc).__name__}: {exc}".strip())
    if metrics.status_code != 200:
        return Sample(now, False, problem=f"GET /metrics answered {metrics.status_code}")
    try:
        body = health.json()
    except ValueError:
        body = {}
    try:
        return _reduce(now, health.status_code, body if isinstance(body, dict) else {},
                       metrics.text)
    except ValueError as exc:
        return Sample(now, False, problem=f"GET /metrics is not Prometheus text: {exc}")


def _reduce(now: datetime, status: int, health: dict[str, Any], text: str) -> Sample:
    requests = errors = 0.0
    buckets: dict[float, float] = {}
    by_route: dict[str, float] = {}
    gauges: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if family.name == REQUEST_DURATION:
                if labels.get("route") in PROBE_ROUTES:
                    continue
                if sample.name.endswith("_bucket"):
                    bound = float(labels["le"])
                    buckets[bound] = buckets.get(bound, 0.0) + sample.value
                elif sample.name.endswith("_count"):
                    requests += sample.value
                    if labels.get("status", "").startswith("5"):
                        errors += sample.value
                        route = labels.get("route", "?")
                        by_route[route] = by_route.get(route, 0.0) + sample.value
            elif family.name == DATABASE_UP:
                gauges["database_up"] = sample.value
            elif family.name in (POOL_CONNECTIONS, PLUGINS):
                prefix = "pool" if family.name == POOL_CONNECTIONS else "plugins"
                gauges[f"{prefix}_{labels.get('state', '')}"] = sample.value
            elif sample.name == PROCESS_START:
                gauges["started_at"] = sample.value
    return Sample(now, True, health_status=status, health=health, requests=requests,
                  errors=errors, buckets=buckets, gauges=gauges, errors_by_route=by_route)


def quantile(q: float, buckets: dict[float, float]) -> float | None:
    """The q-quantile of a histogram's bucket counts, interpolated inside the bucket that holds
    it as Prometheus' histogram_quantile does; None with no observation. Past the last finite
    bound the answer is that bound (nothing finer is known)."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = q * buckets[bounds[-1]]
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower
            inside = count - below
            return bound if inside <= 0 else lower + (bound - lower) * (rank - below) / inside
        lower, below = bound, count
    return lower
