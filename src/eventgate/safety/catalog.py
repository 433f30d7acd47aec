"""The backup catalog: each dump has a metadata JSON beside it, and the catalog is nothing more
than those files, so a backup directory can be copied, listed and pruned with plain tools."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

FORMAT = 1
SUFFIX = ".dump"
META_SUFFIX = ".json"


@dataclass
class TableSum:
    rows: int
    checksum: str


@dataclass
class Verification:
    at: str  # ISO 8601, UTC
    ok: bool
    scratch_database: str
    problems: list[str] = field(default_factory=list)


@dataclass
class BackupRecord:
    """What `<name>.json` says of `<name>.dump`."""

    database: str
    created_at: str  # ISO 8601, UTC
    dump_file: str  # file name, relative to the metadata file's directory
    size_bytes: int
    sha256: str
    server_version: str
    migration_version: int | None  # newest applied migration, None before the first
    tables: dict[str, TableSum]
    verification: Verification | None = None
    format: int = FORMAT
    meta_path: Path | None = field(default=None, compare=False)

    @property
    def created(self) -> datetime:
        return datetime.fromisoformat(self.created_at)

    @property
    def verified(self) -> bool:
        return self.verification is not None and self.verification.ok

    @property
    def dump_path(self) -> Path:
        if self.meta_path is None:
            raise ValueError("a record not yet saved has no path")
        return self.meta_path.parent / self.dump_file

    def age_s(self, now: datetime | None = None) -> float:
        return ((now or datetime.now(UTC)) - self.created).total_seconds()

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("meta_path")
        return data

    def save(self, meta_path: Path) -> None:
        """Written to a temporary name and renamed, so a reader never sees half a record."""
        self.meta_path = meta_path
        partial = meta_path.with_name(meta_path.name + ".partial")
        partial.write_text(json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n",
                           encoding="utf-8")
        os.replace(partial, meta_path)

    @classmethod
    def load(cls, meta_path: Path) -> BackupRecord:
        data = json.loads(meta_path.read_text(encoding="utf-8"))
        if data.get("format") != FORMAT:
            raise ValueError(f"{meta_path}: backup metadata format {data.get('format')!r}, "
                             f"this eventgate reads format {FORMAT}")
        verification = data.pop("verification", None)
        tables = {k: TableSum(**v) for k, v in data.pop("tables").items()}
        return cls(**data, tables=tables, meta_path=meta_path,
                   verification=Verification(**verification) if verification else None)


def scan(directory: Path, database: str | None = None) -> tuple[list[BackupRecord], list[str]]:
    """Every backup in `directory` (oldest first), optionally of one database, and a line per
    metadata file that could not be read (never silently skipped)."""
    records: list[BackupRecord] = []
    unreadable: list[str] = []
    if not directory.is_dir():
        return records, unreadable
    for meta in sorted(directory.glob(f"*{META_SUFFIX}")):
        try:
            record = BackupRecord.load(meta)
        except (ValueError, KeyError, TypeError, OSError) as exc:
            unreadable.append(f"{meta}: {exc}")
            continue
        if database is None or record.database == database:
            records.append(record)
    records.sort(key=lambda r: r.created)
    return records, unreadable


def latest_verified(directory: Path, database: str) -> BackupRecord | None:
    """The newest backup of `database` whose restore was verified and whose dump is present."""
    records, _ = scan(directory, database)
    for record in reversed(records):
        if record.verified and record.dump_path.is_file():
            return record
    return None
