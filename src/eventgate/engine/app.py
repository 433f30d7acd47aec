"""The engine's HTTP application assembled: its settings, the connection pool opened and
closed with the app, the routers of every resource (routes/) and the middleware around them
(tenant scoping and the problem+json translation of every failure live in deps.py,
database.py and middleware.py)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from fastapi import FastAPI
from psycopg_pool import ConnectionPool

from eventgate import __version__
from eventgate.engine import middleware
from eventgate.engine.identity import TokenKeys, Verifier
from eventgate.engine.observability import EngineMetrics
from eventgate.engine.plugins import PluginRegistry
from eventgate.engine.routes import ROUTERS
from eventgate.engine.validation import EventValidator
from eventgate.pg.connect import session_options

# No request, /health included, may hang on a lock or a slow query: it fails fast and says so.
STATEMENT_TIMEOUT_MS = 5000
LOCK_TIMEOUT_MS = 2000


@dataclass(frozen=True)
class EngineSettings:
    dsn: str = field(repr=False)  # never in a repr: it may hold a password
    # /health says "complete" once the ledger has this version: the bundle's final_migration.
    final_migration: int
    admin_token: str | None = None
    # None: no tenant credential is accepted (every tenant route answers 401).
    token_keys: TokenKeys | None = field(default=None, repr=False)
    pool_min: int = 1
    pool_max: int = 10


def connection_pool(settings: EngineSettings) -> ConnectionPool:
    """The engine's pool, not yet open (the lifespan opens it)."""
    options = session_options(settings.dsn, statement_timeout_ms=STATEMENT_TIMEOUT_MS,
                              lock_timeout_ms=LOCK_TIMEOUT_MS)
    return ConnectionPool(settings.dsn, min_size=settings.pool_min, max_size=settings.pool_max,
                          open=False, name="eventgate-engine",
                          kwargs={"autocommit": True, "application_name": "eventgate engine",
                                  "options": options})


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    pool: ConnectionPool = app.state.pool
    pool.open(wait=False)  # a database that is down must not keep the engine from starting
    try:
        yield
    finally:
        pool.close()


def create_app(settings: EngineSettings) -> FastAPI:
    """The engine for `settings`. Handlers reach the pool, plugins, metrics and settings
    through app.state (see deps.py), where an engine factory may also alter them."""
    pool = connection_pool(settings)
    plugins = PluginRegistry()
    plugins.reload_all()
    app = FastAPI(title="Event Management Engine", version=__version__, lifespan=lifespan,
                  description="Generic, multi-tenant events with plugins per event type.")
    app.state.settings = settings
    app.state.pool = pool
    app.state.plugins = plugins
    app.state.metrics = EngineMetrics(pool, plugins)
    app.state.validator = EventValidator(plugins)
    app.state.verifier = Verifier(settings.token_keys)
    middleware.install(app)
    for router in ROUTERS:
        app.include_router(router)
    return app
