"""Whether a table holds any row: a gate over an empty table would pass on nothing, so it is
not proven instead (eventgate.checks.result). And the WHERE clauses the checks put together
from the bundle's predicates (a mapping's filter) and their own."""

from __future__ import annotations

import psycopg
from psycopg import sql


def where_clause(conditions: list[sql.Composable]) -> sql.Composable:
    """" WHERE a AND b" (each parenthesized when there are several), or nothing."""
    if not conditions:
        return sql.SQL("")
    if len(conditions) == 1:
        return sql.SQL(" WHERE {}").format(conditions[0])
    return sql.SQL(" WHERE ") + sql.SQL(" AND ").join(
        sql.SQL("({})").format(c) for c in conditions)


def condition_clause(condition: str | None) -> sql.Composable:
    """" WHERE condition" for an SQL predicate from the bundle, or nothing."""
    return where_clause([sql.SQL(condition)] if condition else [])


def has_rows(conn: psycopg.Connection, table: str, condition: str | None = None, *,
             schema: str | None = None) -> bool:
    """Some row of `table` (in `schema`, else as the search path finds it) satisfying
    `condition`, an SQL predicate from the bundle."""
    name = sql.Identifier(schema, table) if schema else sql.Identifier(table)
    found = conn.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {}{})").format(
        name, condition_clause(condition))).fetchone()
    return bool(found and found[0])


def nothing_to_compare(table: str) -> str:
    """The not-proven summary of a comparison whose legacy side is empty."""
    return (f"{table} holds no legacy rows, so there is nothing to compare; it needs at least "
            f"one row in {table}")
