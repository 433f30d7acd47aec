"""The FASE 0 migration at production scale: seeding, the migration itself with the longest
time any legacy table was unreadable, and every query budget, each against a limit measured in
the same run.

  seeding    vs raw COPY of the same rows from a file into tables of the same shape
  migration  vs INSERT ... SELECT of the same rows into bare copies of the new tables, plus the
             same index builds
  lock window: a probe thread reads each legacy name every few ms with a 50 ms lock_timeout
  budgets:   p95 round trip and server time of every [[budgets]] entry, 30 rounds

Writes reports/benchmarks/prod_scale.json and prints a table.

    python benchmarks/prod_scale.py [--weddings 100000] [--guests 100]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from eventgate.bundle import load_bundle
from eventgate.checks.budgets import PreparedQuery, measure, prepare
from eventgate.migrate.runner import Runner
from eventgate.pg.binaries import locate
from eventgate.pg.local import LocalCluster
from eventgate.seed.generator import SeedPlan
from eventgate.seed.legacy_schema import LEGACY_TABLES
from eventgate.seed.load import build_legacy

OUT = Path(__file__).resolve().parents[1] / "reports" / "benchmarks" / "prod_scale.json"
console = Console()
# The migration's own data movement and index builds, without its checks, views and triggers;
# run after the migration, from the legacy rows kept as *_backup, into bare copies of its tables.
RAW_MIGRATION = [
    "CREATE SCHEMA raw",
    "CREATE TABLE raw.events (LIKE public.events INCLUDING DEFAULTS)",
    "CREATE TABLE raw.event_participants (LIKE public.event_participants INCLUDING DEFAULTS)",
    "CREATE TABLE raw.event_sections (LIKE public.event_sections INCLUDING DEFAULTS)",
    """INSERT INTO raw.events (id, tenant_id, event_type, title, slug, start_date, timezone,
           venue_name, venue_address, status, metadata, created_at, updated_at)
       SELECT id, tenant_id, 'wedding', bride_name || ' & ' || groom_name, slug,
              (wedding_date + coalesce(ceremony_time, time '00:00')) AT TIME ZONE timezone,
              timezone, venue_name, venue_address, status,
              jsonb_build_object('bride_name', bride_name, 'groom_name', groom_name,
                                 'ceremony_time', ceremony_time, 'reception_time',
                                 reception_time, 'theme', theme), created_at, updated_at
         FROM wedding_events_backup""",
    """INSERT INTO raw.event_participants (id, event_id, tenant_id, role, display_name, email,
           phone, rsvp_status, party_size, metadata, invited_at, responded_at)
       SELECT i.id, i.wedding_id, w.tenant_id, 'guest', i.guest_name, i.email, i.phone,
              i.rsvp_status, i.party_size, jsonb_build_object('dietary_notes', i.dietary_notes,
              'table_number', i.table_number), i.invited_at, i.responded_at
         FROM wedding_invitations_backup i JOIN wedding_events_backup w
           ON w.id = i.wedding_id""",
    """INSERT INTO raw.event_sections (id, event_id, section_type, title, content, position,
           is_visible) SELECT id, wedding_id, section_type, title, content, position, is_visible
         FROM wedding_sections_backup""",
    "ALTER TABLE raw.events ADD PRIMARY KEY (id)",
    "ALTER TABLE raw.event_participants ADD PRIMARY KEY (id)",
    "ALTER TABLE raw.event_sections ADD PRIMARY KEY (id)",
    "CREATE INDEX ON raw.events (tenant_id, start_date)",
    "CREATE INDEX ON raw.events (event_type, status)",
    "CREATE UNIQUE INDEX ON raw.events (tenant_id, slug)",
    "CREATE INDEX ON raw.event_participants (event_id)",
    "CREATE INDEX ON raw.event_participants (email)",
    "CREATE INDEX ON raw.event_participants (tenant_id)",
    "CREATE INDEX ON raw.event_sections (event_id, position)",
]


def timed(fn: Any, *args: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - started, result


def raw_copy_limit(conn: psycopg.Connection, workdir: Path) -> float:
    """COPY the seeded rows out to files (not timed), then back into same-shaped empty tables."""
    files = {}
    for table in LEGACY_TABLES:
        path = workdir / f"{table}.copy"
        with path.open("wb") as out, conn.cursor() as cur, cur.copy(
                f"COPY {table} TO STDOUT") as copy:
            for chunk in copy:
                out.write(chunk)
        files[table] = path
    conn.execute("CREATE SCHEMA copy_limit")
    for table in LEGACY_TABLES:
        conn.execute(f"CREATE TABLE copy_limit.{table} (LIKE public.{table} INCLUDING ALL)")
    started = time.perf_counter()
    for table, path in files.items():
        with path.open("rb") as data, conn.cursor() as cur, cur.copy(
                f"COPY copy_limit.{table} FROM STDIN") as copy:
            while chunk := data.read(1 << 20):
                copy.write(chunk)
    seconds = time.perf_counter() - started
    conn.execute("DROP SCHEMA copy_limit CASCADE")
    for path in files.values():
        path.unlink()
    return seconds


def raw_migration_limit(conn: psycopg.Connection) -> float:
    started = time.perf_counter()
    with conn.transaction():
        for statement in RAW_MIGRATION:
            conn.execute(statement.encode())
    seconds = time.perf_counter() - started
    conn.execute("DROP SCHEMA raw CASCADE")
    return seconds


class ReadProbe(threading.Thread):
    """Reads every legacy name in turn, every few ms, with a short lock_timeout; remembers the
    longest stretch during which a name could not be read."""

    def __init__(self, dsn: str, names: tuple[str, ...]) -> None:
        super().__init__(daemon=True)
        self.dsn, self.names = dsn, names
        self.stop = threading.Event()
        self.longest: dict[str, float] = dict.fromkeys(names, 0.0)
        self.reads = 0

    def run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute("SET lock_timeout = '50ms'")
            last_ok = dict.fromkeys(self.names, time.perf_counter())
            while not self.stop.is_set():
                for name in self.names:
                    try:
                        conn.execute(f"SELECT 1 FROM {name} LIMIT 1").fetchall()
                    except psycopg.Error:
                        continue
                    now = time.perf_counter()
                    self.longest[name] = max(self.longest[name], now - last_ok[name])
                    last_ok[name] = now
                    self.reads += 1
                time.sleep(0.005)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weddings", type=int, default=100_000)
    parser.add_argument("--guests", type=int, default=100)
    args = parser.parse_args()
    found, _ = locate(None)
    assert found is not None, "no PostgreSQL server binaries"
    bundle = load_bundle()
    plan = SeedPlan(args.weddings, args.guests, seed=42, tenants=min(1000, args.weddings // 100
                                                                      or 3))
    cluster = LocalCluster(found)
    server = cluster.start()
    result: dict[str, Any] = {"cpus": os.cpu_count(), "postgresql": found.version,
                              "weddings": plan.weddings, "guests_per_wedding": args.guests}
    try:
        with server.connect() as conn:
            conn.execute("CREATE DATABASE prod")
        dsn = server.dsn_for("prod")
        with psycopg.connect(dsn, autocommit=True) as conn:
            with Progress(console=console, transient=True) as bar:
                task = bar.add_task("seeding", total=None)
                seed_s, counts = timed(build_legacy, conn, bundle, plan, lambda t, n: bar.update(
                    task, advance=n, description=f"COPY {t}"))
            console.print(f"seeded {counts} in {seed_s:.1f} s")
            copy_s = raw_copy_limit(conn, Path(tempfile.mkdtemp()))
            conn.execute("VACUUM ANALYZE")
            probe = ReadProbe(dsn, ("wedding_events", "wedding_invitations",
                                    "wedding_sections", "tenants"))
            probe.start()
            migrate_s, reports = timed(Runner(conn, bundle).execute)
            time.sleep(0.2)
            probe.stop.set()
            probe.join()
            console.print(f"migrated in {migrate_s:.1f} s")
            raw_s = raw_migration_limit(conn)
            console.print(f"limits: raw COPY {copy_s:.1f} s, raw INSERT…SELECT + indexes "
                          f"{raw_s:.1f} s")
            conn.execute("VACUUM ANALYZE")
            budgets = []
            for budget in bundle.expectations.budgets:
                query = prepare(conn, budget)
                assert isinstance(query, PreparedQuery), query.explain()
                check = measure(conn, query, rounds=30)
                budgets.append({"name": budget.name, "budget_ms": budget.budget_ms,
                                "client_p95_ms": check.data["client_p95_ms"],
                                "server_p95_ms": check.data["server_p95_ms"],
                                "within_budget": check.passed})
        result.update({
            "rows": counts.__dict__, "seed_s": seed_s, "raw_copy_limit_s": copy_s,
            "seed_ratio_to_limit": seed_s / copy_s, "migrate_s": migrate_s,
            "migrate_per_file_s": {r.label: r.duration_s for r in reports},
            "raw_migration_limit_s": raw_s, "migrate_ratio_to_limit": migrate_s / raw_s,
            "rows_per_second": sum(counts.__dict__.values()) / migrate_s,
            "longest_unreadable_s": probe.longest, "probe_reads": probe.reads,
            "budgets": budgets,
        })
    finally:
        cluster.stop()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2, default=str) + "\n")
    table = Table(title=f"FASE 0 at {plan.weddings} weddings", title_justify="left")
    for column in ("measure", "value", "limit", "ratio"):
        table.add_column(column)
    table.add_row("seeding", f"{result['seed_s']:.1f} s", f"{copy_s:.1f} s raw COPY",
                  f"{result['seed_ratio_to_limit']:.2f} (goal 1.5)")
    table.add_row("migration 006-010", f"{migrate_s:.1f} s", f"{raw_s:.1f} s raw",
                  f"{result['migrate_ratio_to_limit']:.2f} (goal 1.5)")
    for name, seconds in probe.longest.items():
        table.add_row(f"{name} unreadable", f"{seconds:.2f} s", "", "")
    for entry in budgets:
        table.add_row(f"budget {entry['name']}", f"p95 {entry['client_p95_ms']:.2f} ms",
                      f"{entry['budget_ms']:g} ms", "ok" if entry["within_budget"] else "OVER")
    console.print(table)
    console.print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
