"""Parity and compatibility gates go red: every defect class they exist for, injected into a
private copy of the migrated database, turns its gate red naming the row and the column."""

from pathlib import Path

import psycopg
import pytest

from eventgate.bundle import Bundle
from eventgate.checks.counts import row_count_parity
from eventgate.checks.integrity import declared_jsonb_keys, keys_one_to_one, same_value
from eventgate.checks.legacy_queries import load_queries, same_results
from eventgate.checks.parity import content_parity
from eventgate.checks.views import view_matches_legacy, view_shape
from eventgate.pg.databases import Database

pytestmark = pytest.mark.destructive
QUERIES = Path(__file__).resolve().parents[2] / "fixtures" / "legacy_queries.toml"


def _parity(conn: psycopg.Connection, bundle: Bundle, table: str):  # type: ignore[no-untyped-def]
    return content_parity(conn, bundle.mapping[table])


def test_a_deleted_row_is_named_missing(migrated_db: Database, bundle: Bundle) -> None:
    with migrated_db.connect() as conn:
        conn.execute("DELETE FROM event_sections WHERE id = 11")
        result = _parity(conn, bundle, "wedding_sections")
    assert not result.passed
    assert result.summary.startswith("wedding_sections: 1 missing, 0 extra, 0 changed")
    assert "wedding_sections id=11: missing after migration" in result.details


def test_a_duplicated_row_is_named_extra(migrated_db: Database, bundle: Bundle) -> None:
    with migrated_db.connect() as conn:
        new_id = conn.execute(
            "INSERT INTO event_sections (event_id, section_type, title, content, position, "
            "is_visible) SELECT event_id, section_type, title, content, position, is_visible "
            "FROM event_sections WHERE id = 12 RETURNING id").fetchone()
        result = _parity(conn, bundle, "wedding_sections")
    assert new_id is not None and not result.passed
    assert "0 missing, 1 extra" in result.summary
    assert f"wedding_sections id={new_id[0]}: migrated row with no legacy row" in result.details


def test_an_altered_column_is_named_with_before_and_after(migrated_db: Database,
                                                          bundle: Bundle) -> None:
    with migrated_db.connect() as conn:
        conn.execute("UPDATE event_participants SET party_size = party_size + 1 WHERE id = 21")
        before = conn.execute("SELECT party_size FROM wedding_invitations_backup "
                              "WHERE id = 21").fetchone()
        result = _parity(conn, bundle, "wedding_invitations")
    assert before is not None and not result.passed
    assert result.summary == "wedding_invitations: 0 missing, 0 extra, 1 changed (party_size: 1)"
    assert result.details == (f"wedding_invitations id=21: party_size: '{before[0]}' -> "
                              f"'{before[0] + 1}' (in event_participants.party_size)",)


def test_a_start_shifted_by_one_hour_is_caught(migrated_db: Database, bundle: Bundle) -> None:
    with migrated_db.connect() as conn:
        conn.execute("UPDATE events SET start_date = start_date + interval '1 hour' WHERE id = 1")
        result = _parity(conn, bundle, "wedding_events")
    assert not result.passed
    assert "(wedding_date: 1)" in result.summary
    sample = result.data["samples"][0]
    assert sample["key"] == 1 and sample["columns"]["wedding_date"]["where"] == (
        "events.start_date (derived)")
    # The DST-gap wedding: 02:30 in New York on 2025-03-09 does not exist; it is read as 03:30
    # EDT (07:30 UTC), and the shifted value is an hour later.
    assert sample["columns"]["wedding_date"]["before"] == "2025-03-09 07:30:00+00"
    assert sample["columns"]["wedding_date"]["after"] == "2025-03-09 08:30:00+00"


def test_a_dropped_jsonb_key_is_not_mistaken_for_null(migrated_db: Database,
                                                      bundle: Bundle) -> None:
    with migrated_db.connect() as conn:
        key_row = conn.execute("SELECT id FROM events WHERE metadata->'theme' = 'null' "
                               "ORDER BY id LIMIT 1").fetchone()
        assert key_row is not None
        conn.execute("UPDATE events SET metadata = metadata - 'theme' WHERE id = %s", key_row)
        result = _parity(conn, bundle, "wedding_events")
    assert not result.passed and "(theme: 1)" in result.summary
    assert (f"wedding_events id={key_row[0]}: theme: 'null' -> '<key missing>' "
            "(in events.metadata->'theme')") in result.details


def test_a_null_turned_into_an_empty_string_is_caught(migrated_db: Database,
                                                      bundle: Bundle) -> None:
    with migrated_db.connect() as conn:
        row = conn.execute("UPDATE events SET venue_name = '' WHERE id = (SELECT min(id) FROM "
                           "events WHERE venue_name IS NULL) RETURNING id").fetchone()
        result = _parity(conn, bundle, "wedding_events")
    assert row is not None and not result.passed
    assert f"wedding_events id={row[0]}: venue_name: None -> '' (in events.venue_name)" in (
        result.details)


def test_a_participant_moved_to_another_tenant_is_caught(migrated_db: Database,
                                                         bundle: Bundle) -> None:
    rule = bundle.expectations.same_values[0]
    with migrated_db.connect() as conn:
        # A migration without the composite foreign key could do this; the data check must not
        # rely on the constraint being there.
        conn.execute("ALTER TABLE event_participants "
                     "DROP CONSTRAINT event_participants_event_tenant_fkey")
        conn.execute("UPDATE event_participants p SET tenant_id = (SELECT t.id FROM tenants t "
                     "WHERE t.id <> p.tenant_id ORDER BY t.id LIMIT 1) WHERE p.id = 30")
        result = same_value(conn, rule)
    assert not result.passed
    assert result.summary.startswith("1 event_participants rows have a tenant_id other than")
    assert result.details[0].startswith("event_participants id=30: tenant_id ")


@pytest.mark.parametrize("invalid_index", [False, True],
                         ids=["no unique index", "an invalid unique index"])
def test_duplicate_keys_are_named(migrated_db: Database, bundle: Bundle,
                                  invalid_index: bool) -> None:
    # A unique index the server keeps lets the gate skip the read; one a failed CREATE INDEX
    # CONCURRENTLY left INVALID keeps nothing, and the keys are read.
    with migrated_db.connect() as conn:
        conn.execute("ALTER TABLE wedding_sections_backup DROP CONSTRAINT "
                     "wedding_sections_pkey")
        conn.execute("INSERT INTO wedding_sections_backup SELECT * FROM wedding_sections_backup "
                     "WHERE id = 5")
        if invalid_index:
            with pytest.raises(psycopg.errors.UniqueViolation):
                conn.execute("CREATE UNIQUE INDEX CONCURRENTLY sections_id_again "
                             "ON wedding_sections_backup (id)")
        result = keys_one_to_one(conn, bundle.mapping["wedding_sections"])
    assert not result.passed
    assert "wedding_sections_backup.id: 1 keys NULL or duplicated, e.g. 5 (2 rows)" in (
        result.details)


def test_an_undeclared_jsonb_key_is_named(migrated_db: Database, bundle: Bundle) -> None:
    with migrated_db.connect() as conn:
        conn.execute("""UPDATE event_participants SET metadata = metadata || '{"vip": true}'
                        WHERE id IN (1, 2)""")
        result = declared_jsonb_keys(conn, bundle.mapping["wedding_invitations"])
    assert not result.passed
    assert ("event_participants.metadata key 'vip' in 2 rows is not declared in mapping.toml"
            in result.details)


def test_a_view_missing_a_column_is_named(migrated_db: Database, bundle: Bundle) -> None:
    with migrated_db.connect() as conn:
        conn.execute("DROP VIEW wedding_sections")
        conn.execute("CREATE VIEW wedding_sections AS SELECT s.id, s.event_id AS wedding_id, "
                     "s.section_type, s.title, s.content, s.position FROM event_sections s")
        result = view_shape(conn, bundle.mapping["wedding_sections"])
    assert not result.passed
    assert result.summary.endswith("column 7 is_visible boolean is missing from the view")


def test_a_view_column_with_a_changed_type_is_named(migrated_db: Database,
                                                    bundle: Bundle) -> None:
    with migrated_db.connect() as conn:
        definition = conn.execute("SELECT pg_get_viewdef('wedding_events')").fetchone()
        assert definition is not None
        conn.execute("DROP VIEW wedding_events")
        conn.execute("CREATE VIEW wedding_events AS " + definition[0].replace(
            "'theme'::text))::character varying(50)", "'theme'::text))::character varying(80)"))
        result = view_shape(conn, bundle.mapping["wedding_events"])
    assert not result.passed
    assert ("column theme is character varying(80) in the view, character varying(50) in the "
            "legacy table") in result.summary


def test_a_view_whose_join_duplicates_rows_is_caught(migrated_db: Database,
                                                     bundle: Bundle) -> None:
    with migrated_db.connect() as conn:
        conn.execute("DROP VIEW wedding_sections")
        # Joining on the tenant instead of the event: every section appears once per wedding
        # of its tenant.
        conn.execute("CREATE VIEW wedding_sections AS SELECT s.id, s.event_id AS wedding_id, "
                     "s.section_type, s.title, s.content, s.position, s.is_visible "
                     "FROM event_sections s JOIN events e0 ON e0.id = s.event_id "
                     "JOIN events e ON e.tenant_id = e0.tenant_id AND e.event_type = 'wedding'")
        result = view_matches_legacy(conn, bundle.mapping["wedding_sections"])
        query = next(q for q in load_queries(QUERIES) if q.id == "visible-sections-of-a-wedding")
        answered = same_results(conn, query, list(bundle.mapping.values()))
    assert not result.passed
    assert "0 legacy rows missing or changed in the view" in result.summary
    assert "view rows not in the legacy table" in result.summary
    assert not answered.passed


def test_other_event_types_are_never_counted_as_weddings(migrated_db: Database,
                                                         bundle: Bundle) -> None:
    with migrated_db.connect() as conn:
        conn.execute("""
            WITH e AS (INSERT INTO events (tenant_id, event_type, title, slug)
                       SELECT id, 'conference', 'DevConf', 'devconf' FROM tenants LIMIT 1
                       RETURNING id, tenant_id)
            INSERT INTO event_participants (event_id, tenant_id, role, display_name)
            SELECT id, tenant_id, 'guest', 'Speaker Sam' FROM e""")
        conn.execute("INSERT INTO event_sections (event_id, section_type) SELECT id, 'agenda' "
                     "FROM events WHERE event_type = 'conference'")
        results = [check(conn, bundle.mapping[t]) for t in
                   ("wedding_events", "wedding_invitations", "wedding_sections")
                   for check in (content_parity, row_count_parity, view_matches_legacy)]
    failed = [r.explain() for r in results if not r.passed]
    assert failed == []


def test_a_date_that_does_not_survive_the_round_trip_is_caught(migrated_db: Database,
                                                               bundle: Bundle) -> None:
    # As if 010 had accepted a ceremony at 24:00: start_date agrees with the derivation, yet
    # the view reads the wedding back a day late.
    with migrated_db.connect() as conn:
        conn.execute("UPDATE wedding_events_backup SET ceremony_time = '24:00' WHERE id = 40")
        conn.execute("UPDATE events e SET start_date = (b.wedding_date + b.ceremony_time) "
                     "AT TIME ZONE b.timezone FROM wedding_events_backup b "
                     "WHERE e.id = b.id AND b.id = 40")
        result = _parity(conn, bundle, "wedding_events")
    assert not result.passed
    assert "wedding_date (read back): 1" in result.summary
    assert "ceremony_time: 1" in result.summary  # the jsonb copy still says what it was


def test_keys_a_unique_index_keeps_are_named_with_it(migrated_db: Database,
                                                     bundle: Bundle) -> None:
    with migrated_db.connect() as conn:
        result = keys_one_to_one(conn, bundle.mapping["wedding_sections"])
    assert result.passed
    assert "event_sections.id: NOT NULL and unique index event_sections_pkey" in result.details
