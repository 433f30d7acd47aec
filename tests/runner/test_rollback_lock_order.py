"""The rollback of 010 against an old-application transaction that reads a compatibility view and
then writes through it, the read-modify-write every form save does.

The runner's rollback check used to take SHARE on the views before the script ran (writes wait,
reads go on); the script then moved the views (ALTER VIEW ... SET SCHEMA), which needs ACCESS
EXCLUSIVE. A transaction that had read the view held ACCESS SHARE on it; its write waited behind
the SHARE, and the rollback's upgrade waited behind its ACCESS SHARE: PostgreSQL reported the
deadlock at once and ended the rollback's attempt. Under a steady legacy writer half the
rollbacks met it at least once, and one in a loaded run lost all six attempts to it.

Now the view's ACCESS EXCLUSIVE comes first: the rollback waits for the form's transaction, whose
write PostgreSQL lets ahead of the waiting rollback (it already holds a lock on the view), and the
rollback goes on when the form commits."""

import threading
import time

import psycopg
import pytest

from eventgate.bundle import Bundle
from eventgate.migrate.runner import Runner
from eventgate.pg.databases import Database

pytestmark = pytest.mark.destructive


def _holds_or_wants_a_view(conn: psycopg.Connection, pid: int) -> bool:
    """The rollback holds, or waits for, a lock on a view that stops writes through it."""
    row = conn.execute(
        "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
        "WHERE l.pid = %s AND c.relkind = 'v' AND l.mode IN ('ShareLock', 'AccessExclusiveLock')",
        (pid,)).fetchone()
    return bool(row and row[0])


def test_a_read_then_write_through_a_view_does_not_deadlock_the_rollback(
        migrated_db: Database, reference_bundle: Bundle) -> None:
    outcome: list[BaseException | None] = []
    with psycopg.connect(migrated_db.dsn, application_name="legacy form save") as writer, \
            psycopg.connect(migrated_db.dsn, autocommit=True) as watcher, \
            psycopg.connect(migrated_db.dsn, autocommit=True) as rolling:
        guest = writer.execute("SELECT id FROM wedding_invitations ORDER BY id LIMIT 1").fetchone()
        assert guest is not None
        pid = rolling.info.backend_pid

        def roll_back() -> None:
            try:
                Runner(rolling, reference_bundle, lock_retries=0).rollback(to=9)
                outcome.append(None)
            except BaseException as exc:  # handed to the test's thread
                outcome.append(exc)

        thread = threading.Thread(target=roll_back)
        thread.start()
        deadline = time.monotonic() + 30
        while not _holds_or_wants_a_view(watcher, pid) and not outcome:
            assert time.monotonic() < deadline, "the rollback never took its locks"
            time.sleep(0.01)
        # The form's write. It holds ACCESS SHARE on the view from its read, so PostgreSQL lets
        # it ahead of the rollback waiting there; before the fix, the write waited behind the
        # rollback's SHARE and the rollback's attempt ended as a deadlock.
        writer.execute("UPDATE wedding_invitations SET dietary_notes = 'saved' WHERE id = %s",
                       (guest[0],))
        writer.commit()
        thread.join(timeout=60)
    assert outcome == [None], outcome
    with psycopg.connect(migrated_db.dsn) as conn:
        # Back in the legacy table, with the form's write.
        assert conn.execute("SELECT c.relkind::text, i.dietary_notes FROM pg_class c, "
                            "wedding_invitations i WHERE c.oid = 'public.wedding_invitations'"
                            "::regclass AND i.id = %s", (guest[0],)).fetchone() == ("r", "saved")
