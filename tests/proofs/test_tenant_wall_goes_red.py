"""The tenant wall can fail, and holds where it must: a forgotten WHERE tenant_id in the
engine leaks nothing under row-level security, and leaks (caught by the isolation gate) once
the table's security is off; the database gate goes red on security switched off, a policy
that lets one tenant's rows through, and an engine login that may bypass it; an engine that
trusts unsigned claims is caught by the forged-credential gate."""

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
from psycopg import sql

from eventgate import http_client
from eventgate.bundle import Bundle
from eventgate.bundle_security import RowSecurity
from eventgate.checks.row_security import engine_role_held, table_guarded, tenant_view
from eventgate.checks.tenant_isolation import (
    Victim,
    forged_credentials_refused,
    reads_stay_in_tenant,
    victim,
)
from eventgate.credentials import TenantCredentials
from eventgate.engine import store
from eventgate.engine.process import RunningEngine
from eventgate.pg.databases import Database
from eventgate.pg.roles import engine_login_dsn

pytestmark = [pytest.mark.destructive, pytest.mark.functional]
ROOT = Path(__file__).resolve().parents[2]
FIXTURES_ENV = {"PYTHONPATH": str(ROOT)}


@pytest.fixture
def security(bundle: Bundle) -> RowSecurity:
    assert bundle.expectations.row_security is not None
    return bundle.expectations.row_security


@pytest.fixture
def tenants(migrated_db: Database) -> tuple[Victim, UUID]:
    with migrated_db.connect(read_only=True) as conn:
        owner = store.busiest_tenant(conn)
        assert owner is not None
        other = store.another_tenant(conn, owner)
        found = victim(conn, owner)
    if other is None:
        pytest.skip("a single-tenant seed has no second tenant to ask as")
    assert found is not None
    return found, other


@pytest.fixture
def as_engine(start_engine: Callable[..., Any], migrated_db: Database,
              security: RowSecurity) -> Callable[[str], contextlib.AbstractContextManager[
                  tuple[httpx.Client, RunningEngine]]]:
    """An engine from `factory`, logged in as a member of the engine's role, on migrated_db."""
    @contextlib.contextmanager
    def serve(factory: str) -> Iterator[tuple[httpx.Client, RunningEngine]]:
        dsn = engine_login_dsn(migrated_db.dsn, security.engine_role)
        with start_engine(dsn, app_factory=factory, env=FIXTURES_ENV) as engine, \
                http_client.client(base_url=engine.url, timeout=15) as client:
            yield client, engine
    return serve


def _reads(client: httpx.Client, engine: RunningEngine, tenants: tuple[Victim, UUID]) -> Any:
    target, other = tenants
    return reads_stay_in_tenant(client, other, engine.as_tenant(other),
                                engine.as_tenant(target.tenant), target)


def test_a_forgotten_tenant_filter_leaks_nothing_under_row_level_security(
        as_engine: Callable[..., Any], tenants: tuple[Victim, UUID]) -> None:
    with as_engine("fixtures.engine_faults:forgets_tenant_filter") as (client, engine):
        result = _reads(client, engine, tenants)
    assert result.passed, result.explain()


def test_the_same_forgotten_filter_leaks_once_row_level_security_is_off_and_is_caught(
        as_engine: Callable[..., Any], tenants: tuple[Victim, UUID], migrated_db: Database,
        security: RowSecurity) -> None:
    with migrated_db.connect() as conn:
        conn.execute("ALTER TABLE events DISABLE ROW LEVEL SECURITY")
        guarded = table_guarded(conn, security, security.tables[0])
    assert not guarded.passed and "row-level security is off on events" in guarded.summary
    with as_engine("fixtures.engine_faults:forgets_tenant_filter") as (client, engine):
        result = _reads(client, engine, tenants)
    assert not result.passed
    assert f"GET /api/events/{tenants[0].event_id}" in result.summary, result.explain()


def test_a_policy_letting_one_tenant_through_is_caught(
        migrated_db: Database, security: RowSecurity, tenants: tuple[Victim, UUID]) -> None:
    target, _ = tenants
    with migrated_db.connect() as conn:
        conn.execute(sql.SQL(
            "ALTER POLICY event_participants_tenant_isolation ON event_participants USING "
            "(tenant_id = (SELECT NULLIF(current_setting('eventgate.tenant_id', true), "
            "'')::uuid) OR tenant_id = {})").format(sql.Literal(str(target.tenant))))
        table = next(t for t in security.tables if t.name == "event_participants")
        assert table_guarded(conn, security, table).passed  # the policy is there, and wrong
        result = tenant_view(conn, security, table)
    assert not result.passed
    assert "a tenant that does not exist" in result.summary, result.explain()
    assert "row(s) of another tenant in event_participants" in result.summary


def test_an_engine_login_that_may_bypass_row_level_security_is_caught(
        migrated_db: Database, security: RowSecurity) -> None:
    login = "eventgate_proof_bypassing_login"
    with migrated_db.connect() as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN BYPASSRLS IN ROLE {}").format(
            sql.Identifier(login), sql.Identifier(security.engine_role)))
        try:
            result = engine_role_held(conn, security)
        finally:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(login)))
    assert not result.passed
    assert f"login {login}, a member of {security.engine_role}, has BYPASSRLS" in result.summary


def test_a_view_owned_by_a_superuser_is_caught(migrated_db: Database,
                                               security: RowSecurity) -> None:
    with migrated_db.connect() as conn:
        owner = conn.execute("SELECT current_user").fetchone()
        assert owner is not None
        conn.execute(sql.SQL("ALTER VIEW wedding_invitations OWNER TO {}").format(
            sql.Identifier(owner[0])))
        result = engine_role_held(conn, security)
    assert not result.passed
    assert (f"view wedding_invitations acts as its owner {owner[0]}, who is a superuser"
            in result.summary), result.explain()


def test_an_engine_that_trusts_unsigned_claims_is_caught(
        as_engine: Callable[..., Any], tenants: tuple[Victim, UUID]) -> None:
    target, other = tenants
    with as_engine("fixtures.sabotage_engines:trusts_unsigned_claims") as (client, engine):
        credentials = TenantCredentials(keys=engine.token_keys)
        result = forged_credentials_refused(client, credentials, other, target)
    assert not result.passed
    assert result.summary.startswith("unsigned (alg none): GET /api/events/"), result.explain()


def test_the_reference_engine_refuses_every_forgery(
        as_engine: Callable[..., Any], tenants: tuple[Victim, UUID]) -> None:
    target, other = tenants
    with as_engine("eventgate.engine.app:create_app") as (client, engine):
        result = forged_credentials_refused(client, TenantCredentials(keys=engine.token_keys),
                                            other, target)
    assert result.passed, result.explain()
    assert "expired an hour ago" in result.summary
