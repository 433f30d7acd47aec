"""Row-count parity: each legacy wedding table has exactly as many rows after the migration."""

import psycopg
import pytest

from eventgate.bundle import Bundle, TableMapping
from eventgate.checks.counts import row_count_parity
from eventgate.checks.key_ranges import Readers
from eventgate.checks.schema import mapping_covers_legacy, required_relations
from eventgate.pytest_plugin.proof import hold

pytestmark = [pytest.mark.integrity, pytest.mark.green]


def test_every_legacy_row_has_a_migrated_row(target_conn: psycopg.Connection,
                                              table_mapping: TableMapping, bundle: Bundle,
                                              target_readers: Readers) -> None:
    hold(row_count_parity(target_conn, table_mapping, log=bundle.expectations.change_log,
                          readers=target_readers))


def test_mapping_accounts_for_every_legacy_column(target_conn: psycopg.Connection,
                                                  table_mapping: TableMapping) -> None:
    hold(mapping_covers_legacy(target_conn, table_mapping))


def test_migration_left_the_required_tables_and_views(target_conn: psycopg.Connection,
                                                      bundle: Bundle) -> None:
    hold(required_relations(target_conn, bundle.expectations))
