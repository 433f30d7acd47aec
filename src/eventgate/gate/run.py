"""`eventgate gate`: run the acceptance suites, write the reports, and say go or no-go."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import eventgate
from eventgate import dsn as dsn_mod
from eventgate.errors import ConfigError
from eventgate.gate.junit import FailedGate, SuiteTally, UnprovenGate, read_outcomes
from eventgate.gate.suites import SUITES


@dataclass
class Verdict:
    verdict: str  # "go" | "no-go"
    target: str
    duration_s: float
    pytest_exit_code: int
    suites: dict[str, SuiteTally] = field(default_factory=dict)
    failed: list[FailedGate] = field(default_factory=list)
    problem: str | None = None
    # The embedded database's random seed (None against --dsn): replays the run's data.
    seed: int | None = None
    not_proven: list[UnprovenGate] = field(default_factory=list)
    # With require_proof a gate that is not proven fails in the child run, so it shows in
    # `failed`; without it, go names what it could not prove.
    require_proof: bool = False

    @property
    def go(self) -> bool:
        return self.verdict == "go"


def find_suites() -> Path:
    """The tests/ directory of the checkout this package runs from, or of the working dir."""
    for root in (Path(eventgate.__file__).resolve().parents[2], Path.cwd()):
        if all((root / "tests" / suite).is_dir() for suite in SUITES):
            return root
    raise ConfigError(
        "the acceptance suites (tests/integrity, tests/compat, tests/performance, "
        "tests/functional) were not found next to the eventgate package or in the working "
        "directory; run eventgate gate from a checkout of the eventgate repository"
    )


def run_gate(*, dsn: str | None, bundle: str | None, scale: str | None, reports: Path,
             pytest_args: list[str], base_url: str | None = None, seed: int | None = None,
             require_proof: bool = False,
             suites: Sequence[str] = SUITES,
             extra_env: Mapping[str, str | None] | None = None,
             log: Path | None = None,
             started: Callable[[subprocess.Popen[bytes]], None] | None = None) -> Verdict:
    """Run the suites in a child pytest and read its junit into a verdict.

    The keyword arguments after base_url serve `eventgate selftest`, which runs many gates side
    by side: `suites` a subset of SUITES, `extra_env` variables set in (or, as None, removed
    from) the child's environment after the settings above, `log` a file for the child's output
    instead of this terminal, `started` called with the child process (so an interrupted caller
    can stop it). Their defaults are what `eventgate gate` always did."""
    unknown = [s for s in suites if s not in SUITES]
    if unknown or not suites:
        raise ConfigError(f"unknown suites {', '.join(unknown) or '(none given)'}; choose from "
                          f"{', '.join(SUITES)}")
    # A gate that dies before its verdict must not leave the previous run's "go" behind for a
    # deployment script to read.
    (reports / "verdict.json").unlink(missing_ok=True)
    root = find_suites()
    (reports / "benchmarks").mkdir(parents=True, exist_ok=True)
    junit = reports / "junit.xml"
    junit.unlink(missing_ok=True)
    env = dict(os.environ)
    # The checks' JSON (reports/checks/) belongs with this run's other reports: without this
    # the suites write it to reports/ of the checkout, whatever --reports says.
    env["EVENTGATE_REPORTS"] = str(reports.resolve())
    # Settings travel by environment, so a password never shows in the process list.
    for key, value in (("EVENTGATE_DSN", dsn), ("EVENTGATE_BUNDLE", bundle),
                       ("EVENTGATE_SCALE", scale), ("EVENTGATE_BASE_URL", base_url),
                       ("EVENTGATE_SEED", None if seed is None else str(seed))):
        if value:
            env[key] = value
    if require_proof:
        env["EVENTGATE_REQUIRE_PROOF"] = "1"
    for key, override in (extra_env or {}).items():
        if override is None:
            env.pop(key, None)
        else:
            env[key] = override
    marker = "green and not slow" if dsn else "not slow"
    command = [sys.executable, "-m", "pytest", *(f"tests/{s}" for s in suites),
               "-m", marker, "-p", "no:cacheprovider", "-q",
               f"--junitxml={junit.resolve()}",
               f"--alluredir={(reports / 'allure-results').resolve()}", "--clean-alluredir",
               f"--benchmark-json={(reports / 'benchmarks' / 'query-budgets.json').resolve()}",
               # Budget figures go to that JSON and reports/checks/; the wide table is noise here.
               "--benchmark-quiet",
               *pytest_args]
    began = time.monotonic()
    with log.open("wb") if log is not None else contextlib.nullcontext() as output:
        child = subprocess.Popen(command, cwd=root, env=env, stdout=output,
                                 stderr=None if output is None else subprocess.STDOUT)
        if started is not None:
            started(child)
        try:
            exit_code = child.wait()
        except BaseException:
            # Interrupted or terminated: let pytest tear down its cluster rather than killing it.
            child.terminate()
            child.wait(timeout=60)
            raise
    duration = time.monotonic() - began
    target = f"external {dsn_mod.describe(dsn)}" if dsn else "embedded PostgreSQL (ephemeral)"
    verdict = Verdict("no-go", target, round(duration, 2), exit_code, seed=seed,
                      require_proof=require_proof)
    if junit.exists():
        verdict.suites, verdict.failed, verdict.not_proven = read_outcomes(junit)
    ran = sum(t.passed + t.failed for t in verdict.suites.values())
    if exit_code == 0 and ran and not verdict.failed:
        verdict.verdict = "go"
    elif exit_code == 0 and not verdict.failed and verdict.not_proven:
        # A go needs something proven: a run whose every gate was not proven says nothing.
        verdict.problem = (f"no gate could be proven on this data ({len(verdict.not_proven)} "
                           "not proven); a go needs at least one")
    elif not verdict.failed:
        verdict.problem = (f"the suite did not run to completion (pytest exit code {exit_code});"
                           f" see its output {'above' if log is None else f'in {log}'}")
    (reports / "verdict.json").write_text(json.dumps(asdict(verdict), indent=2) + "\n")
    return verdict
