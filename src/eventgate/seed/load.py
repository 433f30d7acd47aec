"""Loading the legacy schema and its seed data into a database, with COPY.

The tables are the bundle's legacy tables (mapping.toml), which must be the ones the generator
makes rows for (eventgate.seed.legacy_schema), loaded parents first as the foreign keys in the
catalog demand."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import psycopg
from psycopg import sql

from eventgate.bundle import Bundle
from eventgate.errors import EventgateError
from eventgate.migrate.statements import split_statements
from eventgate.seed.generator import Row, SeedPlan
from eventgate.seed.legacy_schema import SCHEMA, Generation, LegacyTable

ProgressFn = Callable[[str, int], None]

# (child, parent) for every foreign key between two of the given tables, as the session's
# search_path finds them (COPY finds them so too).
FOREIGN_KEYS = """
SELECT child.name, parent.name
  FROM unnest(%(tables)s::text[]) child(name), unnest(%(tables)s::text[]) parent(name)
 WHERE child.name <> parent.name AND EXISTS (
       SELECT 1 FROM pg_constraint c WHERE c.contype = 'f'
          AND c.conrelid = to_regclass(quote_ident(child.name))
          AND c.confrelid = to_regclass(quote_ident(parent.name)))
"""
# Every column of a table that takes its default from a sequence (serial, identity).
SEQUENCES = """
SELECT a.attname, s.sequence
  FROM pg_attribute a,
       LATERAL (SELECT pg_get_serial_sequence(quote_ident(%(table)s), a.attname)) s(sequence)
 WHERE a.attrelid = to_regclass(quote_ident(%(table)s)) AND a.attnum > 0
   AND NOT a.attisdropped AND s.sequence IS NOT NULL
 ORDER BY a.attnum
"""


@dataclass(frozen=True)
class SeedCounts:
    tenants: int
    weddings: int
    invitations: int
    sections: int


def legacy_tables(bundle: Bundle | None) -> list[LegacyTable]:
    """The tables to fill: the bundle's legacy tables, which must be the ones the generator
    makes rows for; without a bundle (rows into a schema already there), the generator's."""
    if bundle is None:
        return list(SCHEMA.values())
    listed = bundle.legacy_tables
    if set(listed) != set(SCHEMA):
        raise EventgateError(
            f"the seeder generates rows for the reference bundle's legacy tables "
            f"({', '.join(SCHEMA)}), but the bundle {bundle.root} lists {', '.join(listed)} in "
            "mapping.toml; seed its database with data of your own")
    return [SCHEMA[name] for name in listed]


def apply_baseline(conn: psycopg.Connection, bundle: Bundle) -> None:
    """Create the legacy schema (the bundle's baseline/) in an empty database."""
    present = conn.execute(
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename = ANY(%s)",
        (list(bundle.legacy_tables),),
    ).fetchone()
    if present and present[0]:
        raise EventgateError(
            "the database already has legacy tables; seed an empty database (createdb NAME), "
            "or pass --no-schema to load rows into the tables that are there"
        )
    with conn.transaction():
        for script in bundle.baseline:
            for statement in split_statements(script.sql, script.label):
                conn.execute(statement.encode())


def load_order(conn: psycopg.Connection, tables: list[LegacyTable]) -> list[LegacyTable]:
    """Parents before the children whose foreign keys point at them; otherwise in the order
    the generator makes the rows (SCHEMA), so that none is generated twice."""
    names = [t.name for t in tables]
    parents: dict[str, set[str]] = {name: set() for name in names}
    for child, parent in conn.execute(FOREIGN_KEYS, {"tables": names}).fetchall():
        parents[child].add(parent)
    rank = list(SCHEMA)
    left = sorted(tables, key=lambda t: rank.index(t.name))
    order: list[LegacyTable] = []
    while left:
        loaded = {t.name for t in order}
        ready = next((t for t in left if parents[t.name] <= loaded), None)
        if ready is None:
            raise EventgateError("the foreign keys between "
                                 f"{', '.join(t.name for t in left)} form a cycle, so no table "
                                 "of them can be loaded first")
        order.append(ready)
        left.remove(ready)
    return order


def _copy(conn: psycopg.Connection, table: LegacyTable, rows: Iterable[Row],
          progress: ProgressFn | None) -> int:
    stmt = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table.name), sql.SQL(", ").join(map(sql.Identifier, table.columns)))
    count = 0
    with conn.cursor() as cur, cur.copy(stmt) as copy:
        for row in rows:
            copy.write_row(row)
            count += 1
            if progress and count % 10_000 == 0:
                progress(table.name, 10_000)
    if progress:
        progress(table.name, count % 10_000)
    return count


def _refuse_non_empty(conn: psycopg.Connection, tables: list[LegacyTable]) -> None:
    for table in tables:
        row = conn.execute(
            sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(sql.Identifier(table.name))
        ).fetchone()
        if row and row[0]:
            raise EventgateError(
                f"{table.name} already holds rows; seeding adds a deterministic data set with "
                "fixed ids, so it needs empty legacy tables: seed a fresh database"
            )


def _advance_sequences(conn: psycopg.Connection, table: LegacyTable) -> None:
    """Rows came with explicit ids; the application's next INSERT must not reuse one."""
    for column, sequence in conn.execute(SEQUENCES, {"table": table.name}).fetchall():
        conn.execute(sql.SQL(
            "SELECT setval({s}, coalesce((SELECT max({c}) FROM {t}), 0) + 1, false)"
        ).format(s=sql.Literal(sequence), c=sql.Identifier(column),
                 t=sql.Identifier(table.name)))


def load(conn: psycopg.Connection, plan: SeedPlan, progress: ProgressFn | None = None, *,
         bundle: Bundle | None = None) -> SeedCounts:
    """Load every legacy table (the bundle's, else the generator's) in one transaction."""
    generation = Generation(plan)
    counts: dict[str, int] = {}
    with conn.transaction():
        tables = load_order(conn, legacy_tables(bundle))
        _refuse_non_empty(conn, tables)
        for table in tables:
            counts[table.counted_as] = _copy(conn, table, table.rows(generation), progress)
            _advance_sequences(conn, table)
    conn.execute("ANALYZE")
    return SeedCounts(**counts)


def build_legacy(conn: psycopg.Connection, bundle: Bundle, plan: SeedPlan,
                 progress: ProgressFn | None = None) -> SeedCounts:
    """An empty database becomes the bundle's legacy database: schema, then seeded rows."""
    legacy_tables(bundle)  # before the baseline runs: a bundle the seeder cannot fill
    apply_baseline(conn, bundle)
    return load(conn, plan, progress, bundle=bundle)
