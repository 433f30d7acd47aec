"""The selftest as the terminal shows it: the variants' list, a line per finished run, the
detection matrix as a rich table (cells in plain text as in the Markdown, coloured by state),
and the lines that name each run's first failure and each problem."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from eventgate.gate.suites import SUITES
from eventgate.selftest.judging import Outcome
from eventgate.selftest.matrix import cell_text
from eventgate.selftest.variants import Variant

STYLES = {"caught": "green", "refused": "green", "clean": "dim", "missed": "bold red",
          "false alarm": "bold red", "broken": "bold red", "not run": "dim", "as clean": "dim"}
STATUS_STYLES = {"clean": "green", "caught": "green", "missed": "bold red",
                 "false alarm": "bold red", "broken run": "bold red"}


def variants_table(variants: list[Variant]) -> Table:
    table = Table(title=f"{len(variants)} sabotage variants", title_justify="left")
    table.add_column("variant", no_wrap=True)
    table.add_column("defect")
    table.add_column("must go red")
    table.add_column("sabotage", overflow="fold")
    table.add_column("title")
    for v in variants:
        what = sorted({p.file for p in v.patches})
        if v.engine_factory:
            what.append(f"engine {v.engine_factory}")
        table.add_row(v.name, v.defect, ", ".join(v.catches), "\n".join(what), v.title)
    return table


def finished_line(o: Outcome) -> str:
    style = STATUS_STYLES.get(o.status, "")
    caught = [f"{s} ({c.failed or 'refused'})" for s, c in o.cells.items()
              if c.state in ("caught", "refused")]
    text = {"clean": "no test failed",
            "caught": "caught by " + ", ".join(caught),
            }.get(o.status, o.problem or "")
    return (f"  [{style}]{'✓' if o.ok else '✗'} {escape(o.name)}[/]: {o.status} — "
            f"{escape(text)} ({o.duration_s:.0f} s)")


def matrix_table(outcomes: list[Outcome]) -> Table:
    table = Table(title="detection matrix (bold: must go red)", title_justify="left")
    table.add_column("variant", no_wrap=True)
    table.add_column("defect")
    for suite in SUITES:
        table.add_column(suite, justify="center")
    table.add_column("result")
    table.add_column("s", justify="right")
    for o in outcomes:
        cells = []
        for suite in SUITES:
            cell = o.cells[suite]
            style = STYLES.get(cell.state, "")
            if cell.expected:
                style = f"bold {style}".strip()
            cells.append(f"[{style}]{escape(cell_text(cell))}[/]" if style else
                         escape(cell_text(cell)))
        status_style = STATUS_STYLES.get(o.status, "")
        table.add_row(escape(o.name), escape(o.defect), *cells,
                      f"[{status_style}]{o.status}[/]", f"{o.duration_s:.0f}")
    return table


def first_failure_lines(outcomes: list[Outcome]) -> list[str]:
    lines = []
    for o in outcomes:
        if o.first_failure:
            f = o.first_failure
            lines.append(f"  {escape(o.name)}: {f['suite']} {escape(f['test'])}\n      "
                         f"{escape(f['reason'])}")
    return lines


def problem_line(o: Outcome) -> str:
    return (f"[red]✗ {o.status.upper()}[/]: {escape(o.name)} ({escape(o.title)}): "
            f"{escape(o.problem or '')}")
