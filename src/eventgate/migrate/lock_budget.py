"""The dry run's lock budget: a rehearsal on production may make the old application's writers
and readers wait no longer than expectations.toml [locks] allows.

The budget is held to the waits other sessions really have, not to how long the dry run holds
its locks: a lock nobody asks for keeps nobody waiting. Inside the dry run's transaction,
lock_timeout is the budget (a lock request that queues makes every writer after it queue too).
After each statement the transaction's own locks are looked up; once it holds one that makes a
writer (or a reader) of a relation other sessions use wait, every next statement gets as its
statement_timeout what is left of the budget of the session that has waited longest on it
(the whole budget while none waits). When a waiter's budget runs out, the dry run stops with
DryRunOverBudget, naming the statement, the lock and the wait; the transaction is rolled back,
so nothing changed.

A statement that starts while nobody waits can keep a waiter that arrives during it waiting up
to the budget: the bound holds either way."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import psycopg
from psycopg.pq import TransactionStatus

from eventgate.bundle import LockBudget
from eventgate.errors import MigrationError
from eventgate.migrate.progress import StepReport

# Lock modes that conflict with a writer's RowExclusiveLock, and with a reader's AccessShareLock.
WRITER_CONFLICTS = ("ShareLock", "ShareRowExclusiveLock", "ExclusiveLock",
                    "AccessExclusiveLock")
READER_CONFLICTS = ("AccessExclusiveLock",)

# Relations that existed when the transaction began: those other sessions can use. Ones the
# transaction created itself are invisible to them until it commits.
SHARED_RELATIONS = "SELECT array_agg(oid) FROM pg_class WHERE relkind IN ('r', 'p', 'v', 'm', 'f')"

# The sessions waiting on this one (pg_locks.waitstart: PostgreSQL 14+), the closest to its
# budget first: a reader asks for AccessShareLock, anything else is a writer.
WAITERS = """
SELECT CASE WHEN w.mode = 'AccessShareLock' THEN %(read)s ELSE %(write)s END
         - extract(epoch FROM clock_timestamp() - w.waitstart) * 1000 AS left_ms,
       extract(epoch FROM clock_timestamp() - w.waitstart) * 1000 AS waited_ms,
       w.mode, coalesce(w.relation::regclass::text, w.locktype)
  FROM pg_locks w
 WHERE NOT w.granted AND w.waitstart IS NOT NULL AND w.pid <> pg_backend_pid()
   AND pg_backend_pid() = ANY(pg_blocking_pids(w.pid))
 ORDER BY 1 LIMIT 1"""

HELD = """
SELECT l.mode, l.relation::regclass::text
  FROM pg_locks l
 WHERE l.pid = pg_backend_pid() AND l.granted AND l.locktype = 'relation'
   AND l.mode = ANY(%s::text[]) AND l.relation = ANY(%s::oid[])
 ORDER BY array_position(%s::text[], l.mode) DESC, 2"""


@dataclass(frozen=True)
class HeldLock:
    mode: str
    relation: str
    since: float  # time.monotonic() of the start of the statement that took it
    budget_ms: float
    who: str  # "writers" or "readers"



@dataclass(frozen=True)
class Waiter:
    """The session that has waited longest on the dry run, relative to its budget."""

    left_ms: float
    waited_ms: float
    mode: str  # the lock it asks for
    relation: str

    @property
    def who(self) -> str:
        return "readers" if self.mode == "AccessShareLock" else "writers"


class DryRunOverBudget(MigrationError):
    """The dry run stopped because it would have kept writers or readers waiting longer than
    the budget; `reports` holds the migrations rehearsed in full before it."""

    def __init__(self, message: str, *, label: str, statement: str, lock: HeldLock,
                 held_s: float, reports: list[StepReport]) -> None:
        super().__init__(message)
        self.label, self.statement, self.lock, self.held_s = label, statement, lock, held_s
        self.reports = reports


@dataclass
class BudgetGuard:
    """One dry-run transaction's watch over its own locks."""

    conn: psycopg.Connection
    budget: LockBudget
    lock_timeout_ms: int
    not_rehearsed: list[str] = field(default_factory=list)  # labels, for the message
    _shared: list[int] = field(default_factory=list)
    # Every lock others would wait on, by (who waits, relation), as first seen.
    _held: dict[tuple[str, str], HeldLock] = field(default_factory=dict)
    _seen: tuple[Waiter, float] | None = None  # the last waiter looked up, and when

    def start(self) -> None:
        """Call first in the transaction: which relations count, and the first lock_timeout."""
        row = self.conn.execute(SHARED_RELATIONS).fetchone()
        self._shared = list(row[0] or []) if row else []
        self.before()

    def waiter(self) -> Waiter | None:
        """Who has waited on this transaction the longest for its budget, if anyone."""
        if self.conn.info.transaction_status == TransactionStatus.INERROR:
            # The statement the budget cut is gone with the transaction's state: the waiter
            # last seen, its wait carried on to now.
            if self._seen is None:
                return None
            waiter, at = self._seen
            gone = (time.monotonic() - at) * 1000
            return replace(waiter, left_ms=waiter.left_ms - gone,
                           waited_ms=waiter.waited_ms + gone)
        row = self.conn.execute(WAITERS, {"read": self.budget.max_read_wait_ms,
                                          "write": self.budget.max_write_wait_ms}).fetchone()
        found = None if row is None else Waiter(float(row[0]), float(row[1]), str(row[2]),
                                                str(row[3]))
        self._seen = None if found is None else (found, time.monotonic())
        return found

    def before(self) -> None:
        """Before each statement: the timeouts that keep it within what is left of the budget
        of whoever waits on the transaction (the whole budget while nobody does)."""
        wait = min(self.lock_timeout_ms, first_wait_ms(self.budget))
        statement: str | None = None  # the session's own until the transaction holds one
        if self._held:
            waiter = self.waiter()
            left = (waiter.left_ms if waiter is not None
                    else max(h.budget_ms for h in self._held.values()))
            left = max(1, int(left))
            wait, statement = min(wait, left), str(left)
        self.conn.execute("SELECT set_config('lock_timeout', %s, true), "
                          "set_config('statement_timeout', "
                          "coalesce(%s, current_setting('statement_timeout')), true)",
                          (str(max(1, int(wait))), statement))

    def after(self, started: float) -> None:
        """After each statement: does the transaction now hold a lock others would wait on?"""
        budgets = {"writers": self.budget.max_write_wait_ms,
                   "readers": self.budget.max_read_wait_ms}
        for mode, relation in self.conn.execute(
                HELD, (list(WRITER_CONFLICTS), self._shared, list(WRITER_CONFLICTS))).fetchall():
            for who in ("writers", "readers") if mode in READER_CONFLICTS else ("writers",):
                self._held.setdefault((who, str(relation)), HeldLock(
                    str(mode), str(relation), started, budgets[who], who))

    @property
    def holding(self) -> bool:
        return bool(self._held)

    def spent(self) -> Waiter | None:
        """A session that has waited on the transaction as long as its budget allows, if any."""
        if not self._held:
            return None
        waiter = self.waiter()
        return waiter if waiter is not None and waiter.left_ms <= 0 else None

    def _lock_for(self, waiter: Waiter | None) -> HeldLock:
        """The held lock a waiter waits on (else the first one taken)."""
        held = sorted(self._held.values(), key=lambda h: h.since)
        if waiter is not None:
            held = [h for h in held if h.relation == waiter.relation] + held
        return held[0]

    def over_budget(self, label: str, statement: str, reports: list[StepReport],
                    cause: str) -> DryRunOverBudget:
        waiter = self.waiter()
        held = self._lock_for(waiter)
        held_s = time.monotonic() - held.since
        who = waiter.who if waiter is not None else held.who
        budget_key = "max_write_wait_ms" if who == "writers" else "max_read_wait_ms"
        budget_ms = (self.budget.max_write_wait_ms if who == "writers"
                     else self.budget.max_read_wait_ms)
        waited = (f"a session asking for {waiter.mode} on {waiter.relation} had waited "
                  f"{waiter.waited_ms:.0f} ms" if waiter is not None
                  else f"{who} of {held.relation} would have waited")
        rest = (f"The rest of {label} and {', '.join(self.not_rehearsed)} were"
                if self.not_rehearsed else f"The rest of {label} was")
        others = sorted({f"{h.mode} on {h.relation}" for h in self._held.values()
                         if h.relation != held.relation})
        also = f" (and {', '.join(others)})" if others else ""
        return DryRunOverBudget(
            f"the dry run stopped at {label}, `{statement}` ({cause}): the transaction held "
            f"{held.mode} on {held.relation} for {held_s:.2f} s{also}, {waited}, and {who} may "
            f"wait at most {budget_ms:g} ms (expectations.toml [locks] {budget_key}). It was "
            f"rolled back at once: nothing was changed. {rest} not rehearsed here; rehearse "
            "the whole migration on a restored backup, where it may hold its locks as long as "
            "it needs: eventgate rehearse --dsn <this database> --backup-dir <backups>",
            label=label, statement=statement, lock=held, held_s=held_s, reports=reports)


def first_wait_ms(budget: LockBudget) -> float:
    """The longest a lock request may queue: behind it, writers and readers queue too."""
    return min(budget.max_write_wait_ms, budget.max_read_wait_ms)


def is_budget_timeout(exc: BaseException) -> bool:
    """statement_timeout (57014) or lock_timeout (55P03) firing: what ends an over-budget
    statement."""
    return isinstance(exc, psycopg.errors.QueryCanceled | psycopg.errors.LockNotAvailable)
