"""The guests' backfill row-locks no legacy guest: a batch holds advisory locks on the thousands
of ids it covers (its guard, taken before its snapshot), and the carrying trigger waits on the
shared lock of a guest's thousand before it updates the copy. A guest updated by the old
application while a batch copies it keeps its update; without the trigger's wait the update is
lost (the batch commits the copy it read before the update)."""

import threading
import time
from pathlib import Path

import psycopg
import pytest
from online_runs import kill_in_pause, paused_bundle

from eventgate.migrate.phases import read_phases
from eventgate.migrate.runner import Runner
from eventgate.pg.databases import Database

pytestmark = pytest.mark.destructive

SHARED_WAIT = "PERFORM pg_advisory_xact_lock_shared(1162297905, floor(OLD.id / 1000.0)::integer);"
RENAMED = "Renamed while its batch copied it"


def _wait_for(conn: psycopg.Connection, pid: int, event: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while conn.execute("SELECT wait_event FROM pg_stat_activity WHERE pid = %s",
                       (pid,)).fetchone() != (event,):
        assert time.monotonic() < deadline, f"session {pid} never waited on {event}"
        time.sleep(0.02)


@pytest.mark.parametrize("guarded", [True, False], ids=["guarded", "unguarded"])
def test_a_guest_updated_while_its_batch_copies_it_keeps_its_update(
        guarded: bool, legacy_db: Database, bundle_copy: Path) -> None:
    path = bundle_copy / "migrations" / "010_wedding_data_migration.sql"
    text = path.read_text()
    assert SHARED_WAIT in text
    if not guarded:
        path.write_text(text.replace(SHARED_WAIT, "NULL;"))
    bundle = paused_bundle(bundle_copy, "-- eventgate:backfill table=wedding_invitations")
    with legacy_db.connect() as conn:
        Runner(conn, bundle).execute(to=9)
    kill_in_pause(legacy_db, bundle_copy)
    backfill = read_phases(bundle.migration(10)).phase("backfill:wedding_invitations")
    assert backfill.guard == "wedding_compat.guard_guest_batch"
    with legacy_db.connect() as watch, legacy_db.connect(autocommit=False) as batch:
        guest = watch.execute("SELECT min(id) FROM wedding_invitations").fetchone()[0]  # type: ignore[index]
        # The batch is slow to write its copy (a second per row), so the update lands between
        # its snapshot and its commit.
        watch.execute("CREATE FUNCTION pg_temp.slow() RETURNS trigger LANGUAGE plpgsql AS "
                      "$$ BEGIN PERFORM pg_sleep(1); RETURN NEW; END $$")
        watch.execute("CREATE TRIGGER slow BEFORE INSERT ON event_participants FOR EACH ROW "
                      "EXECUTE FUNCTION pg_temp.slow()")
        batch.execute("SELECT set_config('eventgate.batch_after', %s, true), "
                      "set_config('eventgate.batch_upto', %s, true)",
                      (str(guest - 1), str(guest)))
        batch.execute("SELECT wedding_compat.guard_guest_batch(%s, %s)", (guest - 1, guest))
        copying = threading.Thread(target=lambda: batch.execute(backfill.statements[0].encode()))
        copying.start()
        _wait_for(watch, batch.info.backend_pid, "PgSleep")
        with legacy_db.connect() as writer:
            updating = threading.Thread(target=lambda: writer.execute(
                "UPDATE wedding_invitations SET guest_name = %s WHERE id = %s", (RENAMED, guest)))
            updating.start()
            if guarded:
                _wait_for(watch, writer.info.backend_pid, "advisory")
            else:
                updating.join(timeout=30)
            copying.join(timeout=30)
            batch.commit()
            updating.join(timeout=30)
            assert not updating.is_alive() and not copying.is_alive()
        watch.execute("DROP TRIGGER slow ON event_participants")
        copied = watch.execute("SELECT display_name FROM event_participants WHERE id = %s",
                               (guest,)).fetchone()
    if guarded:
        assert copied == (RENAMED,)
    else:
        assert copied is not None and copied != (RENAMED,), "the race was not reproduced"
