"""A fingerprint of a database's schema and content, to prove that something (a dry run, a
migration and its rollback) left the database exactly as it was."""

from __future__ import annotations

from collections.abc import Mapping

import psycopg
from psycopg import sql

# The ledger records history and outlives rollbacks, so it is not part of the fingerprint.
IGNORED_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast", "eventgate_ledger")
# Other sessions' temporary tables (and their TOAST, keys and indexes) come and go with them.
TEMP = r"'^pg_(toast_)?temp_'"

SCHEMA_QUERIES = {name: query.replace("{TEMP}", TEMP) for name, query in {
    "schemas": """
        SELECT nspname, pg_get_userbyid(nspowner), nspacl::text FROM pg_namespace
         WHERE nspname <> ALL(%(ignored)s) AND nspname !~ {TEMP}
         ORDER BY 1""",
    "relations": """
        SELECT n.nspname, c.relname, c.relkind, c.relpersistence, pg_get_userbyid(c.relowner),
               -- no ACL is the owner's default one: a GRANT and its REVOKE leave the default
               -- spelled out, which is the same privileges
               coalesce(c.relacl, acldefault(
                   CASE c.relkind WHEN 'S' THEN 's' ELSE 'r' END::"char", c.relowner))::text,
               c.relrowsecurity
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname <> ALL(%(ignored)s) AND n.nspname !~ {TEMP}
         ORDER BY 1, 2""",
    # From pg_attribute, not information_schema.columns: that view took half of each
    # fingerprint's time (10 of 22 ms, and a migration and its rollback take ten), hides the
    # columns of tables the role has no privilege on, and spells varchar(200) as
    # "character varying" with the length apart. format_type keeps the modifier whole.
    "attributes": """
        SELECT n.nspname, c.relname, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod),
               a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated
          FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
          JOIN pg_namespace n ON n.oid = c.relnamespace
          LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
         WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'v', 'f', 'p', 'm')
           AND n.nspname <> ALL(%(ignored)s) AND n.nspname !~ {TEMP}
         ORDER BY 1, 2, 3""",
    "constraints": """
        SELECT n.nspname, t.relname, c.conname, pg_get_constraintdef(c.oid)
          FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid
          JOIN pg_namespace n ON n.oid = t.relnamespace
         WHERE n.nspname <> ALL(%(ignored)s) AND n.nspname !~ {TEMP}
         ORDER BY 1, 2, 3""",
    "indexes": """
        SELECT schemaname, tablename, indexname, indexdef FROM pg_indexes
         WHERE schemaname <> ALL(%(ignored)s) AND schemaname !~ {TEMP}
         ORDER BY 1, 2, 3""",
    "views": """
        SELECT schemaname, viewname, definition FROM pg_views
         WHERE schemaname <> ALL(%(ignored)s) AND schemaname !~ {TEMP} ORDER BY 1, 2""",
    "functions": """
        SELECT n.nspname, p.proname, pg_get_function_identity_arguments(p.oid), md5(p.prosrc)
          FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname <> ALL(%(ignored)s) AND n.nspname !~ {TEMP} ORDER BY 1, 2, 3""",
    "triggers": """
        SELECT n.nspname, c.relname, t.tgname, pg_get_triggerdef(t.oid), t.tgenabled
          FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
          JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE NOT t.tgisinternal AND n.nspname <> ALL(%(ignored)s) AND n.nspname !~ {TEMP}
         ORDER BY 1, 2, 3""",
    "policies": """
        SELECT schemaname, tablename, policyname, cmd, qual, with_check FROM pg_policies
         WHERE schemaname <> ALL(%(ignored)s) AND schemaname !~ {TEMP}
         ORDER BY 1, 2, 3""",
    "types": """
        SELECT n.nspname, t.typname, t.typtype FROM pg_type t
          JOIN pg_namespace n ON n.oid = t.typnamespace
         WHERE n.nspname <> ALL(%(ignored)s) AND n.nspname !~ {TEMP}
           AND t.typtype IN ('e', 'd', 'c', 'r', 'm')
           AND (t.typrelid = 0 OR (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')
         ORDER BY 1, 2""",
}.items()}

# Parts of the fingerprint earlier versions wrote into the ledger, read again only to compare
# with a ledger row that holds them: a migration applied by one version of eventgate can be
# rolled back by the next.
EARLIER_QUERIES = {name: query.replace("{TEMP}", TEMP) for name, query in {
    "columns": """
        SELECT table_schema, table_name, ordinal_position, column_name, data_type,
               character_maximum_length, numeric_precision, is_nullable, column_default
          FROM information_schema.columns
         WHERE table_schema <> ALL(%(ignored)s) AND table_schema !~ {TEMP}
         ORDER BY 1, 2, 3""",
}.items()}


def _tables(conn: psycopg.Connection) -> list[tuple[str, str]]:
    rows = conn.execute(
        f"SELECT schemaname, tablename FROM pg_tables WHERE schemaname <> ALL(%s) "
        f"AND schemaname !~ {TEMP} ORDER BY 1, 2",
        (list(IGNORED_SCHEMAS),)).fetchall()
    return [(r[0], r[1]) for r in rows]


def sequence_positions(conn: psycopg.Connection) -> dict[str, tuple[object, object]]:
    """(last_value, is_called) of every sequence, read from the sequence itself: pg_sequences
    shows NULL for one never called, hiding a setval(..., false)."""
    names = [r[0] for r in conn.execute(
        "SELECT format('%%I.%%I', schemaname, sequencename) FROM pg_sequences "
        f"WHERE schemaname <> ALL(%s) AND schemaname !~ {TEMP} ORDER BY 1",
        (list(IGNORED_SCHEMAS),)).fetchall()]
    positions: dict[str, tuple[object, object]] = {}
    for name in names:
        row = conn.execute(f"SELECT last_value, is_called FROM {name}").fetchone()
        if row is not None:
            positions[name] = (row[0], row[1])
    return positions


# Row count and checksum of one relation, the {}.{} filled with its schema and name: the sum of
# each row's md5 cut to 60 bits, so the order of the rows does not matter. Backups record these
# figures in their metadata and compare a restore against them (eventgate.safety.checksums): a
# change here makes every earlier backup fail its verification.
CHECKSUM_SQL = ("SELECT count(*), coalesce(sum(('x' || substr(md5(t::text), 1, 15))::bit(60)"
                "::bigint), 0)::text FROM {}.{} t")


def relation_checksum(conn: psycopg.Connection, schema: str, name: str) -> tuple[int, str]:
    """Row count and an order-independent checksum of every row's text form; a view and a table
    showing the same rows in the same columns give the same figures."""
    row = conn.execute(sql.SQL(CHECKSUM_SQL).format(sql.Identifier(schema),
                                                    sql.Identifier(name))).fetchone()
    assert row is not None
    return int(row[0]), str(row[1])


def content_checksums(conn: psycopg.Connection) -> dict[str, tuple[int, str]]:
    """Per table: row count and an order-independent checksum of every row's text form."""
    return {f"{schema}.{table}": relation_checksum(conn, schema, table)
            for schema, table in _tables(conn)}


def schema_fingerprint(conn: psycopg.Connection, like: Mapping[str, object] | None = None
                       ) -> dict[str, list[list[object]]]:
    """The catalog part of the fingerprint alone, as plain JSON-ready lists: what a migration's
    rollback must give back exactly, whatever the rows are by then. `like`: a fingerprint
    recorded earlier, perhaps by an earlier version, whose parts are the ones read."""
    params = {"ignored": list(IGNORED_SCHEMAS)}
    queries = SCHEMA_QUERIES if like is None else {
        name: query for name, query in (SCHEMA_QUERIES | EARLIER_QUERIES).items()
        if name in like}
    return {name: [list(row) for row in conn.execute(query, params).fetchall()]
            for name, query in queries.items()}


def fingerprint(conn: psycopg.Connection) -> dict[str, object]:
    """Schema (from the catalog) and content checksums, comparable with ==."""
    params = {"ignored": list(IGNORED_SCHEMAS)}
    found: dict[str, object] = {
        name: conn.execute(query, params).fetchall() for name, query in SCHEMA_QUERIES.items()
    }
    found["sequences"] = sequence_positions(conn)
    found["content"] = content_checksums(conn)
    return found


def differences(before: dict[str, object], after: dict[str, object]) -> list[str]:
    """What changed between two fingerprints, one line per part, for assertion messages."""
    lines = []
    for part in before.keys() | after.keys():
        old, new = before.get(part), after.get(part)
        if old == new:
            continue
        if isinstance(old, dict) and isinstance(new, dict):
            changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
            lines.append(f"{part}: {', '.join(changed)}")
        elif isinstance(old, list) and isinstance(new, list):
            gone = [r for r in old if r not in new][:3]
            came = [r for r in new if r not in old][:3]
            lines.append(f"{part}: gone {gone}, new {came}")
        else:
            lines.append(part)
    return sorted(lines)
