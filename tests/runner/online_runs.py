"""Helpers of the online-010 tests: a 010 that pauses before a phase, and a runner killed -9
while it is paused there."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg

from eventgate.bundle import Bundle, load_bundle
from eventgate.pg.databases import Database

PAUSE = "eventgate.test_pause"


def applied(conn: psycopg.Connection) -> list[int]:
    return [r[0] for r in conn.execute(
        "SELECT version FROM eventgate_ledger.migration_ledger ORDER BY 1").fetchall()]


def paused_bundle(bundle_copy: Path, before: str) -> Bundle:
    """010 with a phase that sleeps, while the database setting PAUSE is on, just before the
    phase line `before`: a place to kill the runner between two of 010's transactions."""
    path = bundle_copy / "migrations" / "010_wedding_data_migration.sql"
    text = path.read_text()
    assert before in text
    path.write_text(text.replace(before, "-- eventgate:phase pause\nSELECT pg_sleep(600) WHERE "
                                 f"current_setting('{PAUSE}', true) = 'on';\n\n{before}", 1))
    return load_bundle(bundle_copy)


def kill_runner_when(db: Database, bundle_dir: Path, waiting: str, what: str, *,
                     log: Path | None = None, timeout: float = 120) -> None:
    """Run `eventgate migrate --execute` in a child, kill -9 it once its session matches
    `waiting` (a condition on pg_stat_activity), and wait until that session has ended."""
    with (log.open("w") if log else open(os.devnull, "w")) as out:
        runner = subprocess.Popen(
            [sys.executable, "-m", "eventgate.cli", "migrate", "--execute", "--dsn", db.dsn,
             "--bundle", str(bundle_dir)], stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "COLUMNS": "200"})
        try:
            with db.connect() as conn:
                deadline = time.monotonic() + timeout
                while conn.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                        f"'eventgate migrate' AND {waiting}").fetchone() != (1,):
                    assert time.monotonic() < deadline, f"the runner never reached {what}"
                    assert runner.poll() is None, (f"the runner ended before {what}"
                                                   + (f": {log.read_text()}" if log else ""))
                    time.sleep(0.05)
                os.kill(runner.pid, signal.SIGKILL)
                assert runner.wait(timeout=10) == -signal.SIGKILL
                deadline = time.monotonic() + 60
                while conn.execute("SELECT count(*) FROM pg_stat_activity WHERE "
                                   "application_name = 'eventgate migrate'").fetchone() != (0,):
                    assert time.monotonic() < deadline, "the killed runner's session stayed"
                    time.sleep(0.05)
        finally:
            if runner.poll() is None:
                runner.kill()


def kill_in_pause(db: Database, bundle_copy: Path) -> None:
    with db.connect() as conn:
        conn.execute(f"ALTER DATABASE {db.name} SET {PAUSE} = 'on'")
    try:
        kill_runner_when(db, bundle_copy, "query LIKE 'SELECT pg_sleep(600)%%' AND "
                         "state = 'active'", "the pause")
    finally:
        with db.connect() as conn:
            conn.execute(f"ALTER DATABASE {db.name} RESET {PAUSE}")
