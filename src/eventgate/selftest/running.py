"""Running the variants: every bundle built first, then each variant as `eventgate gate`'s own
child pytest (eventgate.gate.run.run_gate) with EVENTGATE_BUNDLE pointing at its patched copy
and, for engine variants, EVENTGATE_ENGINE_FACTORY set; several side by side, stopped on
interrupt or when one overruns --timeout."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from eventgate.engine import launcher as launcher_mod
from eventgate.gate.run import Child, find_suites, run_gate
from eventgate.gate.suites import ENGINE_SUITES, SUITES
from eventgate.selftest import child_hooks
from eventgate.selftest.judging import Outcome, judge, refusals, share_clean_cells
from eventgate.selftest.overlay import apply_overlay, resolve_engine_factory
from eventgate.selftest.variants import SabotageError, Variant

# Environment the variants must not inherit: each run owns its PostgreSQL and its engine, and
# takes its engine factory from the variant alone (its bundle is always given to run_gate).
FOREIGN_SETTINGS = ("EVENTGATE_DSN", "EVENTGATE_BASE_URL", "EVENTGATE_ENGINE_FACTORY")


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class Plan:
    variants: list[Variant]
    base: Path
    reports: Path
    suites: tuple[str, ...] = SUITES
    jobs: int = 1
    scale: str = "small"
    timeout_s: float = 900.0
    # One seed for every run: the clean bundle and each variant gate the same data, so a
    # variant caught only on some data, or a false alarm, replays with --seed.
    seed: int | None = None


def prepare(plan: Plan) -> dict[str, Path]:
    """Every variant's bundle, built before anything runs: a stale overlay or an engine factory
    that does not import stops the selftest at once, not twenty minutes in."""
    root = find_suites()
    bundles = {}
    for variant in plan.variants:
        missing = [s for s in variant.catches if s not in plan.suites]
        if not variant.clean and missing:
            raise SabotageError(f"sabotage variant {variant.name} must be caught by "
                                f"{', '.join(missing)}, which --suites leaves out")
        if variant.engine_factory:
            resolve_engine_factory(variant.engine_factory, root)
        bundles[variant.name] = apply_overlay(variant, plan.base,
                                              plan.reports / variant.name / "bundle")
    return bundles


Started = Callable[[str], None]
Finished = Callable[[Outcome], None]


class Children:
    """The child pytest processes running now, so an interrupted selftest stops them (pytest
    tears its cluster down on SIGTERM) instead of leaving them behind, and one that overruns
    --timeout is stopped and remembered."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[str, tuple[Child, float]] = {}
        self._timed_out: set[str] = set()

    def add(self, name: str, child: Child) -> None:
        with self._lock:
            self._running[name] = (child, time.monotonic())

    def remove(self, name: str) -> bool:
        """Forget a finished child; True if it was stopped for overrunning."""
        with self._lock:
            self._running.pop(name, None)
            return name in self._timed_out

    def stop_overdue(self, limit_s: float) -> None:
        now = time.monotonic()
        with self._lock:
            for name, (child, began) in self._running.items():
                if now - began > limit_s and name not in self._timed_out:
                    self._timed_out.add(name)
                    child.terminate()

    def terminate_all(self) -> None:
        with self._lock:
            for child, _ in self._running.values():
                if child.poll() is None:
                    child.terminate()


def child_env(variant: Variant, reports: Path) -> dict[str, str | None]:
    """What a variant's child pytest changes in the environment (None: unset)."""
    extra_env: dict[str, str | None] = {key: None for key in FOREIGN_SETTINGS}
    if variant.engine_factory:
        extra_env["EVENTGATE_ENGINE_FACTORY"] = variant.engine_factory
    # The engine process imports the factory (fixtures.engine_faults:...) from the checkout.
    extra_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(find_suites()), os.environ.get("PYTHONPATH", "")) if p)
    # Hypothesis keeps the examples that failed in .hypothesis/ of the working directory and
    # replays them first next time: a sabotaged bundle's failures belong with its own reports
    # (so no variant's run depends on which ran before it), not in the checkout's database,
    # where every later run of the suites would replay them.
    extra_env["HYPOTHESIS_STORAGE_DIRECTORY"] = str((reports / "hypothesis").resolve())
    return extra_env


def shares_clean_run(variant: Variant, plan: Plan) -> bool:
    """A variant that changes only the engine, in a plan that runs the clean bundle: its
    database suites would gate clean's bundle on clean's seed without ever starting the engine,
    so they are not run twice."""
    return (variant.engine_factory is not None and not variant.patches
            and any(v.clean for v in plan.variants))


def suites_of(variant: Variant, plan: Plan) -> tuple[str, ...]:
    """The suites a variant's own run takes: all of the plan's, or for one that shares the clean
    run, those that start the engine and those it declares it must turn red."""
    if not shares_clean_run(variant, plan):
        return plan.suites
    return tuple(s for s in plan.suites if s in ENGINE_SUITES or s in variant.catches)


def run_variant(variant: Variant, bundle: Path, plan: Plan, children: Children,
                launcher: launcher_mod.Launcher | None = None) -> Outcome:
    reports = plan.reports / variant.name
    suites = suites_of(variant, plan)
    started = time.monotonic()
    verdict = run_gate(dsn=None, bundle=str(bundle), scale=plan.scale, reports=reports,
                       seed=plan.seed,
                       # Serial in each child: budgets are timed only without xdist, and the
                       # selftest itself runs the children side by side. child_hooks as a
                       # plugin: see its pytest_configure.
                       pytest_args=["-p", "no:xdist", "-p", child_hooks.__name__],
                       suites=suites,
                       extra_env=child_env(variant, reports), log=reports / "gate.log",
                       started=lambda child: children.add(variant.name, child),
                       launcher=launcher)
    problem = None
    if children.remove(variant.name):
        problem = f"stopped after {plan.timeout_s:.0f} s (--timeout); see {reports / 'gate.log'}"
    junit = reports / "junit.xml"
    return judge(variant, suites, verdict.pytest_exit_code, verdict.suites,
                 verdict.failed, refusals(junit) if junit.exists() else set(),
                 time.monotonic() - started, reports, problem)


def longest_first(variants: list[Variant], previous: Path) -> list[Variant]:
    """Run order: by the duration each took last time, longest first, so two slow variants do
    not end up last on one core while the other idles. New variants go first."""
    try:
        durations = {row["name"]: float(row["duration_s"])
                     for row in json.loads(previous.read_text())["variants"]}
    except (OSError, ValueError, KeyError, TypeError):
        return variants
    return sorted(variants, key=lambda v: -durations.get(v.name, float("inf")))


def run(plan: Plan, bundles: dict[str, Path], on_start: Started,
        on_finish: Finished) -> list[Outcome]:
    """Every variant of the plan, plan.jobs at a time; the outcomes in the plan's order."""
    children = Children()
    order = longest_first(plan.variants, plan.reports / "matrix.json")
    outcomes: dict[str, Outcome] = {}
    # Each variant's pytest forked from one that imported pytest and its plugins once.
    launcher = (launcher_mod.Launcher(plan.reports / "launcher.log")
                if launcher_mod.available() else None)
    with contextlib.ExitStack() as stack, \
            ThreadPoolExecutor(max_workers=plan.jobs, thread_name_prefix="selftest") as pool:
        if launcher is not None:
            stack.callback(launcher.close)
        pending: dict[Future[Outcome], Variant] = {}
        try:
            for variant in order:
                def go(v: Variant = variant) -> Outcome:
                    on_start(v.name)
                    return run_variant(v, bundles[v.name], plan, children, launcher)
                pending[pool.submit(go)] = variant
            while pending:
                done, _ = wait(pending, timeout=1.0, return_when=FIRST_COMPLETED)
                children.stop_overdue(plan.timeout_s)
                for future in done:
                    variant = pending.pop(future)
                    outcomes[variant.name] = future.result()
                    on_finish(outcomes[variant.name])
        except BaseException:
            for future in pending:
                future.cancel()
            children.terminate_all()
            raise
    clean = next((outcomes[v.name] for v in plan.variants if v.clean), None)
    for variant in plan.variants:
        if clean is not None and shares_clean_run(variant, plan):
            share_clean_cells(outcomes[variant.name], clean,
                              [s for s in plan.suites if s not in suites_of(variant, plan)])
    return [outcomes[v.name] for v in plan.variants]
