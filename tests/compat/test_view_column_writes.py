"""Every column the old application can change, changed through its compatibility view, reads
back as the same UPDATE on the legacy table does: an INSTEAD OF trigger that drops, mangles or
refuses one field goes red naming that column. (test_view_writes.py replays the old
application's own statements; they change only some columns, and not every one to a new value.)
"""

import psycopg
import pytest

from eventgate.bundle import TableMapping
from eventgate.checks import view_writes
from eventgate.pg.databases import Database

pytestmark = [pytest.mark.compat, pytest.mark.destructive]


def test_each_column_updated_through_the_view_reads_back_as_on_the_legacy_table(
        legacy_db: Database, migrated_db: Database, view_mapping: TableMapping) -> None:
    name, key = view_mapping.legacy_table, view_mapping.key
    problems = []
    with legacy_db.connect() as legacy, migrated_db.connect() as migrated:
        names = [c.name for c in view_writes.columns(legacy, name)]
        row = view_writes.edit_row(legacy, name, key)
        plan = view_writes.edits(legacy, name, key)
        assert plan, f"{name} has no column to write"
        for column, to_null in plan:
            # The value is drawn on the legacy side and written to both, so the two stay
            # comparable even after an earlier edit went wrong on one side.
            edit = view_writes.make_edit(legacy, name, key, row, column, to_null)
            wanted, refused_legacy = view_writes.apply(legacy, edit)
            got, refused_view = view_writes.apply(migrated, edit)
            assert refused_legacy is None, f"{edit.describe()} fails on the legacy table: " \
                                           f"{refused_legacy}; the test must draw another value"
            if refused_view is not None:
                problems.append(f"{edit.describe()}: the view refuses it ({refused_view})")
                continue
            if got != wanted:
                problems.append(f"{edit.describe()} RETURNING *: legacy vs view differ in "
                                f"{view_writes.differing(names, wanted, got)}")
            reread_legacy = view_writes.read_row(legacy, name, key, row)
            reread_view = view_writes.read_row(migrated, name, key, row)
            if reread_view != reread_legacy:
                problems.append(f"{edit.describe()}, read back: legacy vs view differ in "
                                f"{view_writes.differing(names, reread_legacy, reread_view)}")
    assert not problems, (f"{len(problems)} of {len(plan)} writes through the view {name} do "
                          "not read back as on the legacy table:\n  " + "\n  ".join(problems))


def test_the_edits_change_every_column(legacy_db: Database,
                                       view_mapping: TableMapping) -> None:
    """The gate above proves something only if each edit really changes its column."""
    name, key = view_mapping.legacy_table, view_mapping.key
    unchanged = []
    with legacy_db.connect() as conn:
        row = view_writes.edit_row(conn, name, key)
        for column, to_null in view_writes.edits(conn, name, key):
            before = _value(conn, name, key, row, column.name)
            edit = view_writes.make_edit(conn, name, key, row, column, to_null)
            view_writes.apply(conn, edit)
            if _value(conn, name, key, row, column.name) == before and not (
                    to_null and before is None):
                unchanged.append(edit.describe())
    assert not unchanged, "these edits changed nothing:\n  " + "\n  ".join(unchanged)


def _value(conn: psycopg.Connection, name: str, key: str, row: object, column: str) -> object:
    found = conn.execute(f'SELECT "{column}" FROM "{name}" WHERE "{key}" = %s',
                         (row,)).fetchone()
    assert found is not None
    return found[0]
