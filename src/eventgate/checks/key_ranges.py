"""One big comparison split over several sessions that see the same data: the caller's
REPEATABLE READ transaction exports its snapshot (pg_export_snapshot), each reader session
imports it (SET TRANSACTION SNAPSHOT) and answers the comparison for some ranges of the table's
integer key. Every core of the server then works on one check, and the answer is the one a
single query would give in the caller's snapshot: the ranges cover the key's whole span, open
at both ends, and the NULL keys have a range of their own.

PostgreSQL 15 runs no parallel FULL JOIN, EXCEPT ALL or hash aggregate over both sides of a
comparison, so without this one core does the whole work while the others wait."""

from __future__ import annotations

import itertools
import os
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import psycopg
from psycopg import sql

from eventgate.pg.connect import connect

T = TypeVar("T")
READERS_ENV = "EVENTGATE_READERS"
# More ranges than readers, handed out as readers come free, so one slow range (a dense part
# of the key, a reader the machine starves) does not hold the others idle.
RANGES_PER_READER = 4
# Below this many rows a second session costs more than it saves.
SPLIT_FROM_ROWS = 200_000
# At most about this many rows per range (10M rows: 40 ranges), so that a range's hash or sort
# stays within a reader's work_mem more often. Measured at 10M on 2 cores, 40 ranges against 8:
# row counts 56 s against 70 s, the views' EXCEPT ALL 89 s against 94 s (it still sorts: the
# hash of whole rows does not fit).
ROWS_PER_RANGE = 250_000
INTEGER_TYPES = ("smallint", "integer", "bigint")


@dataclass(frozen=True)
class KeyRange:
    """lo <= key < hi, either end open when None; `nulls`: the rows whose key is NULL, which
    no range of values holds."""

    lo: int | None
    hi: int | None
    nulls: bool = False

    def predicate(self, key: sql.Composable) -> sql.Composable:
        if self.nulls:
            return sql.SQL("({} IS NULL)").format(key)
        ends = []
        if self.lo is not None:
            ends.append(sql.SQL("{} >= {}").format(key, sql.Literal(self.lo)))
        if self.hi is not None:
            ends.append(sql.SQL("{} < {}").format(key, sql.Literal(self.hi)))
        return sql.SQL("({})").format(sql.SQL(" AND ").join(ends) if ends else sql.SQL("TRUE"))


@dataclass(frozen=True)
class Readers:
    """Where reader sessions connect (the target's DSN, password included, never shown) and how
    many there may be at once; read only, with the gate's statement timeout."""

    # Never in a repr: pytest prints a failing test's fixtures, and this DSN holds the password.
    dsn: str = field(repr=False)
    count: int = 1
    statement_timeout_ms: int | None = None
    # Each reader's work_mem, so that a range's hash or sort spills to disk less often.
    work_mem: str = "128MB"
    # Tables estimated below this many rows are answered by one query in the caller's session.
    split_from_rows: int = SPLIT_FROM_ROWS

    def connect(self) -> psycopg.Connection:
        return connect(self.dsn, application_name="eventgate reader", read_only=True,
                       statement_timeout_ms=self.statement_timeout_ms,
                       settings={"work_mem": self.work_mem})


def default_count() -> int:
    """EVENTGATE_READERS, else the cores of this machine, at most 4: a staging server shares
    its cores with whatever else runs there."""
    configured = os.environ.get(READERS_ENV, "").strip()
    if configured.isdigit() and int(configured) > 0:
        return int(configured)
    return max(1, min(4, os.cpu_count() or 1))


def key_span(conn: psycopg.Connection, table: str, key: str,
             split_from_rows: int = SPLIT_FROM_ROWS) -> tuple[int, int, int] | None:
    """(min, max, estimated rows) of an integer key, None when it is not one or the table is
    small: then one query answers, in the caller's own session."""
    kind = conn.execute(
        # A table never analyzed has no estimate (-1): a row per 100 bytes of it instead.
        "SELECT format_type(a.atttypid, NULL), CASE WHEN c.reltuples >= 0 THEN "
        "c.reltuples::bigint ELSE pg_relation_size(c.oid) / 100 END FROM pg_attribute a "
        "JOIN pg_class c ON c.oid = a.attrelid WHERE a.attrelid = to_regclass(%s) "
        "AND a.attname = %s", (sql.Identifier(table).as_string(conn), key)).fetchone()
    if kind is None or kind[0] not in INTEGER_TYPES or int(kind[1]) < split_from_rows:
        return None
    span = conn.execute(sql.SQL("SELECT min({k}), max({k}) FROM {t}").format(
        k=sql.Identifier(key), t=sql.Identifier(table))).fetchone()
    if span is None or span[0] is None:
        return None
    return int(span[0]), int(span[1]), int(kind[1])


def split(lo: int, hi: int, parts: int) -> list[KeyRange]:
    """[lo, hi] cut into at most `parts` ranges of about equal width, the first and the last
    open-ended (a key only the other side holds may lie outside the span of this one), and the
    NULL keys: together every row, each in one range."""
    width = max(1, -(-(hi - lo + 1) // parts))
    bounds: list[int | None] = [None, *range(lo + width, hi + 1, width), None]
    return [KeyRange(a, b) for a, b in itertools.pairwise(bounds)] + [KeyRange(None, None, True)]


def in_ranges(conn: psycopg.Connection, readers: Readers, ranges: Sequence[KeyRange],
              work: Callable[[psycopg.Connection, KeyRange], T]) -> list[T]:
    """`work` for every range, in reader sessions sharing `conn`'s snapshot (conn must be in a
    REPEATABLE READ transaction); the results in the order of `ranges`. The first error of
    any reader is raised here, after the others have stopped."""
    def task(key_range: KeyRange) -> Callable[[psycopg.Connection], T]:
        return lambda session: work(session, key_range)

    return in_sessions(conn, readers, [task(r) for r in ranges])


def in_sessions(conn: psycopg.Connection, readers: Readers,
                tasks: Sequence[Callable[[psycopg.Connection], T]]) -> list[T]:
    """Each task in one of the reader sessions sharing `conn`'s snapshot, as readers come free:
    several independent reads of one check (the two sides of a comparison, a table's key
    ranges) at once, with the answers a single session would give. Results in task order."""
    row = conn.execute("SELECT pg_export_snapshot()").fetchone()
    assert row is not None
    snapshot = str(row[0])
    todo: queue.Queue[int] = queue.Queue()
    for index in range(len(tasks)):
        todo.put(index)
    results: dict[int, T] = {}
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            with readers.connect() as session:
                session.autocommit = False
                session.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                session.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(
                    sql.Literal(snapshot)))
                while not errors:
                    try:
                        index = todo.get_nowait()
                    except queue.Empty:
                        break
                    results[index] = tasks[index](session)
                session.rollback()
        except BaseException as exc:  # raised again in the caller's thread
            errors.append(exc)

    threads = [threading.Thread(target=reader, name=f"eventgate-reader-{n}", daemon=True)
               for n in range(min(readers.count, len(tasks)))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return [results[i] for i in range(len(tasks))]


def ranges_for(conn: psycopg.Connection, readers: Readers | None, table: str,
               key: str) -> list[KeyRange] | None:
    """The ranges to split `table` by, or None: no readers, a small table, a key that is not
    an integer. The caller then runs its one query as before."""
    if readers is None or readers.count < 2:
        return None
    span = key_span(conn, table, key, readers.split_from_rows)
    if span is None:
        return None
    parts = max(readers.count * RANGES_PER_READER, -(-span[2] // ROWS_PER_RANGE))
    return split(span[0], span[1], parts)


def over_key(conn: psycopg.Connection, readers: Readers | None, table: str, key: str,
             work: Callable[[psycopg.Connection, KeyRange | None], T]) -> list[T]:
    """`work` over the whole of `table`: once in `conn` (None for the range) when it is not
    split, else per range in reader sessions sharing conn's snapshot."""
    ranges = ranges_for(conn, readers, table, key)
    if ranges is None or readers is None:
        return [work(conn, None)]
    return in_ranges(conn, readers, ranges, work)


def key_order(key: Any) -> tuple[bool, Any]:
    """Sorts keys merged from several ranges as PostgreSQL's ORDER BY does: NULL last."""
    return (key is None, key if key is not None else 0)
