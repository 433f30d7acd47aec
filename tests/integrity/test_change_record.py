"""The change record: rows written after migration 010 (by the old application through the
compatibility views, or by the engine directly) are told apart from the migration's own rows.
The parity gates leave them out of both sides and count them by origin; a row the migration got
wrong is still caught, with writers busy around it; the integrity gates still check every row;
and 010's rollback after such writes is still verified and takes the record with it."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from eventgate.bundle import Bundle, ChangeLog, TableMapping, default_bundle_path, load_bundle
from eventgate.checks import integrity
from eventgate.checks.changes import record_exists
from eventgate.checks.counts import row_count_parity
from eventgate.checks.parity import content_parity
from eventgate.checks.result import CheckResult
from eventgate.checks.views import view_matches_legacy
from eventgate.errors import MigrationError
from eventgate.migrate.runner import Runner
from eventgate.pg.databases import Database, Databases
from eventgate.selftest import apply_overlay, load_variant

pytestmark = [pytest.mark.integrity, pytest.mark.destructive]

SABOTAGE = Path(__file__).resolve().parents[2] / "fixtures" / "sabotage"
BY_ORIGIN = re.compile(r"changed since the migration: (\d+) by the old application, "
                       r"(\d+) by the engine")
Check = Callable[..., CheckResult]
PARITY: tuple[Check, ...] = (content_parity, row_count_parity, view_matches_legacy)


@dataclass
class Targets:
    """Rows of the seeded legacy database each writer works on, disjoint between writers."""

    wedding: int
    tenant: object
    guests: list[int]
    doomed_guests: list[int]
    sections: list[int]
    doomed_sections: list[int]
    weddings: list[int]
    engine_guests: list[int]
    engine_doomed_guests: list[int]
    engine_weddings: list[int]
    engine_doomed_wedding: int


@dataclass
class Writes:
    legacy: int = 0
    engine: int = 0
    legacy_weddings: list[int] = field(default_factory=list)
    engine_participants: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _targets(db: Database) -> Targets:
    with db.connect() as conn:
        wedding, tenant = conn.execute(
            "SELECT w.id, w.tenant_id FROM wedding_events w WHERE EXISTS (SELECT 1 FROM "
            "wedding_invitations i WHERE i.wedding_id = w.id) ORDER BY id LIMIT 1").fetchone() \
            or (0, None)
        guests, sections, weddings = ([r[0] for r in conn.execute(
            f"SELECT id FROM {table} ORDER BY id LIMIT {n}").fetchall()] for table, n in (
            ("wedding_invitations", 80), ("wedding_sections", 40), ("wedding_events", 12)))
    return Targets(wedding, tenant, guests[:20], guests[20:40], sections[:20], sections[20:],
                   weddings[:6], guests[40:60], guests[60:], weddings[6:11], weddings[11])


def legacy_round(conn: psycopg.Connection, n: int, t: Targets, writes: Writes) -> None:
    """One round of the old application's writes, through the legacy names only."""
    conn.execute("INSERT INTO wedding_invitations (wedding_id, guest_name, email) VALUES "
                 "(%s, %s, %s)", (t.wedding, f"legacy guest {n}", f"legacy{n}@example.org"))
    conn.execute("UPDATE wedding_invitations SET dietary_notes = %s WHERE id = %s",
                 (f"legacy note {n}", t.guests[n % len(t.guests)]))
    if n % 3 == 0:
        row = conn.execute(
            "INSERT INTO wedding_events (tenant_id, slug, bride_name, groom_name, wedding_date,"
            " timezone) VALUES (%s, %s, 'Lea', 'Gus', '2031-05-04', 'Europe/Lisbon') "
            "RETURNING id", (t.tenant, f"legacy-wedding-{n}")).fetchone()
        assert row is not None
        writes.legacy_weddings.append(row[0])
        conn.execute("UPDATE wedding_events SET venue_name = %s WHERE id = %s",
                     (f"legacy venue {n}", t.weddings[n % len(t.weddings)]))
        conn.execute("INSERT INTO wedding_sections (wedding_id, section_type, title) VALUES "
                     "(%s, 'story', %s)", (t.wedding, f"legacy section {n}"))
        conn.execute("UPDATE wedding_sections SET title = %s WHERE id = %s",
                     (f"legacy title {n}", t.sections[n % len(t.sections)]))
    if n % 4 == 0 and t.doomed_guests and t.doomed_sections:
        conn.execute("DELETE FROM wedding_invitations WHERE id = %s", (t.doomed_guests.pop(),))
        conn.execute("DELETE FROM wedding_sections WHERE id = %s", (t.doomed_sections.pop(),))
    if n % 9 == 0 and len(writes.legacy_weddings) > 1:
        conn.execute("DELETE FROM wedding_events WHERE id = %s",
                     (writes.legacy_weddings.pop(0),))
    writes.legacy += 1


def engine_round(conn: psycopg.Connection, n: int, t: Targets, writes: Writes) -> None:
    """One round of the engine's writes, straight to the new tables."""
    row = conn.execute(
        "INSERT INTO events (tenant_id, event_type, title, slug, start_date, timezone, metadata)"
        " VALUES (%s, 'wedding', 'Eve & Finn', %s, '2032-01-02 10:00+00', 'UTC', jsonb_build_"
        "object('bride_name', 'Eve', 'groom_name', 'Finn', 'ceremony_time', NULL, "
        "'reception_time', NULL, 'theme', NULL)) RETURNING id",
        (t.tenant, f"engine-wedding-{n}")).fetchone()
    assert row is not None
    guest = conn.execute(
        "INSERT INTO event_participants (event_id, tenant_id, role, display_name, metadata) "
        "VALUES (%s, %s, 'guest', %s, '{\"dietary_notes\": null, \"table_number\": null}') "
        "RETURNING id", (row[0], t.tenant, f"engine guest {n}")).fetchone()
    assert guest is not None
    writes.engine_participants.append(guest[0])
    conn.execute("UPDATE events SET venue_name = %s WHERE id = %s",
                 (f"engine venue {n}", t.engine_weddings[n % len(t.engine_weddings)]))
    conn.execute("UPDATE event_participants SET party_size = party_size + 1 WHERE id = %s",
                 (t.engine_guests[n % len(t.engine_guests)],))
    if t.engine_doomed_guests:
        conn.execute("DELETE FROM event_participants WHERE id = %s",
                     (t.engine_doomed_guests.pop(),))
    if n == 3:  # a migrated wedding, its guests and sections going with it (ON DELETE CASCADE)
        conn.execute("DELETE FROM events WHERE id = %s", (t.engine_doomed_wedding,))
    writes.engine += 1


def _keep_writing(dsn: str, stop: threading.Event, writes: Writes,
                  write: Callable[[psycopg.Connection, int], None],
                  ready: Callable[[psycopg.Connection], bool]) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        n = 0
        while not stop.is_set():
            try:
                if not ready(conn):
                    time.sleep(0.01)
                    continue
                n += 1
                write(conn, n)
            except psycopg.Error as exc:
                writes.errors.append(f"write {n}: {exc}".strip())


def _wait_for(condition: Callable[[], bool], what: str, writes: Writes,
              timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert not writes.errors, f"waiting for {what}, a write failed: {writes.errors[0]}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def _finished(conn: psycopg.Connection, bundle: Bundle) -> bool:
    """The final migration committed (an online 010 creates its record only then, but a
    sabotaged one may create it earlier)."""
    row = conn.execute(
        "SELECT to_regclass('eventgate_ledger.migration_ledger') IS NOT NULL").fetchone()
    return bool(row and row[0] and conn.execute(
        "SELECT count(*) FROM eventgate_ledger.migration_ledger WHERE version = %s",
        (bundle.final_migration,)).fetchone() == (1,))


def migrate_under_traffic(db: Database, bundle: Bundle) -> Writes:
    """006-010 while the old application writes through the legacy names; the engine joins in
    once 010 has committed (before that, its tables hold no weddings)."""
    targets, writes, stop = _targets(db), Writes(), threading.Event()
    log = bundle.expectations.change_log
    threads = [
        threading.Thread(target=_keep_writing, args=(
            db.dsn, stop, writes, lambda c, n: legacy_round(c, n, targets, writes),
            lambda c: True)),
        threading.Thread(target=_keep_writing, args=(
            db.dsn, stop, writes, lambda c, n: engine_round(c, n, targets, writes),
            lambda c: writes.engine < 8 and record_exists(c, log)
            and _finished(c, bundle))),
    ]
    for thread in threads:
        thread.start()
    try:
        _wait_for(lambda: writes.legacy >= 10, "the old application's first writes", writes)
        with db.connect() as conn:
            Runner(conn, bundle).execute()
        after = writes.legacy
        _wait_for(lambda: writes.legacy >= after + 15 and writes.engine >= 8,
                  "writes after the migration", writes)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    assert writes.errors == []
    return writes


@pytest.fixture(scope="module")
def trafficked(databases: Databases, legacy_template: Database,
               bundle: Bundle) -> Iterator[tuple[Database, Writes]]:
    """The legacy database migrated while both applications write, left as they left it."""
    db = databases.create("change_record", template=legacy_template.name)
    try:
        yield db, migrate_under_traffic(db, bundle)
    finally:
        databases.drop(db)


@pytest.fixture
def trafficked_copy(databases: Databases, trafficked: tuple[Database, Writes]
                    ) -> Iterator[Database]:
    """A copy of it, to break or roll back."""
    db = databases.create("change_record_copy", template=trafficked[0].name)
    try:
        yield db
    finally:
        databases.drop(db)


def _migrated(bundle: Bundle) -> list[TableMapping]:
    return [m for m in bundle.mapping.values() if m.backup and m.view]


def _log(bundle: Bundle) -> ChangeLog:
    assert bundle.expectations.change_log is not None, "the bundle declares no change record"
    return bundle.expectations.change_log


def test_writes_since_the_migration_are_left_out_and_counted_by_origin(
        trafficked: tuple[Database, Writes], bundle: Bundle) -> None:
    db, _ = trafficked
    log = _log(bundle)
    totals = {"legacy": 0, "engine": 0}
    with db.connect() as conn:
        for mapping in _migrated(bundle):
            for check in PARITY:
                result = check(conn, mapping, log=log)
                assert result.passed, result.explain()
                counts = BY_ORIGIN.search(result.summary)
                assert counts, result.summary
                assert result.data["changed_since_migration"] == {
                    k: v for k, v in (("engine", int(counts[2])), ("legacy", int(counts[1])))
                    if v}
            for origin, n in result.data["changed_since_migration"].items():
                totals[origin] += n
            # Without the record the same writes read as the migration's defects.
            assert not content_parity(conn, mapping).passed
    assert totals["legacy"] > 0 and totals["engine"] > 0, totals


def test_each_write_is_recorded_with_its_origin_and_none_of_the_migrations_rows(
        trafficked: tuple[Database, Writes], bundle: Bundle) -> None:
    db, writes = trafficked
    with db.connect() as conn:
        recorded = dict(conn.execute(
            "SELECT p.display_name, array_agg(DISTINCT c.origin) FROM event_participants p "
            "JOIN wedding_compat.row_changes c ON c.relation = 'event_participants' "
            "AND c.row_key = p.id::text WHERE p.display_name ~ '^(legacy|engine) guest ' "
            "GROUP BY 1").fetchall())
        # What the old application inserted before 010 took its lock was copied with the rest.
        copied = {r[0] for r in conn.execute(
            "SELECT guest_name FROM wedding_invitations_backup "
            "WHERE guest_name LIKE 'legacy guest %'").fetchall()}
        inserted = {r[0] for r in conn.execute(
            "SELECT display_name FROM event_participants "
            "WHERE display_name ~ '^(legacy|engine) guest '").fetchall()}
        in_010 = conn.execute(
            "SELECT count(*) FROM wedding_compat.row_changes c WHERE c.xmin = (SELECT xmin "
            "FROM pg_class WHERE oid = 'wedding_compat.row_changes'::regclass)").fetchone()
    assert copied and inserted - copied, "no write landed on each side of the migration"
    assert all(recorded.get(name) == ["legacy"] for name in inserted - copied
               if name.startswith("legacy")), recorded
    assert all(recorded.get(name) == ["engine"] for name in inserted
               if name.startswith("engine")), recorded
    assert not copied & recorded.keys(), "rows the migration copied are in the change record"
    assert len([n for n in inserted if n.startswith("engine")]) == writes.engine
    assert in_010 == (0,)


def test_the_integrity_gates_still_check_every_row_later_ones_included(
        trafficked: tuple[Database, Writes], bundle: Bundle) -> None:
    db, _ = trafficked
    expected = bundle.expectations
    with db.connect() as conn:
        results = [integrity.keys_one_to_one(conn, m) for m in _migrated(bundle)]
        results += [integrity.declared_jsonb_keys(conn, m) for m in _migrated(bundle)]
        results += [integrity.no_orphans(conn, r) for r in expected.references]
        results += [integrity.same_value(conn, r) for r in expected.same_values]
        results += [integrity.unique_values(conn, r) for r in expected.unique]
        assert [r.explain() for r in results if not r.passed] == []
    # A row the engine writes later, recorded, is still held to the rules the migration's are.
    mapping = next(m for m in _migrated(bundle) if m.target == "event_participants")
    with db.connect(autocommit=False) as conn:
        conn.execute("UPDATE event_participants SET metadata = metadata || '{\"vip\": true}' "
                     "WHERE display_name = 'engine guest 2'")
        result = integrity.declared_jsonb_keys(conn, mapping)
        conn.rollback()
    assert not result.passed and "key 'vip' in 1 rows" in result.details[0], result.explain()


def test_a_defect_that_bypasses_the_record_is_caught_among_the_writes(
        trafficked_copy: Database, bundle: Bundle) -> None:
    log = _log(bundle)
    mapping = next(m for m in _migrated(bundle) if m.target == "event_participants")
    with trafficked_copy.connect() as conn:
        before = conn.execute("SELECT count(*) FROM wedding_compat.row_changes").fetchone()
        victim = conn.execute(
            "SELECT b.id, b.guest_name FROM wedding_invitations_backup b WHERE NOT EXISTS ("
            "SELECT 1 FROM wedding_compat.row_changes c WHERE c.relation = 'event_participants'"
            " AND c.row_key = b.id::text) ORDER BY b.id DESC LIMIT 1").fetchone()
        assert victim is not None
        # As the migration would have left it: no trigger fires, so nothing is recorded.
        conn.execute("SET session_replication_role = replica")
        conn.execute("UPDATE event_participants SET display_name = left(display_name, 3) "
                     "WHERE id = %s", (victim[0],))
        conn.execute("RESET session_replication_role")
        assert conn.execute("SELECT count(*) FROM wedding_compat.row_changes").fetchone() == before
        result = content_parity(conn, mapping, log=log)
    assert not result.passed
    assert result.summary.startswith("wedding_invitations: 0 missing, 0 extra, 1 changed "
                                     "(guest_name: 1); changed since the migration: ")
    assert result.details == (f"wedding_invitations id={victim[0]}: guest_name: "
                              f"{victim[1]!r} -> {victim[1][:3]!r} (in "
                              "event_participants.display_name)",)
    assert "wedding_compat" in (result.sql or "")  # the exclusion is part of what reproduces it


def test_a_copy_that_skips_rows_is_stopped_by_010s_own_verification(
        proof_legacy_db: Database, tmp_path: Path) -> None:
    """Rows the copy leaves out never reach the gates: 010's verify phase names them and the
    legacy names are never switched."""
    sabotaged = load_bundle(apply_overlay(
        load_variant(SABOTAGE / "010-skips-declined-invitations.toml"), default_bundle_path(),
        tmp_path / "bundle"))
    with proof_legacy_db.connect() as conn:
        declined = [r[0] for r in conn.execute(
            "SELECT id FROM wedding_invitations WHERE rsvp_status = 'declined' ORDER BY id "
            "LIMIT 3").fetchall()]
        with pytest.raises(MigrationError, match="wedding_invitations not copied to "
                           f"event_participants \\(ids\\): {', '.join(map(str, declined))}"):
            Runner(conn, sabotaged).execute()
        assert conn.execute("SELECT to_regclass('wedding_invitations_backup')").fetchone() == (
            None,)


@pytest.mark.parametrize("variant", ["010-truncates-guest-names"])
def test_a_sabotaged_010_is_still_caught_with_writes_after_it(
        proof_legacy_db: Database, tmp_path: Path, variant: str) -> None:
    sabotaged = load_bundle(apply_overlay(load_variant(SABOTAGE / f"{variant}.toml"),
                                          default_bundle_path(), tmp_path / "bundle"))
    log = _log(sabotaged)
    mapping = sabotaged.mapping["wedding_invitations"]
    targets, writes = _targets(proof_legacy_db), Writes()
    with proof_legacy_db.connect() as conn:
        Runner(conn, sabotaged).execute()
        for n in range(1, 13):
            legacy_round(conn, n, targets, writes)
            engine_round(conn, n, targets, writes)
        # The defects the record cannot excuse: the migrated rows nobody wrote to since.
        untouched = ("NOT EXISTS (SELECT 1 FROM wedding_compat.row_changes c WHERE "
                     "c.relation = 'event_participants' AND c.row_key = b.id::text)")
        truncated = conn.execute("SELECT count(*) FROM wedding_invitations_backup b WHERE "
                                 f"char_length(guest_name) > 20 AND {untouched}").fetchone()
        results = [check(conn, mapping, log=log) for check in PARITY]
    assert truncated is not None
    parity, counts, view = results
    # Truncated names keep the count and the keys; lost rows change them.
    assert not parity.passed and not view.passed and (
        counts.passed == (variant == "010-truncates-guest-names")), [
        r.explain() for r in results]
    changes = parity.data["changed_since_migration"]
    assert changes.get("legacy", 0) > 0 and changes.get("engine", 0) > 0, changes
    assert truncated[0] > 0
    assert parity.data["changed_by_column"] == {"guest_name": truncated[0]}, parity.explain()


def test_rolling_back_010_after_the_writes_is_verified_and_drops_the_record(
        trafficked_copy: Database, bundle: Bundle) -> None:
    log = _log(bundle)
    with trafficked_copy.connect() as conn:
        in_views = {r[0] for r in conn.execute(
            "SELECT guest_name FROM wedding_invitations "
            "WHERE guest_name ~ '^(legacy|engine) guest '").fetchall()}
        reports = Runner(conn, bundle).rollback()
        assert [r.version for r in reports] == [10] and reports[0].verified, reports
        assert not record_exists(conn, log)
        triggers = conn.execute("SELECT count(*) FROM pg_trigger t JOIN pg_proc p ON p.oid = "
                                "t.tgfoid WHERE p.proname = 'record_row_change'").fetchone()
        restored = {r[0] for r in conn.execute(
            "SELECT guest_name FROM wedding_invitations "
            "WHERE guest_name ~ '^(legacy|engine) guest '").fetchall()}
    assert triggers == (0,)
    assert in_views and restored == in_views


def test_a_record_written_by_the_migration_itself_fails_the_parity_gates(
        proof_legacy_db: Database, bundle_copy: Path) -> None:
    """A 010 that installs its triggers before the copy (in its expand phase, a transaction of
    its own; the batches follow in theirs) records every row it copies; left out, they would
    hide all its defects, so the gates refuse such a record."""
    path = bundle_copy / "migrations" / "010_wedding_data_migration.sql"
    text = path.read_text(encoding="utf-8")
    block = text.index("-- The change record:")
    end = text.index("-- eventgate:abort")
    copy = text.index("-- The rows that were there before the triggers")
    path.write_text(text[:copy] + text[block:end] + "\n" + text[copy:block] + text[end:],
                    encoding="utf-8")
    blind = load_bundle(bundle_copy)
    with proof_legacy_db.connect() as conn:
        Runner(conn, blind).execute()
        results = [check(conn, m, log=_log(blind)) for m in _migrated(blind) for check in PARITY]
    assert all(not r.passed and "written by the migration itself" in r.summary
               for r in results), [r.explain() for r in results]


def test_a_database_migrated_without_the_record_counts_every_difference(
        migrated_db: Database, bundle: Bundle) -> None:
    """As if migrated by an older 010: the declared record is absent, so nothing is excused,
    and the results say so."""
    log = _log(bundle)
    mapping = next(m for m in _migrated(bundle) if m.target == "events")
    with migrated_db.connect() as conn:
        for table in ("events", "event_participants", "event_sections"):
            conn.execute(f"DROP TRIGGER row_changes_record ON {table}")
        conn.execute("DROP FUNCTION wedding_compat.record_row_change()")
        conn.execute("DROP TABLE wedding_compat.row_changes")
        clean = content_parity(conn, mapping, log=log)
        conn.execute("UPDATE wedding_events SET venue_name = 'later' WHERE id = 5")
        results = [check(conn, mapping, log=log) for check in (content_parity,
                                                               view_matches_legacy)]
    assert clean.passed and clean.summary.endswith(
        "no change record (wedding_compat.row_changes is not in this database): every "
        "difference counts as the migration's"), clean.summary
    assert clean.data["change_record_present"] is False
    assert all(not r.passed for r in results), [r.explain() for r in results]
    assert results[0].details[0].startswith("wedding_events id=5: venue_name:")
