"""Content parity, row counts and the declared jsonb keys read together
(eventgate.checks.table_pass) answer exactly as the three gates do alone: the same outcome,
summary, samples, figures and SQL, on differently shaped data, clean and broken, with keys the
catalog keeps unique and with keys it does not, with writes after the migration, in one session
and split over readers."""

from collections.abc import Callable

import psycopg
import pytest
from psycopg import sql

from eventgate.bundle import Bundle
from eventgate.checks.counts import row_count_parity
from eventgate.checks.integrity import declared_jsonb_keys
from eventgate.checks.key_ranges import Readers
from eventgate.checks.parity import content_parity
from eventgate.checks.table_pass import table_pass
from eventgate.checks.views import view_matches_legacy
from eventgate.pg.databases import Database

pytestmark = pytest.mark.destructive
COPY_OF_12 = ("INSERT INTO event_participants (id, event_id, tenant_id, role, display_name, "
              "email, phone, rsvp_status, party_size, metadata, invited_at, responded_at) "
              "SELECT {id}, event_id, tenant_id, role, display_name, email, phone, "
              "rsvp_status, party_size, metadata, invited_at, responded_at "
              "FROM event_participants WHERE id = (SELECT min(id) FROM event_participants)")


def _behind_the_record(conn: psycopg.Connection, *statements: str) -> None:
    # As a defect of the migration would leave the rows: no trigger records them.
    with conn.transaction():
        conn.execute("SET LOCAL session_replication_role = replica")
        for statement in statements:
            conn.execute(statement)


def _lost_extra_changed(conn: psycopg.Connection) -> None:
    _behind_the_record(
        conn, "DELETE FROM event_participants WHERE id IN (SELECT id FROM event_participants "
        "ORDER BY id OFFSET 3 LIMIT 2)",
        "UPDATE event_participants SET display_name = display_name || '!', metadata = "
        "metadata || '{\"x\": 1}' WHERE id IN (SELECT id FROM event_participants ORDER BY id "
        "DESC LIMIT 3)",
        COPY_OF_12.format(id="-5"),
        COPY_OF_12.format(id="(SELECT max(id) + 1000 FROM event_participants)"))


def _changed_only(conn: psycopg.Connection) -> None:
    _behind_the_record(conn, "UPDATE event_participants SET party_size = party_size + 1 "
                       "WHERE id = (SELECT max(id) FROM event_participants)")


def _key_repeated(conn: psycopg.Connection) -> None:
    # Without the primary key the catalog no longer promises one row per key: each range then
    # runs both gates' own queries.
    constraint = conn.execute(
        "SELECT conname FROM pg_constraint WHERE conrelid = 'event_participants'::regclass "
        "AND contype = 'p'").fetchone()
    assert constraint is not None
    _behind_the_record(
        conn, f'ALTER TABLE event_participants DROP CONSTRAINT "{constraint[0]}" CASCADE',
        COPY_OF_12.format(id="(SELECT min(id) FROM event_participants)"))


def _written_since(conn: psycopg.Connection) -> None:
    # Through the record: the old application's writes, which both gates leave out.
    conn.execute("UPDATE wedding_invitations SET guest_name = guest_name || ' jr' "
                 "WHERE id IN (SELECT id FROM wedding_invitations ORDER BY id LIMIT 4)")
    conn.execute("DELETE FROM wedding_invitations WHERE id = (SELECT max(id) FROM "
                 "wedding_invitations)")


def _undeclared_key_behind_the_record(conn: psycopg.Connection) -> None:
    _behind_the_record(conn, "UPDATE event_participants SET metadata = metadata || "
                       "'{\"undeclared\": true}' WHERE id = (SELECT min(id) FROM "
                       "event_participants)")


def _undeclared_key_recorded(conn: psycopg.Connection) -> None:
    # Written since the migration, so parity leaves the row out: the jsonb gate still reads it.
    conn.execute("UPDATE event_participants SET metadata = metadata || '{\"undeclared\": 1}' "
                 "WHERE id = (SELECT max(id) FROM event_participants)")


def _emptied(conn: psycopg.Connection) -> None:
    _behind_the_record(conn, "DELETE FROM wedding_invitations_backup",
                       "DELETE FROM event_participants")


CASES: dict[str, tuple[Callable[[psycopg.Connection], None] | None, str]] = {
    "clean": (None, "passed"),
    "lost-extra-changed": (_lost_extra_changed, "failed"),
    "changed-only": (_changed_only, "failed"),
    "key-repeated": (_key_repeated, "failed"),
    "written-since": (_written_since, "passed"),
    "undeclared-jsonb-key": (_undeclared_key_behind_the_record, "failed"),
    "undeclared-jsonb-key-written-since": (_undeclared_key_recorded, "failed"),
    "empty": (_emptied, "not proven"),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("shape", ["session", "single-tenant", "large-guest-lists"])
def test_one_read_answers_as_both_gates_do_alone(
        shape: str, case: str, shape_copy: Callable[[str], Database],
        bundle: Bundle) -> None:
    db = shape_copy(shape)
    breaks, expected = CASES[case]
    mapping, log = bundle.mapping["wedding_invitations"], bundle.expectations.change_log
    with db.connect() as conn:
        if breaks is not None:
            breaks(conn)
        conn.execute("ANALYZE")
        for readers in (None, Readers(db.dsn, 2, split_from_rows=0)):
            alone = (content_parity(conn, mapping, log=log, readers=readers),
                     row_count_parity(conn, mapping, log=log, readers=readers),
                     declared_jsonb_keys(conn, mapping))
            passed = table_pass(conn, mapping, log=log, readers=readers)
            together = (passed.parity, passed.counts, passed.jsonb_keys)
            for one, joint in zip(alone, together, strict=True):
                assert joint.to_json() == one.to_json(), (one.explain(), joint.explain())
            # The datasets do break what they say, so the equality is not of passes alone.
            outcomes = {r.outcome for r in alone}
            assert expected in outcomes, [r.explain() for r in alone]


def test_the_sql_to_reproduce_keeps_the_change_record_while_the_reads_leave_it_out(
        migrated_db: Database, bundle: Bundle) -> None:
    """With the record holding no key of the table, parity and the views check read without
    its anti-join (Changes.unchanged_here); the SQL a person runs later to reproduce a finding
    keeps it, since by then the record may hold keys."""
    mapping, log = bundle.mapping["wedding_invitations"], bundle.expectations.change_log
    assert log is not None
    with migrated_db.connect() as conn:
        assert conn.execute(sql.SQL("SELECT count(*) FROM {}").format(
            sql.Identifier(log.schema, log.name))).fetchone() == (0,)
        found = (content_parity(conn, mapping, log=log),
                 table_pass(conn, mapping, log=log).parity,
                 view_matches_legacy(conn, mapping, log=log))
    for result in found:
        assert result.passed, result.explain()
        assert f'"{log.name}"' in (result.sql or ""), result.sql
