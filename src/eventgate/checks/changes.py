"""Rows written after the migration: what the bundle's change record says, for the gates that
hold the migrated tables to the *_backup tables frozen by the migration.

The bundle declares the record in expectations.toml ([change_log] table = "schema.name"); its
migration installs it, with triggers on the migrated-to tables that add one row per row written
there after the migration: relation (the new table's name), row_key (its key as text; an UPDATE
that changes the key records both keys), origin ('legacy' when the old application wrote
through the compatibility views, 'engine' when the new tables were written directly), op and
changed_at. The gates only ever read it.

A key the record mentions was changed legitimately since the migration, so the parity gates
leave it out of both sides; every other row is the migration's and is held to the backup
exactly. A write that bypasses triggers (session_replication_role = replica, a TRUNCATE, a
restore into the new tables) is not recorded, and so reads as a defect of the migration: that
is on purpose, since nothing could tell the two apart.

Rows of the record written by the transaction that created it, or by any transaction up to the
one that recorded the final migration in the ledger (a migration run online), are the
migration's own: a record holding any would hide the migration's defects, so the gates fail on
it (Changes.problem). A
change to a parent row that takes child rows out of a mapping's filter (an event that stops
being a wedding) writes no child row, and reads as those children missing.

A bundle without [change_log], or a database whose migration predates the record, has no record:
every difference from the backup is then the migration's, and the results say so.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from eventgate.bundle import ChangeLog
from eventgate.checks.catalog import columns
from eventgate.migrate.ledger import SCHEMA as LEDGER_SCHEMA
from eventgate.migrate.ledger import TABLE as LEDGER_TABLE

# What the record's origin column holds, and how results name it.
# eventgate's own ledger: its newest row was written by the final migration's last transaction.
LEDGER = f"{LEDGER_SCHEMA}.{LEDGER_TABLE}"
ORIGINS = {"legacy": "the old application", "engine": "the engine"}


def record_exists(conn: psycopg.Connection, log: ChangeLog | None) -> bool:
    """Whether the change record the bundle declares exists in this database."""
    if log is None:
        return False
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL",
                       (_qualified(log).as_string(conn),)).fetchone()
    return bool(row and row[0])


def changed_since_migration(conn: psycopg.Connection, log: ChangeLog | None,
                            relation: str) -> dict[str, int]:
    """Distinct keys of `relation` (a migrated-to table) the record mentions, by origin
    ('legacy', 'engine'); {} when there is no record or it holds nothing for the relation."""
    if not record_exists(conn, log):
        return {}
    assert log is not None
    rows = conn.execute(sql.SQL(
        "SELECT origin, count(DISTINCT row_key) FROM {} WHERE relation = %s "
        "GROUP BY origin ORDER BY origin").format(_qualified(log)), (relation,)).fetchall()
    return {str(origin): int(n) for origin, n in rows}


def unchanged(log: ChangeLog | None, relation: str, key: sql.Composable) -> sql.Composable:
    """An SQL predicate, true for a row whose key the record never mentions for `relation`;
    plain TRUE without a record. `key` is an expression over the caller's row, qualified with
    its alias (l.id, not id: the record has columns of its own). Only for a record that exists
    (record_exists, or read_changes, whose Changes.log is None for one that does not)."""
    if log is None:
        return sql.SQL("TRUE")
    return sql.SQL("NOT EXISTS (SELECT 1 FROM {log} c WHERE c.relation = {relation} "
                   "AND c.row_key = ({key})::text)").format(
        log=_qualified(log), relation=sql.Literal(relation), key=key)


def written_by_the_migration(conn: psycopg.Connection, log: ChangeLog | None) -> int:
    """Rows of the record the migration wrote itself: by the transaction that created the
    record, or (a migration run online, in several transactions) by any transaction up to the
    one that recorded the final migration in eventgate's ledger. Such a record would hide every
    defect of the copy from the gates. 0 without a record."""
    if not record_exists(conn, log):
        return 0
    assert log is not None
    # The record's pg_class row keeps the xmin of the transaction that created it (ANALYZE and
    # VACUUM update it in place); freezing keeps the raw xmin visible. age() orders
    # transactions: an older one has the greater age.
    finished: sql.Composable = sql.SQL("NULL::integer")
    ledger_row = conn.execute(
        "SELECT to_regclass(%s) IS NOT NULL AND has_table_privilege(%s, 'SELECT')",
        (LEDGER, LEDGER)).fetchone()
    if ledger_row and ledger_row[0]:
        finished = sql.SQL("(SELECT age(l.xmin) FROM {} l ORDER BY l.version DESC LIMIT 1)"
                           ).format(sql.SQL(LEDGER))
    row = conn.execute(sql.SQL(
        "SELECT count(*) FROM {log} c WHERE c.xmin = (SELECT xmin FROM pg_class "
        "WHERE oid = {name}::regclass) OR age(c.xmin) >= {finished}").format(
        log=_qualified(log), name=sql.Literal(_qualified(log).as_string(conn)),
        finished=finished)).fetchone()
    return int(row[0]) if row else 0


@dataclass(frozen=True)
class Changes:
    """What the change record says about one migrated-to table, read in the caller's
    snapshot; a gate's view of it, ready for summaries and JSON."""

    relation: str
    declared: ChangeLog | None  # what the bundle declares
    log: ChangeLog | None  # what is used: None when not declared or absent from the database
    by_origin: dict[str, int] = field(default_factory=dict)
    by_the_migration: int = 0

    @property
    def absent(self) -> bool:
        """Declared by the bundle but not in this database (migrated by an older 010)."""
        return self.declared is not None and self.log is None

    @property
    def problem(self) -> str | None:
        """Why the record cannot be trusted, when it cannot: a gate then fails with this."""
        if not self.by_the_migration or self.log is None:
            return None
        return (f"the change record {self.log.table} holds {self.by_the_migration} rows written "
                "by the migration itself (by the transaction that created the record, or before "
                "the migration's last transaction): it records its own rows, which would hide "
                "its defects from the parity gates; the migration must create the record and its "
                "triggers after copying the data, in its last transaction")

    def unchanged(self, key: sql.Composable) -> sql.Composable:
        return unchanged(self.log, self.relation, key)

    def unchanged_here(self, key: sql.Composable) -> sql.Composable:
        """unchanged(), for a query run in the snapshot these figures were read in (the
        caller's, or its readers' copy of it): plain TRUE when the record holds no key of the
        relation there, which leaves out nothing either way. Without the anti-join each row
        would probe, PostgreSQL merges both sides straight from their keys' indexes; at 10M
        guests parity's read of half the key took 14.9 s instead of 21.1 s. The SQL shown to
        reproduce a finding keeps the predicate: run later, the record may hold keys."""
        if not any(self.by_origin.values()):  # no record, or nothing recorded here
            return sql.SQL("TRUE")
        return self.unchanged(key)

    def recorded(self, conn: psycopg.Connection, relation: str, key: str,
                 alias: str) -> sql.Composable:
        """True for a row of `relation` (read as `alias`) whose `key` the record holds, the
        record's text cast back to the key's type so that the key's index finds the rows (the
        triggers write key::text). Only for a record that exists."""
        assert self.log is not None
        key_type = next(c.type for c in columns(conn, relation) if c.name == key)
        return sql.SQL("{key} IN (SELECT c.row_key::{type} FROM {log} c "
                       "WHERE c.relation = {relation})").format(
            key=sql.Identifier(alias, key), type=sql.SQL(key_type), log=_qualified(self.log),
            relation=sql.Literal(self.relation))

    def summary(self) -> str:
        """One clause for a result's summary; empty when the bundle declares no record."""
        if self.declared is None:
            return ""
        if self.log is None:
            return (f"no change record ({self.declared.table} is not in this database): every "
                    "difference counts as the migration's")
        counts = ", ".join(f"{self.by_origin.get(origin, 0)} by {who}"
                           for origin, who in ORIGINS.items())
        others = {o: n for o, n in self.by_origin.items() if o not in ORIGINS}
        counts += "".join(f", {n} by {o!r}" for o, n in others.items())
        return f"changed since the migration: {counts}"

    def data(self) -> dict[str, Any]:
        return {"change_record": self.declared.table if self.declared else None,
                "change_record_present": self.log is not None,
                "changed_since_migration": dict(self.by_origin)}


def read_changes(conn: psycopg.Connection, log: ChangeLog | None, relation: str) -> Changes:
    """The record's figures for `relation`; a declared record missing from the database is
    treated as no record (Changes.absent says so)."""
    if not record_exists(conn, log):
        return Changes(relation, log, None)
    return Changes(relation, log, log, changed_since_migration(conn, log, relation),
                   written_by_the_migration(conn, log))


def with_summary(summary: str, changes: Changes) -> str:
    """A result's summary with the record's clause appended, when there is one."""
    clause = changes.summary()
    return f"{summary}; {clause}" if clause else summary


@contextlib.contextmanager
def one_snapshot(conn: psycopg.Connection) -> Iterator[None]:
    """A REPEATABLE READ, READ ONLY transaction, so that the record and the rows it leaves out
    are read in one snapshot; inside a transaction the caller opened, that one (a savepoint)."""
    fresh = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    with conn.transaction():
        if fresh:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield


def _qualified(log: ChangeLog) -> sql.Identifier:
    return sql.Identifier(log.schema, log.name)
