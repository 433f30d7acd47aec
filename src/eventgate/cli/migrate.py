"""`eventgate migrate`, `rollback` and `status`: the bundle's migrations against a database,
with live progress and, for the changing verbs, the webhook announcements."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import psycopg
from rich.markup import escape

from eventgate import dsn as dsn_mod
from eventgate import operator_env
from eventgate.bundle import Bundle
from eventgate.checks.indexes import required_index
from eventgate.checks.schema import required_relations
from eventgate.cli.common import (
    connect_target,
    given_backup_dir,
    given_bundle,
    require_dsn,
    warn,
)
from eventgate.cli.common import (
    notifier as from_environment,
)
from eventgate.cli.console import RichProgress, console, status_table, steps_table
from eventgate.errors import ConfigError
from eventgate.migrate.notify import Tee, WebhookNotifier, notifying
from eventgate.migrate.runner import DryRunOverBudget, ProgressSink, Runner
from eventgate.safety.preflight.backup import check_backup
from eventgate.safety.preflight.check import Options


def _runner_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lock-wait", type=float, default=30.0, metavar="S",
                   help="seconds to wait for another runner's lock (default 30)")
    p.add_argument("--lock-timeout", type=int, default=5000, metavar="MS",
                   help="lock_timeout of each migration in ms (default 5000)")
    p.add_argument("--lock-retries", type=int, default=5, metavar="N",
                   help="retries, with backoff, after a lock_timeout (default 5)")


def configure_migrate(p: argparse.ArgumentParser) -> None:
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--dry-run", action="store_true")
    mode.add_argument("--execute", action="store_true")
    mode.add_argument("--validate", action="store_true")
    p.add_argument("--verbose", action="store_true",
                   help="with --dry-run: every statement, its result and rows")
    p.add_argument("--to", metavar="VERSION", help="apply migrations up to this one only")
    p.add_argument("--batch-rows", type=_positive, metavar="N",
                   help="an online migration's backfill: keys per batch, each batch its own "
                   "transaction (default: what its script says, e.g. rows=5000)")
    p.add_argument("--batch-pause", type=_not_negative, metavar="MS",
                   help="an online migration's backfill: pause between batches, to leave the "
                   "server to the live application (default: what its script says)")
    _runner_options(p)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) == 0:
        raise argparse.ArgumentTypeError(f"a whole number above 0, not {text!r}")
    return int(text)


def _not_negative(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"a whole number of ms, 0 or more, not {text!r}")
    return int(text)


def configure_rollback(p: argparse.ArgumentParser) -> None:
    p.add_argument("--to", metavar="VERSION", help="keep migrations up to this one")
    p.add_argument("--export-dir", default=os.environ.get("EVENTGATE_EXPORT_DIR",
                                                          "rollback-exports"),
                   metavar="DIR", help="where rows only the new schema can hold (other "
                   "event types) are written before a rollback drops them [env "
                   "EVENTGATE_EXPORT_DIR; default rollback-exports]")
    p.add_argument("--no-verify", action="store_true", help="do not compare the schema "
                   "after each step with the one recorded before its migration")
    _runner_options(p)


def _runner(args: argparse.Namespace, conn: psycopg.Connection, progress: ProgressSink) -> Runner:
    export_dir = getattr(args, "export_dir", None)
    return Runner(conn, given_bundle(args), lock_wait_s=args.lock_wait,
                  lock_timeout_ms=args.lock_timeout, lock_retries=args.lock_retries,
                  progress=progress, export_dir=Path(export_dir) if export_dir else None,
                  verify_rollbacks=not getattr(args, "no_verify", False),
                  batch_rows=getattr(args, "batch_rows", None),
                  batch_pause_ms=getattr(args, "batch_pause", None))


def _expectation_failures(conn: psycopg.Connection, bundle: Bundle) -> list[str]:
    results = [required_relations(conn, bundle.expectations)]
    results += [required_index(conn, wanted) for wanted in bundle.expectations.indexes]
    return [r.explain() for r in results if not r.passed]


def _version(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"--to {text!r} is not a migration number; use e.g. --to 008") from None


def _rollback_target(text: str | None) -> int | None:
    if text is None:
        return None
    if text in ("base", "0"):
        return 0
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"--to {text!r} is not a migration number; use e.g. --to 008, or "
                          "--to base for before the first migration") from None


def _validate(conn: psycopg.Connection, runner: Runner) -> int:
    problems = runner.validate()
    if not problems:
        problems = _expectation_failures(conn, runner.bundle)
    for problem in problems:
        console.print(f"[red]✗[/] {escape(problem)}")
    if problems:
        return 1
    console.print(f"[green]valid[/]: {len(runner.bundle.migrations)} migrations "
                  "applied, checksums match, required objects present")
    return 0


def _dry_run(args: argparse.Namespace, runner: Runner, up_to: int | None) -> int:
    """The dry run's table; exit 1 when it stopped at the lock budget (it proved nothing past
    the statement it stopped at)."""
    try:
        reports = runner.dry_run(to=up_to)
    except DryRunOverBudget as stopped:
        if stopped.reports:
            console.print(steps_table("rehearsed before the stop (rolled back)",
                                      stopped.reports, verbose=args.verbose))
        console.print(f"[red]STOPPED at the lock budget:[/] {escape(str(stopped))}",
                      soft_wrap=True)
        return 1
    console.print(steps_table("dry run (rolled back, nothing changed)", reports,
                              verbose=args.verbose))
    return 0


def _apply(args: argparse.Namespace, runner: Runner, notifier: WebhookNotifier | None,
           target: str) -> int:
    """--dry-run or --execute of the pending migrations up to --to."""
    up_to = _version(args.to)
    pending = runner.pending(up_to)
    if not pending:
        console.print("nothing to do: every migration is applied")
        return 0
    console.print(f"{len(pending)} pending: {', '.join(m.label for m in pending)}")
    if args.execute and operator_env.flag("DRY_RUN"):
        # The guide's DRY_RUN=true: whatever the command line says, nothing is changed.
        warn(f"DRY_RUN=true ({operator_env.source('DRY_RUN')}): running --dry-run instead of "
             "--execute; set DRY_RUN=false to migrate")
        return _dry_run(args, runner, up_to)
    if args.dry_run:
        return _dry_run(args, runner, up_to)
    _refuse_in_production_without_backup(args, runner)
    if notifier is not None:
        notifier.started("migrate", target, [m.label for m in pending])
    started = time.monotonic()
    reports = runner.execute(to=up_to)
    console.print(f"[green]applied[/] {len(reports)} migrations in "
                  f"{sum(r.duration_s for r in reports):.2f} s")
    if notifier is not None:
        # Another runner may have applied them meanwhile: then there is no last one.
        notifier.succeeded(
            f"migrated {target} to {reports[-1].version:03d} in "
            f"{time.monotonic() - started:.1f} s" if reports else
            f"{target}: nothing left to migrate (applied meanwhile)")
    return 0


def _refuse_in_production_without_backup(args: argparse.Namespace, runner: Runner) -> None:
    """MIGRATION_MODE=production: no migration without a way back, a verified backup of this
    database under a day old (what preflight checks, here enforced)."""
    if operator_env.migration_mode() != "production":
        return
    options = Options(backup_dir=given_backup_dir(args))
    found = check_backup(runner.conn.info.dbname, options)
    if found.status != "ok":
        raise ConfigError(f"MIGRATION_MODE=production ({operator_env.source('MIGRATION_MODE')}) "
                          f"migrates only with a verified backup under "
                          f"{options.max_backup_age_h:g} h old: {found.detail}; "
                          f"{found.fix or 'take one with eventgate backup --verify'}; nothing "
                          "was changed")
    console.print(f"production: {found.detail}")


def cmd_migrate(args: argparse.Namespace) -> int:
    """Apply the bundle's migrations: --dry-run (apply, report, roll back, and stop with exit 1
    before it would keep the old application's writers waiting longer than the bundle's lock
    budget, expectations.toml [locks]), --execute, or --validate (ledger intact and complete,
    required tables, views and indexes present)."""
    dsn = require_dsn(args)
    target = dsn_mod.describe(dsn)
    console.print(f"target: {target}")
    progress = RichProgress("dry-running" if args.dry_run else "applying")
    # Only --execute is announced: a dry run or a validation changes nothing.
    notifier = from_environment() if args.execute else None
    sink = Tee(progress, notifier)
    with notifying(notifier, sink, warn), connect_target(dsn) as conn:
        runner = _runner(args, conn, sink)
        try:
            if args.validate:
                return _validate(conn, runner)
            return _apply(args, runner, notifier, target)
        finally:
            progress.close()


def cmd_rollback(args: argparse.Namespace) -> int:
    """Roll back applied migrations newer than --to VERSION, newest first (default: only the
    newest one; --to base rolls back every one)."""
    dsn = require_dsn(args)
    target = _rollback_target(args.to)
    described = dsn_mod.describe(dsn)
    progress = RichProgress("rolling back")
    notifier = from_environment()
    sink = Tee(progress, notifier)
    with notifying(notifier, sink, warn), connect_target(dsn) as conn:
        if notifier is not None:
            notifier.started("rollback", described)
        started = time.monotonic()
        runner = _runner(args, conn, sink)
        try:
            reports = runner.rollback(to=target)
        finally:
            progress.close()
            for warning in runner.warnings:
                warn(warning)
        if notifier is not None:
            notifier.succeeded(
                f"rolled back {described}: {', '.join(f'{r.version:03d}' for r in reports)} in "
                f"{time.monotonic() - started:.1f} s" if reports else
                f"{described}: nothing to roll back")
    if not reports:
        console.print("nothing to roll back")
    else:
        for report in reports:
            if report.verified:
                console.print(f"  {report.label}: verified — {report.verified}")
        console.print(f"[green]rolled back[/] {len(reports)} migrations")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """Show each migration of the bundle: applied (when, how long, by whom), pending, or
    edited since it was applied."""
    dsn = require_dsn(args)
    with connect_target(dsn) as conn:
        rows = Runner(conn, given_bundle(args)).status()
    console.print(f"target: {dsn_mod.describe(dsn)}")
    console.print(status_table(rows))
    return 1 if any(r.state in ("edited", "missing-file") for r in rows) else 0
