"""`eventgate gate`: run the acceptance suites in a child pytest, write the reports, and hand
back its verdict, go or no-go (eventgate.gate.verdict)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

import eventgate
from eventgate import dsn as dsn_mod
from eventgate.engine.launcher import Launcher
from eventgate.errors import ConfigError
from eventgate.gate import verdict as verdict_mod
from eventgate.gate.suites import SUITES
from eventgate.gate.verdict import Verdict


class Child(Protocol):
    """The child pytest as run_gate's caller sees it: a subprocess, or a launcher's fork."""

    pid: int

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...

    def terminate(self) -> None: ...


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


def _child_env(reports: Path, settings: Mapping[str, str | None], require_proof: bool,
               extra_env: Mapping[str, str | None]) -> dict[str, str]:
    env = dict(os.environ)
    # The checks' JSON (reports/checks/) belongs with this run's other reports: without this
    # the suites write it to reports/ of the checkout, whatever --reports says.
    env["EVENTGATE_REPORTS"] = str(reports.resolve())
    # Settings travel by environment, so a password never shows in the process list.
    for key, value in settings.items():
        if value:
            env[key] = value
    if require_proof:
        env["EVENTGATE_REQUIRE_PROOF"] = "1"
    for key, override in extra_env.items():
        if override is None:
            env.pop(key, None)
        else:
            env[key] = override
    return env


def _pytest_arguments(suites: Sequence[str], marker: str, reports: Path, junit: Path,
                      pytest_args: list[str]) -> list[str]:
    return [*(f"tests/{s}" for s in suites), "-m", marker, "-p", "no:cacheprovider", "-q",
            f"--junitxml={junit.resolve()}",
            f"--alluredir={(reports / 'allure-results').resolve()}", "--clean-alluredir",
            f"--benchmark-json={(reports / 'benchmarks' / 'query-budgets.json').resolve()}",
            # Budget figures go to that JSON and reports/checks/; the wide table is noise here.
            "--benchmark-quiet",
            *pytest_args]


def _start(arguments: list[str], root: Path, env: dict[str, str], log: Path | None,
           launcher: Launcher | None) -> Child:
    if launcher is not None and log is not None:
        log.write_bytes(b"")
        return launcher.start(arguments, env, log, cwd=root, program="pytest")
    with log.open("wb") if log is not None else contextlib.nullcontext() as output:
        return subprocess.Popen([sys.executable, "-m", "pytest", *arguments], cwd=root,
                                env=env, stdout=output,
                                stderr=None if output is None else subprocess.STDOUT)


def _run_child(arguments: list[str], root: Path, env: dict[str, str], log: Path | None,
               started: Callable[[Child], None] | None, launcher: Launcher | None) -> int:
    child = _start(arguments, root, env, log, launcher)
    if started is not None:
        started(child)
    try:
        return child.wait()
    except BaseException:
        # Interrupted or terminated: let pytest tear down its cluster rather than killing it.
        child.terminate()
        child.wait(timeout=60)
        raise


def run_gate(*, dsn: str | None, bundle: str | None, scale: str | None, reports: Path,
             pytest_args: list[str], base_url: str | None = None, seed: int | None = None,
             require_proof: bool = False,
             suites: Sequence[str] = SUITES,
             extra_env: Mapping[str, str | None] | None = None,
             log: Path | None = None,
             started: Callable[[Child], None] | None = None,
             launcher: Launcher | None = None) -> Verdict:
    """Run the suites in a child pytest and read its junit into a verdict.

    The keyword arguments after base_url serve `eventgate selftest`, which runs many gates side
    by side: `suites` a subset of SUITES, `extra_env` variables set in (or, as None, removed
    from) the child's environment after the settings above, `log` a file for the child's output
    instead of this terminal, `started` called with the child process (so an interrupted caller
    can stop it), `launcher` to fork the child from a process that has pytest imported (with a
    log only: a fork has no terminal of the caller's to write to). Their defaults are what
    `eventgate gate` always did."""
    unknown = [s for s in suites if s not in SUITES]
    if unknown or not suites:
        raise ConfigError(f"unknown suites {', '.join(unknown) or '(none given)'}; choose from "
                          f"{', '.join(SUITES)}")
    verdict_mod.discard(reports)
    root = find_suites()
    (reports / "benchmarks").mkdir(parents=True, exist_ok=True)
    junit = reports / "junit.xml"
    junit.unlink(missing_ok=True)
    env = _child_env(reports, {"EVENTGATE_DSN": dsn, "EVENTGATE_BUNDLE": bundle,
                               "EVENTGATE_SCALE": scale, "EVENTGATE_BASE_URL": base_url,
                               "EVENTGATE_SEED": None if seed is None else str(seed)},
                     require_proof, extra_env or {})
    marker = "green and not slow" if dsn else "not slow"
    began = time.monotonic()
    exit_code = _run_child(_pytest_arguments(suites, marker, reports, junit, pytest_args), root,
                           env, log, started, launcher)
    target = f"external {dsn_mod.describe(dsn)}" if dsn else "embedded PostgreSQL (ephemeral)"
    verdict = verdict_mod.decide(junit, exit_code=exit_code, target=target,
                                 duration_s=time.monotonic() - began, seed=seed,
                                 require_proof=require_proof, log=log)
    verdict_mod.write(verdict, reports)
    return verdict
