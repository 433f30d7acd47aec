"""010 run online, cut short and picked up again: a kill -9 of the runner between its phases or a
batch that fails leaves a truthful ledger (010 not applied), legacy tables as the old
application wrote them, and a place the next run resumes from, or undoes."""

import re
from pathlib import Path

import pytest
from online_runs import applied, kill_in_pause, paused_bundle

from eventgate.bundle import Bundle, SqlFile, load_bundle
from eventgate.checks.snapshot import differences, fingerprint
from eventgate.cli.main import main
from eventgate.errors import MigrationError
from eventgate.migrate.phases import read_phases
from eventgate.migrate.runner import Runner
from eventgate.pg.databases import Database

pytestmark = pytest.mark.destructive


@pytest.mark.parametrize("then", ["resume", "undo"])
def test_kill_9_mid_backfill_leaves_a_truthful_ledger_and_resumes_or_undoes(
        then: str, legacy_db: Database, bundle_copy: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    bundle = paused_bundle(bundle_copy, "-- eventgate:backfill table=wedding_invitations")
    with legacy_db.connect() as conn:
        Runner(conn, bundle).execute(to=9)
        before_010 = fingerprint(conn)
    kill_in_pause(legacy_db, bundle_copy)
    with legacy_db.connect() as conn:
        runner = Runner(conn, bundle)
        assert applied(conn) == [6, 7, 8, 9]
        [part] = runner.part_way()
        assert (part.version, part.phase) == (10, "pause")
        # The weddings are copied, the guests not yet; the legacy tables are untouched and keep
        # their names, with the triggers that carry the old application's writes.
        assert conn.execute("SELECT count(*) FROM events").fetchone() == conn.execute(
            "SELECT count(*) FROM wedding_events").fetchone()
        assert conn.execute("SELECT count(*) FROM event_participants").fetchone() == (0,)
        legacy = {k: v for k, v in fingerprint(conn)["content"].items()  # type: ignore[union-attr]
                  if k.startswith("public.wedding_")}
        assert legacy == {k: v for k, v in before_010["content"].items()  # type: ignore[union-attr]
                          if k.startswith("public.wedding_")}
        assert any("stopped part-way, at pause" in p for p in runner.validate())
        assert [r.state for r in runner.status() if r.version == 10] == ["part-way"]
        # A write of the old application now is carried into the copy.
        conn.execute("UPDATE wedding_events SET venue_name = 'moved while paused' "
                     "WHERE id = (SELECT min(id) FROM wedding_events)")
        with pytest.raises(MigrationError, match="stopped part-way"):
            runner.dry_run()
    capsys.readouterr()
    assert main(["migrate", "--validate", "--dsn", legacy_db.dsn, "--bundle",
                 str(bundle_copy)]) == 1
    assert "stopped part-way" in capsys.readouterr().out

    with legacy_db.connect() as conn:
        runner = Runner(conn, bundle)
        if then == "resume":
            [report] = runner.execute()
            assert report.version == 10
            assert runner.validate() == [] and runner.part_way() == []
            assert conn.execute(
                "SELECT venue_name FROM wedding_events ORDER BY id LIMIT 1").fetchone() == (
                "moved while paused",)
            assert conn.execute("SELECT count(*) FROM event_participants").fetchone() == (
                conn.execute("SELECT count(*) FROM wedding_invitations_backup").fetchone())
        else:
            [report] = runner.rollback()
            assert report.verified == "the catalog as it was before the run began"
            assert runner.part_way() == [] and applied(conn) == [6, 7, 8, 9]
            after = fingerprint(conn)
            problems = differences(before_010, after)
            # Only the write made while paused, in wedding_events, and the copies gone.
            assert all("wedding_events" in p for p in problems), problems
            assert conn.execute("SELECT count(*) FROM events").fetchone() == (0,)
            assert [r.version for r in runner.execute()] == [10]


def test_a_failed_batch_stops_the_backfill_where_it_was_and_a_rerun_finishes(
        legacy_db: Database, bundle_copy: Path) -> None:
    """A legacy row the new schema refuses, written past the triggers (replica role, as a bulk
    load would) after 010's checks ran: its batch fails, named; the batches before it stay
    copied; once the row is fixed, the next run goes on from that batch."""
    bundle = paused_bundle(bundle_copy, "-- eventgate:backfill table=wedding_events")
    with legacy_db.connect() as conn:
        Runner(conn, bundle).execute(to=9)
    kill_in_pause(legacy_db, bundle_copy)
    with legacy_db.connect() as conn:
        bad = conn.execute("SELECT max(id) FROM wedding_events").fetchone()
        assert bad is not None
        with conn.transaction():
            conn.execute("SET LOCAL session_replication_role = replica")
            conn.execute("UPDATE wedding_events SET status = 'bogus' WHERE id = %s", bad)
        runner = Runner(conn, bundle, batch_rows=10)
        with pytest.raises(MigrationError, match="events_status_check"):
            runner.execute()
        [part] = runner.part_way()
        assert part.phase == "backfill:wedding_events"
        assert part.keys_done > 0 and part.batch_after is not None and part.batch_after < bad[0]
        copied = conn.execute("SELECT count(*) FROM events").fetchone()
        assert copied == (part.keys_done,)
        conn.execute("UPDATE wedding_events SET status = 'draft' WHERE id = %s", bad)
        [report] = runner.execute()
        assert report.version == 10 and runner.validate() == []
        backfill = next(s for s in report.statements if s.status.startswith("BACKFILL"))
        assert backfill.rows is not None and backfill.rows > 0


def test_a_batch_that_meets_a_row_a_trigger_carried_runs_again_as_written(
        legacy_db: Database, bundle_copy: Path) -> None:
    """Each batch tries the INSERT without its ON CONFLICT DO NOTHING first. Guests written
    after the triggers but before the guests' range is read are in that range and carried
    already: the batch that meets them fails its first try, runs again as written, and copies
    each guest once."""
    bundle = paused_bundle(bundle_copy, "-- eventgate:backfill table=wedding_invitations")
    with legacy_db.connect() as conn:
        Runner(conn, bundle).execute(to=9)
    kill_in_pause(legacy_db, bundle_copy)
    with legacy_db.connect() as conn:
        added = [r[0] for r in conn.execute(
            "INSERT INTO wedding_invitations (wedding_id, guest_name, rsvp_status, party_size) "
            "SELECT id, 'carried before the range was read', 'pending', 1 FROM wedding_events "
            "ORDER BY id LIMIT 3 RETURNING id").fetchall()]
        assert conn.execute("SELECT count(*) FROM event_participants WHERE id = ANY(%s)",
                            (added,)).fetchone() == (3,)
        [report] = Runner(conn, bundle, batch_rows=50).execute()
        guests = next(s for s in report.statements
                      if s.status.startswith("BACKFILL") and "event_participants" in s.summary)
        # The batches before the guests written in the pause took the first try.
        found = re.search(r"as written from batch (\d+)$", guests.status)
        assert found and 1 < int(found[1]) <= int(guests.status.split()[1]), guests.status
        assert Runner(conn, bundle).validate() == []
        assert conn.execute(
            "SELECT count(*), count(DISTINCT id) FROM wedding_invitations WHERE id = ANY(%s)",
            (added,)).fetchone() == (3, 3)


def test_the_phases_of_010_are_read_as_written(reference_bundle: Bundle) -> None:
    script = read_phases(reference_bundle.migration(10))
    assert script.online
    assert [p.name for p in script.forward] == [
        "expand", "backfill:wedding_events", "backfill:wedding_invitations",
        "backfill:wedding_sections", "rebuild", "reattach", "verify", "switch"]
    assert [p.name for p in script.abort] == ["unhook", "delete", "restore"]
    assert script.phase("rebuild").kind == "concurrently"
    guests = script.phase("backfill:wedding_invitations")
    assert "ON CONFLICT" in guests.statements[0]
    assert guests.first_try and "CONFLICT" not in guests.first_try
    switch = script.phase("switch")
    assert switch.lock_timeout_ms == 500


@pytest.mark.parametrize("statement, first_try", [
    ("INSERT INTO t (id) SELECT id FROM s WHERE id > current_setting('eventgate.batch_after')"
     "::bigint AND id <= current_setting('eventgate.batch_upto')::bigint "
     "ON CONFLICT (id) DO NOTHING",
     "INSERT INTO t (id) SELECT id FROM s WHERE id > CAST(current_setting('eventgate.batch_after')"
     " AS bigint) AND id <= CAST(current_setting('eventgate.batch_upto') AS bigint)"),
    # DO UPDATE changes rows a plain INSERT would fail on: only DO NOTHING is tried without.
    ("INSERT INTO t (id) SELECT id FROM s WHERE id > current_setting('eventgate.batch_after')"
     "::bigint AND id <= current_setting('eventgate.batch_upto')::bigint "
     "ON CONFLICT (id) DO UPDATE SET id = excluded.id", None),
    ("UPDATE t SET a = 1 WHERE id > current_setting('eventgate.batch_after')::bigint "
     "AND id <= current_setting('eventgate.batch_upto')::bigint", None),
])
def test_a_backfill_tries_first_without_do_nothing_only(
        tmp_path: Path, statement: str, first_try: str | None) -> None:
    path = tmp_path / "010_x.sql"
    path.write_text("-- eventgate:phase one\nSELECT 1;\n-- eventgate:backfill table=s key=id\n"
                    f"{statement};\n-- eventgate:phase two\nSELECT 2;\n")
    assert read_phases(SqlFile(10, "010_x", path)).phase("backfill:s").first_try == first_try


def test_a_mistyped_annotation_is_refused_before_anything_runs(
        legacy_db: Database, bundle_copy: Path) -> None:
    path = bundle_copy / "migrations" / "010_wedding_data_migration.sql"
    path.write_text(path.read_text().replace("key=id rows=5000", "key=id row=5000", 1))
    with legacy_db.connect() as conn:
        with pytest.raises(Exception, match=r"line \d+: eventgate:backfill does not take "
                           r"`row=5000`"):
            Runner(conn, load_bundle(bundle_copy)).execute()
        assert conn.execute("SELECT to_regclass('eventgate_ledger.migration_ledger')"
                            ).fetchone() == (None,)


def test_progress_is_reported_per_batch(legacy_db: Database, reference_bundle: Bundle) -> None:
    seen: list[str] = []

    class Sink:
        def begin(self, label: str, statements: int) -> None: ...
        def statement(self, text: str) -> None: ...
        def end(self, report: object) -> None: ...
        def note(self, text: str) -> None: ...
        def batch(self, progress: object) -> None:
            seen.append(progress.line())  # type: ignore[attr-defined]

    with legacy_db.connect() as conn:
        Runner(conn, reference_bundle, progress=Sink(), batch_rows=50).execute()  # type: ignore[arg-type]
        guests = conn.execute("SELECT count(*) FROM wedding_invitations_backup").fetchone()
    assert guests is not None
    invitations = [line for line in seen if "backfill wedding_invitations" in line]
    assert len(invitations) == -(-guests[0] // 50)
    assert f"{guests[0]:,} of {guests[0]:,} rows (100 %)" in invitations[-1]
    assert "rows/s" in invitations[-1] and "ETA 0:00:00" in invitations[-1]



def test_a_run_whose_file_was_fixed_after_it_failed_is_undone_and_then_runs(
        legacy_db: Database, bundle_copy: Path, reference_bundle: Bundle) -> None:
    """The usual way a run is left part-way: a phase fails because of the file. The fixed file
    cannot resume what the broken one began, but it can undo it, held to the catalog from
    before the run."""
    path = bundle_copy / "migrations" / "010_wedding_data_migration.sql"
    verify = "-- eventgate:phase verify\n"
    path.write_text(path.read_text().replace(
        verify, f"{verify}DO $$ BEGIN RAISE EXCEPTION 'a typo in verify'; END $$;\n", 1))
    with legacy_db.connect() as conn:
        Runner(conn, reference_bundle).execute(to=9)
        before = fingerprint(conn)
        with pytest.raises(MigrationError, match="a typo in verify"):
            Runner(conn, load_bundle(bundle_copy)).execute()
        fixed = Runner(conn, reference_bundle)
        with pytest.raises(MigrationError, match="was edited while a run of it was part-way"):
            fixed.execute()
        [undone] = fixed.rollback()
        assert undone.verified == "the catalog as it was before the run began"
        assert any("undone with the abort phases of the file as it is now" in w
                   for w in fixed.warnings)
        assert differences(before, fingerprint(conn)) == []
        assert [r.version for r in fixed.execute()] == [10]
