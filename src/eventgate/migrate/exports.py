"""Writing out, before a rollback script runs, the rows it would delete that the legacy schema
cannot hold (the bundle's rollback.toml), so that a rollback never drops them silently."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from eventgate.bundle import RollbackExports
from eventgate.errors import MigrationError

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class ExportedSet:
    version: int
    name: str
    rows: int
    path: str
    sha256: str


def export_directory(root: Path, database: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return root / f"{database}-{stamp}"


def _copy_out(conn: psycopg.Connection, query: str, target: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    rows = 0
    with target.open("wb") as out, conn.cursor() as cur:
        statement = sql.SQL("COPY ({}) TO STDOUT WITH (FORMAT csv, HEADER)").format(
            sql.SQL(query))
        with cur.copy(statement) as copy:
            for chunk in copy:
                out.write(chunk)
                digest.update(chunk)
        rows = cur.rowcount  # -1 where the driver does not report COPY's row count
        out.flush()
        # On disk before the script drops the rows: a crash right after COMMIT keeps the file.
        os.fsync(out.fileno())
    return rows, digest.hexdigest()


def write_exports(conn: psycopg.Connection, plan: RollbackExports,
                  directory: Path) -> list[ExportedSet]:
    """Lock, export each query's rows to CSV, and return what was written; nothing to export
    leaves no file (and no directory). Runs inside the rollback's transaction, so the rows
    exported are the rows dropped."""
    if plan.lock:
        conn.execute(sql.SQL("LOCK TABLE {} IN SHARE MODE").format(
            sql.SQL(", ").join(sql.Identifier(name) for name in plan.lock)))
    written = []
    for name, query in plan.queries.items():
        row = conn.execute(sql.SQL("SELECT count(*) FROM ({}) AS q").format(
            sql.SQL(query))).fetchone()  # the bundle's own SQL, trusted as its scripts are
        expected = int(row[0]) if row else 0
        if expected == 0:
            continue
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise MigrationError(f"cannot create the rollback export directory {directory}: "
                                 f"{exc}; pass --export-dir to a writable place") from exc
        target = directory / f"{plan.version:03d}_{name}.csv"
        rows, sha = _copy_out(conn, query, target)
        if rows < 0:
            rows = expected  # counted above, in the same transaction, under the lock
        elif rows != expected:
            raise MigrationError(f"exporting {name} wrote {rows} rows of {expected}; nothing "
                                 f"was rolled back, and {target} is incomplete")
        written.append(ExportedSet(plan.version, name, rows, str(target), sha))
    return written


def add_to_manifest(directory: Path, written: list[ExportedSet], database: str) -> None:
    manifest = directory / MANIFEST
    entries: dict[str, Any] = (json.loads(manifest.read_text(encoding="utf-8"))
                               if manifest.exists() else {"database": database, "sets": []})
    entries["sets"] += [asdict(w) | {"exported_at": datetime.now(UTC).isoformat()}
                        for w in written]
    partial = manifest.with_name(MANIFEST + ".partial")
    partial.write_text(json.dumps(entries, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, manifest)


def exported_warning(label: str, written: list[ExportedSet]) -> str:
    """What a person is told after a rollback exported rows: where, and how to load them back."""
    directory = Path(written[0].path).parent
    return (f"rolling back {label} deleted what the legacy schema cannot hold; it was exported "
            "first: " + ", ".join(f"{e.rows} {e.name}" for e in written)
            + f" in {directory} (CSV with header, manifest.json lists rows and sha256); load "
            f"them back after migrating again, e.g. \\copy {written[0].name} FROM "
            f"'{written[0].path}' CSV HEADER")
