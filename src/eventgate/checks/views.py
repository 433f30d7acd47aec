"""Compatibility views: each legacy table's view exists and returns the same bag of rows as the
legacy table kept as backup (EXCEPT ALL, both ways), leaving out on both sides the keys the
bundle's change record says were written since the migration; and it never returns NULL in a
column the legacy table declares NOT NULL (not proven when the view returns no rows: no row
shows what its expressions give).

view_pass answers both from one read of the view where the legacy key is unique: the joined
read that compares the rows also counts the NULLs of each view row it meets, and the rows it
leaves out (those the change record holds) are asked by their keys. At 10M guests the NULL
gate's own read of the view took 3.4 s of a 70 s gate."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql

from eventgate.bundle import ChangeLog, TableMapping
from eventgate.checks.catalog import columns, kind_name, relkind, unique_by
from eventgate.checks.changes import Changes, one_snapshot, read_changes, with_summary
from eventgate.checks.key_ranges import KeyRange, Readers, over_key
from eventgate.checks.result import CheckResult, error_line
from eventgate.checks.rows import has_rows, nothing_to_compare, where_clause

CHECK = "compatibility view"
SAMPLE = 5


# The errors EXCEPT ALL raises when two relations' columns differ in number or type.
LAYOUT_ERRORS = (psycopg.errors.SyntaxError, psycopg.errors.DatatypeMismatch,
                 psycopg.errors.UndefinedFunction, psycopg.errors.CannotCoerce)


def _only_in(conn: psycopg.Connection, left: sql.Composable,
             right: sql.Composable) -> tuple[int, list[str]]:
    """Rows of `left` not in `right` (EXCEPT ALL, computed once): how many, and the first
    SAMPLE of them as text (so values Python cannot hold, 24:00 or infinity, still show), in
    byte order, the order Python merges the samples of several key ranges in."""
    rows = conn.execute(sql.SQL(
        "SELECT count(*) OVER (), d::text FROM ({} EXCEPT ALL {}) d "
        "ORDER BY d::text COLLATE \"C\" LIMIT {}"
    ).format(left, right, sql.Literal(SAMPLE))).fetchall()
    return (int(rows[0][0]) if rows else 0), [str(r[1]) for r in rows]


# One read of both sides joined on the key, counting only: the rows of each side with no equal
# partner on the other, and how often the legacy rows were met. With a legacy key the catalog
# keeps unique and NOT NULL, no unpartnered row and every legacy row met exactly once means the
# same bag of rows (every view row equals its one legacy row, and the other way round), which
# EXCEPT ALL both ways decides with two sorts of both sides.
# The same read counts the view rows and, per column in {null_counts}, those holding NULL there:
# each view row is met once, the legacy key being unique.
JOINED_SQL = """SELECT (SELECT count(*) FROM ({legacy}) q),
  count(*) FILTER (WHERE l.here),
  count(*) FILTER (WHERE l.here AND (v.here IS NULL OR l.r IS DISTINCT FROM v.r)),
  count(*) FILTER (WHERE v.here AND (l.here IS NULL OR l.r IS DISTINCT FROM v.r)),
  count(*) FILTER (WHERE v.here){null_counts}
FROM (SELECT r, r.{key} AS k, true AS here FROM ({legacy}) r) l
FULL JOIN (SELECT r, r.{key} AS k, true AS here{null_flags} FROM ({view}) r) v ON v.k = l.k"""


def _same_by_key(conn: psycopg.Connection, legacy: sql.Composable, view: sql.Composable,
                 key: str, nulls: list[str]) -> tuple[bool, list[int]]:
    """True when the joined read proves both sides the same bag; False when it finds a row
    without its partner or a key the view repeats (EXCEPT ALL then counts and names them).
    Either way, the view rows it read, then those holding NULL in each column of `nulls`."""
    flags = [sql.Identifier(f"null_{n}") for n in range(len(nulls))]
    row = conn.execute(sql.SQL(JOINED_SQL).format(
        legacy=legacy, view=view, key=sql.Identifier(key),
        null_counts=sql.SQL("").join(sql.SQL(", count(*) FILTER (WHERE v.{})").format(f)
                                     for f in flags),
        null_flags=sql.SQL("").join(sql.SQL(", r.{} IS NULL AS {}").format(
            sql.Identifier(c), f) for c, f in zip(nulls, flags, strict=True)))).fetchone()
    assert row is not None
    legacy_rows, met, lost, added = (int(n) for n in row[:4])
    return lost == added == 0 and met == legacy_rows, [int(n) for n in row[4:]]


@dataclass(frozen=True)
class ViewPass:
    """The view's two row gates, read in one snapshot."""

    equality: CheckResult
    nullability: CheckResult


# What one key range's read found: the rows only in the backup and only in the view (how many,
# a sample), and the view rows read then the NULLs of each required column (None: this read did
# not count them).
Found = tuple[tuple[int, list[str]], tuple[int, list[str]], list[int] | None]


def view_pass(conn: psycopg.Connection, mapping: TableMapping, *,
              log: ChangeLog | None = None, readers: Readers | None = None) -> ViewPass:
    """view_matches_legacy and view_nullability of `mapping`, the view read once where the
    legacy key is unique; otherwise (or when that read failed) the NULL gate reads on its own."""
    required = _required(conn, mapping)
    equality, nulls = _compared(conn, mapping, log, readers, required)
    if nulls is None:
        return ViewPass(equality, view_nullability(conn, mapping, readers=readers))
    return ViewPass(equality, _nulls_finding(mapping, required, nulls))


def view_matches_legacy(conn: psycopg.Connection, mapping: TableMapping, *,
                        log: ChangeLog | None = None,
                        readers: Readers | None = None) -> CheckResult:
    """The view and the backup hold the same bag of rows. With `readers`, a big table's key is
    split over that many sessions sharing the snapshot (the view shows the legacy key, so the
    same rows fall in each range on both sides)."""
    return _compared(conn, mapping, log, readers, [])[0]


def _compared(conn: psycopg.Connection, mapping: TableMapping, log: ChangeLog | None,
              readers: Readers | None, required: list[str]) -> tuple[CheckResult,
                                                                      list[int] | None]:
    """view_matches_legacy, and the NULLs of every view row in each `required` column when the
    joined read counted them (None when it did not run, or failed)."""
    assert mapping.view is not None, f"{mapping.legacy_table} declares no view"
    subject = f"view {mapping.view} vs {mapping.legacy_source}"
    kind = relkind(conn, mapping.view)
    if kind != "v":
        return CheckResult(CHECK, subject, False,
                           f"the compatibility view {mapping.view} does not exist "
                           f"(public.{mapping.view} is {kind_name(kind)})",
                           sql=f"SELECT relkind FROM pg_class WHERE relname = '{mapping.view}';"
                           ), None
    # The view shows the legacy key under its legacy name; the record holds the new table's.
    key = sql.SQL("r.{}").format(sql.Identifier(mapping.key))
    view_name = mapping.view

    def sides(changes: Changes, key_range: KeyRange | None,
              here: bool = False) -> tuple[sql.Composed, ...]:
        """Both sides' rows; `here`: read now, in the snapshot (Changes.unchanged_here), not
        shown to a person."""
        conditions = [(changes.unchanged_here if here else changes.unchanged)(key)
                      ] if changes.log else []
        if key_range is not None:
            conditions.append(key_range.predicate(key))
        where = where_clause(conditions)
        return tuple(sql.SQL("SELECT r.* FROM {} r{}").format(sql.Identifier(name), where)
                     for name in (view_name, mapping.legacy_source))

    def both_ways(session: psycopg.Connection, key_range: KeyRange | None) -> Found:
        view, legacy = sides(changes, key_range, here=True)
        if not by_key:
            return _only_in(session, legacy, view), _only_in(session, view, legacy), None
        same, nulls = _same_by_key(session, legacy, view, mapping.key, required)
        if same:
            return (0, []), (0, []), nulls
        return _only_in(session, legacy, view), _only_in(session, view, legacy), nulls

    try:
        with one_snapshot(conn):
            changes = read_changes(conn, log, mapping.target)
            by_key = unique_by(conn, mapping.legacy_source, mapping.key) is not None
            view, legacy = sides(changes, None)
            reproduce = (sql.SQL("{} EXCEPT ALL {}").format(legacy, view).as_string(conn)
                         + ";  -- and the other way round")
            parts = over_key(conn, readers, mapping.legacy_source, mapping.key, both_ways)
            nulls = _summed([p[2] for p in parts])
            if nulls is not None and required and any(changes.by_origin.values()):
                nulls = [a + b for a, b in zip(nulls, _recorded_nulls(conn, mapping, changes,
                                                                      required), strict=True)]
    except LAYOUT_ERRORS as exc:
        return CheckResult(CHECK, subject, False,
                           f"{mapping.view} cannot be compared with {mapping.legacy_source}: its "
                           f"columns do not line up with the legacy table's "
                           f"({error_line(exc)})", sql=_plain(mapping)), None
    except psycopg.Error as exc:
        return CheckResult(CHECK, subject, False,
                           f"reading {mapping.view} against {mapping.legacy_source} failed: "
                           f"{error_line(exc)}", sql=_plain(mapping)), None
    counts = (sum(p[0][0] for p in parts), sum(p[1][0] for p in parts))
    lost = sorted(r for p in parts for r in p[0][1])[:SAMPLE]
    added = sorted(r for p in parts for r in p[1][1])[:SAMPLE]
    return _equality_finding(conn, mapping, changes, counts, lost, added, reproduce), nulls


def _equality_finding(conn: psycopg.Connection, mapping: TableMapping, changes: Changes,
                      counts: tuple[int, int], lost: list[str], added: list[str],
                      reproduce: str) -> CheckResult:
    subject = f"view {mapping.view} vs {mapping.legacy_source}"
    data = changes.data()
    if changes.problem:
        return CheckResult(CHECK, subject, False, changes.problem, sql=reproduce, data=data)
    n_lost, n_added = int(counts[0]), int(counts[1])
    if not n_lost and not n_added and not has_rows(conn, mapping.legacy_source):
        return CheckResult.unproven(CHECK, subject, nothing_to_compare(mapping.legacy_source),
                                    sql=reproduce, data=data)
    if not n_lost and not n_added:
        return CheckResult(CHECK, subject, True, with_summary("same rows on both sides", changes),
                           sql=reproduce, data=data)
    details = tuple(f"only in {mapping.legacy_source}: {r}" for r in lost)
    details += tuple(f"only in view {mapping.view}: {r}" for r in added)
    return CheckResult(CHECK, subject, False, with_summary(
        f"{mapping.view} differs from {mapping.legacy_source}: {n_lost} legacy rows missing or "
        f"changed in the view, {n_added} view rows not in the legacy table", changes),
        details, reproduce, data)


def _summed(parts: list[list[int] | None]) -> list[int] | None:
    """Each column's NULLs over the ranges; None when a range did not count them."""
    if not parts or any(p is None for p in parts):
        return None
    return [sum(column) for column in zip(*(p for p in parts if p is not None), strict=True)]


def _null_counts(required: list[str]) -> sql.Composable:
    """The rows, then each required column's NULLs."""
    return sql.SQL(", ").join([sql.SQL("count(*)"), *(
        sql.SQL("count(*) FILTER (WHERE r.{} IS NULL)").format(sql.Identifier(c))
        for c in required)])


def _recorded_nulls(conn: psycopg.Connection, mapping: TableMapping, changes: Changes,
                    required: list[str]) -> list[int]:
    """The view rows the joined read left out, those whose key the record holds (found through
    the key's index), and their NULLs."""
    assert mapping.view is not None
    row = conn.execute(sql.SQL("SELECT {} FROM {} r WHERE {}").format(
        _null_counts(required), sql.Identifier(mapping.view),
        changes.recorded(conn, mapping.view, mapping.key, "r"))).fetchone()
    assert row is not None
    return [int(n) for n in row]


def _plain(mapping: TableMapping) -> str:
    return (f"SELECT * FROM {mapping.legacy_source} EXCEPT ALL SELECT * FROM {mapping.view};"
            f"  -- and the other way round")


def view_shape(conn: psycopg.Connection, mapping: TableMapping) -> CheckResult:
    """The view's columns have the legacy table's names, order and types (with typmod)."""
    assert mapping.view is not None
    subject = f"view {mapping.view} columns vs {mapping.legacy_source}"
    legacy = [(c.name, c.type) for c in columns(conn, mapping.legacy_source)]
    view = [(c.name, c.type) for c in columns(conn, mapping.view)]
    if not view:
        return CheckResult("compatibility view shape", subject, False,
                           f"the compatibility view {mapping.view} does not exist")
    problems = []
    for position in range(max(len(legacy), len(view))):
        want = legacy[position] if position < len(legacy) else None
        got = view[position] if position < len(view) else None
        if want == got:
            continue
        if got is None:
            assert want is not None
            problems.append(f"column {position + 1} {want[0]} {want[1]} is missing from the view")
        elif want is None:
            problems.append(f"column {position + 1} {got[0]} {got[1]} is not in the legacy table")
        elif want[0] != got[0]:
            problems.append(f"column {position + 1} is {got[0]} in the view, {want[0]} in the "
                            "legacy table")
        else:
            problems.append(f"column {got[0]} is {got[1]} in the view, {want[1]} in the legacy "
                            "table")
    if problems:
        return CheckResult("compatibility view shape", subject, False,
                           f"{mapping.view} does not have the legacy table's columns: "
                           f"{problems[0]}", tuple(problems[1:]),
                           f"SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                           f"WHERE attrelid = '{mapping.view}'::regclass AND attnum > 0;")
    return CheckResult("compatibility view shape", subject, True,
                       f"{len(view)} columns, same names, order and types")


def view_nullability(conn: psycopg.Connection, mapping: TableMapping, *,
                     readers: Readers | None = None) -> CheckResult:
    """PostgreSQL records no NOT NULL on view columns, so the rows are asked instead: a column
    the legacy table declares NOT NULL is never NULL through the view. With `readers`, a big
    view's key is split over sessions sharing one snapshot (the ranges are open at both ends
    and hold the NULL keys, so rows written since the migration are asked too)."""
    assert mapping.view is not None
    required = _required(conn, mapping)
    if not required:
        return _nulls_finding(mapping, required, [0])
    nulls_sql = sql.SQL("SELECT {} FROM {} r").format(_null_counts(required),
                                                      sql.Identifier(mapping.view))
    key = sql.SQL("r.{}").format(sql.Identifier(mapping.key))

    def nulls_in(session: psycopg.Connection, key_range: KeyRange | None) -> list[int]:
        where = sql.SQL("") if key_range is None else sql.SQL(" WHERE {}").format(
            key_range.predicate(key))
        row = session.execute(sql.SQL("{}{}").format(nulls_sql, where)).fetchone()
        assert row is not None
        return [int(n) for n in row]

    with one_snapshot(conn):
        parts = over_key(conn, readers, mapping.legacy_source, mapping.key, nulls_in)
    return _nulls_finding(mapping, required, [sum(column) for column in zip(*parts, strict=True)])


def _required(conn: psycopg.Connection, mapping: TableMapping) -> list[str]:
    """The columns the legacy table declares NOT NULL that the view has (a missing column is
    view_shape's finding)."""
    assert mapping.view is not None
    required = [c.name for c in columns(conn, mapping.legacy_source) if not c.nullable]
    present = {c.name for c in columns(conn, mapping.view)}
    return [c for c in required if c in present]


def _nulls_finding(mapping: TableMapping, required: list[str], counts: list[int]
                   ) -> CheckResult:
    """The finding from the view's rows `counts[0]` and each required column's NULLs after."""
    check, subject = "compatibility view nulls", f"view {mapping.view} NOT NULL columns"
    if not required:
        return CheckResult(check, subject, True, "the legacy table declares no NOT NULL "
                           "columns the view has")
    assert mapping.view is not None
    reproduce = (sql.SQL("SELECT {} FROM {} r;").format(_null_counts(required),
                                                        sql.Identifier(mapping.view))
                 .as_string(None))
    rows, *nulls = counts
    if not rows:
        # No row, no NULL: an empty view shows nothing about the expressions behind it.
        return CheckResult.unproven(check, subject, f"{mapping.view} returns no rows, so none "
                                    f"of its {len(required)} NOT NULL columns was read; load "
                                    "rows to prove it", sql=reproduce)
    found = [f"{c}: {n} NULL rows" for c, n in zip(required, nulls, strict=True) if n]
    if found:
        return CheckResult(check, subject, False,
                           f"{mapping.view} returns NULL in columns the legacy table declares "
                           f"NOT NULL: {', '.join(found)} (of {rows:,} rows)", sql=reproduce)
    return CheckResult(check, subject, True,
                       f"{len(required)} NOT NULL columns never NULL in {rows:,} rows")
