"""expectations.toml's [[budgets]]: named hot queries with a latency budget, the plan they must
have, and the volume up to which the budget is promised."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from eventgate.errors import BundleError


@dataclass(frozen=True)
class HoldsUpTo:
    """The volume past which a budget is not promised: `rows`, as the entry's `of` query counts
    them (it returns one number), with the reason. Past it a query over budget is *not proven*
    rather than failed; within budget it passes at any volume."""

    rows: int
    of: str
    why: str


@dataclass(frozen=True)
class QueryBudget:
    """A named hot query with its latency budget and plan expectations."""

    name: str
    sql: str
    params: dict[str, str] = field(default_factory=dict)
    budget_ms: float = 50.0
    statistic: str = "p95"
    uses_index: tuple[str, ...] = ()
    no_seq_scan: tuple[str, ...] = ()
    why: str = ""
    # "server": the execution time PostgreSQL reports (EXPLAIN ANALYZE), what the deployment
    # guide's performance validation measures; "client": the round trip as the application
    # sees it, send to last row fetched, which also counts the network and the answer's size.
    judged_on: str = "server"
    params_choice: str = ""  # how the parameters are chosen, in words, for the report
    holds_up_to: HoldsUpTo | None = None


BUDGET_KEYS = {"name", "sql", "params", "budget_ms", "statistic", "uses_index", "no_seq_scan",
               "why", "judged_on", "params_choice", "holds_up_to"}
JUDGED_ON = ("server", "client")


def read_budget(spec: dict[str, Any]) -> QueryBudget:
    name = spec.get("name", "<unnamed>")
    unknown = set(spec) - BUDGET_KEYS
    if unknown or "sql" not in spec or "name" not in spec:
        raise BundleError(f"expectations.toml: [[budgets]] {name!r} needs name and sql and "
                          f"takes only {', '.join(sorted(BUDGET_KEYS))}"
                          + (f"; unknown: {', '.join(sorted(unknown))}" if unknown else ""))
    if spec.get("statistic", "p95") not in ("p50", "p95", "p99"):
        raise BundleError(f"expectations.toml: [[budgets]] {name!r}: statistic must be p50, "
                          f"p95 or p99, not {spec['statistic']!r}")
    if spec.get("judged_on", "server") not in JUDGED_ON:
        raise BundleError(f"expectations.toml: [[budgets]] {name!r}: judged_on must be "
                          f"'server' (execution time in PostgreSQL) or 'client' (the round "
                          f"trip), not {spec['judged_on']!r}")
    budget_ms = spec.get("budget_ms", 50)
    if not isinstance(budget_ms, int | float) or not 0 < budget_ms < float("inf"):
        raise BundleError(f"expectations.toml: [[budgets]] {name!r}: budget_ms must be a "
                          f"positive number of milliseconds, not {budget_ms!r}")
    placeholders = set(re.findall(r"%\((\w+)\)s", spec["sql"]))
    params = dict(spec.get("params", {}))
    if placeholders - params.keys():
        raise BundleError(f"expectations.toml: [[budgets]] {name!r} uses "
                          f"{', '.join(sorted(placeholders - params.keys()))} in its sql but "
                          "gives no params for it")
    return QueryBudget(name, spec["sql"], params, float(spec.get("budget_ms", 50)),
                       spec.get("statistic", "p95"), tuple(spec.get("uses_index", ())),
                       tuple(spec.get("no_seq_scan", ())), spec.get("why", ""),
                       spec.get("judged_on", "server"), spec.get("params_choice", ""),
                       _holds_up_to(name, spec.get("holds_up_to")))


def _holds_up_to(name: str, spec: Any) -> HoldsUpTo | None:
    if spec is None:
        return None
    rows = spec.get("rows") if isinstance(spec, dict) else None
    if (not isinstance(spec, dict) or set(spec) != {"rows", "of", "why"}
            or not isinstance(rows, int) or isinstance(rows, bool) or rows <= 0
            or not all(isinstance(spec[k], str) and spec[k].strip() for k in ("of", "why"))):
        raise BundleError(f"expectations.toml: [[budgets]] {name!r}: holds_up_to is "
                          "{ rows = N, of = \"a query returning the volume\", why = \"the "
                          "reason the budget is not promised past it\" }")
    return HoldsUpTo(rows, spec["of"], " ".join(spec["why"].split()))
