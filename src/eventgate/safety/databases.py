"""Sessions for backup and restore, and the databases they create, rename and drop: a scratch
database to verify a dump in, a new one to restore into, each made like the database it copies.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from eventgate.errors import BackupError
from eventgate.migrate import ledger
from eventgate.pg import connect as pg_connect
from eventgate.safety.checksums import CHECKSUM_SETTINGS

APPLICATION_NAME = "eventgate backup"
MAINTENANCE_DB = "postgres"
NAME_MAX = 63  # bytes in a database name (NAMEDATALEN - 1); longer names are cut by the server
DB_STAMP = "%Y%m%d_%H%M%S"  # lower case: the operator can type the name without quotes


def connect(dsn: str, *, autocommit: bool = True, pinned: bool = False,
            what: str = "") -> psycopg.Connection:
    """A session for backup and restore; `pinned` applies CHECKSUM_SETTINGS, as every session
    that takes or compares checksums must. A failure is a BackupError naming the target
    without its password."""
    return pg_connect.connect(dsn, application_name=APPLICATION_NAME, autocommit=autocommit,
                              settings=CHECKSUM_SETTINGS if pinned else None, what=what,
                              error=BackupError)


def scalar(conn: psycopg.Connection, query: str, params: tuple[object, ...] = ()) -> Any:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def server_version(conn: psycopg.Connection) -> str:
    return str(scalar(conn, "SHOW server_version")).split()[0]


def is_superuser(conn: psycopg.Connection) -> bool:
    return bool(scalar(conn, "SHOW is_superuser") == "on")


def migration_version(conn: psycopg.Connection) -> int | None:
    """The newest applied migration, from the ledger; None before the first."""
    qualified = f"{ledger.SCHEMA}.{ledger.TABLE}"
    if not scalar(conn, "SELECT to_regclass(%s) IS NOT NULL", (qualified,)):
        return None
    newest = scalar(conn, f"SELECT max(version) FROM {qualified}")
    return None if newest is None else int(newest)


def free_database_name(conn: psycopg.Connection, base: str, suffix: str) -> str:
    """`<base><suffix>`, cut to fit a database name and numbered if taken."""
    for n in range(1, 100):
        extra = suffix if n == 1 else f"{suffix}_{n}"
        room = NAME_MAX - len(extra.encode())
        name = base.encode()[:room].decode(errors="ignore") + extra
        if not scalar(conn, "SELECT count(*) FROM pg_database WHERE datname = %s", (name,)):
            return name
    raise BackupError(f"no free database name like {base}{suffix}: drop old ones")


def database_properties(conn: psycopg.Connection, name: str) -> dict[str, Any] | None:
    """The pg_database row of `name` (whatever columns this server version has), with owner,
    encoding and tablespace as names; None when there is no such database."""
    row = conn.execute(
        "SELECT to_jsonb(d) || jsonb_build_object('owner', pg_get_userbyid(d.datdba), "
        "'encoding_name', pg_encoding_to_char(d.encoding), 'tablespace', t.spcname, "
        "'comment', shobj_description(d.oid, 'pg_database')) "
        "FROM pg_database d JOIN pg_tablespace t ON t.oid = d.dattablespace "
        "WHERE d.datname = %s", (name,)).fetchone()
    return None if row is None else dict(row[0])


def create_database_like(conn: psycopg.Connection, name: str, like: str, *,
                         same_owner: bool) -> None:
    """CREATE DATABASE `name` from template0 with the encoding, locale and tablespace of
    `like` (and its owner when `same_owner`), so restored text sorts and converts the same."""
    props = database_properties(conn, like)
    parts = [sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name))]
    if props is not None:
        options: list[tuple[str, sql.Composable]] = []
        if same_owner:
            options.append(("OWNER", sql.Identifier(props["owner"])))
        options += [("ENCODING", sql.Literal(props["encoding_name"])),
                    ("LC_COLLATE", sql.Literal(props["datcollate"])),
                    ("LC_CTYPE", sql.Literal(props["datctype"])),
                    ("TABLESPACE", sql.Identifier(props["tablespace"]))]
        options += _locale_provider(props)
        parts += [sql.SQL("{} {}").format(sql.SQL(key), value) for key, value in options]
    conn.execute(sql.SQL(" ").join(parts))


def _locale_provider(props: dict[str, Any]) -> list[tuple[str, sql.Composable]]:
    """The locale provider clauses of a pg_database row; none before PostgreSQL 15."""
    provider = props.get("datlocprovider")
    icu_locale = props.get("daticulocale") or props.get("datlocale")
    options: list[tuple[str, sql.Composable]] = []
    if provider == "i":
        options += [("LOCALE_PROVIDER", sql.SQL("icu")), ("ICU_LOCALE", sql.Literal(icu_locale))]
        if props.get("daticurules"):
            options.append(("ICU_RULES", sql.Literal(props["daticurules"])))
    elif provider == "b":
        options += [("LOCALE_PROVIDER", sql.SQL("builtin")),
                    ("BUILTIN_LOCALE", sql.Literal(props.get("datlocale")))]
    elif provider == "c":
        options.append(("LOCALE_PROVIDER", sql.SQL("libc")))
    return options


def drop_database(conn: psycopg.Connection, name: str) -> None:
    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
