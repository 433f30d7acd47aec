"""The old application's queries after the switch: rows it (or the engine) wrote since the
migration are told apart by the bundle's change record and left out of both sides, so healthy
later writes never read as a defect, while a migrated row altered behind the record still does."""

from pathlib import Path

import psycopg
import pytest

from eventgate.bundle import Bundle
from eventgate.checks.legacy_queries import load_queries, same_results
from eventgate.pg.databases import Database

pytestmark = [pytest.mark.compat, pytest.mark.destructive]

QUERIES = load_queries(Path(__file__).resolve().parents[2] / "fixtures" / "legacy_queries.toml")


def _later_writes(conn: psycopg.Connection) -> int:
    """Writes the old application makes through the views and the engine makes directly;
    returns the busiest wedding, which they touch."""
    wedding = conn.execute("SELECT wedding_id FROM wedding_invitations GROUP BY 1 "
                           "ORDER BY count(*) DESC, 1 LIMIT 1").fetchone()
    assert wedding is not None
    conn.execute("INSERT INTO wedding_invitations (wedding_id, guest_name, email, rsvp_status, "
                 "party_size) VALUES (%s, 'Late Guest', 'late@example.org', 'accepted', 2)",
                 wedding)
    conn.execute("UPDATE wedding_invitations SET guest_name = guest_name || ' (renamed)', "
                 "dietary_notes = 'vegan' WHERE id = (SELECT min(id) FROM wedding_invitations "
                 "WHERE wedding_id = %s)", wedding)
    conn.execute("DELETE FROM wedding_invitations WHERE id = (SELECT max(id) FROM "
                 "wedding_invitations WHERE wedding_id = %s AND guest_name <> 'Late Guest')",
                 wedding)
    conn.execute("UPDATE wedding_events SET venue_name = 'Moved Hall' WHERE id = %s", wedding)
    conn.execute("UPDATE event_sections SET title = 'Edited by the engine' WHERE id = "
                 "(SELECT min(id) FROM event_sections)")
    conn.execute("UPDATE event_participants SET rsvp_status = 'declined' WHERE id = "
                 "(SELECT max(id) FROM event_participants WHERE event_id <> %s)", wedding)
    return int(wedding[0])


def test_legacy_queries_hold_while_the_applications_keep_writing(migrated_db: Database,
                                                                 bundle: Bundle) -> None:
    with migrated_db.connect() as conn:
        _later_writes(conn)
        results = [same_results(conn, q, list(bundle.mapping.values()),
                                bundle.expectations.change_log) for q in QUERIES]
    failed = [r.explain() for r in results if r.outcome == "failed"]
    assert not failed, "\n".join(failed)
    noted = [r for r in results if "changed since the migration" in r.summary]
    assert noted and all("by the old application" in r.summary for r in noted)
    assert noted[0].data["changed_since_migration"]["legacy"] >= 3


def test_a_migrated_row_altered_behind_the_record_is_still_caught(migrated_db: Database,
                                                                  bundle: Bundle) -> None:
    with migrated_db.connect() as conn:
        wedding = _later_writes(conn)
        with conn.transaction():
            # What a defect of the migration looks like: a change no application write explains.
            conn.execute("SET LOCAL session_replication_role = replica")
            victim = conn.execute(
                "UPDATE event_participants SET party_size = party_size + 1 WHERE id = "
                "(SELECT id FROM event_participants WHERE event_id <> %s ORDER BY id "
                "OFFSET 2 LIMIT 1) RETURNING id", (wedding,)).fetchone()
        assert victim is not None
        query = next(q for q in QUERIES if q.id == "guest-count-per-wedding-slug")
        result = same_results(conn, query, list(bundle.mapping.values()),
                              bundle.expectations.change_log)
    assert result.outcome == "failed", result.explain()
    assert "first difference" in result.summary
