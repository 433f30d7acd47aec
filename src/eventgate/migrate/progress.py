"""What a run reports as it goes: each statement's outcome, each script's, and the sinks (the
terminal, a webhook) that are told."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from eventgate.migrate.exports import ExportedSet


@dataclass(frozen=True)
class StatementReport:
    summary: str
    status: str
    rows: int | None
    duration_s: float


@dataclass
class StepReport:
    version: int
    label: str
    statements: list[StatementReport] = field(default_factory=list)
    duration_s: float = 0.0
    exported: list[ExportedSet] = field(default_factory=list)
    verified: str | None = None  # what a rollback was checked against, when it was

    @property
    def rows(self) -> int:
        return sum(s.rows or 0 for s in self.statements)


class ProgressSink(Protocol):
    def begin(self, label: str, statements: int) -> None: ...
    def statement(self, text: str) -> None: ...
    def end(self, report: StepReport) -> None: ...
    def note(self, text: str) -> None: ...


class NullProgress:
    def begin(self, label: str, statements: int) -> None:
        pass

    def statement(self, text: str) -> None:
        pass

    def end(self, report: StepReport) -> None:
        pass

    def note(self, text: str) -> None:
        pass
