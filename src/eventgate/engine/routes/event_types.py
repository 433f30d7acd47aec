"""/api/event-types: the event types the database knows, and whether a plugin serves each."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from eventgate.engine import models, store
from eventgate.engine.database import database
from eventgate.engine.deps import Plugins, Pool
from eventgate.engine.problems import documented

router = APIRouter(tags=["events"])


@router.get("/api/event-types", response_model=list[models.EventTypeInfo],
            responses=documented(503))
def event_types(pool: Pool, plugins: Plugins) -> list[dict[str, Any]]:
    """Event types from the database, and whether a plugin serves each."""
    with database(pool) as conn:
        rows = store.event_types(conn)
    loaded = set(plugins.get_available_types())
    return [{**r, "plugin_loaded": r["code"] in loaded} for r in rows]
