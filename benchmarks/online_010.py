"""Migration 010 run online at production scale, under live legacy traffic, against the raw copy
of the same rows measured in the same run.

  seeding   the legacy database at production scale (as prod_scale.py), then 006-009
  online    010 with the runner (expand, a backfill per legacy table in batches, the rebuild of
            what the backfill set aside, verify, switch)
            while the old application writes through the legacy names at a fixed rate (open
            loop, several connections: invitation inserts for existing weddings, dietary_notes
            updates of existing invitations - copied ones too - and wedding inserts) and reads
            each legacy name; every acknowledged write is remembered with its id and value
  checks    afterwards every acknowledged insert is in the new tables exactly once and every
            acknowledged update's last value is there
  limit     the raw copy, offline: INSERT ... SELECT of the same rows from the *_backup tables,
            then the same index builds, timed, WAL of both, twice:
              into the same tables   copies with the generic tables' CHECK constraints, their
                                     foreign keys added afterwards (what the backfill's rows
                                     pass through, and its rebuild validates): the target
              into bare tables       prod_scale.py's RAW_MIGRATION (no constraint), reported

Targets: longest write wait <= 1 s, >= 200 writes/s, 0 writes lost or duplicated,
backfill time (its batches and the rebuild of the indexes and foreign key it set aside) <= 2 x
the raw copy into the same tables. Writes reports/benchmarks/online_010.json and prints a table.

    python benchmarks/online_010.py [--weddings 100000] [--guests 100] [--rate 250]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import random
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from prod_scale import RAW_MIGRATION  # the same limit as prod_scale.py, run from this directory
from rich.console import Console
from rich.table import Table

from eventgate.bundle import load_bundle
from eventgate.migrate.progress import BatchProgress, StepReport
from eventgate.migrate.runner import Runner
from eventgate.pg.binaries import locate
from eventgate.pg.local import SERVER_SETTINGS, LocalCluster
from eventgate.seed.generator import SeedPlan
from eventgate.seed.load import build_legacy
from eventgate.units import human_bytes

OUT = Path(__file__).resolve().parents[1] / "reports" / "benchmarks" / "online_010.json"
console = Console(highlight=False, width=110)
LEGACY_NAMES = ("wedding_events", "wedding_invitations", "wedding_sections")
GUEST_PREFIX = "online010 guest "
SLUG_PREFIX = "online010-"
# The statement that ends the rebuild of what the backfill set aside (its foreign key's check).
REBUILT_BY = "VALIDATE CONSTRAINT"
TARGETS = {"longest_write_wait_s": 1.0, "writes_per_s": 200.0, "backfill_ratio_to_raw": 2.0}


def percentiles(samples: list[float]) -> dict[str, float | None]:
    if not samples:
        return {"p50_ms": None, "p99_ms": None, "max_ms": None}
    ordered = sorted(samples)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000  # noqa: E731
    return {"p50_ms": pick(0.50), "p99_ms": pick(0.99), "max_ms": ordered[-1] * 1000}


# -- what the runner tells ---------------------------------------------------------------------


@dataclass
class TableBackfill:
    table: str
    total: int = 0
    done: int = 0
    copied: int = 0
    batches: int = 0
    seconds: float = 0.0
    longest_s: float = 0.0
    first_start: float = 0.0  # perf_counter when its first batch began
    last_end: float = 0.0


class Clock:
    """A ProgressSink that keeps when things happened: the phases of 010 (its statements and
    batches), each backfill's meter, the runner's notes (retries)."""

    def __init__(self) -> None:
        self.began: float | None = None
        self.ended: float | None = None
        self.statements: list[tuple[float, str]] = []
        self.notes: list[tuple[float, str]] = []
        self.tables: dict[str, TableBackfill] = {}
        self.order: list[str] = []
        # (perf_counter, keys done) of the invitations backfill: which ids it had copied when
        self.invitations_done: list[tuple[float, int]] = []
        self.report: StepReport | None = None
        self._printed = 0.0

    def begin(self, label: str, statements: int) -> None:
        self.began = time.perf_counter()
        console.print(f"{label}: {statements} statements")

    def statement(self, text: str) -> None:
        self.statements.append((time.perf_counter(), text))

    def end(self, report: StepReport) -> None:
        self.ended = time.perf_counter()
        self.report = report

    def note(self, text: str) -> None:
        self.notes.append((time.perf_counter(), text))
        console.print(f"[yellow]runner: {text}[/]")

    def batch(self, progress: BatchProgress) -> None:
        now = time.perf_counter()
        entry = self.tables.get(progress.table)
        if entry is None:
            entry = self.tables[progress.table] = TableBackfill(
                progress.table, first_start=now - progress.seconds)
            self.order.append(progress.table)
        entry.total, entry.done, entry.copied = progress.total, progress.done, progress.copied
        entry.batches, entry.seconds = progress.batches, progress.seconds
        entry.longest_s, entry.last_end = progress.longest_s, now
        if progress.table == "wedding_invitations":
            self.invitations_done.append((now, progress.done))
        if now - self._printed > 15 or progress.done >= progress.total:
            self._printed = now
            console.print(progress.line())

    # -- the phases, afterwards ----------------------------------------------------------------

    def phases(self) -> dict[str, tuple[float, float]]:
        """(start, end) perf_counter of each phase of the run."""
        assert self.began is not None and self.ended is not None
        if not self.order:
            return {}
        backfill_start = self.tables[self.order[0]].first_start
        last_batch = max(t.last_end for t in self.tables.values())
        after = [(t, text) for t, text in self.statements if t > last_batch]
        verify_start = after[0][0] if after else last_batch
        # What the backfill set aside, built back: from the last batch up to the foreign key's
        # validation, included (the rebuild and reattach phases, and verify's first statement).
        validated = next((n for n, (_, text) in enumerate(after) if REBUILT_BY in text), None)
        rebuild = None
        if validated is not None and validated + 1 < len(after):
            rebuild = (last_batch, after[validated + 1][0])
            verify_start = rebuild[1]
        # The switch's LOCK TABLE, not the reattach phase's (before verify).
        switch_start = next((t for t, text in self.statements
                             if t > verify_start and text.startswith("LOCK TABLE")), verify_start)
        spans = {"expand": (self.began, backfill_start)}
        for n, name in enumerate(self.order):
            end = (self.tables[self.order[n + 1]].first_start if n + 1 < len(self.order)
                   else rebuild[0] if rebuild is not None else verify_start)
            spans[f"backfill:{name}"] = (self.tables[name].first_start, end)
        if rebuild is not None:
            spans["rebuild"] = rebuild
        spans["verify"] = (verify_start, switch_start)
        spans["switch"] = (switch_start, self.ended)
        return spans

    def copied_upto(self, when: float) -> int:
        """Invitation keys the backfill had covered by `when` (its range starts at id 1)."""
        done = 0
        for t, keys in self.invitations_done:
            if t > when:
                break
            done = keys
        return done


# -- the old application ------------------------------------------------------------------------


@dataclass
class Write:
    k: int
    kind: str  # insert_guest | insert_wedding | update_seeded | update_own
    target: int | None  # the wedding of an inserted guest, the invitation of an update
    value: str  # the guest_name, slug or dietary_notes written
    scheduled: float
    sent: float
    acked: float | None = None
    row_id: int | None = None
    error: str | None = None
    sqlstate: str | None = None


@dataclass
class Traffic:
    writes: list[Write] = field(default_factory=list)  # list.append is atomic
    new_weddings: list[int] = field(default_factory=list)
    reads: dict[str, list[float]] = field(default_factory=lambda: {n: [] for n in LEGACY_NAMES})
    read_errors: list[str] = field(default_factory=list)


class Writer:
    """An open loop: write k is due at start + k / rate, whatever the answers do; `workers`
    connections take the writes in turn. Updates of one invitation are always made by the same
    worker (id modulo workers), so the last acknowledged value of each is well defined."""

    def __init__(self, dsn: str, traffic: Traffic, rate: float, workers: int,
                 max_wedding: int, max_invitation: int, tenants: list[Any]) -> None:
        self.dsn, self.traffic, self.rate, self.workers = dsn, traffic, rate, workers
        self.max_wedding, self.max_invitation, self.tenants = max_wedding, max_invitation, tenants
        self.stop = threading.Event()
        self._counter = itertools.count()
        self._lock = threading.Lock()
        self.start = 0.0
        self.threads = [threading.Thread(target=self._work, args=(w,), daemon=True)
                        for w in range(workers)]

    def begin(self) -> None:
        self.start = time.perf_counter() + 0.1
        for thread in self.threads:
            thread.start()

    def end(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=120)

    def _connect(self) -> psycopg.Connection:
        return psycopg.connect(self.dsn, autocommit=True, application_name="legacy app writer",
                               options="-c statement_timeout=60000")

    def _work(self, worker: int) -> None:
        own: list[int] = []  # invitations this worker inserted
        conn = self._connect()
        try:
            while not self.stop.is_set():
                with self._lock:
                    k = next(self._counter)
                scheduled = self.start + k / self.rate
                pause = scheduled - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                if self.stop.is_set():
                    break
                if conn.closed or conn.broken:
                    conn = self._connect()
                self._one(conn, worker, k, scheduled, own)
        finally:
            conn.close()

    def _one(self, conn: psycopg.Connection, worker: int, k: int, scheduled: float,
             own: list[int]) -> None:
        rng = random.Random(k)
        draw = rng.random()
        if draw < 0.05:
            kind, target, value = "insert_wedding", None, f"{SLUG_PREFIX}{k}"
            query = ("INSERT INTO wedding_events (tenant_id, slug, bride_name, groom_name, "
                     "wedding_date, ceremony_time, timezone, status) VALUES (%s, %s, 'Online', "
                     "'Ten', '2031-06-07', '15:30', 'Europe/Lisbon', 'draft') RETURNING id")
            params: tuple[Any, ...] = (self.tenants[k % len(self.tenants)], value)
        elif draw < 0.45:
            new = self.traffic.new_weddings
            target = (new[rng.randrange(len(new))] if new and rng.random() < 0.1
                      else rng.randint(1, self.max_wedding))
            kind, value = "insert_guest", f"{GUEST_PREFIX}{k}"
            query = ("INSERT INTO wedding_invitations (wedding_id, guest_name, email, "
                     "rsvp_status, party_size, dietary_notes) VALUES (%s, %s, %s, 'pending', 1, "
                     "%s) RETURNING id")
            params = (target, value, f"online{k}@example.org", f"inserted {k}")
        else:
            if draw >= 0.9 and own:
                kind, target = "update_own", own[rng.randrange(len(own))]
            else:
                slots = max(1, self.max_invitation // self.workers)
                kind, target = "update_seeded", rng.randrange(slots) * self.workers + worker
                if target < 1:
                    target += self.workers
            value = f"note {k}"
            query = "UPDATE wedding_invitations SET dietary_notes = %s WHERE id = %s"
            params = (value, target)
        write = Write(k, kind, target, value, scheduled, time.perf_counter())
        try:
            cur = conn.execute(query, params)
            row = cur.fetchone() if kind.startswith("insert") else None
            write.acked = time.perf_counter()
            if row is not None:
                write.row_id = int(row[0])
            elif cur.rowcount != 1:
                write.error = f"UPDATE touched {cur.rowcount} rows"
        except psycopg.Error as exc:
            write.error = str(exc).strip()
            write.sqlstate = exc.sqlstate
        self.traffic.writes.append(write)
        if write.acked is not None and write.error is None:
            if kind == "insert_guest" and write.row_id is not None:
                own.append(write.row_id)
            elif kind == "insert_wedding" and write.row_id is not None:
                self.traffic.new_weddings.append(write.row_id)


class Reader(threading.Thread):
    """Reads one legacy name by primary key every few ms, as the old application does."""

    def __init__(self, dsn: str, name: str, traffic: Traffic, max_id: int,
                 stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.dsn, self.name, self.traffic, self.max_id, self.stop = (dsn, name, traffic,
                                                                     max_id, stop)

    def run(self) -> None:
        rng = random.Random(self.name)
        waits = self.traffic.reads[self.name]
        conn = psycopg.connect(self.dsn, autocommit=True, application_name="legacy app reader",
                               options="-c statement_timeout=60000")
        try:
            while not self.stop.is_set():
                started = time.perf_counter()
                try:
                    conn.execute(f"SELECT * FROM {self.name} WHERE id = %s",
                                 (rng.randint(1, self.max_id),)).fetchall()
                    waits.append(time.perf_counter() - started)
                except psycopg.Error as exc:
                    self.traffic.read_errors.append(f"{self.name}: {str(exc).strip()}")
                    if conn.broken:
                        conn = psycopg.connect(self.dsn, autocommit=True)
                time.sleep(0.01)
        finally:
            conn.close()


# -- the checks ---------------------------------------------------------------------------------


def check_writes(conn: psycopg.Connection, traffic: Traffic) -> dict[str, Any]:
    """Every acknowledged write looked for in the new tables."""
    acked = [w for w in traffic.writes if w.acked is not None and w.error is None]
    # A write that failed with a server error was rolled back; one whose connection broke may
    # or may not have committed.
    unsure = [w for w in traffic.writes if w.error is not None and w.sqlstate is None
              and not w.error.startswith("UPDATE touched")]
    guests = {w.value: w for w in acked if w.kind == "insert_guest"}
    landed = {name: (ids, events, n) for name, ids, events, n in conn.execute(
        "SELECT display_name, array_agg(id), array_agg(event_id), count(*) "
        "FROM event_participants WHERE display_name LIKE %s GROUP BY 1",
        (GUEST_PREFIX + "%",)).fetchall()}
    lost = [n for n in guests if n not in landed]
    twice = [n for n, (_, _, c) in landed.items() if c > 1]
    wrong = [n for n, w in guests.items() if n in landed and landed[n][2] == 1
             and (landed[n][0] != [w.row_id] or landed[n][1] != [w.target])]
    unacked_guests = sorted(set(landed) - set(guests))
    weddings = {w.value: w for w in acked if w.kind == "insert_wedding"}
    wedding_rows = {slug: (ids, n) for slug, ids, n in conn.execute(
        "SELECT slug, array_agg(id), count(*) FROM events WHERE slug LIKE %s GROUP BY 1",
        (SLUG_PREFIX + "%",)).fetchall()}
    weddings_lost = [s for s in weddings if s not in wedding_rows]
    weddings_twice = [s for s, (_, c) in wedding_rows.items() if c > 1]
    weddings_wrong = [s for s, w in weddings.items() if s in wedding_rows
                      and wedding_rows[s][0] != [w.row_id]]
    unacked_weddings = sorted(set(wedding_rows) - set(weddings))
    # The last acknowledged value of each updated invitation (one worker per id: in k order).
    last: dict[int, Write] = {}
    for w in sorted((w for w in acked if w.kind.startswith("update")), key=lambda w: w.k):
        assert w.target is not None
        last[w.target] = w
    ambiguous = {w.target for w in unsure if w.kind.startswith("update") and w.target in last
                 and w.k > last[w.target].k}
    notes = dict(conn.execute(
        "SELECT id, metadata->>'dietary_notes' FROM event_participants WHERE id = ANY(%s)",
        (list(last),)).fetchall())
    stale = [i for i, w in last.items() if i not in ambiguous and notes.get(i) != w.value]
    backup_only = conn.execute(
        "SELECT count(*) FROM wedding_invitations_backup b WHERE guest_name LIKE %s "
        "AND NOT EXISTS (SELECT 1 FROM event_participants p WHERE p.id = b.id)",
        (GUEST_PREFIX + "%",)).fetchone()
    return {
        "acknowledged_guest_inserts": len(guests),
        "acknowledged_wedding_inserts": len(weddings),
        "acknowledged_updates": sum(w.kind.startswith("update") for w in acked),
        "updated_invitations": len(last),
        "guest_inserts_lost": len(lost), "guest_inserts_duplicated": len(twice),
        "guest_inserts_wrong_id_or_wedding": len(wrong),
        "wedding_inserts_lost": len(weddings_lost),
        "wedding_inserts_duplicated": len(weddings_twice),
        "wedding_inserts_wrong_id": len(weddings_wrong),
        "updates_stale": len(stale), "updates_ambiguous_connection_lost": len(ambiguous),
        "unacknowledged_rows_present": len(unacked_guests) + len(unacked_weddings),
        "guests_in_backup_only": int(backup_only[0]) if backup_only else None,
        "lost": len(lost) + len(weddings_lost) + len(stale),
        "duplicated": len(twice) + len(weddings_twice),
        "examples": {"lost": lost[:5] + weddings_lost[:5], "duplicated": twice[:5]
                     + weddings_twice[:5], "stale_ids": stale[:5],
                     "wrong": wrong[:5] + weddings_wrong[:5],
                     "unacknowledged": unacked_guests[:5] + unacked_weddings[:5]},
    }


# -- the limit ----------------------------------------------------------------------------------


def lsn(conn: psycopg.Connection) -> str:
    row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
    assert row is not None
    return str(row[0])


def wal_between(conn: psycopg.Connection, before: str, after: str) -> int:
    row = conn.execute("SELECT pg_wal_lsn_diff(%s::pg_lsn, %s::pg_lsn)::bigint",
                       (after, before)).fetchone()
    assert row is not None
    return int(row[0])


# The raw copy into the same tables: each row passes the CHECK constraints the backfill's rows
# pass, and the foreign keys are added once the rows are in, as an offline migration would
# (the backfill's rebuild validates the participants' one; the sections keep theirs throughout).
SAME_TABLES = [s.replace("INCLUDING DEFAULTS", "INCLUDING DEFAULTS INCLUDING CONSTRAINTS")
               for s in RAW_MIGRATION] + [
    "ALTER TABLE raw.events ADD UNIQUE (id, tenant_id)",
    "ALTER TABLE raw.event_participants ADD FOREIGN KEY (event_id, tenant_id) "
    "REFERENCES raw.events (id, tenant_id)",
    "ALTER TABLE raw.event_sections ADD FOREIGN KEY (event_id) REFERENCES raw.events (id)",
]


def raw_copy(conn: psycopg.Connection, statements: list[str]
             ) -> tuple[float, int, dict[str, int]]:
    """A raw copy from the *_backup tables: seconds, WAL bytes, rows."""
    conn.execute("CHECKPOINT")
    before = lsn(conn)
    started = time.perf_counter()
    rows: dict[str, int] = {}
    with conn.transaction():
        for statement in statements:
            cur = conn.execute(statement.encode())
            if statement.lstrip().startswith("INSERT"):
                rows[statement.split()[2]] = cur.rowcount
    seconds = time.perf_counter() - started
    wal = wal_between(conn, before, lsn(conn))
    conn.execute("DROP SCHEMA raw CASCADE")
    return seconds, wal, rows


# -- the run ------------------------------------------------------------------------------------


def summarise_writes(traffic: Traffic, clock: Clock, window: tuple[float, float],
                     writer: Writer) -> dict[str, Any]:
    writes = traffic.writes
    ok = [w for w in writes if w.acked is not None and w.error is None]
    waits = [w.acked - w.sent for w in ok if w.acked is not None]
    late = [w.acked - w.scheduled for w in ok if w.acked is not None]
    lo, hi = window
    in_window = [w for w in ok if w.acked is not None and lo <= w.acked <= hi]
    sent_in_window = [w for w in ok if w.acked is not None and lo <= w.sent <= hi]
    spans = clock.phases() if clock.began is not None and clock.ended is not None else {}

    def phase_of(t: float) -> str:
        for name, (a, b) in spans.items():
            if a <= t <= b:
                return name
        return "before 010" if t < lo else "after 010"

    by_phase: dict[str, dict[str, Any]] = {}
    for w in ok:
        assert w.acked is not None
        entry = by_phase.setdefault(phase_of(w.sent), {"writes": 0, "longest_wait_ms": 0.0})
        entry["writes"] += 1
        entry["longest_wait_ms"] = max(entry["longest_wait_ms"], (w.acked - w.sent) * 1000)
    for name, (a, b) in spans.items():
        if name in by_phase and b > a:
            by_phase[name]["writes_per_s"] = by_phase[name]["writes"] / (b - a)
    longest = max(ok, key=lambda w: (w.acked or 0) - w.sent) if ok else None
    # Updates of invitations the backfill had already copied when the update was sent.
    seeded = [w for w in ok if w.kind == "update_seeded" and lo <= w.sent <= hi]
    copied_first = sum(1 for w in seeded if w.target is not None
                       and w.target <= clock.copied_upto(w.sent))
    errors: dict[str, int] = {}
    for w in writes:
        if w.error is not None:
            text = f"[{w.sqlstate}] {w.error}" if w.sqlstate else w.error
            errors[text] = errors.get(text, 0) + 1
    return {
        "offered_rate_per_s": writer.rate, "connections": writer.workers,
        "sent": len(writes), "acknowledged": len(ok), "failed": len(writes) - len(ok),
        "kinds": {k: sum(w.kind == k for w in ok)
                  for k in ("insert_guest", "insert_wedding", "update_seeded", "update_own")},
        "acknowledged_during_010": len(in_window),
        "writes_per_s_during_010": len(in_window) / (hi - lo) if hi > lo else 0.0,
        "writes_per_s_overall": len(ok) / (max(w.acked or 0 for w in ok) - writer.start)
        if ok else 0.0,
        "wait_send_to_ack": percentiles(waits),
        "wait_from_schedule": percentiles(late),
        "wait_send_to_ack_during_010": percentiles(
            [(w.acked or 0) - w.sent for w in sent_in_window]),
        "wait_from_schedule_during_010": percentiles(
            [(w.acked or 0) - w.scheduled for w in sent_in_window]),
        "longest_write": None if longest is None else {
            "kind": longest.kind, "target": longest.target, "phase": phase_of(longest.sent),
            "wait_ms": ((longest.acked or 0) - longest.sent) * 1000,
            "at_s_into_010": longest.sent - lo},
        "by_phase": by_phase,
        "seeded_updates_during_010": len(seeded),
        "seeded_updates_of_rows_already_backfilled": copied_first,
        "errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weddings", type=int, default=100_000)
    parser.add_argument("--guests", type=int, default=100)
    parser.add_argument("--rate", type=float, default=250.0, help="offered writes per second")
    parser.add_argument("--connections", type=int, default=4, help="writer connections")
    parser.add_argument("--batch-rows", type=int, default=None,
                        help="backfill batch size (default: the script's rows=)")
    parser.add_argument("--batch-pause-ms", type=int, default=None)
    parser.add_argument("--warmup", type=float, default=5.0,
                        help="seconds of traffic before 010 starts (and after it ends)")
    parser.add_argument("--bundle", default=None, help="a bundle directory (default: the "
                        "reference bundle)")
    parser.add_argument("--out", default=str(OUT), help="where the JSON goes")
    args = parser.parse_args()
    found, _ = locate(None)
    assert found is not None, "no PostgreSQL server binaries"
    bundle = load_bundle(args.bundle)
    plan = SeedPlan(args.weddings, args.guests, seed=42, tenants=min(1000, args.weddings // 100
                                                                      or 3))
    cluster = LocalCluster(found)
    server = cluster.start()
    result: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "postgresql": found.version, "server_settings": SERVER_SETTINGS},
        "weddings": plan.weddings, "guests_per_wedding": args.guests,
        "batch_rows": args.batch_rows, "batch_pause_ms": args.batch_pause_ms,
        "targets": TARGETS}
    failure: str | None = None
    clock = Clock()
    traffic = Traffic()
    try:
        with server.connect() as conn:
            conn.execute("CREATE DATABASE prod")
        dsn = server.dsn_for("prod")
        with psycopg.connect(dsn, autocommit=True) as conn:
            result["machine"]["postgresql_full"] = conn.execute("SELECT version()").fetchone()[0]
            seeded_at = time.perf_counter()
            shown = [0.0, 0]

            def seeding(table: str, n: int) -> None:
                shown[1] += n
                if time.perf_counter() - shown[0] > 15:
                    shown[0] = time.perf_counter()
                    console.print(f"seeding: {shown[1]:,} rows ({table})")

            counts = build_legacy(conn, bundle, plan, seeding)
            seed_s = time.perf_counter() - seeded_at
            console.print(f"seeded {counts} in {seed_s:.1f} s")
            conn.execute("VACUUM ANALYZE")
            # Any lock wait past deadlock_timeout (1 s) is logged, with who held the lock.
            conn.execute("ALTER SYSTEM SET log_lock_waits = on")
            conn.execute("SELECT pg_reload_conf()")
            pre_s = time.perf_counter()
            Runner(conn, bundle).execute(to=9)
            pre_s = time.perf_counter() - pre_s
            console.print(f"006-009 in {pre_s:.1f} s")
            conn.execute("CHECKPOINT")
            max_wedding, max_invitation, max_section = (
                conn.execute(f"SELECT max(id) FROM {n}").fetchone()[0] for n in LEGACY_NAMES)
            tenants = [r[0] for r in conn.execute(
                "SELECT id FROM tenants ORDER BY id LIMIT 50").fetchall()]
            result.update({"rows": counts.__dict__, "seed_s": seed_s, "migrations_006_009_s":
                           pre_s})

            writer = Writer(dsn, traffic, args.rate, args.connections, max_wedding,
                            max_invitation, tenants)
            stop_readers = threading.Event()
            readers = [Reader(dsn, name, traffic, top, stop_readers) for name, top in
                       zip(LEGACY_NAMES, (max_wedding, max_invitation, max_section),
                           strict=True)]
            writer.begin()
            for reader in readers:
                reader.start()
            # Traffic alone for a while: its own WAL rate, to tell apart from the migration's.
            time.sleep(1.0)
            base_lsn, base_t = lsn(conn), time.perf_counter()
            time.sleep(args.warmup)
            traffic_wal_per_s = wal_between(conn, base_lsn, lsn(conn)) / (
                time.perf_counter() - base_t)
            runner = Runner(conn, bundle, progress=clock, batch_rows=args.batch_rows,
                            batch_pause_ms=args.batch_pause_ms)
            wal_before = lsn(conn)
            window_start = time.perf_counter()
            try:
                reports = runner.execute()
                result["applied"] = [r.label for r in reports]
            except Exception as exc:  # reported, with the traffic it met
                failure = f"{type(exc).__name__}: {exc}"
                result["failure_traceback"] = traceback.format_exc()
                console.print(f"[red]010 failed: {failure}[/]")
            window_end = time.perf_counter()
            wal_online = wal_between(conn, wal_before, lsn(conn))
            online_s = window_end - window_start
            time.sleep(args.warmup)  # and traffic after it, through the views
            writer.end()
            stop_readers.set()
            for reader in readers:
                reader.join(timeout=120)
            result["failure"] = failure
            result["runner_notes"] = [{"at_s_into_010": t - window_start, "text": text}
                                      for t, text in clock.notes]
            result["runner_warnings"] = runner.warnings
            result["writer"] = summarise_writes(traffic, clock, (window_start, window_end),
                                                writer)
            result["reader"] = {
                name: {"reads": len(waits), **percentiles(waits)}
                for name, waits in traffic.reads.items()}
            result["reader_errors"] = sorted(set(traffic.read_errors))[:20]
            result["reader_error_count"] = len(traffic.read_errors)
            batches_s = sum(t.seconds for t in clock.tables.values())
            copied = sum(t.copied for t in clock.tables.values())
            spans = clock.phases() if clock.ended is not None else {}
            rebuild_s = (spans["rebuild"][1] - spans["rebuild"][0]) if "rebuild" in spans else 0.0
            # Compared with the raw copy, which builds every index once at its end: the batches
            # and the rebuild of what they set aside.
            backfill_s = batches_s + rebuild_s
            result["online"] = {
                "total_s": online_s, "backfill_s": backfill_s,
                "backfill_batches_s": batches_s, "rebuild_s": rebuild_s,
                "backfill_wall_s": sum(b - a for n, (a, b) in spans.items()
                                       if n.startswith("backfill:")),
                "phases_s": {n: b - a for n, (a, b) in spans.items()},
                "backfills": {n: {"keys": t.done, "of": t.total, "copied": t.copied,
                                  "batches": t.batches, "seconds": t.seconds,
                                  "longest_batch_s": t.longest_s,
                                  "rows_per_s": t.copied / t.seconds if t.seconds else None}
                              for n, t in clock.tables.items()},
                "rows_copied": copied,
                "rows_per_s": copied / backfill_s if backfill_s else None,
                "wal_bytes": wal_online, "wal": human_bytes(wal_online),
                "traffic_wal_bytes_per_s_before_010": traffic_wal_per_s,
                "traffic_wal_estimate_bytes": traffic_wal_per_s * online_s,
                "statements": [{"summary": s.summary, "status": s.status, "rows": s.rows,
                                "seconds": s.duration_s}
                               for s in (clock.report.statements if clock.report else [])],
            }
            if failure is None:
                result["checks"] = check_writes(conn, traffic)
                bare_s, bare_wal, _ = raw_copy(conn, RAW_MIGRATION)
                raw_s, raw_wal, raw_rows = raw_copy(conn, SAME_TABLES)
                result["raw"] = {"seconds": raw_s, "rows": raw_rows,
                                 "rows_per_s": sum(raw_rows.values()) / raw_s,
                                 "wal_bytes": raw_wal, "wal": human_bytes(raw_wal),
                                 "into_bare_tables": {"seconds": bare_s, "wal_bytes": bare_wal,
                                                      "wal": human_bytes(bare_wal)}}
                result["ratios"] = {
                    "backfill_to_raw": backfill_s / raw_s,
                    "backfill_to_raw_into_bare_tables": backfill_s / bare_s,
                    "backfill_wall_to_raw": result["online"]["backfill_wall_s"] / raw_s,
                    "total_010_to_raw": online_s / raw_s,
                    "wal_online_to_raw": wal_online / raw_wal if raw_wal else None}
    finally:
        result["server_log"] = server_log(cluster.logfile)
        cluster.stop()
    result["passed"] = passed(result)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2, default=str) + "\n")
    print_table(result)
    console.print(f"wrote {Path(args.out)}")
    if failure is not None:
        raise SystemExit(1)


def server_log(path: Path) -> list[str]:
    """The server's complaints (errors, deadlocks, lock waits past deadlock_timeout), before the
    cluster and its log are gone."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    keep = ("ERROR", "FATAL", "PANIC", "WARNING", "deadlock", "still waiting", "acquired",
            "DETAIL", "CONTEXT", "STATEMENT")
    return [line for line in lines if any(word in line for word in keep)][:200]


def passed(result: dict[str, Any]) -> dict[str, bool | None]:
    writer, checks, ratios = (result.get(k) or {} for k in ("writer", "checks", "ratios"))
    longest = (writer.get("wait_send_to_ack") or {}).get("max_ms")
    return {
        "migration_applied": result.get("failure") is None,
        "longest_write_wait_le_1s": None if longest is None
        else longest / 1000 <= TARGETS["longest_write_wait_s"],
        "writes_per_s_ge_200": None if not writer
        else writer["writes_per_s_during_010"] >= TARGETS["writes_per_s"],
        "no_write_failed": None if not writer else writer["failed"] == 0,
        "none_lost_or_duplicated": None if not checks
        else checks["lost"] == 0 and checks["duplicated"] == 0
        and checks["guest_inserts_wrong_id_or_wedding"] == 0
        and checks["wedding_inserts_wrong_id"] == 0,
        "backfill_le_2x_raw": None if not ratios
        else ratios["backfill_to_raw"] <= TARGETS["backfill_ratio_to_raw"],
    }


def print_table(result: dict[str, Any]) -> None:
    table = Table(title=f"010 online at {result['weddings']:,} weddings", title_justify="left")
    for column in ("measure", "value", "limit / target", "ok"):
        table.add_column(column)
    ok = result["passed"]
    mark = lambda v: "-" if v is None else ("ok" if v else "FAIL")  # noqa: E731
    writer, online = result.get("writer") or {}, result.get("online") or {}
    raw, ratios, checks = (result.get(k) or {} for k in ("raw", "ratios", "checks"))
    if writer:
        wait = writer["wait_send_to_ack"]
        table.add_row("longest write wait", f"{(wait['max_ms'] or 0):.0f} ms", "1 s",
                      mark(ok["longest_write_wait_le_1s"]))
        table.add_row("write wait p50 / p99", f"{wait['p50_ms'] or 0:.1f} / "
                      f"{wait['p99_ms'] or 0:.1f} ms", "", "")
        during = writer["wait_send_to_ack_during_010"]
        table.add_row("  during 010 p50 / p99 / max", f"{during['p50_ms'] or 0:.1f} / "
                      f"{during['p99_ms'] or 0:.1f} / {during['max_ms'] or 0:.0f} ms", "", "")
        late = writer["wait_from_schedule"]
        table.add_row("  from schedule max / p99", f"{late['max_ms'] or 0:.0f} / "
                      f"{late['p99_ms'] or 0:.1f} ms", "", "")
        table.add_row("writes/s during 010", f"{writer['writes_per_s_during_010']:.0f}",
                      f">= 200 (offered {writer['offered_rate_per_s']:g})",
                      mark(ok["writes_per_s_ge_200"]))
        table.add_row("writes failed", str(writer["failed"]), "0", mark(ok["no_write_failed"]))
    for name, reads in (result.get("reader") or {}).items():
        table.add_row(f"read {name} longest", f"{reads['max_ms'] or 0:.0f} ms "
                      f"(p99 {reads['p99_ms'] or 0:.1f})", "", "")
    if checks:
        table.add_row("lost / duplicated", f"{checks['lost']} / {checks['duplicated']}",
                      "0 / 0", mark(ok["none_lost_or_duplicated"]))
    if online:
        table.add_row("010 total", f"{online['total_s']:.1f} s", "", "")
        table.add_row("backfill (batches + rebuild)", f"{online['backfill_s']:.1f} s "
                      f"({online.get('backfill_batches_s', 0):.1f} + "
                      f"{online.get('rebuild_s', 0):.1f})",
                      f"{raw.get('seconds', 0):.1f} s raw" if raw else "",
                      mark(ok["backfill_le_2x_raw"]))
        if ratios:
            table.add_row("backfill / raw", f"{ratios['backfill_to_raw']:.2f}", "<= 2", "")
            table.add_row("  / raw into bare tables",
                          f"{ratios['backfill_to_raw_into_bare_tables']:.2f} "
                          f"({raw['into_bare_tables']['seconds']:.1f} s)", "reported", "")
        table.add_row("rows/s backfill", f"{online['rows_per_s'] or 0:,.0f}",
                      f"{raw['rows_per_s']:,.0f} raw" if raw else "", "")
        table.add_row("WAL online 010", online["wal"], raw.get("wal", ""), "")
    if result.get("failure"):
        table.add_row("FAILURE", result["failure"][:200], "", "FAIL")
    console.print(table)


if __name__ == "__main__":
    main()
