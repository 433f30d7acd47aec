"""A migration bundle on disk: baseline schema, migrations with their rollbacks, the column
mapping and the expectations. Everything specific to one migration lives there, as data.

This module finds the SQL files and puts the Bundle together; eventgate.bundle_toml reads the
TOML files. Every name of either is imported from here."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from eventgate.bundle_budgets import HoldsUpTo, QueryBudget
from eventgate.bundle_toml import (
    MAPPING_KINDS,
    ChangeLog,
    ColumnMapping,
    Expectations,
    IndexExpectation,
    LintWaiver,
    LockBudget,
    Reference,
    RollbackExports,
    SameValue,
    TableMapping,
    UniqueValues,
    read_expectations,
    read_mapping,
    read_rollback_exports,
)
from eventgate.errors import BundleError

# The TOML files' parts are defined in bundle_toml and named here too: a bundle is imported
# from one place.
__all__ = [
    "MAPPING_KINDS",
    "Bundle",
    "ChangeLog",
    "ColumnMapping",
    "Expectations",
    "HoldsUpTo",
    "IndexExpectation",
    "LintWaiver",
    "LockBudget",
    "Migration",
    "QueryBudget",
    "Reference",
    "RollbackExports",
    "SameValue",
    "SqlFile",
    "TableMapping",
    "UniqueValues",
    "default_bundle_path",
    "load_bundle",
]

FILENAME = re.compile(r"^(?P<version>\d+)_(?P<slug>[A-Za-z0-9_]+)\.sql$")
ROLLBACK_SUFFIX = "_rollback"


def default_bundle_path() -> Path:
    return Path(__file__).parent / "bundles" / "fase0"


@dataclass(frozen=True)
class SqlFile:
    version: int
    name: str
    path: Path

    @cached_property
    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()

    @property
    def label(self) -> str:
        return self.path.name


@dataclass(frozen=True)
class Migration(SqlFile):
    rollback: SqlFile | None = None


@dataclass(frozen=True)
class Bundle:
    root: Path
    baseline: tuple[SqlFile, ...]
    migrations: tuple[Migration, ...]
    mapping: dict[str, TableMapping]
    expectations: Expectations
    policy: dict[str, str] = field(default_factory=dict)  # mapping.toml [policy]: stated rules
    rollback_exports: dict[int, RollbackExports] = field(default_factory=dict)

    def migration(self, version: int) -> Migration:
        for migration in self.migrations:
            if migration.version == version:
                return migration
        raise BundleError(f"the bundle {self.root} has no migration {version:03d}")

    @property
    def legacy_tables(self) -> tuple[str, ...]:
        """The legacy schema's tables, as mapping.toml lists them (the baseline creates them):
        the one list of them, for whatever needs their names (the seeder, preflight)."""
        return tuple(self.mapping)

    @property
    def versions(self) -> list[int]:
        return [m.version for m in self.migrations]

    @property
    def final_migration(self) -> int:
        """The version after which the migration is complete: /health, preflight and the
        ledger checks all read it from here."""
        return max(self.versions)


def _sql_files(directory: Path, *, rollback: bool = False) -> list[SqlFile]:
    if not directory.is_dir():
        raise BundleError(f"the bundle has no {directory.name}/ directory (looked at {directory})")
    files: dict[int, SqlFile] = {}
    for path in sorted(directory.iterdir()):
        if path.suffix != ".sql":
            continue
        match = FILENAME.match(path.name)
        if not match:
            raise BundleError(
                f"{path} is not named NNN_name.sql; migrations are ordered by that number"
            )
        version, name = int(match["version"]), path.stem
        if rollback:
            if not name.endswith(ROLLBACK_SUFFIX):
                raise BundleError(f"{path} is in rollback/ but is not named NNN_name_rollback.sql")
            name = name.removesuffix(ROLLBACK_SUFFIX)
        if version in files:
            raise BundleError(
                f"two files in {directory} carry the number {version}: "
                f"{files[version].path.name} and {path.name}"
            )
        files[version] = SqlFile(version, name, path)
    # Ordered by number, so 10 comes after 9 and not before 2.
    return [files[v] for v in sorted(files)]


def _migrations(root: Path) -> tuple[Migration, ...]:
    forward = _sql_files(root / "migrations")
    if not forward:
        raise BundleError(f"{root / 'migrations'} holds no NNN_name.sql files")
    rollbacks = {f.version: f for f in _sql_files(root / "rollback", rollback=True)}
    migrations = []
    for f in forward:
        back = rollbacks.pop(f.version, None)
        if back is None:
            raise BundleError(
                f"{f.label} has no rollback: add rollback/{f.name}{ROLLBACK_SUFFIX}.sql"
            )
        if back.name != f.name:
            raise BundleError(
                f"rollback/{back.label} does not match {f.label}: expected "
                f"{f.name}{ROLLBACK_SUFFIX}.sql"
            )
        migrations.append(Migration(f.version, f.name, f.path, rollback=back))
    if rollbacks:
        stray = ", ".join(f.label for f in rollbacks.values())
        raise BundleError(f"rollback scripts without a migration: {stray}")
    return tuple(migrations)


def load_bundle(path: str | Path | None = None) -> Bundle:
    """Read and check a bundle directory; the reference bundle when no path is given."""
    root = Path(path) if path else default_bundle_path()
    if not root.is_dir():
        raise BundleError(f"no bundle directory at {root}; pass --bundle PATH to a directory "
                          "holding baseline/, migrations/, rollback/, mapping.toml and "
                          "expectations.toml")
    migrations = _migrations(root)
    mapping, policy = read_mapping(root / "mapping.toml")
    return Bundle(root.resolve(), tuple(_sql_files(root / "baseline")), migrations, mapping,
                  read_expectations(root / "expectations.toml"), policy,
                  read_rollback_exports(root / "rollback.toml", {m.version for m in migrations}))
