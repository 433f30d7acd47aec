"""Lock-wait probes: what the old application would feel while something (a migration, a dry
run) runs. Per legacy name of the bundle's mapping.toml a writer and a reader, each in its own
thread and session, try every ~20 ms and time each attempt:

- the writer `UPDATE <name> SET <key> = <key> WHERE <key> = <an existing key>`, rolled back
  (nothing changes, but it takes the RowExclusiveLock a real writer takes, through the
  compatibility view after the swap too);
- the reader `SELECT * FROM <name> LIMIT 1`.

While an attempt has waited longer than SAMPLE_AFTER_S, a sampler asks the server who blocks it
(pg_blocking_pids, pg_locks, pg_stat_activity): the statement, lock mode and relation. Each
probe's result is its longest wait and, for that wait, the blocker."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from eventgate.bundle import Bundle
from eventgate.errors import MigrationError
from eventgate.pg.connect import connect

APPLICATION_NAME = "eventgate lock probe"
INTERVAL_S = 0.02
SAMPLE_AFTER_S = 0.1
STOP_TIMEOUT_S = 10.0
# PostgreSQL's table lock modes, weakest first: the blocker's strongest lock is the one shown.
MODES = ["AccessShareLock", "RowShareLock", "RowExclusiveLock", "ShareUpdateExclusiveLock",
         "ShareLock", "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock"]

BLOCKERS = """
SELECT a.pid, a.query, coalesce(bl.mode, '?'), coalesce(bl.relation::regclass::text, '?'),
       extract(epoch FROM now() - coalesce(a.xact_start, a.query_start))::float8
  FROM unnest(pg_blocking_pids(%(pid)s)) AS b(pid)
  JOIN pg_stat_activity a ON a.pid = b.pid
  LEFT JOIN LATERAL (
        SELECT l.mode, l.relation FROM pg_locks l
         WHERE l.pid = b.pid AND l.locktype = 'relation'
           AND l.relation IN (SELECT w.relation FROM pg_locks w
                               WHERE w.pid = %(pid)s AND NOT w.granted)
         ORDER BY l.granted DESC, array_position(%(modes)s::text[], l.mode) DESC
         LIMIT 1) bl ON true
 ORDER BY bl.mode IS NULL, 5 DESC
 LIMIT 1"""


@dataclass(frozen=True)
class Blocker:
    """Who held the lock a probe waited on, as the sampler last saw it."""

    pid: int
    query: str
    mode: str
    relation: str
    duration_s: float  # how long its transaction had been running then

    def describe(self) -> str:
        return (f"{self.mode} on {self.relation}, held by pid {self.pid} for "
                f"{self.duration_s:.2f} s, running `{' '.join(self.query.split())[:120]}`")


@dataclass(frozen=True)
class Attempt:
    started: float  # time.monotonic()
    wait_s: float
    blocker: Blocker | None


@dataclass
class Probe:
    """One writer or reader of one legacy name, and what it saw."""

    name: str
    kind: str  # "write" | "read"
    attempts: list[Attempt] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    pid: int | None = None
    _current: float | None = None  # when the attempt in flight began
    _blocker: Blocker | None = None

    def longest(self, since: float = 0.0, until: float = float("inf")) -> Attempt | None:
        """The longest attempt that began or ended in [since, until]."""
        seen = [a for a in self.attempts if a.started <= until and a.started + a.wait_s >= since]
        return max(seen, key=lambda a: a.wait_s, default=None)

    def to_json(self) -> dict[str, Any]:
        worst = self.longest()
        return {"name": self.name, "kind": self.kind, "attempts": len(self.attempts),
                "longest_wait_ms": round(worst.wait_s * 1000, 1) if worst else None,
                "blocker": None if worst is None or worst.blocker is None
                else vars(worst.blocker), "errors": self.errors[:5]}


class LockProbes:
    """A context manager: the probes run from __enter__ until __exit__, which stops them,
    cancels an attempt still waiting, joins the threads and closes the sessions."""

    def __init__(self, dsn: str, bundle: Bundle, *, interval_s: float = INTERVAL_S,
                 shared: Sequence[tuple[str, str]] = ()) -> None:
        self.dsn, self.bundle, self.interval_s = dsn, bundle, interval_s
        # Tables both applications write (e.g. those the legacy tables reference), with a key
        # column each: probed like the legacy names.
        self.names = [(m.legacy_table, m.key) for m in bundle.mapping.values()] + list(shared)
        self.probes: list[Probe] = []
        self._sampler_errors: list[str] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._ready = threading.Barrier(1)

    def _session(self) -> psycopg.Connection:
        return connect(self.dsn, application_name=APPLICATION_NAME, who="the lock probe")

    def _keys(self) -> dict[str, object]:
        """An existing key per legacy name, read before anything runs."""
        keys: dict[str, object] = {}
        with self._session() as conn:
            for table, key in self.names:
                row = conn.execute(sql.SQL("SELECT {} FROM {} LIMIT 1").format(
                    sql.Identifier(key), sql.Identifier(table))).fetchone()
                keys[table] = None if row is None else row[0]
        return keys

    def __enter__(self) -> LockProbes:
        keys = self._keys()
        statements: list[tuple[Probe, sql.Composed]] = []
        for table, column in self.names:
            name, key = sql.Identifier(table), sql.Identifier(column)
            statements.append((Probe(table, "write"), sql.SQL(
                "UPDATE {} SET {} = {} WHERE {} = {}").format(
                    name, key, key, key, sql.Literal(keys[table]))))
            statements.append((Probe(table, "read"),
                               sql.SQL("SELECT * FROM {} LIMIT 1").format(name)))
        # The probes, the sampler and this thread.
        self._ready = threading.Barrier(len(statements) + 2)
        for probe, statement in statements:
            self.probes.append(probe)
            self._start(self._run, probe, statement)
        self._start(self._sample)
        if not self._meet():  # every probe connected before the work starts
            self.__exit__()
            raise MigrationError("the lock probes could not start: "
                                 + ("; ".join(self.errors()) or "a probe did not connect"))
        return self

    def _meet(self) -> bool:
        try:
            self._ready.wait(timeout=30)
        except threading.BrokenBarrierError:
            return False
        return True

    def _start(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True,
                                  name=f"lock probe {len(self._threads)}")
        self._threads.append(thread)
        thread.start()

    def _run(self, probe: Probe, statement: sql.Composed) -> None:
        try:
            conn = connect(self.dsn, application_name=APPLICATION_NAME, autocommit=False,
                           who="the lock probe")
        except Exception as exc:
            probe.errors.append(str(exc))
            self._ready.abort()
            return
        with conn:
            probe.pid = conn.info.backend_pid
            conn.rollback()
            if not self._meet():
                return
            while not self._stop.is_set():
                probe._blocker, probe._current = None, time.monotonic()
                try:
                    conn.execute(statement)
                except psycopg.Error as exc:
                    if not self._stop.is_set():
                        probe.errors.append(" ".join(str(exc).split()))
                finally:
                    started, probe._current = probe._current, None
                    probe.attempts.append(
                        Attempt(started, time.monotonic() - started, probe._blocker))
                    conn.rollback()  # the writer's UPDATE changed nothing, and keeps nothing
                self._stop.wait(self.interval_s)

    def _sample(self) -> None:
        try:
            self._sample_until_stopped()
        except Exception as exc:  # the probes go on without blockers; the error is reported
            self._sampler_errors.append(" ".join(str(exc).split()))

    def _sample_until_stopped(self) -> None:
        with self._session() as conn:
            if not self._meet():
                return
            while not self._stop.wait(self.interval_s):
                for probe in self._waiting(SAMPLE_AFTER_S):
                    attempt = probe._current
                    row = conn.execute(BLOCKERS, {"pid": probe.pid, "modes": MODES}).fetchone()
                    # Only for the attempt it was asked about, and never a blocker whose lock
                    # it could not see (the wait ending as it looked) over one it saw.
                    if row is None or attempt is None or probe._current != attempt:
                        continue
                    if str(row[2]) == "?" and probe._blocker is not None:
                        continue
                    probe._blocker = Blocker(int(row[0]), str(row[1] or ""), str(row[2]),
                                             str(row[3]), float(row[4] or 0.0))
            # Stopping: an attempt still queued behind a lock would keep its thread waiting.
            for probe in self._waiting(0.0):
                conn.execute("SELECT pg_cancel_backend(%s)", (probe.pid,))

    def _waiting(self, longer_than_s: float) -> Iterator[Probe]:
        now = time.monotonic()
        for probe in self.probes:
            began = probe._current
            if began is not None and probe.pid is not None and now - began > longer_than_s:
                yield probe

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._ready.abort()
        for thread in self._threads:
            thread.join(timeout=STOP_TIMEOUT_S)

    def longest(self, kind: str, since: float = 0.0,
                until: float = float("inf")) -> tuple[Probe, Attempt] | None:
        """The longest wait of any `kind` ("write" or "read") probe in [since, until]."""
        found = [(p, a) for p in self.probes if p.kind == kind
                 if (a := p.longest(since, until)) is not None]
        return max(found, key=lambda pa: pa[1].wait_s, default=None)

    def errors(self) -> list[str]:
        return ([f"{p.kind} {p.name}: {e}" for p in self.probes for e in p.errors]
                + [f"the sampler: {e}" for e in self._sampler_errors])

    def to_json(self) -> list[dict[str, Any]]:
        return [p.to_json() for p in self.probes]
