"""The deployment guide's post-deployment checklist, "Immediate (0-1 hour)", as the watch answers
it: each item checked (and how), failed (by which threshold), not proven, or not checkable from
outside the engine."""

from __future__ import annotations

from dataclasses import dataclass

from eventgate.watch.judging import Breach

CHECKED, FAILED, NOT_PROVEN, NOT_CHECKABLE = "checked", "failed", "not proven", "not checkable"


@dataclass(frozen=True)
class Item:
    text: str  # the guide's words
    state: str
    how: str


@dataclass(frozen=True)
class _Rule:
    text: str
    thresholds: tuple[str, ...]  # the Breach.threshold names that fail it
    how: str
    needs_traffic: bool = False


RULES = (
    _Rule("All services are running and healthy", ("health", "restarts"),
          "GET /health answered 200 on every sample and the engine never restarted"),
    _Rule("Database connections are stable", ("database up", "pool waiting"),
          "eventgate_engine_database_up was 1 on every sample and no request waited for a "
          "pool connection on consecutive samples"),
    _Rule("API endpoints respond correctly", ("5xx rate",),
          "the share of the users' requests answered 5xx stayed within the threshold on every "
          "judged interval (from the request counters' deltas)", needs_traffic=True),
    _Rule("Plugin system loads successfully", ("plugins active", "plugins failed"),
          "eventgate_engine_plugins: active at or above the threshold, none failed"),
    _Rule("Performance metrics are within acceptable ranges", ("p95 latency",),
          "p95 of the users' requests, from the latency histogram's bucket deltas, stayed "
          "within the threshold", needs_traffic=True),
)

LOGS = Item("No critical errors in logs", NOT_CHECKABLE,
            "the watch reads /health and /metrics over HTTP, not the engine's logs: read them "
            "where they are shipped (e.g. docker-compose logs app-green)")


def answer(breaches: list[Breach], samples: int, judged_requests: float,
           stopped_early: bool) -> list[Item]:
    """The checklist after a watch that took `samples` samples and judged rates over
    `judged_requests` users' requests."""
    items = []
    for rule in RULES:
        mine = [b for b in breaches if b.threshold in rule.thresholds]
        if mine:
            items.append(Item(rule.text, FAILED, "; ".join(b.line() for b in mine)))
        elif samples == 0:
            items.append(Item(rule.text, NOT_PROVEN, "no sample was taken: the engine did not "
                                                     "answer"))
        elif rule.needs_traffic and judged_requests == 0:
            items.append(Item(rule.text, NOT_PROVEN, "too few users' requests reached green "
                              "during the watch to judge a rate; " + rule.how))
        elif stopped_early:
            items.append(Item(rule.text, NOT_PROVEN, "held until the watch stopped early on "
                              "another item; " + rule.how))
        else:
            items.append(Item(rule.text, CHECKED, f"{rule.how} ({samples} samples)"))
    items.insert(4, LOGS)
    return items
