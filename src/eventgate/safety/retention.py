"""Retention: which old backups may go, keeping the newest verified one of a database whatever
its age, and clearing the leftovers of interrupted backups."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from eventgate.errors import BackupError
from eventgate.safety import catalog

STALE_PARTIAL_S = 24 * 3600.0


@dataclass
class Pruned:
    """What prune removed, and why anything old was kept."""

    removed: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def prune(directory: Path | str, database: str, keep_days: float,
          now: datetime | None = None, protected: Collection[Path] = ()) -> Pruned:
    """Delete the backups (dump and metadata) of `database` older than `keep_days`, except
    the newest verified one, which is never deleted however old, and those whose metadata file
    is in `protected` (the backup just taken); also `.partial` leftovers of interrupted
    backups older than a day."""
    if not keep_days >= 0 or math.isinf(keep_days):  # NaN fails the first test
        raise BackupError(f"retention of {keep_days} days: pass a number of days, 0 or more")
    directory = Path(directory)
    now = now or datetime.now(UTC)
    try:
        cutoff = now - timedelta(days=keep_days)
    except OverflowError:  # more days than a datetime spans: nothing is that old
        cutoff = datetime.min.replace(tzinfo=UTC)
    kept = {Path(path).resolve() for path in protected}
    result = Pruned()
    records, unreadable = catalog.scan(directory, database)
    keep = catalog.latest_verified(directory, database)
    if keep is None and records:
        result.notes.append(f"no verified backup of {database} in {directory}: old ones are "
                            "pruned by age alone")
    for record in records:
        if record.created >= cutoff:
            continue
        if keep is not None and record.meta_path == keep.meta_path:
            result.notes.append(
                f"kept {record.dump_file} although older than {keep_days:g} days: it is the "
                f"newest verified backup of {database}, which is never pruned")
            continue
        if record.meta_path is not None and record.meta_path.resolve() in kept:
            result.notes.append(f"kept {record.dump_file} although older than {keep_days:g} "
                                "days: it is the backup just taken")
            continue
        # Metadata first: a dump without it is never offered for a restore.
        for path in (record.meta_path, record.dump_path):
            if path is not None and path.exists():
                path.unlink()
                result.removed.append(path)
    result.notes += [f"left alone, unreadable: {line}" for line in unreadable]
    _remove_stale_partials(directory, now, result)
    return result


def _remove_stale_partials(directory: Path, now: datetime, result: Pruned) -> None:
    """`.partial` files an interrupted backup left, once older than a day: a younger one may
    belong to a backup running now."""
    if not directory.is_dir():
        return
    for partial in sorted(directory.glob("*.partial")):
        with contextlib.suppress(FileNotFoundError):
            if now.timestamp() - partial.stat().st_mtime > STALE_PARTIAL_S:
                partial.unlink()
                result.removed.append(partial)
