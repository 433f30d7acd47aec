"""/api/plugins: the loaded plugins, the errors of those that failed, disagreements with the
event_types table, and the admin-only reload."""

from __future__ import annotations

import contextlib
import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Header
from psycopg_pool import ConnectionPool

from eventgate.engine import models, store
from eventgate.engine.database import database
from eventgate.engine.deps import AdminToken, Plugins, Pool
from eventgate.engine.plugins import PluginRegistry
from eventgate.engine.problems import ProblemError, documented

router = APIRouter(tags=["plugins"])


def plugins_report(pool: ConnectionPool, plugins: PluginRegistry) -> dict[str, Any]:
    """The registry's state; the mismatches with event_types are left out, not an error,
    when the database cannot be read."""
    mismatches: list[str] = []
    with contextlib.suppress(ProblemError), database(pool) as conn:
        in_db = {r["code"]: r for r in store.event_types(conn)}
        loaded = {p.code for p in plugins.get_all()}
        mismatches += [f"event type {c!r} is in event_types but no plugin serves it"
                       for c in sorted(in_db.keys() - loaded) if in_db[c]["is_active"]]
        mismatches += [f"plugin {c!r} has no row in event_types"
                       for c in sorted(loaded - in_db.keys())]
    return {"plugins": [p.describe() for p in plugins.get_all()],
            "available_types": plugins.get_available_types(),
            "errors": [e.__dict__ for e in plugins.get_errors()],
            "mismatches": mismatches}


@router.get("/api/plugins", response_model=models.PluginsReport)
def list_plugins(pool: Pool, plugins: Plugins) -> dict[str, Any]:
    """Loaded plugins, the errors of those that failed, and disagreements with
    event_types."""
    return plugins_report(pool, plugins)


@router.post("/api/plugins/reload", response_model=models.PluginsReport,
             responses=documented(401, 403))
def reload_plugins(pool: Pool, plugins: Plugins, admin_token: AdminToken,
                   authorization: Annotated[str | None, Header()] = None) -> dict[str, Any]:
    """Discover the plugins again (admin token required)."""
    if not admin_token:
        raise ProblemError(403, "Reload disabled", "this engine was started without an "
                           "admin token (eventgate serve --admin-token)")
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(),
                                                             admin_token.encode()):
        raise ProblemError(401, "Unauthorized", "send Authorization: Bearer <admin token>")
    plugins.reload_all()
    return plugins_report(pool, plugins)
