"""Proving a backup restores: its sha256, then a pg_restore into a scratch database whose every
table must give back the row count and checksum the backup's metadata recorded."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import psycopg

from eventgate import dsn as dsn_mod
from eventgate.errors import BackupError
from eventgate.safety import databases
from eventgate.safety.catalog import BackupRecord, Verification
from eventgate.safety.checksums import compare_tables, file_problems, table_sums
from eventgate.safety.databases import connect
from eventgate.safety.progress import Progress, no_progress
from eventgate.safety.tools import find_tool, run_pg_restore


def _restore_and_compare(record: BackupRecord, maintenance_dsn: str, report: Progress,
                         bindir: str | Path | None, scratch: list[str]) -> list[str]:
    with connect(maintenance_dsn, what=" (the maintenance database, to create a scratch "
                 "database)") as conn:
        tool = find_tool("pg_restore", databases.server_version(conn), bindir)
        # Owners are kept when we may set them, as the real restore does; otherwise the
        # scratch copy is owned by us, which changes no row and so no checksum.
        keep_owners = databases.is_superuser(conn)
        name = databases.free_database_name(
            conn, record.database, f"_verify_{datetime.now(UTC).strftime(databases.DB_STAMP)}")
        report(f"creating scratch database {name}")
        try:
            databases.create_database_like(conn, name, record.database, same_owner=False)
        except psycopg.Error as exc:
            raise BackupError(
                f"could not create the scratch database {name}: "
                f"{dsn_mod.redact(str(exc)).strip()}; verifying needs a role with CREATEDB"
            ) from exc
        scratch.append(name)
        try:
            report(f"pg_restore {tool.version} into {name}")
            run_pg_restore(tool, record.dump_path, maintenance_dsn, name, keep_owners=keep_owners)
            report(f"counting and checksumming the tables of {name}")
            with connect(dsn_mod.with_dbname(maintenance_dsn, name), pinned=True) as restored:
                found = table_sums(restored)
            return compare_tables(record.tables, found)
        finally:
            report(f"dropping scratch database {name}")
            databases.drop_database(conn, name)


def verify_backup(record: BackupRecord, maintenance_dsn: str, *,
                  progress: Progress | None = None,
                  bindir: str | Path | None = None) -> Verification:
    """Prove a backup restores: its sha256 first, then pg_restore into a scratch database on
    the server of `maintenance_dsn`, every table's rows and checksum compared with the
    metadata, and the scratch database dropped whatever happens. The outcome is saved into the
    record's metadata file; only an ok one makes the backup eligible for a restore."""
    report = progress or no_progress
    report(f"checking the sha256 of {record.dump_file}")
    problems = file_problems(record)
    scratch: list[str] = []
    if not problems:
        try:
            problems = _restore_and_compare(record, maintenance_dsn, report, bindir, scratch)
        except (BackupError, psycopg.Error) as exc:
            problems = [dsn_mod.redact(str(exc)).strip()]
        except OSError as exc:
            problems = [f"verifying {record.dump_file} stopped: {exc}; check the disk and "
                        "the client tools (--pg-bindir), then take a new backup with --verify"]
    verification = Verification(at=datetime.now(UTC).isoformat(), ok=not problems,
                                scratch_database=scratch[0] if scratch else "",
                                problems=problems)
    record.verification = verification
    if record.meta_path is not None:
        try:
            record.save(record.meta_path)
        except OSError as exc:
            # Unsaved, the file still says "not verified": say so rather than claim a success.
            outcome = ("the restore into a scratch database matched every table"
                       if verification.ok else "the verification failed")
            verification = Verification(
                at=verification.at, ok=False, scratch_database=verification.scratch_database,
                problems=[*problems, f"{outcome}, but the outcome could not be saved in "
                          f"{record.meta_path}: {exc}; that file still says not verified, so "
                          "restore --latest will not pick this backup. Free space or make "
                          "the directory writable, then take a new backup with --verify"])
            record.verification = verification
    return verification
