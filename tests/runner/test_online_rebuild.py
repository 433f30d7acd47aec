"""010's rebuild: the participants' two indexes and foreign key, set aside for the backfill, built
back while the old application writes (a `-- eventgate:concurrently` phase, each statement its
own transaction). A run cut short in it leaves an INVALID index that the next run drops and
builds again, or that the undo drops; while the foreign key is away, what it would cascade is
carried by a trigger, or its validation fails."""

from pathlib import Path

import psycopg
import pytest
from online_runs import kill_in_pause, kill_runner_when, paused_bundle

from eventgate.bundle import Bundle, SqlFile
from eventgate.checks.snapshot import differences, fingerprint
from eventgate.errors import BundleError, MigrationError
from eventgate.migrate.phases import read_phases
from eventgate.migrate.runner import Runner
from eventgate.pg.databases import Database

INDEX = "event_participants_event_idx"  # the first the rebuild builds


def _script(tmp_path: Path, body: str) -> SqlFile:
    path = tmp_path / "010_x.sql"
    path.write_text(body)
    return SqlFile(10, "010_x", path)


def test_a_concurrently_phase_is_read_with_its_in_transaction_form(tmp_path: Path) -> None:
    script = read_phases(_script(tmp_path, """-- eventgate:phase one
SELECT 1;
-- eventgate:concurrently build lock_timeout_ms=900
CREATE INDEX CONCURRENTLY IF NOT EXISTS t_a_idx ON public.t (a);
ALTER TABLE t VALIDATE CONSTRAINT t_fkey;
-- eventgate:phase two
SELECT 2;
"""))
    build = script.phase("build")
    assert (build.kind, build.lock_timeout_ms) == ("concurrently", 900)
    assert build.indexes == (("public", "t_a_idx"),)
    assert "CONCURRENTLY" in build.statements[0]
    assert build.in_transaction == (
        "CREATE INDEX IF NOT EXISTS t_a_idx ON public.t (a)",
        "ALTER TABLE t VALIDATE CONSTRAINT t_fkey")


@pytest.mark.parametrize("body, refusal", [
    ("-- eventgate:phase one\nSELECT 1;\n-- eventgate:concurrently build\n"
     "CREATE INDEX t_a_idx ON t (a);\n-- eventgate:phase two\nSELECT 2;\n",
     "without CONCURRENTLY the build blocks every writer"),
    ("-- eventgate:phase one\nSELECT 1;\n-- eventgate:concurrently build\n"
     "CREATE INDEX CONCURRENTLY t_a_idx ON t (a);\n-- eventgate:phase two\nSELECT 2;\n",
     "without IF NOT EXISTS and a name a resumed run fails"),
    ("-- eventgate:phase one\nSELECT 1;\n-- eventgate:concurrently build\n"
     "COMMIT;\n-- eventgate:phase two\nSELECT 2;\n", "cannot hold BEGIN, COMMIT or ROLLBACK"),
    ("-- eventgate:concurrently build\nCREATE INDEX CONCURRENTLY IF NOT EXISTS i ON t (a);\n"
     "-- eventgate:phase two\nSELECT 2;\n", "a concurrently phase can be neither the first"),
    ("-- eventgate:phase one\nSELECT 1;\n-- eventgate:concurrently build\n"
     "CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON t (a);\n", "nor the last"),
])
def test_a_concurrently_phase_that_would_block_or_not_resume_is_refused(
        tmp_path: Path, body: str, refusal: str) -> None:
    with pytest.raises(BundleError, match=refusal):
        read_phases(_script(tmp_path, body))


def _index_valid(conn: psycopg.Connection, name: str) -> bool | None:
    row = conn.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)",
                       (name,)).fetchone()
    return None if row is None else bool(row[0])


def _kill_mid_build(db: Database, bundle: Bundle, log: Path) -> None:
    """Run 010 in a child, and kill -9 it while its first CONCURRENTLY build waits out an old
    snapshot (a REPEATABLE READ transaction opened before the run): the index is in the
    catalog by then, INVALID until the build's last step."""
    with psycopg.connect(db.dsn) as blocker:
        blocker.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        blocker.execute("SELECT 1")  # the snapshot every CONCURRENTLY build waits for
        # Its server session ends when its lock_timeout does, leaving the index behind.
        kill_runner_when(db, bundle.root, "query LIKE '%%CREATE INDEX CONCURRENTLY%%' AND "
                         "wait_event_type = 'Lock'", "its build", log=log, timeout=180)
        blocker.rollback()


@pytest.mark.destructive
@pytest.mark.parametrize("then", ["resume", "undo"])
def test_a_kill_9_mid_build_leaves_an_invalid_index_that_a_resume_rebuilds_or_the_undo_drops(
        then: str, legacy_db: Database, reference_bundle: Bundle, tmp_path: Path) -> None:
    with legacy_db.connect() as conn:
        Runner(conn, reference_bundle).execute(to=9)
        before = fingerprint(conn)
    _kill_mid_build(legacy_db, reference_bundle, tmp_path / "runner.log")
    with legacy_db.connect() as conn:
        runner = Runner(conn, reference_bundle)
        [part] = runner.part_way()
        assert part.phase == "rebuild"
        assert _index_valid(conn, INDEX) is False
        if then == "resume":
            notes: list[str] = []
            runner.progress.note = notes.append  # type: ignore[method-assign]
            [report] = runner.execute()
            assert report.version == 10 and runner.validate() == []
            assert any(f"dropping the INVALID index {INDEX}" in n for n in notes), notes
            assert _index_valid(conn, INDEX) is True
            assert conn.execute(
                "SELECT convalidated FROM pg_constraint WHERE conname = "
                "'event_participants_event_tenant_fkey'").fetchone() == (True,)
        else:
            [report] = runner.rollback()
            assert report.verified == "the catalog as it was before the run began"
            assert differences(before, fingerprint(conn)) == []


@pytest.mark.destructive
@pytest.mark.parametrize("carried", [True, False], ids=["carried", "not carried"])
def test_while_the_foreign_key_is_away_a_wedding_moved_to_another_tenant_takes_its_guests(
        carried: bool, legacy_db: Database, bundle_copy: Path) -> None:
    """The old application moves a wedding to another tenant after its guests were copied and
    before the foreign key is back: the move is written down, and the guests' copies follow once
    the event index is back, as ON UPDATE CASCADE would have made them; without that, the
    foreign key's validation refuses the copy."""
    if not carried:  # a 010 that writes the moves down and never carries them out
        path = bundle_copy / "migrations" / "010_wedding_data_migration.sql"
        path.write_text(path.read_text().replace(
            "SELECT wedding_compat.apply_event_keys();", "SELECT 0;"))
    bundle = paused_bundle(bundle_copy, "-- eventgate:concurrently rebuild")
    with legacy_db.connect() as conn:
        Runner(conn, bundle).execute(to=9)
    kill_in_pause(legacy_db, bundle_copy)
    with legacy_db.connect() as conn:
        assert conn.execute("SELECT count(*) FROM pg_constraint WHERE conname = "
                            "'event_participants_event_tenant_fkey'").fetchone() == (0,)
        row = conn.execute(
            "SELECT i.wedding_id, t.id FROM wedding_invitations i "
            "JOIN wedding_events w ON w.id = i.wedding_id "
            "JOIN tenants t ON t.id <> w.tenant_id ORDER BY i.id LIMIT 1").fetchone()
        assert row is not None, "the seed has one tenant only"
        moved, tenant = row
        conn.execute("UPDATE wedding_events SET tenant_id = %s WHERE id = %s", (tenant, moved))
        # Written down, to be carried out once the event index is back.
        assert conn.execute("SELECT new_id, new_tenant FROM wedding_compat.pending_event_keys"
                            ).fetchall() == [(moved, tenant)]
        if not carried:
            with pytest.raises(MigrationError, match="event_participants_event_tenant_fkey"):
                Runner(conn, bundle).execute()
            return
        [report] = Runner(conn, bundle).execute()
        assert report.version == 10
        assert conn.execute(
            "SELECT count(*) FROM wedding_invitations WHERE wedding_id = %s", (moved,)
        ).fetchone() == conn.execute(
            "SELECT count(*) FROM event_participants WHERE event_id = %s AND tenant_id = %s",
            (moved, tenant)).fetchone()


@pytest.mark.destructive
def test_a_build_held_up_by_an_old_transaction_names_it_and_resumes_once_it_ends(
        legacy_db: Database, reference_bundle: Bundle) -> None:
    """A CONCURRENTLY build waits out every transaction older than itself; one left open (a
    session idle in transaction) stops the run in its rebuild phase, naming that session, and the
    next run, once it has ended, drops the INVALID index the given-up build left and finishes."""
    with legacy_db.connect() as conn:
        Runner(conn, reference_bundle).execute(to=9)
        with psycopg.connect(legacy_db.dsn, application_name="a forgotten psql") as blocker:
            blocker.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            blocker.execute("SELECT 1")
            runner = Runner(conn, reference_bundle, lock_timeout_ms=300, lock_retries=1)
            with pytest.raises(MigrationError, match=r"stopped in its rebuild phase: .*"
                               r"transactions a CONCURRENTLY build waits for .*a forgotten psql"
                               r".*idle in transaction"):
                runner.execute()
            blocker.rollback()
        assert [p.phase for p in runner.part_way()] == ["rebuild"]
        assert _index_valid(conn, INDEX) is None  # the runner dropped what its tries left
        [report] = Runner(conn, reference_bundle).execute()
        assert report.version == 10 and _index_valid(conn, INDEX) is True
