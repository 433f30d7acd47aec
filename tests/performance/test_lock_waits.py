"""The lock gate: the bundle migrates a clone of the legacy database while a writer and a reader
of every legacy name and shared table time their lock waits, and every statement's locks are
read from pg_locks; the waits and the rows read or written under a lock that blocks writers are
held to expectations.toml [locks] (checks/lock_waits.py)."""

from collections.abc import Callable

import pytest

from eventgate.bundle import Bundle
from eventgate.checks.lock_waits import LockRecorder, lock_gate
from eventgate.checks.result import CheckResult
from eventgate.migrate.runner import Runner
from eventgate.pg.databases import Database
from eventgate.pytest_plugin.proof import hold

pytestmark = [pytest.mark.performance, pytest.mark.destructive]


def test_no_live_writer_waits_on_the_migrations_locks(
        legacy_db: Database, bundle: Bundle,
        record_check: Callable[[CheckResult], CheckResult]) -> None:
    def migrate(recorder: LockRecorder) -> None:
        with legacy_db.connect() as conn:
            Runner(conn, bundle, observer=recorder).execute()

    hold(record_check(lock_gate(legacy_db.dsn, bundle, migrate)))
