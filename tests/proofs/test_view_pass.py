"""A compatibility view's row equality and NOT NULL columns read together
(eventgate.checks.views.view_pass) answer exactly as the two gates do alone: the same outcome,
summary, samples and SQL, on differently shaped data, clean and broken, with writes after the
migration (whose rows the equality leaves out and the NULL gate still asks), with a key the
catalog no longer keeps unique, in one session and split over readers."""

from collections.abc import Callable

import psycopg
import pytest

from eventgate.bundle import Bundle
from eventgate.checks.key_ranges import Readers
from eventgate.checks.views import view_matches_legacy, view_nullability, view_pass
from eventgate.pg.databases import Database

pytestmark = pytest.mark.destructive
# A wedding whose metadata lost its bride: the view reads bride_name as NULL, which the legacy
# table never allowed (the check constraint 009 adds would refuse it, so it goes first).
UNREADABLE = "ALTER TABLE events DROP CONSTRAINT events_wedding_metadata_readable"
LOSE_BRIDE = ("UPDATE events SET metadata = metadata - 'bride_name' WHERE id = "
              "(SELECT {} (id) FROM events WHERE event_type = 'wedding')")


def _behind_the_record(conn: psycopg.Connection, *statements: str) -> None:
    # As a defect of the migration would leave the rows: no trigger records them.
    with conn.transaction():
        conn.execute("SET LOCAL session_replication_role = replica")
        for statement in statements:
            conn.execute(statement)


def _null_behind_the_record(conn: psycopg.Connection) -> None:
    _behind_the_record(conn, UNREADABLE, LOSE_BRIDE.format("max"))


def _null_written_since(conn: psycopg.Connection) -> None:
    # Through the record: the equality leaves the row out, the NULL gate must still see it.
    conn.execute(UNREADABLE)
    conn.execute(LOSE_BRIDE.format("min"))


def _written_since(conn: psycopg.Connection) -> None:
    conn.execute("UPDATE events SET title = title || ' (moved)' WHERE id IN "
                 "(SELECT id FROM events WHERE event_type = 'wedding' ORDER BY id LIMIT 3)")
    conn.execute("DELETE FROM events WHERE id = (SELECT max(id) FROM events WHERE "
                 "event_type = 'wedding' AND NOT EXISTS (SELECT 1 FROM event_participants p "
                 "WHERE p.event_id = events.id) AND NOT EXISTS (SELECT 1 FROM event_sections "
                 "s WHERE s.event_id = events.id))")


def _key_repeated(conn: psycopg.Connection) -> None:
    # Without the backup's primary key the catalog no longer promises one row per key: the
    # NULL gate then reads the view on its own.
    constraint = conn.execute(
        "SELECT conname FROM pg_constraint WHERE conrelid = 'wedding_events_backup'::regclass "
        "AND contype = 'p'").fetchone()
    assert constraint is not None
    _behind_the_record(
        conn, f'ALTER TABLE wedding_events_backup DROP CONSTRAINT "{constraint[0]}" CASCADE',
        UNREADABLE, LOSE_BRIDE.format("max"))


def _emptied(conn: psycopg.Connection) -> None:
    _behind_the_record(conn, "DELETE FROM wedding_events_backup",
                       "DELETE FROM event_sections", "DELETE FROM event_participants",
                       "DELETE FROM events")


# Each case: how it breaks the data, and the outcomes it leaves (equality, NOT NULL columns).
CASES: dict[str, tuple[Callable[[psycopg.Connection], None] | None, tuple[str, str]]] = {
    "clean": (None, ("passed", "passed")),
    "null-behind-the-record": (_null_behind_the_record, ("failed", "failed")),
    "null-written-since": (_null_written_since, ("passed", "failed")),
    "written-since": (_written_since, ("passed", "passed")),
    "key-repeated": (_key_repeated, ("failed", "failed")),
    "empty": (_emptied, ("not proven", "not proven")),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("shape", ["session", "single-tenant", "giant-tenant"])
def test_one_read_of_the_view_answers_as_both_gates_do_alone(
        shape: str, case: str, shape_copy: Callable[[str], Database],
        bundle: Bundle) -> None:
    db = shape_copy(shape)
    breaks, expected = CASES[case]
    mapping, log = bundle.mapping["wedding_events"], bundle.expectations.change_log
    with db.connect() as conn:
        if breaks is not None:
            breaks(conn)
        conn.execute("ANALYZE")
        for readers in (None, Readers(db.dsn, 2, split_from_rows=0)):
            alone = (view_matches_legacy(conn, mapping, log=log, readers=readers),
                     view_nullability(conn, mapping, readers=readers))
            passed = view_pass(conn, mapping, log=log, readers=readers)
            for one, joint in zip(alone, (passed.equality, passed.nullability),
                                  strict=True):
                assert joint.to_json() == one.to_json(), (one.explain(), joint.explain())
            # The cases do break what they say, so the equality is not of passes alone.
            assert tuple(r.outcome for r in alone) == expected, [r.explain() for r in alone]
