"""Every column the old application can change, changed through its compatibility view, reads
back as the same UPDATE on the legacy table does: an INSTEAD OF trigger that drops, mangles or
refuses one field goes red naming that column. (test_view_writes.py replays the old
application's own statements; they change only some columns, and not every one to a new value.)
"""

from collections.abc import Callable

import pytest

from eventgate.bundle import TableMapping
from eventgate.checks.result import CheckResult
from eventgate.checks.view_column_writes import (
    column_writes_read_back,
    edits_change_their_columns,
)
from eventgate.pg.databases import Database
from eventgate.pytest_plugin.proof import hold

pytestmark = [pytest.mark.compat, pytest.mark.destructive]
Record = Callable[[CheckResult], CheckResult]


def test_each_column_updated_through_the_view_reads_back_as_on_the_legacy_table(
        legacy_db: Database, migrated_db: Database, view_mapping: TableMapping,
        record_check: Record) -> None:
    with legacy_db.connect() as legacy, migrated_db.connect() as migrated:
        hold(record_check(column_writes_read_back(legacy, migrated, view_mapping)))


def test_the_edits_change_every_column(legacy_db: Database, view_mapping: TableMapping,
                                       record_check: Record) -> None:
    """The gate above proves something only if each edit really changes its column."""
    with legacy_db.connect() as conn:
        hold(record_check(edits_change_their_columns(conn, view_mapping)))
