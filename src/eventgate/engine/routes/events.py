"""/api/events: the tenant's events, listed a page at a time, read with their participants
and sections, created, changed and deleted; every write is judged by its type's plugin."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import AwareDatetime

from eventgate.engine import models, store
from eventgate.engine.database import tenant_database
from eventgate.engine.deps import EventId, Pool, Tenant, Validator
from eventgate.engine.problems import ProblemError, documented

router = APIRouter(tags=["events"])
# A PATCH may leave these out, never set them to null.
NOT_NULL = ("title", "slug", "timezone", "status", "metadata")


def _not_found(event_id: int) -> ProblemError:
    return ProblemError(404, "Not found", f"event {event_id} does not exist")


@router.get("/api/events", response_model=models.EventPage,
            responses=documented(400, 401, 403, 422, 503))
def list_events(tenant: Tenant, pool: Pool,
                event_type: Annotated[models.Text | None,
                                      Query(alias="type", max_length=40)] = None,
                status: models.Status | None = None,
                start_from: AwareDatetime | None = None,
                start_to: AwareDatetime | None = None,
                limit: Annotated[int, Query(ge=1, le=200)] = 50,
                cursor: Annotated[str | None, Query(max_length=64)] = None,
                ) -> dict[str, Any]:
    """Events of the tenant, oldest id first, a page at a time (follow next_cursor)."""
    with tenant_database(pool, tenant) as conn:
        known = {t["code"] for t in store.event_types(conn)}
        if event_type is not None and event_type not in known:
            raise ProblemError(400, "Unknown event type",
                               f"type={event_type!r} is not one of {', '.join(sorted(known))}")
        if start_from and start_to and start_to < start_from:
            raise ProblemError(400, "Reversed date range",
                               "start_to must not be before start_from")
        after_id = None
        if cursor is not None:
            after_id = store.decode_cursor(cursor)
            if after_id is None:
                raise ProblemError(400, "Invalid cursor", "cursor must be a next_cursor "
                                   "value returned by this endpoint")
        # One row more than the page: whether it comes back says whether a next page exists.
        rows = store.list_events(conn, tenant, event_type=event_type, status=status,
                                 start_from=start_from, start_to=start_to,
                                 after_id=after_id, limit=limit + 1)
    page, more = rows[:limit], len(rows) > limit
    return {"data": page, "next_cursor": store.encode_cursor(page[-1]["id"]) if more
            else None}


@router.get("/api/events/{event_id}", response_model=models.EventDetail,
            responses=documented(400, 401, 403, 404, 422, 503))
def get_event(tenant: Tenant, pool: Pool, event_id: EventId) -> dict[str, Any]:
    """One event with its participants and sections."""
    with tenant_database(pool, tenant) as conn:
        event = store.get_event(conn, tenant, event_id)
        if event is None:
            raise _not_found(event_id)
        participants, sections = store.event_children(conn, event_id)
    return {**event, "participants": participants, "sections": sections}


@router.post("/api/events", response_model=models.Event, status_code=201,
             responses=documented(400, 401, 403, 409, 413, 422, 503))
def create_event(tenant: Tenant, pool: Pool, validator: Validator, body: models.EventCreate,
                 response: Response) -> dict[str, Any]:
    """Create an event; its metadata is validated by its event type's plugin."""
    values = body.model_dump()
    with tenant_database(pool, tenant) as conn:
        validator.check(conn, values, body.event_type, set(values))
        event = store.insert_event(conn, tenant, values)
    response.headers["Location"] = f"/api/events/{event['id']}"
    return event


@router.patch("/api/events/{event_id}", response_model=models.Event,
              responses=documented(400, 401, 403, 404, 409, 413, 422, 503))
def update_event(tenant: Tenant, pool: Pool, validator: Validator, event_id: EventId,
                 body: models.EventPatch) -> dict[str, Any]:
    """Change some fields of an event; the result is validated as a whole."""
    changes = body.model_dump(exclude_unset=True)
    with tenant_database(pool, tenant) as conn:
        current = store.get_event(conn, tenant, event_id)
        if current is None:
            raise _not_found(event_id)
        for required in NOT_NULL:
            if required in changes and changes[required] is None:
                raise ProblemError(422, "Invalid event", f"{required}: may not be null")
        validator.check(conn, {**current, **changes}, current["event_type"], set(changes))
        if not changes:
            return current
        updated = store.update_event(conn, tenant, event_id, changes)
    if updated is None:
        raise _not_found(event_id)
    return updated


@router.delete("/api/events/{event_id}", status_code=204,
               responses=documented(400, 401, 403, 404, 422, 503))
def delete_event(tenant: Tenant, pool: Pool, event_id: EventId) -> Response:
    """Delete an event with its participants and sections."""
    with tenant_database(pool, tenant) as conn:
        if not store.delete_event(conn, tenant, event_id):
            raise _not_found(event_id)
    return Response(status_code=204)
