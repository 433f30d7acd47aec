"""Login roles the suite makes for what it starts itself: the reference engine logs in as a
member of the bundle's engine role, so it runs under the tables' row-level security the way a
deployed engine must (not their owner, no BYPASSRLS), never as the suite's superuser."""

from __future__ import annotations

import contextlib

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from eventgate.pg.connect import connect

ENGINE_LOGIN = "eventgate_engine_login"


def engine_login_dsn(dsn: str, engine_role: str, login: str = ENGINE_LOGIN) -> str:
    """`dsn` (a database the bundle migrated, reached as a role that may create roles) as
    `login`: a LOGIN role, member of `engine_role` and nothing else, created when missing.
    Roles are the cluster's, so this holds for every database of it at once."""
    with connect(dsn, autocommit=True) as conn:
        _create_once(conn, login)
        conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(engine_role),
                                                       sql.Identifier(login)))
    return make_conninfo(dsn, user=login, password=None)


def _create_once(conn: psycopg.Connection, login: str) -> None:
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (login,)).fetchone()
    if exists:
        return
    # Another worker of the run may make it at the same moment.
    with contextlib.suppress(psycopg.errors.DuplicateObject, psycopg.errors.UniqueViolation):
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB "
                             "NOCREATEROLE").format(sql.Identifier(login)))

