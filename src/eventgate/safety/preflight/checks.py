"""The deployment guide's pre-migration checklist: is this database ready for migrations
006 to 010? Every check only reads. Each gives a status (ok, warn, fail, skip), a one-line figure,
and for a problem what to do about it; the migration may go ahead when none failed."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, Literal

import psycopg
from psycopg import errors as pg_errors

from eventgate import dsn as dsn_mod
from eventgate.errors import EventgateError
from eventgate.migrate import ledger
from eventgate.safety import catalog

Status = Literal["ok", "warn", "fail", "skip"]

APPLICATION_NAME = "eventgate preflight"
MIN_SERVER_VERSION = 140000
FINAL_MIGRATION = 10
# The tables 010 locks, copies into the new schema and renames to *_backup; tenants stays put.
MIGRATED_TABLES = ("wedding_events", "wedding_invitations", "wedding_sections")
LEGACY_TABLES = ("tenants", *MIGRATED_TABLES)
NEW_TABLES = ("events", "event_participants", "event_sections")
EXAMPLES = 10
QUERY_CHARS = 80
# A backend's own memory (catalog caches, plan, buffers of its result) besides work_mem.
MEMORY_MARGIN = 64 * 1024**2


@dataclass(frozen=True)
class Options:
    backup_dir: Path = Path("backups")
    max_backup_age_h: float = 24.0
    skip_backup_check: bool = False
    disk_factor: float = 2.0
    max_connections: int = 10
    max_idle_in_transaction_s: float = 60.0
    statement_timeout_ms: int = 30_000
    # Short, so a lock nobody releases costs one failed check, not a hung preflight.
    lock_timeout_ms: int = 2_000


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str  # the figure: what was measured, against what
    fix: str = ""  # what to do, for a warn or a fail

    def to_json(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class Report:
    database: str  # the described DSN, never with its password
    at: datetime
    duration_s: float
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.status == "fail"]

    def check(self, name: str) -> Check:
        for found in self.checks:
            if found.name == name:
                return found
        raise KeyError(f"no check named {name!r}; there are: "
                       f"{', '.join(c.name for c in self.checks)}")

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "checks": [c.to_json() for c in self.checks],
                "database": self.database, "at": self.at.isoformat(),
                "duration_s": round(self.duration_s, 3)}


# -- connecting --------------------------------------------------------------------------------


def connect(dsn: str, options: Options | None = None) -> psycopg.Connection:
    """A read-only session with a statement and a lock timeout; an EventgateError naming the
    target (never its password) when the server cannot be reached."""
    options = options or Options()
    # After the DSN's own options (a search_path, say), so that ours win where they overlap.
    settings = " ".join(filter(None, (
        dsn_mod.parse(dsn).get("options"), "-c default_transaction_read_only=on",
        f"-c statement_timeout={int(options.statement_timeout_ms)}",
        f"-c lock_timeout={int(options.lock_timeout_ms)}")))
    try:
        conn = psycopg.connect(dsn, autocommit=True, application_name=APPLICATION_NAME,
                               connect_timeout=10, options=settings)
    except psycopg.OperationalError as exc:
        reason = " ".join(dsn_mod.redact(str(exc)).split())
        raise EventgateError(
            f"preflight could not connect to {dsn_mod.describe(dsn)}: {reason}; check that the "
            "server runs and that host, port, user and password are right") from exc
    row = conn.execute("SHOW default_transaction_read_only").fetchone()
    if row != ("on",):
        conn.close()
        raise EventgateError(
            f"preflight refuses to go on: its session on {dsn_mod.describe(dsn)} is not "
            "read-only (a connection pooler may drop startup options); connect to the server "
            "directly")
    return conn


def run_preflight(dsn: str, options: Options | None = None) -> Report:
    """Connect read-only, run every check, and say what each found."""
    options = options or Options()
    at = datetime.now(UTC)
    started = time.monotonic()
    with connect(dsn, options) as conn:
        checks = run_checks(conn, options)
    return Report(dsn_mod.describe(dsn), at, time.monotonic() - started, tuple(checks))


def run_checks(conn: psycopg.Connection, options: Options) -> list[Check]:
    """Every check on an open session; a check whose query fails is reported as failed, and the
    others still run."""
    state = migration_state(conn)
    locked = exclusive_locks(conn)
    host = locate_server(conn)
    database = _one(conn, "SELECT current_database()")
    checks = [
        _guarded("server version", lambda: check_server_version(conn)),
        _guarded("legacy tables", lambda: check_legacy_tables(conn, state, locked)),
        _guarded("other connections",
                 lambda: check_connections(conn, options.max_connections)),
        _guarded("blocking locks", lambda: check_blocking_locks(conn)),
        _guarded("idle transactions",
                 lambda: check_idle_lock_holders(conn, options.max_idle_in_transaction_s)),
        _guarded("disk space",
                 lambda: check_disk(conn, host, options.disk_factor, state, locked)),
        _guarded("memory", lambda: check_memory(conn, host)),
        check_backup(str(database), options),
    ]
    checks += [_guarded(rule.name, partial(check_rule, conn, rule, state, locked))
               for rule in DATA_RULES]
    return checks


def _guarded(name: str, run: Callable[[], Check]) -> Check:
    try:
        return run()
    except pg_errors.LockNotAvailable:
        return Check(name, "fail", "waited lock_timeout for a lock another session holds",
                     "see 'blocking locks' and 'idle transactions'; let that session finish "
                     "or end it, then run preflight again")
    except pg_errors.QueryCanceled:
        return Check(name, "fail", "its query ran past preflight's statement_timeout",
                     "run preflight when the database is less busy")
    except psycopg.Error as exc:
        first_line = (str(exc).strip().splitlines() or ["?"])[0]
        return Check(name, "fail", f"could not check: {dsn_mod.redact(first_line)}",
                     "connect as a user who may read the catalog and the legacy tables "
                     "(the owner, or a superuser)")


def _one(conn: psycopg.Connection, query: str, params: Any = None) -> Any:
    row = conn.execute(query, params).fetchone()
    assert row is not None, f"no row from {query}"
    return row[0]


# -- what the database holds -------------------------------------------------------------------


@dataclass(frozen=True)
class MigrationState:
    applied: tuple[int, ...]  # versions in the ledger
    relkinds: dict[str, str]  # legacy name -> pg_class.relkind, for the names that exist

    @property
    def migrated(self) -> bool:
        return FINAL_MIGRATION in self.applied or self.relkinds.get("wedding_events") == "v"

    @property
    def missing(self) -> list[str]:
        return [t for t in LEGACY_TABLES if self.relkinds.get(t) not in ("r", "p")]

    def describe(self) -> str:
        if FINAL_MIGRATION in self.applied:
            return f"ledger at {max(self.applied):03d}"
        return "wedding_events is a view"

    def ledger_line(self) -> str:
        if not self.applied:
            return "no migration applied yet"
        return f"ledger at {max(self.applied):03d} ({', '.join(f'{v:03d}' for v in self.applied)})"


def migration_state(conn: psycopg.Connection) -> MigrationState:
    try:
        applied = tuple(e.version for e in ledger.entries(conn))
    except pg_errors.InsufficientPrivilege:
        applied = ()  # the relkind of wedding_events still tells a migrated database apart
    rows = conn.execute("SELECT t, c.relkind FROM unnest(%s::text[]) t "
                        "JOIN pg_class c ON c.oid = to_regclass(t)",
                        (list(LEGACY_TABLES),)).fetchall()
    return MigrationState(applied, {str(r[0]): str(r[1]) for r in rows})


def exclusive_locks(conn: psycopg.Connection) -> dict[str, str]:
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
            GROUP BY c.relname ORDER BY c.relname""", (list(LEGACY_TABLES),)).fetchall()
    return {str(r[0]): str(r[1]) for r in rows}


def _cannot_read(state: MigrationState, locked: dict[str, str],
                 tables: Iterable[str]) -> str | None:
    """Why the legacy rows are not checked, or None when they can be read."""
    if state.migrated:
        return (f"already migrated ({state.describe()}): the legacy names are compatibility "
                "views now, and 010 checked these rows itself")
    missing = [t for t in tables if t in state.missing]
    if missing:
        return f"legacy table missing: {', '.join(missing)} (see legacy tables)"
    busy = [t for t in tables if t in locked]
    if busy:
        return f"{', '.join(busy)} locked by another session (see legacy tables)"
    return None


# -- server and host ---------------------------------------------------------------------------


def check_server_version(conn: psycopg.Connection) -> Check:
    number = int(_one(conn, "SELECT current_setting('server_version_num')::int"))
    version = str(_one(conn, "SHOW server_version")).split()[0]
    figure = f"PostgreSQL {version} ({number}); need ≥ 14"
    if number < MIN_SERVER_VERSION:
        return Check("server version", "fail", figure,
                     "upgrade the server to PostgreSQL 14 or newer before migrating; the "
                     "migrations use features older servers lack")
    return Check("server version", "ok", figure)


@dataclass(frozen=True)
class ServerHost:
    local: bool
    reason: str  # why the server is, or is not known to be, on this host
    data_directory: Path | None = None


def postmaster_mismatch(pid_file: str, data_directory: str, start_epoch: float,
                        port: str) -> str | None:
    """Why postmaster.pid does not describe the server we are connected to, or None when it
    does: same data directory, same port and the same start time.

    The file holds whole seconds, written a moment before pg_postmaster_start_time() is taken,
    hence the two seconds of slack."""
    lines = pid_file.splitlines()
    if len(lines) < 4:
        return "postmaster.pid is incomplete"
    if lines[1].strip() != data_directory:
        return f"postmaster.pid names data directory {lines[1].strip()}"
    if lines[3].strip() != port:
        return f"postmaster.pid names port {lines[3].strip()}, the server uses {port}"
    try:
        started = float(lines[2])
    except ValueError:
        return f"postmaster.pid has no start time ({lines[2].strip()!r})"
    if abs(started - start_epoch) > 2:
        return "postmaster.pid belongs to a server started at another time"
    return None


def locate_server(conn: psycopg.Connection) -> ServerHost:
    """Whether the server runs on this host: its data_directory here holds a postmaster.pid
    describing this very server. Another host may well have a directory of the same name."""
    try:
        data_directory = str(_one(conn, "SHOW data_directory"))
    except pg_errors.InsufficientPrivilege:
        return ServerHost(False, "cannot see data_directory (needs superuser or "
                          "pg_read_all_settings)")
    start_epoch, port = conn.execute(
        "SELECT extract(epoch FROM pg_postmaster_start_time())::float8, "
        "current_setting('port')").fetchone() or (0.0, "")
    pid_file = Path(data_directory) / "postmaster.pid"
    try:
        text = pid_file.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ServerHost(False, f"server not on this host (no {pid_file} here)")
    except OSError as exc:
        return ServerHost(False, f"cannot read {pid_file} ({exc.strerror}), so cannot tell "
                          "whether the server runs on this host")
    mismatch = postmaster_mismatch(text, data_directory, float(start_epoch), str(port))
    if mismatch:
        return ServerHost(False, f"server not on this host ({mismatch})")
    return ServerHost(True, f"server runs on this host, data in {data_directory}",
                      Path(data_directory))


def size(n: float) -> str:
    """Bytes as a person reads them, in powers of 1024 like pg_size_pretty."""
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} EB"


def _new_tables_directory(conn: psycopg.Connection, host: ServerHost) -> Path:
    """Where 007's tables and 010's rows go: the tablespace new tables get (default_tablespace,
    else the database's own), whose location is empty for pg_default."""
    assert host.data_directory is not None
    location = str(_one(conn, """
        SELECT pg_tablespace_location(coalesce(
                   (SELECT oid FROM pg_tablespace
                     WHERE spcname = nullif(current_setting('default_tablespace'), '')),
                   d.dattablespace))
          FROM pg_database d WHERE d.datname = current_database()"""))
    return Path(location) if location else host.data_directory


def legacy_size(conn: psycopg.Connection) -> int:
    """What 010 copies: the migrated tables with their indexes and toast."""
    return int(_one(conn, "SELECT coalesce(sum(pg_total_relation_size(to_regclass(t))), 0)"
                          "::bigint FROM unnest(%s::text[]) t", (list(MIGRATED_TABLES),)))


def check_disk(conn: psycopg.Connection, host: ServerHost, factor: float,
               state: MigrationState, locked: dict[str, str]) -> Check:
    why_not = _cannot_read(state, locked, MIGRATED_TABLES)
    if why_not:
        return Check("disk space", "skip", why_not)
    # The new tables receive a full copy (rows and rebuilt indexes) while the legacy tables
    # stay as *_backup, and the WAL of that copy needs room too until a checkpoint: hence a
    # factor over the legacy size rather than the size itself.
    legacy = legacy_size(conn)
    need = factor * legacy
    estimate = (f"need ≥ {factor:g} x legacy tables' size (incl. indexes and toast) = "
                f"{factor:g} x {size(legacy)} = {size(need)}")
    if not host.local:
        return Check("disk space", "warn", f"{host.reason}; free disk unknown ({estimate})",
                     "check free space on the database server's data volume by hand")
    directory = _new_tables_directory(conn, host)
    stats = os.statvfs(directory)
    free = stats.f_bavail * stats.f_frsize
    figure = f"{estimate}; free {size(free)} on {directory}"
    if free < need:
        return Check("disk space", "fail", figure,
                     f"free {size(need - free)} more on the filesystem holding {directory} "
                     "(or give the database a larger volume) before migrating; --disk-factor "
                     "changes the estimate")
    return Check("disk space", "ok", figure)


def mem_available(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    """MemAvailable in bytes, or None where the kernel does not say (not Linux)."""
    try:
        lines = meminfo.read_text(encoding="ascii").splitlines()
    except OSError:
        return None
    for line in lines:
        key, _, value = line.partition(":")
        if key == "MemAvailable":
            return int(value.split()[0]) * 1024
    return None


def check_memory(conn: psycopg.Connection, host: ServerHost) -> Check:
    row = conn.execute(
        "SELECT current_setting('shared_buffers'), current_setting('maintenance_work_mem'), "
        "current_setting('work_mem'), pg_size_bytes(current_setting('maintenance_work_mem')), "
        "pg_size_bytes(current_setting('work_mem')), "
        "current_setting('hash_mem_multiplier')::float8").fetchone()
    assert row is not None
    shared, maintenance, work, maintenance_b, work_b, hash_multiplier = row
    # 010 rebuilds the new tables' indexes one at a time, each within maintenance_work_mem
    # (shared with its parallel workers); an autovacuum worker on the freshly loaded tables
    # may take as much again (autovacuum_work_mem defaults to it). The INSERT ... SELECT joins
    # and the refusal checks sort and hash: a few nodes of work_mem (times hash_mem_multiplier).
    # shared_buffers is allocated at server start, so it is not needed anew.
    need = 2 * int(maintenance_b) + 4 * int(work_b) * float(hash_multiplier) + MEMORY_MARGIN
    estimate = (f"need ≈ 2 x maintenance_work_mem + 4 x work_mem x hash_mem_multiplier "
                f"{float(hash_multiplier):g} + {size(MEMORY_MARGIN)} = {size(need)}")
    settings = f"shared_buffers {shared}, maintenance_work_mem {maintenance}, work_mem {work}"
    if not host.local:
        return Check("memory", "warn", f"{host.reason}; MemAvailable unknown ({estimate}); "
                     f"{settings}", "check the server's free memory by hand")
    available = mem_available()
    if available is None:
        return Check("memory", "warn", f"MemAvailable unknown (no /proc/meminfo); {estimate}; "
                     f"{settings}", "check the server's free memory by hand")
    figure = f"{estimate}; MemAvailable {size(available)}; {settings}"
    if available < need:
        # A warning: short memory makes index builds spill to disk and run slower, it does
        # not make the migration fail.
        return Check("memory", "warn", figure,
                     "free memory on the server, or lower maintenance_work_mem for the "
                     "migration's role (ALTER ROLE ... SET maintenance_work_mem)")
    return Check("memory", "ok", figure)


# -- legacy tables and sessions ----------------------------------------------------------------


def check_legacy_tables(conn: psycopg.Connection, state: MigrationState,
                        locked: dict[str, str]) -> Check:
    if state.migrated:
        return Check("legacy tables", "ok",
                     f"already migrated ({state.describe()}); data checks skipped")
    if state.missing:
        present = [t for t in LEGACY_TABLES if t not in state.missing]
        return Check("legacy tables", "fail",
                     f"missing: {', '.join(state.missing)} (present: "
                     f"{', '.join(present) or 'none'}; {state.ledger_line()})",
                     "point --dsn at the legacy wedding database; after a failed or partial "
                     "migration see eventgate status")
    if locked:
        holders = "; ".join(f"{table}: {who}" for table, who in locked.items())
        return Check("legacy tables", "fail",
                     f"cannot read without waiting: {holders}",
                     "let that session finish, or end it (SELECT pg_terminate_backend(pid)), "
                     "then run preflight again")
    counts = [f"{table} {int(_one(conn, f'SELECT count(*) FROM {table}')):,}"
              for table in LEGACY_TABLES]
    return Check("legacy tables", "ok", f"{', '.join(counts)}; {state.ledger_line()}")


def check_connections(conn: psycopg.Connection, limit: int) -> Check:
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
        # A warning: busy is not wrong, but every writer waits from 010's LOCK TABLE to its
        # COMMIT, so fewer sessions mean a shorter, calmer window.
        return Check("other connections", "warn", figure,
                     "pause or scale down the applications for the migration window; 010 "
                     "holds writes to the legacy tables until it commits")
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


def check_blocking_locks(conn: psycopg.Connection) -> Check:
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
                 "pg_terminate_backend(pid)); 010's LOCK TABLE would queue behind it, and "
                 "every later reader behind 010")


def check_idle_lock_holders(conn: psycopg.Connection, limit_s: float) -> Check:
    """Fail, not warn: an idle transaction releases nothing until its application acts, and
    even a reader's ACCESS SHARE stops 010 at its RENAME (ACCESS EXCLUSIVE), which then holds
    up every other reader while it waits; the runner's retries only repeat that outage."""
    session = _session("a", "a.state_change", "idle")
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
        (list(MIGRATED_TABLES), float(limit_s))).fetchall()
    if not rows:
        return Check("idle transactions", "ok",
                     f"no session idle in transaction over {limit_s:g} s holds a lock on "
                     f"{', '.join(MIGRATED_TABLES)}")
    return Check("idle transactions", "fail",
                 f"{rows[0][1]} idle in transaction over {limit_s:g} s with a lock 010 would "
                 f"wait for: {'; '.join(str(r[0]) for r in rows)}",
                 "have the application commit, or end the session (SELECT "
                 "pg_terminate_backend(pid)); idle_in_transaction_session_timeout keeps it "
                 "from happening again")


# -- backup ------------------------------------------------------------------------------------


def _age(record: catalog.BackupRecord) -> str:
    return f"{record.age_s() / 3600:.1f} h"


def _newest_seen(directory: Path, database: str) -> str:
    """The newest backup of `database` in `directory`, verified or not, for the failure text."""
    if not directory.is_dir():
        return "the directory does not exist"
    records, unreadable = catalog.scan(directory, database)
    skipped = f"; {len(unreadable)} unreadable metadata files" if unreadable else ""
    if not records:
        return f"no backup of {database} there{skipped}"
    newest = records[-1]
    if newest.verification is None:
        state = "never verified"
    elif not newest.verification.ok:
        state = "its verification failed" + (
            f" ({newest.verification.problems[0]})" if newest.verification.problems else "")
    elif newest.meta_path is not None and not newest.dump_path.is_file():
        state = "its dump file is missing"
    else:
        state = "verified"
    return f"newest seen: {newest.dump_file}, {_age(newest)} old, {state}{skipped}"


def check_backup(database: str, options: Options) -> Check:
    directory, limit_h = options.backup_dir, options.max_backup_age_h
    record = catalog.latest_verified(directory, database)
    _, unreadable = catalog.scan(directory)
    if record is not None and record.age_s() <= limit_h * 3600:
        found = (f"verified backup {record.dump_file} of {database}, "
                 f"{_age(record)} old (limit {limit_h:g} h), in {directory}")
        if unreadable:
            # A backup someone counts on may be among them: say so, without failing.
            return Check("backup", "warn", f"{found}; {len(unreadable)} metadata files could "
                         f"not be read: {unreadable[0]}",
                         "fix or remove the unreadable metadata files")
        return Check("backup", "ok", found)
    if record is not None:
        problem = (f"the newest verified backup of {database} in {directory}, "
                   f"{record.dump_file}, is {_age(record)} old (limit {limit_h:g} h)")
    else:
        problem = (f"no verified backup of {database} in {directory}; "
                   f"{_newest_seen(directory, database)}")
    fix = (f"take one with `eventgate backup --verify` into {directory} (or point "
           "--backup-dir at where backups are kept) and run preflight again")
    if options.skip_backup_check:
        return Check("backup", "warn",
                     f"not enforced (--skip-backup-check, for rehearsals): {problem}", fix)
    return Check("backup", "fail", problem, fix)


# -- legacy data the migration would refuse ----------------------------------------------------


@dataclass(frozen=True)
class DataRule:
    """A kind of legacy row that 010's preflight DO block refuses (or, with status "warn",
    accepts but someone should know of). `sql` returns up to EXAMPLES rows of (example,
    offending rows in all, examples in all); the conditions are 010's, so that preflight and
    the migration agree."""

    name: str
    what: str  # what is counted, e.g. "wedding_invitations whose wedding does not exist"
    sql: str
    fix: str
    tables: tuple[str, ...]
    status: Status = "fail"
    needs: tuple[str, ...] = ()  # relations the rule reads besides the legacy tables


_REFUSED = "; 010 refuses to migrate while any remain"
_KNOWN_ZONE = ("(EXISTS (SELECT 1 FROM pg_timezone_names z WHERE z.name = {zone}) "
               "OR EXISTS (SELECT 1 FROM pg_timezone_abbrevs a WHERE a.abbrev = {zone}))")


def _ids(where: str, table: str, example: str = "'id ' || id") -> str:
    return (f"SELECT {example}, count(*) OVER (), count(*) OVER () FROM {table} "
            f"WHERE {where} ORDER BY id LIMIT {EXAMPLES}")


def _values(column: str, table: str, where: str) -> str:
    """Offending values, most frequent first, each with its row count and an example id."""
    return (f"SELECT format('%L (%s rows, e.g. id %s)', v, n, first_id), sum(n) OVER ()::bigint, "
            f"count(*) OVER () FROM (SELECT {column} AS v, count(*) AS n, min(id) AS first_id "
            f"FROM {table} GROUP BY {column}) g WHERE {where.format(v='g.v')} "
            f"ORDER BY n DESC, v LIMIT {EXAMPLES}")


DATA_RULES: tuple[DataRule, ...] = (
    DataRule(
        "orphan invitations", "wedding_invitations whose wedding does not exist",
        _ids("NOT EXISTS (SELECT 1 FROM wedding_events w WHERE w.id = i.wedding_id)",
             "wedding_invitations i", "format('id %s (wedding_id %s)', id, wedding_id)"),
        "delete them, or set wedding_id to an existing wedding" + _REFUSED,
        ("wedding_invitations", "wedding_events")),
    DataRule(
        "orphan sections", "wedding_sections whose wedding does not exist",
        _ids("NOT EXISTS (SELECT 1 FROM wedding_events w WHERE w.id = s.wedding_id)",
             "wedding_sections s", "format('id %s (wedding_id %s)', id, wedding_id)"),
        "delete them, or set wedding_id to an existing wedding" + _REFUSED,
        ("wedding_sections", "wedding_events")),
    DataRule(
        "duplicate slugs", "wedding_events slugs used twice in one tenant, as tenant/slug",
        "SELECT format('%s/%s (ids %s)', tenant_id, slug, string_agg(id::text, ', ' ORDER BY "
        "id)), count(*) OVER (), count(*) OVER () FROM wedding_events "
        f"GROUP BY tenant_id, slug HAVING count(*) > 1 ORDER BY tenant_id, slug LIMIT {EXAMPLES}",
        "give each wedding of a tenant its own slug (UPDATE wedding_events SET slug = ... "
        "WHERE id = ...)" + _REFUSED,
        ("wedding_events",)),
    # A warning only: 010 migrates a wedding without a date to an event whose start_date is
    # NULL (events.start_date is nullable), and the compatibility view gives the NULL back.
    # The engine merely cannot place such an event on a calendar.
    DataRule(
        "missing wedding dates", "wedding_events without a wedding_date, which migrate with no "
        "start_date",
        _ids("wedding_date IS NULL", "wedding_events"),
        "nothing blocks the migration; set a wedding_date where one is known, so the engine "
        "can list those events by date",
        ("wedding_events",), status="warn"),
    DataRule(
        "rsvp values",
        "wedding_invitations with an rsvp_status outside pending/accepted/declined/maybe",
        _values("rsvp_status", "wedding_invitations",
                "{v} NOT IN ('pending', 'accepted', 'declined', 'maybe')"),
        "map each to pending, accepted, declined or maybe (UPDATE wedding_invitations SET "
        "rsvp_status = ... WHERE rsvp_status = ...)" + _REFUSED,
        ("wedding_invitations",)),
    DataRule(
        "party sizes", "wedding_invitations with a negative party_size",
        _ids("party_size < 0", "wedding_invitations", "format('id %s (party_size %s)', id, "
             "party_size)"),
        "set the party_size each guest really has (0 or more)" + _REFUSED,
        ("wedding_invitations",)),
    DataRule(
        "time zones", "wedding_events whose timezone PostgreSQL does not know, neither in "
        "pg_timezone_names nor in pg_timezone_abbrevs",
        _values("timezone", "wedding_events", "NOT " + _KNOWN_ZONE.format(zone="{v}")),
        "set a zone PostgreSQL knows, e.g. 'Europe/Madrid' (SELECT name FROM "
        "pg_timezone_names)" + _REFUSED,
        ("wedding_events",)),
    DataRule(
        "status values",
        "wedding_events with a status outside draft/published/completed/cancelled/archived",
        _values("status", "wedding_events",
                "{v} NOT IN ('draft', 'published', 'completed', 'cancelled', 'archived')"),
        "map each to draft, published, completed, cancelled or archived" + _REFUSED,
        ("wedding_events",)),
    # 009's wedding_compat.wedding_start, inlined: before 009 the function does not exist yet.
    # The CASE keeps unknown zones (reported above) away from AT TIME ZONE, as 010 does.
    DataRule(
        "dates that do not exist",
        "wedding_events whose wedding_date and ceremony_time do not exist in their time zone, "
        "or a ceremony_time of 24:00",
        _ids("wedding_date IS NOT NULL AND CASE WHEN " + _KNOWN_ZONE.format(zone="timezone")
             + " THEN ceremony_time = time '24:00' OR (((wedding_date + coalesce(ceremony_time, "
             "time '00:00')) AT TIME ZONE timezone) AT TIME ZONE timezone)::date "
             "<> wedding_date ELSE false END",
             "wedding_events",
             "format('id %s (%s %s %s)', id, wedding_date, coalesce(ceremony_time::text, "
             "'no time'), timezone)"),
        "move the ceremony to a time that exists on that day in that zone (24:00 is 00:00 of "
        "the next day)" + _REFUSED,
        ("wedding_events",)),
    DataRule(
        "ids taken by the engine",
        "legacy ids or slugs already used by events the engine created (after an earlier "
        "migration and rollback)",
        f"""SELECT taken, count(*) OVER (), count(*) OVER () FROM (
              SELECT 'wedding_events ' || w.id AS taken, 1 AS kind, w.id
                FROM wedding_events w JOIN events e ON e.id = w.id
              UNION ALL
              SELECT 'wedding_invitations ' || i.id, 2, i.id
                FROM wedding_invitations i JOIN event_participants p ON p.id = i.id
              UNION ALL
              SELECT 'wedding_sections ' || s.id, 3, s.id
                FROM wedding_sections s JOIN event_sections x ON x.id = s.id
              UNION ALL
              SELECT format('slug %s/%s (wedding %s)', w.tenant_id, w.slug, w.id), 4, w.id
                FROM wedding_events w JOIN events e
                  ON e.tenant_id = w.tenant_id AND e.slug = w.slug) t
            ORDER BY kind, id LIMIT {EXAMPLES}""",
        "give the legacy rows other ids or slugs, or delete the engine's events that took "
        "them" + _REFUSED,
        MIGRATED_TABLES, needs=NEW_TABLES),
)


def _missing_relations(conn: psycopg.Connection, names: tuple[str, ...]) -> list[str]:
    rows = conn.execute("SELECT t FROM unnest(%s::text[]) t WHERE to_regclass(t) IS NULL",
                        (list(names),)).fetchall()
    return [str(r[0]) for r in rows]


def check_rule(conn: psycopg.Connection, rule: DataRule, state: MigrationState,
               locked: dict[str, str]) -> Check:
    why_not = _cannot_read(state, locked, rule.tables)
    if why_not:
        return Check(rule.name, "skip", why_not)
    absent = _missing_relations(conn, rule.needs)
    if absent:
        return Check(rule.name, "ok", f"nothing to collide with: {', '.join(absent)} not "
                     "created yet")
    rows = conn.execute(rule.sql).fetchall()
    if not rows:
        return Check(rule.name, "ok", f"none ({rule.what})")
    offending, examples = int(rows[0][1]), int(rows[0][2])
    shown = ", ".join(str(r[0]) for r in rows)
    more = f", … {examples - len(rows)} more" if examples > len(rows) else ""
    return Check(rule.name, rule.status, f"{offending} {rule.what}: {shown}{more}", rule.fix)
