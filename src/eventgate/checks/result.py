"""What a check found, in a form both a test assertion and a report can use.

A check ends in one of three outcomes: passed, failed, or not proven. Not proven means the data
under test cannot exercise the check (no row to compare, no value to draw a parameter from):
the summary then says what the check looked for. It is never a pass and never a failure."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class CheckResult:
    check: str  # the gate, e.g. "row-count parity"
    subject: str  # what it looked at, e.g. "<legacy table>_backup -> <target table>"
    passed: bool
    summary: str  # one line a person reads first
    details: tuple[str, ...] = field(default=())  # bounded samples, one per line
    sql: str | None = None  # reproduces the finding in psql
    data: dict[str, Any] = field(default_factory=dict)  # structured findings for JSON reports
    # False: the data could not exercise the check; `passed` is then False too, and the summary
    # says what the check looked for and did not find.
    proven: bool = True

    @classmethod
    def unproven(cls, check: str, subject: str, why: str, *, sql: str | None = None,
                 data: dict[str, Any] | None = None) -> CheckResult:
        return cls(check, subject, False, why, sql=sql, data=data or {}, proven=False)

    @property
    def outcome(self) -> str:
        """"passed", "failed" or "not proven"."""
        if self.passed:
            return "passed"
        return "failed" if self.proven else "not proven"

    def explain(self) -> str:
        head = "" if self.proven else "not proven: "
        lines = [f"{head}{self.check} — {self.subject}: {self.summary}"]
        lines += [f"  {d}" for d in self.details]
        if self.sql:
            lines.append(f"  reproduce with:\n    {self.sql.strip()}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "outcome": self.outcome}



def error_line(exc: BaseException) -> str:
    """An error as a result quotes it: its first line (psycopg's errors carry DETAIL, HINT and
    CONTEXT lines after it)."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
