"""GET /api/events latency and throughput at a fixed request rate on loopback, against the same
query run directly in PostgreSQL in the same run.

Open loop: requests are sent on a fixed schedule whatever the answers do, and latency is taken
from the scheduled send time, so a stalled engine shows as latency instead of hiding behind a
slower request rate. The engine runs twice, as it is deployed (a login of the engine's role,
held to row-level security, in a transaction naming its tenant) and as the superuser (which
bypasses it), so the ratio says what the tenant wall costs. Writes
reports/benchmarks/engine_latency.json.

    python benchmarks/engine_latency.py [--rate 100] [--seconds 10] [--weddings 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from eventgate.bundle import load_bundle
from eventgate.engine import store
from eventgate.engine.process import engine_process
from eventgate.migrate.runner import Runner
from eventgate.pg.binaries import locate
from eventgate.pg.local import LocalCluster
from eventgate.pg.roles import engine_login_dsn
from eventgate.seed.generator import SeedPlan
from eventgate.seed.load import build_legacy

OUT = Path(__file__).resolve().parents[1] / "reports" / "benchmarks" / "engine_latency.json"


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000  # noqa: E731
    return {"p50_ms": pick(0.50), "p95_ms": pick(0.95), "p99_ms": pick(0.99),
            "mean_ms": statistics.fmean(ordered) * 1000}


async def open_loop(url: str, credential: dict[str, str], rate: float,
                    seconds: float) -> dict[str, Any]:
    total = int(rate * seconds)
    latencies: list[float] = []
    errors = 0
    async with httpx.AsyncClient(base_url=url, timeout=10,
                                 limits=httpx.Limits(max_connections=64)) as client:
        start = time.perf_counter() + 0.2

        async def one(i: int) -> None:
            nonlocal errors
            scheduled = start + i / rate
            await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
            response = await client.get("/api/events", params={"limit": 50},
                                        headers=credential)
            latencies.append(time.perf_counter() - scheduled)
            if response.status_code != 200:
                errors += 1

        began = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(total)))
        elapsed = time.perf_counter() - began
    return {"requests": total, "errors": errors, "offered_rps": rate,
            "achieved_rps": total / elapsed, **percentiles(latencies)}


def direct(dsn: str, tenant: str, rounds: int) -> dict[str, float]:
    import psycopg

    samples = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        for _ in range(rounds):
            t0 = time.perf_counter()
            store.list_events(conn, tenant, event_type=None, status=None,  # type: ignore[arg-type]
                              start_from=None, start_to=None, after_id=None, limit=51)
            samples.append(time.perf_counter() - t0)
    return percentiles(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=100.0, help="requests per second")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--weddings", type=int, default=5000)
    args = parser.parse_args()
    found, _ = locate(None)
    assert found is not None, "no PostgreSQL server binaries"
    bundle = load_bundle()
    cluster = LocalCluster(found)
    server = cluster.start()
    try:
        with server.connect() as conn:
            conn.execute("CREATE DATABASE bench")
        dsn = server.dsn_for("bench")
        with server.connect("bench") as conn:
            build_legacy(conn, bundle, SeedPlan(args.weddings, 20))
            Runner(conn, bundle).execute()
            conn.execute("VACUUM ANALYZE")
            row = conn.execute("SELECT tenant_id FROM events GROUP BY 1 ORDER BY count(*) DESC "
                               "LIMIT 1").fetchone()
        assert row is not None
        tenant = str(row[0])
        security = bundle.expectations.row_security
        assert security is not None
        runs = {}
        for login, engine_dsn in (("event_engine", engine_login_dsn(dsn, security.engine_role)),
                                  ("superuser", dsn)):
            with engine_process(engine_dsn, workdir=Path(tempfile.mkdtemp())) as engine:
                credential = engine.as_tenant(tenant)
                asyncio.run(open_loop(engine.url, credential, args.rate, 1.0))  # warm-up
                runs[login] = asyncio.run(open_loop(engine.url, credential, args.rate,
                                                    args.seconds))
        api = runs["event_engine"]
        db = direct(dsn, tenant, api["requests"])
    finally:
        cluster.stop()
    bypass = runs["superuser"]
    result = {"cpus": os.cpu_count(), "weddings": args.weddings, "api": api, "database": db,
              "api_without_row_security": bypass,
              "api_over_database_p50": api["p50_ms"] / db["p50_ms"],
              "api_over_database_p95": api["p95_ms"] / db["p95_ms"],
              "row_security_over_bypass_p50": api["p50_ms"] / bypass["p50_ms"],
              "row_security_over_bypass_p95": api["p95_ms"] / bypass["p95_ms"]}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"GET /api/events at {args.rate:g} req/s for {args.seconds:g} s: "
          f"p50 {api['p50_ms']:.1f} ms, p95 {api['p95_ms']:.1f} ms, p99 {api['p99_ms']:.1f} ms, "
          f"{api['achieved_rps']:.0f} req/s achieved, {api['errors']} errors\n"
          f"same query in PostgreSQL: p50 {db['p50_ms']:.2f} ms, p95 {db['p95_ms']:.2f} ms "
          f"(API/DB p50 ratio {result['api_over_database_p50']:.1f})\n"
          f"as the superuser, past row-level security: p50 {bypass['p50_ms']:.1f} ms, p95 "
          f"{bypass['p95_ms']:.1f} ms (held/bypassing p50 "
          f"{result['row_security_over_bypass_p50']:.2f}, p95 "
          f"{result['row_security_over_bypass_p95']:.2f})\nwrote {OUT}")


if __name__ == "__main__":
    main()
