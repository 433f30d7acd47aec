"""The lock gate: what the old application feels while the bundle migrates a database.

While the runner applies every pending migration to a clone, a writer and a reader per legacy
name, and per table the legacy tables reference (tenants: shared by both applications), time
their lock waits (eventgate.migrate.lock_probe). After each statement, inside the migration's
transaction, a recorder reads the locks the migration holds (pg_locks) and the rows it has read
and written so far (pg_stat_xact_user_tables). Two budgets of expectations.toml [locks] judge it:

- the longest wait the probes measured, against max_write_wait_ms and max_read_wait_ms: at the
  clone's volume;
- the rows the migration read or wrote while it held a lock that makes a writer of a watched
  table wait (SHARE and stronger; readers: ACCESS EXCLUSIVE), against max_rows_under_write_lock.
  A hold's length grows with those rows, so this is what the wait becomes at production volume,
  measured on any volume: an online migration holds such locks only over a handful of rows (a
  trigger created, a name switched), a blocking one over the whole copy.

A breach names the statement that took the lock, the mode, the table, how long it was held and
over how many rows. Every statement's locks go into the result's data, for the report."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg

from eventgate.bundle import Bundle, LockBudget
from eventgate.checks.result import CheckResult
from eventgate.migrate.lock_probe import APPLICATION_NAME, LockProbes
from eventgate.pg.connect import connect

CHECK = "lock waits"
WRITER_BLOCKING = ("ShareLock", "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock")
# A statement's table locks, and the rows of user tables its transaction touched so far.
_LOCKS = """
SELECT l.relation::regclass::text, l.mode
  FROM pg_locks l
 WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND l.granted
   AND l.relation::regclass::text = ANY(%s)"""
_TOUCHED = """
SELECT now()::text, coalesce(sum(seq_tup_read + coalesce(idx_tup_fetch, 0) + n_tup_ins
                                 + n_tup_upd + n_tup_del), 0)::bigint
  FROM pg_stat_xact_user_tables"""
MAX_DETAILS = 12


@dataclass
class Statement:
    script: str
    text: str
    transaction: str  # its transaction's start time: statements of one transaction share it
    started: float
    seconds: float
    touched: int  # rows read or written by the statement
    locks: list[tuple[str, str]]  # watched tables and modes held once it ran


@dataclass
class Hold:
    """A lock that makes a writer (or reader) of a watched table wait, from the statement that
    took it to the end of its transaction."""

    relation: str
    mode: str
    script: str
    statement: str
    seconds: float
    rows: int

    def describe(self) -> str:
        return (f"{self.mode} on {self.relation}, taken by {self.script} at `{self.statement}`, "
                f"held {self.seconds * 1000:.0f} ms over {self.rows:,} rows read or written")


@dataclass
class LockRecorder:
    """The runner's observer (Runner(observer=...)): one Statement per statement run."""

    watched: list[str]
    statements: list[Statement] = field(default_factory=list)
    _before: int = 0

    def before(self, conn: psycopg.Connection) -> None:
        row = conn.execute(_TOUCHED).fetchone()
        self._before = int(row[1]) if row else 0

    def after(self, conn: psycopg.Connection, script: str, text: str, started: float,
              seconds: float) -> None:
        locks = [(str(r), str(m)) for r, m in conn.execute(_LOCKS, (self.watched,)).fetchall()]
        # Counted from just before the statement, in its transaction (the server adds a
        # session's counts up between transactions, never within one).
        row = conn.execute(_TOUCHED).fetchone()
        transaction, so_far = (str(row[0]), int(row[1])) if row else ("", 0)
        self.statements.append(Statement(script, text, transaction, started, seconds,
                                         max(so_far - self._before, 0), locks))

    def holds(self) -> list[Hold]:
        """Each blocking lock of each transaction, from the statement that took it."""
        found: list[Hold] = []
        by_transaction: dict[str, list[Statement]] = {}
        for statement in self.statements:
            by_transaction.setdefault(statement.transaction, []).append(statement)
        for run in by_transaction.values():
            end = run[-1].started + run[-1].seconds
            taken: dict[tuple[str, str], int] = {}
            for n, statement in enumerate(run):
                for relation, mode in statement.locks:
                    if mode in WRITER_BLOCKING:
                        taken.setdefault((relation, mode), n)
            for (relation, mode), n in taken.items():
                first = run[n]
                found.append(Hold(relation, mode, first.script, first.text, end - first.started,
                                  sum(s.touched for s in run[n:])))
        return found

    def to_json(self) -> list[dict[str, Any]]:
        return [{"script": s.script, "statement": s.text, "ms": round(s.seconds * 1000, 1),
                 "rows_touched": s.touched, "locks": [f"{m} on {r}" for r, m in s.locks]}
                for s in self.statements if s.locks]


def shared_tables(conn: psycopg.Connection, legacy: list[str]) -> list[tuple[str, str]]:
    """Tables the legacy tables reference (single-column keys), with that key: written by both
    applications, so a lock on them is felt by the old one too."""
    rows = conn.execute(
        """SELECT DISTINCT c.confrelid::regclass::text, a.attname
             FROM pg_constraint c
             JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = c.confkey[1]
            WHERE c.contype = 'f' AND cardinality(c.confkey) = 1
              AND c.conrelid::regclass::text = ANY(%s)
              AND NOT c.confrelid::regclass::text = ANY(%s)
            ORDER BY 1""", (legacy, legacy)).fetchall()
    return [(str(t), str(k)) for t, k in rows]


def watch(dsn: str, bundle: Bundle) -> tuple[LockRecorder, list[tuple[str, str]]]:
    """The recorder for the bundle's legacy names, the shared tables of the database at `dsn` and
    the tables the legacy ones map to; and those shared tables with their keys (for
    LockProbes(shared=...))."""
    legacy = [m.legacy_table for m in bundle.mapping.values()]
    # The tables the legacy ones map to as well: while an online migration carries the old
    # application's writes into them, a lock there makes the same writers wait.
    targets = sorted({m.target for m in bundle.mapping.values()} - set(legacy))
    with connect(dsn, application_name=APPLICATION_NAME, who="the lock gate") as conn:
        shared = shared_tables(conn, legacy)
    return LockRecorder(legacy + [t for t, _ in shared] + targets), shared


def too_many_rows(holds: list[Hold], budget: LockBudget) -> list[str]:
    """A line per hold over max_rows_under_write_lock, the most rows first."""
    return [f"rows under a lock that blocks writers: {h.describe()}, over the budget of "
            f"{budget.max_rows_under_write_lock:,} rows ([locks] max_rows_under_write_lock)"
            for h in sorted(holds, key=lambda h: -h.rows)
            if h.rows > budget.max_rows_under_write_lock]


def lock_gate(dsn: str, bundle: Bundle,
              migrate: Callable[[LockRecorder], object]) -> CheckResult:
    """Run `migrate` (which runs the bundle's pending migrations on the database at `dsn` with
    the recorder as the runner's observer) under the probes, and judge the waits."""
    budget = bundle.expectations.locks
    recorder, shared = watch(dsn, bundle)
    started = time.monotonic()
    with LockProbes(dsn, bundle, shared=shared) as probes:
        migrate(recorder)
    took = time.monotonic() - started
    subject = (f"{len(bundle.mapping)} legacy names, {len(shared)} shared tables and the "
               "tables they map to, while "
               f"{bundle.root.name} migrated ({took:.1f} s)")
    holds = recorder.holds()
    breaches = too_many_rows(holds, budget)
    waits: dict[str, Any] = {}
    for kind, limit_ms in (("write", budget.max_write_wait_ms), ("read", budget.max_read_wait_ms)):
        worst = probes.longest(kind)
        waits[kind] = None if worst is None else round(worst[1].wait_s * 1000, 1)
        if worst is not None and worst[1].wait_s * 1000 > limit_ms:
            probe, attempt = worst
            blocker = attempt.blocker.describe() if attempt.blocker else "a lock since released"
            breaches.append(f"a {kind}r of {probe.name} waited {attempt.wait_s * 1000:.0f} ms "
                            f"(budget {limit_ms:g} ms, [locks] max_{kind}_wait_ms): {blocker}")
    problems = [f"lock probe: {e}" for e in probes.errors()]
    data = {"longest_wait_ms": waits, "budget": vars(budget), "probes": probes.to_json(),
            "holds": [vars(h) for h in holds], "statements": recorder.to_json(),
            "seconds": round(took, 3)}
    most = max((h.rows for h in holds), default=0)
    if breaches or problems:
        return CheckResult(CHECK, subject, False,
                           f"{len(breaches)} breach(es) of the lock budget"
                           + (f", {len(problems)} probe error(s)" if problems else "")
                           + f"; longest write wait {waits['write']} ms, read {waits['read']} ms",
                           details=tuple((breaches + problems)[:MAX_DETAILS]), data=data)
    attempts = sum(len(p.attempts) for p in probes.probes)
    if not attempts:
        return CheckResult.unproven(CHECK, subject, "no probe attempt completed while the "
                                    "migration ran: nothing was measured", data=data)
    return CheckResult(CHECK, subject, True,
                       f"longest write wait {waits['write']} ms, read {waits['read']} ms over "
                       f"{attempts} probe attempts (budgets {budget.max_write_wait_ms:g}/"
                       f"{budget.max_read_wait_ms:g} ms); {len(holds)} blocking lock(s) held "
                       f"over at most {most:,} rows (budget "
                       f"{budget.max_rows_under_write_lock:,})", data=data)
