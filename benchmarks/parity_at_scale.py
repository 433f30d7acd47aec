"""Content parity at production scale, against the limit measured in the same run, and against
reladiff on the same data.

Seeds the legacy wedding database (default 100k weddings, ~10M invitations, 500k sections,
1,000 tenants), migrates it, then measures:
  - the limit: one in-database hash scan of each side of the largest table
    (sum(hashtext(row::text)) over wedding_invitations_backup, then over event_participants);
  - eventgate's content parity of every migrated table (FULL JOIN ... IS DISTINCT FROM per
    mapped column, one REPEATABLE READ snapshot, differences streamed), its ratio to the limit,
    and the Python process's peak RSS while it runs;
  - after one injected defect (a guest renamed, a guest deleted), eventgate again and reladiff
    (hashdiff, backup table vs compatibility view), with both times and whether both found the
    same rows.
Writes reports/benchmarks/parity.json.

    python benchmarks/parity_at_scale.py [--weddings 100000] [--guests 100] [--skip-reladiff]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress

from eventgate.bundle import load_bundle
from eventgate.checks.parity import content_parity
from eventgate.migrate.runner import Runner
from eventgate.pg.binaries import locate
from eventgate.pg.local import LocalCluster
from eventgate.seed.generator import SeedPlan
from eventgate.seed.load import build_legacy

OUT = Path(__file__).resolve().parents[1] / "reports" / "benchmarks" / "parity.json"
console = Console()


def rss_mb() -> tuple[float, float]:
    """Current and peak resident memory of this process, in MB."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text()
                  .splitlines() if ":" in line)
    return (int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024)


def reset_peak_rss() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # Linux: restart the VmHWM high-water mark


def timed(fn: Any, *args: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - t0, result


def hash_scan(conn: Any, table: str) -> float:
    seconds, _ = timed(lambda: conn.execute(
        f"SELECT sum(hashtext(t::text)) FROM {table} t").fetchone())
    return seconds


def run_reladiff(url: str, columns: tuple[str, ...]) -> tuple[float, set[tuple[str, int]]]:
    from reladiff import connect_to_table, diff_tables

    legacy = connect_to_table(url, "wedding_invitations_backup", "id", extra_columns=columns)
    view = connect_to_table(url, "wedding_invitations", "id", extra_columns=columns)
    t0 = time.perf_counter()
    found = {(sign, int(row[0])) for sign, row in diff_tables(legacy, view,
                                                               algorithm="hashdiff")}
    return time.perf_counter() - t0, found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weddings", type=int, default=100_000)
    parser.add_argument("--guests", type=int, default=100, help="average guests per wedding")
    parser.add_argument("--skip-reladiff", action="store_true")
    args = parser.parse_args()
    found, _ = locate(None)
    assert found is not None, "no PostgreSQL server binaries"
    bundle = load_bundle()
    plan = SeedPlan(weddings=args.weddings, guests_per_wedding=args.guests, seed=42,
                    tenants=min(1000, max(3, args.weddings // 100)))
    # TCP (with a generated scram password) only because reladiff cannot use a unix socket.
    cluster = LocalCluster(found, tcp=not args.skip_reladiff)
    server = cluster.start()
    result: dict[str, Any] = {"weddings": plan.weddings,
                              "guests_per_wedding": plan.guests_per_wedding,
                              "tenants": plan.tenant_count, "cpus": os.cpu_count(),
                              "postgresql": found.version}
    try:
        with server.connect() as conn:
            conn.execute("CREATE DATABASE bench")
        with server.connect("bench") as conn:
            with Progress(console=console, transient=True) as bar:
                task = bar.add_task("seeding", total=None)
                seconds, counts = timed(build_legacy, conn, bundle, plan,
                                        lambda t, n: bar.update(task, advance=n,
                                                                description=f"COPY {t}"))
            result["seed_s"], result["rows"] = seconds, counts.__dict__
            console.print(f"seeded {counts} in {seconds:.1f} s")
            seconds, _ = timed(Runner(conn, bundle).execute)
            result["migrate_s"] = seconds
            console.print(f"migrated in {seconds:.1f} s")
            conn.execute("VACUUM ANALYZE")

            legacy_scan = hash_scan(conn, "wedding_invitations_backup")
            migrated_scan = hash_scan(conn, "event_participants")
            limit = legacy_scan + migrated_scan
            migrated = [m for m in bundle.mapping.values() if m.backup]
            reset_peak_rss()
            start_rss = rss_mb()[0]
            per_table = {}
            for mapping in migrated:
                seconds, check = timed(content_parity, conn, mapping)
                assert check.passed, check.explain()
                per_table[mapping.legacy_table] = seconds
            peak_rss = rss_mb()[1]
            invitations_s = per_table["wedding_invitations"]
            result.update({
                "limit_hash_scan_s": {"legacy": legacy_scan, "migrated": migrated_scan,
                                      "total": limit},
                "parity_s": per_table, "parity_total_s": sum(per_table.values()),
                "invitations_ratio_to_limit": invitations_s / limit,
                "rss_mb": {"before": start_rss, "peak_during_parity": peak_rss},
            })
            console.print(f"limit (hash scan of both sides of wedding_invitations): {limit:.1f} s"
                          f"\nparity of wedding_invitations: {invitations_s:.1f} s, ratio "
                          f"{invitations_s / limit:.2f} (goal <= 1.5)\nparity of all tables: "
                          f"{sum(per_table.values()):.1f} s; peak RSS {peak_rss:.0f} MB "
                          f"(goal < 200)")

            # One injected defect: a renamed guest and a deleted guest.
            conn.execute("UPDATE event_participants SET display_name = display_name || ' (x)' "
                         "WHERE id = 4242")
            conn.execute("DELETE FROM event_participants WHERE id = "
                         "(SELECT max(id) * 7 / 9 FROM event_participants)")
            seconds, check = timed(content_parity, conn, bundle.mapping["wedding_invitations"])
            ours = {(s["kind"], int(s["key"])) for s in check.data["samples"]}
            result["defect"] = {"eventgate_s": seconds, "eventgate_found": sorted(ours)}
            console.print(f"after the defect: eventgate {seconds:.1f} s, found {sorted(ours)}")
            if not args.skip_reladiff:
                url = (f"postgresql://postgres:{cluster.password}@127.0.0.1:{cluster.port}"
                       "/bench")
                columns = ("wedding_id", "guest_name", "email", "phone", "rsvp_status",
                           "party_size", "dietary_notes", "table_number", "invited_at",
                           "responded_at")
                seconds, theirs = run_reladiff(url, columns)
                keys_theirs = {k for _, k in theirs}
                result["defect"].update({
                    "reladiff_s": seconds, "reladiff_found": sorted(theirs),
                    "same_rows_found": keys_theirs == {k for _, k in ours},
                    "reladiff_over_eventgate": seconds / result["defect"]["eventgate_s"]})
                console.print(f"reladiff hashdiff: {seconds:.1f} s, found {sorted(theirs)}; "
                              f"same rows: {result['defect']['same_rows_found']}")
    finally:
        cluster.stop()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2, default=str) + "\n")
    console.print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
