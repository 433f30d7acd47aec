"""FastAPI dependencies of the route handlers: what create_app put on `app.state` (pool,
plugins, metrics, settings), the tenant of the request, and the typed path and header
parameters several resources share. Handlers declare what they use; nothing is a closure."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import Depends, Header, Path, Request
from psycopg_pool import ConnectionPool

from eventgate.engine import store
from eventgate.engine.database import database
from eventgate.engine.observability import EngineMetrics
from eventgate.engine.plugins import PluginRegistry
from eventgate.engine.problems import ProblemError
from eventgate.engine.validation import EventValidator

TenantHeader = Annotated[UUID, Header(alias="X-Tenant-ID",
                                      description="the tenant whose events are addressed")]
EventId = Annotated[int, Path(ge=1, le=2**63 - 1)]


# The accessors are async so FastAPI calls them on the event loop, not in a worker thread.
async def _pool(request: Request) -> ConnectionPool:
    pool: ConnectionPool = request.app.state.pool
    return pool


async def _plugins(request: Request) -> PluginRegistry:
    plugins: PluginRegistry = request.app.state.plugins
    return plugins


async def _metrics(request: Request) -> EngineMetrics:
    metrics: EngineMetrics = request.app.state.metrics
    return metrics


async def _validator(request: Request) -> EventValidator:
    validator: EventValidator = request.app.state.validator
    return validator


async def _admin_token(request: Request) -> str | None:
    token: str | None = request.app.state.settings.admin_token
    return token


async def _final_migration(request: Request) -> int:
    version: int = request.app.state.settings.final_migration
    return version


Pool = Annotated[ConnectionPool, Depends(_pool)]
Plugins = Annotated[PluginRegistry, Depends(_plugins)]
Metrics = Annotated[EngineMetrics, Depends(_metrics)]
Validator = Annotated[EventValidator, Depends(_validator)]
AdminToken = Annotated[str | None, Depends(_admin_token)]
FinalMigration = Annotated[int, Depends(_final_migration)]


def _tenant(pool: Pool, x_tenant_id: TenantHeader) -> UUID:
    """The X-Tenant-ID of the request, which must name an existing tenant."""
    with database(pool) as conn:
        if not store.tenant_exists(conn, x_tenant_id):
            raise ProblemError(403, "Unknown tenant", f"tenant {x_tenant_id} does not exist")
    return x_tenant_id


Tenant = Annotated[UUID, Depends(_tenant)]
