"""Writes through the compatibility views: what the old application writes through the views
lands in the new tables and reads back exactly as the same writes on the legacy tables do, so it
keeps working during the blue-green window."""

import psycopg
import pytest

from eventgate.pg.databases import Database

pytestmark = [pytest.mark.compat, pytest.mark.destructive]

# What the old wedding application does, statement for statement. Each runs on the legacy tables
# of one database and through the views of a migrated copy of the same data.
LEGACY_APP_WRITES = [
    ("INSERT INTO wedding_events (tenant_id, slug, bride_name, groom_name, wedding_date, "
     "ceremony_time, reception_time, timezone, venue_name, venue_address, theme, status, "
     "created_at, updated_at) SELECT id, 'ayu-and-budi-2026', 'Ayu 👰', 'Budi', "
     "DATE '2026-02-14', TIME '10:00', NULL, 'Asia/Jakarta', 'Hall', '', NULL, 'draft', "
     "TIMESTAMPTZ '2026-01-01 00:00:00.000001+00', TIMESTAMPTZ '2026-01-01 00:00:00+00' "
     "FROM tenants ORDER BY id LIMIT 1 RETURNING *"),
    ("INSERT INTO wedding_invitations (wedding_id, guest_name, email, phone, rsvp_status, "
     "party_size, dietary_notes, table_number, invited_at) SELECT max(id), 'Zoë O''Brien', "
     "'zoe@example.org', NULL, 'pending', 2, '', NULL, "
     "TIMESTAMPTZ '2026-01-02 10:00:00.123456+00' FROM wedding_events RETURNING *"),
    ("UPDATE wedding_invitations SET rsvp_status = 'accepted', party_size = 3, "
     "responded_at = TIMESTAMPTZ '2026-01-03 08:00:00+00', dietary_notes = NULL, "
     "table_number = 7 WHERE id = 4 RETURNING *"),
    # Moved into a DST gap: 02:30 does not exist in New York on that day.
    ("UPDATE wedding_events SET wedding_date = DATE '2025-03-09', ceremony_time = TIME '02:30', "
     "timezone = 'America/New_York' WHERE id = (SELECT min(id) FROM wedding_events) "
     "RETURNING *"),
    # Seeded weddings by their order, never the one inserted above (the newest id): a database
    # of twenty weddings gave the insert id 21.
    ("UPDATE wedding_events SET theme = 'garden', venue_name = NULL, wedding_date = NULL "
     "WHERE id = (SELECT id FROM wedding_events ORDER BY id OFFSET 1 LIMIT 1) RETURNING *"),
    ("INSERT INTO wedding_sections (wedding_id, section_type, title, content, position, "
     "is_visible) VALUES (3, 'faq', 'FAQ', E'Q?\\tA!', 99, false) RETURNING *"),
    "UPDATE wedding_sections SET position = position + 1 WHERE wedding_id = 3 RETURNING *",
    "DELETE FROM wedding_invitations WHERE id = 6 RETURNING *",
    "DELETE FROM wedding_sections WHERE id = 8 RETURNING *",
]
TABLES = ("wedding_events", "wedding_invitations", "wedding_sections")


def _apply(conn: psycopg.Connection) -> list[list[tuple[object, ...]]]:
    return [sorted(conn.execute(statement).fetchall(), key=repr)
            for statement in LEGACY_APP_WRITES]


def _contents(conn: psycopg.Connection) -> dict[str, list[tuple[object, ...]]]:
    return {t: conn.execute(f"SELECT * FROM {t} ORDER BY id").fetchall() for t in TABLES}


def test_the_old_applications_writes_read_back_as_on_the_legacy_tables(
        legacy_db: Database, migrated_db: Database) -> None:
    with legacy_db.connect() as legacy, migrated_db.connect() as migrated:
        before_returned, after_returned = _apply(legacy), _apply(migrated)
        assert all(before_returned), "every write must touch a row, or it proves nothing"
        assert after_returned == before_returned
        assert _contents(migrated) == _contents(legacy)


def test_writes_through_the_views_land_in_the_generic_tables(migrated_db: Database) -> None:
    with migrated_db.connect() as conn:
        returned = _apply(conn)
        # By the ids the inserts returned: seeded data may hold the same slug in another tenant
        # or a guest of the same name (seed 742337 of large-guest-lists did).
        wedding_id, guest_id = returned[0][0][0], returned[1][0][0]
        event = conn.execute(
            "SELECT event_type, title, start_date = TIMESTAMPTZ '2026-02-14 03:00:00+00', "
            "metadata FROM events WHERE id = %s", (wedding_id,)).fetchone()
        guest = conn.execute(
            "SELECT p.role, p.tenant_id = e.tenant_id, p.metadata FROM event_participants p "
            "JOIN events e ON e.id = p.event_id WHERE p.id = %s", (guest_id,)).fetchone()
    assert event == ("wedding", "Ayu 👰 & Budi", True, {
        "bride_name": "Ayu 👰", "groom_name": "Budi", "ceremony_time": "10:00:00",
        "reception_time": None, "theme": None})
    assert guest == ("guest", True, {"dietary_notes": "", "table_number": None})


def test_an_insert_that_omits_columns_gets_the_legacy_defaults(migrated_db: Database) -> None:
    with migrated_db.connect() as conn:
        row = conn.execute("INSERT INTO wedding_invitations (wedding_id, guest_name) "
                           "VALUES (2, 'Walk-in') RETURNING id, rsvp_status, party_size, "
                           "invited_at IS NOT NULL").fetchone()
        highest = conn.execute("SELECT max(id) FROM wedding_invitations_backup").fetchone()
    assert row is not None and highest is not None
    assert row[0] == highest[0] + 1 and row[1:] == ("pending", 1, True)


def test_an_invitation_for_a_wedding_that_does_not_exist_is_refused(
        migrated_db: Database) -> None:
    with migrated_db.connect() as conn, pytest.raises(
            psycopg.errors.ForeignKeyViolation, match="wedding 999999 does not exist"):
        conn.execute("INSERT INTO wedding_invitations (wedding_id, guest_name) "
                     "VALUES (999999, 'Nobody')")


def test_deleting_a_wedding_through_the_view_takes_its_guests_and_sections(
        migrated_db: Database) -> None:
    with migrated_db.connect() as conn:
        conn.execute("DELETE FROM wedding_events WHERE id = 5")
        left = conn.execute(
            "SELECT (SELECT count(*) FROM wedding_invitations WHERE wedding_id = 5), "
            "(SELECT count(*) FROM wedding_sections WHERE wedding_id = 5), "
            "(SELECT count(*) FROM events WHERE id = 5)").fetchone()
    assert left == (0, 0, 0)
