"""The ledger: which migrations are applied to a database, with their checksums."""

from __future__ import annotations

import getpass
import socket
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from eventgate.bundle import Migration

SCHEMA = "eventgate_ledger"
TABLE = "migration_ledger"

CREATE = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {SCHEMA}.{TABLE} (
    version      integer       PRIMARY KEY,
    name         text          NOT NULL,
    sha256       char(64)      NOT NULL,
    applied_at   timestamptz   NOT NULL DEFAULT now(),
    duration_ms  numeric(12,3) NOT NULL,
    applied_by   text          NOT NULL
);
-- Added after the first release; ledgers made by it gain them on the next run.
ALTER TABLE {SCHEMA}.{TABLE}
    ADD COLUMN IF NOT EXISTS rollback_sha256 char(64),
    ADD COLUMN IF NOT EXISTS schema_before   jsonb;
COMMENT ON COLUMN {SCHEMA}.{TABLE}.schema_before IS
    'the catalog as it was before this migration: its rollback must give exactly this back';
"""


@dataclass(frozen=True)
class LedgerEntry:
    version: int
    name: str
    sha256: str
    applied_at: datetime
    duration_ms: float
    applied_by: str
    rollback_sha256: str | None = None
    schema_before: dict[str, Any] | None = None


def exists(conn: psycopg.Connection) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{SCHEMA}.{TABLE}",)).fetchone()
    return bool(row and row[0])


def ensure(conn: psycopg.Connection) -> None:
    conn.execute(CREATE)


def entries(conn: psycopg.Connection) -> list[LedgerEntry]:
    """Applied migrations in version order; empty when the ledger does not exist yet."""
    if not exists(conn):
        return []
    rows = conn.execute(
        # Read through to_jsonb, so a ledger made before these columns existed still reads
        # (read-only commands never add them).
        f"SELECT version, name, sha256, applied_at, duration_ms, applied_by, "
        f"to_jsonb(l)->>'rollback_sha256', to_jsonb(l)->'schema_before' "
        f"FROM {SCHEMA}.{TABLE} l ORDER BY version"
    ).fetchall()
    return [LedgerEntry(r[0], r[1], r[2], r[3], float(r[4]), r[5], r[6], r[7]) for r in rows]


def applied_by() -> str:
    try:
        who = getpass.getuser()
    except (KeyError, OSError):
        who = "unknown"
    return f"{who}@{socket.gethostname()}"


def record(conn: psycopg.Connection, migration: Migration, duration_s: float,
           schema_before: dict[str, Any] | None = None) -> None:
    conn.execute(
        f"INSERT INTO {SCHEMA}.{TABLE} (version, name, sha256, duration_ms, applied_by, "
        "rollback_sha256, schema_before) "
        "VALUES (%s, %s, %s, %s, %s || ' as ' || current_user, %s, %s)",
        (migration.version, migration.name, migration.sha256, round(duration_s * 1000, 3),
         applied_by(), migration.rollback.sha256 if migration.rollback else None,
         Jsonb(schema_before) if schema_before is not None else None),
    )


def remove(conn: psycopg.Connection, version: int) -> None:
    conn.execute(f"DELETE FROM {SCHEMA}.{TABLE} WHERE version = %s", (version,))
