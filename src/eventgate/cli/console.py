"""What a person sees while the runner and the seeder work: rich progress and short tables."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from eventgate.migrate.progress import BatchProgress
from eventgate.migrate.runner import StatusRow, StepReport

# Soft wrap: DSNs, paths and SQL stay on one line, copyable, whatever the terminal width.
console = Console(highlight=False, soft_wrap=True)


class RichProgress:
    """A ProgressSink: one bar per script, advancing statement by statement."""

    def __init__(self, verb: str) -> None:
        self.verb = verb
        self._progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                  MofNCompleteColumn(), TimeElapsedColumn(), console=console,
                                  transient=True)
        self._task: object = None
        self._batch_key: tuple[str, str] | None = None

    def begin(self, label: str, statements: int) -> None:
        self._progress.start()
        self._task = self._progress.add_task(f"{self.verb} {label}", total=statements)

    def statement(self, text: str) -> None:
        if self._task is not None:
            self._progress.update(self._task, advance=1)  # type: ignore[arg-type]

    def end(self, report: StepReport) -> None:
        if self._task is not None:
            self._progress.remove_task(self._task)  # type: ignore[arg-type]
            self._task = None
        self._progress.stop()
        console.print(f"  [green]✓[/] {report.label:<45} {len(report.statements):>3} statements "
                      f"{report.rows:>9} rows {report.duration_s:>8.3f} s")

    def note(self, text: str) -> None:
        console.print(f"  [yellow]![/] {escape(text)}")

    def batch(self, progress: BatchProgress) -> None:
        """A backfill's bar counts rows, not statements; its description carries pace and ETA."""
        if self._task is None:
            return
        key = (progress.label, progress.table)
        if self._batch_key != key:
            self._batch_key = key
            self._progress.update(self._task, total=progress.total,  # type: ignore[arg-type]
                                  completed=0)
        self._progress.update(self._task, completed=progress.done,  # type: ignore[arg-type]
                              description=escape(progress.line()))

    def close(self) -> None:
        self._progress.stop()


def steps_table(title: str, reports: list[StepReport], verbose: bool = False) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("migration", "statements", "rows", "seconds"):
        table.add_column(column, justify="left" if column == "migration" else "right")
    for report in reports:
        table.add_row(report.label, str(len(report.statements)), str(report.rows),
                      f"{report.duration_s:.3f}")
        if verbose:
            for st in report.statements:
                table.add_row(f"  {st.summary}", st.status, "" if st.rows is None else
                              str(st.rows), f"{st.duration_s:.3f}")
    return table


def status_table(rows: list[StatusRow]) -> Table:
    table = Table(title_justify="left")
    for column in ("version", "migration", "state", "applied at", "ms", "applied by"):
        table.add_column(column)
    styles = {"applied": "green", "pending": "yellow", "edited": "red", "missing-file": "red"}
    for row in rows:
        entry = row.entry
        table.add_row(f"{row.version:03d}", row.label, f"[{styles[row.state]}]{row.state}[/]",
                      f"{entry.applied_at:%Y-%m-%d %H:%M:%S %Z}" if entry else "",
                      f"{entry.duration_ms:.1f}" if entry else "",
                      entry.applied_by if entry else "")
    return table


@contextmanager
def spinner(text: str) -> Iterator[Callable[[str], None]]:
    """A rich spinner whose text follows the work (a line per step of a long backup, restore
    or rehearsal); silent when output is not a terminal."""
    with console.status(escape(text)) as status:
        yield lambda line: status.update(escape(line))
