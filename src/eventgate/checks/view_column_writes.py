"""Column by column through the compatibility views: every column the old application can
change, changed through its view (to a new value, then to NULL where allowed), reads back as
the same UPDATE on the legacy table does. An INSTEAD OF trigger that drops, mangles or refuses
one field fails naming that column. The writes themselves come from eventgate.checks.view_writes;
the old application's own statements, which change only some columns, are replayed elsewhere
(tests/compat/test_view_writes.py)."""

from __future__ import annotations

import psycopg

from eventgate.bundle import TableMapping
from eventgate.checks import view_writes
from eventgate.checks.result import CheckResult

CHECK = "view column writes"
CHECK_EDITS = "view column edits"


def column_writes_read_back(legacy: psycopg.Connection, migrated: psycopg.Connection,
                            mapping: TableMapping) -> CheckResult:
    """Each edit of one row runs on the legacy table (`legacy`) and through the view of a
    migrated copy of the same data (`migrated`); the rows each returns and the row read back
    afterwards must be the same on both sides."""
    name, key = mapping.legacy_table, mapping.key
    subject = f"view {name}"
    planned = view_writes.edit_plan(legacy, mapping)
    if isinstance(planned, str):
        return CheckResult(CHECK, subject, False, planned)
    names, row, plan = planned.names, planned.row, planned.edits
    if not plan:
        return CheckResult(CHECK, subject, False, f"{name} has no column to write")
    problems: list[str] = []
    failed: list[view_writes.Edit] = []
    unexercised: list[str] = []
    for column, to_null in plan:
        # The value is drawn on the legacy side and written to both, so the two stay
        # comparable even after an earlier edit went wrong on one side.
        edit = view_writes.edit_or_why(legacy, name, key, row, column, to_null)
        if isinstance(edit, str):
            unexercised.append(edit)
            continue
        wanted, refused_legacy = view_writes.apply(legacy, edit)
        got, refused_view = view_writes.apply(migrated, edit)
        if refused_legacy is not None:
            return CheckResult(CHECK, subject, False,
                               f"{edit.describe()} fails on the legacy table: {refused_legacy}; "
                               "the test must draw another value")
        found = _read_back(legacy, migrated, edit, names, wanted, got, refused_view)
        if found:
            problems += found
            failed.append(edit)
    written = len(plan) - len(unexercised)
    data = {"writes": written, "row": row, "failed": len(failed), "unexercised": unexercised}
    if problems:
        return CheckResult(CHECK, subject, False,
                           f"{len(problems)} of {written} writes through the view {name} do "
                           "not read back as on the legacy table", tuple(problems),
                           failed[0].statement().as_string(migrated) + ";", data)
    if unexercised:
        return CheckResult.unproven(
            CHECK, subject, f"{written} writes through the view {name} read back as on the "
            f"legacy table, but {len(unexercised)} could not be made: "
            + "; ".join(unexercised), data=data)
    return CheckResult(CHECK, subject, True, f"all {len(plan)} writes through the view {name} "
                       "read back as on the legacy table", data=data)


def _read_back(legacy: psycopg.Connection, migrated: psycopg.Connection,
               edit: view_writes.Edit, names: list[str], wanted: tuple[object, ...] | None,
               got: tuple[object, ...] | None, refused_view: str | None) -> list[str]:
    """What differs after one edit: the view refusing it, the rows the UPDATE returned, the
    row read back afterwards."""
    if refused_view is not None:
        return [f"{edit.describe()}: the view refuses it ({refused_view})"]
    problems = []
    if got != wanted:
        problems.append(f"{edit.describe()} RETURNING *: legacy vs view differ in "
                        f"{view_writes.differing(names, wanted, got)}")
    reread_legacy = view_writes.read_row(legacy, edit.relation, edit.key, edit.row)
    reread_view = view_writes.read_row(migrated, edit.relation, edit.key, edit.row)
    if reread_view != reread_legacy:
        problems.append(f"{edit.describe()}, read back: legacy vs view differ in "
                        f"{view_writes.differing(names, reread_legacy, reread_view)}")
    return problems


def edits_change_their_columns(conn: psycopg.Connection, mapping: TableMapping) -> CheckResult:
    """The gate above proves something only if each edit really changes its column: run on
    the legacy table, every edit leaves its column with another value (or NULL)."""
    name, key = mapping.legacy_table, mapping.key
    subject = f"{name} edits"
    planned = view_writes.edit_plan(conn, mapping)
    if isinstance(planned, str):
        return CheckResult(CHECK_EDITS, subject, False, planned)
    names, row, plan = planned.names, planned.row, planned.edits
    unchanged: list[str] = []
    unexercised: list[str] = []
    for column, to_null in plan:
        position = names.index(column.name)
        before = view_writes.read_row(conn, name, key, row)
        edit = view_writes.edit_or_why(conn, name, key, row, column, to_null)
        if isinstance(edit, str):
            unexercised.append(edit)
            continue
        view_writes.apply(conn, edit)
        after = view_writes.read_row(conn, name, key, row)
        old = None if before is None else before[position]
        new = None if after is None else after[position]
        if new == old and not (to_null and old is None):
            unchanged.append(edit.describe())
    if unchanged:
        return CheckResult(CHECK_EDITS, subject, False, "these edits changed nothing",
                           tuple(unchanged))
    if unexercised:
        return CheckResult.unproven(
            CHECK_EDITS, subject, f"{len(plan) - len(unexercised)} edits change their column, "
            f"but {len(unexercised)} could not be made: " + "; ".join(unexercised))
    return CheckResult(CHECK_EDITS, subject, True,
                       f"each of the {len(plan)} edits changes its column")
