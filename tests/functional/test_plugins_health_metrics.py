"""Plugins, /health and /metrics: what the guide's operators watch during the switch."""

import time
from pathlib import Path
from uuid import UUID

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from eventgate import http_client
from eventgate.bundle import Bundle
from eventgate.engine.process import RunningEngine
from eventgate.migrate.runner import Runner
from eventgate.pg.binaries import locate
from eventgate.pg.local import LocalCluster
from eventgate.pytest_plugin.fix_engine import AsTenant
from eventgate.seed.generator import SeedPlan
from eventgate.seed.load import build_legacy

pytestmark = pytest.mark.functional
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
PLUGINS_ENV = {"PYTHONPATH": str(FIXTURES / "plugins")}
HEALTH_WAIT_S = 20.0  # how long /health may take to notice the database going or coming


@pytest.mark.green
def test_the_built_in_plugins_are_loaded_without_errors(api: httpx.Client) -> None:
    report = api.get("/api/plugins").json()
    assert report["available_types"] == ["birthday", "conference", "wedding"]
    assert report["errors"] == [] and report["mismatches"] == []
    wedding = next(p for p in report["plugins"] if p["code"] == "wedding")
    assert "guest" in wedding["participant_roles"] and "rsvp" in wedding["section_types"]


@pytest.mark.green
def test_health_reports_every_check_healthy(api: httpx.Client) -> None:
    response = api.get("/health")
    assert response.status_code == 200, response.text
    assert response.json()["checks"] == {"database": "healthy", "plugins": "healthy",
                                         "migration": "complete"}


@pytest.mark.green
def test_metrics_agree_with_the_database(api: httpx.Client, as_tenant: AsTenant,
                                         engine_conn: psycopg.Connection,
                                         busy_tenant: UUID) -> None:
    api.get("/api/events", headers=as_tenant(busy_tenant))
    families = {f.name: f for f in text_string_to_metric_families(api.get("/metrics").text)}
    events = {s.labels["event_type"]: int(s.value) for s in
              families["eventgate_engine_events"].samples}
    in_db = dict(engine_conn.execute("SELECT event_type, count(*) FROM events "
                                     "GROUP BY 1").fetchall())
    assert events == in_db
    assert [s.value for s in families["eventgate_engine_database_up"].samples] == [1]
    plugins = {s.labels["state"]: s.value for s in families["eventgate_engine_plugins"].samples}
    assert plugins["loaded"] == plugins["active"] == 3
    requests = [s for s in families["eventgate_engine_request_duration_seconds"].samples
                if s.name.endswith("_count") and s.labels["route"] == "/api/events"]
    assert requests and sum(s.value for s in requests) >= 1
    guide = api.get("/api/metrics").json()
    assert guide["events"] == {"total": sum(in_db.values()), "by_type": in_db}
    assert guide["plugins"] == {"loaded": 3, "active": 3}


@pytest.mark.destructive
def test_a_broken_plugin_is_reported_and_never_takes_the_engine_down(
        start_engine, engine_database, busy_tenant: UUID) -> None:  # type: ignore[no-untyped-def]
    env = {**PLUGINS_ENV, "EVENTGATE_EXTRA_PLUGINS": "broken=broken_plugin:plugin"}
    with start_engine(engine_database.dsn, env=env) as engine:
        report = http_client.get(f"{engine.url}/api/plugins").json()
        health = http_client.get(f"{engine.url}/health")
        listed = http_client.get(f"{engine.url}/api/events",
                                 headers=engine.as_tenant(busy_tenant))
    assert [e["plugin"] for e in report["errors"]] == ["broken"]
    assert "not installed (on purpose)" in report["errors"][0]["error"]
    assert health.status_code == 200
    assert any("plugin broken" in e for e in health.json()["errors"])
    assert listed.status_code == 200


@pytest.mark.destructive
def test_reload_needs_the_admin_token_and_picks_up_a_repaired_plugin(
        start_engine, engine_database, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    block = tmp_path / "block"
    block.write_text("blocked")
    env = {**PLUGINS_ENV, "EVENTGATE_EXTRA_PLUGINS": "party=flaky_plugin:party",
           "EVENTGATE_FLAKY_PLUGIN_BLOCK": str(block)}
    with start_engine(engine_database.dsn, env=env, admin_token="s3cret-token") as engine:
        before = http_client.get(f"{engine.url}/api/plugins").json()
        block.unlink()
        refused = http_client.post(f"{engine.url}/api/plugins/reload")
        wrong = http_client.post(f"{engine.url}/api/plugins/reload",
                                 headers={"Authorization": "Bearer nope"})
        reloaded = http_client.post(f"{engine.url}/api/plugins/reload",
                                    headers={"Authorization": "Bearer s3cret-token"})
    assert "party" not in before["available_types"] and before["errors"][0]["plugin"] == "party"
    assert refused.status_code == wrong.status_code == 401
    assert "s3cret-token" not in refused.text + wrong.text
    assert reloaded.status_code == 200
    assert "party" in reloaded.json()["available_types"] and reloaded.json()["errors"] == []
    assert reloaded.json()["mismatches"] == ["plugin 'party' has no row in event_types"]


def _health(engine: RunningEngine) -> httpx.Response:
    return http_client.get(f"{engine.url}/health", timeout=10)


def _wait_for(engine: RunningEngine, status: int) -> httpx.Response:
    deadline = time.monotonic() + HEALTH_WAIT_S
    response = _health(engine)
    while response.status_code != status and time.monotonic() < deadline:
        time.sleep(0.2)
        response = _health(engine)
    return response


@pytest.mark.destructive
def test_health_goes_503_when_the_database_stops_and_200_when_it_is_back(
        start_engine, bundle: Bundle) -> None:  # type: ignore[no-untyped-def]
    found, _ = locate(None)
    if found is None:
        pytest.skip("needs local PostgreSQL server binaries to stop and start a server")
    cluster = LocalCluster(found, in_memory=True)  # ten weddings
    try:
        server = cluster.start()
        with server.connect() as conn:
            conn.execute("CREATE DATABASE outage")
        with psycopg.connect(server.dsn_for("outage"), autocommit=True) as conn:
            build_legacy(conn, bundle, SeedPlan(weddings=10, guests_per_wedding=2))
            Runner(conn, bundle).execute()
        with start_engine(server.dsn_for("outage")) as engine:
            up = _wait_for(engine, 200)
            cluster.halt()
            down = _wait_for(engine, 503)
            cluster.resume()
            back = _wait_for(engine, 200)
    finally:
        cluster.stop()
    assert up.status_code == 200
    assert down.status_code == 503
    assert down.json()["failing"] == ["database", "migration"]
    assert down.json()["checks"]["database"] == "error"
    assert back.status_code == 200, back.text


@pytest.mark.destructive
def test_health_says_pending_before_the_migration(start_engine,  # type: ignore[no-untyped-def]
                                                  legacy_db) -> None:
    with start_engine(legacy_db.dsn) as engine:
        response = _health(engine)
    assert response.status_code == 503
    assert response.json()["checks"]["migration"] == "pending"
    assert "migration" in response.json()["failing"]
