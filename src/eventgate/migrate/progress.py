"""What a run reports as it goes: each statement's outcome, each script's, and the sinks (the
terminal, a webhook) that are told."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from eventgate.migrate.exports import ExportedSet
from eventgate.migrate.statements import summary


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


@dataclass
class BatchProgress:
    """A backfill as it goes: keys covered of the range read when it started, rows copied (a
    row a trigger had carried already is covered but not copied), and the pace."""

    label: str
    table: str
    done: int
    total: int
    copied: int = 0
    batches: int = 0
    seconds: float = 0.0
    longest_s: float = 0.0
    # The batch from which the statement ran as written, its first try (without ON CONFLICT DO
    # NOTHING) having met a row a trigger had copied.
    as_written_from: int | None = None

    def add(self, keys: int, copied: int, seconds: float) -> None:
        self.done += keys
        self.copied += copied
        self.batches += 1
        self.seconds += seconds
        self.longest_s = max(self.longest_s, seconds)

    @property
    def rate(self) -> float:
        """Keys per second, over the batches of this run."""
        return self.done / self.seconds if self.seconds and self.batches else 0.0

    @property
    def eta_s(self) -> float | None:
        return (self.total - self.done) / self.rate if self.rate else None

    def line(self) -> str:
        share = f" ({100 * self.done / self.total:.0f} %)" if self.total else ""
        eta = f", ETA {_clock(self.eta_s)}" if self.eta_s is not None else ""
        return (f"{self.label} backfill {self.table}: {self.done:,} of {self.total:,} rows"
                f"{share}, {self.rate:,.0f} rows/s{eta}")

    def statement_report(self, statement: str) -> StatementReport:
        rerun = (f", as written from batch {self.as_written_from}"
                 if self.as_written_from is not None else "")
        return StatementReport(summary(statement), f"BACKFILL {self.batches} batches, longest "
                               f"{self.longest_s * 1000:.0f} ms{rerun}", self.copied,
                               self.seconds)


def _clock(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


class ProgressSink(Protocol):
    def begin(self, label: str, statements: int) -> None: ...
    def statement(self, text: str) -> None: ...
    def end(self, report: StepReport) -> None: ...
    def note(self, text: str) -> None: ...
    def batch(self, progress: BatchProgress) -> None: ...


class NullProgress:
    def begin(self, label: str, statements: int) -> None:
        pass

    def statement(self, text: str) -> None:
        pass

    def end(self, report: StepReport) -> None:
        pass

    def note(self, text: str) -> None:
        pass

    def batch(self, progress: BatchProgress) -> None:
        pass
