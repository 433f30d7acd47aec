"""The tenant wall in the database: row-level security on every table the bundle's
[row_security] names, enabled and forced, and the engine's role held to it, proven by what
that role sees of each table as the busiest tenant, as a tenant that does not exist and as
none. Read-only, so it runs against staging too."""

import psycopg
import pytest

from eventgate.bundle import Bundle
from eventgate.bundle_security import GuardedTable, RowSecurity
from eventgate.checks.row_security import engine_role_held, table_guarded, tenant_view
from eventgate.pytest_plugin.proof import hold

pytestmark = [pytest.mark.integrity, pytest.mark.green]


def _guarded(bundle: Bundle, name: str) -> tuple[RowSecurity, GuardedTable]:
    security = _security(bundle)
    return security, next(t for t in security.tables if t.name == name)


def _security(bundle: Bundle) -> RowSecurity:
    security = bundle.expectations.row_security
    if security is None:
        pytest.skip("the bundle declares no [row_security] in expectations.toml")
    return security


def test_the_engines_role_cannot_bypass_row_level_security(
        target_conn: psycopg.Connection, bundle: Bundle, record_check) -> None:  # type: ignore[no-untyped-def]
    hold(record_check(engine_role_held(target_conn, _security(bundle))))


def test_each_tenant_table_has_row_level_security_enabled_and_forced(
        target_conn: psycopg.Connection, bundle: Bundle, record_check,  # type: ignore[no-untyped-def]
        guarded_table: str) -> None:
    hold(record_check(table_guarded(target_conn, *_guarded(bundle, guarded_table))))


def test_each_tenant_table_shows_the_engine_its_tenants_rows_only(
        target_conn: psycopg.Connection, bundle: Bundle, record_check,  # type: ignore[no-untyped-def]
        guarded_table: str) -> None:
    hold(record_check(tenant_view(target_conn, *_guarded(bundle, guarded_table))))
