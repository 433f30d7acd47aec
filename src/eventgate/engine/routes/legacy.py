"""/api/weddings/...: the old wedding front end's read path, kept working on the new schema
through the compatibility views."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from eventgate.engine import models, store
from eventgate.engine.database import tenant_database
from eventgate.engine.deps import EventId, Pool, Tenant
from eventgate.engine.problems import ProblemError, documented

router = APIRouter(tags=["legacy"])


@router.get("/api/weddings/{wedding_id}/invitations",
            response_model=list[models.LegacyInvitation],
            responses=documented(400, 401, 403, 404, 422, 503))
def wedding_invitations(tenant: Tenant, pool: Pool, wedding_id: EventId) -> list[dict[str, Any]]:
    """The old wedding front end's read path, served from the compatibility views."""
    with tenant_database(pool, tenant) as conn:
        rows = store.legacy_invitations(conn, tenant, wedding_id)
    if rows is None:
        raise ProblemError(404, "Not found", f"wedding {wedding_id} does not exist")
    return rows
