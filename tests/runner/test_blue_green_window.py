"""The blue-green window: the old application, running as its own non-superuser role, and the
new engine both write; migrations and rollbacks must keep both sides' data."""

import psycopg
import pytest

from eventgate.bundle import Bundle
from eventgate.errors import MigrationError
from eventgate.migrate.runner import Runner
from eventgate.pg.databases import Database

pytestmark = pytest.mark.destructive


@pytest.fixture
def legacy_app_role(legacy_db: Database) -> str:
    """A role with exactly the old application's rights on the legacy tables."""
    role = f"{legacy_db.name}_app"
    with legacy_db.connect() as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON wedding_events, "
                     f"wedding_invitations, wedding_sections TO {role}")
        conn.execute(f"GRANT SELECT ON tenants TO {role}")
        conn.execute(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role}")
    yield role
    with legacy_db.connect() as conn:
        conn.execute(f"DROP OWNED BY {role}")
        conn.execute(f"DROP ROLE {role}")


def test_the_old_applications_role_keeps_reading_and_writing_after_010(
        legacy_db: Database, reference_bundle: Bundle, legacy_app_role: str) -> None:
    with legacy_db.connect() as conn:
        Runner(conn, reference_bundle).execute()
    with psycopg.connect(legacy_db.dsn, user=legacy_app_role, autocommit=True) as app:
        assert app.execute("SELECT count(*) FROM wedding_events").fetchone() != (0,)
        new_id = app.execute("INSERT INTO wedding_invitations (wedding_id, guest_name) "
                             "VALUES (2, 'Role Guest') RETURNING id").fetchone()
        app.execute("UPDATE wedding_events SET status = 'published' WHERE id = 3")
        app.execute("DELETE FROM wedding_sections WHERE id = 2")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app.execute("SELECT count(*) FROM events")  # it never had rights on the new tables
    assert new_id is not None


def test_a_legacy_edit_keeps_what_the_engine_set(migrated_db: Database) -> None:
    with migrated_db.connect() as conn:
        # A status the wedding does not have yet, whatever the seed gave it, so that the legacy
        # edit is seen to land as well as to leave the rest alone.
        drawn = conn.execute("SELECT CASE status WHEN 'published' THEN 'draft' "
                             "ELSE 'published' END FROM events WHERE id = 30").fetchone()
        assert drawn is not None
        status = drawn[0]
        conn.execute("""UPDATE events SET title = 'Custom title',
                            start_date = TIMESTAMPTZ '2030-05-05 11:00:00+00',
                            metadata = metadata || '{"theme": "a theme the engine wrote"}'
                        WHERE id = 30""")
        conn.execute("UPDATE wedding_events SET status = %s WHERE id = 30", (status,))
        row = conn.execute("SELECT title, start_date = TIMESTAMPTZ '2030-05-05 11:00:00+00', "
                           "metadata->>'theme', status FROM events WHERE id = 30").fetchone()
    assert row == ("Custom title", True, "a theme the engine wrote", status)


@pytest.mark.parametrize("bad", [
    '{"ceremony_time": "2pm"}', '{"theme": "' + "x" * 51 + '"}', '{"bride_name": null}',
], ids=["unreadable-time", "theme-too-long", "no-bride-name"])
def test_metadata_the_old_application_could_not_read_is_refused(migrated_db: Database,
                                                                bad: str) -> None:
    with migrated_db.connect() as conn, pytest.raises(
            psycopg.errors.CheckViolation, match="events_wedding_metadata_readable"):
        conn.execute("UPDATE events SET metadata = metadata || %s::jsonb WHERE id = 31", (bad,))


def test_dates_that_would_not_survive_are_refused_by_010(legacy_db: Database,
                                                         reference_bundle: Bundle) -> None:
    with legacy_db.connect() as conn:
        conn.execute("UPDATE wedding_events SET ceremony_time = '24:00' WHERE id = 20")
        conn.execute("UPDATE wedding_events SET wedding_date = '2011-12-30', "
                     "ceremony_time = '10:00', timezone = 'Pacific/Apia' WHERE id = 21")
        with pytest.raises(MigrationError, match=r"do not exist in their time zone, or a "
                                                 r"ceremony_time of 24:00 \(ids\): 20, 21"):
            Runner(conn, reference_bundle).execute()


def test_no_id_of_a_deleted_legacy_row_is_handed_out_again(legacy_db: Database,
                                                           reference_bundle: Bundle) -> None:
    with legacy_db.connect() as conn:
        deleted = conn.execute("DELETE FROM wedding_invitations WHERE id = "
                               "(SELECT max(id) FROM wedding_invitations) RETURNING id").fetchone()
        Runner(conn, reference_bundle).execute()
        new = conn.execute("INSERT INTO wedding_invitations (wedding_id, guest_name) "
                           "VALUES (2, 'New Guest') RETURNING id").fetchone()
    assert deleted is not None and new is not None and new[0] > deleted[0]


def test_migrating_again_after_a_rollback_keeps_the_engines_events(
        legacy_db: Database, reference_bundle: Bundle) -> None:
    with legacy_db.connect() as conn:
        runner = Runner(conn, reference_bundle)
        runner.execute()
        conference = conn.execute(
            "INSERT INTO events (tenant_id, event_type, title, slug) SELECT id, 'conference', "
            "'DevConf', 'devconf' FROM tenants LIMIT 1 RETURNING id").fetchone()
        runner.rollback()  # 010 only: the conference stays in events
        wedding = conn.execute(
            "INSERT INTO wedding_events (tenant_id, slug, bride_name, groom_name) SELECT id, "
            "'late-wedding', 'A', 'B' FROM tenants LIMIT 1 RETURNING id").fetchone()
        reports = runner.execute()
        kinds = conn.execute("SELECT event_type, count(*) FROM events GROUP BY 1 "
                             "ORDER BY 1").fetchall()
    assert conference is not None and wedding is not None and wedding[0] > conference[0]
    assert [r.version for r in reports] == [10]
    assert kinds[0] == ("conference", 1)


def test_rolling_back_010_refuses_to_drop_what_only_the_engine_holds(
        migrated_db: Database, reference_bundle: Bundle) -> None:
    with migrated_db.connect() as conn:
        conn.execute("INSERT INTO event_participants (event_id, tenant_id, role, display_name) "
                     "SELECT id, tenant_id, 'host', 'Wedding Planner' FROM events WHERE id = 4")
        with pytest.raises(MigrationError) as refused:
            Runner(conn, reference_bundle).rollback()
        still = conn.execute("SELECT count(*) FROM event_participants "
                             "WHERE role = 'host'").fetchone()
    assert "wedding participants other than guests (host: 1)" in str(refused.value)
    assert still == (1,)
