"""The third outcome of a gate in pytest: *not proven*, when the data under test cannot exercise
it. It travels as a skip whose reason starts with NOT_PROVEN, so junit, Allure and the terminal
all carry it without a plugin of their own, and the gate, the report header and
`--require-proof` tell it apart from an ordinary skip by that prefix."""

from __future__ import annotations

from typing import NoReturn

import pytest

from eventgate.checks.result import CheckResult

NOT_PROVEN = "not proven: "


def not_proven(why: str) -> NoReturn:
    """Stop the test as not proven; `why` says what the gate looked for and did not find."""
    pytest.skip(NOT_PROVEN + why)


def is_not_proven(reason: str | None) -> bool:
    """A skip reason as pytest, junit or Allure keep it ("Skipped: not proven: …")."""
    return (reason or "").removeprefix("Skipped: ").startswith(NOT_PROVEN)


def hold(result: CheckResult) -> CheckResult:
    """Assert a check's result the one way every gate does: pass, fail with its explanation,
    or stop as not proven."""
    if result.outcome == "not proven":
        not_proven(f"{result.check} — {result.subject}: {result.summary}")
    assert result.passed, result.explain()
    return result
