"""`eventgate rehearse`: the whole migration, for real, on a copy of production's data.

The newest verified backup of a database is restored into a scratch database on the same
server; there preflight runs, then the migration with lock-wait probes playing the old
application (eventgate.migrate.lock_probe), then the gate against the migrated scratch database
and the rollback round trip. The report gives per migration its time, rows per second and the
longest waits the probes saw. The database itself is only read for its name and server; the
scratch database is dropped at the end, also on failure or Ctrl-C (unless kept)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from eventgate import dsn as dsn_mod
from eventgate.bundle import Bundle, LockBudget
from eventgate.checks.lock_waits import too_many_rows, watch
from eventgate.checks.rollback_round_trip import round_trip_to_base
from eventgate.errors import BackupError, EventgateError
from eventgate.gate.run import run_gate
from eventgate.gate.suites import SUITES
from eventgate.migrate.lock_probe import LockProbes
from eventgate.migrate.progress import BatchProgress, StepReport
from eventgate.migrate.runner import Runner
from eventgate.pg.connect import connect
from eventgate.safety import catalog, databases
from eventgate.safety.catalog import BackupRecord
from eventgate.safety.checksums import file_problems
from eventgate.safety.databases import MAINTENANCE_DB
from eventgate.safety.preflight import Options, run_preflight
from eventgate.safety.progress import Progress, no_progress
from eventgate.safety.tools import find_tool, run_pg_restore

APPLICATION_NAME = "eventgate rehearse"


@dataclass(frozen=True)
class Wait:
    ms: float
    blocker: str | None  # who held the lock, for the longest wait


@dataclass(frozen=True)
class MigrationFigures:
    label: str
    duration_s: float
    rows: int
    longest_write: Wait | None
    longest_read: Wait | None

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.duration_s if self.duration_s > 0 else 0.0


@dataclass
class Rehearsal:
    database: str
    backup: str  # the dump file
    scratch: str
    budget: LockBudget
    restore_s: float = 0.0
    preflight: str = "not run"  # "ready", "not ready: <checks>"
    migrations: list[MigrationFigures] = field(default_factory=list)
    gate: str = "not run"  # "go", "no-go: ..."
    round_trip: str = "not run"  # "passed", "failed: ..."
    rollback_s: float = 0.0
    problems: list[str] = field(default_factory=list)
    # The writer-blocking locks the migration held (checks/lock_waits.py): statement, mode, rows.
    holds: list[dict[str, Any]] = field(default_factory=list)
    kept_dsn: str | None = None  # the scratch database's DSN, with --keep

    def over_budget(self) -> list[str]:
        """A line per migration whose probes waited longer than the bundle's lock budget."""
        over = []
        for m in self.migrations:
            for kind, wait, budget in (("writers", m.longest_write, self.budget.max_write_wait_ms),
                                       ("readers", m.longest_read, self.budget.max_read_wait_ms)):
                if wait is not None and wait.ms > budget:
                    over.append(f"{m.label}: {kind} waited {wait.ms:.0f} ms (budget {budget:g} "
                                f"ms) on {wait.blocker or 'a lock'}")
        return over

    @property
    def ok(self) -> bool:
        return (not self.problems and self.preflight == "ready" and self.gate == "go"
                and self.round_trip == "passed" and not self.over_budget())

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["migrations"] = [{**asdict(m), "rows_per_s": round(m.rows_per_s, 1)}
                              for m in self.migrations]
        return {**data, "ok": self.ok, "over_budget": self.over_budget()}


class _Windows:
    """The runner's progress sink: when each migration ran (to match the probes' waits), and a
    progress line per statement for the operator."""

    def __init__(self, report: Progress) -> None:
        self.report, self.windows = report, dict[str, tuple[float, float]]()
        self._label, self._began = "", 0.0

    def begin(self, label: str, statements: int) -> None:
        self._label, self._began = label, time.monotonic()
        self.report(f"migrating: {label} ({statements} statements)")

    def statement(self, text: str) -> None:
        self.report(f"migrating: {self._label}: {text}")

    def end(self, report: StepReport) -> None:
        self.windows[report.label] = (self._began, time.monotonic())

    def note(self, text: str) -> None:
        self.report(text)

    def batch(self, progress: BatchProgress) -> None:
        self.report(f"migrating: {progress.line()}")


def _no_backup(directory: Path, database: str, dsn: str) -> BackupError:
    records, _ = catalog.scan(directory, database)
    found = ("that directory does not exist" if not directory.is_dir() else
             f"it holds {len(records)} backup(s) of {database}, none verified with its dump "
             "present" if records else f"it holds no backup of {database}")
    return BackupError(
        f"nothing to rehearse: no verified backup of {database} in {directory.resolve()} "
        f"({found}). Make one with: eventgate backup --verify --dsn '{dsn_mod.redact(dsn)}' "
        f"--backup-dir {directory}")


def _newest_backup(dsn: str, directory: Path) -> BackupRecord:
    database = dsn_mod.parse(dsn).get("dbname")
    if not database:
        raise BackupError(f"the DSN {dsn_mod.describe(dsn)} names no database; rehearse needs "
                          "the database whose backup to rehearse, e.g. postgresql://host/dbname")
    record = catalog.latest_verified(directory, database)
    if record is None:
        raise _no_backup(directory, database, dsn)
    problems = file_problems(record)
    if problems:
        raise BackupError(f"cannot rehearse from {record.dump_file}: {'; '.join(problems)}")
    return record


def rehearse(dsn: str, directory: Path | str, bundle: Bundle, *, reports: Path,
             keep: bool = False, progress: Progress | None = None,
             bindir: str | Path | None = None, suites: Sequence[str] = SUITES) -> Rehearsal:
    """Restore the newest verified backup of the database of `dsn` from `directory` into a
    scratch database and rehearse the bundle's migration there (see the module docstring); the
    gate writes its reports under `reports`. Raises BackupError when there is nothing to
    rehearse; what goes wrong during the rehearsal is in the result's `problems`."""
    report = progress or no_progress
    directory = Path(directory)
    record = _newest_backup(dsn, directory)
    maintenance = dsn_mod.with_dbname(dsn, MAINTENANCE_DB)
    stamp = datetime.now(UTC).strftime(databases.DB_STAMP)
    with databases.connect(maintenance, what=" (the maintenance database, to create the "
                           "scratch database)") as admin:
        tool = find_tool("pg_restore", databases.server_version(admin), bindir)
        scratch = databases.free_database_name(admin, record.database, f"_rehearse_{stamp}")
        result = Rehearsal(record.database, record.dump_file, scratch,
                           bundle.expectations.locks)
        report(f"creating scratch database {scratch}")
        databases.create_database_like(admin, scratch, record.database, same_owner=False)
        scratch_dsn = dsn_mod.with_dbname(maintenance, scratch)
        try:
            report(f"restoring {record.dump_file} into {scratch} (pg_restore {tool.version})")
            started = time.monotonic()
            run_pg_restore(tool, record.dump_path, maintenance, scratch,
                           keep_owners=databases.is_superuser(admin))
            result.restore_s = time.monotonic() - started
            _rehearse_on(scratch_dsn, bundle, result, reports, directory, suites, report)
        finally:
            if keep:
                result.kept_dsn = dsn_mod.redact(scratch_dsn)
            else:
                report(f"dropping scratch database {scratch}")
                databases.drop_database(admin, scratch)
    return result


def _rehearse_on(dsn: str, bundle: Bundle, result: Rehearsal, reports: Path,
                 directory: Path, suites: Sequence[str], report: Progress) -> None:
    """Each step on the restored scratch database, stopping at the first that cannot go on."""
    report("preflight")
    checked = run_preflight(dsn, Options(backup_dir=directory, skip_backup_check=True), bundle)
    result.preflight = ("ready" if checked.ok else
                        "not ready: " + ", ".join(c.name for c in checked.failed))
    if not checked.ok:
        result.problems.append(f"preflight failed on the restored backup: "
                               f"{'; '.join(c.detail for c in checked.failed)}")
        return
    try:
        _migrate(dsn, bundle, result, report)
    except EventgateError as exc:
        result.problems.append(f"the migration failed: {exc}")
        return
    report(f"the gate ({', '.join(suites)}) against the migrated scratch database")
    verdict = run_gate(dsn=dsn, bundle=str(bundle.root), scale=None, reports=reports,
                       pytest_args=[], suites=suites, log=reports / "gate.log")
    result.gate = "go" if verdict.go else "no-go: " + (verdict.problem or "; ".join(
        f"{f.suite}::{f.test}" for f in verdict.failed[:5])) + f" (log: {reports / 'gate.log'})"
    report("rollback round trip: rolling back to the base, then migrating and rolling back "
           "again")
    with _session(dsn) as conn:
        started = time.monotonic()
        Runner(conn, bundle, export_dir=reports / "rollback-exports").rollback(to=0)
        result.rollback_s = time.monotonic() - started
        checked_trip = round_trip_to_base(conn, bundle)
    result.round_trip = ("passed" if checked_trip.passed else
                         f"failed: {checked_trip.explain()}")


def _session(dsn: str) -> psycopg.Connection:
    return connect(dsn, application_name=APPLICATION_NAME, who="rehearse",
                   what=" (the scratch database)")


def _migrate(dsn: str, bundle: Bundle, result: Rehearsal, report: Progress) -> None:
    """The migration with the probes running; per migration its time, rows and waits."""
    sink = _Windows(report)
    recorder, shared = watch(dsn, bundle)
    with LockProbes(dsn, bundle, shared=shared) as probes, _session(dsn) as conn:
        runner = Runner(conn, bundle, progress=sink, observer=recorder)
        if not runner.pending():
            raise BackupError(f"the backup {result.backup} is already fully migrated: nothing "
                              "to rehearse")
        steps = runner.execute()
    result.problems += [f"lock probe: {e}" for e in probes.errors()]
    holds = recorder.holds()
    result.holds = [vars(h) for h in holds]
    result.problems += too_many_rows(holds, bundle.expectations.locks)
    for step in steps:
        since, until = sink.windows.get(step.label, (0.0, float("inf")))
        waits = []
        for kind in ("write", "read"):
            found = probes.longest(kind, since, until)
            waits.append(None if found is None else Wait(
                round(found[1].wait_s * 1000, 1),
                found[1].blocker.describe() if found[1].blocker else None))
        result.migrations.append(MigrationFigures(step.label, step.duration_s, step.rows,
                                                  waits[0], waits[1]))
