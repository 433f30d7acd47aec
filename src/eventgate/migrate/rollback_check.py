"""Proving, inside a rollback step's own transaction, that it gave back what was there: the
catalog is what it was before the migration (as its ledger row recorded it), and the legacy
names show the same rows as before the step. A step that fails the proof raises, which undoes
it.

Two proofs of the rows, by what the step does to the legacy names. Where they stay plain tables,
the step must not have written to them: this session's row counters (pg_stat_xact) and the
tables' identity say so without reading them or blocking writers. Where the step changes what
answers to them (010's rollback turns the views back into tables), their rows are checksummed
before and after, with writers held off in between."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import psycopg
from psycopg import sql

from eventgate.bundle import Migration
from eventgate.checks import snapshot
from eventgate.errors import MigrationError
from eventgate.migrate.ledger import LedgerEntry

# What answers to a legacy name: (oid, relfilenode, relkind).
Identity = dict[str, tuple[int, int, str]]


@dataclass(frozen=True)
class LegacyBefore:
    """What answered to the legacy names before a rollback step, and, when the step changes
    that (010's rollback brings the tables back), their rows' checksums."""

    identity: Identity
    content: dict[str, tuple[int, str]] | None
    written: dict[str, int]  # this session's pending row counts per table (pg_stat_xact)


# When rollbacks are not verified: nothing taken before the step.
NOT_TAKEN = LegacyBefore({}, None, {})


class RollbackCheck:
    def __init__(self, conn: psycopg.Connection, legacy_tables: Sequence[str]) -> None:
        self.conn = conn
        self.legacy_tables = tuple(legacy_tables)

    def before(self, entry: LedgerEntry) -> LegacyBefore:
        """Taken in the step's transaction before its script runs."""
        identity = self._identity()
        if not _swaps_legacy_names(entry, identity):
            return LegacyBefore(identity, None, self._written_rows(identity))
        # Writers wait for this step: a write committed between the two readings would
        # otherwise look like a difference the rollback made.
        self._lock(identity)
        return LegacyBefore(identity, self._content(identity), {})

    def _lock(self, identity: Identity) -> None:
        """Writes wait until this step commits; reads go on where they can.

        A write through a view locks the view first, then the tables under it, and an UPDATE
        takes ACCESS SHARE on the view before its ROW EXCLUSIVE. The step then moves the view,
        which needs ACCESS EXCLUSIVE: taken after a SHARE, that upgrade met an UPDATE holding
        its ACCESS SHARE and waiting behind the SHARE, and PostgreSQL ended the step as a
        deadlock (tests/runner/test_rollback_lock_order.py). So a view gets its ACCESS
        EXCLUSIVE first, alone, as the writers lock it, and a write that comes later waits at
        the view holding nothing. LOCK TABLE on a view would take the same mode on the tables
        under it and stop the engine's reads; an ALTER VIEW to its own owner takes the view's
        lock alone and changes nothing. Then SHARE on every name (on a view, on the tables
        under it too), as before."""
        for name, (oid, _, kind) in identity.items():
            if kind == "v":
                row = self.conn.execute("SELECT pg_get_userbyid(relowner) FROM pg_class "
                                        "WHERE oid = %s", (oid,)).fetchone()
                assert row is not None
                self.conn.execute(sql.SQL("ALTER VIEW {} OWNER TO {}").format(
                    sql.Identifier("public", name), sql.Identifier(str(row[0]))))
        if identity:
            self.conn.execute(sql.SQL("LOCK TABLE {} IN SHARE MODE").format(
                sql.SQL(", ").join(sql.Identifier("public", n) for n in identity)))

    def verify(self, migration: Migration, entry: LedgerEntry, before: LegacyBefore,
               warn: Callable[[str], None]) -> str:
        """After the script, in the same transaction: what the step was checked against, or a
        MigrationError naming what it did not give back."""
        problems = []
        if entry.schema_before is None:
            warn(f"{migration.label}: the schema after its rollback was not compared, because "
                 "its ledger row predates schema recording")
        else:
            now = snapshot.schema_fingerprint(self.conn, like=entry.schema_before)
            problems += [f"schema {line}" for line in
                         snapshot.differences(dict(entry.schema_before), dict(now))]
        if before.content is None:
            problems += self._untouched_tables(before)
        else:
            problems += _content_problems(before.content, self._content(self._identity()))
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

    def _identity(self) -> Identity:
        found = {}
        for name in self.legacy_tables:
            row = self.conn.execute(
                "SELECT c.oid::int8, c.relfilenode::int8, c.relkind::text FROM pg_class c "
                "WHERE c.oid = to_regclass(%s)", (f"public.{name}",)).fetchone()
            if row:
                found[name] = (int(row[0]), int(row[1]), str(row[2]))
        return found


    def _written_rows(self, identity: Identity) -> dict[str, int]:
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

    def _untouched_tables(self, before: LegacyBefore) -> list[str]:
        """Problems, if this transaction replaced or wrote to any of these tables."""
        problems = []
        now = self._identity()
        written = self._written_rows(before.identity)
        for name, was in before.identity.items():
            if now.get(name) != was:
                problems.append(f"{name} was dropped, replaced or truncated")
            elif written[name] != before.written.get(name, 0):
                problems.append(f"{name}: the rollback inserted, updated or deleted "
                                f"{written[name] - before.written.get(name, 0)} rows")
        return problems

    def _content(self, names: Iterable[str]) -> dict[str, tuple[int, str]]:
        """Checksums of whatever answers to the legacy names now: tables, or the views."""
        return {name: snapshot.relation_checksum(self.conn, "public", name) for name in names}


def _swaps_legacy_names(entry: LedgerEntry, identity: Identity) -> bool:
    """Whether this rollback changes what answers to a legacy name (a view becomes the table
    again), judged by the catalog recorded before its migration; when in doubt, yes. Only plain
    tables that stay plain tables take the cheap proof."""
    if entry.schema_before is None:
        return True
    before = {row[1]: row[2] for row in entry.schema_before.get("relations", [])
              if row[0] == "public"}
    return any(kind != "r" or before.get(name) != kind for name, (_, _, kind) in identity.items())


def _content_problems(before: dict[str, tuple[int, str]],
                      after: dict[str, tuple[int, str]]) -> list[str]:
    problems = []
    for name, (rows, checksum) in before.items():
        now = after.get(name)
        if now is None:
            problems.append(f"{name} is gone")
        elif now != (rows, checksum):
            problems.append(f"{name} held {rows} rows before the rollback and {now[0]} after"
                            if now[0] != rows else
                            f"{name}: same {rows} rows in number, different content")
    return problems
