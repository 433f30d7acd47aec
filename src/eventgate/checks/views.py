"""Compatibility views: each legacy table's view exists and returns the same bag of rows as the
legacy table kept as backup (EXCEPT ALL, both ways), leaving out on both sides the keys the
bundle's change record says were written since the migration."""

from __future__ import annotations

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
JOINED_SQL = """SELECT (SELECT count(*) FROM ({legacy}) q),
  count(*) FILTER (WHERE l.here),
  count(*) FILTER (WHERE l.here AND (v.here IS NULL OR l.r IS DISTINCT FROM v.r)),
  count(*) FILTER (WHERE v.here AND (l.here IS NULL OR l.r IS DISTINCT FROM v.r))
FROM (SELECT r, r.{key} AS k, true AS here FROM ({legacy}) r) l
FULL JOIN (SELECT r, r.{key} AS k, true AS here FROM ({view}) r) v ON v.k = l.k"""


def _same_by_key(conn: psycopg.Connection, legacy: sql.Composable, view: sql.Composable,
                 key: str) -> bool:
    """True when the joined read proves both sides the same bag; False when it finds a row
    without its partner or a key the view repeats (EXCEPT ALL then counts and names them)."""
    row = conn.execute(sql.SQL(JOINED_SQL).format(
        legacy=legacy, view=view, key=sql.Identifier(key))).fetchone()
    assert row is not None
    legacy_rows, met, lost, added = (int(n) for n in row)
    return lost == added == 0 and met == legacy_rows


def view_matches_legacy(conn: psycopg.Connection, mapping: TableMapping, *,
                        log: ChangeLog | None = None,
                        readers: Readers | None = None) -> CheckResult:
    """The view and the backup hold the same bag of rows. With `readers`, a big table's key is
    split over that many sessions sharing the snapshot (the view shows the legacy key, so the
    same rows fall in each range on both sides)."""
    assert mapping.view is not None, f"{mapping.legacy_table} declares no view"
    subject = f"view {mapping.view} vs {mapping.legacy_source}"
    kind = relkind(conn, mapping.view)
    if kind != "v":
        return CheckResult(CHECK, subject, False,
                           f"the compatibility view {mapping.view} does not exist "
                           f"(public.{mapping.view} is {kind_name(kind)})",
                           sql=f"SELECT relkind FROM pg_class WHERE relname = '{mapping.view}';")
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

    def both_ways(session: psycopg.Connection,
                  key_range: KeyRange | None) -> tuple[tuple[int, list[str]], ...]:
        view, legacy = sides(changes, key_range, here=True)
        if by_key and _same_by_key(session, legacy, view, mapping.key):
            return (0, []), (0, [])
        return _only_in(session, legacy, view), _only_in(session, view, legacy)

    try:
        with one_snapshot(conn):
            changes = read_changes(conn, log, mapping.target)
            by_key = unique_by(conn, mapping.legacy_source, mapping.key) is not None
            view, legacy = sides(changes, None)
            reproduce = (sql.SQL("{} EXCEPT ALL {}").format(legacy, view).as_string(conn)
                         + ";  -- and the other way round")
            parts = over_key(conn, readers, mapping.legacy_source, mapping.key, both_ways)
    except LAYOUT_ERRORS as exc:
        return CheckResult(CHECK, subject, False,
                           f"{mapping.view} cannot be compared with {mapping.legacy_source}: its "
                           f"columns do not line up with the legacy table's "
                           f"({error_line(exc)})", sql=_plain(mapping))
    except psycopg.Error as exc:
        return CheckResult(CHECK, subject, False,
                           f"reading {mapping.view} against {mapping.legacy_source} failed: "
                           f"{error_line(exc)}", sql=_plain(mapping))
    counts = (sum(p[0][0] for p in parts), sum(p[1][0] for p in parts))
    lost = sorted(r for p in parts for r in p[0][1])[:SAMPLE]
    added = sorted(r for p in parts for r in p[1][1])[:SAMPLE]
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
    subject = f"view {mapping.view} NOT NULL columns"
    required = [c.name for c in columns(conn, mapping.legacy_source) if not c.nullable]
    present = {c.name for c in columns(conn, mapping.view)}
    required = [c for c in required if c in present]  # a missing column is view_shape's finding
    if not required:
        return CheckResult("compatibility view nulls", subject, True, "no NOT NULL columns")
    nulls_sql = sql.SQL("SELECT {} FROM {} r").format(
        sql.SQL(", ").join(sql.SQL("count(*) FILTER (WHERE r.{} IS NULL)").format(
            sql.Identifier(c)) for c in required), sql.Identifier(mapping.view))
    key = sql.SQL("r.{}").format(sql.Identifier(mapping.key))

    def nulls_in(session: psycopg.Connection, key_range: KeyRange | None) -> list[int]:
        where = sql.SQL("") if key_range is None else sql.SQL(" WHERE {}").format(
            key_range.predicate(key))
        row = session.execute(sql.SQL("{}{}").format(nulls_sql, where)).fetchone()
        assert row is not None
        return [int(n) for n in row]

    with one_snapshot(conn):
        parts = over_key(conn, readers, mapping.legacy_source, mapping.key, nulls_in)
    counts = [sum(column) for column in zip(*parts, strict=True)]
    nulls = [f"{c}: {n} NULL rows" for c, n in zip(required, counts, strict=True) if n]
    if nulls:
        return CheckResult("compatibility view nulls", subject, False,
                           f"{mapping.view} returns NULL in columns the legacy table declares "
                           f"NOT NULL: {', '.join(nulls)}")
    return CheckResult("compatibility view nulls", subject, True,
                       f"{len(required)} NOT NULL columns never NULL")
