"""Every gate can fail: each test breaks the gate's subject in a private copy of the migrated
database and asserts the gate goes red with a message naming what broke."""

from pathlib import Path

import pytest

from eventgate.bundle import Bundle, load_bundle
from eventgate.checks.counts import row_count_parity
from eventgate.checks.indexes import required_index
from eventgate.checks.key_ranges import Readers
from eventgate.checks.lock_lint import lint_bundle
from eventgate.checks.parallel_views import view_goes_parallel
from eventgate.checks.schema import mapping_covers_legacy, required_relations
from eventgate.checks.views import view_matches_legacy, view_nullability
from eventgate.errors import BundleError
from eventgate.pg.databases import Database

pytestmark = pytest.mark.destructive


def test_row_count_parity_names_the_deleted_invitation(migrated_db: Database,
                                                       bundle: Bundle) -> None:
    with migrated_db.connect() as conn:
        victim = conn.execute("DELETE FROM event_participants WHERE id = "
                              "(SELECT min(id) FROM event_participants) RETURNING id").fetchone()
        assert victim is not None
        result = row_count_parity(conn, bundle.mapping["wedding_invitations"])
    assert not result.passed
    assert "wedding_invitations" in result.summary and "1 missing" in result.summary
    assert f"not migrated: {victim[0]}" in result.explain()


def test_row_count_parity_names_a_duplicated_wedding(migrated_db: Database,
                                                     bundle: Bundle) -> None:
    with migrated_db.connect() as conn:
        conn.execute("INSERT INTO events (tenant_id, event_type, title, slug, metadata) "
                     "SELECT tenant_id, event_type, title, slug || '-copy', metadata FROM events "
                     "WHERE id = 10")
        result = row_count_parity(conn, bundle.mapping["wedding_events"])
    assert not result.passed
    assert "1 extra" in result.summary
    assert "in events but not in the legacy table" in result.explain()


def test_view_check_names_a_dropped_view(migrated_db: Database, bundle: Bundle) -> None:
    with migrated_db.connect() as conn:
        conn.execute("DROP VIEW wedding_sections")
        result = view_matches_legacy(conn, bundle.mapping["wedding_sections"])
    assert not result.passed
    assert "the compatibility view wedding_sections does not exist" in result.summary


def test_view_check_shows_the_changed_row(migrated_db: Database, bundle: Bundle) -> None:
    with migrated_db.connect() as conn:
        conn.execute("UPDATE event_participants SET display_name = 'Changed Guest' WHERE id = 7")
        result = view_matches_legacy(conn, bundle.mapping["wedding_invitations"])
    assert not result.passed
    assert "1 legacy rows missing or changed in the view" in result.summary
    explained = result.explain()
    assert "only in wedding_invitations_backup: (7," in explained
    assert "only in view wedding_invitations: (7," in explained and "Changed Guest" in explained


def test_view_check_catches_a_view_missing_a_column(migrated_db: Database,
                                                    bundle: Bundle) -> None:
    with migrated_db.connect() as conn:
        conn.execute("DROP VIEW wedding_sections")
        conn.execute("CREATE VIEW wedding_sections AS SELECT id, event_id AS wedding_id, "
                     "section_type, title, content, position FROM event_sections")
        result = view_matches_legacy(conn, bundle.mapping["wedding_sections"])
    assert not result.passed
    assert "columns do not line up" in result.summary


def test_index_check_names_a_dropped_index(migrated_db: Database, bundle: Bundle) -> None:
    wanted = next(i for i in bundle.expectations.indexes if i.name == "events_tenant_start_idx")
    with migrated_db.connect() as conn:
        conn.execute("DROP INDEX events_tenant_start_idx")
        result = required_index(conn, wanted)
    assert not result.passed
    assert result.summary == ("events has no valid, non-partial btree index on (tenant_id, "
                              "start_date), expected as events_tenant_start_idx")


def test_index_check_catches_the_right_name_on_the_wrong_column(migrated_db: Database,
                                                                bundle: Bundle) -> None:
    wanted = next(i for i in bundle.expectations.indexes if i.name == "events_tenant_start_idx")
    with migrated_db.connect() as conn:
        conn.execute("DROP INDEX events_tenant_start_idx")
        conn.execute("CREATE INDEX events_tenant_start_idx ON events (start_date)")
        result = required_index(conn, wanted)
    assert not result.passed
    assert "events_tenant_start_idx exists but is events_tenant_start_idx (start_date)" in (
        result.explain())


def test_index_check_wants_uniqueness_where_declared(migrated_db: Database,
                                                     bundle: Bundle) -> None:
    wanted = next(i for i in bundle.expectations.indexes if i.unique)
    with migrated_db.connect() as conn:
        conn.execute(f"DROP INDEX {wanted.name}")
        conn.execute(f"CREATE INDEX {wanted.name} ON {wanted.table} ({', '.join(wanted.columns)})")
        result = required_index(conn, wanted)
    assert not result.passed
    assert f"unique btree index on ({', '.join(wanted.columns)})" in result.summary


def test_schema_check_names_a_missing_table(migrated_db: Database, bundle: Bundle) -> None:
    with migrated_db.connect() as conn:
        conn.execute("ALTER TABLE wedding_sections_backup RENAME TO wedding_sections_old")
        result = required_relations(conn, bundle.expectations)
    assert not result.passed
    assert "wedding_sections_backup: expected a table, found nothing" in result.explain()


def test_mapping_check_names_an_unmapped_legacy_column(migrated_db: Database,
                                                       bundle: Bundle) -> None:
    with migrated_db.connect() as conn:
        conn.execute("ALTER TABLE wedding_invitations_backup ADD COLUMN plus_one_name text")
        result = mapping_covers_legacy(conn, bundle.mapping["wedding_invitations"])
    assert not result.passed
    assert ("legacy column wedding_invitations.plus_one_name is neither mapped nor declared "
            "dropped") in result.explain()


def test_index_check_refuses_a_partial_unique_index(migrated_db: Database,
                                                    bundle: Bundle) -> None:
    wanted = next(i for i in bundle.expectations.indexes if i.name == "events_tenant_slug_uidx")
    with migrated_db.connect() as conn:
        conn.execute("DROP INDEX events_tenant_slug_uidx")
        conn.execute("CREATE UNIQUE INDEX events_tenant_slug_uidx ON events (tenant_id, slug) "
                     "WHERE false")
        result = required_index(conn, wanted)
    assert not result.passed
    assert ("events_tenant_slug_uidx exists but is events_tenant_slug_uidx unique "
            "(tenant_id, slug) WHERE false") in result.explain()


def test_index_check_refuses_a_brin_index(migrated_db: Database, bundle: Bundle) -> None:
    wanted = next(i for i in bundle.expectations.indexes
                  if i.name == "event_sections_event_position_idx")
    with migrated_db.connect() as conn:
        conn.execute("DROP INDEX event_sections_event_position_idx")
        conn.execute("CREATE INDEX event_sections_event_position_idx ON event_sections "
                     "USING brin (event_id, position)")
        result = required_index(conn, wanted)
    assert not result.passed
    assert "is event_sections_event_position_idx brin (event_id, position)" in result.explain()


def test_row_count_parity_sees_a_lost_row_hidden_by_an_invented_one(migrated_db: Database,
                                                                    bundle: Bundle) -> None:
    with migrated_db.connect() as conn:
        conn.execute("UPDATE event_sections SET id = id + 100000 WHERE id = 9")
        result = row_count_parity(conn, bundle.mapping["wedding_sections"])
    assert not result.passed
    assert result.summary.endswith("(same count, different keys)")
    assert "id in wedding_sections_backup but not migrated: 9" in result.details
    assert "id in event_sections but not in the legacy table: 100009" in result.details


def test_the_statistics_gate_names_a_table_the_planner_knows_nothing_about(
        migrated_db: Database) -> None:
    from eventgate.checks.statistics import has_statistics

    with migrated_db.connect() as conn:
        # What a bulk load without ANALYZE leaves behind (the superuser may clear them).
        conn.execute("DELETE FROM pg_statistic WHERE starelid = 'event_participants'::regclass")
        result = has_statistics(conn, "event_participants")
        untouched = has_statistics(conn, "events")
    assert result.outcome == "failed"
    assert "event_participants has no planner statistics" in result.summary
    assert untouched.passed


def _with_waivers(bundle_copy: Path, waivers: str) -> None:
    expectations = bundle_copy / "expectations.toml"
    expectations.write_text(expectations.read_text(encoding="utf-8") + waivers,
                            encoding="utf-8")


def test_lock_lint_names_a_blocking_index_on_a_legacy_table(bundle_copy: Path) -> None:
    migration = bundle_copy / "migrations" / "008_enhanced_indexing.sql"
    sql = migration.read_text(encoding="utf-8")
    migration.write_text(sql + "CREATE INDEX wedding_invitations_status_idx "
                         "ON wedding_invitations (rsvp_status);\n", encoding="utf-8")
    line = sql.count("\n") + 1
    result = lint_bundle(load_bundle(bundle_copy))
    assert not result.passed
    assert "1 squawk findings not waived" in result.summary
    assert (f"not waived: migrations/008_enhanced_indexing.sql:{line}:1 "
            "require-concurrent-index-creation: ") in result.explain()
    assert "squawk " in (result.sql or "") and "--assume-in-transaction" in (result.sql or "")


def test_lock_lint_fails_on_a_stale_waiver(bundle_copy: Path) -> None:
    _with_waivers(bundle_copy, '\n[[lint.waivers]]\nrule = "ban-drop-column"\n'
                  'file = "migrations/008_enhanced_indexing.sql"\n'
                  'reason = "008 drops no column: this waiver covers nothing"\n')
    result = lint_bundle(load_bundle(bundle_copy))
    assert not result.passed
    assert "1 stale waivers" in result.summary
    assert ("stale waiver: ban-drop-column in migrations/008_enhanced_indexing.sql covers no "
            "finding of squawk") in result.explain()


def test_lock_lint_refuses_a_waiver_without_a_reason(bundle_copy: Path) -> None:
    _with_waivers(bundle_copy, '\n[[lint.waivers]]\nrule = "ban-drop-column"\n'
                  'file = "migrations/008_enhanced_indexing.sql"\n')
    with pytest.raises(BundleError, match=r"\[\[lint.waivers\]\] #\d+ \(ban-drop-column\): "
                       "gives no reason"):
        load_bundle(bundle_copy)


@pytest.mark.parametrize("split_up", [False, True], ids=["one-query", "split"])
@pytest.mark.parametrize(("shown_twice", "hidden"), [(5, None), (5, 9)],
                         ids=["a-row-twice", "a-row-twice-another-hidden"])
def test_view_check_counts_a_row_the_view_shows_twice_as_except_all_does(
        migrated_db: Database, bundle: Bundle, shown_twice: int, hidden: int | None,
        split_up: bool) -> None:
    """A view that repeats a row has every row's equal partner on a join by the key: the joined
    read must notice the repeated key and leave the counting to EXCEPT ALL."""
    mapping = bundle.mapping["wedding_sections"]
    readers = Readers(migrated_db.dsn, 2, split_from_rows=0) if split_up else None
    with migrated_db.connect() as conn:
        row = conn.execute("SELECT pg_get_viewdef('wedding_sections')").fetchone()
        assert row is not None
        body = row[0].rstrip().rstrip(";")
        hide = f" WHERE id <> {hidden}" if hidden is not None else ""
        conn.execute(f"CREATE OR REPLACE VIEW wedding_sections AS SELECT * FROM ({body}) v{hide}"
                     f" UNION ALL SELECT * FROM ({body}) v WHERE id = {shown_twice}")
        conn.execute("ANALYZE")
        expected = [conn.execute(f"SELECT count(*) FROM (SELECT * FROM {a} EXCEPT ALL "
                                 f"SELECT * FROM {b}) d").fetchone()
                    for a, b in (("wedding_sections_backup", "wedding_sections"),
                                 ("wedding_sections", "wedding_sections_backup"))]
        result = view_matches_legacy(conn, mapping, readers=readers)
    lost, added = (int(n[0]) for n in expected if n)
    assert (lost, added) == ((0, 1) if hidden is None else (1, 1))
    assert not result.passed
    assert (f"{lost} legacy rows missing or changed in the view, {added} view rows not in the "
            "legacy table") in result.summary
    assert f"only in view wedding_sections: ({shown_twice}," in result.explain()


def test_the_parallel_gate_names_an_unsafe_function_in_a_policy(migrated_db: Database,
                                                                 bundle: Bundle) -> None:
    mapping = bundle.mapping["wedding_invitations"]
    with migrated_db.connect() as conn:
        assert view_goes_parallel(conn, mapping).passed  # the control
        conn.execute("ALTER FUNCTION tenant_unscoped() PARALLEL UNSAFE")
        result = view_goes_parallel(conn, mapping)
        # The check put its settings back.
        assert conn.execute("SHOW parallel_setup_cost").fetchone() == ("1000",)
    assert not result.passed
    assert "no parallel plan even with parallelism free" in result.summary
    assert "tenant_unscoped()" in result.summary and "PARALLEL SAFE" in result.summary


@pytest.mark.parametrize("split", [False, True], ids=["one-session", "split"])
def test_the_nulls_gate_names_a_required_column_the_view_returns_null(
        migrated_db: Database, bundle: Bundle, split: bool) -> None:
    mapping = bundle.mapping["wedding_events"]
    with migrated_db.connect() as conn:
        # A wedding whose metadata lost its bride: the view reads bride_name as NULL, which the
        # legacy table never allowed (the check constraint 009 adds would refuse it).
        conn.execute("ALTER TABLE events DROP CONSTRAINT events_wedding_metadata_readable")
        conn.execute("UPDATE events SET metadata = metadata - 'bride_name' WHERE id = "
                     "(SELECT max(id) FROM events WHERE event_type = 'wedding')")
        readers = Readers(migrated_db.dsn, 2, split_from_rows=0) if split else None
        result = view_nullability(conn, mapping, readers=readers)
    assert not result.passed
    assert "bride_name: 1 NULL rows" in result.summary, result.summary
