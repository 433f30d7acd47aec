"""The sabotage matrix behind `eventgate selftest`: the acceptance suites run against the clean
reference bundle and against variants of it that each carry one realistic defect, to show every
gate turning red on the defect it exists to catch (and the clean bundle staying green).

A variant is a small overlay on the reference bundle, fixtures/sabotage/<name>.toml:

    title = "010 truncates guest names to 20 characters"
    defect = "truncated values"              # the defect class, for the matrix
    catches = ["integrity", "compat"]        # the suites that must go red
    engine_factory = "fixtures.engine_faults:metrics_off_by_one"   # optional
    why = "..."                              # optional: what makes it realistic

    [[patch]]                                # any number; applied in order to a copy
    file = "migrations/010_wedding_data_migration.sql"
    find = "i.guest_name, i.email"           # must occur exactly once, or the overlay is stale
    replace = "left(i.guest_name, 20), i.email"

Each run is `eventgate gate`'s own child pytest (eventgate.gate.run.run_gate) with EVENTGATE_BUNDLE
pointing at the patched copy and, for engine variants, EVENTGATE_ENGINE_FACTORY set.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import tomllib
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from eventgate.errors import ConfigError
from eventgate.gate.junit import FailedGate, SuiteTally
from eventgate.gate.run import find_suites, run_gate
from eventgate.gate.suites import SUITES

CLEAN = "clean"
VARIANT_KEYS = frozenset({"title", "defect", "catches", "engine_factory", "why", "patch"})
PATCH_KEYS = frozenset({"file", "find", "replace"})
NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
README_BEGIN, README_END = "<!-- selftest:begin -->", "<!-- selftest:end -->"
# Environment the variants must not inherit: each run owns its PostgreSQL and its engine, and
# takes its engine factory from the variant alone (its bundle is always given to run_gate).
FOREIGN_SETTINGS = ("EVENTGATE_DSN", "EVENTGATE_BASE_URL", "EVENTGATE_ENGINE_FACTORY")


class SabotageError(ConfigError):
    """A variant that cannot be built: malformed, or an overlay gone stale."""


@dataclass(frozen=True)
class Patch:
    file: str
    find: str
    replace: str


@dataclass(frozen=True)
class Variant:
    name: str
    title: str
    defect: str
    catches: tuple[str, ...]
    patches: tuple[Patch, ...] = ()
    engine_factory: str | None = None
    why: str = ""
    source: Path | None = None

    @property
    def clean(self) -> bool:
        return self.name == CLEAN


CLEAN_VARIANT = Variant(CLEAN, "the reference bundle and engine, unchanged", "none", ())


def default_variants_dir() -> Path:
    return find_suites() / "fixtures" / "sabotage"


def load_variant(path: Path) -> Variant:
    name = path.stem
    where = f"sabotage variant {name} ({path})"
    if not NAME.match(name) or name == CLEAN:
        raise SabotageError(f"{where}: a variant is named by its file, in lower case with "
                            f"dashes, and not {CLEAN!r} (the unchanged bundle)")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise SabotageError(f"{where} is not valid TOML: {exc}") from exc
    unknown = set(data) - VARIANT_KEYS
    if unknown:
        raise SabotageError(f"{where}: unknown keys {', '.join(sorted(unknown))}; a variant "
                            f"takes {', '.join(sorted(VARIANT_KEYS))}")
    for key in ("title", "defect"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            raise SabotageError(f"{where} needs {key} = \"...\"")
    catches = data.get("catches")
    if (not isinstance(catches, list) or not catches
            or any(c not in SUITES for c in catches) or len(set(catches)) != len(catches)):
        raise SabotageError(f"{where}: catches must list the suites that must go red, some of "
                            f"{', '.join(SUITES)}; it is {catches!r}")
    factory = data.get("engine_factory")
    if factory is not None and (not isinstance(factory, str) or ":" not in factory):
        raise SabotageError(f"{where}: engine_factory must read 'module:function'")
    patches = []
    for n, spec in enumerate(data.get("patch", []), start=1):
        if (not isinstance(spec, dict) or set(spec) != PATCH_KEYS
                or not all(isinstance(v, str) for v in spec.values()) or not spec["find"]):
            raise SabotageError(f"{where}: [[patch]] {n} needs exactly file, find (not empty) "
                                "and replace, all strings")
        patches.append(Patch(spec["file"], spec["find"], spec["replace"]))
    if not patches and factory is None:
        raise SabotageError(f"{where} changes nothing: give [[patch]] entries, an "
                            "engine_factory, or both")
    return Variant(name, data["title"].strip(), data["defect"].strip(), tuple(catches),
                   tuple(patches), factory, str(data.get("why", "")).strip(), path)


def load_variants(directory: Path) -> list[Variant]:
    if not directory.is_dir():
        raise SabotageError(f"no sabotage variants at {directory}: expected a directory of "
                            "<name>.toml overlays")
    variants = [load_variant(p) for p in sorted(directory.glob("*.toml"))]
    if not variants:
        raise SabotageError(f"{directory} holds no <name>.toml sabotage variants")
    return variants


def select(variants: Sequence[Variant], only: Sequence[str] | None) -> list[Variant]:
    """The clean run and every variant, or the ones named (in the order given, clean first)."""
    everything = [CLEAN_VARIANT, *variants]
    if not only:
        return everything
    by_name = {v.name: v for v in everything}
    unknown = [n for n in only if n not in by_name]
    if unknown:
        raise SabotageError(f"--only names no variant {', '.join(unknown)}; see eventgate "
                            "selftest --list")
    wanted = list(dict.fromkeys(only))
    return sorted((by_name[n] for n in wanted), key=lambda v: not v.clean)


def _snippet(text: str) -> str:
    first = text.strip().splitlines()[0] if text.strip() else text
    return repr(first[:80] + ("…" if len(first) > 80 or "\n" in text.strip() else ""))


def apply_overlay(variant: Variant, base: Path, dest: Path) -> Path:
    """A copy of the bundle at `base` in `dest` (replaced if there) with the variant's patches
    applied in order. A find text that does not occur exactly once (in the file as patched so
    far) is an error naming the variant and the file, so an overlay never silently stops
    applying when the reference bundle changes under it."""
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(base, dest, ignore=shutil.ignore_patterns("__pycache__"))
    for patch in variant.patches:
        target = (dest / patch.file).resolve()
        if not target.is_relative_to(dest.resolve()) or not target.is_file():
            raise SabotageError(f"sabotage variant {variant.name}: {patch.file} is not a file of "
                                f"the bundle {base}")
        text = target.read_text(encoding="utf-8")
        found = text.count(patch.find)
        if found != 1:
            raise SabotageError(
                f"sabotage variant {variant.name}: {patch.file}: the find text "
                f"{_snippet(patch.find)} occurs {found} times, expected exactly once; the "
                "bundle changed under the overlay; update it in "
                f"{variant.source or 'its .toml'}")
        target.write_text(text.replace(patch.find, patch.replace), encoding="utf-8")
    return dest


def resolve_engine_factory(factory: str, root: Path) -> None:
    """Fail early, naming the variant's setting, if its engine factory cannot be imported the
    way the engine process will import it (from the checkout's root)."""
    module, _, name = factory.partition(":")
    added = str(root) not in sys.path
    if added:
        sys.path.insert(0, str(root))
    try:
        loaded = importlib.import_module(module)
    except ImportError as exc:
        raise SabotageError(f"engine_factory {factory!r}: cannot import {module}: {exc}") from exc
    finally:
        if added:
            sys.path.remove(str(root))
    if not callable(getattr(loaded, name, None)):
        raise SabotageError(f"engine_factory {factory!r}: {module} has no function {name}")


# ---------------------------------------------------------------------------------------------
# Judging one run.

# Why setup errors are not, in general, a gate catching the defect: an error in setup means the
# tests never looked. A variant whose SQL simply fails to run (a typo in the overlay, a column
# the sabotage forgot to rename) turns every test into an error, and counting that as "caught"
# would fill the matrix with ticks that prove nothing about the gates — the defect was caught
# by PostgreSQL's parser, and a defect that does apply would sail through unnoticed. So such a
# run is a "broken run" and fails the selftest: the overlay must be fixed to apply.
# The exception is the migration refusing on purpose: 010's own validation (RAISE EXCEPTION,
# SQLSTATE P0001, "nothing was migrated") and the schema's declared constraints (SQLSTATE class
# 23: a foreign key, CHECK, UNIQUE or NOT NULL rejecting the rows). Those are gates the bundle
# ships, designed to stop exactly such data; their refusal is shown as "refused" and counts as
# caught.
def refusal_class(name: str) -> bool:
    cls = getattr(psycopg.errors, name, None)
    return isinstance(cls, type) and (issubclass(cls, psycopg.errors.IntegrityError)
                                      or cls is psycopg.errors.RaiseException)


PSYCOPG_ERROR = re.compile(r"psycopg\.errors\.([A-Za-z]+)")


def refusals(junit: Path) -> set[str]:
    """The tests (named as eventgate.gate.run.read_junit names them) that errored because the
    migration refused: the error's traceback names a psycopg refusal class."""
    refused = set()
    for case in ET.parse(junit).getroot().iter("testcase"):
        error = case.find("error")
        if error is None:
            continue
        text = f"{error.get('message') or ''}\n{error.text or ''}"
        if any(refusal_class(m) for m in PSYCOPG_ERROR.findall(text)):
            parts = (case.get("classname") or "").split(".")
            refused.add(f"{parts[-1]}::{case.get('name')}")
    return refused


@dataclass
class Cell:
    # caught | refused | missed | clean | false alarm | broken | not run
    state: str
    expected: bool = False
    failed: int = 0  # the suite's gates that said no
    refused: int = 0  # tests that errored because the migration refused
    errors: int = 0  # tests that errored otherwise (never got to look)
    passed: int = 0
    skipped: int = 0


@dataclass
class Outcome:
    name: str
    title: str
    defect: str
    catches: list[str]
    engine_factory: str | None
    status: str  # clean | false alarm | caught | missed | broken run
    duration_s: float
    exit_code: int | None
    cells: dict[str, Cell] = field(default_factory=dict)
    first_failure: dict[str, str] | None = None
    # Every test that failed or errored: suite, test, reason (first line), kind.
    failures: list[dict[str, str]] = field(default_factory=list)
    problem: str | None = None
    reports: str = ""

    @property
    def ok(self) -> bool:
        return self.status in ("clean", "caught")


def judge(variant: Variant, suites: Sequence[str], exit_code: int | None,
          tallies: dict[str, SuiteTally], failed: list[FailedGate], refused: set[str],
          duration_s: float, reports: Path, problem: str | None = None) -> Outcome:
    outcome = Outcome(variant.name, variant.title, variant.defect, list(variant.catches),
                      variant.engine_factory, "broken run", round(duration_s, 1), exit_code,
                      reports=str(reports))
    for suite in SUITES:
        tally = tallies.get(suite, SuiteTally())
        mine = [f for f in failed if f.suite == suite]
        cell = Cell("not run", suite in variant.catches,
                    failed=sum(f.kind == "failure" for f in mine),
                    refused=sum(f.kind == "error" and f.test in refused for f in mine),
                    errors=sum(f.kind == "error" and f.test not in refused for f in mine),
                    passed=tally.passed, skipped=tally.skipped)
        if suite in suites:
            if cell.failed:
                cell.state = "false alarm" if variant.clean else "caught"
            elif cell.refused:
                cell.state = "false alarm" if variant.clean else "refused"
            elif cell.errors:
                cell.state = "broken"
            elif cell.expected:
                cell.state = "missed"
            else:
                cell.state = "clean"
        outcome.cells[suite] = cell
    outcome.failures = [asdict(f) for f in failed]
    # The line shown per variant: a gate of a suite it must turn red, if one said no; else any
    # gate; else the first error.
    first = (next((f for f in failed if f.kind == "failure" and f.suite in variant.catches),
                  None)
             or next((f for f in failed if f.kind == "failure"), None)
             or next(iter(failed), None))
    if first is not None:
        outcome.first_failure = asdict(first)
    ran = sum(c.passed + c.failed + c.refused + c.errors for c in outcome.cells.values())
    broken = [s for s, c in outcome.cells.items() if c.state == "broken"]
    if problem or exit_code not in (0, 1) or not ran:
        outcome.problem = problem or (
            f"the suites did not run to completion (pytest exit code {exit_code}); see "
            f"{reports / 'gate.log'}")
    elif broken:
        # A suite red only through errors: its tests never looked, and the row would claim
        # what no gate showed. (Errors beside failing gates leave the suite's verdict to them.)
        outcome.problem = (f"tests errored in {', '.join(broken)} before their gates could look "
                           f"(not a refusal by the migration); first: "
                           f"{_first_error(failed, refused)}")
    elif variant.clean:
        alarms = [s for s, c in outcome.cells.items() if c.state == "false alarm"]
        outcome.status = "false alarm" if alarms else "clean"
        if alarms:
            outcome.problem = (f"the unchanged bundle failed in {', '.join(alarms)}: a gate "
                               "that fails on correct data proves nothing when it fails on bad")
    else:
        missed = [s for s, c in outcome.cells.items() if c.state == "missed"]
        outcome.status = "missed" if missed else "caught"
        if missed:
            outcome.problem = (f"{', '.join(missed)} stayed green: the defect "
                               f"({variant.defect}) went through")
    return outcome


def _first_error(failed: Iterable[FailedGate], refused: set[str]) -> str:
    for f in failed:
        if f.kind == "error" and f.test not in refused:
            return f"{f.suite}: {f.test}: {f.reason}"
    return "(none)"


# ---------------------------------------------------------------------------------------------
# Running.


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
        self._running: dict[str, tuple[subprocess.Popen[bytes], float]] = {}
        self._timed_out: set[str] = set()

    def add(self, name: str, child: subprocess.Popen[bytes]) -> None:
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


def run_variant(variant: Variant, bundle: Path, plan: Plan, children: Children) -> Outcome:
    reports = plan.reports / variant.name
    root = find_suites()
    extra_env: dict[str, str | None] = {key: None for key in FOREIGN_SETTINGS}
    if variant.engine_factory:
        extra_env["EVENTGATE_ENGINE_FACTORY"] = variant.engine_factory
    # The engine process imports the factory (fixtures.engine_faults:...) from the checkout.
    extra_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(root), os.environ.get("PYTHONPATH", "")) if p)
    # Hypothesis keeps the examples that failed in .hypothesis/ of the working directory and
    # replays them first next time: a sabotaged bundle's failures belong with its own reports
    # (so no variant's run depends on which ran before it), not in the checkout's database,
    # where every later run of the suites would replay them.
    extra_env["HYPOTHESIS_STORAGE_DIRECTORY"] = str((reports / "hypothesis").resolve())
    started = time.monotonic()
    verdict = run_gate(dsn=None, bundle=str(bundle), scale=plan.scale, reports=reports,
                       seed=plan.seed,
                       # Serial in each child: budgets are timed only without xdist, and the
                       # selftest itself runs the children side by side. This module as a
                       # plugin: see pytest_configure below.
                       pytest_args=["-p", "no:xdist", "-p", "eventgate.selftest.core"],
                       suites=plan.suites,
                       extra_env=extra_env, log=reports / "gate.log",
                       started=lambda child: children.add(variant.name, child))
    problem = None
    if children.remove(variant.name):
        problem = f"stopped after {plan.timeout_s:.0f} s (--timeout); see {reports / 'gate.log'}"
    junit = reports / "junit.xml"
    return judge(variant, plan.suites, verdict.pytest_exit_code, verdict.suites,
                 verdict.failed, refusals(junit) if junit.exists() else set(),
                 time.monotonic() - started, reports, problem)


def pytest_configure(config: object) -> None:
    """In each variant's child pytest (loaded with -p eventgate.selftest.core): hypothesis finds
    failing examples as always but does not shrink them. Measured, shrinking the property
    test's counterexample was most of a failing variant's time (208 s of 226 s; hypothesis
    stops only after 5 minutes), and the selftest asks only whether the gate went red, which
    shrinking never changes; the failing example is still reported, unshrunk."""
    from hypothesis import Phase, settings

    settings.register_profile("eventgate-selftest",
                              phases=[p for p in Phase if p is not Phase.shrink])
    settings.load_profile("eventgate-selftest")


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
    children = Children()
    order = longest_first(plan.variants, plan.reports / "matrix.json")
    outcomes: dict[str, Outcome] = {}
    with ThreadPoolExecutor(max_workers=plan.jobs, thread_name_prefix="selftest") as pool:
        pending: dict[Future[Outcome], Variant] = {}
        try:
            for variant in order:
                def go(v: Variant = variant) -> Outcome:
                    on_start(v.name)
                    return run_variant(v, bundles[v.name], plan, children)
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
    return [outcomes[v.name] for v in plan.variants]


# ---------------------------------------------------------------------------------------------
# The matrix: JSON, Markdown, README block.


@dataclass
class Matrix:
    started_at: str
    duration_s: float
    cpus: int
    jobs: int
    scale: str
    suites: list[str]
    command: str
    outcomes: list[Outcome]

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outcomes)

    def to_json(self) -> dict[str, Any]:
        return {"started_at": self.started_at, "duration_s": self.duration_s,
                "cpus": self.cpus, "jobs": self.jobs, "scale": self.scale,
                "suites": self.suites, "command": self.command, "ok": self.ok,
                "variants": [asdict(o) for o in self.outcomes]}


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def now_utc() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def cell_text(cell: Cell) -> str:
    """One matrix cell, plain text: ✓ n (n tests failed), ✓ refused, missed, clean, …"""
    if cell.state == "caught":
        # Tests that errored beside the failing gates caught nothing; they are shown, not counted.
        return f"✓ {cell.failed}" + (f" (+{cell.errors} errored)" if cell.errors else "")
    if cell.state == "refused":
        return "✓ refused"
    if cell.state == "false alarm":
        return f"✗ {cell.failed + cell.refused}"
    if cell.state == "broken":
        return f"broken ({cell.errors})"
    if cell.state == "clean":
        return "·"
    return cell.state


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(matrix: Matrix) -> str:
    lines = ["| variant | defect | " + " | ".join(SUITES) + " | result |",
             "|---|---|" + "---|" * len(SUITES) + "---|"]
    for o in matrix.outcomes:
        cells = []
        for suite in SUITES:
            text = cell_text(o.cells[suite])
            # Bold: the suites the variant declares must go red.
            cells.append(f"**{text}**" if o.cells[suite].expected else text)
        lines.append(f"| `{o.name}` | {_md(o.defect)} | " + " | ".join(cells)
                     + f" | {o.status} |")
    lines += ["", "Cells: ✓ n = caught, n tests of that suite failed; ✓ refused = the migration "
              "refused the data (its own validation or a schema constraint); · = stayed green "
              "(not expected to catch it); missed = expected to go red and stayed green; "
              "**bold** = the suites the variant declares must go red.", "",
              "First failing test per variant:", ""]
    for o in matrix.outcomes:
        if o.first_failure:
            f = o.first_failure
            lines.append(f"- `{o.name}` — {o.title}: {f['suite']} `{_md(f['test'])}`: "
                         f"{_md(f['reason'][:240])}")
        else:
            lines.append(f"- `{o.name}` — {o.title}: no test failed")
    lines += ["", f"Run {matrix.started_at}: `{matrix.command}` took "
              f"{_duration(matrix.duration_s)} with --jobs {matrix.jobs} on a machine with "
              f"{matrix.cpus} CPUs (scale {matrix.scale})."]
    return "\n".join(lines) + "\n"


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


def update_readme(path: Path, block: str) -> None:
    """Replace what is between the selftest markers in `path` with `block`."""
    text = path.read_text(encoding="utf-8")
    begin, end = text.find(README_BEGIN), text.find(README_END)
    if begin < 0 or end < begin:
        raise ConfigError(f"{path} has no {README_BEGIN} … {README_END} block to replace; add "
                          "the two markers where the matrix belongs")
    path.write_text(text[:begin + len(README_BEGIN)] + "\n" + block + text[end:],
                    encoding="utf-8")


def write_json(matrix: Matrix, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(matrix.to_json(), indent=2, ensure_ascii=False) + "\n",
                    encoding="utf-8")
