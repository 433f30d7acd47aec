"""`eventgate backup` and `eventgate restore`: the command line around eventgate.safety's
verified pg_dump backups and the restore that swaps one in."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from datetime import UTC, datetime

from rich.markup import escape

from eventgate import dsn as dsn_mod
from eventgate import operator_env
from eventgate.cli.common import (
    DEFAULT_BACKUP_DIR,
    given_backup_dir,
    notifier,
    require_dsn,
    warn,
)
from eventgate.cli.console import console, spinner
from eventgate.migrate.notify import WebhookNotifier, notifying
from eventgate.safety.app_state import back_up_app_state
from eventgate.safety.backup import take_backup
from eventgate.safety.catalog import BackupRecord
from eventgate.safety.plain_restore import plan_plain_restore, restore_plain
from eventgate.safety.restore import plan_restore, restore_latest
from eventgate.safety.retention import prune
from eventgate.units import human_bytes

NOT_CONFIRMED = 2  # exit code of a restore shown but not carried out (no --yes)


def _migration(record: BackupRecord) -> str:
    return ("before any migration" if record.migration_version is None
            else f"at migration {record.migration_version:03d}")


def _when(iso: str) -> str:
    return datetime.fromisoformat(iso).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _summary(record: BackupRecord) -> str:
    migrated = _migration(record)
    rows = sum(t.rows for t in record.tables.values())
    return (f"{record.database}, {len(record.tables)} tables, {rows} rows, {migrated}, "
            f"PostgreSQL {record.server_version}")


def cmd_backup(args: argparse.Namespace) -> int:
    """Back up the database with pg_dump into --backup-dir. Each table's rows and checksum
    are taken in the dump's own snapshot; --verify restores the dump into a scratch database
    and compares every table, --retention-days N then prunes this database's backups older
    than N days but never the newest verified one. Exits 1 on FAILED or NOT VERIFIED."""
    if args.app_state:
        return _app_state(args)
    dsn = require_dsn(args)
    directory = given_backup_dir(args)
    quiet = args.json
    if not quiet:
        console.print(f"backing up {dsn_mod.describe(dsn)} into {directory}/")
    started = time.monotonic()
    announce = notifier()
    with notifying(announce, None, warn):
        if announce is not None:
            announce.started("backup", dsn_mod.describe(dsn))
        with spinner("pg_dump") as progress:
            record = take_backup(dsn, directory, verify=args.verify, progress=progress,
                                 bindir=args.pg_bindir)
        took = time.monotonic() - started
        if announce is not None:
            _announce_backup(announce, record, took)
    verification = record.verification
    ok = verification is None or verification.ok
    if quiet:
        data = {**record.to_json(), "metadata_file": str(record.meta_path)}
        sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
    else:
        console.print(f"[green]backed up[/] {escape(_summary(record))}\n  {record.dump_path} "
                      f"({human_bytes(record.size_bytes)}, sha256 {record.sha256[:12]}…) in "
                      f"{took:.2f} s")
        if verification is None:
            console.print("[yellow]not verified[/]: restore --latest uses verified backups "
                          "only; add --verify to prove this one restores")
        elif verification.ok:
            console.print(f"[green]verified[/]: restored into {verification.scratch_database} "
                          "(dropped), every table's rows and checksum match")
        else:
            console.print(f"[red]NOT VERIFIED:[/] {escape(record.dump_file)} cannot be "
                          "trusted and will never be picked by restore --latest:")
            for problem in verification.problems:
                console.print(f"  [red]✗[/] {escape(problem)}")
    if args.retention_days is None:  # the guide's BACKUP_RETENTION_DAYS
        args.retention_days = operator_env.retention_days()
    if ok and args.retention_days is not None:
        # The backup just taken is never pruned, even with --retention-days 0 and no --verify.
        protected = [record.meta_path] if record.meta_path is not None else []
        pruned = prune(directory, record.database, args.retention_days, protected=protected)
        if not quiet:
            for note in pruned.notes:
                console.print(f"  [yellow]![/] {escape(note)}")
            console.print(f"pruned {len(pruned.removed)} files older than "
                          f"{args.retention_days:g} days"
                          + "".join(f"\n  - {path.name}" for path in pruned.removed))
    return 0 if ok else 1


def _app_state(args: argparse.Namespace) -> int:
    """The application's configuration and uploads, archived beside the database backups and
    read back; names only are printed, never a file's contents."""
    directory = given_backup_dir(args)
    announce = notifier()
    with notifying(announce, None, warn):
        if announce is not None:
            announce.started("backup", "the application state")
        with spinner("archiving the application state"):
            done = back_up_app_state(args.app_state, directory)
        if announce is not None:
            announce.succeeded(f"archived the application state: {done.archive.name}, "
                               f"{done.files} files, read back")
    if args.json:
        sys.stdout.write(done.manifest.read_text(encoding="utf-8"))
        return 0
    console.print(f"[green]archived[/] {done.files} files ({human_bytes(done.size_bytes)}) "
                  f"into {done.archive} ({human_bytes(done.archive_bytes)}), read back and "
                  f"compared file by file\n  listed in {done.manifest.name}")
    for skipped in done.skipped:
        console.print(f"  [yellow]![/] skipped {escape(skipped)}: not a regular file")
    return 0


def _announce_backup(announce: WebhookNotifier, record: BackupRecord, took: float) -> None:
    verification = record.verification
    what = (f"{record.dump_file} of {record.database}, {human_bytes(record.size_bytes)}, in "
            f"{took:.1f} s")
    if verification is not None and not verification.ok:
        announce.failed(f"NOT VERIFIED: {what}: " + "; ".join(verification.problems[:3]))
    else:
        announce.succeeded(f"backed up {what}"
                           + (", verified" if verification is not None else ", not verified"))


def cmd_restore(args: argparse.Namespace) -> int:
    """Replace the database with a backup: --latest, the newest verified one of --backup-dir;
    --from FILE, a plain pg_dump .sql or .sql.gz (the deployment guide's create-backup.sh).
    The backup is restored into a new database and proven there (every table against its
    checksums; a plain dump's every table against the rows of its COPY block); then the other
    sessions are ended and the names swapped, and the current database is kept under another
    name until you drop it. Needs --yes to act (without it: prints the plan, changes nothing,
    exits 2)."""
    dsn = require_dsn(args)
    if args.from_file:
        plain = plan_plain_restore(dsn, args.from_file)
        dump = plain.dump
        rows = sum(dump.rows.values())
        console.print(
            f"restore {dsn_mod.describe(dsn)} from {dump.path}\n"
            f"  a plain pg_dump{' (gzip)' if dump.compressed else ''} of "
            f"{dump.database or plain.database}, taken {_when(dump.created_at)}, "
            f"{human_bytes(dump.size_bytes)}: {len(dump.rows)} tables, {rows} rows"
            + (f", PostgreSQL {dump.server_version}" if dump.server_version else "")
            + f"\n  ends {plain.sessions} other session(s) on {plain.database}; the current "
            f"database is kept as {plain.database}_pre_restore_<time>")
        notes, source = plain.notes, dump.path.name
    else:
        plan = plan_restore(dsn, given_backup_dir(args))
        record = plan.record
        verified_at = _when(record.verification.at) if record.verification else "?"
        console.print(
            f"restore {dsn_mod.describe(dsn)} from {record.dump_path}\n"
            f"  taken {_when(record.created_at)}, verified {verified_at}: "
            f"{escape(_summary(record))}"
            f"\n  ends {plan.sessions} other session(s) on {plan.database}; the current "
            f"database is kept as {plan.database}_pre_restore_<time>")
        for skipped in plan.skipped:
            console.print(f"  [yellow]![/] skipped {escape(skipped)}: newer, but not verified")
        notes, source = plan.notes, record.dump_file
    for note in notes:
        console.print(f"  [yellow]![/] {escape(note)}")
    if not args.yes:
        console.print("nothing changed: add --yes to restore")
        return NOT_CONFIRMED
    announce = notifier()
    with notifying(announce, None, warn):
        if announce is not None:
            announce.started("restore", dsn_mod.describe(dsn))
        with spinner("restoring") as progress:
            report = (restore_plain(dsn, args.from_file, progress=progress,
                                    bindir=args.pg_bindir) if args.from_file
                      else restore_latest(dsn, given_backup_dir(args), progress=progress,
                                          bindir=args.pg_bindir))
        if announce is not None:
            announce.succeeded(f"restored {report.database} from {source} in "
                               f"{report.duration_s:.1f} s; the previous database is kept as "
                               f"{report.previous_database}")
    record = report.record
    console.print(
        f"[green]restored[/] {report.database} from {source} (taken "
        f"{_when(record.created_at)}, {_migration(record)}) in {report.duration_s:.2f} s: "
        f"{report.sessions_ended} session(s) ended, "
        f"{report.settings_copied} database setting(s) copied\n"
        f"  the previous database is kept as {report.previous_database}; drop it once "
        f"satisfied: {escape(report.drop_hint())}")
    for note in report.notes:
        if note not in notes:  # shown with the plan above
            console.print(f"  [yellow]![/] {escape(note)}")
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backup-dir", metavar="DIR", help="where backups and their metadata "
                   f"live [env EVENTGATE_BACKUP_DIR; default {DEFAULT_BACKUP_DIR}]")
    p.add_argument("--pg-bindir", metavar="DIR", help="directory holding pg_dump and "
                   "pg_restore (default: the server binaries' directory, PATH, then "
                   "/usr/lib/postgresql/*/bin, newest first)")


def _days(text: str) -> float:
    try:
        days = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of days") from None
    if not days >= 0 or math.isinf(days):  # NaN fails the first test
        raise argparse.ArgumentTypeError(f"{text!r}: the retention must be a number of days, "
                                         "0 or more")
    return days


def configure_backup(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("--verify", action="store_true", help="restore the dump into a scratch "
                   "database and compare every table's rows and checksum (only verified "
                   "backups are used by restore --latest)")
    p.add_argument("--retention-days", type=_days, metavar="N", help="after a successful "
                   "backup, delete this database's backups older than N days, except the "
                   "newest verified one (default: keep everything)")
    p.add_argument("--json", action="store_true", help="print the backup's record as JSON "
                   "instead of a summary")
    p.add_argument("--app-state", nargs="+", metavar="PATH", help="instead of the database: "
                   "archive these files and directories (configuration, uploads) into "
                   "--backup-dir as app_state_<time>.tar.gz, read it back, and list it in "
                   "app_state_<time>.json")


def configure_restore(p: argparse.ArgumentParser) -> None:
    _common(p)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--latest", action="store_true", help="restore the newest verified "
                       "backup of the database in --backup-dir")
    which.add_argument("--from", dest="from_file", metavar="FILE", help="restore a plain "
                       "pg_dump .sql or .sql.gz, as the deployment guide's create-backup.sh "
                       "writes it (its backup_metadata_<stamp>.json beside it is read when "
                       "there)")
    p.add_argument("--yes", action="store_true", help="really restore: ends every other "
                   "session on the database (without it: show the plan, change nothing, exit 2)")
