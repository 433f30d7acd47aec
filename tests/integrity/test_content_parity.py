"""Content parity and integrity: no wedding row lost, duplicated or changed, and the migrated
rows hold together (keys, references, tenants, slugs, jsonb keys)."""

from collections.abc import Callable

import psycopg
import pytest

from eventgate.bundle import Reference, SameValue, TableMapping, UniqueValues
from eventgate.checks.integrity import (
    keys_one_to_one,
    no_orphans,
    same_value,
    unique_values,
)
from eventgate.checks.result import CheckResult
from eventgate.checks.table_pass import TablePass
from eventgate.pytest_plugin.proof import hold

pytestmark = [pytest.mark.integrity, pytest.mark.green]
Record = Callable[[CheckResult], CheckResult]


def test_every_legacy_value_arrived_where_the_mapping_says(
        table_mapping: TableMapping, table_pass_of: Callable[[TableMapping], TablePass],
        record_check: Record) -> None:
    # Rows the change record says were written since the migration are left out of both sides;
    # the read is shared with the row counts (eventgate.checks.table_pass).
    hold(record_check(table_pass_of(table_mapping).parity))


def test_keys_are_one_to_one(target_conn: psycopg.Connection,
                             table_mapping: TableMapping) -> None:
    hold(keys_one_to_one(target_conn, table_mapping))


def test_migrated_jsonb_holds_only_declared_keys(
        table_mapping: TableMapping,
        table_pass_of: Callable[[TableMapping], TablePass]) -> None:
    # Asked of every row in content parity's read (eventgate.checks.table_pass).
    hold(table_pass_of(table_mapping).jsonb_keys)


def test_no_migrated_row_is_an_orphan(target_conn: psycopg.Connection,
                                      reference: Reference) -> None:
    hold(no_orphans(target_conn, reference))


def test_children_share_their_parents_tenant(target_conn: psycopg.Connection,
                                             same_value_rule: SameValue) -> None:
    hold(same_value(target_conn, same_value_rule))


def test_unique_values_are_unique(target_conn: psycopg.Connection,
                                  unique_rule: UniqueValues) -> None:
    hold(unique_values(target_conn, unique_rule))
