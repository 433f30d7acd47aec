"""The promises to operators, kept by doing them: a gradual rollback verified step by step that
returns the database to where it was, non-wedding events exported rather than dropped, a failure
inside any migration or a killed runner leaving nothing half-done, and a rerun that completes."""

import csv
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.types.json import Jsonb

from eventgate.bundle import Bundle, load_bundle
from eventgate.checks import snapshot
from eventgate.checks.snapshot import differences, fingerprint
from eventgate.cli.main import main
from eventgate.errors import MigrationError
from eventgate.migrate.runner import Runner
from eventgate.migrate.statements import split_statements
from eventgate.pg.databases import Database, Databases

pytestmark = pytest.mark.destructive


def _applied(conn: psycopg.Connection) -> list[int]:
    return [r[0] for r in conn.execute(
        "SELECT version FROM eventgate_ledger.migration_ledger ORDER BY 1").fetchall()]


def _engine_made_events(conn: psycopg.Connection) -> None:
    """What the new application writes in the blue-green window: another event type with its
    people and sections, and an event type of its own."""
    conn.execute("INSERT INTO event_types (code, name, plugin) VALUES ('gala', 'Gala', 'gala')")
    conn.execute(
        "INSERT INTO events (tenant_id, event_type, title, slug) SELECT id, 'conference', "
        "'DevConf', 'devconf' FROM tenants ORDER BY id LIMIT 1")
    conn.execute(
        "INSERT INTO event_participants (event_id, tenant_id, role, display_name) "
        "SELECT id, tenant_id, 'speaker', 'Ada' FROM events WHERE slug = 'devconf'")
    conn.execute(
        "INSERT INTO event_sections (event_id, section_type, title, position) "
        "SELECT id, 'agenda', 'Day one', 1 FROM events WHERE slug = 'devconf'")


def test_rolling_back_past_the_engines_events_exports_them_and_says_so(
        legacy_db: Database, reference_bundle: Bundle, tmp_path: Path) -> None:
    with legacy_db.connect() as conn:
        before = fingerprint(conn)
        runner = Runner(conn, reference_bundle, export_dir=tmp_path / "exports")
        runner.execute()
        _engine_made_events(conn)
        reports = runner.rollback(to=0)
        after = fingerprint(conn)
    exported = {e.name: e for r in reports for e in r.exported}
    assert {name: e.rows for name, e in exported.items()} == {
        "events": 1, "event_participants": 1, "event_sections": 1, "event_types": 4}
    with open(exported["events"].path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["event_type"], r["slug"]) for r in rows] == [("conference", "devconf")]
    with open(exported["event_types"].path, newline="", encoding="utf-8") as fh:
        # All four: the three 006 seeded may have been changed by the engine, too.
        assert [r["code"] for r in csv.DictReader(fh)] == [
            "birthday", "conference", "gala", "wedding"]
    assert any("exported first: 1 events, 1 event_participants, 1 event_sections" in w
               for w in runner.warnings)
    # Schema and every row as before; only the legacy sequence moved on, past the engine's ids,
    # so that no id is handed out twice.
    assert [d for d in differences(before, after) if not d.startswith("sequences")] == []


def test_without_an_export_directory_the_rollback_refuses_instead(
        migrated_db: Database, reference_bundle: Bundle) -> None:
    with migrated_db.connect() as conn:
        _engine_made_events(conn)
        runner = Runner(conn, reference_bundle)
        with pytest.raises(MigrationError) as refused:
            runner.rollback(to=0)
        assert _applied(conn) == [6, 7]
        assert conn.execute("SELECT count(*) FROM events").fetchone() == (1,)
    assert "rollback of 007 would delete events the legacy schema cannot hold (conference: 1)" in (
        str(refused.value))


def test_the_cli_tells_the_operator_where_the_export_is(
        migrated_db: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with migrated_db.connect() as conn:
        _engine_made_events(conn)
    code = main(["rollback", "--dsn", migrated_db.dsn, "--to", "base",
                 "--export-dir", str(tmp_path)])
    out = " ".join(capsys.readouterr().out.split())
    assert code == 0
    assert "exported first: 1 events" in out and str(tmp_path) in out
    assert "verified — schema as before the migration" in out


def test_a_rollback_that_leaves_something_behind_is_stopped_naming_it(
        migrated_db: Database, bundle_copy: Path) -> None:
    script = bundle_copy / "rollback" / "008_enhanced_indexing_rollback.sql"
    script.write_text(script.read_text().replace("DROP INDEX events_type_status_idx;\n", ""))
    with migrated_db.connect() as conn:
        runner = Runner(conn, load_bundle(bundle_copy))
        with pytest.raises(MigrationError) as refused:
            runner.rollback(to=0)
        assert _applied(conn) == [6, 7, 8]
        assert conn.execute("SELECT to_regclass('events_tenant_start_idx')").fetchone() != (None,)
    message = str(refused.value)
    assert "the rollback of 008_enhanced_indexing.sql did not give back what was there" in message
    assert "events_type_status_idx" in message and "restore --latest" in message


@pytest.mark.parametrize("sabotage", [
    "DELETE FROM wedding_invitations WHERE id = 3;",
    "TRUNCATE wedding_sections;",
])
def test_a_rollback_step_that_touches_the_legacy_tables_is_stopped_without_reading_them(
        migrated_db: Database, bundle_copy: Path, sabotage: str) -> None:
    """Steps before 010's rollback leave the legacy tables alone; the proof is the step's own
    row counts and the tables' identity, so it costs nothing at scale, and still catches."""
    script = bundle_copy / "rollback" / "008_enhanced_indexing_rollback.sql"
    script.write_text(script.read_text() + sabotage + "\n")
    with migrated_db.connect() as conn:
        runner = Runner(conn, load_bundle(bundle_copy))
        with pytest.raises(MigrationError) as refused:
            runner.rollback(to=0)
        assert _applied(conn) == [6, 7, 8]
        assert conn.execute("SELECT count(*) FROM wedding_sections").fetchone() != (0,)
    message = str(refused.value)
    assert "the rollback of 008_enhanced_indexing.sql did not give back what was there" in message
    assert ("wedding_invitations: the rollback inserted, updated or deleted 1 rows" in message
            if "DELETE" in sabotage else "wedding_sections was dropped, replaced or truncated"
            in message), message


def test_a_rollback_of_010_that_loses_a_write_made_through_the_views_is_stopped(
        migrated_db: Database, bundle_copy: Path) -> None:
    script = bundle_copy / "rollback" / "010_wedding_data_migration_rollback.sql"
    text = script.read_text()
    start = text.index("-- wedding_invitations")
    script.write_text(text[:start] + text[text.index("-- wedding_sections"):])
    with migrated_db.connect() as conn:
        # A guest whose answer this really changes: whoever the seed made decline already
        # would be an UPDATE that writes nothing, and so nothing the rollback could lose.
        conn.execute("UPDATE wedding_invitations SET rsvp_status = 'declined' WHERE id = "
                     "(SELECT min(id) FROM wedding_invitations WHERE rsvp_status <> 'declined')")
        runner = Runner(conn, load_bundle(bundle_copy))
        with pytest.raises(MigrationError) as refused:
            runner.rollback()
        assert _applied(conn) == [6, 7, 8, 9, 10]
    assert "wedding_invitations: same" in str(refused.value)


def _inject_failure(bundle: Path, version: int) -> str:
    """Put a failing statement halfway through migration `version`, after real work."""
    path = next((bundle / "migrations").glob(f"{version:03d}_*.sql"))
    text = path.read_text()
    marker = f"injected failure inside {version:03d}"
    poison = f"DO $$ BEGIN RAISE EXCEPTION '{marker}'; END $$"
    # A migration run in phases (010): inside its first, the one transaction that is undone
    # whole; tests/runner/test_online_010.py fails it later, part-way.
    expand = "-- eventgate:phase expand\n"
    head, body = text.split(expand, 1) if expand in text else ("", text)
    statements = split_statements(body)
    cut = body.index(statements[1 if expand in text else max(1, len(statements) // 2)])
    path.write_text(head + (expand if expand in text else "") + body[:cut] + poison + ";\n\n"
                    + body[cut:])
    return marker


@pytest.fixture
def reference_db(databases: Databases, legacy_template: Database) -> Iterator[Database]:
    """A second clone of the legacy database, migrated the ordinary way for comparison."""
    db = databases.create("reference", template=legacy_template.name)
    yield db
    databases.drop(db)


def _without_clock(found: dict[str, object]) -> dict[str, object]:
    """006 stamps the event types it seeds with now(): two databases migrated a moment apart
    differ there and only there, so that table is compared by its row count."""
    content = dict(found["content"])  # type: ignore[call-overload]
    if "public.event_types" in content:
        content["public.event_types"] = (content["public.event_types"][0], "now()")
    return {**found, "content": content}


@pytest.mark.parametrize("version", [6, 7, 8, 9, 10])
def test_a_failure_inside_a_migration_leaves_the_last_complete_version_and_a_rerun_finishes(
        version: int, legacy_db: Database, reference_db: Database, bundle_copy: Path,
        reference_bundle: Bundle) -> None:
    marker = _inject_failure(bundle_copy, version)
    with reference_db.connect() as ref:
        Runner(ref, reference_bundle).execute(to=version - 1)
        expected_midway = _without_clock(fingerprint(ref))
        Runner(ref, reference_bundle).execute()
        expected_end = _without_clock(fingerprint(ref))
    with legacy_db.connect() as conn:
        with pytest.raises(MigrationError) as failed:
            Runner(conn, load_bundle(bundle_copy)).execute()
        assert marker in str(failed.value)
        assert _applied(conn) == list(range(6, version))
        assert differences(expected_midway, _without_clock(fingerprint(conn))) == []
        rerun = Runner(conn, reference_bundle)
        assert [r.version for r in rerun.execute()] == list(range(version, 11))
        assert rerun.validate() == []
        assert differences(expected_end, _without_clock(fingerprint(conn))) == []


def _runner_backends(conn: psycopg.Connection) -> list[tuple[int, str]]:
    return conn.execute(
        "SELECT pid, state FROM pg_stat_activity WHERE application_name = 'eventgate migrate' "
        "AND datname = current_database()").fetchall()


def _wait_for(predicate: object, what: str, limit_s: float = 60.0) -> None:
    deadline = time.monotonic() + limit_s
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"gave up after {limit_s:g} s waiting for {what}")
        time.sleep(0.05)


def test_a_ledger_from_before_schema_recording_still_reads_and_rolls_back(
        migrated_db: Database, reference_bundle: Bundle,
        capsys: pytest.CaptureFixture[str]) -> None:
    with migrated_db.connect() as conn:
        conn.execute("ALTER TABLE eventgate_ledger.migration_ledger "
                     "DROP COLUMN rollback_sha256, DROP COLUMN schema_before")
    assert main(["status", "--dsn", migrated_db.dsn]) == 0
    assert main(["migrate", "--validate", "--dsn", migrated_db.dsn]) == 0
    with migrated_db.connect() as conn:
        runner = Runner(conn, reference_bundle)
        reports = runner.rollback()
        assert reports[0].verified == ("schema not compared, 4 legacy relations unchanged "
                                       "(same rows)")
        assert any("predates schema recording" in w for w in runner.warnings)
        runner.execute()  # and the ledger gains the columns for the next time
        entry = runner.entries()[-1]
    assert entry.version == 10 and entry.schema_before is not None


def _recorded_by_an_earlier_version(conn: psycopg.Connection, version: int,
                                    columns: list[list[object]]) -> None:
    """The ledger row of `version` as the version before pg_attribute wrote it: the columns
    part from information_schema in place of "attributes"."""
    conn.execute("UPDATE eventgate_ledger.migration_ledger SET schema_before = "
                 "(schema_before - 'attributes') || jsonb_build_object('columns', %s::jsonb) "
                 "WHERE version = %s", (Jsonb(columns), version))


def test_a_schema_recorded_by_an_earlier_version_is_compared_as_it_was_recorded(
        migrated_db: Database, reference_bundle: Bundle) -> None:
    earlier = {"ignored": list(snapshot.IGNORED_SCHEMAS)}
    with migrated_db.connect() as conn:
        runner = Runner(conn, reference_bundle)
        runner.rollback(to=9)
        columns = [list(r) for r in conn.execute(snapshot.EARLIER_QUERIES["columns"],
                                                 earlier).fetchall()]
        runner.execute()
        _recorded_by_an_earlier_version(conn, 10, columns)
        [report] = runner.rollback(to=9)
        assert report.verified.startswith("schema as before")
        runner.execute()
        # ... and what that part records is still held to: one column it lacks is a difference.
        _recorded_by_an_earlier_version(conn, 10, columns[1:])
        with pytest.raises(MigrationError) as refused:
            runner.rollback(to=9)
    assert "schema columns: gone [], new [[" in str(refused.value)


def test_another_sessions_temporary_tables_do_not_upset_the_verification(
        legacy_db: Database, reference_bundle: Bundle) -> None:
    with legacy_db.connect() as conn, legacy_db.connect() as app:
        runner = Runner(conn, reference_bundle)
        runner.execute()
        app.execute("CREATE TEMP TABLE scratch (id int PRIMARY KEY, note text)")
        reports = runner.rollback(to=0)
    assert len(reports) == 5 and all(r.verified for r in reports)


def test_dry_run_and_execute_stop_at_to_and_refuse_an_unknown_version(
        legacy_db: Database, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["migrate", "--dry-run", "--to", "007", "--dsn", legacy_db.dsn]) == 0
    out = capsys.readouterr().out
    assert "006_event_types_foundation.sql" in out and "007_events_core_tables.sql" in out
    assert "008_enhanced_indexing.sql" not in out
    assert main(["migrate", "--execute", "--to", "011", "--dsn", legacy_db.dsn]) == 1
    assert "--to 011 is not a migration of the bundle (006, 007, 008, 009, 010)" in " ".join(
        capsys.readouterr().out.split())
    assert main(["migrate", "--execute", "--to", "008", "--dsn", legacy_db.dsn]) == 0
    with legacy_db.connect() as conn:
        assert _applied(conn) == [6, 7, 8]
