"""The detection matrix of a selftest: its record (reports/selftest/matrix.json), its Markdown
table, and the README block it replaces between the selftest markers."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eventgate.errors import ConfigError
from eventgate.gate.suites import SUITES
from eventgate.selftest.judging import Cell, Outcome

README_BEGIN, README_END = "<!-- selftest:begin -->", "<!-- selftest:end -->"


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
    if cell.state == "as clean":
        return "= clean"
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
              "(not expected to catch it); = clean = the variant changes only the engine, and this "
              "suite never starts it: the clean run, same bundle and seed, is its run; "
              "missed = expected to go red and stayed green; "
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
