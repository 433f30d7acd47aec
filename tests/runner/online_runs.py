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


def kill_in_pause(db: Database, bundle_copy: Path) -> None:
    with db.connect() as conn:
        conn.execute(f"ALTER DATABASE {db.name} SET {PAUSE} = 'on'")
    runner = subprocess.Popen(
        [sys.executable, "-m", "eventgate.cli", "migrate", "--execute", "--dsn", db.dsn,
         "--bundle", str(bundle_copy)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "COLUMNS": "200"})
    try:
        with db.connect() as conn:
            deadline = time.monotonic() + 120
            while conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                    "'eventgate migrate' AND query LIKE 'SELECT pg_sleep(600)%' "
                    "AND state = 'active'").fetchone() != (1,):
                assert time.monotonic() < deadline, "the runner never reached the pause"
                assert runner.poll() is None, "the runner ended before the pause"
                time.sleep(0.05)
            os.kill(runner.pid, signal.SIGKILL)
            assert runner.wait(timeout=10) == -signal.SIGKILL
            conn.execute(f"ALTER DATABASE {db.name} RESET {PAUSE}")
            deadline = time.monotonic() + 30
            while conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name "
                               "= 'eventgate migrate'").fetchone() != (0,):
                assert time.monotonic() < deadline, "the killed runner's session stayed"
                time.sleep(0.05)
    finally:
        if runner.poll() is None:
            runner.kill()
