"""The big comparisons split over reader sessions that share one snapshot
(eventgate.checks.key_ranges) find exactly what one query finds: the same outcome, summary,
samples and figures, for rows missing, extra (below and above the legacy key's span), changed,
and for a clean table; and rows written after the snapshot was taken are seen by neither."""

import threading
from pathlib import Path

import psycopg
import pytest

from eventgate.bundle import Bundle
from eventgate.checks.counts import row_count_parity
from eventgate.checks.key_ranges import Readers, in_ranges, split
from eventgate.checks.legacy_queries import load_queries, same_results
from eventgate.checks.parity import content_parity
from eventgate.checks.result import CheckResult
from eventgate.checks.views import view_matches_legacy
from eventgate.pg.databases import Database

pytestmark = pytest.mark.destructive


def _checks(conn: psycopg.Connection, bundle: Bundle, table: str,
            readers: Readers | None) -> list[CheckResult]:
    mapping, log = bundle.mapping[table], bundle.expectations.change_log
    return [content_parity(conn, mapping, log=log, readers=readers),
            row_count_parity(conn, mapping, log=log, readers=readers),
            view_matches_legacy(conn, mapping, log=log, readers=readers)]


def _break(conn: psycopg.Connection) -> None:
    # Behind the change record, as a defect of the migration would leave the rows.
    with conn.transaction():
        conn.execute("SET LOCAL session_replication_role = replica")
        conn.execute("DELETE FROM event_participants WHERE id IN (3, 40)")
        conn.execute("UPDATE event_participants SET display_name = display_name || '!' "
                     "WHERE id IN (7, 41)")
        for new_id in ("-5", "(SELECT max(id) + 1000 FROM event_participants)"):
            conn.execute(
                "INSERT INTO event_participants (id, event_id, tenant_id, role, display_name, "
                "email, phone, rsvp_status, party_size, metadata, invited_at, responded_at) "
                f"SELECT {new_id}, event_id, tenant_id, role, display_name, email, phone, "
                "rsvp_status, party_size, metadata, invited_at, responded_at "
                "FROM event_participants WHERE id = 12")


@pytest.mark.parametrize("broken", [False, True], ids=["clean", "broken"])
def test_split_over_readers_finds_what_one_query_finds(migrated_db: Database, bundle: Bundle,
                                                       broken: bool) -> None:
    readers = Readers(migrated_db.dsn, 2, split_from_rows=0)
    with migrated_db.connect() as conn:
        if broken:
            _break(conn)
        conn.execute("ANALYZE")
        for table in ("wedding_invitations", "wedding_sections"):
            whole = _checks(conn, bundle, table, None)
            parts = _checks(conn, bundle, table, readers)
            for one, split_up in zip(whole, parts, strict=True):
                assert split_up.to_json() == one.to_json(), (one.explain(), split_up.explain())
                if broken and table == "wedding_invitations":
                    assert not one.passed, one.explain()
                elif not broken:
                    assert one.passed, one.explain()


def test_readers_see_the_callers_snapshot_not_later_writes(migrated_db: Database) -> None:
    readers = Readers(migrated_db.dsn, 2)
    with migrated_db.connect() as conn, migrated_db.connect() as writer, conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        before = conn.execute("SELECT count(*) FROM event_sections").fetchone()
        writer.execute("DELETE FROM event_sections WHERE id IN (SELECT id FROM "
                       "event_sections ORDER BY id LIMIT 3)")
        seen = in_ranges(conn, readers, split(1, 10**6, 4), lambda s, r: s.execute(
            "SELECT count(*) FROM event_sections t WHERE "
            + r.predicate(psycopg.sql.SQL("t.id")).as_string(s)).fetchone())
    assert before is not None
    assert sum(row[0] for row in seen if row) == before[0]


def test_a_reader_that_fails_fails_the_caller(migrated_db: Database) -> None:
    readers = Readers(migrated_db.dsn, 2)
    started = threading.Event()

    def work(session: psycopg.Connection, _: object) -> None:
        started.set()
        session.execute("SELECT 1 / 0")

    with migrated_db.connect() as conn, conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        with pytest.raises(psycopg.errors.DivisionByZero):
            in_ranges(conn, readers, split(1, 100, 4), work)
    assert started.is_set()


@pytest.mark.parametrize("broken", [False, True], ids=["clean", "broken"])
def test_legacy_queries_read_side_by_side_answer_as_one_session_does(
        migrated_db: Database, bundle: Bundle, broken: bool) -> None:
    queries = load_queries(Path(__file__).parents[2] / "fixtures" / "legacy_queries.toml")
    mappings, log = list(bundle.mapping.values()), bundle.expectations.change_log
    with migrated_db.connect() as conn:
        if broken:
            _break(conn)
        failed = 0
        for query in queries:
            alone = same_results(conn, query, mappings, log)
            beside = same_results(conn, query, mappings, log, readers=Readers(migrated_db.dsn, 2))
            assert beside.to_json() == alone.to_json(), (alone.explain(), beside.explain())
            failed += not alone.passed
    assert (failed > 0) == broken
