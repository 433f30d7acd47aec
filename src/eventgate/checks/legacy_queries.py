"""The old application's own queries, run through the compatibility views and against the
legacy tables kept as backup: a drop-in replacement answers every one of them identically."""

from __future__ import annotations

import re
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from eventgate.bundle import TableMapping
from eventgate.checks.result import CheckResult
from eventgate.errors import BundleError

CHECK = "legacy query"


@dataclass(frozen=True)
class LegacyQuery:
    id: str
    sql: str
    ordered: bool = False
    params: dict[str, str] = field(default_factory=dict)


def load_queries(path: Path) -> list[LegacyQuery]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        return [LegacyQuery(q["id"], q["sql"], bool(q.get("ordered", False)),
                            dict(q.get("params", {}))) for q in data["queries"]]
    except (OSError, tomllib.TOMLDecodeError, KeyError) as exc:
        raise BundleError(f"cannot read legacy queries from {path}: {exc}") from exc


def against_backups(text: str, mappings: list[TableMapping]) -> str:
    """The same query over the legacy tables kept as backup instead of the views."""
    renames = {m.view: m.backup for m in mappings if m.view and m.backup}
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, renames)) + r")\b")
    return pattern.sub(lambda m: renames[m.group(1)], text)


def _rows(conn: psycopg.Connection, text: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in conn.execute(text.encode(), params).fetchall()]


def same_results(conn: psycopg.Connection, query: LegacyQuery,
                 mappings: list[TableMapping]) -> CheckResult:
    params = {}
    for name, param_sql in query.params.items():
        row = conn.execute(against_backups(param_sql, mappings).encode()).fetchone()
        params[name] = row[0] if row else None
    legacy_sql = against_backups(query.sql, mappings)
    before = _rows(conn, legacy_sql, params)
    after = _rows(conn, query.sql, params)
    subject = f"{query.id} {params}" if params else query.id
    reproduce = f"{' '.join(query.sql.split())};  -- vs  {' '.join(legacy_sql.split())};"
    if not before and not after:
        return CheckResult(CHECK, subject, False, "returned no rows on either side, so it "
                           "proves nothing; change its parameters", sql=reproduce)
    if query.ordered:
        if before == after:
            return CheckResult(CHECK, subject, True, f"{len(after)} rows, same order",
                               sql=reproduce)
        first = next((i for i, (a, b) in enumerate(zip(before, after, strict=False)) if a != b),
                     min(len(before), len(after)))
        return CheckResult(CHECK, subject, False,
                           f"{len(before)} rows from the legacy tables, {len(after)} through the "
                           f"views; first difference at row {first + 1}",
                           (f"legacy: {before[first] if first < len(before) else '(none)'}",
                            f"views:  {after[first] if first < len(after) else '(none)'}"),
                           reproduce)
    lost = Counter(map(repr, before)) - Counter(map(repr, after))
    added = Counter(map(repr, after)) - Counter(map(repr, before))
    if not lost and not added:
        return CheckResult(CHECK, subject, True, f"{len(after)} rows, same bag", sql=reproduce)
    details = tuple(f"only from the legacy tables: {r}" for r in list(lost)[:3])
    details += tuple(f"only through the views: {r}" for r in list(added)[:3])
    return CheckResult(CHECK, subject, False,
                       f"{sum(lost.values())} rows only from the legacy tables, "
                       f"{sum(added.values())} only through the views", details, reproduce)
