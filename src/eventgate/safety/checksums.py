"""What makes a backup checkable: per-table row counts and content checksums, taken in the
dump's own snapshot and reproduced by every restore of it, and the sha256 of the dump file."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import psycopg

from eventgate.checks.snapshot import relation_checksum
from eventgate.safety.catalog import BackupRecord, TableSum

# Checksums are over each row's text form, which depends on these settings. Pinned on every
# checksum session, so a backup's numbers compare with a restore's whatever the database or the
# role sets (a restored scratch database has none of the original's ALTER DATABASE ... SET).
CHECKSUM_SETTINGS = {
    "TimeZone": "UTC",
    "DateStyle": "ISO,MDY",
    "IntervalStyle": "postgres",
    "extra_float_digits": "1",
    "bytea_output": "hex",
    "lc_monetary": "C",
    "search_path": "pg_catalog",
}

# Every user table, the ledger included: a restore must bring back the migration history too.
TABLES = r"""
    SELECT schemaname, tablename FROM pg_catalog.pg_tables
     WHERE schemaname NOT IN ('pg_catalog', 'information_schema')
       AND schemaname NOT LIKE 'pg\_toast%' AND schemaname NOT LIKE 'pg\_temp\_%'
     ORDER BY 1, 2"""


def table_sums(conn: psycopg.Connection,
               on_table: Callable[[str], None] | None = None) -> dict[str, TableSum]:
    """Per table: row count and an order-independent checksum of every row's text form, the
    expression of eventgate.checks.snapshot, so the numbers compare with its fingerprints.
    `conn` must be pinned (CHECKSUM_SETTINGS); `on_table` hears of each table before it is
    read."""
    sums: dict[str, TableSum] = {}
    for schema, table in conn.execute(TABLES).fetchall():
        name = f"{schema}.{table}"
        if on_table is not None:
            on_table(name)
        rows, checksum = relation_checksum(conn, schema, table)
        sums[name] = TableSum(rows=rows, checksum=checksum)
    return sums


def compare_tables(expected: dict[str, TableSum], found: dict[str, TableSum]) -> list[str]:
    """One line per table that differs between a backup's metadata and a restore of it."""
    problems = []
    for name in sorted(expected.keys() | found.keys()):
        want, got = expected.get(name), found.get(name)
        if got is None:
            problems.append(f"{name}: in the backup's metadata but missing from the restore")
        elif want is None:
            problems.append(f"{name}: restored but not in the backup's metadata")
        elif want.rows != got.rows:
            problems.append(f"{name}: {want.rows} rows in the backup's metadata, "
                            f"{got.rows} restored")
        elif want.checksum != got.checksum:
            problems.append(f"{name}: content checksum differs ({want.checksum} in the "
                            f"metadata, {got.checksum} restored) with the same {got.rows} rows")
    return problems


def file_digest(path: Path) -> tuple[int, str]:
    """(size in bytes, sha256 hex) of a file, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def file_problems(record: BackupRecord) -> list[str]:
    """Whether the dump on disk is the one the metadata describes (present, same sha256)."""
    path = record.dump_path
    if not path.is_file():
        return [f"{path} is missing (the metadata {record.meta_path} describes it)"]
    try:
        size, digest = file_digest(path)
    except OSError as exc:
        return [f"{path} cannot be read to check its sha256: {exc}; fix the file's "
                "permissions or the disk, or take a new backup"]
    if digest != record.sha256:
        return [f"sha256 mismatch: {path.name} has sha256 {digest} ({size} bytes), the metadata "
                f"says {record.sha256} ({record.size_bytes} bytes); the file changed or was "
                "damaged after the backup: do not restore it, take a new backup"]
    return []
