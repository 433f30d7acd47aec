"""The migration runner against a real database: dry run, execute, validate, locks, rollback."""

import threading
from pathlib import Path

import psycopg
import pytest

from eventgate.bundle import Bundle, load_bundle
from eventgate.checks.snapshot import differences, fingerprint
from eventgate.errors import BundleError, MigrationError
from eventgate.migrate import locking
from eventgate.migrate.runner import Runner
from eventgate.migrate.statements import GRAMMAR
from eventgate.pg.databases import Database

pytestmark = pytest.mark.destructive


def _applied(conn: psycopg.Connection) -> list[int]:
    return [r[0] for r in conn.execute(
        "SELECT version FROM eventgate_ledger.migration_ledger ORDER BY 1").fetchall()]


def test_dry_run_reports_each_migration_and_leaves_no_trace(legacy_db: Database,
                                                            reference_bundle: Bundle) -> None:
    with legacy_db.connect() as conn:
        before = fingerprint(conn)
        reports = Runner(conn, reference_bundle).dry_run()
        after = fingerprint(conn)
        ledger_exists = conn.execute(
            "SELECT to_regclass('eventgate_ledger.migration_ledger')").fetchone()
    assert [r.version for r in reports] == [6, 7, 8, 9, 10]
    assert all(r.statements for r in reports)
    insert_weddings = next(s for s in reports[-1].statements
                           if s.summary.startswith("INSERT INTO events"))
    assert insert_weddings.rows == before["content"]["public.wedding_events"][0]
    assert differences(before, after) == []
    assert ledger_exists == (None,)


def test_execute_applies_everything_once_and_records_it(legacy_db: Database,
                                                        reference_bundle: Bundle) -> None:
    with legacy_db.connect() as conn:
        first = Runner(conn, reference_bundle).execute()
        second = Runner(conn, reference_bundle).execute()
        rows = conn.execute("SELECT version, name, sha256, duration_ms >= 0, applied_by "
                            "FROM eventgate_ledger.migration_ledger ORDER BY 1").fetchall()
    assert [r.label for r in first] == [m.label for m in reference_bundle.migrations]
    assert second == []
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        (m.version, m.name, m.sha256, True) for m in reference_bundle.migrations]
    assert all(" as postgres" in r[4] for r in rows)


def test_validate_passes_on_a_complete_migration(legacy_db: Database,
                                                 reference_bundle: Bundle) -> None:
    with legacy_db.connect() as conn:
        runner = Runner(conn, reference_bundle)
        assert runner.validate() == ["not applied yet: " + ", ".join(
            m.label for m in reference_bundle.migrations) + "; run eventgate migrate --execute"]
        runner.execute()
        assert runner.validate() == []


def test_validate_names_an_edited_migration_and_execute_refuses(
        legacy_db: Database, bundle_copy: Path) -> None:
    with legacy_db.connect() as conn:
        Runner(conn, load_bundle(bundle_copy)).execute()
        edited = bundle_copy / "migrations" / "007_events_core_tables.sql"
        edited.write_text(edited.read_text() + "\n-- a harmless-looking edit\n")
        runner = Runner(conn, load_bundle(bundle_copy))
        problems = runner.validate()
        with pytest.raises(MigrationError, match="nothing was changed") as refused:
            runner.execute()
    assert len(problems) == 1
    assert problems[0].startswith("007_events_core_tables.sql was edited after it was applied")
    assert "007_events_core_tables.sql was edited" in str(refused.value)


def test_validate_names_a_missing_migration_file(legacy_db: Database, bundle_copy: Path) -> None:
    with legacy_db.connect() as conn:
        Runner(conn, load_bundle(bundle_copy)).execute()
        (bundle_copy / "migrations" / "010_wedding_data_migration.sql").unlink()
        (bundle_copy / "rollback" / "010_wedding_data_migration_rollback.sql").unlink()
        problems = Runner(conn, load_bundle(bundle_copy)).validate()
    assert problems == [
        "the ledger records 010 (010_wedding_data_migration) as applied, but the bundle has no "
        f"such migration; restore the file to {bundle_copy.resolve() / 'migrations'}"]


def test_validate_names_a_migration_applied_out_of_order(legacy_db: Database,
                                                         bundle_copy: Path) -> None:
    full = load_bundle(bundle_copy)
    with legacy_db.connect() as conn:
        Runner(conn, full).execute()
        # 008's row gone from the ledger, as a run of a bundle without it would leave it (010
        # itself refuses to run without 008's indexes).
        conn.execute("DELETE FROM eventgate_ledger.migration_ledger WHERE version = 8")
        problems = Runner(conn, full).validate()
    assert ("008_enhanced_indexing.sql is not applied but a later migration (010) is: the "
            "migrations were applied out of order") in problems


def test_a_second_runner_waits_for_the_lock_then_names_its_holder(
        legacy_db: Database, reference_bundle: Bundle) -> None:
    with legacy_db.connect() as holder, legacy_db.connect() as conn:
        locking.acquire_runner_lock(holder, wait_s=0)
        holder_pid = holder.info.backend_pid
        with pytest.raises(MigrationError) as refused:
            Runner(conn, reference_bundle, lock_wait_s=0.3).execute()
        assert conn.execute("SELECT to_regclass('events')").fetchone() == (None,)
    message = str(refused.value)
    assert "another migration runner holds the migration lock" in message
    assert f"pid {holder_pid} (application eventgate" in message


def test_a_second_runner_proceeds_once_the_first_is_done(legacy_db: Database,
                                                         reference_bundle: Bundle) -> None:
    with legacy_db.connect() as holder, legacy_db.connect() as conn:
        locking.acquire_runner_lock(holder, wait_s=0)
        release = threading.Timer(0.3, locking.release_runner_lock, args=(holder,))
        release.start()
        reports = Runner(conn, reference_bundle, lock_wait_s=30).execute()
        release.join()
        assert len(reports) == 5


def test_lock_timeout_is_retried_then_fails_naming_the_blocker(
        legacy_db: Database, reference_bundle: Bundle) -> None:
    with legacy_db.connect(autocommit=False) as blocker, legacy_db.connect() as conn:
        # What a legacy transaction that wrote a tenant and stayed open holds.
        blocker.execute("LOCK TABLE tenants IN ROW EXCLUSIVE MODE")
        retries: list[str] = []
        runner = Runner(conn, reference_bundle, lock_timeout_ms=50, lock_retries=2)
        runner.progress.note = retries.append
        with pytest.raises(MigrationError) as refused:
            runner.execute()
        message = str(refused.value)
        assert ("007_events_core_tables.sql could not take its locks: 3 attempts, the last "
                "ended by lock_timeout (50 ms)") in message
        assert f"pid {blocker.info.backend_pid}" in message and "tenants (RowExclusiveLock)" in (
            message)
        assert len(retries) == 2
        # 006 only reads the catalog of tenants, so it went through; 007's foreign keys to
        # tenants could not be made, and it left nothing half-done.
        assert _applied(conn) == [6]
        assert conn.execute("SELECT to_regclass('events')").fetchone() == (None,)
        blocker.rollback()


def test_a_blocker_that_lets_go_only_delays_the_migration(legacy_db: Database,
                                                          reference_bundle: Bundle) -> None:
    with legacy_db.connect(autocommit=False) as blocker, legacy_db.connect() as conn:
        blocker.execute("LOCK TABLE tenants IN ACCESS EXCLUSIVE MODE")
        threading.Timer(0.4, blocker.rollback).start()
        reports = Runner(conn, reference_bundle, lock_timeout_ms=100, lock_retries=6).execute()
        assert len(reports) == 5 and _applied(conn) == [6, 7, 8, 9, 10]


def test_rollback_to_before_006_restores_the_legacy_schema_and_rows(
        legacy_db: Database, reference_bundle: Bundle) -> None:
    with legacy_db.connect() as conn:
        before = fingerprint(conn)
        runner = Runner(conn, reference_bundle)
        runner.execute()
        reports = runner.rollback(to=0)
        after = fingerprint(conn)
        assert _applied(conn) == []
    assert [r.label for r in reports] == [m.rollback.label for m in
                                          reversed(reference_bundle.migrations)]
    # Each step was checked against the catalog recorded before its migration.
    assert all(r.verified and r.verified.startswith("schema as before the migration")
               for r in reports)
    assert differences(before, after) == [] and runner.warnings == []


def test_rollback_keeps_writes_made_through_the_views(legacy_db: Database,
                                                      reference_bundle: Bundle) -> None:
    with legacy_db.connect() as conn:
        runner = Runner(conn, reference_bundle)
        runner.execute()
        conn.execute("UPDATE wedding_invitations SET rsvp_status = 'declined', "
                     "dietary_notes = 'vegan' WHERE id = 3")
        new_id = conn.execute(
            "INSERT INTO wedding_invitations (wedding_id, guest_name) VALUES (2, 'Late Guest') "
            "RETURNING id").fetchone()
        conn.execute("DELETE FROM wedding_sections WHERE id = 4")
        runner.rollback(to=0)
        assert conn.execute("SELECT rsvp_status, dietary_notes FROM wedding_invitations "
                            "WHERE id = 3").fetchone() == ("declined", "vegan")
        assert conn.execute("SELECT guest_name FROM wedding_invitations WHERE id = %s",
                            new_id).fetchone() == ("Late Guest",)
        assert conn.execute("SELECT count(*) FROM wedding_sections WHERE id = 4").fetchone() == (
            0,)
        # The legacy sequence moved past the id the view handed out.
        next_id = conn.execute(
            "INSERT INTO wedding_invitations (wedding_id, guest_name) VALUES (2, 'After') "
            "RETURNING id").fetchone()
        assert next_id is not None and new_id is not None and next_id[0] > new_id[0]


def test_rollback_without_a_target_undoes_only_the_newest(legacy_db: Database,
                                                          reference_bundle: Bundle) -> None:
    with legacy_db.connect() as conn:
        runner = Runner(conn, reference_bundle)
        runner.execute()
        reports = runner.rollback()
        assert [r.version for r in reports] == [10]
        assert _applied(conn) == [6, 7, 8, 9]
        assert conn.execute("SELECT to_regclass('wedding_events')::text").fetchone() == (
            "wedding_events",)


def test_bad_legacy_rows_stop_010_naming_them_and_lose_nothing(legacy_db: Database,
                                                               reference_bundle: Bundle) -> None:
    with legacy_db.connect() as conn:
        conn.execute("INSERT INTO wedding_invitations (id, wedding_id, guest_name) "
                     "VALUES (900001, 424242, 'Orphan Guest')")
        conn.execute("UPDATE wedding_events SET timezone = 'Mars/Olympus_Mons' WHERE id = 9")
        conn.execute("UPDATE wedding_invitations SET party_size = -2 WHERE id IN (4, 8)")
        conn.execute("UPDATE wedding_invitations SET rsvp_status = 'yes' WHERE id = 6")
        before = fingerprint(conn)
        with pytest.raises(MigrationError) as refused:
            Runner(conn, reference_bundle).execute()
        assert _applied(conn) == [6, 7, 8, 9]
        rolled_back = Runner(conn, reference_bundle)
        rolled_back.rollback(to=0)
        assert differences(before, fingerprint(conn)) == []
    message = str(refused.value)
    assert message.startswith("010_wedding_data_migration.sql failed at `DO $$`")
    assert "wedding_invitations whose wedding does not exist (ids): 900001" in message
    assert "timezone values PostgreSQL does not know: 'Mars/Olympus_Mons'" in message
    assert "with a negative party_size (ids): 4, 8" in message
    assert "rsvp_status values outside pending/accepted/declined/maybe: 'yes'" in message


def test_a_migration_that_does_not_parse_stops_the_run_before_anything_changes(
        legacy_db: Database, bundle_copy: Path) -> None:
    script = bundle_copy / "migrations" / "008_enhanced_indexing.sql"
    lines = script.read_text().splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if line.startswith("CREATE INDEX"))
    lines.insert(at, "CREATE INDEX ON;\n")
    script.write_text("".join(lines))
    with legacy_db.connect() as conn:
        with pytest.raises(BundleError) as refused:
            Runner(conn, load_bundle(bundle_copy)).execute()
        ledger = conn.execute("SELECT to_regclass('eventgate_ledger.migration_ledger')")
        assert ledger.fetchone() == (None,)  # not even 006 and 007 ran
    assert str(refused.value).startswith(
        f"008_enhanced_indexing.sql is not valid SQL to the {GRAMMAR} parser: syntax error "
        f"at or near \";\", at line {at + 1}, column 16 (`CREATE INDEX ON;`)"), refused.value
