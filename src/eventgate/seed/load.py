"""Loading the legacy schema and its seed data into a database, with COPY."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import psycopg
from psycopg import sql

from eventgate.bundle import Bundle
from eventgate.errors import EventgateError
from eventgate.migrate.sqlsplit import split_statements
from eventgate.seed import generator as gen

LEGACY_TABLES = ("tenants", "wedding_events", "wedding_invitations", "wedding_sections")
ProgressFn = Callable[[str, int], None]


@dataclass(frozen=True)
class SeedCounts:
    tenants: int
    weddings: int
    invitations: int
    sections: int


def apply_baseline(conn: psycopg.Connection, bundle: Bundle) -> None:
    """Create the legacy wedding schema (baseline 001-005) in an empty database."""
    present = conn.execute(
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename = ANY(%s)",
        (list(LEGACY_TABLES),),
    ).fetchone()
    if present and present[0]:
        raise EventgateError(
            "the database already has legacy tables; seed an empty database (createdb NAME), "
            "or pass --no-schema to load rows into the tables that are there"
        )
    with conn.transaction():
        for script in bundle.baseline:
            for statement in split_statements(script.sql):
                conn.execute(statement.encode())


def _copy(conn: psycopg.Connection, table: str, columns: tuple[str, ...], rows: Iterable[gen.Row],
          progress: ProgressFn | None) -> int:
    stmt = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns)))
    count = 0
    with conn.cursor() as cur, cur.copy(stmt) as copy:
        for row in rows:
            copy.write_row(row)
            count += 1
            if progress and count % 10_000 == 0:
                progress(table, 10_000)
    if progress:
        progress(table, count % 10_000)
    return count


def _refuse_non_empty(conn: psycopg.Connection) -> None:
    for table in LEGACY_TABLES:
        row = conn.execute(
            sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(sql.Identifier(table))
        ).fetchone()
        if row and row[0]:
            raise EventgateError(
                f"{table} already holds rows; seeding adds a deterministic data set with fixed "
                "ids, so it needs empty legacy tables: seed a fresh database"
            )


def load(conn: psycopg.Connection, plan: gen.SeedPlan,
         progress: ProgressFn | None = None) -> SeedCounts:
    """Load tenants, weddings, invitations and sections in one transaction."""
    with conn.transaction():
        _refuse_non_empty(conn)
        tenant_rows = gen.tenants(plan)
        n_tenants = _copy(conn, "tenants", gen.TENANTS_COLUMNS, tenant_rows, progress)
        stubs: list[gen.WeddingStub] = []

        def remember(rows: Iterable[gen.Row]) -> Iterable[gen.Row]:
            for row in rows:
                stubs.append(gen.WeddingStub(row[0], row[13], row[5]))  # type: ignore[arg-type]
                yield row

        n_weddings = _copy(conn, "wedding_events", gen.WEDDING_COLUMNS,
                           remember(gen.weddings(plan, tenant_rows)), progress)
        n_invitations = _copy(conn, "wedding_invitations", gen.INVITATION_COLUMNS,
                              gen.invitations(plan, stubs), progress)
        n_sections = _copy(conn, "wedding_sections", gen.SECTION_COLUMNS,
                           gen.sections(plan, stubs), progress)
        # Rows came with explicit ids; the application's next INSERT must not reuse one.
        for table in LEGACY_TABLES[1:]:
            conn.execute(sql.SQL(
                "SELECT setval(pg_get_serial_sequence({t}, 'id'), "
                "coalesce((SELECT max(id) FROM {i}), 0) + 1, false)"
            ).format(t=sql.Literal(table), i=sql.Identifier(table)))
    conn.execute("ANALYZE")
    return SeedCounts(n_tenants, n_weddings, n_invitations, n_sections)


def build_legacy(conn: psycopg.Connection, bundle: Bundle, plan: gen.SeedPlan,
                 progress: ProgressFn | None = None) -> SeedCounts:
    """An empty database becomes the legacy wedding database: schema, then seeded rows."""
    apply_baseline(conn, bundle)
    return load(conn, plan, progress)
