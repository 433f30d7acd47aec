"""Whether there is a way back: a verified backup of this database, recent enough, in the
directory where backups are kept (eventgate backup --verify writes them)."""

from __future__ import annotations

from pathlib import Path

from eventgate.safety import catalog
from eventgate.safety.preflight.check import Check, Options


def _age(record: catalog.BackupRecord) -> str:
    return f"{record.age_s() / 3600:.1f} h"


def _newest_seen(directory: Path, database: str) -> str:
    """The newest backup of `database` in `directory`, verified or not, for the failure text."""
    if not directory.is_dir():
        return "the directory does not exist"
    records, unreadable = catalog.scan(directory, database)
    skipped = f"; {len(unreadable)} unreadable metadata files" if unreadable else ""
    if not records:
        return f"no backup of {database} there{skipped}"
    newest = records[-1]
    if newest.verification is None:
        state = "never verified"
    elif not newest.verification.ok:
        state = "its verification failed" + (
            f" ({newest.verification.problems[0]})" if newest.verification.problems else "")
    elif newest.meta_path is not None and not newest.dump_path.is_file():
        state = "its dump file is missing"
    else:
        state = "verified"
    return f"newest seen: {newest.dump_file}, {_age(newest)} old, {state}{skipped}"


def check_backup(database: str, options: Options) -> Check:
    directory, limit_h = options.backup_dir, options.max_backup_age_h
    record = catalog.latest_verified(directory, database)
    _, unreadable = catalog.scan(directory)
    if record is not None and record.age_s() <= limit_h * 3600:
        found = (f"verified backup {record.dump_file} of {database}, "
                 f"{_age(record)} old (limit {limit_h:g} h), in {directory}")
        if unreadable:
            # A backup someone counts on may be among them: say so, without failing.
            return Check("backup", "warn", f"{found}; {len(unreadable)} metadata files could "
                         f"not be read: {unreadable[0]}",
                         "fix or remove the unreadable metadata files")
        return Check("backup", "ok", found)
    if record is not None:
        problem = (f"the newest verified backup of {database} in {directory}, "
                   f"{record.dump_file}, is {_age(record)} old (limit {limit_h:g} h)")
    else:
        problem = (f"no verified backup of {database} in {directory}; "
                   f"{_newest_seen(directory, database)}")
    fix = (f"take one with `eventgate backup --verify` into {directory} (or point "
           "--backup-dir at where backups are kept) and run preflight again")
    if options.skip_backup_check:
        return Check("backup", "warn",
                     f"not enforced (--skip-backup-check, for rehearsals): {problem}", fix)
    return Check("backup", "fail", problem, fix)
