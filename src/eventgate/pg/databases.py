"""Creating, cloning and dropping databases on a server the suite owns, with names that stay
apart under pytest-xdist."""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from eventgate.pg.server import Server


@dataclass(frozen=True)
class Database:
    name: str
    # Not in a repr: pytest prints a failing test's fixtures, and a DSN may hold a password.
    dsn: str = field(repr=False)

    def connect(self, *, autocommit: bool = True, read_only: bool = False) -> psycopg.Connection:
        options = "-c default_transaction_read_only=on" if read_only else None
        return psycopg.connect(self.dsn, autocommit=autocommit, application_name="eventgate",
                               options=options)


# How a clone is made (PostgreSQL 15 and later choose): copying the template's files costs two
# checkpoints; writing every block through the WAL (15's default) costs WAL the size of the
# template, 2.3 GB a clone at 10M guests. With fsync off, as on the suite's own clusters, the
# checkpoints are nearly free and copying wins at any size (measured on an 11 MB migrated
# template: 21 ms a clone against 28-43 ms, and 10 ms a drop against 22 ms). With fsync on,
# copying only from this size, below which the checkpoints' flushes cost more than the WAL.
FILE_COPY_FROM_BYTES = 256 * 1024 * 1024


def _copy_files(conn: psycopg.Connection, template: str) -> bool:
    """Whether a clone of `template` should copy its files."""
    row = conn.execute("SELECT current_setting('server_version_num')::int >= 150000 "
                       "AND (NOT current_setting('fsync')::bool "
                       "     OR pg_database_size(%s) >= %s)",
                       (template, FILE_COPY_FROM_BYTES)).fetchone()
    return bool(row and row[0])


class Databases:
    """Databases made on an owned server; `drop_all()` removes every one still there."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        self._counter = itertools.count(1)
        self._made: list[str] = []

    def _name(self, purpose: str) -> str:
        return f"eventgate_{self.worker}_{purpose}_{next(self._counter)}"

    def create(self, purpose: str, template: str | None = None) -> Database:
        name = self._name(purpose)
        stmt = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        with self.server.connect() as conn:
            if template:
                # Cloning needs the template to have no other session: callers close theirs
                # first.
                stmt = sql.SQL("{} TEMPLATE {}").format(stmt, sql.Identifier(template))
                if _copy_files(conn, template):
                    stmt = sql.SQL("{} STRATEGY FILE_COPY").format(stmt)
            conn.execute(stmt)
        self._made.append(name)
        return Database(name, self.server.dsn_for(name))

    def drop(self, db: Database) -> None:
        with self.server.connect() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(db.name)))
        if db.name in self._made:
            self._made.remove(db.name)

    def drop_all(self) -> None:
        for name in reversed(list(self._made)):
            self.drop(Database(name, ""))
