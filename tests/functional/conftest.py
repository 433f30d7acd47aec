"""Helpers of the functional suite: tenants drawn from the engine's own data."""

from uuid import UUID

import psycopg
import pytest

PROBLEM = "application/problem+json"


@pytest.fixture
def busy_tenant(engine_conn: psycopg.Connection) -> UUID:
    """The tenant with the most events."""
    row = engine_conn.execute("SELECT tenant_id FROM events GROUP BY 1 "
                              "ORDER BY count(*) DESC, 1 LIMIT 1").fetchone()
    assert row is not None, "the engine's database holds no events"
    return UUID(str(row[0]))


@pytest.fixture
def other_tenant(engine_conn: psycopg.Connection, busy_tenant: UUID) -> UUID:
    row = engine_conn.execute("SELECT id FROM tenants WHERE id <> %s ORDER BY id LIMIT 1",
                              (busy_tenant,)).fetchone()
    assert row is not None
    return UUID(str(row[0]))
