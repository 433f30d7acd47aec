"""FastAPI dependencies of the route handlers: what create_app put on `app.state` (pool,
plugins, metrics, settings, the credential verifier), the tenant of the request (from its
verified bearer token, identity.py), and the typed path parameters several resources share.
Handlers declare what they use; nothing is a closure."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from psycopg_pool import ConnectionPool

from eventgate.engine import store
from eventgate.engine.database import database
from eventgate.engine.identity import CredentialRefused, Verifier
from eventgate.engine.observability import EngineMetrics
from eventgate.engine.plugins import PluginRegistry
from eventgate.engine.problems import ProblemError
from eventgate.engine.validation import EventValidator

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


async def _verifier(request: Request) -> Verifier:
    verifier: Verifier = request.app.state.verifier
    return verifier


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


# auto_error off: a missing credential gets the engine's own 401 problem, not FastAPI's 403.
_BEARER = HTTPBearer(auto_error=False, scheme_name="TenantToken",
                     description="a tenant's signed token (eventgate token --tenant ...)")
Bearer = Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)]
CredentialVerifier = Annotated[Verifier, Depends(_verifier)]


def _refused(detail: str, error: str | None = None) -> ProblemError:
    challenge = 'Bearer realm="events"' + (f', error="{error}"' if error else "")
    return ProblemError(401, "Authentication required" if error is None else
                        "Credential refused", detail, headers={"WWW-Authenticate": challenge})


def _tenant(pool: Pool, verifier: CredentialVerifier, bearer: Bearer) -> UUID:
    """The tenant the request's verified token names, which must exist. The token is judged
    before the database is asked, so a refusal says nothing about which tenants exist."""
    if bearer is None:
        raise _refused("send Authorization: Bearer <tenant token>; a tenant named in a header "
                       "(X-Tenant-ID) is not a credential")
    try:
        identity = verifier.identify(bearer.credentials)
    except CredentialRefused as exc:
        raise _refused(str(exc), "invalid_token") from None
    with database(pool) as conn:
        if not store.tenant_exists(conn, identity.tenant):
            raise ProblemError(403, "Unknown tenant", "the credential names a tenant this "
                               "engine does not hold")
    return identity.tenant


Tenant = Annotated[UUID, Depends(_tenant)]
