"""A check's result as JSON under <reports-dir>/checks/<check>/<subject>.json, beside the
assertion that carries it in pytest: the figures and samples a person or a script reads after
the run."""

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
