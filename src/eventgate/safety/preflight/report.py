"""The run: connect read-only, take every check in turn (a check whose query fails is a failed
check, never a lost report), and say what each found."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

import psycopg
from psycopg import errors as pg_errors

from eventgate import dsn as dsn_mod
from eventgate.bundle import Bundle, load_bundle
from eventgate.safety.preflight import rules as rules_mod
from eventgate.safety.preflight.backup import check_backup
from eventgate.safety.preflight.check import Check, Options, one
from eventgate.safety.preflight.server import (
    check_disk,
    check_memory,
    check_server_version,
    locate_server,
)
from eventgate.safety.preflight.sessions import (
    check_blocking_locks,
    check_connections,
    check_idle_lock_holders,
    check_legacy_tables,
    connect,
)
from eventgate.safety.preflight.state import Scope, exclusive_locks, migration_state


@dataclass(frozen=True)
class Report:
    database: str  # the described DSN, never with its password
    at: datetime
    duration_s: float
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.status == "fail"]

    def check(self, name: str) -> Check:
        for found in self.checks:
            if found.name == name:
                return found
        raise KeyError(f"no check named {name!r}; there are: "
                       f"{', '.join(c.name for c in self.checks)}")

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "checks": [c.to_json() for c in self.checks],
                "database": self.database, "at": self.at.isoformat(),
                "duration_s": round(self.duration_s, 3)}


def run_preflight(dsn: str, options: Options | None = None,
                  bundle: Bundle | None = None) -> Report:
    """Connect read-only, run every check for `bundle` (the reference bundle when None), and
    say what each found."""
    options = options or Options()
    bundle = bundle or load_bundle()
    at = datetime.now(UTC)
    started = time.monotonic()
    with connect(dsn, options) as conn:
        checks = run_checks(conn, options, bundle)
    return Report(dsn_mod.describe(dsn), at, time.monotonic() - started, tuple(checks))


def run_checks(conn: psycopg.Connection, options: Options, bundle: Bundle) -> list[Check]:
    """Every check on an open session; a check whose query fails is reported as failed, and the
    others still run."""
    rules = rules_mod.load_rules(bundle)
    scope = Scope.of(bundle, rules.database)
    state = migration_state(conn, scope)
    locked = exclusive_locks(conn, scope)
    host = locate_server(conn)
    database = one(conn, "SELECT current_database()")
    checks = [
        _guarded("server version", lambda: check_server_version(conn)),
        _guarded("legacy tables", lambda: check_legacy_tables(conn, state, locked)),
        _guarded("other connections",
                 lambda: check_connections(conn, options.max_connections, scope)),
        _guarded("blocking locks", lambda: check_blocking_locks(conn, scope)),
        _guarded("idle transactions",
                 lambda: check_idle_lock_holders(conn, options.max_idle_in_transaction_s,
                                                 scope)),
        _guarded("disk space",
                 lambda: check_disk(conn, host, options.disk_factor, state, locked)),
        _guarded("memory", lambda: check_memory(conn, host)),
        check_backup(str(database), options),
    ]
    if rules.path is None:
        checks.append(rules_mod.no_rules_check(bundle))
    checks += [_guarded(rule.name, partial(rules_mod.check_rule, conn, rule, state, locked))
               for rule in rules.rules]
    return checks


def _guarded(name: str, run: Callable[[], Check]) -> Check:
    try:
        return run()
    except pg_errors.LockNotAvailable:
        return Check(name, "fail", "waited lock_timeout for a lock another session holds",
                     "see 'blocking locks' and 'idle transactions'; let that session finish "
                     "or end it, then run preflight again")
    except pg_errors.QueryCanceled:
        return Check(name, "fail", "its query ran past preflight's statement_timeout",
                     "run preflight when the database is less busy")
    except psycopg.Error as exc:
        first_line = (str(exc).strip().splitlines() or ["?"])[0]
        return Check(name, "fail", f"could not check: {dsn_mod.redact(first_line)}",
                     "connect as a user who may read the catalog and the legacy tables "
                     "(the owner, or a superuser)")
