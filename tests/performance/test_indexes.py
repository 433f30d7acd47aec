"""Index presence: every index the hot paths need exists, on the declared columns, and the
tables they index have the planner statistics that let the planner use them."""

import psycopg
import pytest

from eventgate.bundle import Bundle, IndexExpectation
from eventgate.checks.indexes import required_index
from eventgate.checks.statistics import has_statistics
from eventgate.pytest_plugin.proof import hold

pytestmark = [pytest.mark.performance, pytest.mark.green]


def test_required_index_exists(target_conn: psycopg.Connection,
                               index_expectation: IndexExpectation) -> None:
    hold(required_index(target_conn, index_expectation))


def test_indexed_tables_have_planner_statistics(target_conn: psycopg.Connection,
                                                bundle: Bundle) -> None:
    tables = sorted({i.table for i in bundle.expectations.indexes})
    results = [has_statistics(target_conn, table) for table in tables]
    failed = [r for r in results if r.outcome == "failed"]
    assert not failed, "\n".join(r.explain() for r in failed)
    proven = [r for r in results if r.passed]
    if not proven:
        hold(results[0])
