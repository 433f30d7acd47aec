"""A PostgreSQL server the suite can talk to, and how it was obtained."""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg

from eventgate import dsn as dsn_mod


@dataclass(frozen=True)
class Server:
    """A reachable server: `dsn` points at its maintenance or target database.

    `owned` is true when the suite started the server itself and may create and drop databases
    freely; an external server's database is never created or dropped.
    """

    # Not in a repr: pytest prints a failing test's fixtures, and a DSN may hold a password.
    dsn: str = field(repr=False)
    version: str
    route: str
    owned: bool

    def dsn_for(self, dbname: str) -> str:
        return dsn_mod.with_dbname(self.dsn, dbname)

    def connect(self, dbname: str | None = None, *, autocommit: bool = True) -> psycopg.Connection:
        target = self.dsn if dbname is None else self.dsn_for(dbname)
        return psycopg.connect(target, autocommit=autocommit, application_name="eventgate")

    def describe(self) -> str:
        return f"PostgreSQL {self.version} via {self.route}"


def server_version(dsn: str) -> str:
    """Ask a server for its version, e.g. '15.18'."""
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    assert row is not None
    return str(row[0]).split()[0]
