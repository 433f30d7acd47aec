"""Backups a migration can fall back on: pg_dump in custom format, with per-table row counts and
checksums taken in the dump's own snapshot, proven by restoring them into a scratch database.

The row counts and checksums are what make a backup checkable: a restore (into a scratch
database in eventgate.safety.verify, into the real one in eventgate.safety.restore) must
reproduce every one of them.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import psycopg

from eventgate import dsn as dsn_mod
from eventgate.errors import BackupError
from eventgate.safety import catalog, databases
from eventgate.safety.catalog import BackupRecord, TableSum
from eventgate.safety.checksums import file_digest, table_sums
from eventgate.safety.databases import MAINTENANCE_DB, connect
from eventgate.safety.progress import Progress, no_progress
from eventgate.safety.tools import Tool, find_tool, tail, tool_connection
from eventgate.safety.verify import verify_backup

FILE_STAMP = "%Y%m%dT%H%M%SZ"


def _fsync_dir(directory: Path) -> None:
    # A rename is durable only once its directory is; without this a crash can lose the name.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _prepare(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BackupError(f"cannot create the backup directory {directory}: {exc}; pass "
                          "--backup-dir with a writable directory") from exc


def _reserve(directory: Path, database: str, at: datetime) -> Path:
    """An exclusive `<db>-<stamp>.dump.partial`, so two backups in one second never collide."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", database)
    for n in range(100):
        stem = f"{safe}-{at.strftime(FILE_STAMP)}" + (f"-{n}" if n else "")
        dump = directory / f"{stem}{catalog.SUFFIX}"
        if dump.exists() or dump.with_suffix(catalog.META_SUFFIX).exists():
            continue
        partial = dump.with_name(dump.name + ".partial")
        try:
            os.close(os.open(partial, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            continue
        except OSError as exc:
            raise BackupError(f"cannot write in the backup directory {directory}: {exc}; "
                              "pass --backup-dir with a writable directory") from exc
        return partial
    raise BackupError(f"no free file name for a backup of {database} in {directory}")


@contextlib.contextmanager
def _snapshot_session(dsn: str) -> Iterator[psycopg.Connection]:
    """A pinned, read-only REPEATABLE READ transaction: one snapshot for every query in it."""
    conn = connect(dsn, autocommit=False, pinned=True)
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    conn.read_only = True
    try:
        yield conn
    finally:
        conn.rollback()
        conn.close()


class _DumpFailed(Exception):
    """pg_dump stopped while the checksums were still being taken."""


def _run_dump(conn: psycopg.Connection, dsn: str, tool: Tool, database: str, partial: Path,
              report: Progress, errors: IO[bytes]) -> tuple[int, dict[str, TableSum], int | None]:
    """pg_dump on an exported snapshot while this session checksums the tables in the same
    snapshot: the counts describe exactly the rows in the dump, whatever commits meanwhile."""
    snapshot = str(databases.scalar(conn, "SELECT pg_export_snapshot()"))
    conninfo, env, _ = tool_connection(dsn, database)
    # Custom format is compressed by default and lets pg_restore pick and reorder objects.
    argv = [str(tool.path), "--format=custom", f"--snapshot={snapshot}", f"--file={partial}",
            "--no-password", f"--dbname={conninfo}"]
    report(f"pg_dump {tool.version} of {database} → {partial.name.removesuffix('.partial')}")
    dump = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=errors, env=env)
    try:
        def on_table(name: str) -> None:
            if dump.poll() not in (None, 0):
                raise _DumpFailed
            report(f"pg_dump running; counting and checksumming {name}")

        try:
            tables = table_sums(conn, on_table)
            version = databases.migration_version(conn)
        except _DumpFailed:
            return dump.wait(), {}, None
        except psycopg.Error as exc:
            raise BackupError(
                f"reading the row counts and checksums of {database} failed: "
                f"{dsn_mod.redact(str(exc)).strip()}; the backup was abandoned (the role needs "
                "SELECT on every table, as pg_dump does)") from exc
        report("waiting for pg_dump to finish")
        return dump.wait(), tables, version
    finally:
        if dump.poll() is None:
            dump.kill()
            dump.wait()


def take_backup(dsn: str, directory: Path | str, *, verify: bool,
                maintenance_dsn: str | None = None, progress: Progress | None = None,
                bindir: str | Path | None = None) -> BackupRecord:
    """Dump the database of `dsn` into `directory` with its metadata beside it, and with
    `verify` prove it restores (see verify_backup; the result is in `record.verification`).

    A failed dump leaves nothing behind and raises BackupError."""
    report = progress or no_progress
    directory = Path(directory)
    _prepare(directory)
    started = datetime.now(UTC)
    with _snapshot_session(dsn) as conn:
        database = str(databases.scalar(conn, "SELECT current_database()"))
        version = databases.server_version(conn)
        tool = find_tool("pg_dump", version, bindir)
        partial = _reserve(directory, database, started)
        password = tool_connection(dsn, database)[2]
        dump = partial.with_name(partial.name.removesuffix(".partial"))
        step = f"running pg_dump {tool.version} ({tool.path})"
        try:
            with tempfile.TemporaryFile() as errors:
                code, tables, migrated = _run_dump(conn, dsn, tool, database, partial, report,
                                                   errors)
                errors.seek(0)
                stderr = errors.read().decode(errors="replace")
            if code != 0:
                raise BackupError(
                    f"pg_dump {tool.version} ({tool.path}) of {dsn_mod.describe(dsn)} failed "
                    f"(exit {code}): {tail(stderr, password)}; "
                    f"nothing was kept in {directory}. A full disk shows as 'could not write', "
                    "a missing privilege as 'permission denied' (back up as the database owner "
                    "or a superuser)")
            step = f"reading the finished dump {partial.name} for its sha256"
            size, digest = file_digest(partial)
            step = f"renaming {partial.name} to {dump.name}"
            os.replace(partial, dump)
        except OSError as exc:
            raise BackupError(
                f"the backup of {dsn_mod.describe(dsn)} failed {step}: {exc}; nothing was kept "
                f"in {directory}. Check that the directory is on a healthy, writable disk with "
                "free space and that nothing else writes in it, then back up again") from exc
        finally:
            partial.unlink(missing_ok=True)
    _fsync_dir(directory)
    record = BackupRecord(database=database, created_at=started.isoformat(),
                          dump_file=dump.name, size_bytes=size, sha256=digest,
                          server_version=version, migration_version=migrated, tables=tables)
    _save_metadata(record, dump)
    if verify:
        verify_backup(record, maintenance_dsn or dsn_mod.with_dbname(dsn, MAINTENANCE_DB),
                      progress=progress, bindir=bindir)
    return record


def _save_metadata(record: BackupRecord, dump: Path) -> None:
    """The metadata beside the dump; without it the dump goes too (a dump nobody can check is no
    backup)."""
    meta = dump.with_suffix(catalog.META_SUFFIX)
    try:
        record.save(meta)
    except OSError as exc:
        dump.unlink(missing_ok=True)
        meta.with_name(meta.name + ".partial").unlink(missing_ok=True)
        raise BackupError(f"could not write the backup's metadata {meta}: {exc}; the dump was "
                          "removed with it (a dump nobody can check is no backup); free space "
                          "and try again") from exc
