"""Keeping two runners apart (an advisory lock) and living with other sessions' locks
(lock_timeout, retried with backoff on SQLSTATE 55P03)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import psycopg
from psycopg import errors

from eventgate.errors import MigrationError

# Two int4 keys: a namespace ("EGAT") and the migration lock within it.
LOCK_NAMESPACE = 0x45474154
LOCK_ID = 1
POLL_S = 0.1

T = TypeVar("T")


def _describe_sessions(rows: list[tuple[object, ...]]) -> str:
    return "; ".join(
        f"pid {pid} (application {app or '?'}, user {user}, {state}, since {since:%H:%M:%S})"
        + (f" on {what}" if what else "")
        for pid, app, user, state, since, what in rows
    )


def lock_holders(conn: psycopg.Connection) -> str:
    rows = conn.execute(
        """
        SELECT a.pid, a.application_name, a.usename, a.state, a.backend_start, NULL
          FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
         WHERE l.locktype = 'advisory' AND l.granted
           AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
           AND l.classid = %s AND l.objid = %s AND l.objsubid = 2
        """,
        (LOCK_NAMESPACE, LOCK_ID),
    ).fetchall()
    return _describe_sessions(rows) or "a session that has since gone"


def relation_lock_holders(conn: psycopg.Connection) -> str:
    """Other sessions holding locks on tables of this database: who a migration waited on."""
    rows = conn.execute(
        """
        SELECT a.pid, a.application_name, a.usename, a.state, a.backend_start,
               string_agg(DISTINCT l.relation::regclass::text || ' (' || l.mode || ')', ', ')
          FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
         WHERE l.locktype = 'relation' AND l.granted AND l.pid <> pg_backend_pid()
           AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
           AND l.relation >= 16384
         GROUP BY 1, 2, 3, 4, 5
        """
    ).fetchall()
    return _describe_sessions(rows) or "no session holds a table lock now"


def table_lock_holders(conn: psycopg.Connection) -> str:
    return f"sessions holding table locks: {relation_lock_holders(conn)}"


def open_transactions(conn: psycopg.Connection) -> str:
    """The sessions a CONCURRENTLY build or VALIDATE waits out: every transaction of this
    database begun before it, whatever it locks."""
    rows = conn.execute(
        """
        SELECT pid, application_name, usename, state, xact_start, NULL
          FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid()
           AND xact_start IS NOT NULL AND backend_type = 'client backend'
         ORDER BY xact_start LIMIT 5
        """
    ).fetchall()
    return ("transactions a CONCURRENTLY build waits for (it waits out every transaction older "
            f"than itself): {_describe_sessions(rows) or 'none open now'}")


def acquire_runner_lock(conn: psycopg.Connection, wait_s: float) -> None:
    """Take the session-level migration lock, waiting up to wait_s for another runner."""
    deadline = time.monotonic() + wait_s
    while True:
        row = conn.execute(
            "SELECT pg_try_advisory_lock(%s, %s)", (LOCK_NAMESPACE, LOCK_ID)
        ).fetchone()
        if row and row[0]:
            return
        if time.monotonic() >= deadline:
            raise MigrationError(
                f"another migration runner holds the migration lock on this database, and it "
                f"was not released within {wait_s:g} s: held by {lock_holders(conn)}; wait for "
                "it to finish, or end that session if it is stuck (SELECT pg_terminate_backend"
                "(pid)), then run again"
            )
        time.sleep(POLL_S)


def release_runner_lock(conn: psycopg.Connection) -> None:
    if not conn.closed:
        conn.execute("SELECT pg_advisory_unlock(%s, %s)", (LOCK_NAMESPACE, LOCK_ID))


def retry_on_lock_timeout(
    conn: psycopg.Connection,
    attempt: Callable[[], T],
    what: str,
    retries: int,
    lock_timeout_ms: int,
    backoff_s: float = 0.25,
    max_pause_s: float = 60.0,
    on_retry: Callable[[int, float], None] | None = None,
    blockers: Callable[[psycopg.Connection], str] = table_lock_holders,
) -> T:
    """Run attempt(); when it gives up waiting for a lock (55P03) or is chosen as a deadlock
    victim (40P01, e.g. a legacy transaction upgrading its lock while we upgrade ours), back off
    and run it again."""
    for n in range(retries + 1):
        try:
            return attempt()
        except (errors.LockNotAvailable, errors.DeadlockDetected) as exc:
            if n == retries:
                cause = ("a deadlock" if isinstance(exc, errors.DeadlockDetected)
                         else f"lock_timeout ({lock_timeout_ms} ms)")
                tries = f"{retries + 1} attempts, the last" if retries else "1 attempt,"
                raise MigrationError(
                    f"{what} could not take its locks: {tries} ended by "
                    f"{cause}; {blockers(conn)}; let them finish or end them, then run "
                    "again"
                ) from exc
            pause = min(max_pause_s, backoff_s * (2**n))
            if on_retry:
                on_retry(n + 1, pause)
            time.sleep(pause)
    raise AssertionError("unreachable")
