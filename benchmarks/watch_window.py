"""`eventgate watch`'s figures: false alarms over a full window on a healthy engine under steady
traffic, and how soon a green that turns bad is caught (reaction time, in seconds and in
intervals). Real PostgreSQL, real engine processes, real HTTP. Writes
reports/benchmarks/watch_window.json.

    python benchmarks/watch_window.py [--duration 300] [--interval 10] [--users 4]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from eventgate.bundle import load_bundle
from eventgate.engine import store
from eventgate.engine.process import engine_process
from eventgate.migrate.runner import Runner
from eventgate.pg.binaries import locate
from eventgate.pg.local import LocalCluster
from eventgate.seed.generator import SeedPlan
from eventgate.seed.load import build_legacy
from eventgate.watch.run import WatchReport, watch
from eventgate.watch.thresholds import Thresholds

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # fixtures/traffic.py: the same users as the watch's tests
from fixtures.traffic import users  # noqa: E402

OUT = ROOT / "reports" / "benchmarks" / "watch_window.json"


def figures(report: WatchReport) -> dict[str, Any]:
    return {"outcome": report.outcome, "samples": len(report.seen),
            "breaches": [b.line() for b in report.breaches],
            "judged_requests": report.judged_requests,
            "worst_error_rate": report.worst_error_rate, "worst_p95_ms": report.worst_p95_ms}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=300.0, help="the healthy window, s")
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--users", type=int, default=4)
    parser.add_argument("--per-user", type=float, default=10.0, help="requests/s per user")
    args = parser.parse_args()
    found, _ = locate(None)
    assert found is not None, "no PostgreSQL server binaries"
    bundle = load_bundle()
    cluster = LocalCluster(found)
    server = cluster.start()
    work = Path(tempfile.mkdtemp())
    try:
        with server.connect() as conn:
            conn.execute("CREATE DATABASE bench")
        dsn = server.dsn_for("bench")
        with server.connect("bench") as conn:
            build_legacy(conn, bundle, SeedPlan(2_000, 20))
            Runner(conn, bundle).execute()
            conn.execute("VACUUM ANALYZE")
            busiest = store.busiest_tenant(conn)
        assert busiest is not None
        tenant = str(busiest)
        with engine_process(dsn, workdir=work) as engine, users(
                lambda: engine.url, engine.as_tenant(tenant), args.users, args.per_user) as got:
            healthy = watch(engine.url, duration_s=args.duration, interval_s=args.interval,
                            thresholds=Thresholds())
        healthy_statuses = {str(s): got.count(s) for s in set(got)}
        mark = work / "degraded-at"
        env = {"PYTHONPATH": str(ROOT / "fixtures"), "EVENTGATE_DEGRADE_AFTER": "600",
               "EVENTGATE_DEGRADE_MARK": str(mark)}
        with engine_process(dsn, workdir=work, env=env,
                            app_factory="engine_faults:degrades_after_requests") as engine, \
                users(lambda: engine.url, engine.as_tenant(tenant), args.users, args.per_user):
            degrading = watch(engine.url, duration_s=args.duration, interval_s=args.interval,
                              thresholds=Thresholds())
        # None: the window ended before the engine served enough requests to turn.
        turned = float(mark.read_text()) if mark.exists() else None
    finally:
        cluster.stop()
    reaction = (degrading.breaches[0].at.timestamp() - turned
                if degrading.breaches and turned is not None else None)
    result = {
        "cpus": os.cpu_count(), "duration_s": args.duration, "interval_s": args.interval,
        "offered_rps": args.users * args.per_user,
        "healthy": {**figures(healthy), "false_alarms": len(healthy.breaches),
                    "statuses": healthy_statuses},
        "degrading": {**figures(degrading), "reaction_s": reaction,
                      "reaction_intervals": None if reaction is None
                      else reaction / args.interval},
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"healthy engine, {args.duration:g} s window every {args.interval:g} s at "
          f"~{result['offered_rps']:g} req/s: {healthy.outcome}, {len(healthy.seen)} samples, "
          f"{len(healthy.breaches)} false alarms, worst p95 {healthy.worst_p95_ms} ms\n"
          f"degrading engine (500s after 600 requests): {degrading.outcome}, caught "
          f"{reaction if reaction is None else round(reaction, 2)} s after it turned "
          f"({(reaction or 0) / args.interval:.2f} intervals), sample "
          f"{degrading.breaches[0].sample if degrading.breaches else '-'}\nwrote {OUT}")


if __name__ == "__main__":
    main()
