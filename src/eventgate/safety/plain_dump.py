"""The deployment guide's backups: a plain `pg_dump` SQL file (`.sql`, or `.sql.gz` as its
create-backup.sh writes it) and the `backup_metadata_<stamp>.json` beside it.

A plain dump carries no checksums, so it is read whole before anything is restored, and what it
can prove is proven: gzip's CRC (a corrupt or cut `.gz` fails to read), pg_dump's first and last
lines (a dump cut short has no "dump complete" footer), the size its metadata recorded, and the
rows of every COPY block, counted, which the restored tables must hold exactly. What it cannot
prove (a flipped byte inside a plain `.sql`) is said, never implied."""

from __future__ import annotations

import gzip
import json
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, cast

from eventgate.errors import BackupError

HEADER = "-- PostgreSQL database dump"
FOOTER = "-- PostgreSQL database dump complete"
_COPY = re.compile(r"^COPY (?P<table>\S+) (?:\(.*\) )?FROM stdin;$")
_VERSION = re.compile(r"^-- Dumped from database version (?P<version>\S+)")
_CREATE = re.compile(r"^CREATE DATABASE (?P<name>\"(?:[^\"]|\"\")+\"|\S+)")
# What `pg_dump --create` writes about the database itself: restored into a scratch database,
# these would act on the live one (the guide's dump starts by dropping it). The scratch database
# is created like the live one, and its settings and privileges are copied from it instead.
_DATABASE_LEVEL = re.compile(
    r"^(DROP DATABASE|CREATE DATABASE|ALTER DATABASE|COMMENT ON DATABASE|\\connect"
    r"|GRANT .* ON DATABASE|REVOKE .* ON DATABASE|SECURITY LABEL ON DATABASE)\b")


@dataclass(frozen=True)
class PlainDump:
    path: Path
    compressed: bool
    size_bytes: int
    server_version: str | None  # "-- Dumped from database version ..."
    database: str | None  # its CREATE DATABASE (pg_dump --create), else the metadata's
    rows: dict[str, int]  # "schema.table" -> rows of its COPY block
    created_at: str  # the metadata's backup_date, else the file's modification time (UTC)
    metadata: dict[str, object] | None = None
    metadata_path: Path | None = None
    notes: list[str] = field(default_factory=list)


def _open(path: Path) -> BinaryIO:
    return cast(BinaryIO, gzip.open(path, "rb")) if path.suffix == ".gz" else path.open("rb")


def _unquote(name: str) -> str:
    return name[1:-1].replace('""', '"') if name.startswith('"') else name


def _metadata_for(path: Path) -> tuple[dict[str, object] | None, Path | None, list[str]]:
    """The guide's `backup_metadata_<stamp>.json` whose backup_file names this dump."""
    notes: list[str] = []
    for meta in sorted(path.parent.glob("backup_metadata_*.json")):
        try:
            data = json.loads(meta.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            notes.append(f"unreadable backup metadata, ignored: {meta.name}: {exc}")
            continue
        if isinstance(data, dict) and Path(str(data.get("backup_file", ""))).name == path.name:
            return data, meta, notes
    return None, None, notes


def read_plain_dump(path: Path | str) -> PlainDump:
    """Read the dump whole and prove what it can; raises BackupError naming what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise BackupError(f"no backup file {path}: give the path of a .sql or .sql.gz that "
                          "pg_dump wrote (create-backup.sh writes "
                          "pre_migration_backup_<stamp>.sql.gz)")
    size = path.stat().st_size
    metadata, meta_path, notes = _metadata_for(path)
    if metadata is not None and "backup_size" in metadata:
        try:
            recorded = int(str(metadata["backup_size"]))
        except ValueError:
            recorded = None
            notes.append(f"{meta_path}: backup_size {metadata['backup_size']!r} is not a "
                         "number; the size was not checked")
        if recorded is not None and recorded != size:
            raise BackupError(f"refusing {path.name}: it is {size} bytes, and its metadata "
                              f"({meta_path}) recorded {recorded}; the file was changed or cut "
                              "after the backup. Nothing was changed.")
    rows: dict[str, int] = {}
    head: list[str] = []  # pg_dump's header is in its first lines
    complete = False
    version = database = None
    copying: str | None = None
    try:
        with _open(path) as stream:
            for n, raw in enumerate(stream):
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if n < 5:
                    head.append(line)
                if copying is not None:
                    if line == "\\.":
                        copying = None
                    else:
                        rows[copying] += 1
                    continue
                # After its footer pg_dump writes only "--", blank lines and, from 17.6, 16.10
                # and 15.14 on, `\unrestrict <key>` (psql's guard, not content).
                if line == FOOTER:
                    complete = True
                elif line not in ("", "--") and not line.startswith("\\unrestrict "):
                    complete = False
                match = _COPY.match(line)
                if match:
                    copying = ".".join(_unquote(p) for p in match["table"].split("."))
                    rows.setdefault(copying, 0)
                elif version is None and (found := _VERSION.match(line)):
                    version = found["version"]
                elif database is None and (found := _CREATE.match(line)):
                    database = _unquote(found["name"])
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise BackupError(f"refusing {path.name}: it cannot be read whole ({exc}); a .gz "
                          "that fails its CRC or ends early is corrupt or was cut short. "
                          "Nothing was changed.") from exc
    if not head or not head[0].lstrip("\ufeff").startswith("--") or HEADER not in head:
        raise BackupError(f"refusing {path.name}: it is not a plain pg_dump SQL file (no "
                          f"'{HEADER}' header); eventgate restore --latest takes eventgate's "
                          "own backups. Nothing was changed.")
    if copying is not None or not complete:
        raise BackupError(f"refusing {path.name}: it ends before pg_dump's last line "
                          f"('{FOOTER}'), so it was cut short or pg_dump failed while writing "
                          "it. Nothing was changed.")
    if database is None and metadata is not None and metadata.get("database_name"):
        database = str(metadata["database_name"])
    created = (str(metadata["backup_date"]) if metadata and metadata.get("backup_date")
               else datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat())
    if path.suffix != ".gz":
        notes.append(f"{path.name} is plain SQL: its rows were counted, but without a "
                     "checksum a changed value inside a row cannot be detected (gzip's CRC "
                     "covers a .sql.gz)")
    return PlainDump(path, path.suffix == ".gz", size, version, database, rows, created,
                     metadata, meta_path, notes)


def scratch_sql(dump: PlainDump) -> Iterator[bytes]:
    """The dump's lines for a scratch database: everything but what acts on the database
    itself (COPY data passed through untouched)."""
    copying = False
    with _open(dump.path) as stream:
        for raw in stream:
            if copying:
                copying = raw.rstrip(b"\r\n") != b"\\."
                yield raw
                continue
            line = raw.decode("utf-8", "replace")
            if _COPY.match(line.rstrip("\r\n")):
                copying = True
            elif _DATABASE_LEVEL.match(line):
                yield b"-- (left out by eventgate: it acts on the database itself)\n"
                continue
            yield raw
