"""The migration runner: dry-run, execute and roll back a bundle's migrations, one transaction
per migration, under an advisory lock, with a ledger of checksums.

What a run would do is read in eventgate.migrate.plan, what it reports in .progress, and how a
rollback step is proven to give back what was there in .rollback_check; the names are importable
from here too."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

import psycopg

from eventgate.bundle import Bundle, LockBudget, Migration, SqlFile
from eventgate.checks import snapshot
from eventgate.errors import MigrationError
from eventgate.migrate import exports, ledger, locking, plan, resume
from eventgate.migrate.lock_budget import (
    BudgetGuard,
    DryRunOverBudget,
    first_wait_ms,
    is_budget_timeout,
)
from eventgate.migrate.online import OnlineRun, run_in_one_transaction
from eventgate.migrate.phases import PhasedScript, read_phases
from eventgate.migrate.plan import StatusRow, ledger_problems
from eventgate.migrate.progress import NullProgress, ProgressSink, StatementReport, StepReport
from eventgate.migrate.rollback_check import NOT_TAKEN, LegacyBefore, RollbackCheck
from eventgate.migrate.statements import split_statements, summary

__all__ = ["DryRunOverBudget", "NullProgress", "ProgressSink", "Runner", "StatementReport",
           "StatusRow", "StepReport", "ledger_problems"]


class StatementObserver(Protocol):
    """Told of every statement just before and once it ran, inside its transaction."""

    def before(self, conn: psycopg.Connection) -> None: ...

    def after(self, conn: psycopg.Connection, script: str, statement: str, started: float,
              seconds: float) -> None: ...


class _DryRunRollback(Exception):
    """Raised inside the dry-run transaction so that psycopg rolls it back."""


class Runner:
    def __init__(
        self,
        conn: psycopg.Connection,
        bundle: Bundle,
        *,
        lock_wait_s: float = 30.0,
        lock_timeout_ms: int = 5000,
        lock_retries: int = 5,
        progress: ProgressSink | None = None,
        export_dir: Path | None = None,
        verify_rollbacks: bool = True,
        lock_budget: LockBudget | None = None,
        batch_rows: int | None = None,
        batch_pause_ms: int | None = None,
        observer: StatementObserver | None = None,
    ) -> None:
        if not conn.autocommit:
            raise ValueError("the runner needs an autocommit connection; it opens its own "
                             "transactions")
        self.conn = conn
        self.bundle = bundle
        self.lock_wait_s = lock_wait_s
        self.lock_timeout_ms = lock_timeout_ms
        self.lock_retries = lock_retries
        self.progress: ProgressSink = progress or NullProgress()
        self.export_dir = export_dir
        self.verify_rollbacks = verify_rollbacks
        # How long the dry run may make the old application wait (expectations.toml [locks]).
        self.lock_budget = lock_budget or bundle.expectations.locks
        self.warnings: list[str] = []
        self._export_batch: Path | None = None
        self._statements: dict[Path, list[str]] = {}
        self._phases: dict[Path, PhasedScript] = {}
        # An online migration's backfill batches (None: what its script says).
        self.batch_rows = batch_rows
        self.batch_pause_ms = batch_pause_ms
        # Told of every statement once it ran, inside its transaction (the lock gate's recorder).
        self.observer = observer

    # -- reading -----------------------------------------------------------------------------

    def entries(self) -> list[ledger.LedgerEntry]:
        return ledger.entries(self.conn)

    def pending(self, to: int | None = None) -> list[Migration]:
        """Migrations not applied yet, in order; with `to`, only those up to that version."""
        return plan.pending(self.entries(), self.bundle, to)

    def status(self) -> list[StatusRow]:
        part_way = {p.version for p in resume.read(self.conn)}
        return [StatusRow(r.version, r.label, "part-way", r.entry)
                if r.version in part_way and r.state == "pending" else r
                for r in plan.status(self.entries(), self.bundle)]

    def part_way(self) -> list[resume.Progress]:
        """Online migrations a run left part-way (killed, or stopped by an error)."""
        return resume.read(self.conn)

    def validate(self) -> list[str]:
        """Everything wrong with the applied migrations; an empty list means complete and
        intact. The schema expectations are the gates' business (eventgate.checks)."""
        return [f"{p.describe()}: eventgate migrate --execute finishes it, --rollback undoes it"
                for p in resume.read(self.conn)] + plan.validate(self.entries(), self.bundle)

    # -- writing -----------------------------------------------------------------------------

    def execute(self, to: int | None = None) -> list[StepReport]:
        """Apply every pending migration (or those up to `to`), each in its own transaction
        with its ledger row."""
        with self._runner_lock():
            self._refuse_on_ledger_problems()
            migrations = self.pending(to)
            self._parse_first(migrations)
            ledger.ensure(self.conn)
            return [self._apply(m) for m in migrations]

    def dry_run(self, to: int | None = None) -> list[StepReport]:
        """Run the pending migrations in one transaction and roll it back, reporting what each
        statement did, within the bundle's lock budget (eventgate.migrate.lock_budget: a dry
        run that would keep writers waiting longer stops with DryRunOverBudget). Sequences are
        compared before and after, since PostgreSQL never rolls them back; any that moved are
        listed in `self.warnings` (on a live database, other sessions' traffic moves them
        too)."""
        with self._runner_lock():
            self._refuse_on_ledger_problems()
            self._parse_first(self.pending(to))
            part_way = resume.read(self.conn)
            if part_way:
                raise MigrationError(f"{part_way[0].describe()}; a dry run rehearses migrations "
                                     "from their start: finish it (eventgate migrate --execute) "
                                     "or undo it (--rollback) first; nothing was changed")
            before = snapshot.sequence_positions(self.conn)
            reports = locking.retry_on_lock_timeout(
                self.conn, lambda: self._dry_run_attempt(to), "the dry run",
                self.lock_retries, min(self.lock_timeout_ms,
                                       int(first_wait_ms(self.lock_budget))))
            moved = sorted(k for k, v in snapshot.sequence_positions(self.conn).items()
                           if before.get(k) != v)
            if moved:
                self.warnings.append(
                    f"sequences moved during the dry run and stay moved (PostgreSQL does not roll "
                    f"back nextval/setval): {', '.join(moved)}; if no other session used them, a "
                    "migration calls nextval or setval (ALTER SEQUENCE ... RESTART is "
                    "transactional)")
            return reports

    def _dry_run_attempt(self, to: int | None) -> list[StepReport]:
        reports: list[StepReport] = []
        try:
            with self.conn.transaction():
                guard = BudgetGuard(self.conn, self.lock_budget, self.lock_timeout_ms)
                guard.start()
                ledger.ensure(self.conn)
                pending = self.pending(to)
                for n, migration in enumerate(pending):
                    guard.not_rehearsed = [m.label for m in pending[n + 1:]]
                    report = self._run_script(migration, guard, reports)
                    guard.before()
                    try:
                        ledger.record(self.conn, migration, report.duration_s)
                    except psycopg.Error as exc:
                        if guard.holding and is_budget_timeout(exc):
                            raise guard.over_budget(migration.label, "(its ledger row)", reports,
                                                    "the budget ran out") from exc
                        raise
                    self.progress.end(report)
                    reports.append(report)
                raise _DryRunRollback
        except _DryRunRollback:
            pass
        return reports

    def rollback(self, to: int | None = None) -> list[StepReport]:
        """Roll back applied migrations newer than `to` (default: only the newest), newest
        first, each in its own transaction."""
        with self._runner_lock():
            self._refuse_on_ledger_problems()
            undone = [self._undo_part_way(part) for part in resume.read(self.conn)]
            applied = self.entries()
            if not applied or (undone and to is None):
                return undone
            migrations = plan.to_roll_back(applied, self.bundle, to)
            self._parse_first(m.rollback for m in migrations if m.rollback is not None)
            ledger.ensure(self.conn)
            entries = {e.version: e for e in self.entries()}
            self._export_batch = None
            return undone + [self._unapply(m, entries[m.version]) for m in migrations]

    def _undo_part_way(self, part: resume.Progress) -> StepReport:
        """A run stopped before its last phase is undone by the script's abort phases: it is
        not in the ledger, so the rollback script (which undoes a finished run) does not fit."""
        migration = self.bundle.migration(part.version)
        if migration.sha256 != part.sha256:
            # Allowed: the file is often edited because a phase of it failed. Its abort phases
            # now on disk do the undo, and the catalog is still held to what it was before the
            # run began, so an undo that does not fit the run is refused, not half done.
            self.warnings.append(
                f"{migration.label} was edited since the part-way run began (sha256 "
                f"{part.sha256[:12]}… then, {migration.sha256[:12]}… now): undone with the "
                "abort phases of the file as it is now")
        return OnlineRun(self, migration, self._phases_of(migration)).abort(part)

    # -- the steps ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _runner_lock(self) -> Iterator[None]:
        if self.conn.info.server_version >= 140000:
            # If this process dies (kill -9, a lost laptop lid), the server notices within a
            # second even mid-statement and rolls the migration back, instead of running it to
            # the end and holding its locks meanwhile.
            self.conn.execute("SET client_connection_check_interval = '1s'")
        locking.acquire_runner_lock(self.conn, self.lock_wait_s)
        try:
            yield
        finally:
            locking.release_runner_lock(self.conn)

    def _refuse_on_ledger_problems(self) -> None:
        problems = ledger_problems(self.entries(), self.bundle)
        if problems:
            raise MigrationError("nothing was changed, because the ledger and the bundle "
                                 "disagree:\n  - " + "\n  - ".join(problems))

    def _parse_first(self, scripts: Iterable[SqlFile]) -> None:
        """Every script split into statements before anything runs: one that does not parse
        stops the run before anything changed, not after the migrations before it."""
        for script in scripts:
            self._statements_of(script)
            if isinstance(script, Migration):
                self._phases_of(script)

    def _phases_of(self, script: SqlFile) -> PhasedScript:
        if script.path not in self._phases:
            self._phases[script.path] = read_phases(script)
        return self._phases[script.path]

    def _statements_of(self, script: SqlFile) -> list[str]:
        if script.path not in self._statements:
            self._statements[script.path] = split_statements(script.sql, script.label)
        return self._statements[script.path]

    def _set_lock_timeout(self) -> None:
        self.conn.execute(f"SET LOCAL lock_timeout = {int(self.lock_timeout_ms)}")

    def _run_script(self, script: SqlFile, guard: BudgetGuard | None = None,
                    done: list[StepReport] | None = None) -> StepReport:
        """Run one script's statements; with a dry run's `guard`, each within what is left of
        the lock budget (`done`: the scripts before it, for the report when it runs out)."""
        statements = self._statements_of(script)
        report = StepReport(script.version, script.label)
        self.progress.begin(script.label, len(statements))
        started = time.perf_counter()
        self._set_lock_timeout()
        phased = self._phases_of(script) if isinstance(script, Migration) else None
        with self.conn.cursor() as cur:
            if phased is not None and phased.online:
                run_in_one_transaction(self, phased, lambda statement: report.statements
                                       .append(self._execute(cur, script, statement, guard,
                                                             done or [])))
            else:
                for statement in statements:
                    report.statements.append(
                        self._execute(cur, script, statement, guard, done or []))
        report.duration_s = time.perf_counter() - started
        return report

    def observe_before(self) -> None:
        if self.observer is not None:
            self.observer.before(self.conn)

    def observe(self, script: SqlFile, text: str, started: float) -> None:
        if self.observer is not None:
            self.observer.after(self.conn, script.label, text, started,
                                time.perf_counter() - started)

    def execute_statement(self, cur: psycopg.Cursor[Any], script: SqlFile, statement: str,
                          undone: str) -> StatementReport:
        """One statement of a script, reported; a failure is a MigrationError naming it and
        saying what the rollback of its transaction `undone`."""
        return self._execute(cur, script, statement, None, [], undone)

    def _execute(self, cur: psycopg.Cursor[Any], script: SqlFile, statement: str,
                 guard: BudgetGuard | None, done: list[StepReport],
                 undone: str | None = None) -> StatementReport:
        text = summary(statement)
        self.progress.statement(text)
        if guard is not None:
            guard.before()
        self.observe_before()
        t0 = time.perf_counter()
        began = time.monotonic()
        try:
            cur.execute(statement.encode())
        except psycopg.Error as exc:
            if guard is not None and guard.holding and is_budget_timeout(exc):
                raise guard.over_budget(script.label, text, done, "the rest of the budget ran "
                                        "out while it ran") from exc
            if isinstance(exc, psycopg.errors.LockNotAvailable | psycopg.errors.DeadlockDetected):
                raise  # retried by locking.retry_on_lock_timeout
            raise MigrationError(
                f"{script.label} failed at `{text}`: {str(exc).strip()}; the "
                "transaction was rolled back, so "
                + (undone or f"the database is as it was before {script.label}")
            ) from exc
        self.observe(script, text, t0)
        if guard is not None:
            guard.after(began)
            if guard.spent() is not None:
                raise guard.over_budget(script.label, text, done, "it ran past the budget")
        rows = cur.rowcount if cur.rowcount >= 0 else None
        return StatementReport(text, cur.statusmessage or "", rows, time.perf_counter() - t0)

    def _transact(self, script: SqlFile, bookkeeping: Callable[[StepReport, Any], None],
                  prepare: Callable[[], Any] = lambda: None) -> StepReport:
        """Run one script and its ledger change in one transaction, retried on lock trouble;
        what `prepare` returns (run first, in the same transaction) goes to `bookkeeping`."""

        def attempt() -> StepReport:
            with self.conn.transaction():
                # Reading the catalog first can wait on a table lock too (information_schema
                # takes AccessShare); that wait is bounded and retried like the script's.
                self._set_lock_timeout()
                before = prepare()
                report = self._run_script(script)
                bookkeeping(report, before)
            return report

        report = locking.retry_on_lock_timeout(
            self.conn, attempt, script.label, self.lock_retries, self.lock_timeout_ms,
            on_retry=lambda n, pause: self.progress.note(
                f"{script.label}: lock_timeout or deadlock, retry {n} in {pause:.2f} s"),
        )
        self.progress.end(report)
        return report

    def _apply(self, migration: Migration) -> StepReport:
        phased = self._phases_of(migration)
        if phased.online:
            return OnlineRun(self, migration, phased).apply()
        return self._transact(
            migration,
            lambda report, schema_before: ledger.record(
                self.conn, migration, report.duration_s, schema_before),
            prepare=lambda: snapshot.schema_fingerprint(self.conn))

    def _unapply(self, migration: Migration, entry: ledger.LedgerEntry) -> StepReport:
        assert migration.rollback is not None
        rollback = migration.rollback
        if entry.rollback_sha256 and entry.rollback_sha256 != rollback.sha256:
            self.warnings.append(
                f"{rollback.label} changed since {migration.label} was applied (sha256 "
                f"{entry.rollback_sha256[:12]}… then, {rollback.sha256[:12]}… now)")
        check = RollbackCheck(self.conn, self.bundle.legacy_tables)
        exported: list[exports.ExportedSet] = []

        def prepare() -> LegacyBefore:
            exported[:] = self._export_before_rollback(migration)
            return check.before(entry) if self.verify_rollbacks else NOT_TAKEN

        def bookkeeping(report: StepReport, legacy_before: LegacyBefore) -> None:
            if self.verify_rollbacks:
                report.verified = check.verify(migration, entry, legacy_before,
                                               self.warnings.append)
            ledger.remove(self.conn, migration.version)

        report = self._transact(rollback, bookkeeping, prepare)
        report.exported = list(exported)
        if exported:
            # Only now, after COMMIT: files of an attempt that was retried or undone are
            # overwritten or never listed.
            exports.add_to_manifest(Path(exported[0].path).parent, exported,
                                    self.conn.info.dbname)
            self.warnings.append(exports.exported_warning(migration.label, exported))
        return report

    def _export_before_rollback(self, migration: Migration) -> list[exports.ExportedSet]:
        """Inside the rollback's transaction, before its script: the rows it would delete that
        the legacy schema cannot hold, written to CSV (the bundle's rollback.toml)."""
        rows_plan = self.bundle.rollback_exports.get(migration.version)
        if rows_plan is None or self.export_dir is None:
            return []
        if self._export_batch is None:
            self._export_batch = exports.export_directory(self.export_dir, self.conn.info.dbname)
        written = exports.write_exports(self.conn, rows_plan, self._export_batch)
        # The script refuses to drop these rows unless told they are safe on disk.
        self.conn.execute("SELECT set_config('eventgate.exported', %s, true)",
                          (f"{migration.version:03d}",))
        return written
