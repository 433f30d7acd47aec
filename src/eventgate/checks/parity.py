"""Content parity: every legacy row matches exactly one migrated row, column by column, as
mapping.toml says it should.

The comparison runs inside PostgreSQL, in one REPEATABLE READ snapshot: a FULL JOIN of the
legacy rows and the migrated rows on the key, with a typed IS DISTINCT FROM per mapped column
(jsonb keys compared as jsonb, so a missing key, JSON null and SQL NULL all differ; timestamps
compared as timestamptz, so in UTC at microsecond precision; empty strings and NULLs kept apart,
never folded). Python receives only the differing rows, streamed through a server-side cursor,
and keeps counts and a bounded sample.

Rows the bundle's change record says were written since the migration (eventgate.checks.changes)
are left out of both sides; the rest are the migration's and are held to the backup exactly.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from eventgate.bundle import ChangeLog, ColumnMapping, TableMapping
from eventgate.checks.changes import Changes, read_changes, with_summary
from eventgate.checks.key_ranges import KeyRange, Readers, key_order, over_key
from eventgate.checks.result import CheckResult
from eventgate.checks.rows import has_rows, nothing_to_compare, where_clause

CHECK = "content parity"
STREAM_ROWS = 5000
KEY_MISSING = "<key missing>"

# Every content-parity result, pass or fail, is handed to these, so a report can keep its diff
# samples also where a test does not record the check itself (the proofs, the properties). They
# only look: the finding is the return value, unchanged.
observers: list[Callable[[CheckResult], None]] = []


def _observed(result: CheckResult) -> CheckResult:
    for observe in observers:
        observe(result)
    return result


@dataclass(frozen=True)
class ComparedColumn:
    """One legacy column, and the two expressions whose values must be identical."""

    name: str
    legacy: sql.Composable  # over the legacy row `l`
    migrated: sql.Composable  # over the migrated row `t`
    shown_as: str  # how the migrated side is named in reports
    jsonb: bool = False  # on the migrated side, SQL NULL then means "the key is missing"


def compared_columns(mapping: TableMapping) -> list[ComparedColumn]:
    columns = []
    for name, column in mapping.columns.items():
        if column.kind == "dropped":
            continue
        columns.append(_compare(name, column, mapping.target))
        if column.kind == "derived" and column.inverse:
            # The derivation can agree with itself and still lose the value (24:00, a skipped
            # day); reading it back as the views do must give the legacy value again.
            columns.append(ComparedColumn(
                f"{name} (read back)", sql.SQL("l.{}").format(sql.Identifier(name)),
                sql.SQL("(" + column.inverse + ")"), f"{column.inverse}"))
    return columns


def _compare(name: str, column: ColumnMapping, target: str) -> ComparedColumn:
    legacy_col = sql.SQL("l.{}").format(sql.Identifier(name))
    if column.kind == "column":
        return ComparedColumn(name, legacy_col, sql.SQL("t.{}").format(
            sql.Identifier(column.target)), f"{target}.{column.target}")
    if column.kind == "jsonb":
        # SQL NULL must arrive as JSON null under the key; a missing key reads as SQL NULL and
        # so differs from both.
        return ComparedColumn(
            name, sql.SQL("coalesce(to_jsonb({}), 'null'::jsonb)").format(legacy_col),
            sql.SQL("t.{} -> {}").format(sql.Identifier(column.jsonb_column),
                                         sql.Literal(column.jsonb_key)),
            f"{target}.{column.jsonb_column}->'{column.jsonb_key}'", jsonb=True)
    assert column.kind == "derived" and column.sql
    return ComparedColumn(name, sql.SQL("(" + column.sql + ")"), sql.SQL("t.{}").format(
        sql.Identifier(column.target)), f"{target}.{column.target} (derived)")


def _sides(mapping: TableMapping, changes: Changes | None, key_range: KeyRange | None,
           also: Sequence[sql.Composable] = (), here: bool = False
           ) -> tuple[sql.Composed, sql.Composed, list[sql.Composable]]:
    """The legacy and the migrated side as `SELECT key AS k, <compared columns>`, and the typed
    IS DISTINCT FROM of each compared column between them (as l and m); `also`: expressions
    over the migrated row t, as m.x0, m.x1, ...; `here`: run in the snapshot `changes` was
    read in (Changes.unchanged_here), not shown to a person."""
    columns = compared_columns(mapping)
    key = mapping.columns[mapping.key]
    assert key.kind == "column", "the key must be copied unchanged"
    names = [sql.Identifier(c.name) for c in columns]
    legacy_key = sql.SQL("l.{}").format(sql.Identifier(mapping.key))
    migrated_key = sql.SQL("t.{}").format(sql.Identifier(key.target))
    legacy_where: list[sql.Composable] = []
    migrated_where: list[sql.Composable] = [sql.SQL(mapping.filter)] if mapping.filter else []
    if changes is not None and changes.log is not None:
        keep = changes.unchanged_here if here else changes.unchanged
        legacy_where.append(keep(legacy_key))
        migrated_where.append(keep(migrated_key))
    if key_range is not None:
        legacy_where.append(key_range.predicate(legacy_key))
        migrated_where.append(key_range.predicate(migrated_key))
    legacy_side = sql.SQL("SELECT {key} AS k, {cols} FROM {source} l{where}").format(
        key=legacy_key, source=sql.Identifier(mapping.legacy_source),
        where=where_clause(legacy_where),
        cols=sql.SQL(", ").join(sql.SQL("{} AS {}").format(c.legacy, n)
                                for c, n in zip(columns, names, strict=True)))
    migrated_side = sql.SQL("SELECT {key} AS k, {cols} FROM {target} t{where}").format(
        key=migrated_key, target=sql.Identifier(mapping.target),
        where=where_clause(migrated_where),
        cols=sql.SQL(", ").join([sql.SQL("{} AS {}").format(c.migrated, n)
                                 for c, n in zip(columns, names, strict=True)]
                                + [sql.SQL("{} AS {}").format(e, sql.Identifier(f"x{i}"))
                                   for i, e in enumerate(also)]))
    distinct: list[sql.Composable] = [sql.SQL("l.{n} IS DISTINCT FROM m.{n}").format(n=n)
                                      for n in names]
    return legacy_side, migrated_side, distinct


def parity_query(mapping: TableMapping, changes: Changes | None = None,
                 key_range: KeyRange | None = None, here: bool = False) -> sql.Composed:
    """The differing rows: key, which side lacks it, the changed columns, both sides' values;
    with `changes`, keys written since the migration are left out of both sides; with
    `key_range`, only keys in it, on both sides; `here` as _sides has it."""
    columns = compared_columns(mapping)
    names = [sql.Identifier(c.name) for c in columns]
    legacy_side, migrated_side, distinct = _sides(mapping, changes, key_range, here=here)
    changed = sql.SQL("array_remove(ARRAY[{}]::text[], NULL)").format(sql.SQL(", ").join(
        sql.SQL("CASE WHEN {} THEN {} END").format(d, sql.Literal(c.name))
        for d, c in zip(distinct, columns, strict=True)))
    values = sql.SQL(", ").join(sql.SQL("l.{n}::text, m.{n}::text").format(n=n) for n in names)
    return sql.SQL(
        "SELECT coalesce(l.k, m.k) AS key, m.k IS NULL AS missing, l.k IS NULL AS extra, "
        "{changed}, {values} FROM ({legacy}) l FULL JOIN ({migrated}) m ON l.k = m.k "
        "WHERE l.k IS NULL OR m.k IS NULL OR {any_distinct} ORDER BY 1"
    ).format(changed=changed, values=values, legacy=legacy_side, migrated=migrated_side,
             any_distinct=sql.SQL(" OR ").join(distinct))


def counted_query(mapping: TableMapping, changes: Changes | None = None,
                  key_range: KeyRange | None = None,
                  also: Sequence[sql.Composable] = ()) -> sql.Composed:
    """The same join as parity_query, counted only: the keys on each side, the keys only one
    side holds, the keys on both whose rows differ, and for each condition in `also` (over the
    migrated row t) the migrated rows it holds for. With keys unique and NOT NULL on both
    sides, that is the row counts' answer too (eventgate.checks.table_pass)."""
    legacy_side, migrated_side, distinct = _sides(mapping, changes, key_range, also,
                                                  here=True)
    return sql.SQL(
        "SELECT count(l.k), count(m.k), count(*) FILTER (WHERE m.k IS NULL), "
        "count(*) FILTER (WHERE l.k IS NULL), "
        "count(*) FILTER (WHERE l.k IS NOT NULL AND m.k IS NOT NULL AND ({any_distinct})){also} "
        "FROM ({legacy}) l FULL JOIN ({migrated}) m ON l.k = m.k"
    ).format(legacy=legacy_side, migrated=migrated_side,
             any_distinct=sql.SQL(" OR ").join(distinct),
             also=sql.SQL("").join(sql.SQL(", count(*) FILTER (WHERE m.{})").format(
                 sql.Identifier(f"x{i}")) for i in range(len(also))))


def _sample(row: tuple[Any, ...], columns: list[ComparedColumn]) -> dict[str, Any]:
    key, missing, extra, changed = row[0], row[1], row[2], row[3]
    values = row[4:]
    if missing:
        return {"key": key, "kind": "missing",
                "legacy": {c.name: values[2 * i] for i, c in enumerate(columns)}}
    if extra:
        return {"key": key, "kind": "extra",
                "migrated": {c.name: values[2 * i + 1] for i, c in enumerate(columns)}}
    return {"key": key, "kind": "changed", "columns": {
        c.name: {"before": values[2 * i],
                 "after": KEY_MISSING if c.jsonb and values[2 * i + 1] is None
                 else values[2 * i + 1],
                 "where": c.shown_as}
        for i, c in enumerate(columns) if c.name in changed}}


def _describe(sample: dict[str, Any], table: str, key: str) -> str:
    head = f"{table} {key}={sample['key']}"
    if sample["kind"] == "missing":
        return f"{head}: missing after migration"
    if sample["kind"] == "extra":
        return f"{head}: migrated row with no legacy row"
    changes = "; ".join(f"{name}: {c['before']!r} -> {c['after']!r} (in {c['where']})"
                        for name, c in sample["columns"].items())
    return f"{head}: {changes}"


@dataclass
class Tally:
    """What one query over (part of) the key found: counts by kind and column, the first
    differing rows in key order."""

    counts: Counter[str] = field(default_factory=Counter)
    by_column: Counter[str] = field(default_factory=Counter)
    samples: list[tuple[Any, dict[str, Any]]] = field(default_factory=list)

    def add(self, other: Tally) -> None:
        self.counts.update(other.counts)
        self.by_column.update(other.by_column)
        self.samples.extend(other.samples)


def _tally(conn: psycopg.Connection, query: sql.Composed, columns: list[ComparedColumn],
           sample_limit: int) -> Tally:
    found = Tally()
    with conn.cursor(name="eventgate_parity") as cur:
        cur.itersize = STREAM_ROWS
        cur.execute(query)
        for row in cur:
            kind = "missing" if row[1] else "extra" if row[2] else "changed"
            found.counts[kind] += 1
            if kind == "changed":
                found.by_column.update(row[3])
            if len(found.samples) < sample_limit:
                found.samples.append((row[0], _sample(row, columns)))
    return found


def content_parity(conn: psycopg.Connection, mapping: TableMapping, sample_limit: int = 10,
                   *, log: ChangeLog | None = None,
                   readers: Readers | None = None) -> CheckResult:
    """Every legacy row of one table against its migrated row, in one snapshot; with the
    bundle's change record (`log`), rows written since the migration are left out. With
    `readers`, a big table's key is split over that many sessions sharing the snapshot: the
    same rows found, the same samples (the first in key order)."""
    found = Tally()
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        # The FULL JOIN hashes one whole side; with the default 4 MB it spills to disk.
        conn.execute("SET LOCAL work_mem = '128MB'")
        # In the same snapshot as the rows it excludes.
        changes = read_changes(conn, log, mapping.target)
        for tally in over_key(conn, readers, mapping.legacy_source, mapping.key,
                              lambda session, key_range: tally_range(
                                  session, mapping, changes, key_range, sample_limit)):
            found.add(tally)
        reproduce = parity_query(mapping, changes).as_string(conn) + ";"
        compared_any = has_rows(conn, mapping.legacy_source)
    return parity_finding(mapping, found, changes, reproduce, compared_any, sample_limit)


def tally_range(conn: psycopg.Connection, mapping: TableMapping, changes: Changes,
                key_range: KeyRange | None, sample_limit: int = 10) -> Tally:
    """The differing rows of (a range of) the key, counted and sampled."""
    return _tally(conn, parity_query(mapping, changes, key_range, here=True),
                  compared_columns(mapping), sample_limit)


def parity_finding(mapping: TableMapping, found: Tally, changes: Changes, reproduce: str,
                   compared_any: bool, sample_limit: int = 10) -> CheckResult:
    """The check's result from what the ranges found (merged in key order)."""
    columns = compared_columns(mapping)
    # The ranges' samples merged: the first in key order, as one ORDER BY would give them.
    found.samples.sort(key=lambda s: key_order(s[0]))
    counts, by_column = found.counts, found.by_column
    samples = [s for _, s in found.samples[:sample_limit]]
    subject = f"{mapping.legacy_source} -> {mapping.target}"
    data = {"table": mapping.legacy_table, "missing": counts["missing"],
            "extra": counts["extra"], "changed": counts["changed"],
            "changed_by_column": dict(by_column.most_common()), "samples": samples,
            **changes.data()}
    if changes.problem:
        return _observed(CheckResult(CHECK, subject, False, changes.problem, sql=reproduce,
                                     data=data))
    if not counts and not compared_any:
        return _observed(CheckResult.unproven(
            CHECK, subject, nothing_to_compare(mapping.legacy_source), sql=reproduce, data=data))
    if not counts:
        return _observed(CheckResult(
            CHECK, subject, True, with_summary(f"every row matches on all {len(columns)} "
                                               "mapped columns", changes),
            sql=reproduce, data=data))
    summary = (f"{mapping.legacy_table}: {counts['missing']} missing, {counts['extra']} extra, "
               f"{counts['changed']} changed")
    if by_column:
        summary += " (" + ", ".join(f"{name}: {n}" for name, n in by_column.most_common()) + ")"
    details = tuple(_describe(s, mapping.legacy_table, mapping.key) for s in samples[:5])
    return _observed(CheckResult(CHECK, subject, False, with_summary(summary, changes), details,
                                 reproduce, data))
