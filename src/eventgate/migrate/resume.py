"""Where an online migration stands, kept in the ledger schema: the phase it runs next, how far
its backfill got, and the catalog as it was before it began. Each row changes in the same
transaction as the work it records, so after a kill -9 it is exactly as far as the database."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from eventgate.bundle import Migration
from eventgate.migrate.ledger import SCHEMA

TABLE = "migration_progress"

CREATE = f"""
CREATE TABLE IF NOT EXISTS {SCHEMA}.{TABLE} (
    version        integer     PRIMARY KEY,
    name           text        NOT NULL,
    sha256         char(64)    NOT NULL,
    phase          text        NOT NULL,
    batch_after    bigint,
    batch_upto     bigint,
    keys_done      bigint      NOT NULL DEFAULT 0,
    keys_total     bigint,
    rows_copied    bigint      NOT NULL DEFAULT 0,
    schema_before  jsonb,
    started_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE {SCHEMA}.{TABLE} IS
    'online migrations part-way: eventgate migrate --execute resumes one, --rollback undoes it';
"""


@dataclass(frozen=True)
class Progress:
    version: int
    name: str
    sha256: str
    phase: str
    batch_after: int | None
    batch_upto: int | None
    keys_done: int
    keys_total: int | None
    rows_copied: int
    schema_before: dict[str, Any] | None
    started_at: datetime
    updated_at: datetime

    def describe(self) -> str:
        where = self.phase.replace("backfill:", "the backfill of ")
        if self.keys_total:
            where += f" ({self.keys_done:,} of {self.keys_total:,} rows)"
        return f"{self.name} stopped part-way, at {where}, last changed {self.updated_at:%F %T %Z}"


def ensure(conn: psycopg.Connection) -> None:
    conn.execute(CREATE)


def read(conn: psycopg.Connection) -> list[Progress]:
    """Every migration part-way (there is at most one, under the runner's lock)."""
    exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL",
                          (f"{SCHEMA}.{TABLE}",)).fetchone()
    if not (exists and exists[0]):
        return []
    rows = conn.execute(
        f"SELECT version, name, sha256, phase, batch_after, batch_upto, keys_done, keys_total, "
        f"rows_copied, schema_before, started_at, updated_at FROM {SCHEMA}.{TABLE} "
        "ORDER BY version").fetchall()
    return [Progress(*row) for row in rows]


def of(conn: psycopg.Connection, version: int) -> Progress | None:
    return next((p for p in read(conn) if p.version == version), None)


def start(conn: psycopg.Connection, migration: Migration, phase: str,
          schema_before: dict[str, Any]) -> None:
    conn.execute(
        f"INSERT INTO {SCHEMA}.{TABLE} (version, name, sha256, phase, schema_before) "
        "VALUES (%s, %s, %s, %s, %s)",
        (migration.version, migration.name, migration.sha256, phase, Jsonb(schema_before)))


def advance(conn: psycopg.Connection, version: int, phase: str) -> None:
    """The next phase; the backfill bounds start afresh."""
    conn.execute(
        f"UPDATE {SCHEMA}.{TABLE} SET phase = %s, batch_after = NULL, batch_upto = NULL, "
        "keys_done = 0, keys_total = NULL, updated_at = now() WHERE version = %s",
        (phase, version))


def bound(conn: psycopg.Connection, version: int, after: int, upto: int, total: int) -> None:
    """A backfill's range, read once when it starts: rows added later are the triggers'."""
    conn.execute(
        f"UPDATE {SCHEMA}.{TABLE} SET batch_after = %s, batch_upto = %s, keys_total = %s, "
        "updated_at = now() WHERE version = %s", (after, upto, total, version))


def batch_done(conn: psycopg.Connection, version: int, after: int, keys: int,
               copied: int) -> None:
    conn.execute(
        f"UPDATE {SCHEMA}.{TABLE} SET batch_after = %s, keys_done = keys_done + %s, "
        "rows_copied = rows_copied + %s, updated_at = now() WHERE version = %s",
        (after, keys, copied, version))


def finish(conn: psycopg.Connection, version: int) -> None:
    conn.execute(f"DELETE FROM {SCHEMA}.{TABLE} WHERE version = %s", (version,))
