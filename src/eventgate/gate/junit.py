"""The one reader of pytest's junit XML: each test case as the gate names it, and the per-suite
tallies, failed gates and gates not proven that a verdict is made of."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from eventgate.gate.suites import SUITES
from eventgate.pytest_plugin.proof import NOT_PROVEN, is_not_proven


@dataclass
class SuiteTally:
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    not_proven: int = 0
    # Seconds spent in the suite's tests, as junit times them (setup, call and teardown; a
    # session fixture's setup counts towards the first test that needs it), so a slow suite
    # on staging shows which one it is.
    duration_s: float = 0.0


@dataclass
class FailedGate:
    suite: str
    test: str
    reason: str
    # "failure": the test ran and its gate said no; "error": it never got that far (a fixture
    # failed in setup or teardown, e.g. the migration did not apply). `eventgate selftest`
    # tells a gate that caught a defect from a run the defect merely broke.
    kind: str = "failure"


@dataclass
class UnprovenGate:
    """A gate the data could not exercise: neither a pass nor a failure."""

    suite: str
    test: str
    reason: str  # what it looked for and did not find


@dataclass(frozen=True)
class Case:
    """One test case: `test` is `<module>::<name>`, `outcome` one of passed, failed, error,
    skipped, not proven; `message` the first line of why, `text` all of it."""

    suite: str
    test: str
    outcome: str
    message: str
    text: str
    duration_s: float


def first_line(text: str | None) -> str:
    for line in (text or "").splitlines():
        line = line.strip()
        if line:
            return line[:300]
    return "(no message)"


def cases(path: Path) -> Iterator[Case]:
    for case in ET.parse(path).getroot().iter("testcase"):
        parts = (case.get("classname") or "").split(".")
        suite = parts[1] if len(parts) > 1 and parts[0] == "tests" else parts[0]
        test = f"{parts[-1]}::{case.get('name')}"
        duration = float(case.get("time") or 0)
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        if problem is not None:
            message = problem.get("message") or ""
            text = f"{message}\n{problem.text or ''}"
            yield Case(suite, test, "failed" if problem.tag == "failure" else "error",
                       first_line(message or problem.text), text, duration)
        elif (skipped := case.find("skipped")) is not None:
            reason = skipped.get("message") or skipped.text or ""
            if is_not_proven(reason):
                why = reason.removeprefix("Skipped: ").removeprefix(NOT_PROVEN)
                yield Case(suite, test, "not proven", first_line(why), reason, duration)
            else:
                yield Case(suite, test, "skipped", first_line(reason), reason, duration)
        else:
            yield Case(suite, test, "passed", "", "", duration)


def read_outcomes(path: Path) -> tuple[dict[str, SuiteTally], list[FailedGate],
                                       list[UnprovenGate]]:
    """Per-suite tallies, the failed gates and the gates not proven, from a junit file."""
    tallies = {suite: SuiteTally() for suite in SUITES}
    failed: list[FailedGate] = []
    unproven: list[UnprovenGate] = []
    for case in cases(path):
        tally = tallies.setdefault(case.suite, SuiteTally())
        tally.duration_s += case.duration_s
        if case.outcome in ("failed", "error"):
            tally.failed += 1
            failed.append(FailedGate(case.suite, case.test, case.message,
                                     "failure" if case.outcome == "failed" else "error"))
        elif case.outcome == "not proven":
            tally.not_proven += 1
            unproven.append(UnprovenGate(case.suite, case.test, case.message))
        elif case.outcome == "skipped":
            tally.skipped += 1
        else:
            tally.passed += 1
    for tally in tallies.values():
        tally.duration_s = round(tally.duration_s, 2)
    return tallies, failed, unproven


def read_junit(path: Path) -> tuple[dict[str, SuiteTally], list[FailedGate]]:
    tallies, failed, _ = read_outcomes(path)
    return tallies, failed
