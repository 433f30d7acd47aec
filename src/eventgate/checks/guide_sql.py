"""The deployment guide's validation SQL (the bundle's `guide/*.sql`), run the way the guide runs
it: through psql, read-only, with the psql variables its scripts use drawn from the target
(`guide/guide.toml`). A row holding ❌ fails; the ✅ rows and psql's `\\timing` lines are
reported. When the data changed since the migration in a way the guide's totals cannot tell
from a defect (the writes the change record holds), a ❌ is not proven rather than failed."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import psycopg

from eventgate import dsn as dsn_mod
from eventgate.checks.result import CheckResult, error_line
from eventgate.errors import EventgateError
from eventgate.pg.connect import connect
from eventgate.safety.tools import find_tool, tail, tool_connection

CHECK = "the guide's validation SQL"
FAILED_MARK, PASSED_MARK = "❌", "✅"
_TIMING = re.compile(r"^Time: (?P<ms>[0-9.]+) ms")
PSQL_TIMEOUT_S = 600


def guide_scripts(bundle_root: Path) -> list[Path]:
    return sorted((bundle_root / "guide").glob("*.sql"))


def _config(bundle_root: Path) -> dict[str, Any]:
    path = bundle_root / "guide" / "guide.toml"
    return tomllib.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def run_guide_sql(dsn: str, bundle_root: Path, script: Path, *,
                  bindir: str | Path | None = None) -> CheckResult:
    config = _config(bundle_root)
    text = script.read_text(encoding="utf-8")
    subject = f"guide/{script.name}"
    with connect(dsn, application_name="eventgate guide sql", read_only=True) as conn:
        values: dict[str, str] = {}
        for name, query in (config.get("variables") or {}).items():
            if not re.search(rf":'?{re.escape(name)}\b", text):
                continue
            try:
                row = conn.execute(query).fetchone()
            except psycopg.Error as exc:
                return CheckResult(CHECK, subject, False, f"the psql variable {name} could not "
                                   f"be drawn from the target: {error_line(exc)}", sql=query)
            if row is None or row[0] is None:
                return CheckResult.unproven(CHECK, subject, f"the psql variable {name} the "
                                            "script needs could not be drawn from the data "
                                            "(the query found no row)", sql=query)
            values[name] = str(row[0])
        version = conn.info.server_version
        written_query = (config.get("written_since_migration") or {}).get(script.name)
    try:
        tool = find_tool("psql", f"{version // 10000}.{version % 10000}", bindir)
    except EventgateError as exc:
        return CheckResult(CHECK, subject, False, str(exc))
    database = dsn_mod.parse(dsn).get("dbname") or ""
    conninfo, env, password = tool_connection(dsn, database)
    env["PGOPTIONS"] = "-c default_transaction_read_only=on"  # the green gate writes nothing
    argv = [str(tool.path), "-X", "-A", "-F", "\t", "-P", "footer=off", "-v", "ON_ERROR_STOP=1",
            "--no-password", "-d", conninfo]
    for name, value in values.items():
        argv += ["-v", f"{name}={value}"]
    argv += ["-f", str(script)]
    reproduce = ("psql -X -v ON_ERROR_STOP=1 "
                 + "".join(f"-v {n}={v} " for n, v in values.items()) + f"-f {script}")
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False,
                          timeout=PSQL_TIMEOUT_S)
    data: dict[str, Any] = {"variables": values, "output": done.stdout[-20000:]}
    if done.returncode != 0:
        return CheckResult(CHECK, subject, False, f"psql stopped at an error (exit "
                           f"{done.returncode}): {tail(done.stderr, password)}",
                           sql=reproduce, data=data)
    lines = done.stdout.splitlines()
    failed = [line for line in lines if FAILED_MARK in line]
    passed = [line for line in lines if PASSED_MARK in line]
    timings = [float(m["ms"]) for line in lines if (m := _TIMING.match(line))]
    data.update(failed=failed, passed=passed, timings_ms=timings)
    timed = (f"; \\timing: {', '.join(f'{t:.1f}' for t in timings)} ms" if timings else "")
    if failed:
        written = _written_since(dsn, written_query) if written_query else 0
        if written:
            return CheckResult.unproven(
                CHECK, subject, f"{len(failed)} row(s) marked {FAILED_MARK}, but {written} "
                "write(s) since the migration are in the change record, and the guide's check "
                "compares totals: it cannot tell them from a defect (the parity gates, which "
                "leave those writes out, decide)", sql=reproduce, data=data)
        return CheckResult(CHECK, subject, False,
                           f"{len(failed)} row(s) marked {FAILED_MARK}{timed}",
                           details=tuple(line.replace("\t", " | ") for line in failed[:10]),
                           sql=reproduce, data=data)
    return CheckResult(CHECK, subject, True,
                       f"ran through psql {tool.version}: {len(passed)} row(s) marked "
                       f"{PASSED_MARK}, none {FAILED_MARK}{timed}", sql=reproduce, data=data)


def _written_since(dsn: str, query: str) -> int:
    try:
        with connect(dsn, application_name="eventgate guide sql", read_only=True) as conn:
            row = conn.execute(query).fetchone()
    except (psycopg.Error, EventgateError):
        return 0  # no change record to read: a ❌ stays a failure
    return int(row[0]) if row and row[0] else 0
