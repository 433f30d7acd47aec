"""What every preflight check gives back (a status, the figure it measured and what to do about
a problem) and the limits the operator may change."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import psycopg

Status = Literal["ok", "warn", "fail", "skip"]

EXAMPLES = 10  # offending rows, sessions or values a check names


@dataclass(frozen=True)
class Options:
    backup_dir: Path = Path("backups")
    max_backup_age_h: float = 24.0
    skip_backup_check: bool = False
    disk_factor: float = 2.0
    max_connections: int = 10
    max_idle_in_transaction_s: float = 60.0
    statement_timeout_ms: int = 30_000
    # Short, so a lock nobody releases costs one failed check, not a hung preflight.
    lock_timeout_ms: int = 2_000


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str  # the figure: what was measured, against what
    fix: str = ""  # what to do, for a warn or a fail

    def to_json(self) -> dict[str, str]:
        return asdict(self)


def one(conn: psycopg.Connection, query: str, params: Any = None) -> Any:
    """The single value a query returns."""
    row = conn.execute(query, params).fetchone()
    assert row is not None, f"no row from {query}"
    return row[0]
