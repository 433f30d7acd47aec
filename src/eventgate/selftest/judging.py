"""Judging one run: from the junit outcome of a variant's suites, each suite's cell (caught,
refused, missed, clean, false alarm, broken, not run, as clean) and the run's status."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psycopg

from eventgate.gate.junit import FailedGate, SuiteTally, cases
from eventgate.gate.suites import SUITES
from eventgate.selftest.variants import Variant


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
    """The tests (named as eventgate.gate.junit.cases names them) that errored because the
    migration refused: the error's message or traceback names a psycopg refusal class."""
    return {case.test for case in cases(junit) if case.outcome == "error"
            and any(refusal_class(m) for m in PSYCOPG_ERROR.findall(case.text))}


@dataclass
class Cell:
    # caught | refused | missed | clean | false alarm | broken | not run | as clean
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
        outcome.cells[suite] = _cell(variant, suite in suites, tallies.get(suite, SuiteTally()),
                                     [f for f in failed if f.suite == suite],
                                     suite in variant.catches, refused)
    outcome.failures = [asdict(f) for f in failed]
    # The line shown per variant: a gate of a suite it must turn red, if one said no; else any
    # gate; else the first error.
    first = (next((f for f in failed if f.kind == "failure" and f.suite in variant.catches),
                  None)
             or next((f for f in failed if f.kind == "failure"), None)
             or next(iter(failed), None))
    if first is not None:
        outcome.first_failure = asdict(first)
    _conclude(outcome, variant, failed, refused, reports, problem)
    return outcome


def _cell(variant: Variant, ran: bool, tally: SuiteTally, mine: list[FailedGate],
          expected: bool, refused: set[str]) -> Cell:
    """One suite's cell: `mine` are the suite's failed and errored tests."""
    cell = Cell("not run", expected,
                failed=sum(f.kind == "failure" for f in mine),
                refused=sum(f.kind == "error" and f.test in refused for f in mine),
                errors=sum(f.kind == "error" and f.test not in refused for f in mine),
                passed=tally.passed, skipped=tally.skipped)
    if ran:
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
    return cell


def _conclude(outcome: Outcome, variant: Variant, failed: list[FailedGate], refused: set[str],
              reports: Path, problem: str | None) -> None:
    """The run's status and, unless it is fine, the problem that says why not."""
    ran = sum(c.passed + c.failed + c.refused + c.errors for c in outcome.cells.values())
    broken = [s for s, c in outcome.cells.items() if c.state == "broken"]
    if problem or outcome.exit_code not in (0, 1) or not ran:
        outcome.problem = problem or (
            f"the suites did not run to completion (pytest exit code {outcome.exit_code}); see "
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


def share_clean_cells(outcome: Outcome, clean: Outcome, suites: Sequence[str]) -> None:
    """Fill the cells of `suites`, which a variant that changes only the engine did not run, from
    the clean run of the same plan: the same bundle and seed, and suites that never start the
    engine, so clean's run is theirs. Shown as "as clean" (or "not run" when clean's own cell is
    not clean: its false alarm fails the selftest on its own row)."""
    for suite in suites:
        mine = outcome.cells[suite]
        if mine.state == "not run" and not mine.expected:
            state = "as clean" if clean.cells[suite].state == "clean" else "not run"
            outcome.cells[suite] = Cell(state, passed=clean.cells[suite].passed,
                                        skipped=clean.cells[suite].skipped)


def _first_error(failed: Iterable[FailedGate], refused: set[str]) -> str:
    for f in failed:
        if f.kind == "error" and f.test not in refused:
            return f"{f.suite}: {f.test}: {f.reason}"
    return "(none)"
