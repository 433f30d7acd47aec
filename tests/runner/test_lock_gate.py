"""The lock gate can fail: migrations that copy under a lock that blocks writers turn it red,
naming the statement, the lock mode, the table, the hold and its rows."""

from pathlib import Path

import pytest

from eventgate.bundle import load_bundle
from eventgate.checks.lock_waits import LockRecorder, lock_gate
from eventgate.migrate.runner import Runner
from eventgate.pg.databases import Database

pytestmark = pytest.mark.destructive

def _gate(db: Database, bundle_dir: Path):  # type: ignore[no-untyped-def]
    bundle = load_bundle(bundle_dir)

    def migrate(recorder: LockRecorder) -> None:
        with db.connect() as conn:
            Runner(conn, bundle, observer=recorder).execute()

    return lock_gate(db.dsn, bundle, migrate)


def _in_one_transaction(text: str) -> str:
    """010 as one phase (its other phase lines made plain comments, its abort phases left
    out), each backfill over the whole table: the runner runs it in one transaction."""
    forward = text.split("-- eventgate:abort")[0]
    return forward.replace("-- eventgate:phase expand\n", (
        "-- eventgate:phase expand\n"
        "SELECT set_config('eventgate.batch_after', '-9223372036854775808', true),\n"
        "       set_config('eventgate.batch_upto', '9223372036854775807', true);\n"), 1
    ).replace("-- eventgate:backfill", "-- was a phase: backfill").replace(
        "-- eventgate:concurrently rebuild", "-- was a phase: rebuild").replace(
        "CREATE INDEX CONCURRENTLY", "CREATE INDEX").replace(
        "-- eventgate:phase reattach", "-- was a phase: reattach").replace(
        "-- eventgate:phase verify", "-- was a phase: verify").replace(
        "-- eventgate:phase switch", "-- was a phase: switch")


def test_the_online_010_passes(legacy_db: Database, bundle_copy: Path) -> None:
    result = _gate(legacy_db, bundle_copy)
    assert result.passed, result.explain()
    assert result.data["statements"] and result.data["probes"]
    assert max(h["rows"] for h in result.data["holds"]) <= 1000


@pytest.mark.parametrize("lock", ["SHARE ROW EXCLUSIVE", "ACCESS EXCLUSIVE"])
def test_a_copy_under_a_lock_that_blocks_writers_fails_naming_it(
        lock: str, legacy_db: Database, bundle_copy: Path) -> None:
    path = bundle_copy / "migrations" / "010_wedding_data_migration.sql"
    path.write_text(_in_one_transaction(path.read_text()).replace(
        "-- Refuse, naming the rows", "LOCK TABLE wedding_events, wedding_invitations, "
        f"wedding_sections IN {lock} MODE;\n\n-- Refuse, naming the rows", 1))
    result = _gate(legacy_db, bundle_copy)
    assert not result.passed
    mode = "".join(w.capitalize() for w in lock.split()) + "Lock"
    assert any(f"{mode} on wedding_invitations, taken by 010_wedding_data_migration.sql at "
               "`LOCK TABLE wedding_events" in d for d in result.details), result.explain()
    assert "max_rows_under_write_lock" in result.explain()


def test_an_index_built_on_a_live_legacy_table_fails_naming_it(
        legacy_db: Database, bundle_copy: Path) -> None:
    path = bundle_copy / "migrations" / "008_enhanced_indexing.sql"
    path.write_text(path.read_text() + "\nCREATE INDEX wedding_invitations_rsvp_status_idx "
                    "ON wedding_invitations (rsvp_status);\n")
    result = _gate(legacy_db, bundle_copy)
    assert not result.passed
    assert any("ShareLock on wedding_invitations, taken by 008_enhanced_indexing.sql at "
               "`CREATE INDEX wedding_invitations_rsvp_status_idx" in d
               for d in result.details), result.explain()
