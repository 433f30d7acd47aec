"""Index presence: every index expectations.toml requires exists, valid, on the declared key
columns in order (and unique where declared). Found by what it covers, not by its name."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from eventgate.bundle import IndexExpectation
from eventgate.checks.result import CheckResult

CHECK = "required index"

INDEXES_OF_TABLE = """
SELECT i.relname, ix.indisunique, ix.indisvalid AND ix.indisready AND ix.indislive,
       am.amname, pg_get_expr(ix.indpred, ix.indrelid),
       array(SELECT coalesce(a.attname, pg_get_indexdef(ix.indexrelid, k, true))
               FROM generate_series(1, ix.indnkeyatts) k
               LEFT JOIN pg_attribute a
                      ON a.attrelid = ix.indrelid AND a.attnum = ix.indkey[k - 1]
              ORDER BY k)
  FROM pg_index ix
  JOIN pg_class i ON i.oid = ix.indexrelid
  JOIN pg_am am ON am.oid = i.relam
  JOIN pg_class t ON t.oid = ix.indrelid
  JOIN pg_namespace n ON n.oid = t.relnamespace
 WHERE n.nspname = %s AND t.relname = %s
 ORDER BY i.relname
"""


@dataclass(frozen=True)
class ExistingIndex:
    name: str
    unique: bool
    valid: bool
    method: str
    predicate: str | None
    columns: tuple[str, ...]

    def describe(self) -> str:
        flags = ("unique " if self.unique else "") + ("" if self.valid else "INVALID ")
        flags += "" if self.method == "btree" else f"{self.method} "
        partial = f" WHERE {self.predicate}" if self.predicate else ""
        return f"{self.name} {flags}({', '.join(self.columns)}){partial}"


def indexes_of(conn: psycopg.Connection, table: str, schema: str = "public") -> list[
        ExistingIndex]:
    rows = conn.execute(INDEXES_OF_TABLE, (schema, table)).fetchall()
    return [ExistingIndex(r[0], r[1], r[2], r[3], r[4], tuple(r[5])) for r in rows]


def _satisfies(index: ExistingIndex, wanted: IndexExpectation) -> bool:
    # A partial index covers only some rows, and a BRIN or hash index serves other queries: a
    # hot path can count on neither unless expectations.toml says so.
    return (index.valid and index.columns == wanted.columns
            and (index.unique or not wanted.unique)
            and index.method == wanted.method and index.predicate is None)


def required_index(conn: psycopg.Connection, wanted: IndexExpectation) -> CheckResult:
    cols = ", ".join(wanted.columns)
    subject = f"{wanted.table} ({cols})"
    existing = indexes_of(conn, wanted.table)
    reproduce = (f"SELECT indexname, indexdef FROM pg_indexes WHERE tablename = "
                 f"'{wanted.table}';")
    match = next((ix for ix in existing if _satisfies(ix, wanted)), None)
    if match:
        return CheckResult(CHECK, subject, True, f"covered by {match.describe()}", sql=reproduce)
    kind = ("unique " if wanted.unique else "") + f"{wanted.method} index"
    summary = (f"{wanted.table} has no valid, non-partial {kind} on ({cols}), expected as "
               f"{wanted.name}")
    named = next((ix for ix in existing if ix.name == wanted.name), None)
    details = []
    if named:
        details.append(f"{wanted.name} exists but is {named.describe()}")
    details.append(f"needed for: {wanted.why}" if wanted.why else "")
    details.append("indexes on the table: "
                   + (", ".join(ix.describe() for ix in existing) or "none"))
    return CheckResult(CHECK, subject, False, summary, tuple(d for d in details if d), reproduce)
