"""The backup catalog: each dump has a metadata JSON beside it, and the catalog is nothing more
than those files, so a backup directory can be copied, listed and pruned with plain tools."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
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
        try:
            partial.write_text(json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n",
                               encoding="utf-8")
            os.replace(partial, meta_path)
        except BaseException:
            with contextlib.suppress(OSError):  # not ours when it is, say, a directory
                if not partial.is_dir():
                    partial.unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, meta_path: Path) -> BackupRecord:
        """The record in `meta_path`; MetadataError, naming the file and what is wrong with it,
        when it is not one this eventgate wrote (damaged, edited, of another format)."""
        try:
            data = json.loads(meta_path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise MetadataError(meta_path, f"cannot be read: {exc}") from exc
        except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
            raise MetadataError(meta_path, f"is not JSON: {exc}") from exc
        try:
            return cls._from_json(data, meta_path)
        except MetadataError:
            raise
        except Exception as exc:
            raise MetadataError(meta_path, f"is not backup metadata: {exc!r}") from exc

    @classmethod
    def _from_json(cls, data: object, meta_path: Path) -> BackupRecord:
        def bad(what: str) -> MetadataError:
            return MetadataError(meta_path, f"is not backup metadata: {what}")

        if not isinstance(data, dict):
            raise bad(f"it holds a JSON {type(data).__name__}, not an object")
        if not _is(data.get("format"), int) or data["format"] != FORMAT:
            raise MetadataError(meta_path, f"has backup metadata format "
                                f"{data.get('format')!r}, this eventgate reads format {FORMAT}")
        unknown = sorted(set(data) - _FIELDS)
        missing = sorted(_REQUIRED - set(data))
        if unknown or missing:
            raise bad("; ".join(
                ([f"missing {', '.join(missing)}"] if missing else [])
                + ([f"unknown fields {', '.join(unknown)}"] if unknown else [])))
        for name, kind in _TYPES.items():
            if not _is(data[name], kind):
                raise bad(f"{name} is {data[name]!r}, not {_KIND_NAMES[kind]}")
        _timestamp(data["created_at"], "created_at", bad)
        dump_file = data["dump_file"]
        if not dump_file or Path(dump_file).name != dump_file or dump_file in (".", ".."):
            raise bad(f"dump_file {dump_file!r} is not a file name in the same directory")
        tables: dict[str, TableSum] = {}
        if not isinstance(data["tables"], dict):
            raise bad("tables is not an object")
        for table, value in data["tables"].items():
            if (not isinstance(value, dict) or set(value) != {"rows", "checksum"}
                    or not _is(value["rows"], int) or not isinstance(value["checksum"], str)):
                raise bad(f"tables.{table} is {value!r}, not {{\"rows\": int, "
                          "\"checksum\": str}")
            tables[table] = TableSum(rows=value["rows"], checksum=value["checksum"])
        verification = data.get("verification")
        if verification is not None:
            if (not isinstance(verification, dict)
                    or set(verification) != {"at", "ok", "scratch_database", "problems"}
                    or not isinstance(verification["at"], str)
                    or not isinstance(verification["ok"], bool)
                    or not isinstance(verification["scratch_database"], str)
                    or not isinstance(verification["problems"], list)
                    or not all(isinstance(p, str) for p in verification["problems"])):
                raise bad(f"verification is {verification!r}, not an object of at, ok, "
                          "scratch_database and problems")
            _timestamp(verification["at"], "verification.at", bad)
            verification = Verification(**verification)
        plain = {k: v for k, v in data.items() if k not in ("tables", "verification")}
        return cls(**plain, tables=tables, verification=verification, meta_path=meta_path)


class MetadataError(ValueError):
    """A metadata file that cannot be used; the message names the file."""

    def __init__(self, meta_path: Path, problem: str) -> None:
        super().__init__(f"{meta_path} {problem}")


_FIELDS = {f.name for f in fields(BackupRecord)} - {"meta_path"}
_REQUIRED = _FIELDS - {"verification"}
_TYPES: dict[str, type | tuple[type, ...]] = {
    "database": str, "created_at": str, "dump_file": str, "size_bytes": int, "sha256": str,
    "server_version": str, "migration_version": (int, type(None)),
}
_KIND_NAMES = {str: "a string", int: "an integer", (int, type(None)): "an integer or null"}


def _is(value: object, kind: type | tuple[type, ...]) -> bool:
    """isinstance, with a JSON true/false not taken for a number."""
    return isinstance(value, kind) and not isinstance(value, bool)


def _timestamp(value: str, name: str, bad: Callable[[str], Exception]) -> None:
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise bad(f"{name} {value!r} is not an ISO 8601 timestamp") from None
    if when.tzinfo is None or when.utcoffset() is None:
        raise bad(f"{name} {value!r} has no time zone (eventgate writes UTC, "
                  "e.g. 2030-06-01T12:00:00+00:00)")


# What else lives beside eventgate's backups in a directory the guide's scripts share: the
# guide's create-backup.sh metadata (backup_metadata_<stamp>.json, beside its plain dumps) and
# eventgate's own application-state manifests (app_state_<stamp>.json).
FOREIGN_METADATA = ("backup_metadata_", "app_state_")


def scan(directory: Path, database: str | None = None) -> tuple[list[BackupRecord], list[str]]:
    """Every backup in `directory` (oldest first), optionally of one database, and a line per
    metadata file that could not be read (never silently skipped)."""
    records: list[BackupRecord] = []
    unreadable: list[str] = []
    if not directory.is_dir():
        return records, unreadable
    for meta in sorted(directory.glob(f"*{META_SUFFIX}")):
        if meta.name.startswith(FOREIGN_METADATA):
            continue  # not eventgate's records (restore --from reads the guide's)
        try:
            record = BackupRecord.load(meta)
        except MetadataError as exc:
            unreadable.append(str(exc))
            continue
        except Exception as exc:  # one odd file must never hide the others
            unreadable.append(f"{meta} cannot be used: {exc!r}")
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
