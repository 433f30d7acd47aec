"""Running a migration online: its phases (eventgate.migrate.phases) one transaction each, its
backfills a batch of keys per transaction, resumable from where a run stopped, and undone
part-way by its abort phases. Where it stands is eventgate.migrate.resume; the ledger row is
written only with the last phase, in its transaction, so the ledger never calls a migration
applied that is not."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, TypeVar

import psycopg
from psycopg import sql
from psycopg.errors import DeadlockDetected, LockNotAvailable, UniqueViolation

from eventgate.bundle import Migration
from eventgate.checks import snapshot
from eventgate.errors import MigrationError
from eventgate.migrate import ledger, locking, resume
from eventgate.migrate.phases import BOUNDS, Phase, PhasedScript
from eventgate.migrate.progress import BatchProgress, StepReport
from eventgate.migrate.statements import summary as statement_summary

if TYPE_CHECKING:
    from eventgate.migrate.runner import Runner

# A batch that meets a lock is tried again (it copies nothing twice: ON CONFLICT), many times:
# giving up would leave the run part-way for want of patience.
BATCH_RETRIES = 20
# A batch holds row locks on the rows it copied so far while it waits for the next one: it gives
# up a wait after this long (unless its line says otherwise), so that the writers waiting on it
# do not wait longer, and is tried again.
BATCH_LOCK_TIMEOUT_MS = 200

T = TypeVar("T")


class _MetACopy(Exception):
    """A batch's first try met a copy a trigger had made: the batch runs again as written."""


class OnlineRun:
    def __init__(self, runner: Runner, migration: Migration, script: PhasedScript) -> None:
        self.runner = runner
        self.conn = runner.conn
        self.migration = migration
        self.script = script
        self.report = StepReport(migration.version, migration.label)

    # -- forwards ----------------------------------------------------------------------------

    def apply(self) -> StepReport:
        started = time.perf_counter()
        resume.ensure(self.conn)
        state = resume.of(self.conn, self.migration.version)
        if state is not None and state.sha256 != self.migration.sha256:
            raise MigrationError(
                f"{self.migration.label} was edited while a run of it was part-way (sha256 "
                f"{state.sha256[:12]}… then, {self.migration.sha256[:12]}… now): {state.describe()}"
                "; restore the file it started with and run again to finish it, or roll it back "
                "(eventgate migrate --rollback) and start afresh")
        if state is not None:
            self.runner.progress.note(f"{state.describe()}; resuming")
        phases = self.script.after(state.phase) if state else self.script.forward
        self.runner.progress.begin(self.migration.label, sum(len(p.statements) for p in phases))
        for phase in phases:
            if phase.kind == "backfill":
                self._backfill(phase)
            elif phase.kind == "concurrently":
                self._concurrently(phase)
            else:
                self._transaction(phase, first=state is None and phase is phases[0],
                                  last=phase is self.script.forward[-1])
        self.report.duration_s = time.perf_counter() - started
        self.runner.progress.end(self.report)
        return self.report

    def _next(self, phase: Phase) -> str:
        names = [p.name for p in self.script.forward]
        return names[names.index(phase.name) + 1]

    def _transaction(self, phase: Phase, *, first: bool, last: bool) -> None:
        version = self.migration.version
        began = time.perf_counter()

        def attempt() -> None:
            with self.conn.transaction():
                self._lock_timeout(phase)
                before = snapshot.schema_fingerprint(self.conn) if first else None
                self._statements(phase)
                if first and last:  # one forward phase (and abort phases): nothing to resume
                    assert before is not None
                    ledger.record(self.conn, self.migration, time.perf_counter() - began, before)
                elif first:
                    assert before is not None
                    resume.start(self.conn, self.migration, self._next(phase), before)
                elif last:
                    state = resume.of(self.conn, version)
                    assert state is not None
                    took = self.conn.execute("SELECT extract(epoch FROM clock_timestamp() - %s)",
                                             (state.started_at,)).fetchone()
                    ledger.record(self.conn, self.migration, float(took[0]) if took else 0.0,
                                  state.schema_before)
                    resume.finish(self.conn, version)
                else:
                    resume.advance(self.conn, version, self._next(phase))

        try:
            self._retrying(attempt, f"{self.migration.label} ({phase.name})", phase)
        except MigrationError as exc:
            if first:
                raise  # nothing of the run was kept: the runner's own wording is true
            raise self._stopped(f"its {phase.name} phase: {exc}", f"the {phase.name} phase"
                                ) from exc

    def _stopped(self, where: str, resumes: str) -> MigrationError:
        return MigrationError(
            f"{self.migration.label} stopped in {where}. The run stays part-way, and the legacy "
            f"tables as the old application wrote them: fix the cause, then eventgate migrate "
            f"--execute resumes from {resumes}, or eventgate migrate --rollback undoes the run")

    def _backfill(self, phase: Phase) -> None:
        assert phase.table and phase.key
        version = self.migration.version
        table, key = sql.Identifier(phase.table), sql.Identifier(phase.key)
        state = resume.of(self.conn, version)
        assert state is not None
        if state.batch_upto is None:
            # The range is read once: rows added after this are carried by the triggers the
            # phases before installed, and the backfill must end.
            row = self.conn.execute(sql.SQL(
                "SELECT min({k}) - 1, max({k}), count(*) FROM {t}").format(k=key, t=table)
            ).fetchone()
            assert row is not None
            if row[1] is None:
                resume.advance(self.conn, version, self._next(phase))
                return
            resume.bound(self.conn, version, int(row[0]), int(row[1]), int(row[2]))
            state = resume.of(self.conn, version)
            assert state is not None and state.batch_after is not None
        after, upto = int(state.batch_after or 0), int(state.batch_upto or 0)
        meter = BatchProgress(self.migration.label, phase.table, state.keys_done,
                              state.keys_total or 0)
        window = sql.SQL(
            "SELECT max({k}), count(*) FROM (SELECT {k} FROM {t} WHERE {k} > %s AND {k} <= %s "
            "ORDER BY {k} LIMIT %s) b").format(k=key, t=table)
        statement = phase.statements[0]
        guard = (sql.SQL("SELECT {}(%s, %s)").format(sql.Identifier(*phase.guard.split(".")))
                 if phase.guard else None)
        summary = f"{phase.title}: " + statement_summary(statement)
        rows = self.runner.batch_rows or phase.rows
        pause = (self.runner.batch_pause_ms if self.runner.batch_pause_ms is not None
                 else phase.pause_ms) / 1000
        # Once a first try has met a row a trigger carried, the rest of the backfill runs as
        # written: a failed first try costs its batch twice and writes an ERROR line in the
        # server's log, so there is at most one per backfill.
        as_written = phase.first_try is None
        while after < upto:
            def attempt(after: int = after, as_written: bool = False) -> tuple[int, int, int]:
                first_try = None if as_written else phase.first_try
                with self.conn.transaction():
                    self._lock_timeout(phase)
                    t_batch = time.perf_counter()
                    found = self.conn.execute(window, (after, upto, rows)).fetchone()
                    hi = int(found[0]) if found and found[0] is not None else upto
                    keys = int(found[1]) if found else 0
                    self.conn.execute("SELECT set_config(%s, %s, true), set_config(%s, %s, true)",
                                      (BOUNDS[0], str(after), BOUNDS[1], str(hi)))
                    if guard is not None:
                        # Its own statement, before the batch's: the batch's snapshot is then
                        # taken with the guard's locks held.
                        self.conn.execute(guard, (after, hi))
                    self.runner.observe_before()
                    with self.conn.cursor() as cur:
                        try:
                            cur.execute((first_try or statement).encode())
                        except (LockNotAvailable, DeadlockDetected):
                            raise  # the batch is tried again
                        except UniqueViolation as exc:
                            if first_try is None:
                                raise self._stopped_batch(phase, after, hi, exc) from exc
                            raise _MetACopy from None  # the batch is rolled back, run as written
                        except psycopg.Error as exc:
                            raise self._stopped_batch(phase, after, hi, exc) from exc
                        copied = max(cur.rowcount, 0)
                    self.runner.observe(self.migration, summary, t_batch)
                    resume.batch_done(self.conn, version, hi, keys, copied)
                return hi, keys, copied

            t0 = time.perf_counter()
            what = f"{self.migration.label} ({phase.title}, keys after {after})"
            try:
                after, keys, copied = self._retrying(
                    partial(attempt, as_written=as_written), what, phase, retries=BATCH_RETRIES)
            except _MetACopy:
                meter.as_written_from = meter.batches + 1
                as_written = True
                after, keys, copied = self._retrying(
                    partial(attempt, as_written=True), what, phase, retries=BATCH_RETRIES)
            meter.add(keys, copied, time.perf_counter() - t0)
            self.runner.progress.batch(meter)
            if pause and after < upto:
                time.sleep(pause)
        self.report.statements.append(meter.statement_report(phase.statements[0]))
        resume.advance(self.conn, version, self._next(phase))

    def _stopped_batch(self, phase: Phase, after: int, upto: int, exc: psycopg.Error
                       ) -> MigrationError:
        return self._stopped(f"the backfill of {phase.table}, in the batch of keys after "
                             f"{after} up to {upto}: {str(exc).strip()}", "this batch")

    def _concurrently(self, phase: Phase) -> None:
        """Each statement in a transaction of its own (the connection is autocommit). A run cut
        short here (a failed statement, kill -9) leaves the indexes it was building INVALID:
        the next run drops them and runs the whole phase again, the rest skipped as built."""
        self._drop_invalid(phase)
        with self.conn.cursor() as cur:
            for statement in phase.statements:
                def attempt(statement: str = statement) -> None:
                    previous = self._session_lock_timeout(phase)
                    try:
                        self.report.statements.append(self.runner.execute_statement(
                            cur, self.migration, statement,
                            f"the phases before {phase.name} stay done (an index it left "
                            "INVALID is dropped and built again when the run resumes)"))
                    except (LockNotAvailable, DeadlockDetected):
                        self._drop_invalid(phase)  # what the given-up build left behind
                        raise
                    finally:
                        self.conn.execute("SELECT set_config('lock_timeout', %s, false)",
                                          (previous,))

                try:
                    self._retrying(attempt, f"{self.migration.label} ({phase.name})", phase,
                                   blockers=locking.open_transactions)
                except MigrationError as exc:
                    raise self._stopped(f"its {phase.name} phase: {exc}",
                                        f"the {phase.name} phase") from exc
        resume.advance(self.conn, self.migration.version, self._next(phase))

    def _session_lock_timeout(self, phase: Phase) -> str:
        row = self.conn.execute(
            "SELECT current_setting('lock_timeout'), set_config('lock_timeout', %s, false)",
            (f"{self._lock_timeout_ms(phase)}ms",)).fetchone()
        assert row is not None
        return str(row[0])

    def _drop_invalid(self, phase: Phase) -> None:
        for schema, name in phase.indexes:
            row = self.conn.execute(
                "SELECT i.indexrelid::regclass::text FROM pg_index i"
                " WHERE i.indexrelid = to_regclass(%s) AND NOT i.indisvalid",
                (f"{schema}.{name}" if schema else name,)).fetchone()
            if row is not None:
                self.runner.progress.note(f"{self.migration.label} ({phase.name}): dropping "
                                          f"the INVALID index {row[0]} a build cut short left")
                self.conn.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(
                    sql.Identifier(*((schema, name) if schema else (name,)))))

    # -- undoing -----------------------------------------------------------------------------

    def abort(self, state: resume.Progress) -> StepReport:
        """Undo a run stopped before its last phase: its abort phases, then the catalog is held
        to what it was before the run began, and the progress row goes with the last of them."""
        if not self.script.abort:
            raise MigrationError(
                f"{state.describe()}, and it has no abort phases (`-- eventgate:abort`) to undo "
                "it with; finish it with eventgate migrate --execute")
        started = time.perf_counter()
        self.runner.progress.begin(f"{self.migration.label} (undo)",
                                   sum(len(p.statements) for p in self.script.abort))
        for phase in self.script.abort:
            last = phase is self.script.abort[-1]

            def attempt(phase: Phase = phase, last: bool = last) -> None:
                with self.conn.transaction():
                    self._lock_timeout(phase)
                    self._statements(phase)
                    if last:
                        self._same_catalog(state)
                        resume.finish(self.conn, self.migration.version)

            self._retrying(attempt, f"undoing {self.migration.label} ({phase.name})", phase)
        self.report.duration_s = time.perf_counter() - started
        self.report.verified = "the catalog as it was before the run began"
        self.runner.progress.end(self.report)
        return self.report

    def _same_catalog(self, state: resume.Progress) -> None:
        if state.schema_before is None:
            return
        now = snapshot.schema_fingerprint(self.conn, like=state.schema_before)
        differ = sorted(k for k in set(now) | set(state.schema_before)
                        if now.get(k) != state.schema_before.get(k))
        if differ:
            raise MigrationError(
                f"undoing {self.migration.label} did not give back the catalog it started from "
                f"(differs in: {', '.join(differ)}); the undo was rolled back, the run stays "
                "part-way: fix its abort phases, or finish it with eventgate migrate --execute")

    # -- the parts ---------------------------------------------------------------------------

    def _lock_timeout_ms(self, phase: Phase) -> int:
        if phase.lock_timeout_ms:
            return phase.lock_timeout_ms
        if phase.kind == "backfill":
            return min(BATCH_LOCK_TIMEOUT_MS, self.runner.lock_timeout_ms)
        return self.runner.lock_timeout_ms

    def _lock_timeout(self, phase: Phase) -> None:
        self.conn.execute(f"SET LOCAL lock_timeout = {self._lock_timeout_ms(phase)}")

    def _statements(self, phase: Phase) -> None:
        with self.conn.cursor() as cur:
            for statement in phase.statements:
                self.report.statements.append(self.runner.execute_statement(
                    cur, self.migration, statement, f"its {phase.name} phase was undone"
                    if phase is not self.script.forward[0] or phase.kind == "abort"
                    else f"the database is as it was before {self.migration.label}"))

    def _retrying(self, attempt: Callable[[], T], what: str, phase: Phase,
                  retries: int | None = None,
                  blockers: Callable[[psycopg.Connection], str] = locking.table_lock_holders,
                  ) -> T:
        ms = self._lock_timeout_ms(phase)
        return locking.retry_on_lock_timeout(
            self.conn, attempt, what, retries if retries is not None else self.runner.lock_retries,
            ms, backoff_s=min(0.25, ms / 1000), max_pause_s=2.0, blockers=blockers,
            on_retry=lambda n, pause: self.runner.progress.note(
                f"{what}: lock_timeout or deadlock, retry {n} in {pause:.2f} s"))


def run_in_one_transaction(runner: Runner, script: PhasedScript,
                           execute: Callable[[str], None]) -> None:
    """The dry run's way: every forward phase in the caller's transaction, each backfill once
    over its whole table, a concurrently phase without CONCURRENTLY."""
    for phase in script.forward:
        if phase.kind == "backfill":
            runner.conn.execute(
                "SELECT set_config(%s, '-9223372036854775808', true), "
                "set_config(%s, '9223372036854775807', true)", BOUNDS)
        for statement in (phase.in_transaction if phase.kind == "concurrently"
                          else phase.statements):
            execute(statement)

