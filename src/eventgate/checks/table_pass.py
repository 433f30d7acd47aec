"""Content parity, row counts and the declared jsonb keys of one table from one read of its
two sides.

Both gates join the legacy rows (the backup) and the migrated rows on the key, in one snapshot,
leaving out the same recorded keys and applying the same mapping filter. When the catalog
keeps the key unique and NOT NULL on both sides, parity's join already holds the row counts'
answer: the keys on each side and the keys only one side has. So each key range is read once,
counted (parity.counted_query), and a range where that count finds nothing different decides
both gates' pass for it. A range where it finds anything runs the two gates' own queries, so a
failure has exactly the categories, samples and SQL to reproduce that content_parity and
row_count_parity give (tests/proofs/test_table_pass.py holds them equal on several
datasets). Without unique keys each range runs both gates' own queries.

The same read asks of each migrated row whether its jsonb holds a key mapping.toml does not
declare (integrity.undeclared_keys); the rows it leaves out, those the change record holds, are
asked by their keys. When no row is flagged the jsonb gate passes without grouping every key
again; when one is, or a range fell back, it runs its own query.

Measured at 10M guests: the row counts' own read of both sides (9-11 s) is saved whole. The
jsonb flags add about 5 s to the shared read, split over the readers, against 6-7 s for the
jsonb gate's own parallel query: little wall time, about half its CPU."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql

from eventgate.bundle import ChangeLog, TableMapping
from eventgate.checks import counts, parity
from eventgate.checks.changes import Changes, one_snapshot, read_changes
from eventgate.checks.integrity import declared_jsonb_keys, jsonb_columns, undeclared_keys
from eventgate.checks.key_ranges import KeyRange, Readers, over_key
from eventgate.checks.result import CheckResult
from eventgate.checks.rows import has_rows


@dataclass(frozen=True)
class TablePass:
    """The three gates' results for one mapped table, read in one snapshot."""

    parity: CheckResult
    counts: CheckResult
    jsonb_keys: CheckResult


def _range(session: psycopg.Connection, mapping: TableMapping, changes: Changes,
           key_range: KeyRange | None, unique: bool, flags: list[sql.Composable],
           sample_limit: int) -> tuple[parity.Tally, counts.Part, int | None]:
    """The range's parity tally and row counts, and how many of its migrated rows hold an
    undeclared jsonb key (None when the range ran the gates' own queries)."""
    if unique:
        row = session.execute(parity.counted_query(mapping, changes, key_range,
                                                   flags)).fetchone()
        assert row is not None
        legacy_rows, migrated_rows, missing, extra, changed = (int(n) for n in row[:5])
        if not missing and not extra and not changed:
            return (parity.Tally(), (legacy_rows, migrated_rows, [], []),
                    sum(int(n) for n in row[5:]))
    # Something differs here (or the keys may repeat): each gate's own query names it.
    return (parity.tally_range(session, mapping, changes, key_range, sample_limit),
            counts.tally_range(session, mapping, changes, key_range, unique), None)


def _recorded_flagged(conn: psycopg.Connection, mapping: TableMapping, changes: Changes,
                      flags: list[sql.Composable]) -> int:
    """The rows the pass left out (the record holds them) that hold an undeclared key."""
    if changes.log is None or not flags or not sum(changes.by_origin.values()):
        return 0
    conditions: list[sql.Composable] = [
        changes.recorded(conn, mapping.target, mapping.columns[mapping.key].target, "t"),
        sql.SQL("({})").format(sql.SQL(" OR ").join(flags))]
    if mapping.filter:
        conditions.append(sql.SQL(mapping.filter))
    row = conn.execute(sql.SQL("SELECT count(*) FROM {} t WHERE {}").format(
        sql.Identifier(mapping.target), sql.SQL(" AND ").join(conditions))).fetchone()
    return int(row[0]) if row else 0


def table_pass(conn: psycopg.Connection, mapping: TableMapping, sample_limit: int = 10, *,
               log: ChangeLog | None = None, readers: Readers | None = None) -> TablePass:
    """content_parity, row_count_parity and declared_jsonb_keys of `mapping`, the table read
    once where it can be. With `readers`, the key is split over sessions sharing the snapshot,
    as theirs is."""
    found = parity.Tally()
    with one_snapshot(conn):
        # The FULL JOIN hashes one whole side; with the default 4 MB it spills to disk.
        conn.execute("SET LOCAL work_mem = '128MB'")
        changes = read_changes(conn, log, mapping.target)
        unique = counts.keys_unique(conn, mapping)
        flags = [undeclared_keys(mapping, c) for c in jsonb_columns(conn, mapping.target)]
        parts = over_key(conn, readers, mapping.legacy_source, mapping.key,
                         lambda session, key_range: _range(session, mapping, changes,
                                                           key_range, unique, flags,
                                                           sample_limit))
        for tally, _, _ in parts:
            found.add(tally)
        parity_sql = parity.parity_query(mapping, changes).as_string(conn) + ";"
        counts_sql = counts.reproduce_sql(conn, mapping, changes)
        compared_any = has_rows(conn, mapping.legacy_source)
        flagged = [n for _, _, n in parts]
        none_flagged = (None not in flagged and not sum(n or 0 for n in flagged)
                        and not _recorded_flagged(conn, mapping, changes, flags))
        jsonb_keys = declared_jsonb_keys(conn, mapping, none_undeclared=none_flagged)
    return TablePass(
        parity.parity_finding(mapping, found, changes, parity_sql, compared_any, sample_limit),
        counts.count_finding(mapping, [part for _, part, _ in parts], changes, counts_sql),
        jsonb_keys)
