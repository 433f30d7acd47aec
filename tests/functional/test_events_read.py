"""The events API, read side: every endpoint and filter, held to the engine's own database.
Read-only, so these run against a staging --base-url (with --dsn of its database) too."""

from typing import Any
from uuid import UUID

import httpx
import psycopg
import pytest

from eventgate.pytest_plugin.fix_engine import AsTenant
from eventgate.pytest_plugin.proof import not_proven

PROBLEM = "application/problem+json"

pytestmark = [pytest.mark.functional, pytest.mark.green]


# Pages of 7 (a size no default lines up with) while that takes at most PAGES requests; a bigger
# list gets bigger pages, up to the API's 200, so that paging through a tenant of 13,000 events
# proves the same with 65 requests instead of 1,900.
PAGES, MAX_LIMIT = 40, 200


def _page_size(expected: int) -> int:
    return min(MAX_LIMIT, max(7, -(-expected // PAGES)))


def _all_pages(api: httpx.Client, as_tenant: AsTenant, tenant: UUID, expected: int,
               **params: Any) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    cursor = None
    limit = _page_size(expected)
    for _ in range(10_000):
        query = {**params, "limit": limit, **({"cursor": cursor} if cursor else {})}
        response = api.get("/api/events", params=query, headers=as_tenant(tenant))
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
        api: httpx.Client, as_tenant: AsTenant,
        engine_conn: psycopg.Connection, busy_tenant: UUID) -> None:
    expected = _ids(engine_conn, "tenant_id = %s", (busy_tenant,))
    listed = [e["id"] for e in _all_pages(api, as_tenant, busy_tenant, len(expected))]
    assert listed == expected


# Each filter's values come from the busy tenant's own events, never from one seed: a type and
# a status that exist (the most and the least common), dates from the middle of its calendar,
# and one real event's type, status and start for the combined filter.
FILTERS = {
    "type": ("SELECT event_type FROM events WHERE tenant_id = %(t)s GROUP BY 1 "
             "ORDER BY count(*) DESC, 1 LIMIT 1", "a typed event"),
    "status-most-common": ("SELECT status FROM events WHERE tenant_id = %(t)s GROUP BY 1 "
                           "ORDER BY count(*) DESC, 1 LIMIT 1", "an event with a status"),
    "status-least-common": ("SELECT status FROM events WHERE tenant_id = %(t)s GROUP BY 1 "
                            "ORDER BY count(*), 1 LIMIT 1", "an event with a status"),
    "from": ("SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY start_date) FROM events "
             "WHERE tenant_id = %(t)s", "an event with a start date"),
    "range-with-offset": ("SELECT ARRAY[percentile_disc(0.25) WITHIN GROUP (ORDER BY start_date),"
                          " percentile_disc(0.75) WITHIN GROUP (ORDER BY start_date)] "
                          "FROM events WHERE tenant_id = %(t)s", "an event with a start date"),
    "combined": ("SELECT ARRAY[event_type, status, to_json(start_date) #>> '{}'] FROM events "
                 "WHERE tenant_id = %(t)s AND start_date IS NOT NULL "
                 "ORDER BY id OFFSET (SELECT count(start_date) / 2 FROM events "
                 "WHERE tenant_id = %(t)s) LIMIT 1", "an event with a start date"),
}


def _iso(value: Any, zone: str = "+07:00") -> str:
    """A timestamptz as the API takes it, in another offset than UTC on purpose."""
    from datetime import datetime, timedelta, timezone

    assert isinstance(value, datetime)
    sign = 1 if zone[0] == "+" else -1
    hours, minutes = map(int, zone[1:].split(":"))
    return value.astimezone(timezone(sign * timedelta(hours=hours, minutes=minutes))).isoformat()


def _filter(kind: str, drawn: Any) -> tuple[dict[str, str], str, tuple[Any, ...]]:
    """The API's query parameters and the SQL condition they must mean."""
    if kind == "type":
        return {"type": drawn}, "event_type = %s", (drawn,)
    if kind.startswith("status"):
        return {"status": drawn}, "status = %s", (drawn,)
    if kind == "from":
        return {"start_from": _iso(drawn)}, "start_date >= %s", (drawn,)
    if kind == "range-with-offset":
        low, high = drawn
        return ({"start_from": _iso(low), "start_to": _iso(high)},
                "start_date BETWEEN %s AND %s", (low, high))
    event_type, status, start = drawn
    return ({"type": event_type, "status": status, "start_to": start},
            "event_type = %s AND status = %s AND start_date <= %s::timestamptz",
            (event_type, status, start))


@pytest.mark.parametrize("kind", list(FILTERS))
def test_each_filter_returns_exactly_the_matching_events(
        api: httpx.Client, as_tenant: AsTenant, engine_conn: psycopg.Connection, busy_tenant: UUID,
        kind: str) -> None:
    query, needs = FILTERS[kind]
    row = engine_conn.execute(query, {"t": busy_tenant}).fetchone()
    if row is None or row[0] is None or (isinstance(row[0], list) and None in row[0]):
        not_proven(f"the busy tenant {busy_tenant} holds no value for the {kind} filter; it "
                   f"needs {needs}")
    params, where, args = _filter(kind, row[0])
    expected = _ids(engine_conn, f"tenant_id = %s AND {where}", (busy_tenant, *args))
    if not expected:
        not_proven(f"no event of tenant {busy_tenant} matches {params}")
    listed = [e["id"] for e in _all_pages(api, as_tenant, busy_tenant, len(expected),
                                          **params)]
    assert listed == expected, f"filter {params}"


def test_an_event_comes_with_its_participants_and_sections(
        api: httpx.Client, as_tenant: AsTenant,
        engine_conn: psycopg.Connection, busy_tenant: UUID) -> None:
    row = engine_conn.execute(
        "SELECT e.id, e.title, (SELECT count(*) FROM event_participants p WHERE p.event_id = "
        "e.id), (SELECT count(*) FROM event_sections s WHERE s.event_id = e.id) FROM events e "
        "WHERE e.tenant_id = %s ORDER BY 3 DESC, 1 LIMIT 1", (busy_tenant,)).fetchone()
    assert row is not None
    response = api.get(f"/api/events/{row[0]}", headers=as_tenant(busy_tenant))
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["title"], len(body["participants"]), len(body["sections"])) == row[1:]


def test_another_tenants_event_is_not_found(api: httpx.Client, as_tenant: AsTenant,
                                            engine_conn: psycopg.Connection,
                                            busy_tenant: UUID, intruder: UUID) -> None:
    theirs, title = engine_conn.execute("SELECT id, title FROM events WHERE tenant_id = %s "
                                        "ORDER BY id LIMIT 1", (busy_tenant,)).fetchone() or (
        None, None)
    assert theirs is not None
    response = api.get(f"/api/events/{theirs}", headers=as_tenant(intruder))
    # 404 to another tenant, 403 to one that does not exist: never the event.
    assert response.status_code in (403, 404), response.text
    assert response.headers["content-type"] == PROBLEM
    assert str(title) not in response.text
    listed = api.get("/api/events", headers=as_tenant(intruder))
    if listed.status_code == 200:
        assert theirs not in [e["id"] for e in listed.json()["data"]]
    else:
        assert listed.status_code in (403, 404), listed.text


@pytest.mark.parametrize(("headers", "params", "status", "says"), [
    ({}, {}, 401, "Authorization: Bearer"),
    ({"X-Tenant-ID": "00000000-0000-4000-8000-00000000dead"}, {}, 401, "not a credential"),
    ({"Authorization": "Bearer not-a-token"}, {}, 401, "not a JWT"),
    ({"Authorization": "Basic ZXZlbnQ6Z2F0ZQ=="}, {}, 401, "Authorization: Bearer"),
    (None, {"type": "quinceanera"}, 400, "quinceanera"),
    (None, {"status": "lost"}, 422, "status"),
    (None, {"start_from": "yesterday"}, 422, "start_from"),
    (None, {"start_from": "2026-01-02T00:00:00Z", "start_to": "2026-01-01T00:00:00Z"}, 400,
     "start_to must not be before start_from"),
    (None, {"cursor": "bm90LW91cnM"}, 400, "cursor"),
    (None, {"limit": "0"}, 422, "limit"),
    (None, {"type": "wedding' OR '1'='1"}, 400, "is not one of"),
], ids=["no-credential", "tenant-header-alone", "not-a-token", "other-scheme", "unknown-type",
        "bad-status", "bad-date", "reversed-dates", "foreign-cursor", "zero-limit",
        "sql-looking-type"])
def test_bad_list_requests_get_a_problem_saying_what_is_wrong(
        api: httpx.Client, as_tenant: AsTenant, busy_tenant: UUID,
        headers: dict[str, str] | None, params: dict[str, str], status: int, says: str) -> None:
    sent = as_tenant(busy_tenant) if headers is None else headers
    response = api.get("/api/events", params=params, headers=sent)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["status"] == status and says in problem["detail"]
    if status == 401:  # RFC 9110: a 401 names the scheme it wants
        assert response.headers["www-authenticate"].startswith("Bearer"), response.headers


def test_event_types_agree_with_the_database_and_the_plugins(
        api: httpx.Client, engine_conn: psycopg.Connection) -> None:
    response = api.get("/api/event-types")
    assert response.status_code == 200
    listed = {(t["code"], t["plugin_loaded"]) for t in response.json()}
    in_db = {r[0] for r in engine_conn.execute("SELECT code FROM event_types").fetchall()}
    assert {code for code, _ in listed} == in_db
    assert all(loaded for _, loaded in listed), listed


def test_the_legacy_invitations_read_path_equals_the_legacy_view(
        api: httpx.Client, as_tenant: AsTenant,
        engine_conn: psycopg.Connection, busy_tenant: UUID) -> None:
    row = engine_conn.execute(
        "SELECT w.id FROM wedding_events w JOIN wedding_invitations i ON i.wedding_id = w.id "
        "WHERE w.tenant_id = %s GROUP BY w.id ORDER BY count(*) DESC, w.id LIMIT 1",
        (busy_tenant,)).fetchone()
    assert row is not None
    response = api.get(f"/api/weddings/{row[0]}/invitations",
                       headers=as_tenant(busy_tenant))
    assert response.status_code == 200, response.text
    with engine_conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        expected = cur.execute("SELECT id, guest_name, email, rsvp_status, party_size, "
                               "dietary_notes, table_number FROM wedding_invitations "
                               "WHERE wedding_id = %s ORDER BY id", row).fetchall()
    got = [{k: r[k] for k in expected[0]} for r in response.json()]
    assert got == expected
