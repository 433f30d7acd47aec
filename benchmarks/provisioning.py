"""How fast the embedded default gets a database, against the raw limit measured in the same run.

Measures, N times each: eventgate's ephemeral cluster start and stop against raw `initdb` +
`pg_ctl start -w` + `pg_ctl stop` with the same flags; and cloning the seeded legacy database
with CREATE DATABASE ... TEMPLATE against seeding it again. Writes
reports/benchmarks/provisioning.json and prints medians and ratios.

    python benchmarks/provisioning.py [--rounds 5] [--scale small]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from eventgate.bundle import load_bundle
from eventgate.pg.binaries import locate
from eventgate.pg.local import SERVER_SETTINGS, LocalCluster, _free_port, _run_as
from eventgate.seed.load import build_legacy
from eventgate.seed.scales import scale

OUT = Path(__file__).resolve().parents[1] / "reports" / "benchmarks" / "provisioning.json"


def raw_cycle(bindir: Path) -> tuple[float, float]:
    """initdb + pg_ctl start -w, then pg_ctl stop: the tools alone, no eventgate."""
    identity = _run_as()
    root = Path(tempfile.mkdtemp(prefix="eventgate-raw-"))
    if identity:
        os.chown(root, identity["user"], identity["group"])
    data = root / "data"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PG")}, "LC_ALL": "C.UTF-8"}
    options = " ".join(f"-c {k}={v}" for k, v in SERVER_SETTINGS.items())
    try:
        t0 = time.perf_counter()
        subprocess.run([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                        "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync"], check=True,
                       capture_output=True, cwd=root, env=env, **identity)
        subprocess.run([str(bindir / "pg_ctl"), "start", "-w", "-D", str(data), "-l",
                        str(root / "log"), "-o", f"-p {_free_port()} -k {root} {options}"],
                       check=True, capture_output=True, cwd=root, env=env, **identity)
        started = time.perf_counter() - t0
        t1 = time.perf_counter()
        subprocess.run([str(bindir / "pg_ctl"), "stop", "-m", "fast", "-w", "-D", str(data)],
                       check=True, capture_output=True, cwd=root, env=env, **identity)
        return started, time.perf_counter() - t1
    finally:
        shutil.rmtree(root, ignore_errors=True)


def eventgate_cycle(found: object) -> tuple[float, float]:
    t0 = time.perf_counter()
    cluster = LocalCluster(found)  # type: ignore[arg-type]
    cluster.start()
    started = time.perf_counter() - t0
    t1 = time.perf_counter()
    cluster.stop()
    return started, time.perf_counter() - t1


def clone_vs_reseed(found: object, scale_name: str, rounds: int) -> dict[str, float]:
    cluster = LocalCluster(found)  # type: ignore[arg-type]
    server = cluster.start()
    try:
        with server.connect() as conn:
            conn.execute("CREATE DATABASE legacy")
        with server.connect("legacy") as conn:
            build_legacy(conn, load_bundle(), scale(scale_name))
        clones, seeds = [], []
        for n in range(rounds):
            with server.connect() as conn:
                t0 = time.perf_counter()
                conn.execute(f"CREATE DATABASE clone_{n} TEMPLATE legacy")
                clones.append(time.perf_counter() - t0)
                conn.execute(f"CREATE DATABASE seed_{n}")
            with server.connect(f"seed_{n}") as conn:
                t0 = time.perf_counter()
                build_legacy(conn, load_bundle(), scale(scale_name))
                seeds.append(time.perf_counter() - t0)
        return {"clone_s": statistics.median(clones), "reseed_s": statistics.median(seeds)}
    finally:
        cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--scale", default="small")
    args = parser.parse_args()
    found, _ = locate(None)
    if found is None:
        raise SystemExit("no PostgreSQL server binaries found")
    raw = [raw_cycle(found.bindir) for _ in range(args.rounds)]
    ours = [eventgate_cycle(found) for _ in range(args.rounds)]
    result = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "postgresql": found.version},
        "rounds": args.rounds,
        "raw_start_s": statistics.median(r[0] for r in raw),
        "raw_stop_s": statistics.median(r[1] for r in raw),
        "eventgate_start_s": statistics.median(r[0] for r in ours),
        "eventgate_stop_s": statistics.median(r[1] for r in ours),
        "start_budget_s": 1.5,
        f"scale_{args.scale}": clone_vs_reseed(found, args.scale, args.rounds),
    }
    result["start_ratio_to_raw"] = result["eventgate_start_s"] / result["raw_start_s"]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    c = result[f"scale_{args.scale}"]
    print(f"cluster start: eventgate {result['eventgate_start_s']:.2f} s, raw initdb+pg_ctl "
          f"{result['raw_start_s']:.2f} s (ratio {result['start_ratio_to_raw']:.2f}; budget "
          f"1.5 s)\ncluster stop:  eventgate {result['eventgate_stop_s']:.2f} s, raw "
          f"{result['raw_stop_s']:.2f} s\n{args.scale} legacy database: clone "
          f"{c['clone_s']:.3f} s vs reseed {c['reseed_s']:.3f} s "
          f"(ratio {c['reseed_s'] / c['clone_s']:.1f}x)\nwrote {OUT}")


if __name__ == "__main__":
    main()
