"""The emergency path: put a database back to its latest verified backup without losing what
it holds now.

The backup is restored into a new database and checked table by table first; only then are the
other sessions ended and the names swapped, in one transaction, so the live database is either
untouched or kept whole under another name for the operator to inspect and drop.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg import sql

from eventgate import dsn as dsn_mod
from eventgate.errors import BackupError
from eventgate.safety import catalog, databases
from eventgate.safety.catalog import BackupRecord
from eventgate.safety.checksums import compare_tables, file_problems, table_sums
from eventgate.safety.databases import MAINTENANCE_DB, connect
from eventgate.safety.progress import Progress, no_progress
from eventgate.safety.properties import copy_database_properties
from eventgate.safety.tools import Tool, find_tool, run_pg_restore

END_SESSIONS_TIMEOUT_S = 10.0
TERMINATE_WAIT_MS = 5000
RENAME_ATTEMPTS = 3
LEFTOVER_STAMP = re.compile(r"\d{8}_\d{6}(_\d+)?")  # databases.DB_STAMP, numbered if taken


def quote_ident(name: str) -> str:
    """An identifier quoted for pasting into psql, whatever its case or spelling."""
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class RestorePlan:
    """What a restore would do, found without changing anything."""

    database: str
    record: BackupRecord
    sessions: int  # other sessions on the database right now; a restore ends them
    skipped: list[str] = field(default_factory=list)  # newer backups that are not verified
    # What the operator should know before going ahead: leftovers of an interrupted restore,
    # metadata files that could not be read.
    notes: list[str] = field(default_factory=list)


@dataclass
class RestoreReport:
    database: str
    record: BackupRecord
    sessions_ended: int
    previous_database: str  # the database as it was before, kept under this name
    settings_copied: int
    duration_s: float
    notes: list[str] = field(default_factory=list)

    def drop_hint(self) -> str:
        return f"DROP DATABASE {quote_ident(self.previous_database)};"


def target_name(dsn: str) -> str:
    name = dsn_mod.parse(dsn).get("dbname") or os.environ.get("PGDATABASE")
    if not name:
        raise BackupError(f"the DSN {dsn_mod.describe(dsn)} names no database; a restore needs "
                          "the database to replace: add it, e.g. postgresql://host/dbname")
    return name


def _no_backup(directory: Path, database: str, dsn: str) -> BackupError:
    records, unreadable = catalog.scan(directory, database)
    if not directory.is_dir():
        found = "that directory does not exist"
    elif not records:
        found = f"it holds no backup of {database}"
    else:
        newest = records[-1]
        if newest.verified:
            why = "its dump file is missing"
        elif newest.verification is None:
            why = "never verified"
        else:
            why = "verification failed: " + "; ".join(newest.verification.problems)
        found = (f"it holds {len(records)} backup(s) of {database}, none both verified and "
                 f"present (newest {newest.dump_file}: {why})")
    if unreadable:
        found += f"; unreadable metadata: {'; '.join(unreadable)}"
    return BackupError(
        f"refusing to restore {database}: no verified backup in {directory.resolve()}: {found}. "
        f"Nothing was changed. Make one with: eventgate backup --verify --dsn "
        f"'{dsn_mod.redact(dsn)}' --backup-dir {directory}")


def _privilege_problem(conn: psycopg.Connection, database: str) -> str | None:
    """Why the current role cannot swap `database`, or None: renaming needs CREATEDB and
    ownership, ending other sessions needs pg_signal_backend (a superuser has all of it)."""
    row = conn.execute(
        "SELECT r.rolname, r.rolsuper, r.rolcreatedb, pg_has_role(r.oid, d.datdba, 'MEMBER'), "
        "pg_has_role(r.oid, 'pg_signal_backend', 'MEMBER'), pg_get_userbyid(d.datdba) "
        "FROM pg_roles r, pg_database d WHERE r.rolname = current_user AND d.datname = %s",
        (database,)).fetchone()
    assert row is not None
    role, superuser, createdb, owner, signal, dba = row
    if superuser:
        return None
    missing = [what for ok, what in ((createdb, "CREATEDB"),
                                     (owner, f"membership in {dba}, the owner of {database}"),
                                     (signal, "membership in pg_signal_backend")) if not ok]
    if not missing:
        return None
    return (f"role {role} cannot restore {database}: it lacks {', '.join(missing)} (a restore "
            "creates a database, renames two and ends other sessions); connect as a superuser, "
            f"or grant them: ALTER ROLE {quote_ident(role)} CREATEDB; GRANT pg_signal_backend "
            f"TO {quote_ident(role)}; GRANT {quote_ident(dba)} TO {quote_ident(role)}")


def _other_sessions(conn: psycopg.Connection, database: str) -> list[tuple[object, ...]]:
    return conn.execute(
        "SELECT pid, usename, application_name, backend_type FROM pg_stat_activity "
        "WHERE datname = %s AND pid <> pg_backend_pid()", (database,)).fetchall()


def _reopen(database: str) -> str:
    """The statement that lets clients connect to `database` again."""
    return f"ALTER DATABASE {quote_ident(database)} ALLOW_CONNECTIONS true"


def _leftovers(conn: psycopg.Connection, database: str) -> list[str]:
    """Databases named like the ones an interrupted restore of `database` leaves behind,
    `<database>_restoring_<stamp>` (the base cut as free_database_name cuts it)."""
    found = []
    for (name,) in conn.execute("SELECT datname FROM pg_database "
                                "WHERE strpos(datname, '_restoring_') > 0 ORDER BY 1"):
        base, _, stamp = str(name).rpartition("_restoring_")
        if base and database.startswith(base) and LEFTOVER_STAMP.fullmatch(stamp):
            found.append(str(name))
    return found


def plan_restore(dsn: str, directory: Path | str, *,
                 maintenance_dsn: str | None = None) -> RestorePlan:
    """Which backup a restore of the database in `dsn` would use and whom it would cut off;
    raises BackupError, changing nothing, when it could not go ahead."""
    directory = Path(directory)
    database = target_name(dsn)
    maintenance = maintenance_dsn or dsn_mod.with_dbname(dsn, MAINTENANCE_DB)
    if target_name(maintenance) == database:
        raise BackupError(f"cannot restore {database} while connected to it as the maintenance "
                          "database: pass a maintenance DSN naming another database")
    record = catalog.latest_verified(directory, database)
    if record is None:
        raise _no_backup(directory, database, dsn)
    records, unreadable = catalog.scan(directory, database)
    skipped = [r.dump_file for r in records if r.created > record.created]
    notes = [f"unreadable backup metadata, ignored: {line}" for line in unreadable]
    sessions, more = check_target(maintenance, database, f"pg_restore --dbname {database} "
                                  f"{record.dump_path}")
    notes += more
    return RestorePlan(database, record, sessions, skipped, notes)


def check_target(maintenance: str, database: str, how: str) -> tuple[int, list[str]]:
    """That `database` can be replaced, changing nothing: it exists (else `how` says how to
    bring it back), accepts connections, and we may rename it; (its other sessions, notes)."""
    notes: list[str] = []
    with connect(maintenance, what=" (the maintenance database)") as conn:
        props = databases.database_properties(conn, database)
        if props is None:
            raise BackupError(
                f"database {database} does not exist on {dsn_mod.describe(maintenance)}; this "
                "restore replaces an existing database. To bring back one that is gone: "
                f"createdb {database}, then {how}")
        leftovers = _leftovers(conn, database)
        notes += [f"{name} looks left over from an interrupted restore (unless one is running "
                  f"now); once you are sure, drop it: DROP DATABASE {quote_ident(name)};"
                  for name in leftovers]
        if not props.get("datallowconn", True):
            left = (f" (it also left {', '.join(leftovers)}: drop "
                    f"{'it' if len(leftovers) == 1 else 'them'} with "
                    + " ".join(f"DROP DATABASE {quote_ident(n)};" for n in leftovers) + ")"
                    if leftovers else "")
            raise BackupError(
                f"refusing to restore {database}: it does not accept connections "
                "(datallowconn is false), which is how a restore killed while ending sessions "
                f"leaves it{left}. Nothing was changed. Unless it was closed on purpose, "
                f"re-open it: {_reopen(database)}; then run the restore again (it closes the "
                "database itself, and gives it back its own setting, while it swaps)")
        problem = _privilege_problem(conn, database)
        if problem:
            raise BackupError(problem)
        sessions = len(_other_sessions(conn, database))
    return sessions, notes


def _end_sessions(conn: psycopg.Connection, database: str) -> int:
    """Terminate every other session on `database` and wait until none is left; returns how
    many client sessions were ended."""
    ended = 0
    deadline = time.monotonic() + END_SESSIONS_TIMEOUT_S
    while True:
        rows = conn.execute(
            "SELECT backend_type, pg_terminate_backend(pid, %s) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (TERMINATE_WAIT_MS, database)).fetchall()
        ended += sum(1 for kind, _ in rows if kind == "client backend")
        left = _other_sessions(conn, database)
        if not left:
            return ended
        if time.monotonic() > deadline:
            raise BackupError(
                f"sessions on {database} did not end within {END_SESSIONS_TIMEOUT_S:.0f} s: "
                f"{left}; nothing was swapped and {database} accepts connections again")
        time.sleep(0.05)


def _swap(conn: psycopg.Connection, database: str, restored: str, previous: str,
          report: Progress) -> int:
    """End the other sessions of `database`, then rename it to `previous` and `restored` to
    `database` in one transaction: both renames happen, or neither."""
    props = databases.database_properties(conn, database) or {}
    allowed = bool(props.get("datallowconn", True))
    limit = int(props.get("datconnlimit", -1))
    target = sql.Identifier(database)
    # Only a kill (SIGKILL, a lost terminal) skips the `finally` that re-opens the database:
    # the way back is on the operator's screen for as long as it is closed.
    if_killed = f"(if this restore is killed now, re-open {database}: {_reopen(database)})"
    report(f"closing {database} to new connections {if_killed}")
    # Closed first, so an application cannot reconnect between the terminations and the rename.
    conn.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(target))
    swapped = False
    try:
        report(f"ending the other sessions of {database} {if_killed}")
        ended = _end_sessions(conn, database)
        for attempt in range(1, RENAME_ATTEMPTS + 1):
            try:
                with conn.transaction():
                    report(f"renaming {database} → {previous}, {restored} → {database} "
                           f"{if_killed}")
                    conn.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                        target, sql.Identifier(previous)))
                    conn.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                        sql.Identifier(restored), target))
                    conn.execute(sql.SQL(
                        "ALTER DATABASE {} WITH ALLOW_CONNECTIONS {} CONNECTION LIMIT {}").format(
                            target, sql.SQL(str(allowed).lower()), sql.Literal(limit)))
                    # The previous state stays reachable for the operator, by its new name.
                    conn.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS {}").format(
                        sql.Identifier(previous), sql.SQL(str(allowed).lower())))
                swapped = True
                return ended
            except psycopg.errors.ObjectInUse:
                # A session slipped in (or autovacuum started) between the check and the rename.
                if attempt == RENAME_ATTEMPTS:
                    raise
                ended += _end_sessions(conn, database)
        raise AssertionError("unreachable")
    finally:
        if not swapped and allowed:
            conn.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(target))


def restore_latest(dsn: str, directory: Path | str, *, maintenance_dsn: str | None = None,
                   progress: Progress | None = None,
                   bindir: str | Path | None = None) -> RestoreReport:
    """Replace the database of `dsn` with its latest verified backup in `directory`.

    Restores into `<db>_restoring_<stamp>` (created from template0 like the live database),
    compares every table with the backup's checksums, copies the database's own settings,
    privileges and comment, ends the other sessions and swaps the names; the live database is
    kept as `<db>_pre_restore_<stamp>`. Any failure before the swap drops the new database and
    leaves the live one untouched."""
    report = progress or no_progress
    started = time.monotonic()
    maintenance = maintenance_dsn or dsn_mod.with_dbname(dsn, MAINTENANCE_DB)
    plan = plan_restore(dsn, directory, maintenance_dsn=maintenance)
    database, record = plan.database, plan.record
    report(f"checking the sha256 of {record.dump_file}")
    problems = file_problems(record)
    if problems:
        raise BackupError(f"refusing to restore {database} from {record.dump_file}: "
                          f"{'; '.join(problems)}. Nothing was changed.")

    def fill(conn: psycopg.Connection, restored: str) -> tuple[int, list[str]]:
        tool = find_tool("pg_restore", databases.server_version(conn), bindir)
        return _fill(conn, tool, record, maintenance, database, restored, report)

    ended, previous, settings, notes = swap_in(maintenance, database, record.dump_file, fill,
                                               report)
    if plan.skipped:
        notes.append(f"newer backups skipped, not verified: {', '.join(plan.skipped)}")
    notes += plan.notes
    notes.append(f"rows written since the backup ({record.created_at}) are only in {previous}")
    # The swap is committed: from here on a failure is a note, never a failed restore.
    try:
        notes += only_in_previous(dsn_mod.with_dbname(maintenance, previous), record, previous)
    except Exception as exc:
        notes.append(f"could not list what only {previous} holds: "
                     f"{dsn_mod.redact(str(exc)).strip()}; look there yourself before "
                     "dropping it")
    return RestoreReport(database, record, ended, previous, settings,
                         time.monotonic() - started, notes)


def swap_in(maintenance: str, database: str, source: str,
            fill: Callable[[psycopg.Connection, str], tuple[int, list[str]]],
            report: Progress) -> tuple[int, str, int, list[str]]:
    """Fill a new database created like `database` (`fill` restores and proves it, returning
    the settings copied and notes), then swap it in; the live one is kept under another name.
    Any failure before the swap drops the new database and leaves the live one untouched.
    Returns (sessions ended, the previous database's new name, settings copied, notes)."""
    stamp = datetime.now(UTC).strftime(databases.DB_STAMP)
    with connect(maintenance, what=" (the maintenance database)") as conn:
        restored = databases.free_database_name(conn, database, f"_restoring_{stamp}")
        report(f"creating {restored}")
        databases.create_database_like(conn, restored, database, same_owner=True)
        swapped = False
        try:
            settings, notes = fill(conn, restored)
            previous = databases.free_database_name(conn, database, f"_pre_restore_{stamp}")
            ended = _swap(conn, database, restored, previous, report)
            swapped = True
        except (BackupError, psycopg.Error) as exc:
            raise BackupError(
                f"restoring {database} from {source} failed: "
                f"{dsn_mod.redact(str(exc)).strip()}; {database} is untouched and {restored} "
                "was dropped") from exc
        finally:
            if not swapped:
                report(f"dropping {restored}")
                databases.drop_database(conn, restored)
    return ended, previous, settings, notes


def only_in_previous(dsn: str, record: BackupRecord, previous: str) -> list[str]:
    """What the restore set aside rather than lost: tables the backup never had (those a
    migration created since, with the rows written to them), counted, so the operator is
    told."""
    with connect(dsn, what=f" (the previous database, {previous})") as conn:
        tables = conn.execute(
            "SELECT schemaname, tablename FROM pg_tables "
            "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2"
        ).fetchall()
        extra = []
        for schema, table in tables:
            if f"{schema}.{table}" in record.tables:
                continue
            row = conn.execute(sql.SQL("SELECT count(*) FROM {}.{}").format(
                sql.Identifier(schema), sql.Identifier(table))).fetchone()
            if row and row[0]:
                extra.append(f"{schema}.{table} ({row[0]} rows)")
    if not extra:
        return []
    return [f"tables the backup does not have, kept in {previous}: {', '.join(extra)}; "
            "export what you need from there before dropping it"]


def _fill(conn: psycopg.Connection, tool: Tool, record: BackupRecord, maintenance: str,
          database: str, restored: str, report: Progress) -> tuple[int, list[str]]:
    """pg_restore into `restored`, prove it equals the backup, copy the database's own
    properties; raises BackupError when anything differs."""
    report(f"pg_restore {tool.version} of {record.dump_file} into {restored}")
    # Owners are kept: the application's roles rely on them (and on the grants), and the
    # restored database must be the backed-up one, not a copy owned by whoever restored it.
    run_pg_restore(tool, record.dump_path, maintenance, restored, keep_owners=True)
    report(f"counting and checksumming the tables of {restored}")
    with connect(dsn_mod.with_dbname(maintenance, restored), pinned=True) as check:
        found = table_sums(check)
        problems = compare_tables(record.tables, found)
        if problems:
            raise BackupError(f"the restore of {record.dump_file} does not match its metadata, "
                              f"so {database} was left untouched: {'; '.join(problems)}")
        # A dump carries no planner statistics: without them the restored database would
        # serve its first traffic with guessed plans (a guest found by email through every
        # wedding's guest list) until autovacuum came round. Gathered before the swap.
        report(f"ANALYZE of {restored}")
        check.execute("ANALYZE")
    return copy_database_properties(conn, database, restored)
