"""Compatibility views as drop-in replacements: the old wedding application sees the same
columns, the same rows and the same answers to its own queries as before."""

from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from eventgate.bundle import Bundle, TableMapping
from eventgate.checks.key_ranges import Readers
from eventgate.checks.legacy_queries import LegacyQuery, load_queries, same_results
from eventgate.checks.parallel_views import view_goes_parallel
from eventgate.checks.views import ViewPass, view_shape
from eventgate.pytest_plugin.proof import hold

pytestmark = [pytest.mark.compat, pytest.mark.green]

QUERIES = load_queries(Path(__file__).resolve().parents[2] / "fixtures" / "legacy_queries.toml")


def test_view_returns_the_legacy_rows(
        view_mapping: TableMapping, view_pass_of: Callable[[TableMapping], ViewPass]) -> None:
    hold(view_pass_of(view_mapping).equality)


def test_view_has_the_legacy_columns_names_order_and_types(target_conn: psycopg.Connection,
                                                           view_mapping: TableMapping) -> None:
    hold(view_shape(target_conn, view_mapping))


def test_view_never_returns_null_where_the_legacy_table_forbade_it(
        view_mapping: TableMapping, view_pass_of: Callable[[TableMapping], ViewPass]) -> None:
    hold(view_pass_of(view_mapping).nullability)


def test_a_report_through_the_view_may_use_every_core(target_conn: psycopg.Connection,
                                                     view_mapping: TableMapping) -> None:
    hold(view_goes_parallel(target_conn, view_mapping))


@pytest.mark.parametrize("query", QUERIES, ids=[q.id for q in QUERIES])
def test_legacy_query_answers_identically(target_conn: psycopg.Connection, bundle: Bundle,
                                          query: LegacyQuery, target_readers: Readers) -> None:
    hold(same_results(target_conn, query, list(bundle.mapping.values()),
                      bundle.expectations.change_log, readers=target_readers))
