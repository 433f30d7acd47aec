"""What a check found, in a form both a test assertion and a report can use."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class CheckResult:
    check: str  # the gate, e.g. "row-count parity"
    subject: str  # what it looked at, e.g. "wedding_invitations -> event_participants"
    passed: bool
    summary: str  # one line a person reads first
    details: tuple[str, ...] = field(default=())  # bounded samples, one per line
    sql: str | None = None  # reproduces the finding in psql
    data: dict[str, Any] = field(default_factory=dict)  # structured findings for JSON reports

    def explain(self) -> str:
        lines = [f"{self.check} — {self.subject}: {self.summary}"]
        lines += [f"  {d}" for d in self.details]
        if self.sql:
            lines.append(f"  reproduce with:\n    {self.sql.strip()}")
        return "\n".join(lines)


    def to_json(self) -> dict[str, Any]:
        return asdict(self)

