"""What the safety net costs, against the raw tools measured in the same run.

On a seeded legacy database (default: medium, 5,000 weddings, ~200k invitations) measures, N
times each: `take_backup` (pg_dump -Fc in one snapshot with per-table checksums and metadata)
against a bare `pg_dump -Fc`; `verify_backup` (restore into a scratch database and compare every
table) against a bare `pg_restore` into an empty database; `restore_latest` (restore, compare,
end sessions, swap names) against the same bare `pg_restore`. Also times the migration 006-010
and the verified gradual rollback to base, as the share of it that verification takes is the
price of "each step verified". Writes reports/benchmarks/safety-net.json and prints medians and
ratios.

    python benchmarks/safety_net.py [--rounds 3] [--scale medium]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from eventgate.bundle import load_bundle
from eventgate.migrate.runner import Runner
from eventgate.pg.binaries import locate
from eventgate.pg.databases import Database, Databases
from eventgate.pg.local import local_cluster
from eventgate.safety.backup import take_backup
from eventgate.safety.databases import server_version
from eventgate.safety.restore import restore_latest
from eventgate.safety.tools import find_tool
from eventgate.safety.verify import verify_backup
from eventgate.seed.load import build_legacy
from eventgate.seed.scales import scale

OUT = Path(__file__).resolve().parents[1] / "reports" / "benchmarks" / "safety-net.json"


def timed(action: object) -> float:
    t0 = time.perf_counter()
    action()  # type: ignore[operator]
    return time.perf_counter() - t0


def bare_dump(tool: str, db: Database, target: Path) -> None:
    subprocess.run([tool, "--format=custom", f"--file={target}", f"--dbname={db.dsn}"],
                   check=True, capture_output=True)


def bare_restore(tool: str, databases: Databases, dump: Path) -> None:
    scratch = databases.create("bare_restore")
    try:
        subprocess.run([tool, "--exit-on-error", f"--dbname={scratch.dsn}", str(dump)],
                       check=True, capture_output=True)
    finally:
        databases.drop(scratch)


def one_round(timings: dict[str, list[float]], db: Database, databases: Databases,
              directory: Path, tools: tuple[str, str], maintenance: str) -> None:
    dump_tool, restore_tool = tools
    timings["bare_pg_dump"].append(timed(
        lambda: bare_dump(dump_tool, db, directory / "bare.dump")))
    t0 = time.perf_counter()
    record = take_backup(db.dsn, directory, verify=False)
    timings["backup"].append(time.perf_counter() - t0)
    timings["bare_pg_restore"].append(timed(
        lambda: bare_restore(restore_tool, databases, directory / "bare.dump")))
    timings["verify"].append(timed(lambda: verify_backup(record, maintenance)))
    timings["restore_latest"].append(timed(lambda: restore_latest(db.dsn, directory)))


def migrate_and_back(timings: dict[str, list[float]], runner: Runner, verify: bool) -> None:
    if verify:
        timings["migrate"].append(timed(runner.execute))
    else:
        runner.execute()
    key = "rollback_verified" if verify else "rollback_unverified"
    timings[key].append(timed(lambda: runner.rollback(to=0)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scale", default="medium")
    args = parser.parse_args()
    binaries, tried = locate(None)
    if binaries is None:
        raise SystemExit("no PostgreSQL server binaries: " + "; ".join(tried))
    plan, bundle = scale(args.scale), load_bundle()
    timings: dict[str, list[float]] = {k: [] for k in (
        "bare_pg_dump", "backup", "bare_pg_restore", "verify", "restore_latest",
        "migrate", "rollback_verified", "rollback_unverified")}
    with local_cluster(binaries) as server, tempfile.TemporaryDirectory() as scratch_dir:
        databases = Databases(server)
        db = databases.create("safety")
        with db.connect() as conn:
            counts = build_legacy(conn, bundle, plan)
        with server.connect() as conn:
            version = server_version(conn)
        dump_tool = str(find_tool("pg_dump", version).path)
        restore_tool = str(find_tool("pg_restore", version).path)
        maintenance = server.dsn_for("postgres")
        for n in range(args.rounds):
            directory = Path(scratch_dir) / f"round{n}"
            directory.mkdir()
            one_round(timings, db, databases, directory, (dump_tool, restore_tool), maintenance)
            with server.connect() as conn:
                for (name,) in conn.execute("SELECT datname FROM pg_database WHERE datname "
                                            "LIKE %s", (f"{db.name}_pre_restore_%",)):
                    databases.drop(Database(name, ""))
            for verify in (True, False):
                with db.connect() as conn:
                    migrate_and_back(timings, Runner(conn, bundle, verify_rollbacks=verify),
                                     verify)
    medians = {k: round(statistics.median(v), 3) for k, v in timings.items()}
    ratios = {
        "backup_vs_bare_pg_dump": round(medians["backup"] / medians["bare_pg_dump"], 2),
        "verify_vs_bare_pg_restore": round(medians["verify"] / medians["bare_pg_restore"], 2),
        "restore_latest_vs_bare_pg_restore": round(
            medians["restore_latest"] / medians["bare_pg_restore"], 2),
        "rollback_verified_vs_unverified": round(
            medians["rollback_verified"] / medians["rollback_unverified"], 2),
    }
    result = {"scale": args.scale, "rows": asdict(counts), "rounds": args.rounds,
              "medians_s": medians, "ratios": ratios,
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform()}}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    for key, value in medians.items():
        print(f"{key:22} {value:8.3f} s")
    for key, value in ratios.items():
        print(f"{key:36} {value:5.2f}x")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
