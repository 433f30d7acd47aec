"""Planner statistics: a table the hot queries read has column statistics, so the planner
chooses by the data rather than by its defaults. A bulk load leaves none behind (an index build
records a row count only), and until autovacuum's first ANALYZE every selectivity is a guess."""

from __future__ import annotations

import psycopg

from eventgate.checks.result import CheckResult
from eventgate.checks.rows import has_rows

CHECK = "planner statistics"

# pg_stats shows only the columns the session may read, which is every column for the gate's
# role (pg_read_all_data or SELECT on the table).
STATE = """
SELECT c.oid, (SELECT count(*) FROM pg_stats s
                WHERE s.schemaname = n.nspname AND s.tablename = c.relname)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = %s AND c.relname = %s
"""


def has_statistics(conn: psycopg.Connection, table: str, schema: str = "public") -> CheckResult:
    subject = f"{schema}.{table}"
    row = conn.execute(STATE, (schema, table)).fetchone()
    if row is None:
        return CheckResult(CHECK, subject, False, f"{table} does not exist")
    columns_with_stats = int(row[1])
    if columns_with_stats:
        return CheckResult(CHECK, subject, True,
                           f"{columns_with_stats} columns have statistics")
    if not has_rows(conn, table, schema=schema):
        return CheckResult.unproven(CHECK, subject, f"{table} holds no rows, and statistics of "
                                    "an empty table are empty; it needs at least one row")
    return CheckResult(CHECK, subject, False,
                       f"{table} has no planner statistics: no ANALYZE since its rows were "
                       "loaded, so the planner guesses every selectivity (and may walk the "
                       "wrong index); the migration should ANALYZE the tables it fills",
                       sql=f"SELECT attname FROM pg_stats WHERE schemaname = '{schema}' AND "
                           f"tablename = '{table}';  -- then: ANALYZE {schema}.{table};")

