"""The `eventgate` command: one function per verb; each docstring is that verb's --help."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import psycopg
from rich.markup import escape

from eventgate import __version__
from eventgate import dsn as dsn_mod
from eventgate.bundle import Bundle, load_bundle
from eventgate.checks.indexes import required_index
from eventgate.checks.schema import required_relations
from eventgate.cli.console import RichProgress, console, status_table, steps_table
from eventgate.cli.preflight import cmd_preflight, configure_preflight
from eventgate.cli.report import cmd_report, configure_report
from eventgate.cli.safety import cmd_backup, cmd_restore, configure_backup, configure_restore
from eventgate.cli.seed import configure_seed_options, seed_into
from eventgate.cli.selftest import cmd_selftest, configure_selftest
from eventgate.errors import ConfigError, EventgateError
from eventgate.migrate.notify import Tee, WebhookNotifier, notifier_from_env, notifying
from eventgate.migrate.runner import ProgressSink, Runner
from eventgate.seed.choice import SEED_ENV, parse_seed, random_seed, replay_hint
from eventgate.seed.profiles import PROFILES
from eventgate.seed.scales import SCALES

Handler = Callable[[argparse.Namespace], int]


def _dsn(args: argparse.Namespace) -> str:
    value: str | None = args.dsn or os.environ.get("EVENTGATE_DSN")
    if not value:
        raise ConfigError("no database given: pass --dsn 'postgresql://user@host:5432/dbname' "
                          "or set EVENTGATE_DSN (eventgate cluster starts a rehearsal database "
                          "and prints its DSN)")
    dsn_mod.parse(value)
    return value


def _connect(dsn: str) -> psycopg.Connection:
    try:
        return psycopg.connect(dsn, autocommit=True, application_name="eventgate migrate",
                               connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise EventgateError(
            f"could not connect to {dsn_mod.describe(dsn)}: "
            f"{dsn_mod.redact(str(exc)).strip()}; check host, port, user and password"
        ) from exc


def _bundle(args: argparse.Namespace) -> Bundle:
    return load_bundle(args.bundle or os.environ.get("EVENTGATE_BUNDLE"))


def _runner(args: argparse.Namespace, conn: psycopg.Connection, progress: ProgressSink) -> Runner:
    export_dir = getattr(args, "export_dir", None)
    return Runner(conn, _bundle(args), lock_wait_s=args.lock_wait,
                  lock_timeout_ms=args.lock_timeout, lock_retries=args.lock_retries,
                  progress=progress, export_dir=Path(export_dir) if export_dir else None,
                  verify_rollbacks=not getattr(args, "no_verify", False))


def _warn(text: str) -> None:
    console.print(f"[yellow]warning:[/] {escape(text)}", soft_wrap=True)


def _notifier() -> WebhookNotifier | None:
    """The webhook from the environment; a malformed setting turns notifications off with a
    warning, never stops a migration or an emergency rollback."""
    try:
        return notifier_from_env()
    except ConfigError as exc:
        _warn(f"notifications off: {exc}")
        return None


def _expectation_failures(conn: psycopg.Connection, bundle: Bundle) -> list[str]:
    results = [required_relations(conn, bundle.expectations)]
    results += [required_index(conn, wanted) for wanted in bundle.expectations.indexes]
    return [r.explain() for r in results if not r.passed]


def cmd_migrate(args: argparse.Namespace) -> int:
    """Apply the bundle's migrations: --dry-run (apply, report, roll back), --execute, or
    --validate (ledger intact and complete, required tables, views and indexes present)."""
    dsn = _dsn(args)
    target = dsn_mod.describe(dsn)
    console.print(f"target: {target}")
    progress = RichProgress("dry-running" if args.dry_run else "applying")
    # Only --execute is announced: a dry run or a validation changes nothing.
    notifier = _notifier() if args.execute else None
    sink = Tee(progress, notifier)
    with notifying(notifier, sink, _warn), _connect(dsn) as conn:
        runner = _runner(args, conn, sink)
        try:
            if args.validate:
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
            up_to = _version(args.to)
            pending = runner.pending(up_to)
            if not pending:
                console.print("nothing to do: every migration is applied")
                return 0
            console.print(f"{len(pending)} pending: {', '.join(m.label for m in pending)}")
            if args.dry_run:
                reports = runner.dry_run(to=up_to)
                console.print(steps_table("dry run (rolled back, nothing changed)", reports,
                                          verbose=args.verbose))
            else:
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
        finally:
            progress.close()
    return 0


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


def cmd_rollback(args: argparse.Namespace) -> int:
    """Roll back applied migrations newer than --to VERSION, newest first (default: only the
    newest one; --to base rolls back every one)."""
    dsn = _dsn(args)
    target = _rollback_target(args.to)
    described = dsn_mod.describe(dsn)
    progress = RichProgress("rolling back")
    notifier = _notifier()
    sink = Tee(progress, notifier)
    with notifying(notifier, sink, _warn), _connect(dsn) as conn:
        if notifier is not None:
            notifier.started("rollback", described)
        started = time.monotonic()
        runner = _runner(args, conn, sink)
        try:
            reports = runner.rollback(to=target)
        finally:
            progress.close()
            for warning in runner.warnings:
                _warn(warning)
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
    dsn = _dsn(args)
    with _connect(dsn) as conn:
        rows = Runner(conn, _bundle(args)).status()
    console.print(f"target: {dsn_mod.describe(dsn)}")
    console.print(status_table(rows))
    return 1 if any(r.state in ("edited", "missing-file") for r in rows) else 0


def cmd_seed(args: argparse.Namespace) -> int:
    """Create the legacy wedding schema in an empty database and load deterministic data
    with COPY (the same --seed always gives the same rows): a volume (--scale) or a named
    data shape (--profile)."""
    with _connect(_dsn(args)) as conn:
        seed_into(conn, args, _bundle(args))
    return 0


def cmd_cluster(args: argparse.Namespace) -> int:
    """Start a throwaway PostgreSQL with a seeded legacy wedding database for rehearsing
    migrations and rollbacks; prints its DSN and runs until Ctrl-C, then deletes everything."""
    from eventgate.pg import provision

    bundle = _bundle(args)
    with provision(None, args.pg_bindir) as server:
        with server.connect() as conn:
            conn.execute("CREATE DATABASE wedding_legacy")
        dsn = server.dsn_for("wedding_legacy")
        with _connect(dsn) as conn:
            seed_into(conn, args, bundle)
        console.print(f"{server.describe()}\n\n  export EVENTGATE_DSN='{dsn}'\n\n"
                      "then: eventgate migrate --dry-run | --execute | --validate, "
                      "eventgate status, eventgate rollback --to base\nCtrl-C stops and "
                      "removes the cluster.", soft_wrap=True)
        # Blocked, then waited for: Ctrl-C and SIGTERM both end here and clean up below.
        stop = {signal.SIGINT, signal.SIGTERM}
        signal.pthread_sigmask(signal.SIG_BLOCK, stop)
        signal.sigwait(stop)
    return 0


def _gate_seed(args: argparse.Namespace) -> int:
    """The embedded database's seed, chosen here so it can be printed and recorded in the
    verdict, then handed to the suite."""
    if args.seed is not None:
        return int(args.seed)
    raw = os.environ.get(SEED_ENV)
    return parse_seed(raw, SEED_ENV) if raw else random_seed()


def cmd_gate(args: argparse.Namespace) -> int:
    """Run the acceptance suites (integrity, compat, performance, functional) and write
    reports/junit.xml, reports/allure-results/ and reports/verdict.json; exit 1 on no-go.
    Without --dsn everything runs on an embedded PostgreSQL; with --dsn only green tests."""
    from eventgate.gate.run import run_gate

    dsn = args.dsn or os.environ.get("EVENTGATE_DSN")
    if dsn:
        dsn_mod.parse(dsn)
    # An external database is checked as it is: no seed is involved.
    seed = None if dsn else _gate_seed(args)
    if seed is not None:
        console.print(f"seed {seed} ({replay_hint(seed)})")
    verdict = run_gate(dsn=dsn, bundle=args.bundle, scale=args.scale, seed=seed,
                       extra_env={"EVENTGATE_PROFILE": args.profile} if args.profile else None,
                       base_url=args.base_url or os.environ.get("EVENTGATE_BASE_URL"),
                       reports=Path(args.reports), pytest_args=args.pytest_args,
                       require_proof=args.require_proof)
    from rich.table import Table

    table = Table(title=f"eventgate gate — {verdict.target}", title_justify="left")
    for column in ("suite", "passed", "failed", "not proven", "skipped"):
        table.add_column(column, justify="left" if column == "suite" else "right")
    for suite, tally in verdict.suites.items():
        table.add_row(suite, str(tally.passed), str(tally.failed), str(tally.not_proven),
                      str(tally.skipped))
    console.print(table)
    for failed in verdict.failed:
        console.print(f"[red]✗[/] {failed.suite}: {escape(failed.test)}\n    "
                      f"{escape(failed.reason)}")
    for unproven in verdict.not_proven:
        console.print(f"[yellow]?[/] not proven — {unproven.suite}: {escape(unproven.test)}\n"
                      f"    {escape(unproven.reason)}")
    if verdict.problem:
        console.print(f"[red]✗[/] {escape(verdict.problem)}")
    word = "[green]GO[/]" if verdict.go else "[red]NO-GO[/]"
    if verdict.go and verdict.not_proven:
        word += (f" ({len(verdict.not_proven)} gates not proven on this data, named above; "
                 "--require-proof makes that a no-go)")
    seeded = "" if seed is None else f", seed {seed}"
    console.print(f"verdict: {word} in {verdict.duration_s:.1f} s{seeded} — reports in "
                  f"{args.reports}/ "
                  "(junit.xml, allure-results/, verdict.json)")
    return 0 if verdict.go else 1


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the reference Event Management Engine (events API, plugins, /health, /metrics)
    against a migrated database; the admin token enables POST /api/plugins/reload."""
    import importlib

    import uvicorn

    from eventgate.engine.app import EngineSettings, create_app

    dsn = _dsn(args)
    settings = EngineSettings(dsn=dsn, admin_token=args.admin_token
                              or os.environ.get("EVENTGATE_ADMIN_TOKEN"),
                              final_migration=max(_bundle(args).versions))
    factory = create_app
    if args.app_factory:
        # A wrapped engine (e.g. one with a defect injected, for the sabotage proofs).
        module, _, name = args.app_factory.partition(":")
        factory = getattr(importlib.import_module(module), name)
    console.print(f"serving the engine on http://{args.host}:{args.port} against "
                  f"{dsn_mod.describe(dsn)}", soft_wrap=True)
    uvicorn.run(factory(settings), host=args.host, port=args.port, log_level=args.log_level)
    return 0


def cmd_docs(args: argparse.Namespace) -> int:
    """Write docs/schema.md (both schemas and the column mapping) from the bundle."""
    from eventgate.reports.schema_docs import render

    text = render(_bundle(args))
    if args.output == "-":
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text, encoding="utf-8")
        console.print(f"wrote {args.output}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="eventgate", description=(
        "Migration acceptance suite for the Event Management Engine's FASE 0 transformation."))
    parser.add_argument("--version", action="version", version=f"eventgate {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def verb(name: str, handler: Handler) -> argparse.ArgumentParser:
        doc = " ".join((handler.__doc__ or "").split())
        p = sub.add_parser(name, help=doc.split(";")[0].split(". ")[0], description=doc)
        p.set_defaults(handler=handler)
        p.add_argument("--dsn", help="target database [env EVENTGATE_DSN]")
        p.add_argument("--bundle", help="migration bundle directory [env EVENTGATE_BUNDLE; "
                       "default: the reference FASE 0 bundle]")
        p.add_argument("--traceback", action="store_true", help="show the full traceback of "
                       "a failure")
        return p

    def runner_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--lock-wait", type=float, default=30.0, metavar="S",
                       help="seconds to wait for another runner's lock (default 30)")
        p.add_argument("--lock-timeout", type=int, default=5000, metavar="MS",
                       help="lock_timeout of each migration in ms (default 5000)")
        p.add_argument("--lock-retries", type=int, default=5, metavar="N",
                       help="retries, with backoff, after a lock_timeout (default 5)")

    migrate = verb("migrate", cmd_migrate)
    mode = migrate.add_mutually_exclusive_group(required=True)
    mode.add_argument("--dry-run", action="store_true")
    mode.add_argument("--execute", action="store_true")
    mode.add_argument("--validate", action="store_true")
    migrate.add_argument("--verbose", action="store_true",
                         help="with --dry-run: every statement, its result and rows")
    migrate.add_argument("--to", metavar="VERSION", help="apply migrations up to this one only")
    runner_options(migrate)

    rollback = verb("rollback", cmd_rollback)
    rollback.add_argument("--to", metavar="VERSION", help="keep migrations up to this one")
    rollback.add_argument("--export-dir", default=os.environ.get("EVENTGATE_EXPORT_DIR",
                                                                 "rollback-exports"),
                          metavar="DIR", help="where rows only the new schema can hold (other "
                          "event types) are written before a rollback drops them [env "
                          "EVENTGATE_EXPORT_DIR; default rollback-exports]")
    rollback.add_argument("--no-verify", action="store_true", help="do not compare the schema "
                          "after each step with the one recorded before its migration")
    runner_options(rollback)

    preflight = verb("preflight", cmd_preflight)
    configure_preflight(preflight)
    configure_backup(verb("backup", cmd_backup))
    configure_restore(verb("restore", cmd_restore))

    verb("status", cmd_status)

    seed = verb("seed", cmd_seed)
    configure_seed_options(seed)
    seed.add_argument("--no-schema", action="store_true",
                      help="load into legacy tables that already exist (they must be empty)")

    cluster = verb("cluster", cmd_cluster)
    configure_seed_options(cluster)
    cluster.add_argument("--pg-bindir", help="directory holding initdb and postgres")

    gate = verb("gate", cmd_gate)
    gate.add_argument("--scale", choices=sorted(SCALES), help="seed volume for the embedded "
                      "database (default small)")
    gate.add_argument("--base-url", help="an engine already running (e.g. staging) "
                      "[env EVENTGATE_BASE_URL]; default: the suite starts the reference engine")
    gate.add_argument("--reports", default="reports", help="reports directory (default reports)")
    gate.add_argument("--seed", type=int, help="random seed of the embedded database's data "
                      f"[env {SEED_ENV}; default: a new one each run, printed and kept in "
                      "verdict.json]")
    gate.add_argument("--profile", choices=list(PROFILES), metavar="NAME",
                      help="seed the embedded database with a named data shape instead of "
                      f"--scale: {', '.join(PROFILES)} (see eventgate seed --help)")
    gate.add_argument("--require-proof", action="store_true",
                      default=os.environ.get("EVENTGATE_REQUIRE_PROOF", "").lower()
                      in ("1", "true", "yes", "on"),
                      help="no-go when any gate is not proven (the data cannot exercise it); "
                      "without it, go names the unproven gates [env EVENTGATE_REQUIRE_PROOF]")
    gate.add_argument("pytest_args", nargs=argparse.REMAINDER,
                      help="after --: extra arguments for pytest")

    serve = verb("serve", cmd_serve)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--admin-token", help="bearer token for POST /api/plugins/reload "
                       "[env EVENTGATE_ADMIN_TOKEN]")
    serve.add_argument("--log-level", default="warning")
    serve.add_argument("--app-factory", metavar="MODULE:FUNCTION",
                       help="serve another factory taking EngineSettings (default: the "
                       "reference engine)")

    configure_report(verb("report", cmd_report))
    configure_selftest(verb("selftest", cmd_selftest))

    docs = verb("docs", cmd_docs)
    docs.add_argument("--output", default="-", help="file to write (default: standard output)")
    return parser


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    # SIGTERM's default action skips finally blocks; as SystemExit, a cluster this process
    # started is still stopped and deleted.
    signal.signal(signal.SIGTERM, _terminate)
    args = _parser().parse_args(argv)
    if getattr(args, "pytest_args", None) and args.pytest_args[0] == "--":
        args.pytest_args = args.pytest_args[1:]
    try:
        result: int = args.handler(args)
        return result
    except (EventgateError, psycopg.Error) as exc:
        if args.traceback:
            traceback.print_exc()
        console.print(f"[red]FAILED:[/] {escape(dsn_mod.redact(str(exc)).strip())}",
                      soft_wrap=True)
        return 1
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        return 130


if __name__ == "__main__":
    sys.exit(main())
