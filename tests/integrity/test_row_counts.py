"""Row-count parity: each legacy wedding table has exactly as many rows after the migration."""

from collections.abc import Callable

import psycopg
import pytest

from eventgate.bundle import Bundle, TableMapping
from eventgate.checks.schema import mapping_covers_legacy, required_relations
from eventgate.checks.table_pass import TablePass
from eventgate.pytest_plugin.proof import hold

pytestmark = [pytest.mark.integrity, pytest.mark.green]


def test_every_legacy_row_has_a_migrated_row(
        table_mapping: TableMapping,
        table_pass_of: Callable[[TableMapping], TablePass]) -> None:
    # Read with content parity, once (eventgate.checks.table_pass).
    hold(table_pass_of(table_mapping).counts)


def test_mapping_accounts_for_every_legacy_column(target_conn: psycopg.Connection,
                                                  table_mapping: TableMapping) -> None:
    hold(mapping_covers_legacy(target_conn, table_mapping))


def test_migration_left_the_required_tables_and_views(target_conn: psycopg.Connection,
                                                      bundle: Bundle) -> None:
    hold(required_relations(target_conn, bundle.expectations))
