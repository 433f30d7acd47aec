"""Index presence: every index the hot paths need exists, on the declared columns."""

import psycopg
import pytest

from eventgate.bundle import IndexExpectation
from eventgate.checks.indexes import required_index

pytestmark = [pytest.mark.performance, pytest.mark.green]


def test_required_index_exists(target_conn: psycopg.Connection,
                               index_expectation: IndexExpectation) -> None:
    result = required_index(target_conn, index_expectation)
    assert result.passed, result.explain()
