"""`eventgate rehearse`: the migration rehearsed on a scratch restore of the newest verified
backup (eventgate.safety.rehearse), reported as a short table or as JSON."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from eventgate import dsn as dsn_mod
from eventgate.cli.common import DEFAULT_BACKUP_DIR, given_backup_dir, given_bundle, require_dsn
from eventgate.cli.console import console, spinner
from eventgate.safety.progress import no_progress
from eventgate.safety.rehearse import Rehearsal, Wait, rehearse


def configure_rehearse(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backup-dir", metavar="DIR", help="where backups and their metadata "
                   f"live [env EVENTGATE_BACKUP_DIR; default {DEFAULT_BACKUP_DIR}]")
    p.add_argument("--pg-bindir", metavar="DIR", help="directory holding pg_restore (default: "
                   "as for eventgate restore)")
    p.add_argument("--reports", default="reports/rehearsal", metavar="DIR",
                   help="where the gate writes its reports (default reports/rehearsal)")
    p.add_argument("--keep", action="store_true", help="keep the scratch database afterwards "
                   "and print its DSN (drop it yourself); it is left as the rollback round "
                   "trip leaves it, rolled back to the base")
    p.add_argument("--json", action="store_true", help="print the rehearsal as JSON")


def _wait(wait: Wait | None, budget_ms: float) -> str:
    if wait is None:
        return "-"
    mark = "[red]" if wait.ms > budget_ms else ""
    return f"{mark}{wait.ms:.0f} ms{'[/]' if mark else ''}"


def _table(result: Rehearsal) -> Table:
    budget = result.budget
    table = Table(title=f"rehearsal of {result.database} from {result.backup}; lock budget: "
                  f"writers {budget.max_write_wait_ms:g} ms, readers "
                  f"{budget.max_read_wait_ms:g} ms", title_justify="left")
    for column in ("migration", "seconds", "rows", "rows/s", "write wait", "read wait"):
        table.add_column(column, justify="left" if column == "migration" else "right")
    for m in result.migrations:
        table.add_row(m.label, f"{m.duration_s:.2f}", str(m.rows), f"{m.rows_per_s:,.0f}",
                      _wait(m.longest_write, budget.max_write_wait_ms),
                      _wait(m.longest_read, budget.max_read_wait_ms))
    return table


def _print(result: Rehearsal) -> None:
    console.print(f"restored into {result.scratch} in {result.restore_s:.2f} s; preflight: "
                  f"{escape(result.preflight)}")
    if result.migrations:
        console.print(_table(result))
    for line in result.over_budget():
        console.print(f"  [red]✗[/] over the lock budget: {escape(line)}")
    console.print(f"gate: {escape(result.gate)}; rollback round trip: "
                  f"{escape(result.round_trip)}"
                  + (f" (rolled back in {result.rollback_s:.2f} s)" if result.rollback_s else ""))
    for problem in result.problems:
        console.print(f"  [red]✗[/] {escape(problem)}")
    console.print(f"scratch database kept: {escape(result.kept_dsn)}" if result.kept_dsn else
                  f"scratch database {result.scratch} dropped")
    console.print("[green]rehearsed[/]: the migration, gate and way back all held"
                  if result.ok else "[red]REHEARSAL FAILED[/]: see above")


def cmd_rehearse(args: argparse.Namespace) -> int:
    """Rehearse the migration on a scratch restore of the newest verified backup of --dsn's
    database (from --backup-dir), on the same server: preflight, the migration with lock-wait
    probes playing the old application, the gate and the rollback round trip; reports per
    migration its time, rows per second and the longest waits. Only reads --dsn's database; the
    scratch database is dropped at the end unless --keep. Exit 0 when everything held, 1
    otherwise."""
    dsn = require_dsn(args)
    directory = given_backup_dir(args)
    bundle = given_bundle(args)
    if args.json:
        result = rehearse(dsn, directory, bundle, reports=Path(args.reports), keep=args.keep,
                          progress=no_progress, bindir=args.pg_bindir)
        sys.stdout.write(json.dumps(result.to_json(), indent=2, sort_keys=True) + "\n")
        return 0 if result.ok else 1
    console.print(f"rehearsing {dsn_mod.describe(dsn)}'s newest verified backup from "
                  f"{directory}/ on a scratch database")
    with spinner("restoring") as progress:
        result = rehearse(dsn, directory, bundle, reports=Path(args.reports), keep=args.keep,
                          progress=progress, bindir=args.pg_bindir)
    _print(result)
    return 0 if result.ok else 1
