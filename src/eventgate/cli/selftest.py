"""The `eventgate selftest` verb: options, live progress, and the detection matrix it prints."""

from __future__ import annotations

import argparse
import shlex
import threading
import time
from pathlib import Path

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from eventgate.bundle import default_bundle_path, load_bundle
from eventgate.cli.console import console
from eventgate.errors import ConfigError
from eventgate.gate.suites import SUITES
from eventgate.seed.choice import SEED_ENV, choose_seed, replay_hint
from eventgate.seed.scales import SCALES
from eventgate.selftest.judging import Outcome
from eventgate.selftest.matrix import Matrix, markdown, now_utc, update_readme, write_json
from eventgate.selftest.running import Plan, cpu_count, prepare, run
from eventgate.selftest.terminal import (
    finished_line,
    first_failure_lines,
    matrix_table,
    problem_line,
    variants_table,
)
from eventgate.selftest.variants import Variant, default_variants_dir, load_variants, select

DEFAULT_REPORTS = "reports/selftest"


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


def configure_selftest(p: argparse.ArgumentParser) -> None:
    """The verb's own options; cli/main.py's verb table adds --dsn (refused: every run owns its
    database), --bundle (the bundle the overlays are applied to) and --traceback."""
    p.add_argument("--only", type=_names, metavar="NAME[,NAME]",
                   help="run these variants only (clean = the unchanged bundle); default: the "
                   "clean bundle and every variant")
    p.add_argument("--list", action="store_true", help="list the variants and exit")
    p.add_argument("--jobs", type=int, default=cpu_count(), metavar="N",
                   help=f"variants run side by side (default: the CPUs, {cpu_count()} here)")
    p.add_argument("--reports", default=DEFAULT_REPORTS, metavar="DIR",
                   help="matrix.json and one directory of reports per variant (default "
                   f"{DEFAULT_REPORTS})")
    p.add_argument("--markdown", metavar="FILE", help="also write the matrix as Markdown")
    p.add_argument("--update-readme", metavar="FILE", help="replace the block between "
                   "<!-- selftest:begin --> and <!-- selftest:end --> in FILE with the matrix")
    p.add_argument("--variants", metavar="DIR", help="directory of <name>.toml overlays "
                   "(default fixtures/sabotage of the checkout)")
    p.add_argument("--suites", type=_names, default=list(SUITES), metavar="S[,S]",
                   help=f"run only these suites (default all: {','.join(SUITES)}); the "
                   "others show as not run")
    p.add_argument("--scale", choices=sorted(SCALES), default="small",
                   help="seed volume of every run (default small)")
    p.add_argument("--seed", type=int, help=f"random seed of every run's data [env {SEED_ENV}; "
                   "default: a new one, printed]")
    p.add_argument("--timeout", type=float, default=900.0, metavar="S",
                   help="stop a variant's run after S seconds, as a broken run (default 900)")


def _print_table(table: Table) -> None:
    """At the terminal's width; in a log or a file (80 columns to rich), wide enough that
    names and cells are not folded."""
    if console.is_terminal:
        console.print(table)
    else:
        Console(file=console.file, highlight=False, width=160).print(table)


def _command(args: argparse.Namespace) -> str:
    """The command line that reproduces this run, for the matrix's footnote."""
    words = ["eventgate", "selftest"]
    for flag, value, default in (("--bundle", args.bundle, None),
                                 ("--variants", args.variants, None),
                                 ("--only", ",".join(args.only or []), ""),
                                 ("--suites", ",".join(args.suites), ",".join(SUITES)),
                                 ("--scale", args.scale, "small"),
                                 ("--jobs", str(args.jobs), str(cpu_count()))):
        if value and value != default:
            words += [flag, value]
    return shlex.join(words)


def _check(args: argparse.Namespace) -> None:
    if args.dsn:
        raise ConfigError("eventgate selftest runs every variant on an embedded PostgreSQL of "
                          "its own and never touches another database; it takes no --dsn")
    if args.jobs < 1:
        raise ConfigError(f"--jobs {args.jobs}: give 1 or more")
    unknown = [s for s in args.suites if s not in SUITES]
    if unknown or not args.suites:
        raise ConfigError(f"--suites {','.join(args.suites)}: choose from {', '.join(SUITES)}")


def _plan(args: argparse.Namespace, variants: list[Variant]) -> tuple[Plan, int]:
    """The runs the options ask for, and their seed (returned as well: Plan's is optional)."""
    base = load_bundle(args.bundle).root if args.bundle else default_bundle_path()
    chosen = select(variants, args.only)
    seed = choose_seed(args.seed)
    return Plan(chosen, base, Path(args.reports), tuple(s for s in SUITES if s in args.suites),
                min(args.jobs, len(chosen)), args.scale, args.timeout, seed), seed


def _run_live(plan: Plan, bundles: dict[str, Path]) -> list[Outcome]:
    """The runs, with a spinner per running variant and a line per finished one."""
    total = len(plan.variants)
    lock = threading.Lock()
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=console, transient=True) as progress:
        overall = progress.add_task(f"0/{total} done", total=total)
        tasks: dict[str, object] = {}

        def on_start(name: str) -> None:
            with lock:
                tasks[name] = progress.add_task(f"  {name}", total=None)

        def on_finish(outcome: Outcome) -> None:
            with lock:
                task = tasks.pop(outcome.name, None)
            if task is not None:
                progress.remove_task(task)  # type: ignore[arg-type]
            progress.advance(overall)
            done = int(progress.tasks[0].completed)
            progress.update(overall, description=f"{done}/{total} done")
            console.print(finished_line(outcome), soft_wrap=True)

        return run(plan, bundles, on_start, on_finish)


def _write(args: argparse.Namespace, matrix: Matrix) -> None:
    write_json(matrix, Path(args.reports) / "matrix.json")
    text = markdown(matrix)
    if args.markdown:
        Path(args.markdown).write_text(text, encoding="utf-8")
    if args.update_readme:
        update_readme(Path(args.update_readme), text)


def cmd_selftest(args: argparse.Namespace) -> int:
    """Prove the gates: run the acceptance suites against the clean reference bundle and
    against each sabotage variant of it (fixtures/sabotage/*.toml, one realistic defect each),
    side by side, and print which suites caught which defect; write reports/selftest/matrix.json
    and exit 1 if the clean bundle fails anything, a variant's suites stay green, or a run
    breaks."""
    _check(args)
    variants = load_variants(Path(args.variants) if args.variants else default_variants_dir())
    if args.list:
        _print_table(variants_table(variants))
        return 0
    plan, seed = _plan(args, variants)
    bundles = prepare(plan)
    console.print(f"selftest: {len(plan.variants)} runs "
                  f"({', '.join(v.name for v in plan.variants)}), {plan.jobs} at a time, suites "
                  f"{', '.join(plan.suites)}, seed {seed} ({replay_hint(seed)}); "
                  f"reports in {plan.reports}/", soft_wrap=True)
    began, started_at = time.monotonic(), now_utc()
    outcomes = _run_live(plan, bundles)
    matrix = Matrix(started_at, round(time.monotonic() - began, 1), cpu_count(), plan.jobs,
                    plan.scale, list(plan.suites), _command(args), outcomes)
    _print_table(matrix_table(outcomes))
    for line in first_failure_lines(outcomes):
        console.print(line, soft_wrap=True)
    _write(args, matrix)
    failures = [o for o in outcomes if not o.ok]
    for o in failures:
        console.print(problem_line(o), soft_wrap=True)
    word = "[red]FAILED[/]" if failures else "[green]every defect caught, clean stays green[/]"
    console.print(f"selftest: {word} — {len(outcomes)} runs in {matrix.duration_s:.0f} s with "
                  f"--jobs {plan.jobs}; matrix in {plan.reports / 'matrix.json'}", soft_wrap=True)
    return 1 if failures else 0
