"""The events API, read side: every endpoint and filter, held to the engine's own database.
Read-only, so these run against a staging --base-url (with --dsn of its database) too."""

from typing import Any
from uuid import UUID

import httpx
import psycopg
import pytest

PROBLEM = "application/problem+json"

pytestmark = [pytest.mark.functional, pytest.mark.green]


def _all_pages(api: httpx.Client, tenant: UUID, **params: Any) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    cursor = None
    for _ in range(10_000):
        query = {**params, "limit": 7, **({"cursor": cursor} if cursor else {})}
        response = api.get("/api/events", params=query, headers={"X-Tenant-ID": str(tenant)})
        assert response.status_code == 200, response.text
        body = response.json()
        events += body["data"]
        cursor = body["next_cursor"]
        if cursor is None:
            return events
    raise AssertionError("pagination never ended")


def _ids(conn: psycopg.Connection, where: str, params: tuple[Any, ...]) -> list[int]:
    return [r[0] for r in conn.execute(f"SELECT id FROM events WHERE {where} ORDER BY id",
                                       params).fetchall()]


def test_the_event_list_pages_through_every_event_of_the_tenant_once(
        api: httpx.Client, engine_conn: psycopg.Connection, busy_tenant: UUID) -> None:
    listed = [e["id"] for e in _all_pages(api, busy_tenant)]
    assert listed == _ids(engine_conn, "tenant_id = %s", (busy_tenant,))


@pytest.mark.parametrize(("params", "where"), [
    ({"type": "wedding"}, "event_type = 'wedding'"),
    ({"status": "published"}, "status = 'published'"),
    ({"status": "cancelled"}, "status = 'cancelled'"),
    ({"start_from": "2025-01-01T00:00:00Z"}, "start_date >= '2025-01-01T00:00:00Z'"),
    ({"start_from": "2024-01-01T00:00:00+07:00", "start_to": "2025-12-31T23:59:59+07:00"},
     "start_date BETWEEN '2024-01-01T00:00:00+07:00' AND '2025-12-31T23:59:59+07:00'"),
    ({"type": "wedding", "status": "completed", "start_to": "2026-06-30T00:00:00Z"},
     "event_type = 'wedding' AND status = 'completed' AND start_date <= '2026-06-30T00:00:00Z'"),
], ids=["type", "status-published", "status-cancelled", "from", "range-with-offset",
        "combined"])
def test_each_filter_returns_exactly_the_matching_events(
        api: httpx.Client, engine_conn: psycopg.Connection, busy_tenant: UUID,
        params: dict[str, str], where: str) -> None:
    listed = [e["id"] for e in _all_pages(api, busy_tenant, **params)]
    expected = _ids(engine_conn, f"tenant_id = %s AND {where}", (busy_tenant,))
    assert expected, f"the data holds no event for {params}, so this proves nothing"
    assert listed == expected


def test_an_event_comes_with_its_participants_and_sections(
        api: httpx.Client, engine_conn: psycopg.Connection, busy_tenant: UUID) -> None:
    row = engine_conn.execute(
        "SELECT e.id, e.title, (SELECT count(*) FROM event_participants p WHERE p.event_id = "
        "e.id), (SELECT count(*) FROM event_sections s WHERE s.event_id = e.id) FROM events e "
        "WHERE e.tenant_id = %s ORDER BY 3 DESC, 1 LIMIT 1", (busy_tenant,)).fetchone()
    assert row is not None
    response = api.get(f"/api/events/{row[0]}", headers={"X-Tenant-ID": str(busy_tenant)})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["title"], len(body["participants"]), len(body["sections"])) == row[1:]


def test_another_tenants_event_is_not_found(api: httpx.Client, engine_conn: psycopg.Connection,
                                            busy_tenant: UUID, other_tenant: UUID) -> None:
    theirs = _ids(engine_conn, "tenant_id = %s", (busy_tenant,))[0]
    response = api.get(f"/api/events/{theirs}", headers={"X-Tenant-ID": str(other_tenant)})
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM
    listed = api.get("/api/events", headers={"X-Tenant-ID": str(other_tenant)}).json()["data"]
    assert theirs not in [e["id"] for e in listed]


@pytest.mark.parametrize(("headers", "params", "status", "says"), [
    ({}, {}, 400, "X-Tenant-ID"),
    ({"X-Tenant-ID": "not-a-uuid"}, {}, 400, "X-Tenant-ID"),
    ({"X-Tenant-ID": "00000000-0000-4000-8000-00000000dead"}, {}, 403, "does not exist"),
    (None, {"type": "quinceanera"}, 400, "quinceanera"),
    (None, {"status": "lost"}, 422, "status"),
    (None, {"start_from": "yesterday"}, 422, "start_from"),
    (None, {"start_from": "2026-01-02T00:00:00Z", "start_to": "2026-01-01T00:00:00Z"}, 400,
     "start_to must not be before start_from"),
    (None, {"cursor": "bm90LW91cnM"}, 400, "cursor"),
    (None, {"limit": "0"}, 422, "limit"),
    (None, {"type": "wedding' OR '1'='1"}, 400, "is not one of"),
], ids=["no-tenant", "bad-tenant", "unknown-tenant", "unknown-type", "bad-status",
        "bad-date", "reversed-dates", "foreign-cursor", "zero-limit", "sql-looking-type"])
def test_bad_list_requests_get_a_problem_saying_what_is_wrong(
        api: httpx.Client, busy_tenant: UUID, headers: dict[str, str] | None,
        params: dict[str, str], status: int, says: str) -> None:
    sent = {"X-Tenant-ID": str(busy_tenant)} if headers is None else headers
    response = api.get("/api/events", params=params, headers=sent)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["status"] == status and says in problem["detail"]


def test_event_types_agree_with_the_database_and_the_plugins(
        api: httpx.Client, engine_conn: psycopg.Connection) -> None:
    response = api.get("/api/event-types")
    assert response.status_code == 200
    listed = {(t["code"], t["plugin_loaded"]) for t in response.json()}
    in_db = {r[0] for r in engine_conn.execute("SELECT code FROM event_types").fetchall()}
    assert {code for code, _ in listed} == in_db
    assert all(loaded for _, loaded in listed), listed


def test_the_legacy_invitations_read_path_equals_the_legacy_view(
        api: httpx.Client, engine_conn: psycopg.Connection, busy_tenant: UUID) -> None:
    row = engine_conn.execute(
        "SELECT w.id FROM wedding_events w JOIN wedding_invitations i ON i.wedding_id = w.id "
        "WHERE w.tenant_id = %s GROUP BY w.id ORDER BY count(*) DESC, w.id LIMIT 1",
        (busy_tenant,)).fetchone()
    assert row is not None
    response = api.get(f"/api/weddings/{row[0]}/invitations",
                       headers={"X-Tenant-ID": str(busy_tenant)})
    assert response.status_code == 200, response.text
    with engine_conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        expected = cur.execute("SELECT id, guest_name, email, rsvp_status, party_size, "
                               "dietary_notes, table_number FROM wedding_invitations "
                               "WHERE wedding_id = %s ORDER BY id", row).fetchall()
    got = [{k: r[k] for k in expected[0]} for r in response.json()]
    assert got == expected
