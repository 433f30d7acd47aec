"""The migration under live traffic: the old application keeps writing through the legacy table
names while 006-010 run. Every write it was told had committed must be in the new tables
afterwards — none left behind in the *_backup tables, none twice — and its readers must see
nothing worse than a lock wait."""

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import psycopg
import pytest

from eventgate.bundle import Bundle, load_bundle
from eventgate.migrate.runner import Runner
from eventgate.pg.databases import Database

pytestmark = pytest.mark.destructive

READ_TIMEOUT_MS = 10_000
# The writer updates these many guests in turn: more than it writes after a migration ends,
# so updates a broken copy lost are not all overwritten before the writer stops.
CYCLED_GUESTS = 200
T = TypeVar("T")


@dataclass
class Traffic:
    """What the old application was told: acknowledged writes, with when they were acked."""

    inserted_guests: dict[str, tuple[int, float]] = field(default_factory=dict)  # name -> id, t
    inserted_weddings: dict[str, tuple[int, float]] = field(default_factory=dict)  # slug -> id, t
    guest_notes: dict[int, tuple[str, float]] = field(default_factory=dict)  # id -> last note
    wedding_venues: dict[int, tuple[str, float]] = field(default_factory=dict)  # id -> venue
    acks: list[float] = field(default_factory=list)  # when each write was acknowledged
    errors: list[str] = field(default_factory=list)
    read_waits_s: list[float] = field(default_factory=list)

    def ack(self) -> float:
        now = time.monotonic()
        self.acks.append(now)
        return now


def _writer(dsn: str, traffic: Traffic, stop: threading.Event, wedding_id: int,
            tenant: object, guest_ids: list[int], wedding_ids: list[int]) -> None:
    with psycopg.connect(dsn, autocommit=True, application_name="legacy app writer") as conn:
        n = 0
        while not stop.is_set():
            n += 1
            try:
                name = f"live guest {n}"
                row = conn.execute(
                    "INSERT INTO wedding_invitations (wedding_id, guest_name, email, rsvp_status) "
                    "VALUES (%s, %s, %s, 'pending') RETURNING id",
                    (wedding_id, name, f"live{n}@example.org")).fetchone()
                assert row is not None
                traffic.inserted_guests[name] = (row[0], traffic.ack())
                note = f"note {n}"
                target = guest_ids[n % len(guest_ids)]
                cur = conn.execute("UPDATE wedding_invitations SET dietary_notes = %s "
                                   "WHERE id = %s", (note, target))
                if cur.rowcount == 1:
                    traffic.guest_notes[target] = (note, traffic.ack())
                if n % 5 == 0:
                    slug = f"live-wedding-{n}"
                    row = conn.execute(
                        "INSERT INTO wedding_events (tenant_id, slug, bride_name, groom_name, "
                        "wedding_date, timezone) VALUES (%s, %s, 'Live', 'Traffic', "
                        "'2031-06-07', 'Europe/Lisbon') RETURNING id", (tenant, slug)).fetchone()
                    assert row is not None
                    traffic.inserted_weddings[slug] = (row[0], traffic.ack())
                    venue = f"venue {n}"
                    target = wedding_ids[n % len(wedding_ids)]
                    cur = conn.execute("UPDATE wedding_events SET venue_name = %s WHERE id = %s",
                                       (venue, target))
                    if cur.rowcount == 1:
                        traffic.wedding_venues[target] = (venue, traffic.ack())
            except psycopg.Error as exc:
                traffic.errors.append(f"write {n}: {exc}".strip())


def _reader(dsn: str, traffic: Traffic, stop: threading.Event, wedding_id: int) -> None:
    with psycopg.connect(dsn, autocommit=True, application_name="legacy app reader",
                         options=f"-c statement_timeout={READ_TIMEOUT_MS}") as conn:
        while not stop.is_set():
            started = time.monotonic()
            try:
                conn.execute("SELECT count(*) FROM wedding_invitations WHERE wedding_id = %s",
                             (wedding_id,)).fetchone()
                conn.execute("SELECT slug, wedding_date FROM wedding_events WHERE id = %s",
                             (wedding_id,)).fetchone()
            except psycopg.Error as exc:
                traffic.errors.append(f"read: {exc}".strip())
            traffic.read_waits_s.append(time.monotonic() - started)


def _under_traffic(db: Database, operation: Callable[[psycopg.Connection], T]
                   ) -> tuple[T, Traffic, float, float]:
    """Run `operation` while the old application writes and reads through the legacy names;
    returns its result, the traffic, and the window the operation took."""
    with db.connect() as conn:
        wedding_id, tenant = conn.execute(
            "SELECT id, tenant_id FROM wedding_events WHERE wedding_date IS NOT NULL "
            "ORDER BY id LIMIT 1").fetchone() or (None, None)
        guest_ids = [r[0] for r in conn.execute(
            "SELECT id FROM wedding_invitations ORDER BY id LIMIT %s", (CYCLED_GUESTS,)).fetchall()]
        wedding_ids = [r[0] for r in conn.execute(
            "SELECT id FROM wedding_events ORDER BY id LIMIT 10").fetchall()]
    traffic, stop = Traffic(), threading.Event()
    threads = [
        threading.Thread(target=_writer, args=(db.dsn, traffic, stop, wedding_id, tenant,
                                               guest_ids, wedding_ids)),
        threading.Thread(target=_reader, args=(db.dsn, traffic, stop, wedding_id)),
    ]
    for thread in threads:
        thread.start()
    try:
        while len(traffic.inserted_guests) < 20:  # traffic flowing before the operation starts
            time.sleep(0.01)
        with db.connect() as conn:
            window_start = time.monotonic()
            result = operation(conn)
            window_end = time.monotonic()
        acked_at_end = len(traffic.inserted_guests)
        while len(traffic.inserted_guests) < acked_at_end + 20:  # and goes on after it
            time.sleep(0.01)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    return result, traffic, window_start, window_end


def _run_with_traffic(db: Database, bundle: Bundle) -> tuple[Traffic, float, float]:
    """Migrate under traffic; every migration must apply."""
    reports, traffic, window_start, window_end = _under_traffic(
        db, lambda conn: Runner(conn, bundle, lock_timeout_ms=5000).execute())
    assert [r.version for r in reports] == [6, 7, 8, 9, 10]
    return traffic, window_start, window_end


def _lost_or_doubled(conn: psycopg.Connection, traffic: Traffic) -> list[str]:
    """Every acknowledged write, looked for in the new tables; a line per kind of miss."""
    problems = []
    landed = {name: (ids, n) for name, ids, n in conn.execute(
        "SELECT display_name, array_agg(id), count(*) FROM event_participants "
        "WHERE display_name LIKE 'live guest %' GROUP BY 1").fetchall()}
    lost = [name for name in traffic.inserted_guests if name not in landed]
    if lost:
        problems.append(f"{len(lost)} acknowledged invitation inserts are not in "
                        f"event_participants, e.g. {lost[:3]}")
    twice = [name for name, (_, n) in landed.items() if n != 1]
    if twice:
        problems.append(f"{len(twice)} invitations are in event_participants twice: {twice[:3]}")
    moved = [name for name, (gid, _) in traffic.inserted_guests.items()
             if name in landed and landed[name][0] != [gid]]
    if moved:
        problems.append(f"{len(moved)} invitations came back under another id: {moved[:3]}")
    if len(set(landed) - set(traffic.inserted_guests)) > 1:  # one may be in flight at the stop
        problems.append("invitations the writer was never told about are in event_participants")
    weddings = dict(conn.execute(
        "SELECT slug, id FROM events WHERE slug LIKE 'live-wedding-%'").fetchall())
    missing = [s for s, (i, _) in traffic.inserted_weddings.items() if weddings.get(s) != i]
    if missing:
        problems.append(f"{len(missing)} acknowledged wedding inserts are not in events: "
                        f"{missing[:3]}")
    notes = dict(conn.execute(
        "SELECT id, metadata->>'dietary_notes' FROM event_participants WHERE id = ANY(%s)",
        (list(traffic.guest_notes),)).fetchall())
    stale = [i for i, (n, _) in traffic.guest_notes.items() if notes.get(i) != n]
    if stale:
        problems.append(f"{len(stale)} invitations do not show their last acknowledged update "
                        f"(dietary_notes), e.g. ids {stale[:3]}")
    venues = dict(conn.execute("SELECT id, venue_name FROM events WHERE id = ANY(%s)",
                               (list(traffic.wedding_venues),)).fetchall())
    stale = [i for i, (v, _) in traffic.wedding_venues.items() if venues.get(i) != v]
    if stale:
        problems.append(f"{len(stale)} weddings do not show their last acknowledged update "
                        f"(venue_name), e.g. ids {stale[:3]}")
    stray = conn.execute(
        "SELECT count(*) FROM wedding_invitations_backup b WHERE guest_name LIKE "
        "'live guest %' AND NOT EXISTS (SELECT 1 FROM event_participants p "
        "WHERE p.id = b.id)").fetchone()
    if stray and stray[0]:
        problems.append(f"{stray[0]} invitations were written into wedding_invitations_backup "
                        "only")
    return problems


def test_every_acknowledged_write_lands_in_the_new_tables_exactly_once(
        legacy_db: Database, reference_bundle: Bundle) -> None:
    traffic, window_start, window_end = _run_with_traffic(legacy_db, reference_bundle)
    assert traffic.errors == []
    with legacy_db.connect() as conn:
        assert _lost_or_doubled(conn, traffic) == []
        # Written once the views had the legacy names, so only in the new tables.
        through_views = conn.execute(
            "SELECT count(*) FROM event_participants p WHERE display_name LIKE 'live guest %' "
            "AND NOT EXISTS (SELECT 1 FROM wedding_invitations_backup b WHERE b.id = p.id)"
        ).fetchone()
    in_window = sum(window_start <= t <= window_end for t in traffic.acks)
    assert in_window > 0, "no write was acknowledged while the migrations ran"
    assert through_views is not None and through_views[0] > 0
    assert max(traffic.read_waits_s) < READ_TIMEOUT_MS / 1000

    figures = {
        "acknowledged_writes": len(traffic.acks),
        "acknowledged_during_migration_window": in_window,
        "migration_window_s": round(window_end - window_start, 3),
        "invitation_inserts_through_views_after_010": through_views[0],
        "lost_or_duplicated": 0,
        "reads": len(traffic.read_waits_s),
        "longest_read_s": round(max(traffic.read_waits_s), 3),
    }
    out = Path("reports") / "live-traffic.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")


def test_a_copy_that_does_not_carry_every_write_is_caught_losing_writes(
        legacy_db: Database, bundle_copy: Path) -> None:
    """The check above can fail: a 010 whose triggers carry only the old application's inserts
    into the new tables (not its updates), and that takes its time before the switch, leaves
    acknowledged updates of rows it had copied behind in the *_backup tables."""
    path = bundle_copy / "migrations" / "010_wedding_data_migration.sql"
    text = path.read_text().replace(
        "CREATE TRIGGER carry_legacy_writes AFTER INSERT OR UPDATE OR DELETE "
        "ON wedding_invitations",
        "CREATE TRIGGER carry_legacy_writes AFTER INSERT ON wedding_invitations")
    # Before the switch, wait (at most 30 s) until the writer has updated every guest it cycles
    # through since they were copied. A fixed sleep was flaky both ways: too few updates on a
    # loaded machine, and on an idle one the writer's updates after the switch (through the
    # views, so carried) overwrote every stale row before it stopped.
    wait_for_writer = f"""DO $$ BEGIN
  FOR i IN 1..600 LOOP
    EXIT WHEN (SELECT count(*) FROM (SELECT id FROM wedding_invitations ORDER BY id
                                      LIMIT {CYCLED_GUESTS}) t
                 JOIN wedding_invitations w USING (id) JOIN event_participants p USING (id)
                WHERE p.metadata->>'dietary_notes' IS DISTINCT FROM w.dietary_notes)
              >= {CYCLED_GUESTS};
    PERFORM pg_sleep(0.05);
  END LOOP;
END $$;
"""
    verify = "-- eventgate:phase verify\n"
    path.write_text(text.replace(verify, f"{verify}{wait_for_writer}", 1))
    traffic, _, _ = _run_with_traffic(legacy_db, load_bundle(bundle_copy))
    with legacy_db.connect() as conn:
        problems = _lost_or_doubled(conn, traffic)
    assert any("do not show their last acknowledged update (dietary_notes)" in p
               for p in problems), problems


def _lost_in_legacy_tables(conn: psycopg.Connection, traffic: Traffic) -> list[str]:
    """After a rollback: every acknowledged write, looked for in the legacy tables."""
    problems = []
    landed = dict(conn.execute(
        "SELECT guest_name, array_agg(id) FROM wedding_invitations "
        "WHERE guest_name LIKE 'live guest %' GROUP BY 1").fetchall())
    wrong = [n for n, (gid, _) in traffic.inserted_guests.items() if landed.get(n) != [gid]]
    if wrong:
        problems.append(f"{len(wrong)} acknowledged invitation inserts are missing from "
                        f"wedding_invitations or there twice, e.g. {wrong[:3]}")
    notes = dict(conn.execute("SELECT id, dietary_notes FROM wedding_invitations "
                              "WHERE id = ANY(%s)", (list(traffic.guest_notes),)).fetchall())
    stale = [i for i, (n, _) in traffic.guest_notes.items() if notes.get(i) != n]
    if stale:
        problems.append(f"{len(stale)} invitations lost their last acknowledged update")
    slugs = dict(conn.execute("SELECT slug, id FROM wedding_events "
                              "WHERE slug LIKE 'live-wedding-%'").fetchall())
    missing = [s for s, (i, _) in traffic.inserted_weddings.items() if slugs.get(s) != i]
    if missing:
        problems.append(f"{len(missing)} acknowledged wedding inserts are missing")
    return problems


def test_a_gradual_rollback_under_live_traffic_keeps_every_acknowledged_write(
        migrated_db: Database, reference_bundle: Bundle) -> None:
    """The way back too: the old application writes through the views, then through the legacy
    tables again, while 010 to 006 are rolled back and each step is verified."""
    reports, traffic, window_start, window_end = _under_traffic(
        migrated_db, lambda conn: Runner(conn, reference_bundle).rollback(to=0))
    assert [r.version for r in reports] == [10, 9, 8, 7, 6]
    assert all(r.verified for r in reports)
    assert traffic.errors == []
    with migrated_db.connect() as conn:
        assert _lost_in_legacy_tables(conn, traffic) == []
    assert sum(window_start <= t <= window_end for t in traffic.acks) > 0
