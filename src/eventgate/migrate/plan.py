"""What a run would do, read from the ledger and the bundle without changing anything: the
state of each migration, which are pending, which a rollback undoes, and what is wrong between
the ledger and the files."""

from __future__ import annotations

from dataclasses import dataclass

from eventgate.bundle import Bundle, Migration
from eventgate.errors import MigrationError
from eventgate.migrate.ledger import LedgerEntry


@dataclass(frozen=True)
class StatusRow:
    version: int
    label: str
    state: str  # applied | pending | edited | missing-file
    entry: LedgerEntry | None


def ledger_problems(entries: list[LedgerEntry], bundle: Bundle) -> list[str]:
    """What is wrong between the ledger and the files: edited, missing, applied out of order."""
    problems = []
    files = {m.version: m for m in bundle.migrations}
    applied = {e.version for e in entries}
    for entry in entries:
        migration = files.get(entry.version)
        if migration is None:
            problems.append(
                f"the ledger records {entry.version:03d} ({entry.name}) as applied, but the "
                f"bundle has no such migration; restore the file to {bundle.root / 'migrations'}"
            )
        elif migration.sha256 != entry.sha256:
            problems.append(
                f"{migration.label} was edited after it was applied (ledger sha256 "
                f"{entry.sha256[:12]}…, file {migration.sha256[:12]}…); restore the applied "
                "version from version control, or roll it back before changing it"
            )
    if applied:
        newest = max(applied)
        for version in sorted(files):
            if version < newest and version not in applied:
                problems.append(
                    f"{files[version].label} is not applied but a later migration "
                    f"({newest:03d}) is: the migrations were applied out of order"
                )
    return problems


def pending(entries: list[LedgerEntry], bundle: Bundle, to: int | None = None) -> list[Migration]:
    """Migrations not applied yet, in order; with `to`, only those up to that version."""
    # A version of the bundle, or one before the first (nothing to apply).
    if to is not None and to not in bundle.versions and to >= min(bundle.versions):
        known = ", ".join(f"{v:03d}" for v in bundle.versions)
        raise MigrationError(f"--to {to:03d} is not a migration of the bundle ({known}); "
                             "nothing was changed")
    applied = {e.version for e in entries}
    return [m for m in bundle.migrations
            if m.version not in applied and (to is None or m.version <= to)]


def to_roll_back(entries: list[LedgerEntry], bundle: Bundle,
                 to: int | None = None) -> list[Migration]:
    """Applied migrations newer than `to` (default: only the newest), newest first. Every one
    is found in the bundle before anything is rolled back."""
    applied = [e.version for e in entries]
    if not applied:
        return []
    # Without a target, only the newest goes: back to the one applied before it.
    target = to if to is not None else [0, *applied][-2]
    return [bundle.migration(v) for v in sorted((v for v in applied if v > target), reverse=True)]


def status(entries: list[LedgerEntry], bundle: Bundle) -> list[StatusRow]:
    by_version = {e.version: e for e in entries}
    rows = []
    for m in bundle.migrations:
        entry = by_version.pop(m.version, None)
        state = "pending" if entry is None else (
            "applied" if entry.sha256 == m.sha256 else "edited")
        rows.append(StatusRow(m.version, m.label, state, entry))
    rows += [StatusRow(e.version, f"{e.name}.sql", "missing-file", e)
             for e in by_version.values()]
    return sorted(rows, key=lambda r: r.version)


def validate(entries: list[LedgerEntry], bundle: Bundle) -> list[str]:
    """Everything wrong with the applied migrations; an empty list means complete and intact.
    The schema expectations are the gates' business (eventgate.checks)."""
    problems = ledger_problems(entries, bundle)
    applied = {e.version for e in entries}
    missing = [m.label for m in bundle.migrations if m.version not in applied]
    if missing:
        problems.append(f"not applied yet: {', '.join(missing)}; run eventgate migrate "
                        "--execute")
    return problems
