"""Tenants proven apart over HTTP, on any engine (the reference one or --base-url): the
busiest tenant's events, participants, sections and legacy invitations never reach another
tenant's credential, whether it reads, lists, filters, pages or writes, and forged
credentials claiming it are refused. Reads and forgeries are green; the write attempts are
destructive (were isolation broken, they would change the target)."""

from uuid import UUID

import httpx
import psycopg
import pytest

from eventgate.checks.tenant_isolation import (
    Victim,
    forged_credentials_refused,
    reads_stay_in_tenant,
    victim,
    writes_stay_in_tenant,
)
from eventgate.credentials import NoCredential, TenantCredentials
from eventgate.engine import store
from eventgate.pytest_plugin.fix_engine import AsTenant
from eventgate.pytest_plugin.proof import hold, not_proven

pytestmark = [pytest.mark.functional]


@pytest.fixture
def target(engine_conn: psycopg.Connection, busy_tenant: UUID) -> Victim:
    found = victim(engine_conn, busy_tenant)
    assert found is not None  # busy_tenant owns events
    return found


@pytest.fixture
def other_tenant(engine_conn: psycopg.Connection, busy_tenant: UUID) -> UUID:
    other = store.another_tenant(engine_conn, busy_tenant)
    if other is None:
        not_proven("the engine's database holds a single tenant, so no other tenant's "
                   "credential can ask for its data")
    return other


@pytest.mark.green
def test_another_tenants_credential_reads_lists_and_pages_none_of_its_data(
        api: httpx.Client, as_tenant: AsTenant, target: Victim, other_tenant: UUID,
        record_check) -> None:  # type: ignore[no-untyped-def]
    hold(record_check(reads_stay_in_tenant(api, other_tenant, as_tenant(other_tenant),
                                           as_tenant(target.tenant), target)))


@pytest.mark.destructive
def test_another_tenants_credential_changes_and_deletes_none_of_its_events(
        api: httpx.Client, as_tenant: AsTenant, engine_conn: psycopg.Connection,
        target: Victim, other_tenant: UUID, record_check) -> None:  # type: ignore[no-untyped-def]
    hold(record_check(writes_stay_in_tenant(api, engine_conn, other_tenant,
                                            as_tenant(other_tenant), target)))


@pytest.mark.green
def test_forged_credentials_claiming_a_tenant_are_refused(
        api: httpx.Client, tenant_credentials: TenantCredentials, target: Victim,
        other_tenant: UUID, record_check) -> None:  # type: ignore[no-untyped-def]
    try:
        result = forged_credentials_refused(api, tenant_credentials, other_tenant, target)
    except NoCredential as exc:
        not_proven(str(exc))
    hold(record_check(result))
