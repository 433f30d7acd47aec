"""What the catalog says of one relation, as the checks read it: its kind and its columns, in
order, as it declares them. One reading for every check, so that the views' shape, the
mapping's totality and the writes through the views all see the same columns."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

KIND_NAMES = {"r": "a table", "v": "a view", "m": "a materialized view", "p": "a partitioned table"}

COLUMNS = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), format_type(a.atttypid, NULL),
       NOT a.attnotnull,
       CASE WHEN a.atttypid = 'varchar'::regtype AND a.atttypmod > 0 THEN a.atttypmod - 4 END
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY a.attnum
"""


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # format_type, with typmod: character varying(200)
    base_type: str  # without: character varying
    nullable: bool  # a view's columns always are: PostgreSQL records no NOT NULL on them
    max_length: int | None  # of a varchar(n)


def relkind(conn: psycopg.Connection, name: str, schema: str = "public") -> str | None:
    """pg_class.relkind of schema.name ('r', 'v', ...), None when there is no such relation."""
    row = conn.execute(
        "SELECT c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = %s", (schema, name)).fetchone()
    return str(row[0]) if row else None


def kind_name(kind: str | None) -> str:
    """How a result names a relkind: "a view", "nothing" for no relation."""
    return KIND_NAMES.get(kind or "", "nothing") if kind else "nothing"


def columns(conn: psycopg.Connection, relation: str, schema: str = "public") -> list[Column]:
    """The columns of a table or view, in order; [] when there is no such relation."""
    rows = conn.execute(COLUMNS, (schema, relation)).fetchall()
    return [Column(r[0], r[1], r[2], bool(r[3]), r[4]) for r in rows]


# The table and column a column's values come from: a single-column foreign key on the relation
# itself, or, for a view (which has none), on a table the view reads, of a column of the same
# name. The relation's own key wins.
# The relation, and for a view the tables its rewrite rule reads.
SOURCES = """
WITH rel AS (
  SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE n.nspname = %(schema)s AND c.relname = %(relation)s),
sources AS (
  SELECT oid FROM rel
  UNION
  SELECT d.refobjid FROM pg_rewrite r
    JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
                    AND d.refclassid = 'pg_class'::regclass
   WHERE r.ev_class = (SELECT oid FROM rel) AND d.refobjid <> r.ev_class)
"""

REFERENCED = SOURCES + """
SELECT k.confrelid::regclass::text, fa.attname
  FROM pg_constraint k JOIN sources s ON k.conrelid = s.oid
  JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = k.conkey[1]
  JOIN pg_attribute fa ON fa.attrelid = k.confrelid AND fa.attnum = k.confkey[1]
 WHERE k.contype = 'f' AND cardinality(k.conkey) = 1 AND a.attname = %(column)s
 ORDER BY k.conrelid = (SELECT oid FROM rel) DESC, k.conname
 LIMIT 1
"""


def referenced(conn: psycopg.Connection, relation: str, column: str,
               schema: str = "public") -> tuple[str, str] | None:
    """(table, column) the values of relation.column must come from, by a foreign key of the
    relation or of a table its view reads; None when no key says."""
    row = conn.execute(REFERENCED, {"schema": schema, "relation": relation,
                                    "column": column}).fetchone()
    return (str(row[0]), str(row[1])) if row else None


IN_UNIQUE = SOURCES + """
SELECT i.relname FROM pg_index x JOIN sources s ON x.indrelid = s.oid
  JOIN pg_class i ON i.oid = x.indexrelid
  JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = ANY (x.indkey)
 WHERE x.indisunique AND NOT x.indisprimary AND a.attname = %(column)s
 ORDER BY 1 LIMIT 1
"""


def in_unique(conn: psycopg.Connection, relation: str, column: str,
              schema: str = "public") -> str | None:
    """A unique index (not the primary key) with a column of that name, on the relation or a
    table its view reads: another row's value for it may be refused. None when there is none."""
    return _first_name(conn, IN_UNIQUE, relation, column, schema)


CHECKED = SOURCES + """
SELECT k.conname FROM pg_constraint k JOIN sources s ON k.conrelid = s.oid
  JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = ANY (k.conkey)
 WHERE k.contype = 'c' AND a.attname = %(column)s
 ORDER BY 1 LIMIT 1
"""


def checked(conn: psycopg.Connection, relation: str, column: str,
            schema: str = "public") -> str | None:
    """A CHECK constraint on a column of that name, of the relation or a table its view reads
    (a status limited to a few words); None when there is none."""
    return _first_name(conn, CHECKED, relation, column, schema)


def _first_name(conn: psycopg.Connection, query: str, relation: str, column: str,
                schema: str) -> str | None:
    row = conn.execute(query, {"schema": schema, "relation": relation,
                               "column": column}).fetchone()
    return str(row[0]) if row else None


UNIQUE_BY = """
SELECT i.relname FROM pg_index x
  JOIN pg_class i ON i.oid = x.indexrelid
  JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = x.indkey[0]
 WHERE x.indrelid = to_regclass(%s) AND x.indisunique AND x.indisvalid AND x.indnkeyatts = 1
   AND x.indpred IS NULL AND x.indexprs IS NULL AND a.attname = %s AND a.attnotnull
 ORDER BY x.indisprimary DESC, i.relname LIMIT 1
"""


def unique_by(conn: psycopg.Connection, table: str, column: str) -> str | None:
    """The valid unique index on exactly `column` of `table`, which is NOT NULL: PostgreSQL
    itself then keeps every committed value present and unique. None when there is none (a
    partial, expression or INVALID index does not count)."""
    row = conn.execute(UNIQUE_BY, (psycopg.sql.Identifier(table).as_string(conn),
                                   column)).fetchone()
    return str(row[0]) if row else None
