"""Compatibility views: the old wedding application reads exactly the rows it read before."""

import psycopg
import pytest

from eventgate.bundle import TableMapping
from eventgate.checks.views import view_matches_legacy

pytestmark = [pytest.mark.compat, pytest.mark.green]


def test_view_returns_the_legacy_rows(target_conn: psycopg.Connection,
                                      view_mapping: TableMapping) -> None:
    result = view_matches_legacy(target_conn, view_mapping)
    assert result.passed, result.explain()
