"""Row-count parity: every legacy table has as many rows after migration as before."""

from __future__ import annotations

import psycopg
from psycopg import sql

from eventgate.bundle import TableMapping
from eventgate.checks.result import CheckResult

CHECK = "row-count parity"
SAMPLE = 5


def _target_query(mapping: TableMapping) -> sql.Composed:
    where = sql.SQL(" WHERE {}").format(sql.SQL(mapping.filter)) if mapping.filter else sql.SQL("")
    return sql.SQL("SELECT {key} FROM {target}{where}").format(
        key=sql.Identifier(mapping.key), target=sql.Identifier(mapping.target), where=where)


def _count(conn: psycopg.Connection, query: sql.Composable) -> int:
    row = conn.execute(sql.SQL("SELECT count(*) FROM ({}) q").format(query)).fetchone()
    assert row is not None
    return int(row[0])


def _keys_only_in(conn: psycopg.Connection, left: sql.Composable, right: sql.Composable) -> list[
        object]:
    query = sql.SQL("SELECT k FROM (({}) EXCEPT ALL ({})) d(k) ORDER BY 1 LIMIT {}").format(
        left, right, sql.Literal(SAMPLE))
    return [r[0] for r in conn.execute(query).fetchall()]


def row_count_parity(conn: psycopg.Connection, mapping: TableMapping) -> CheckResult:
    """Compare the legacy rows (kept as the backup table) with the migrated rows."""
    subject = f"{mapping.legacy_source} -> {mapping.target}"
    legacy = sql.SQL("SELECT {} FROM {}").format(sql.Identifier(mapping.key),
                                                 sql.Identifier(mapping.legacy_source))
    target = _target_query(mapping)
    before, after = _count(conn, legacy), _count(conn, target)
    reproduce = (f"SELECT (SELECT count(*) FROM {mapping.legacy_source}) AS legacy, "
                 f"(SELECT count(*) FROM {mapping.target}"
                 f"{' WHERE ' + mapping.filter if mapping.filter else ''}) AS migrated;")
    # Equal counts can still hide a lost row and an invented one: the keys are compared too.
    missing = _keys_only_in(conn, legacy, target)
    extra = _keys_only_in(conn, target, legacy)
    if before == after and not missing and not extra:
        return CheckResult(CHECK, subject, True, f"{before} rows on both sides, same keys",
                           sql=reproduce)
    diff = after - before
    summary = (f"{mapping.legacy_table}: {before} legacy rows in {mapping.legacy_source}, "
               f"{after} in {mapping.target}")
    summary += (f" ({abs(diff)} {'extra' if diff > 0 else 'missing'})" if diff
                else " (same count, different keys)")
    details = []
    if missing:
        details.append(f"{mapping.key} in {mapping.legacy_source} but not migrated: "
                       f"{', '.join(map(str, missing))}")
    if extra:
        details.append(f"{mapping.key} in {mapping.target} but not in the legacy table: "
                       f"{', '.join(map(str, extra))}")
    return CheckResult(CHECK, subject, False, summary, tuple(details), reproduce)
