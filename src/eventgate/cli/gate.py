"""`eventgate gate`: run the acceptance suites in a child pytest and print the verdict, go or
no-go, with what failed and what the data could not prove."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from eventgate import dsn as dsn_mod
from eventgate.cli.common import given_dsn, notifier, warn
from eventgate.cli.console import console
from eventgate.gate.run import run_gate
from eventgate.gate.verdict import Verdict
from eventgate.migrate.notify import WebhookNotifier, notifying
from eventgate.seed.choice import SEED_ENV, choose_seed, replay_hint
from eventgate.seed.profiles import PROFILES
from eventgate.seed.scales import SCALES


def configure_gate(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scale", choices=sorted(SCALES), help="seed volume for the embedded "
                   "database (default small)")
    p.add_argument("--base-url", help="an engine already running (e.g. staging) "
                   "[env EVENTGATE_BASE_URL]; default: the suite starts the reference engine")
    p.add_argument("--reports", default="reports", help="reports directory (default reports)")
    p.add_argument("--seed", type=int, help="random seed of the embedded database's data "
                   f"[env {SEED_ENV}; default: a new one each run, printed and kept in "
                   "verdict.json]")
    p.add_argument("--profile", choices=list(PROFILES), metavar="NAME",
                   help="seed the embedded database with a named data shape instead of "
                   f"--scale: {', '.join(PROFILES)} (see eventgate seed --help)")
    p.add_argument("--require-proof", action="store_true",
                   default=os.environ.get("EVENTGATE_REQUIRE_PROOF", "").lower()
                   in ("1", "true", "yes", "on"),
                   help="no-go when any gate is not proven (the data cannot exercise it); "
                   "without it, go names the unproven gates [env EVENTGATE_REQUIRE_PROOF]")
    p.add_argument("pytest_args", nargs=argparse.REMAINDER,
                   help="after --: extra arguments for pytest")


def _pytest_args(args: argparse.Namespace) -> list[str]:
    """What follows `--`; argparse's REMAINDER keeps the `--` itself."""
    extra: list[str] = args.pytest_args
    return extra[1:] if extra and extra[0] == "--" else extra


def _print_verdict(verdict: Verdict, seed: int | None, reports: str) -> None:
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
                  f"{reports}/ "
                  "(junit.xml, allure-results/, verdict.json)")


def _announce_verdict(announce: WebhookNotifier, verdict: Verdict) -> None:
    passed = sum(t.passed for t in verdict.suites.values())
    if verdict.go:
        unproven = f", {len(verdict.not_proven)} not proven" if verdict.not_proven else ""
        announce.succeeded(f"gate GO on {verdict.target}: {passed} passed{unproven} in "
                           f"{verdict.duration_s:.0f} s")
        return
    first = verdict.failed[0] if verdict.failed else None
    announce.failed(f"NO-GO: {len(verdict.failed)} gate(s) failed"
                    + (f", first {first.suite} {first.test}" if first else "")
                    + (f"; {verdict.problem}" if verdict.problem else ""))


def cmd_gate(args: argparse.Namespace) -> int:
    """Run the acceptance suites (integrity, compat, performance, functional) and write
    reports/junit.xml, reports/allure-results/ and reports/verdict.json; exit 1 on no-go.
    Without --dsn everything runs on an embedded PostgreSQL; with --dsn only green tests."""
    dsn = given_dsn(args)
    # An external database is checked as it is: no seed is involved.
    seed = None if dsn else choose_seed(args.seed)
    if seed is not None:
        console.print(f"seed {seed} ({replay_hint(seed)})")
    announce = notifier()
    target = dsn_mod.describe(dsn) if dsn else "the embedded PostgreSQL"
    with notifying(announce, None, warn):
        if announce is not None:
            announce.started("gate", target)
        verdict = run_gate(dsn=dsn, bundle=args.bundle, scale=args.scale, seed=seed,
                           extra_env={"EVENTGATE_PROFILE": args.profile} if args.profile
                           else None,
                           base_url=args.base_url or os.environ.get("EVENTGATE_BASE_URL"),
                           reports=Path(args.reports), pytest_args=_pytest_args(args),
                           require_proof=args.require_proof)
        if announce is not None:
            _announce_verdict(announce, verdict)
    _print_verdict(verdict, seed, args.reports)
    return 0 if verdict.go else 1
