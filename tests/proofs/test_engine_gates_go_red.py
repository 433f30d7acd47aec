"""Every functional gate can fail: each is run against an engine with one defect (from
fixtures/engine_faults.py) and must go red naming it."""

import contextlib
import importlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from uuid import UUID

import httpx
import psycopg
import pytest

from eventgate import http_client
from eventgate.bundle import Bundle
from eventgate.engine.process import RunningEngine
from eventgate.pg.databases import Database
from eventgate.pytest_plugin.fix_engine import AsTenant

pytestmark = [pytest.mark.destructive, pytest.mark.functional]
ROOT = Path(__file__).resolve().parents[2]
FAULTS_ENV = {"PYTHONPATH": str(ROOT / "fixtures")}


def _suite(name: str) -> ModuleType:
    """A functional test module, imported as pytest imports it (so with its assertions
    rewritten to say what differs), to call its gates on a broken engine."""
    directory = str(ROOT / "tests" / "functional")
    if directory not in sys.path:
        sys.path.insert(0, directory)
    return importlib.import_module(name)


@pytest.fixture
def broken_api(start_engine: Callable[..., Any],
               engine_database: Database) -> Callable[[str], Any]:
    @contextlib.contextmanager
    def serve(fault: str) -> Iterator[tuple[httpx.Client, AsTenant]]:
        # As the suite's superuser, past row-level security: these prove the HTTP gates on
        # their own, as on an engine whose database has no such wall.
        with start_engine(engine_database.dsn, app_factory=f"engine_faults:{fault}",
                          env=FAULTS_ENV) as engine, http_client.client(base_url=engine.url,
                                                                        timeout=15) as client:
            yield client, engine.as_tenant
    return serve


def test_the_filter_gate_catches_a_500_on_one_filter(
        broken_api: Callable[[str], Any], engine_conn: psycopg.Connection,
        busy_tenant: UUID) -> None:
    gate = _suite("test_events_read").test_each_filter_returns_exactly_the_matching_events
    rare = engine_conn.execute("SELECT status FROM events WHERE tenant_id = %s AND status <> "
                               "'published' LIMIT 1", (busy_tenant,)).fetchone()
    if rare is None:
        pytest.skip("the busy tenant has only published events; the fault needs another")
    with broken_api("list_fails_on_rare_status") as (api, as_tenant), pytest.raises(
            AssertionError, match=r'\{"error":"internal"\}\nassert 500 == 200'):
        gate(api=api, as_tenant=as_tenant, engine_conn=engine_conn, busy_tenant=busy_tenant,
             kind="status-least-common")


def test_the_openapi_gate_catches_a_response_that_breaks_the_schema(
        start_engine: Callable[..., Any], engine_database: Database,
        busy_tenant: UUID) -> None:
    gate = _suite("test_openapi_contract").test_the_api_honours_its_openapi_document
    with start_engine(engine_database.dsn,
                      app_factory="engine_faults:event_types_break_their_schema",
                      env=FAULTS_ENV) as engine, pytest.raises(AssertionError) as red:
        gate(engine=engine, busy_tenant=busy_tenant, as_tenant=engine.as_tenant)
    assert "GET /api/event-types" in str(red.value)
    assert "Response violates schema" in str(red.value)
    assert '"code" is a required property' in str(red.value)


def test_the_isolation_gate_catches_a_forgotten_tenant_filter(
        broken_api: Callable[[str], Any], engine_conn: psycopg.Connection, busy_tenant: UUID,
        intruder: UUID) -> None:
    gate = _suite("test_events_read").test_another_tenants_event_is_not_found
    with broken_api("tenant_blind_event_reads") as (api, as_tenant), pytest.raises(
            AssertionError, match=r"assert 200 in \(403, 404\)"):
        gate(api=api, as_tenant=as_tenant, engine_conn=engine_conn, busy_tenant=busy_tenant,
             intruder=intruder)


def test_the_plugin_gate_catches_a_plugin_that_failed_to_load(
        broken_api: Callable[[str], Any]) -> None:
    suite = _suite("test_plugins_health_metrics")
    gate = suite.test_the_built_in_plugins_are_loaded_without_errors
    with broken_api("without_wedding_plugin") as (api, _), pytest.raises(
            AssertionError, match="Right contains one more item: 'wedding'"):
        gate(api=api)


def test_the_metrics_gate_catches_a_count_off_by_one(
        broken_api: Callable[[str], Any], engine_conn: psycopg.Connection,
        busy_tenant: UUID) -> None:
    gate = _suite("test_plugins_health_metrics").test_metrics_agree_with_the_database
    with broken_api("metrics_off_by_one") as (api, as_tenant), pytest.raises(
            AssertionError, match="wedding"):
        gate(api=api, as_tenant=as_tenant, engine_conn=engine_conn, busy_tenant=busy_tenant)


def test_the_health_gate_catches_health_that_ignores_the_database(
        start_engine: Callable[..., Any], bundle: Bundle,
        monkeypatch: pytest.MonkeyPatch) -> None:
    suite = _suite("test_plugins_health_metrics")
    monkeypatch.setattr(suite, "HEALTH_WAIT_S", 2.0)  # it will wait in vain for a 503
    gate = suite.test_health_goes_503_when_the_database_stops_and_200_when_it_is_back

    def lying_engine(dsn: str, **options: Any) -> contextlib.AbstractContextManager[
            RunningEngine]:
        return start_engine(dsn, app_factory="engine_faults:health_ignores_database",
                            env=FAULTS_ENV, **options)

    with pytest.raises(AssertionError, match="assert 200 == 503"):
        gate(start_engine=lying_engine, bundle=bundle)


def test_the_unauthenticated_run_catches_a_route_that_asks_for_no_credential(
        start_engine: Callable[..., Any], engine_database: Database) -> None:
    gate = _suite("test_openapi_contract")
    run = gate.test_without_a_credential_every_operation_but_the_public_ones_is_refused
    with start_engine(engine_database.dsn, app_factory="engine_faults:tenant_blind_event_reads",
                      env=FAULTS_ENV) as engine, pytest.raises(AssertionError) as red:
        run(engine=engine)
    assert "GET /api/events/{event_id}" in str(red.value)
    assert "without a credential" in str(red.value)
