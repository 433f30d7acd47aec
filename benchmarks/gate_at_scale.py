"""The whole green gate at production scale, against limits measured in the same run.

  limit      one hash scan of every legacy and migrated table the bundle maps, each by
             PostgreSQL parallel query with every core (sum(hashtext(t::text)))
  gate       `eventgate gate --dsn` (the green suites, the reference engine it starts): wall
             time, verdict, its ratio to the limit, the slowest tests, peak RSS of its processes
  parity     content parity of every migrated table alone, split over reader sessions sharing
             one snapshot, and in one session; the largest table against the single-core hash
             scan of both its sides
  one pass   the largest table's content parity and row counts from one read (the gate's
             way, eventgate.checks.table_pass), against the two gates run one after the other
  reladiff   hashdiff of the largest table's backup against its compatibility view, threads =
             cores, same run

Writes reports/benchmarks/gate_at_scale.json and prints the ratios.

    python benchmarks/gate_at_scale.py                      # seed, migrate, measure (~15 min)
    python benchmarks/gate_at_scale.py --dsn DSN            # a migrated database already there
        [--reladiff-url postgresql://user:pw@127.0.0.1:5432/db] [--weddings 100000 --guests 100]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import psycopg
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from eventgate.bundle import Bundle, load_bundle
from eventgate.checks.counts import row_count_parity
from eventgate.checks.key_ranges import Readers
from eventgate.checks.parity import content_parity
from eventgate.checks.table_pass import table_pass
from eventgate.gate.run import run_gate
from eventgate.migrate.runner import Runner
from eventgate.pg.binaries import locate
from eventgate.pg.local import LocalCluster
from eventgate.seed.generator import SeedPlan
from eventgate.seed.load import build_legacy

OUT = Path(__file__).resolve().parents[1] / "reports" / "benchmarks" / "gate_at_scale.json"
console = Console()
CORES = os.cpu_count() or 1


def timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - t0, result


def tables_of(bundle: Bundle) -> list[str]:
    """Every legacy table (as its backup) and migrated table the bundle maps, once each."""
    names: list[str] = []
    for mapping in bundle.mapping.values():
        for name in (mapping.legacy_source, mapping.target):
            if name not in names:
                names.append(name)
    return names


def hash_scan(conn: psycopg.Connection, table: str, workers: int) -> float:
    """One read of every row of `table`, hashed, with up to `workers` parallel workers."""
    conn.execute(f"SET max_parallel_workers_per_gather = {workers}")
    conn.execute("SET parallel_setup_cost = 0")
    conn.execute("SET min_parallel_table_scan_size = 0")
    seconds, _ = timed(lambda: conn.execute(
        psycopg.sql.SQL("SELECT sum(hashtext(t::text)) FROM {} t").format(
            psycopg.sql.Identifier(table))).fetchone())
    conn.execute("RESET ALL")
    return float(seconds)


def test_times(junit: Path) -> list[tuple[float, str]]:
    """Every test's seconds (setup, call and teardown), slowest first."""
    if not junit.exists():
        return []
    cases = [(float(c.get("time", 0)), f"{c.get('classname', '')}::{c.get('name', '')}")
             for c in ET.parse(junit).iter("testcase")]
    return sorted(cases, reverse=True)


def run_reladiff(url: str | dict[str, Any], legacy: str, view: str, key: str,
                 columns: tuple[str, ...]) -> tuple[float, int]:
    from reladiff import connect_to_table, diff_tables  # the bench extra

    left = connect_to_table(url, legacy, key, extra_columns=columns, thread_count=CORES)
    right = connect_to_table(url, view, key, extra_columns=columns, thread_count=CORES)
    t0 = time.perf_counter()
    found = sum(1 for _ in diff_tables(left, right, algorithm="hashdiff", threaded=True,
                                       max_threadpool_size=CORES))
    return time.perf_counter() - t0, found


def build(cluster: LocalCluster, bundle: Bundle, args: argparse.Namespace) -> str:
    server = cluster.start()
    with server.connect() as conn:
        conn.execute("CREATE DATABASE gate_at_scale")
    plan = SeedPlan(weddings=args.weddings, guests_per_wedding=args.guests, seed=42,
                    tenants=min(1000, max(3, args.weddings // 100)))
    with server.connect("gate_at_scale") as conn:
        seconds, counts = timed(build_legacy, conn, bundle, plan)
        console.print(f"seeded {counts} in {seconds:.0f} s")
        seconds, _ = timed(Runner(conn, bundle).execute)
        console.print(f"migrated in {seconds:.0f} s")
        conn.execute("VACUUM ANALYZE")
    return server.dsn_for("gate_at_scale")


def measure(dsn: str, bundle: Bundle, reladiff_target: str | dict[str, Any] | None
            ) -> dict[str, Any]:
    result: dict[str, Any] = {"cpus": CORES}
    with psycopg.connect(dsn, autocommit=True) as conn:
        tables = tables_of(bundle)
        sizes = {t: int(conn.execute(psycopg.sql.SQL("SELECT count(*) FROM {}").format(
            psycopg.sql.Identifier(t))).fetchone()[0]) for t in tables}  # type: ignore[index]
        result["rows"] = sizes
        console.print(f"tables: {sizes}")
        scans = {t: hash_scan(conn, t, CORES) for t in tables}
        limit = sum(scans.values())
        result["limit_all_tables_parallel_s"] = {"per_table": scans, "total": limit}
        console.print(f"limit, every table by parallel query: {limit:.1f} s")
        largest = max((m for m in bundle.mapping.values() if m.backup),
                      key=lambda m: sizes[m.legacy_source])
        single = (hash_scan(conn, largest.legacy_source, 0)
                  + hash_scan(conn, largest.target, 0))
        result["limit_largest_single_core_s"] = {"table": largest.legacy_table, "s": single}
    log = bundle.expectations.change_log
    readers = Readers(dsn, min(4, CORES))
    parity: dict[str, Any] = {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        for label, chosen in (("split", readers), ("one_session", None)):
            per_table = {}
            for mapping in (m for m in bundle.mapping.values() if m.backup):
                seconds, check = timed(content_parity, conn, mapping, log=log, readers=chosen)
                assert check.passed, check.explain()
                per_table[mapping.legacy_table] = seconds
            parity[label] = {"per_table": per_table, "total": sum(per_table.values())}
    result["parity_s"] = parity
    parity_largest = parity["split"]["per_table"][largest.legacy_table]
    result["parity_largest_to_single_core_limit"] = parity_largest / single
    console.print(f"parity: split {parity['split']['total']:.1f} s, one session "
                  f"{parity['one_session']['total']:.1f} s; {largest.legacy_table} "
                  f"{parity_largest:.1f} s vs single-core scan {single:.1f} s")
    with psycopg.connect(dsn, autocommit=True) as conn:
        counts_s, check = timed(row_count_parity, conn, largest, log=log, readers=readers)
        assert check.passed, check.explain()
        pass_s, both = timed(table_pass, conn, largest, log=log, readers=readers)
        assert both.parity.passed and both.counts.passed, both
    result["one_pass"] = {"table": largest.legacy_table, "s": pass_s,
                          "parity_then_counts_s": parity_largest + counts_s,
                          "ratio": pass_s / (parity_largest + counts_s)}
    console.print(f"parity and row counts of {largest.legacy_table} in one read: {pass_s:.1f} s; "
                  f"one after the other: {parity_largest:.1f} + {counts_s:.1f} s")
    if reladiff_target is not None and largest.view:
        columns = tuple(c for c in largest.columns if c != largest.key)
        seconds, found = run_reladiff(reladiff_target, largest.legacy_source, largest.view,
                                      largest.key, columns)
        result["reladiff"] = {"s": seconds, "differences": found, "threads": CORES,
                              "over_parity_largest": seconds / parity_largest}
        console.print(f"reladiff hashdiff ({CORES} threads): {seconds:.1f} s, {found} "
                      "differences")
    with tempfile.TemporaryDirectory(prefix="eventgate-gate-bench-") as tmp:
        reports = Path(tmp)
        seconds, verdict = timed(run_gate, dsn=dsn, bundle=None, scale=None, reports=reports,
                                 pytest_args=[], log=reports / "gate.log")
        peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        times = test_times(reports / "junit.xml")
        result["gate"] = {
            "s": seconds, "go": verdict.go, "ratio_to_limit": seconds / limit,
            "failed": [f"{f.test}: {f.reason}" for f in verdict.failed],
            "not_proven": [f"{u.test}: {u.reason}" for u in verdict.not_proven],
            "slowest": [{"test": name, "s": round(s, 2)} for s, name in times[:25]],
            # Where the rest goes: the tests together, and the run around them (the child
            # pytest's start and collection, the engine's start, the verdict).
            "tests_s": sum(s for s, _ in times), "tests": len(times),
            "peak_rss_mb_largest_child": peak_kb / 1024}
    return result


def report(result: dict[str, Any]) -> None:
    table = Table(title="green gate at scale")
    for column in ("measure", "seconds", "ratio", "goal"):
        table.add_column(column)
    limit = result["limit_all_tables_parallel_s"]["total"]
    gate = result["gate"]
    table.add_row("limit: every table, parallel hash scan", f"{limit:.1f}", "1.00", "")
    table.add_row(f"eventgate gate --dsn ({'GO' if gate['go'] else 'NO-GO'})", f"{gate['s']:.1f}",
                  f"{gate['ratio_to_limit']:.2f}", "<= 2.0")
    largest = result["limit_largest_single_core_s"]
    table.add_row(f"limit: {largest['table']} both sides, one core", f"{largest['s']:.1f}",
                  "1.00", "")
    split = result["parity_s"]["split"]["per_table"][largest["table"]]
    table.add_row("content parity of it, split", f"{split:.1f}",
                  f"{result['parity_largest_to_single_core_limit']:.2f}", "<= 1.0")
    if "one_pass" in result:
        one = result["one_pass"]
        table.add_row("parity and row counts of it, one read", f"{one['s']:.1f}",
                      f"{one['ratio']:.2f}x the two alone", "")
    if "reladiff" in result:
        table.add_row("reladiff hashdiff of it", f"{result['reladiff']['s']:.1f}",
                      f"{result['reladiff']['over_parity_largest']:.2f}x parity", ">= 2.5x")
    console.print(table)
    for line in gate["failed"]:
        console.print(f"[red]failed[/red] {escape(line)}")
    console.print(f"{gate['tests']} tests took {gate['tests_s']:.1f} s of the gate's "
                  f"{gate['s']:.1f} s")
    # Escaped: a parametrized test's id in brackets would read as rich markup and vanish.
    console.print(f"peak RSS (largest child): {gate['peak_rss_mb_largest_child']:.0f} MB; "
                  "slowest: " + escape(", ".join(f"{t['test'].split('::')[-1]} {t['s']:.1f} s"
                                                 for t in gate["slowest"][:6])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dsn", help="a database the bundle has migrated; default: build one")
    parser.add_argument("--reladiff-url", help="the same database as a postgresql:// URL")
    parser.add_argument("--weddings", type=int, default=100_000)
    parser.add_argument("--guests", type=int, default=100, help="average guests per wedding")
    args = parser.parse_args()
    bundle = load_bundle()
    cluster: LocalCluster | None = None
    reladiff_target: str | dict[str, Any] | None = args.reladiff_url
    try:
        dsn = args.dsn
        if dsn is None:
            found, _ = locate(None)
            assert found is not None, "no PostgreSQL server binaries"
            # TCP with a generated password: reladiff cannot use a unix socket.
            cluster = LocalCluster(found, tcp=True)
            dsn = build(cluster, bundle, args)
            reladiff_target = (f"postgresql://postgres:{cluster.password}@127.0.0.1:"
                               f"{cluster.port}/gate_at_scale")
        if reladiff_target is None:
            # reladiff takes libpq's parameters as a dict, a unix socket directory included.
            params = psycopg.conninfo.conninfo_to_dict(dsn)
            reladiff_target = {"driver": "postgresql", **{k: v for k, v in params.items()
                                                          if k != "options"}}
        result = measure(dsn, bundle, reladiff_target)
    finally:
        if cluster is not None:
            cluster.stop()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2, default=str) + "\n")
    report(result)
    console.print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
