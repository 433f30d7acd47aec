"""The events API, write side: the lifecycle of an event, and bad input that gets a 4xx
problem and writes nothing."""

from typing import Any
from uuid import UUID

import httpx
import psycopg
import pytest

from eventgate.pytest_plugin.fix_engine import AsTenant

pytestmark = [pytest.mark.functional, pytest.mark.destructive]
PROBLEM = "application/problem+json"

WEDDING = {"event_type": "wedding", "title": "Sari & Tom", "slug": "sari-and-tom",
           "start_date": "2027-05-01T10:00:00+07:00", "timezone": "Asia/Jakarta",
           "metadata": {"bride_name": "Sari", "groom_name": "Tom", "ceremony_time": "10:00:00"}}


def _count(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT count(*) FROM events").fetchone()
    assert row is not None
    return int(row[0])


def test_an_event_is_created_read_changed_and_deleted(api: httpx.Client, as_tenant: AsTenant,
                                                      busy_tenant: UUID) -> None:
    tenant = as_tenant(busy_tenant)
    created = api.post("/api/events", json=WEDDING, headers=tenant)
    assert created.status_code == 201, created.text
    location = created.headers["location"]
    assert location == f"/api/events/{created.json()['id']}"
    assert api.get(location, headers=tenant).json()["metadata"]["bride_name"] == "Sari"

    changed = api.patch(location, json={"status": "published", "title": "Sari and Tom"},
                        headers=tenant)
    assert changed.status_code == 200, changed.text
    assert (changed.json()["status"], changed.json()["title"]) == ("published", "Sari and Tom")
    assert changed.json()["updated_at"] >= created.json()["updated_at"]

    assert api.delete(location, headers=tenant).status_code == 204
    assert api.get(location, headers=tenant).status_code == 404


def test_a_wedding_created_by_the_engine_is_seen_by_the_old_application(
        api: httpx.Client, as_tenant: AsTenant, engine_database: Any, busy_tenant: UUID) -> None:
    created = api.post("/api/events", json={**WEDDING, "slug": "seen-by-legacy"},
                       headers=as_tenant(busy_tenant))
    assert created.status_code == 201, created.text
    with engine_database.connect() as conn:
        row = conn.execute("SELECT bride_name, wedding_date::text, ceremony_time::text FROM "
                           "wedding_events WHERE id = %s", (created.json()["id"],)).fetchone()
    assert row == ("Sari", "2027-05-01", "10:00:00")


@pytest.mark.parametrize(("body", "status", "says"), [
    ({**WEDDING, "metadata": {"groom_name": "Tom"}}, 422, "bride_name"),
    ({**WEDDING, "event_type": "quinceanera"}, 422, "no active plugin serves"),
    ({**WEDDING, "metadata": {**WEDDING["metadata"], "ceremony_time": "2pm"}}, 422,
     "ceremony_time"),
    ({**WEDDING, "metadata": {**WEDDING["metadata"], "groom_name": "   "}}, 422,
     "groom_name: must not be blank"),
    ({**WEDDING, "start_date": "9999-12-31T23:00:00-23:59"}, 422, "between 1900-01-01"),
    ({**WEDDING, "metadata": {**WEDDING["metadata"], "theme": None,
                              "deep": "x"}}, 422, "deep"),
    ({**WEDDING, "end_date": "2027-04-30T10:00:00+07:00"}, 422, "end_date"),
    ({**WEDDING, "start_date": "2027-13-45"}, 422, "start_date"),
    ({**WEDDING, "start_date": "2027-05-01T10:00:00"}, 422, "timezone"),
    ({**WEDDING, "timezone": "Mars/Olympus_Mons"}, 422, "Mars/Olympus_Mons"),
    ({**WEDDING, "slug": "Robert'); DROP TABLE events;--"}, 422, "slug"),
    ({**WEDDING, "title": "nul\u0000byte"}, 422, "NUL"),
    ({**WEDDING, "unexpected": 1}, 422, "unexpected"),
    ({**WEDDING, "metadata": {**WEDDING["metadata"], "theme": "x" * 51}}, 422, "theme"),
], ids=["missing-bride", "unknown-type", "unreadable-time", "blank-groom", "year-10000",
        "undeclared-key",
        "reversed-dates", "impossible-date", "naive-date", "unknown-zone", "sql-looking-slug",
        "nul-byte", "unknown-field", "theme-too-long"])
def test_bad_events_are_refused_with_a_problem_and_nothing_is_written(
        api: httpx.Client, as_tenant: AsTenant, engine_conn: psycopg.Connection, busy_tenant: UUID,
        body: dict[str, Any], status: int, says: str) -> None:
    before = _count(engine_conn)
    response = api.post("/api/events", json=body, headers=as_tenant(busy_tenant))
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    assert says in response.json()["detail"]
    assert _count(engine_conn) == before


@pytest.mark.parametrize(("content", "headers", "status"), [
    (b'{"event_type": "wedding",', {"content-type": "application/json"}, 400),
    (b"x" * (1024 * 1024 + 1), {"content-type": "application/json"}, 413),
], ids=["malformed-json", "over-one-megabyte"])
def test_unreadable_bodies_are_refused(api: httpx.Client, as_tenant: AsTenant,
                                       engine_conn: psycopg.Connection,
                                       busy_tenant: UUID, content: bytes,
                                       headers: dict[str, str], status: int) -> None:
    before = _count(engine_conn)
    response = api.post("/api/events", content=content,
                        headers={**headers, **as_tenant(busy_tenant)})
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    assert _count(engine_conn) == before


def test_a_slug_taken_in_the_tenant_is_a_conflict(api: httpx.Client, as_tenant: AsTenant,
                                                  engine_conn: psycopg.Connection,
                                                  busy_tenant: UUID) -> None:
    taken = engine_conn.execute("SELECT slug FROM events WHERE tenant_id = %s AND "
                                "slug ~ '^[a-z0-9][a-z0-9-]*$' LIMIT 1",
                                (busy_tenant,)).fetchone()
    assert taken is not None
    response = api.post("/api/events", json={**WEDDING, "slug": taken[0]},
                        headers=as_tenant(busy_tenant))
    assert response.status_code == 409 and "events_tenant_slug_uidx" in response.json()["detail"]


def test_another_tenant_can_neither_change_nor_delete_an_event(
        api: httpx.Client, as_tenant: AsTenant, engine_conn: psycopg.Connection, busy_tenant: UUID,
        intruder: UUID) -> None:
    row = engine_conn.execute("SELECT id, title FROM events WHERE tenant_id = %s ORDER BY id "
                              "LIMIT 1", (busy_tenant,)).fetchone()
    assert row is not None
    headers = as_tenant(intruder)
    # 404 to another tenant, 403 to one that does not exist.
    assert api.patch(f"/api/events/{row[0]}", json={"title": "hijacked"},
                     headers=headers).status_code in (403, 404)
    assert api.delete(f"/api/events/{row[0]}", headers=headers).status_code in (403, 404)
    assert engine_conn.execute("SELECT title FROM events WHERE id = %s",
                               (row[0],)).fetchone() == (row[1],)


def test_metadata_nested_without_end_is_refused_not_a_crash(
        api: httpx.Client, as_tenant: AsTenant,
        engine_conn: psycopg.Connection, busy_tenant: UUID) -> None:
    deep: dict[str, Any] = {}
    for _ in range(400):
        deep = {"d": deep}
    before = _count(engine_conn)
    response = api.post("/api/events", json={**WEDDING, "slug": "deep", "metadata": deep},
                        headers=as_tenant(busy_tenant))
    assert response.status_code == 422, response.text
    assert "nested more than 32 levels" in response.json()["detail"]
    assert _count(engine_conn) == before


def test_a_status_change_leaves_the_rest_of_a_migrated_wedding_alone(
        api: httpx.Client, as_tenant: AsTenant, engine_database: Any, busy_tenant: UUID) -> None:
    with engine_database.connect() as conn:
        row = conn.execute("UPDATE events SET timezone = 'CEST' WHERE id = (SELECT min(id) "
                           "FROM events WHERE tenant_id = %s AND event_type = 'wedding') "
                           "RETURNING id", (busy_tenant,)).fetchone()
    assert row is not None
    response = api.patch(f"/api/events/{row[0]}", json={"status": "archived"},
                         headers=as_tenant(busy_tenant))
    assert response.status_code == 200, response.text
    assert (response.json()["status"], response.json()["timezone"]) == ("archived", "CEST")
