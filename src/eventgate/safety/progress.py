"""How a long backup, verification or restore tells the operator what it is doing: one line per
step, to a sink the caller chooses (the CLI prints them, tests collect them)."""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[str], None]


def no_progress(text: str) -> None:
    """The progress sink when nobody watches."""
