"""The `eventgate preflight` verb: options, and the report as a table or as JSON."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

from rich.markup import escape
from rich.table import Table

from eventgate import dsn as dsn_mod
from eventgate.cli.common import DEFAULT_BACKUP_DIR, given_backup_dir, given_bundle, require_dsn
from eventgate.cli.console import console
from eventgate.errors import ConfigError, EventgateError
from eventgate.safety.preflight import Options, Report, run_preflight

STYLES = {"ok": "green", "warn": "yellow", "fail": "red", "skip": "dim"}


def configure_preflight(p: argparse.ArgumentParser) -> None:
    """The verb's own options; cli/main.py adds --dsn, --bundle and --traceback."""
    p.add_argument("--json", action="store_true",
                   help="print the report as one JSON document instead of a table")
    p.add_argument("--backup-dir", metavar="DIR",
                   help="where verified backups are kept [env EVENTGATE_BACKUP_DIR; "
                   f"default {DEFAULT_BACKUP_DIR}]")
    p.add_argument("--max-backup-age", type=float, default=24.0, metavar="HOURS",
                   help="the newest verified backup may be this old (default 24)")
    p.add_argument("--skip-backup-check", action="store_true",
                   help="report a missing or old backup as a warning, not a failure "
                   "(rehearsals only)")
    p.add_argument("--disk-factor", type=float, default=2.0, metavar="F",
                   help="free disk needed, as a multiple of the legacy tables' size "
                   "(default 2.0)")
    p.add_argument("--max-connections", type=int, default=10, metavar="N",
                   help="warn when more other sessions use the database (default 10)")
    p.add_argument("--max-idle-in-transaction", type=float, default=60.0, metavar="S",
                   help="fail when a session idle in a transaction this long holds a lock "
                   "on a legacy table (default 60)")


def options_from(args: argparse.Namespace) -> Options:
    for flag, value in (("--max-backup-age", args.max_backup_age),
                        ("--disk-factor", args.disk_factor),
                        ("--max-connections", args.max_connections),
                        ("--max-idle-in-transaction", args.max_idle_in_transaction)):
        if value < 0:
            raise ConfigError(f"{flag} {value} is negative; give 0 or more")
    return Options(backup_dir=given_backup_dir(args), max_backup_age_h=args.max_backup_age,
                   skip_backup_check=args.skip_backup_check, disk_factor=args.disk_factor,
                   max_connections=args.max_connections,
                   max_idle_in_transaction_s=args.max_idle_in_transaction)


def report_table(report: Report) -> Table:
    table = Table(title=f"eventgate preflight — {report.database}", title_justify="left")
    for column in ("check", "status", "detail"):
        table.add_column(column, overflow="fold")
    for check in report.checks:
        detail = escape(check.detail)
        if check.fix and check.status in ("warn", "fail"):
            detail += f"\n[bold]fix:[/] {escape(check.fix)}"
        style = STYLES[check.status]
        table.add_row(check.name, f"[{style}]{check.status}[/]", detail)
    return table


def verdict(report: Report) -> str:
    count = sum(c.status == "warn" for c in report.checks)
    warnings = f"{count} warning{'' if count == 1 else 's'}"
    took = f"in {report.duration_s:.2f} s"
    if report.ok:
        return (f"[green]ready[/]: no check failed ({warnings}) {took}; the "
                "migration may go ahead")
    names = ", ".join(c.name for c in report.failed)
    return (f"[red]NOT READY[/]: {len(report.failed)} failed ({escape(names)}), {warnings} "
            f"{took}; fix them and run eventgate preflight again")


def _print_json(document: dict[str, Any]) -> None:
    # Plain stdout, not rich: a JSON document must not be wrapped or styled.
    sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def cmd_preflight(args: argparse.Namespace) -> int:
    """Check that a database is ready for the migration, the deployment guide's pre-migration
    checklist; read-only, it changes nothing. Checks the server version, free disk against
    the copy 010 makes, memory, the legacy tables and their rows, other sessions, blocking
    locks and idle transactions, a recent verified backup, and every kind of legacy row
    migration 010 would refuse (orphans, duplicate slugs, unknown zones, invalid RSVP or
    status values, negative party sizes, dates that do not exist), naming the rows. Exit 0
    when nothing failed (warnings allowed), 1 otherwise; --json for a machine-readable
    report."""
    dsn = require_dsn(args)
    options = options_from(args)
    try:
        report = run_preflight(dsn, options, bundle=given_bundle(args))
    except EventgateError as exc:
        if not args.json:
            raise  # the CLI prints `FAILED: <message>` and exits 1
        # A consumer of --json gets a document even when the server is out of reach.
        _print_json({"ok": False, "error": dsn_mod.redact(str(exc)), "checks": [],
                     "database": dsn_mod.describe(dsn), "at": datetime.now(UTC).isoformat()})
        return 1
    if args.json:
        _print_json(report.to_json())
    else:
        console.print(report_table(report))
        console.print(verdict(report))
    return 0 if report.ok else 1
