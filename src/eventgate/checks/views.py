"""Compatibility views: each legacy table's view exists and returns the same bag of rows as the
legacy table kept as backup (EXCEPT ALL, both ways)."""

from __future__ import annotations

import psycopg
from psycopg import sql

from eventgate.bundle import TableMapping
from eventgate.checks.result import CheckResult, sample_rows

CHECK = "compatibility view"
SAMPLE = 5


def relkind(conn: psycopg.Connection, name: str, schema: str = "public") -> str | None:
    row = conn.execute(
        "SELECT c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = %s", (schema, name)).fetchone()
    return str(row[0]) if row else None


KIND_NAMES = {"r": "a table", "v": "a view", "m": "a materialized view", "p": "a partitioned table"}


def view_matches_legacy(conn: psycopg.Connection, mapping: TableMapping) -> CheckResult:
    assert mapping.view is not None, f"{mapping.legacy_table} declares no view"
    subject = f"view {mapping.view} vs {mapping.legacy_source}"
    kind = relkind(conn, mapping.view)
    if kind != "v":
        found = KIND_NAMES.get(kind or "", "nothing") if kind else "nothing"
        return CheckResult(CHECK, subject, False,
                           f"the compatibility view {mapping.view} does not exist "
                           f"(public.{mapping.view} is {found})",
                           sql=f"SELECT relkind FROM pg_class WHERE relname = '{mapping.view}';")
    view, legacy = sql.Identifier(mapping.view), sql.Identifier(mapping.legacy_source)
    only_legacy = sql.SQL("SELECT * FROM {} EXCEPT ALL SELECT * FROM {}").format(legacy, view)
    only_view = sql.SQL("SELECT * FROM {} EXCEPT ALL SELECT * FROM {}").format(view, legacy)
    sample = sql.SQL("SELECT * FROM ({}) d ORDER BY 1 LIMIT {}")
    reproduce = (f"SELECT * FROM {mapping.legacy_source} EXCEPT ALL SELECT * FROM {mapping.view};"
                 f"  -- and the other way round")
    try:
        with conn.transaction():
            counts = conn.execute(sql.SQL(
                "SELECT (SELECT count(*) FROM ({}) a), (SELECT count(*) FROM ({}) b)"
            ).format(only_legacy, only_view)).fetchone()
            lost = conn.execute(sample.format(only_legacy, sql.Literal(SAMPLE))).fetchall()
            added = conn.execute(sample.format(only_view, sql.Literal(SAMPLE))).fetchall()
    except psycopg.Error as exc:
        return CheckResult(CHECK, subject, False,
                           f"{mapping.view} cannot be compared with {mapping.legacy_source}: its "
                           f"columns do not line up with the legacy table's "
                           f"({str(exc).strip().splitlines()[0]})", sql=reproduce)
    assert counts is not None
    n_lost, n_added = int(counts[0]), int(counts[1])
    if not n_lost and not n_added:
        return CheckResult(CHECK, subject, True, "same rows on both sides", sql=reproduce)
    details = tuple(f"only in {mapping.legacy_source}: {r}" for r in sample_rows(lost, SAMPLE))
    details += tuple(f"only in view {mapping.view}: {r}" for r in sample_rows(added, SAMPLE))
    return CheckResult(CHECK, subject, False,
                       f"{mapping.view} differs from {mapping.legacy_source}: {n_lost} legacy "
                       f"rows missing or changed in the view, {n_added} view rows not in the "
                       "legacy table", details, reproduce)
