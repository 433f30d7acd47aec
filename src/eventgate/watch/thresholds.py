"""What the watch holds green to after the switch: defaults, overridden by a TOML file, overridden
by flags. deploy/monitoring/alerts.yml fires on the same figures."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from eventgate.errors import ConfigError
from eventgate.settings_file import read_settings


@dataclass(frozen=True)
class Thresholds:
    # Share of the users' requests answered 5xx, judged once an interval holds min_requests.
    max_error_rate: float = 0.01
    # p95 of the users' requests from the engine's latency histogram, same intervals, over the
    # limit on this many judged intervals in a row: the first requests a cold engine answers
    # after the switch are slow (pool, caches; 850 ms measured here under load), an error is
    # not, so the 5xx rate needs one interval and latency two.
    max_p95_ms: float = 500.0
    p95_intervals: int = 2
    # Requests waiting for a database connection (the pool ran dry), on this many samples in a
    # row: one wait in a scrape is a burst, two are a pool too small for the traffic.
    max_pool_waiting: float = 0
    pool_waiting_samples: int = 2
    # Plugins active; fewer, or any plugin failed to load, is a regression.
    min_plugins_active: float = 1
    # Restarts seen (the process' start time changed, or a counter went back).
    max_restarts: int = 0
    # Fewer requests than this in an interval say too little for a rate: they are carried into
    # the next interval until there are enough.
    min_requests: int = 20
    # Scrapes in a row that get no answer before the watch stops as unreachable.
    unreachable_samples: int = 2

    def describe(self) -> str:
        return (f"5xx ≤ {self.max_error_rate:.1%}, p95 ≤ {self.max_p95_ms:g} ms, pool waiting "
                f"≤ {self.max_pool_waiting:g} ({self.pool_waiting_samples} samples), plugins ≥ "
                f"{self.min_plugins_active:g}, restarts ≤ {self.max_restarts}, database up")


NAMES = tuple(f.name for f in fields(Thresholds))


def from_file(path: Path, base: Thresholds = Thresholds()) -> Thresholds:
    """`base` with what the file's [thresholds] table sets; an unknown key or a value that is
    not a number is refused, naming it."""
    data = read_settings(path, "the thresholds file")
    table = data.get("thresholds", data)
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [thresholds] must be a table")
    return overridden(base, table, source=str(path))


def overridden(base: Thresholds, values: dict[str, Any], *, source: str) -> Thresholds:
    unknown = sorted(set(values) - set(NAMES))
    if unknown:
        raise ConfigError(f"{source}: unknown threshold {', '.join(unknown)}; known: "
                          f"{', '.join(NAMES)}")
    checked: dict[str, Any] = {}
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ConfigError(f"{source}: threshold {name} must be a number ≥ 0, not {value!r}")
        kind = type(getattr(base, name))
        checked[name] = kind(value)
    return replace(base, **checked)
