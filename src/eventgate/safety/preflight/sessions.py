"""Preflight's own read-only session, and the other sessions the migration would meet: how many
there are, who blocks whom, who sits idle in a transaction holding a lock the migration needs,
and whether the legacy tables can be read at all."""

from __future__ import annotations

import psycopg

from eventgate import dsn as dsn_mod
from eventgate.errors import EventgateError
from eventgate.pg import connect as pg_connect
from eventgate.safety.preflight.check import EXAMPLES, Check, Options, one
from eventgate.safety.preflight.state import MigrationState, Scope

APPLICATION_NAME = "eventgate preflight"
QUERY_CHARS = 80


def connect(dsn: str, options: Options | None = None) -> psycopg.Connection:
    """A read-only session with a statement and a lock timeout; an EventgateError naming the
    target (never its password) when the server cannot be reached."""
    options = options or Options()
    conn = pg_connect.connect(dsn, application_name=APPLICATION_NAME, autocommit=True,
                              read_only=True, statement_timeout_ms=options.statement_timeout_ms,
                              lock_timeout_ms=options.lock_timeout_ms, who="preflight")
    row = conn.execute("SHOW default_transaction_read_only").fetchone()
    if row != ("on",):
        conn.close()
        raise EventgateError(
            f"preflight refuses to go on: its session on {dsn_mod.describe(dsn)} is not "
            "read-only (a connection pooler may drop startup options); connect to the server "
            "directly")
    return conn


def check_legacy_tables(conn: psycopg.Connection, state: MigrationState,
                        locked: dict[str, str]) -> Check:
    scope = state.scope
    if state.migrated:
        return Check("legacy tables", "ok",
                     f"already migrated ({state.describe()}); data checks skipped")
    if state.missing:
        present = [t for t in scope.legacy_tables if t not in state.missing]
        return Check("legacy tables", "fail",
                     f"missing: {', '.join(state.missing)} (present: "
                     f"{', '.join(present) or 'none'}; {state.ledger_line()})",
                     f"point --dsn at {scope.database}; after a failed or partial "
                     "migration see eventgate status")
    if locked:
        holders = "; ".join(f"{table}: {who}" for table, who in locked.items())
        return Check("legacy tables", "fail",
                     f"cannot read without waiting: {holders}",
                     "let that session finish, or end it (SELECT pg_terminate_backend(pid)), "
                     "then run preflight again")
    counts = [f"{table} {int(one(conn, f'SELECT count(*) FROM {table}')):,}"
              for table in scope.legacy_tables]
    return Check("legacy tables", "ok", f"{', '.join(counts)}; {state.ledger_line()}")


def check_connections(conn: psycopg.Connection, limit: int, scope: Scope) -> Check:
    rows = conn.execute(
        """SELECT coalesce(nullif(application_name, ''), '(no application_name)'),
                  coalesce(usename, '?'), count(*)
             FROM pg_stat_activity
            WHERE datname = current_database() AND pid <> pg_backend_pid()
              AND backend_type = 'client backend'
            GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2""").fetchall()
    total = sum(int(r[2]) for r in rows)
    groups = ", ".join(f"{r[2]} from {r[0]} as {r[1]}" for r in rows[:5])
    more = f", … {len(rows) - 5} more groups" if len(rows) > 5 else ""
    figure = (f"{total} other sessions on this database (warn above {limit})"
              + (f": {groups}{more}" if rows else ""))
    if total > limit:
        # A warning: busy is not wrong, but every writer waits from the migration's LOCK TABLE
        # to its COMMIT, so fewer sessions mean a shorter, calmer window.
        return Check("other connections", "warn", figure,
                     "pause or scale down the applications for the migration window; "
                     f"{scope.final} holds writes to the legacy tables until it commits")
    return Check("other connections", "ok", figure)


# One session as a line of text. Every query using it passes parameters, hence the doubled %.
_SESSION = """format('pid %%s (%%s, %%L, %%s, %%s %%s s: %%s)', {a}.pid,
                     coalesce({a}.usename, '?'), coalesce({a}.application_name, ''),
                     coalesce({a}.state, '?'), {age_label},
                     round(extract(epoch FROM now() - {age})::numeric, 1),
                     coalesce(left(regexp_replace({a}.query, '\\s+', ' ', 'g'), {chars}),
                              '<query hidden: needs pg_read_all_stats>'))"""


def _session(alias: str, age: str, age_label: str) -> str:
    return _SESSION.format(a=alias, age=age, age_label=f"'{age_label}'", chars=QUERY_CHARS)


def check_blocking_locks(conn: psycopg.Connection, scope: Scope) -> Check:
    blocker = _session("blocker", "coalesce(blocker.xact_start, blocker.backend_start)",
                       "transaction open")
    blocked = _session("blocked", "coalesce(blocked.query_start, blocked.backend_start)",
                       "waiting")
    rows = conn.execute(
        f"""SELECT {blocker} || ' blocks ' || {blocked}, count(*) OVER ()
              FROM pg_stat_activity blocked
             CROSS JOIN LATERAL unnest(pg_blocking_pids(blocked.pid)) AS b(pid)
              JOIN pg_stat_activity blocker ON blocker.pid = b.pid
             WHERE blocked.datname = current_database() AND blocked.pid <> pg_backend_pid()
             ORDER BY blocker.pid, blocked.pid LIMIT %s""", (EXAMPLES,)).fetchall()
    if not rows:
        return Check("blocking locks", "ok", "no session waits for another's lock")
    pairs = "; ".join(str(r[0]) for r in rows)
    return Check("blocking locks", "fail", f"{rows[0][1]} waiting: {pairs}",
                 "let the blocking transaction finish, or end it (SELECT "
                 f"pg_terminate_backend(pid)); {scope.final}'s LOCK TABLE would queue behind "
                 f"it, and every later reader behind {scope.final}")


def check_idle_lock_holders(conn: psycopg.Connection, limit_s: float, scope: Scope) -> Check:
    """Fail, not warn: an idle transaction releases nothing until its application acts, and
    even a reader's ACCESS SHARE stops the migration at its RENAME (ACCESS EXCLUSIVE), which
    then holds up every other reader while it waits; the runner's retries only repeat that
    outage."""
    session = _session("a", "a.state_change", "idle")
    tables = scope.migrated_tables
    rows = conn.execute(
        f"""SELECT {session} || ' holds ' || string_agg(DISTINCT c.relname || ' '
                                                         || l.mode, ', '),
                   count(*) OVER ()
              FROM pg_locks l
              JOIN pg_class c ON c.oid = l.relation
              JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE l.locktype = 'relation' AND l.granted
               AND l.relation IN (SELECT to_regclass(t) FROM unnest(%s::text[]) t)
               AND a.pid <> pg_backend_pid()
               AND a.state IN ('idle in transaction', 'idle in transaction (aborted)')
               AND now() - a.state_change > make_interval(secs => %s)
             GROUP BY a.pid, a.usename, a.application_name, a.state, a.state_change, a.query
             ORDER BY a.pid LIMIT {EXAMPLES}""",
        (list(tables), float(limit_s))).fetchall()
    if not rows:
        return Check("idle transactions", "ok",
                     f"no session idle in transaction over {limit_s:g} s holds a lock on "
                     f"{', '.join(tables)}")
    return Check("idle transactions", "fail",
                 f"{rows[0][1]} idle in transaction over {limit_s:g} s with a lock "
                 f"{scope.final} would wait for: {'; '.join(str(r[0]) for r in rows)}",
                 "have the application commit, or end the session (SELECT "
                 "pg_terminate_backend(pid)); idle_in_transaction_session_timeout keeps it "
                 "from happening again")
