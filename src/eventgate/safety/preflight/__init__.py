"""The deployment guide's pre-migration checklist: is this database ready for the bundle's
migrations? Every check only reads. Each gives a status (ok, warn, fail, skip), a one-line
figure, and for a problem what to do about it; the migration may go ahead when none failed.

The modules by job: check (a check's outcome, the limits), state (the bundle's tables and
where the database stands), server (version, disk, memory), sessions (preflight's read-only
session and the others'), backup (a recent verified backup), rules (the legacy rows the
migration refuses, from the bundle's preflight.toml), report (the run)."""

from __future__ import annotations

from functools import cache

from eventgate.bundle import load_bundle
from eventgate.safety.preflight.backup import check_backup
from eventgate.safety.preflight.check import Check, Options, Status
from eventgate.safety.preflight.report import Report, run_checks, run_preflight
from eventgate.safety.preflight.rules import DataRule, load_rules
from eventgate.safety.preflight.server import postmaster_mismatch
from eventgate.safety.preflight.sessions import connect

__all__ = ["DATA_RULES", "Check", "DataRule", "Options", "Report", "Status", "check_backup",
           "connect", "load_rules", "postmaster_mismatch", "run_checks", "run_preflight"]


@cache
def _reference_rules() -> tuple[DataRule, ...]:
    return load_rules(load_bundle()).rules


def __getattr__(name: str) -> tuple[DataRule, ...]:
    # DATA_RULES, the reference bundle's rules, is read when first asked for rather than on
    # import, so that importing preflight reads no bundle.
    if name == "DATA_RULES":
        return _reference_rules()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
