"""The old application's own queries, run through the compatibility views and against the
legacy tables kept as backup: a drop-in replacement answers every one of them identically.

Rows written after the migration (the bundle's change record names their keys) are in the views
but not in the backup. Each side then reads, under the relation's own name, a common table
expression that leaves those keys out (`WITH <view> AS (SELECT * FROM public.<view> WHERE
<key unchanged>) <the query>`), so the query still compares exactly the rows the migration
wrote, and draws its parameters among them."""

from __future__ import annotations

import re
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from eventgate.bundle import ChangeLog, TableMapping
from eventgate.checks import changes as change_record
from eventgate.checks.key_ranges import Readers, in_sessions
from eventgate.checks.result import CheckResult
from eventgate.errors import BundleError

CHECK = "legacy query"


@dataclass(frozen=True)
class LegacyQuery:
    id: str
    sql: str
    ordered: bool = False
    params: dict[str, str] = field(default_factory=dict)
    needs: str = ""  # what the data must hold for the query to prove anything


def load_queries(path: Path) -> list[LegacyQuery]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        return [LegacyQuery(q["id"], q["sql"], bool(q.get("ordered", False)),
                            dict(q.get("params", {})), str(q.get("needs", "")))
                for q in data["queries"]]
    except (OSError, tomllib.TOMLDecodeError, KeyError) as exc:
        raise BundleError(f"cannot read legacy queries from {path}: {exc}") from exc


def against_backups(text: str, mappings: list[TableMapping]) -> str:
    """The same query over the legacy tables kept as backup instead of the views."""
    renames = {m.view: m.backup for m in mappings if m.view and m.backup}
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, renames)) + r")\b")
    return pattern.sub(lambda m: renames[m.group(1)], text)


def _rows(conn: psycopg.Connection, text: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in conn.execute(text.encode(), params).fetchall()]


def _needs(query: LegacyQuery) -> str:
    return f"; it needs {query.needs}" if query.needs else ""


def _leaving_out_changes(text: str, relations: list[tuple[str, sql.Composable]],
                         conn: psycopg.Connection) -> str:
    """`text` with each (name, predicate) shadowed by a CTE over the rows the predicate keeps."""
    if not relations:
        return text
    ctes = ", ".join(sql.SQL("{name} AS (SELECT * FROM {table} r WHERE {keep})").format(
        name=sql.Identifier(name), table=sql.Identifier("public", name), keep=keep
    ).as_string(conn) for name, keep in relations)
    head = re.match(r"\s*WITH(\s+RECURSIVE)?\s", text, re.IGNORECASE)
    if head is None:
        return f"WITH {ctes} {text}"
    return f"WITH{head.group(1) or ''} {ctes}, {text[head.end():]}"


def _shadows(conn: psycopg.Connection, mappings: list[TableMapping],
             log: ChangeLog | None) -> tuple[list[tuple[str, sql.Composable]],
                                             list[tuple[str, sql.Composable]], dict[str, int]]:
    """For the views whose rows changed since the migration: the views side's and the backup
    side's shadowing CTEs, and the changes by origin over all of them."""
    views: list[tuple[str, sql.Composable]] = []
    backups: list[tuple[str, sql.Composable]] = []
    counted: Counter[str] = Counter()
    if not change_record.record_exists(conn, log):
        return views, backups, {}
    for m in mappings:
        if not (m.view and m.backup):
            continue
        # The counts only: whether the record can be trusted is the parity gates' finding.
        by_origin = change_record.changed_since_migration(conn, log, m.target)
        if not by_origin:
            continue
        counted.update(by_origin)
        keep = change_record.unchanged(log, m.target,
                                       sql.SQL("r.{}").format(sql.Identifier(m.key)))
        views.append((m.view, keep))
        backups.append((m.backup, keep))
    return views, backups, dict(counted)


def same_results(conn: psycopg.Connection, query: LegacyQuery,
                 mappings: list[TableMapping], log: ChangeLog | None = None,
                 readers: Readers | None = None) -> CheckResult:
    """The query's answer through the views against the legacy tables' answer; with the
    bundle's change record `log`, rows written since the migration are left out of both.
    With `readers` (and no transaction of the caller's open), the two sides run at once in two
    reader sessions sharing one snapshot, the record's included."""
    if readers is None or readers.count < 2 or (
            conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE):
        return _same_results(conn, query, mappings, log, None)
    with change_record.one_snapshot(conn):
        # The parameters are drawn in this transaction: with the readers' memory, a draw grouped
        # over every guest hashes in memory instead of spilling (10M guests: 4.2 s to 2.8 s).
        conn.execute(sql.SQL("SET LOCAL work_mem = {}").format(sql.Literal(readers.work_mem)))
        return _same_results(conn, query, mappings, log, readers)


def _same_results(conn: psycopg.Connection, query: LegacyQuery, mappings: list[TableMapping],
                  log: ChangeLog | None, readers: Readers | None) -> CheckResult:
    views_side, backup_side, changed = _shadows(conn, mappings, log)
    params = {}
    for name, param_sql in query.params.items():
        drawn = _leaving_out_changes(against_backups(param_sql, mappings), backup_side, conn)
        row = conn.execute(drawn.encode()).fetchone()
        if row is None or row[0] is None:
            return CheckResult.unproven(
                CHECK, query.id, f"parameter {name!r} drew no value from this database"
                f"{_needs(query)} (drawn with: {' '.join(drawn.split())})", sql=drawn)
        params[name] = row[0]
    result = _compare(conn, query, params,
                      _leaving_out_changes(against_backups(query.sql, mappings), backup_side,
                                           conn),
                      _leaving_out_changes(query.sql, views_side, conn), readers)
    if not changed:
        return result
    clause = ("rows changed since the migration left out of both sides: "
              + ", ".join(f"{n} by {change_record.ORIGINS.get(o, repr(o))}"
                          for o, n in sorted(changed.items())))
    return CheckResult(result.check, result.subject, result.passed,
                       f"{result.summary}; {clause}", result.details, result.sql,
                       {**result.data, "changed_since_migration": changed}, result.proven)


def _compare(conn: psycopg.Connection, query: LegacyQuery, params: dict[str, Any],
             legacy_sql: str, views_sql: str, readers: Readers | None) -> CheckResult:
    if readers is None:
        before, after = _rows(conn, legacy_sql, params), _rows(conn, views_sql, params)
    else:
        # An old report over every wedding reads all ten million invitations on each side.
        before, after = in_sessions(conn, readers, [
            lambda session: _rows(session, legacy_sql, params),
            lambda session: _rows(session, views_sql, params)])
    subject = f"{query.id} {params}" if params else query.id
    reproduce = f"{' '.join(views_sql.split())};  -- vs  {' '.join(legacy_sql.split())};"
    if not before and not after:
        return CheckResult.unproven(CHECK, subject, "returned no rows on either side, so it "
                                    f"proves nothing on this database{_needs(query)}",
                                    sql=reproduce)
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
