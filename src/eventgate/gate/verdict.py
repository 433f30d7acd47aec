"""The gate's verdict, go or no-go, made from the child pytest's exit code and its junit, and
kept in <reports>/verdict.json for a deployment script to read."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from eventgate.gate.junit import FailedGate, SuiteTally, UnprovenGate, read_outcomes

VERDICT_FILE = "verdict.json"


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


def decide(junit: Path, *, exit_code: int, target: str, duration_s: float, seed: int | None,
           require_proof: bool, log: Path | None) -> Verdict:
    """Go only when pytest exited 0, something ran and nothing failed; otherwise no-go with the
    failed gates, or with the problem that kept the suite from saying (`log`: where the child's
    output went, None for this terminal)."""
    verdict = Verdict("no-go", target, round(duration_s, 2), exit_code, seed=seed,
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
    return verdict


def discard(reports: Path) -> None:
    """A gate that dies before its verdict must not leave the previous run's "go" behind for a
    deployment script to read."""
    (reports / VERDICT_FILE).unlink(missing_ok=True)


def write(verdict: Verdict, reports: Path) -> None:
    (reports / VERDICT_FILE).write_text(json.dumps(asdict(verdict), indent=2) + "\n")
