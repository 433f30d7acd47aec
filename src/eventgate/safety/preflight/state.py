"""Where the database stands against the bundle: which legacy tables preflight reads (from the
bundle's mapping), whether the migration already ran, and which legacy tables another session
has locked so that reading them would wait."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import psycopg
from psycopg import errors as pg_errors

from eventgate.bundle import Bundle
from eventgate.migrate import ledger


@dataclass(frozen=True)
class Scope:
    """The bundle's tables as preflight sees them, all from mapping.toml, and how the report
    names the migration and the database."""

    final_migration: int
    legacy_tables: tuple[str, ...]  # every mapped legacy table
    # Those the final migration locks, copies into the new schema and renames to their backup
    # name; the others (shared ones) stay put.
    migrated_tables: tuple[str, ...]
    # A migrated table whose compatibility view takes its name: a view there means the
    # migration ran, even where the ledger cannot be read.
    view_marker: str | None
    database: str  # the database to point --dsn at, in words

    @classmethod
    def of(cls, bundle: Bundle, database: str) -> Scope:
        migrated = tuple(t for t, m in bundle.mapping.items() if m.backup)
        marker = next((t for t in migrated if bundle.mapping[t].view == t), None)
        return cls(bundle.final_migration, tuple(bundle.mapping), migrated, marker, database)

    @property
    def final(self) -> str:
        """The final migration as the report names it, e.g. 010."""
        return f"{self.final_migration:03d}"


@dataclass(frozen=True)
class MigrationState:
    scope: Scope
    applied: tuple[int, ...]  # versions in the ledger
    relkinds: dict[str, str]  # legacy name -> pg_class.relkind, for the names that exist

    @property
    def migrated(self) -> bool:
        marker = self.scope.view_marker
        return (self.scope.final_migration in self.applied
                or (marker is not None and self.relkinds.get(marker) == "v"))

    @property
    def missing(self) -> list[str]:
        return [t for t in self.scope.legacy_tables if self.relkinds.get(t) not in ("r", "p")]

    def describe(self) -> str:
        if self.scope.final_migration in self.applied:
            return f"ledger at {max(self.applied):03d}"
        return f"{self.scope.view_marker} is a view"

    def ledger_line(self) -> str:
        if not self.applied:
            return "no migration applied yet"
        return f"ledger at {max(self.applied):03d} ({', '.join(f'{v:03d}' for v in self.applied)})"


def migration_state(conn: psycopg.Connection, scope: Scope) -> MigrationState:
    try:
        applied = tuple(e.version for e in ledger.entries(conn))
    except pg_errors.InsufficientPrivilege:
        applied = ()  # the relkind of the view marker still tells a migrated database apart
    rows = conn.execute("SELECT t, c.relkind FROM unnest(%s::text[]) t "
                        "JOIN pg_class c ON c.oid = to_regclass(t)",
                        (list(scope.legacy_tables),)).fetchall()
    return MigrationState(scope, applied, {str(r[0]): str(r[1]) for r in rows})


def exclusive_locks(conn: psycopg.Connection, scope: Scope) -> dict[str, str]:
    """Legacy tables another session holds, or waits for, ACCESS EXCLUSIVE on: reading them
    would wait (a waiting request queues every later reader behind it), so preflight leaves
    them alone and says who holds them."""
    rows = conn.execute(
        """SELECT c.relname,
                  string_agg(format('pid %%s (%%s, %%L) %%s ACCESS EXCLUSIVE', l.pid,
                                    coalesce(a.usename, '?'), coalesce(a.application_name, ''),
                                    CASE WHEN l.granted THEN 'holds' ELSE 'waits for' END),
                             '; ' ORDER BY l.pid)
             FROM pg_locks l
             JOIN pg_class c ON c.oid = l.relation
             LEFT JOIN pg_stat_activity a ON a.pid = l.pid
            WHERE l.locktype = 'relation' AND l.mode = 'AccessExclusiveLock'
              AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
              AND l.relation IN (SELECT to_regclass(t) FROM unnest(%s::text[]) t)
              AND l.pid IS DISTINCT FROM pg_backend_pid()
            GROUP BY c.relname ORDER BY c.relname""", (list(scope.legacy_tables),)).fetchall()
    return {str(r[0]): str(r[1]) for r in rows}


def cannot_read(state: MigrationState, locked: dict[str, str],
                tables: Iterable[str]) -> str | None:
    """Why the legacy rows are not checked, or None when they can be read."""
    if state.migrated:
        return (f"already migrated ({state.describe()}): the legacy names are compatibility "
                f"views now, and {state.scope.final} checked these rows itself")
    missing = [t for t in tables if t in state.missing]
    if missing:
        return f"legacy table missing: {', '.join(missing)} (see legacy tables)"
    busy = [t for t in tables if t in locked]
    if busy:
        return f"{', '.join(busy)} locked by another session (see legacy tables)"
    return None
