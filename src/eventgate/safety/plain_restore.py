"""Restoring the deployment guide's plain dumps (`eventgate restore --from FILE`) the way
eventgate restores its own backups: into a new database first, proven there (every COPY
block's rows, counted), then swapped in, the live database kept under another name. The guide's
emergency-rollback.sh drops the live database before it knows the dump restores; this never
does."""

from __future__ import annotations

import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg import sql

from eventgate import dsn as dsn_mod
from eventgate.errors import BackupError
from eventgate.safety import databases
from eventgate.safety.catalog import BackupRecord, Verification
from eventgate.safety.checksums import file_digest, table_sums
from eventgate.safety.databases import MAINTENANCE_DB, connect
from eventgate.safety.plain_dump import PlainDump, read_plain_dump, scratch_sql
from eventgate.safety.progress import Progress, no_progress
from eventgate.safety.properties import copy_database_properties
from eventgate.safety.restore import (
    RestoreReport,
    check_target,
    only_in_previous,
    swap_in,
    target_name,
)
from eventgate.safety.tools import Tool, find_tool, tail, tool_connection


@dataclass(frozen=True)
class PlainPlan:
    database: str
    dump: PlainDump
    sessions: int
    notes: list[str]


def plan_plain_restore(dsn: str, path: Path | str, *,
                       maintenance_dsn: str | None = None) -> PlainPlan:
    """Read and check the dump and the database it would replace; changes nothing."""
    database = target_name(dsn)
    maintenance = maintenance_dsn or dsn_mod.with_dbname(dsn, MAINTENANCE_DB)
    dump = read_plain_dump(path)
    if dump.database is not None and dump.database != database:
        raise BackupError(f"refusing {dump.path.name}: it is a dump of database "
                          f"{dump.database}, not of {database}, the DSN's. Nothing was "
                          "changed.")
    if not dump.rows:
        raise BackupError(f"refusing {dump.path.name}: it holds no table's rows (no COPY "
                          "block), so nothing in it can be checked. Nothing was changed.")
    sessions, notes = check_target(maintenance, database,
                                   f"eventgate restore --from {dump.path} --yes")
    return PlainPlan(database, dump, sessions, dump.notes + notes)


def restore_plain(dsn: str, path: Path | str, *, maintenance_dsn: str | None = None,
                  progress: Progress | None = None,
                  bindir: str | Path | None = None) -> RestoreReport:
    report = progress or no_progress
    started = time.monotonic()
    maintenance = maintenance_dsn or dsn_mod.with_dbname(dsn, MAINTENANCE_DB)
    plan = plan_plain_restore(dsn, path, maintenance_dsn=maintenance)
    dump, database = plan.dump, plan.database
    record: list[BackupRecord] = []

    def fill(conn: psycopg.Connection, restored: str) -> tuple[int, list[str]]:
        tool = find_tool("psql", databases.server_version(conn), bindir)
        report(f"psql {tool.version} of {dump.path.name} into {restored}")
        _run_psql(tool, dump, maintenance, restored)
        report(f"counting the tables of {restored} against the dump's rows")
        with connect(dsn_mod.with_dbname(maintenance, restored), pinned=True) as check:
            problems = _count_problems(check, dump)
            if problems:
                raise BackupError(f"the restore of {dump.path.name} does not hold the rows the "
                                  f"dump does, so {database} was left untouched: "
                                  f"{'; '.join(problems)}")
            record.append(_record(check, dump, database, restored))
            check.execute("ANALYZE")  # a dump carries no planner statistics
        return copy_database_properties(conn, database, restored)

    ended, previous, settings, notes = swap_in(maintenance, database, dump.path.name, fill,
                                               report)
    notes = plan.notes + notes
    notes.append(f"rows written since the backup ({dump.created_at}) are only in {previous}")
    try:
        notes += only_in_previous(dsn_mod.with_dbname(maintenance, previous), record[0],
                                  previous)
    except Exception as exc:  # the swap is committed: a note, never a failed restore
        notes.append(f"could not list what only {previous} holds: "
                     f"{dsn_mod.redact(str(exc)).strip()}; look there yourself before "
                     "dropping it")
    return RestoreReport(database, record[0], ended, previous, settings,
                         time.monotonic() - started, notes)


def _run_psql(tool: Tool, dump: PlainDump, dsn: str, dbname: str) -> None:
    """The dump through psql into `dbname`, in one transaction, stopping at the first error."""
    conninfo, env, password = tool_connection(dsn, dbname)
    argv = [str(tool.path), "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction",
            "--no-password", "-d", conninfo, "-f", "-"]
    with tempfile.TemporaryFile() as errors:
        try:
            psql = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                    stderr=errors, env=env)
        except OSError as exc:
            raise BackupError(f"could not run psql {tool.version} ({tool.path}): {exc}; pass "
                              "--pg-bindir with the directory of a working one") from exc
        assert psql.stdin is not None
        try:
            for line in scratch_sql(dump):
                psql.stdin.write(line)
            psql.stdin.close()
        except BrokenPipeError:
            pass  # psql stopped at an error: its exit code and message say which
        code = psql.wait()
        errors.seek(0)
        message = errors.read().decode("utf-8", "replace")
    if code != 0:
        raise BackupError(f"psql {tool.version} of {dump.path.name} into database {dbname} "
                          f"failed (exit {code}): {tail(message, password)}")


def _count_problems(conn: psycopg.Connection, dump: PlainDump) -> list[str]:
    problems = []
    for name, expected in sorted(dump.rows.items()):
        schema, _, table = name.rpartition(".")
        exists = conn.execute("SELECT to_regclass(%s)", (
            sql.Identifier(schema or "public", table).as_string(conn),)).fetchone()
        if exists is None or exists[0] is None:
            problems.append(f"{name}: not restored ({expected} rows in the dump)")
            continue
        row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(
            sql.Identifier(schema or "public", table))).fetchone()
        found = int(row[0]) if row else 0
        if found != expected:
            problems.append(f"{name}: {found} rows restored, {expected} in the dump")
    return problems


def _record(conn: psycopg.Connection, dump: PlainDump, database: str,
            restored: str) -> BackupRecord:
    """The dump described as eventgate describes its own backups, from what was restored."""
    size, digest = file_digest(dump.path)
    ledger = conn.execute("SELECT to_regclass('eventgate_ledger.migration_ledger')").fetchone()
    version = None
    if ledger and ledger[0]:
        row = conn.execute("SELECT max(version) FROM eventgate_ledger.migration_ledger"
                           ).fetchone()
        version = int(row[0]) if row and row[0] is not None else None
    return BackupRecord(
        database=database, created_at=dump.created_at, dump_file=dump.path.name,
        size_bytes=size, sha256=digest, server_version=dump.server_version or "unknown",
        migration_version=version, tables=table_sums(conn),
        verification=Verification(at=datetime.now(UTC).isoformat(), ok=True,
                                  scratch_database=restored))
