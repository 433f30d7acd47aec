"""The one way eventgate opens a session on a database it was pointed at, and the one wording
of the error when it cannot: what failed (the target, never its password), why, and what to
check."""

from __future__ import annotations

from typing import Any

import psycopg

from eventgate import dsn as dsn_mod
from eventgate import operator_env
from eventgate.errors import EventgateError

FIX = ("check that the server runs, that host, port, user and password are right and that the "
       "database exists")


def session_options(dsn: str, *, read_only: bool = False, statement_timeout_ms: int | None = None,
                    lock_timeout_ms: int | None = None, settings: dict[str, str] | None = None,
                    ) -> str:
    """libpq `options` for a session: the DSN's own first, so that ours win where they
    overlap."""
    parts = [dsn_mod.parse(dsn).get("options", "")]
    if read_only:
        parts.append("-c default_transaction_read_only=on")
    if statement_timeout_ms is not None:
        parts.append(f"-c statement_timeout={int(statement_timeout_ms)}")
    if lock_timeout_ms is not None:
        parts.append(f"-c lock_timeout={int(lock_timeout_ms)}")
    parts.extend(f"-c {k}={v}" for k, v in (settings or {}).items())
    return " ".join(p for p in parts if p)


def unreachable(dsn: str, exc: BaseException, *, who: str = "", what: str = "") -> str:
    """`[who ]could not connect to <target><what>: <reason>; check ...`, password-free."""
    reason = " ".join(dsn_mod.redact(str(exc)).split())
    head = f"{who} " if who else ""
    return f"{head}could not connect to {dsn_mod.describe(dsn)}{what}: {reason}; {FIX}"


def connect(dsn: str, *, application_name: str = "eventgate", autocommit: bool = True,
            read_only: bool = False, statement_timeout_ms: int | None = None,
            lock_timeout_ms: int | None = None, settings: dict[str, str] | None = None,
            connect_timeout: int | None = None, who: str = "", what: str = "",
            error: type[EventgateError] = EventgateError) -> psycopg.Connection:
    """A session on `dsn`; `error` (an EventgateError) with unreachable()'s wording when the
    server cannot be reached."""
    options = session_options(dsn, read_only=read_only, statement_timeout_ms=statement_timeout_ms,
                              lock_timeout_ms=lock_timeout_ms, settings=settings)
    extra: dict[str, Any] = {"options": options} if options else {}
    if connect_timeout is None:  # libpq's own PGCONNECT_TIMEOUT, else 10 s
        connect_timeout = operator_env.connect_timeout()
    try:
        return psycopg.connect(dsn, autocommit=autocommit, application_name=application_name,
                               connect_timeout=connect_timeout, **extra)
    except psycopg.OperationalError as exc:
        raise error(unreachable(dsn, exc, who=who, what=what)) from exc
