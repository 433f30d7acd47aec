"""Where check results go besides the assertion: JSON under reports/checks/, and the same JSON
as an Allure attachment when allure-pytest is collecting results."""

from __future__ import annotations

import json
import re
from pathlib import Path

from eventgate.checks.result import CheckResult


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:120] or "check"


def write_json(result: CheckResult, reports_dir: Path) -> Path:
    path = reports_dir / "checks" / _slug(result.check) / f"{_slug(result.subject)}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result.to_json(), indent=2, default=str) + "\n", encoding="utf-8")
    return path


def attach(result: CheckResult) -> None:
    try:
        import allure
    except ImportError:  # reporting is optional; the assertion carries the message anyway
        return
    allure.attach(json.dumps(result.to_json(), indent=2, default=str),
                  name=f"{result.check}: {result.subject}",
                  attachment_type=allure.attachment_type.JSON)
