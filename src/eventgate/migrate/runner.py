"""The migration runner: plan, dry-run, execute, validate and roll back a bundle's migrations,
one transaction per migration, under an advisory lock, with a ledger of checksums."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import psycopg
from psycopg import sql

from eventgate.bundle import Bundle, Migration, SqlFile
from eventgate.checks import snapshot
from eventgate.errors import MigrationError
from eventgate.migrate import exports, ledger, locking
from eventgate.migrate.sqlsplit import split_statements, summary


@dataclass(frozen=True)
class StatementReport:
    summary: str
    status: str
    rows: int | None
    duration_s: float


@dataclass
class StepReport:
    version: int
    label: str
    statements: list[StatementReport] = field(default_factory=list)
    duration_s: float = 0.0
    exported: list[exports.ExportedSet] = field(default_factory=list)
    verified: str | None = None  # what a rollback was checked against, when it was

    @property
    def rows(self) -> int:
        return sum(s.rows or 0 for s in self.statements)


@dataclass(frozen=True)
class StatusRow:
    version: int
    label: str
    state: str  # applied | pending | edited | missing-file
    entry: ledger.LedgerEntry | None


@dataclass(frozen=True)
class _LegacyBefore:
    """What answered to the legacy names before a rollback step, and, when the step changes
    that (010's rollback brings the tables back), their rows' checksums."""

    identity: dict[str, tuple[int, int, str]]
    content: dict[str, tuple[int, str]] | None
    written: dict[str, int]  # this session's pending row counts per table (pg_stat_xact)


class ProgressSink(Protocol):
    def begin(self, label: str, statements: int) -> None: ...
    def statement(self, text: str) -> None: ...
    def end(self, report: StepReport) -> None: ...
    def note(self, text: str) -> None: ...


class NullProgress:
    def begin(self, label: str, statements: int) -> None:
        pass

    def statement(self, text: str) -> None:
        pass

    def end(self, report: StepReport) -> None:
        pass

    def note(self, text: str) -> None:
        pass


class _DryRunRollback(Exception):
    """Raised inside the dry-run transaction so that psycopg rolls it back."""


def ledger_problems(entries: list[ledger.LedgerEntry], bundle: Bundle) -> list[str]:
    """What is wrong between the ledger and the files: edited, missing, applied out of order."""
    problems = []
    files = {m.version: m for m in bundle.migrations}
    applied = {e.version for e in entries}
    for entry in entries:
        migration = files.get(entry.version)
        if migration is None:
            problems.append(
                f"the ledger records {entry.version:03d} ({entry.name}) as applied, but the "
                f"bundle has no such migration; restore the file to {bundle.root / 'migrations'}"
            )
        elif migration.sha256 != entry.sha256:
            problems.append(
                f"{migration.label} was edited after it was applied (ledger sha256 "
                f"{entry.sha256[:12]}…, file {migration.sha256[:12]}…); restore the applied "
                "version from version control, or roll it back before changing it"
            )
    if applied:
        newest = max(applied)
        for version in sorted(files):
            if version < newest and version not in applied:
                problems.append(
                    f"{files[version].label} is not applied but a later migration "
                    f"({newest:03d}) is: the migrations were applied out of order"
                )
    return problems


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
        self.warnings: list[str] = []
        self._export_batch: Path | None = None

    # -- reading -----------------------------------------------------------------------------

    def entries(self) -> list[ledger.LedgerEntry]:
        return ledger.entries(self.conn)

    def pending(self, to: int | None = None) -> list[Migration]:
        """Migrations not applied yet, in order; with `to`, only those up to that version."""
        # A version of the bundle, or one before the first (nothing to apply).
        if to is not None and to not in self.bundle.versions and to >= min(self.bundle.versions):
            known = ", ".join(f"{v:03d}" for v in self.bundle.versions)
            raise MigrationError(f"--to {to:03d} is not a migration of the bundle ({known}); "
                                 "nothing was changed")
        applied = {e.version for e in self.entries()}
        return [m for m in self.bundle.migrations
                if m.version not in applied and (to is None or m.version <= to)]

    def status(self) -> list[StatusRow]:
        entries = {e.version: e for e in self.entries()}
        rows = []
        for m in self.bundle.migrations:
            entry = entries.pop(m.version, None)
            state = "pending" if entry is None else (
                "applied" if entry.sha256 == m.sha256 else "edited")
            rows.append(StatusRow(m.version, m.label, state, entry))
        rows += [StatusRow(e.version, f"{e.name}.sql", "missing-file", e)
                 for e in entries.values()]
        return sorted(rows, key=lambda r: r.version)

    def validate(self) -> list[str]:
        """Everything wrong with the applied migrations; an empty list means complete and
        intact. The schema expectations are the gates' business (eventgate.checks)."""
        entries = self.entries()
        problems = ledger_problems(entries, self.bundle)
        applied = {e.version for e in entries}
        missing = [m.label for m in self.bundle.migrations if m.version not in applied]
        if missing:
            problems.append(f"not applied yet: {', '.join(missing)}; run eventgate migrate "
                            "--execute")
        return problems

    # -- writing -----------------------------------------------------------------------------

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

    def _set_lock_timeout(self) -> None:
        self.conn.execute(f"SET LOCAL lock_timeout = {int(self.lock_timeout_ms)}")

    def _run_script(self, script: SqlFile) -> StepReport:
        statements = split_statements(script.sql)
        report = StepReport(script.version, script.label)
        self.progress.begin(script.label, len(statements))
        started = time.perf_counter()
        self._set_lock_timeout()
        with self.conn.cursor() as cur:
            for statement in statements:
                text = summary(statement)
                self.progress.statement(text)
                t0 = time.perf_counter()
                try:
                    cur.execute(statement.encode())
                except (psycopg.errors.LockNotAvailable, psycopg.errors.DeadlockDetected):
                    raise
                except psycopg.Error as exc:
                    raise MigrationError(
                        f"{script.label} failed at `{text}`: {str(exc).strip()}; the "
                        "transaction was rolled back, so the database is as it was before "
                        f"{script.label}"
                    ) from exc
                rows = cur.rowcount if cur.rowcount >= 0 else None
                report.statements.append(StatementReport(
                    text, cur.statusmessage or "", rows, time.perf_counter() - t0))
        report.duration_s = time.perf_counter() - started
        return report

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
        exported: list[exports.ExportedSet] = []

        def prepare() -> _LegacyBefore:
            exported.clear()
            plan = self.bundle.rollback_exports.get(migration.version)
            if plan is not None and self.export_dir is not None:
                if self._export_batch is None:
                    self._export_batch = exports.export_directory(self.export_dir,
                                                                  self.conn.info.dbname)
                exported.extend(exports.write_exports(self.conn, plan, self._export_batch))
                # The script refuses to drop these rows unless told they are safe on disk.
                self.conn.execute("SELECT set_config('eventgate.exported', %s, true)",
                                  (f"{migration.version:03d}",))
            if not self.verify_rollbacks:
                return _LegacyBefore({}, None, {})
            identity = self._legacy_identity()
            if not self._swaps_legacy_names(entry, identity):
                # Tables that stay tables: this session's row counters (pg_stat_xact) and their
                # identity prove them untouched, without reading them or blocking writers.
                return _LegacyBefore(identity, None, self._written_rows(identity))
            # Writers wait for this step: a write committed between the two readings would
            # otherwise look like a difference the rollback made.
            self._lock_legacy_names(identity)
            return _LegacyBefore(identity, self._legacy_content(identity), {})

        def bookkeeping(report: StepReport, legacy_before: _LegacyBefore) -> None:
            if self.verify_rollbacks:
                report.verified = self._verify_rollback(migration, entry, legacy_before)
            ledger.remove(self.conn, migration.version)

        report = self._transact(rollback, bookkeeping, prepare)
        report.exported = list(exported)
        if exported:
            # Only now, after COMMIT: files of an attempt that was retried or undone are
            # overwritten or never listed.
            exports.add_to_manifest(Path(exported[0].path).parent, exported,
                                    self.conn.info.dbname)
            self.warnings.append(
                f"rolling back {migration.label} deleted what the legacy schema cannot hold; it "
                f"was exported first: " + ", ".join(f"{e.rows} {e.name}" for e in exported)
                + f" in {Path(exported[0].path).parent} (CSV with header, manifest.json lists "
                "rows and sha256); load them back after migrating again, e.g. \\copy "
                f"{exported[0].name} FROM '{exported[0].path}' CSV HEADER")
        return report

    def _lock_legacy_names(self, names: Iterable[str]) -> None:
        """SHARE on the legacy tables, or on the views holding their names (which locks the
        tables behind them too): reads go on, writes wait until this step commits."""
        names = list(names)
        if names:
            self.conn.execute(sql.SQL("LOCK TABLE {} IN SHARE MODE").format(
                sql.SQL(", ").join(sql.Identifier("public", n) for n in names)))

    def _legacy_identity(self) -> dict[str, tuple[int, int, str]]:
        """What answers to each legacy name: (oid, relfilenode, relkind)."""
        found = {}
        for name in self.bundle.mapping:
            row = self.conn.execute(
                "SELECT c.oid::int8, c.relfilenode::int8, c.relkind::text FROM pg_class c "
                "WHERE c.oid = to_regclass(%s)", (f"public.{name}",)).fetchone()
            if row:
                found[name] = (int(row[0]), int(row[1]), str(row[2]))
        return found

    @staticmethod
    def _swaps_legacy_names(entry: ledger.LedgerEntry,
                            identity: dict[str, tuple[int, int, str]]) -> bool:
        """Whether this rollback changes what answers to a legacy name (a view becomes the
        table again), judged by the catalog recorded before its migration; when in doubt, yes.
        Only plain tables that stay plain tables take the cheap proof."""
        if entry.schema_before is None:
            return True
        before = {row[1]: row[2] for row in entry.schema_before.get("relations", [])
                  if row[0] == "public"}
        return any(kind != "r" or before.get(name) != kind
                   for name, (_, _, kind) in identity.items())

    def _written_rows(self, identity: dict[str, tuple[int, int, str]]) -> dict[str, int]:
        """Rows this session has inserted, updated or deleted in each table and not yet
        reported to the statistics: earlier transactions' counts may still be among them, so
        only the growth within one transaction says anything."""
        counts = {}
        for name, (oid, _, _) in identity.items():
            row = self.conn.execute(
                "SELECT n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_xact_user_tables "
                "WHERE relid = %s", (oid,)).fetchone()
            counts[name] = int(row[0]) if row else 0
        return counts

    def _untouched_tables(self, before: _LegacyBefore) -> list[str]:
        """Problems, if this transaction replaced or wrote to any of these tables."""
        problems = []
        now = self._legacy_identity()
        written = self._written_rows(before.identity)
        for name, was in before.identity.items():
            if now.get(name) != was:
                problems.append(f"{name} was dropped, replaced or truncated")
            elif written[name] != before.written.get(name, 0):
                problems.append(f"{name}: the rollback inserted, updated or deleted "
                                f"{written[name] - before.written.get(name, 0)} rows")
        return problems

    def _legacy_content(self, names: Iterable[str]) -> dict[str, tuple[int, str]]:
        """Checksums of whatever answers to the legacy names now: tables, or the views."""
        return {name: snapshot.relation_checksum(self.conn, "public", name)
                for name in names}

    def _verify_rollback(self, migration: Migration, entry: ledger.LedgerEntry,
                         before: _LegacyBefore) -> str:
        """Inside the rollback's transaction: the catalog is what it was before the migration,
        and the legacy names show the same rows as before the rollback. Otherwise raise, which
        undoes this step."""
        problems = []
        if entry.schema_before is None:
            self.warnings.append(f"{migration.label}: the schema after its rollback was not "
                                 "compared, because its ledger row predates schema recording")
        else:
            now = snapshot.schema_fingerprint(self.conn)
            problems += [f"schema {line}" for line in
                         snapshot.differences(dict(entry.schema_before), dict(now))]
        if before.content is None:
            problems += self._untouched_tables(before)
        legacy_before = before.content or {}
        legacy_after = (self._legacy_content(self._legacy_identity())
                        if before.content is not None else {})
        for name, (rows, checksum) in legacy_before.items():
            after = legacy_after.get(name)
            if after is None:
                problems.append(f"{name} is gone")
            elif after != (rows, checksum):
                problems.append(f"{name} held {rows} rows before the rollback and {after[0]} "
                                "after" if after[0] != rows else
                                f"{name}: same {rows} rows in number, different content")
        if problems:
            raise MigrationError(
                f"the rollback of {migration.label} did not give back what was there: "
                + "; ".join(problems) + f". Nothing was rolled back for {migration.label} (its "
                "transaction was undone). Fix the rollback script, or restore the verified "
                "backup: eventgate restore --latest")
        how = "same rows" if before.content is not None else "not written to"
        return ("schema as before the migration" if entry.schema_before is not None
                else "schema not compared") + (f", {len(before.identity)} legacy relations "
                                               f"unchanged ({how})")

    def execute(self, to: int | None = None) -> list[StepReport]:
        """Apply every pending migration (or those up to `to`), each in its own transaction
        with its ledger row."""
        with self._runner_lock():
            self._refuse_on_ledger_problems()
            ledger.ensure(self.conn)
            return [self._apply(m) for m in self.pending(to)]

    def dry_run(self, to: int | None = None) -> list[StepReport]:
        """Run the pending migrations in one transaction and roll it back, reporting what each
        statement did. Sequences are compared before and after, since PostgreSQL never rolls
        them back; any that moved are listed in `self.warnings` (on a live database, other
        sessions' traffic moves them too)."""
        with self._runner_lock():
            self._refuse_on_ledger_problems()
            before = self._sequence_positions()

            def attempt() -> list[StepReport]:
                reports: list[StepReport] = []
                try:
                    with self.conn.transaction():
                        ledger.ensure(self.conn)
                        for migration in self.pending(to):
                            report = self._run_script(migration)
                            ledger.record(self.conn, migration, report.duration_s)
                            self.progress.end(report)
                            reports.append(report)
                        raise _DryRunRollback
                except _DryRunRollback:
                    pass
                return reports

            reports = locking.retry_on_lock_timeout(
                self.conn, attempt, "the dry run", self.lock_retries, self.lock_timeout_ms)
            moved = sorted(k for k, v in self._sequence_positions().items() if before.get(k) != v)
            if moved:
                self.warnings.append(
                    f"sequences moved during the dry run and stay moved (PostgreSQL does not roll "
                    f"back nextval/setval): {', '.join(moved)}; if no other session used them, a "
                    "migration calls nextval or setval (ALTER SEQUENCE ... RESTART is "
                    "transactional)")
            return reports

    def _sequence_positions(self) -> dict[str, tuple[object, object]]:
        return snapshot.sequence_positions(self.conn)

    def rollback(self, to: int | None = None) -> list[StepReport]:
        """Roll back applied migrations newer than `to` (default: only the newest), newest
        first, each in its own transaction."""
        with self._runner_lock():
            self._refuse_on_ledger_problems()
            applied = [e.version for e in self.entries()]
            if not applied:
                return []
            # Without a target, only the newest goes: back to the one applied before it.
            target = to if to is not None else [0, *applied][-2]
            # Every script is found before anything is rolled back.
            migrations = [self.bundle.migration(v)
                          for v in sorted((v for v in applied if v > target), reverse=True)]
            ledger.ensure(self.conn)
            entries = {e.version: e for e in self.entries()}
            self._export_batch = None
            return [self._unapply(m, entries[m.version]) for m in migrations]
