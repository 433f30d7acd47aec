"""Whether a table holds any row: a gate over an empty table would pass on nothing, so it is
not proven instead (eventgate.checks.result)."""

from __future__ import annotations

import psycopg
from psycopg import sql


def has_rows(conn: psycopg.Connection, table: str, condition: str | None = None) -> bool:
    """Some row of `table` (satisfying `condition`, an SQL predicate from the bundle)."""
    where = sql.SQL(" WHERE {}").format(sql.SQL(condition)) if condition else sql.SQL("")
    found = conn.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {}{})").format(
        sql.Identifier(table), where)).fetchone()
    return bool(found and found[0])


def nothing_to_compare(table: str) -> str:
    """The not-proven summary of a comparison whose legacy side is empty."""
    return (f"{table} holds no legacy rows, so there is nothing to compare; it needs at least "
            f"one row in {table}")
