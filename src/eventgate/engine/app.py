"""The engine's HTTP application: routes, tenant scoping, validation by plugins, and the
translation of every foreseeable failure into a problem+json 4xx (or 503 for the database)."""

from __future__ import annotations

import contextlib
import hmac
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any
from uuid import UUID

import psycopg
from fastapi import Depends, FastAPI, Header, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from psycopg_pool import ConnectionPool, PoolTimeout
from pydantic import AwareDatetime
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from eventgate import __version__
from eventgate.engine import models, store
from eventgate.engine.observability import EngineMetrics, guide_metrics, health
from eventgate.engine.plugins import PluginRegistry
from eventgate.engine.problems import (
    PROBLEM_JSON,
    Problem,
    ProblemError,
    documented,
    on_http,
    on_problem,
    on_validation,
)

MAX_BODY_BYTES = 1024 * 1024
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
TenantHeader = Annotated[UUID, Header(alias="X-Tenant-ID",
                                      description="the tenant whose events are addressed")]
EventId = Annotated[int, Path(ge=1, le=2**63 - 1)]


@dataclass(frozen=True)
class EngineSettings:
    dsn: str
    admin_token: str | None = None
    pool_min: int = 1
    pool_max: int = 10
    final_migration: int = 10  # /health says "complete" once the ledger has this version


class BodyLimit:
    """Refuse request bodies over the limit with 413 before any handler sees them."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "DELETE", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared and declared.isdigit() and int(declared) > self.limit:
            await self._too_large(scope, receive, send)
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await self._too_large(scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        problem = Problem(title="Request body too large", status=413,
                          detail=f"request bodies are limited to {self.limit} bytes")
        response = JSONResponse(problem.model_dump(), status_code=413, media_type=PROBLEM_JSON)
        await response(scope, receive, send)


@contextlib.contextmanager
def database(pool: ConnectionPool) -> Iterator[psycopg.Connection]:
    """A pooled connection; database failures become problems, never a bare 500."""
    try:
        with pool.connection(timeout=5) as conn:
            yield conn
    except ProblemError:
        raise
    except (PoolTimeout, psycopg.OperationalError) as exc:
        raise ProblemError(503, "Database unavailable", "the database did not answer; try "
                           "again shortly") from exc
    except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn) as exc:
        raise ProblemError(503, "Database not migrated", f"{_db_detail(exc)}; run eventgate "
                           "migrate --execute against the engine's database") from exc
    except psycopg.errors.QueryCanceled as exc:
        raise ProblemError(503, "Database too slow", "the query was cancelled by its "
                           "statement_timeout; try again shortly") from exc
    except psycopg.errors.UniqueViolation as exc:
        raise ProblemError(409, "Conflict", _db_detail(exc)) from exc
    except (psycopg.errors.IntegrityError, psycopg.errors.DataError) as exc:
        raise ProblemError(422, "Rejected by the database", _db_detail(exc)) from exc


def _db_detail(exc: psycopg.Error) -> str:
    diag = exc.diag
    return (diag.message_primary or str(exc)).strip() + (
        f" ({diag.message_detail.strip()})" if diag.message_detail else "")


def _tenant(request: Request, x_tenant_id: TenantHeader) -> UUID:
    """The X-Tenant-ID of the request, which must name an existing tenant."""
    with database(request.app.state.pool) as conn:
        if not store.tenant_exists(conn, x_tenant_id):
            raise ProblemError(403, "Unknown tenant", f"tenant {x_tenant_id} does not exist")
    return x_tenant_id


# Module level, so FastAPI can resolve it from the handlers' annotations.
Tenant = Annotated[UUID, Depends(_tenant)]


def create_app(settings: EngineSettings) -> FastAPI:
    pool = ConnectionPool(settings.dsn, min_size=settings.pool_min, max_size=settings.pool_max,
                          open=False, kwargs={
                              "autocommit": True, "application_name": "eventgate engine",
                              # No request, /health included, may hang on a lock or a slow
                              # query: it fails fast and says so.
                              "options": "-c statement_timeout=5000 -c lock_timeout=2000"},
                          name="eventgate-engine")
    plugins = PluginRegistry()
    plugins.reload_all()
    metrics = EngineMetrics(pool, plugins, settings.final_migration)
    zones: set[str] = set()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool.open(wait=False)  # a database that is down must not keep the engine from starting
        try:
            yield
        finally:
            pool.close()

    app = FastAPI(title="Event Management Engine", version=__version__, lifespan=lifespan,
                  description="Generic, multi-tenant events with plugins per event type.")
    app.state.pool = pool
    app.state.plugins = plugins
    app.add_exception_handler(ProblemError, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_middleware(BodyLimit)

    @app.middleware("http")
    async def time_requests(request: Request,
                            call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        status = 500  # unless a response comes back: an exception is a failed request too
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route = getattr(request.scope.get("route"), "path", "unmatched")
            method = request.method if request.method in KNOWN_METHODS else "OTHER"
            metrics.latency.labels(method, route, str(status)).observe(
                time.perf_counter() - started)

    def known_zone(conn: psycopg.Connection, zone: str) -> bool:
        if not zones:
            zones.update(store.known_timezones(conn))
        return zone in zones

    def check_event(conn: psycopg.Connection, values: dict[str, Any], event_type: str,
                    changed: set[str]) -> None:
        """Validate what is being written; values not in `changed` were accepted before (a
        migrated wedding may carry a zone abbreviation 010 allowed) and are not re-judged."""
        plugin = plugins.get(event_type)
        if plugin is None:
            raise ProblemError(422, "Unknown event type",
                               f"no active plugin serves event type {event_type!r}; available: "
                               f"{', '.join(plugins.get_available_types()) or 'none'}")
        problems = plugin.validate(values.get("metadata", {})) if "metadata" in changed else []
        start, end = values.get("start_date"), values.get("end_date")
        if changed & {"start_date", "end_date"} and start and end and end < start:
            problems.append("end_date: must not be before start_date")
        zone = values.get("timezone")
        if "timezone" in changed and zone and not known_zone(conn, zone):
            problems.append(f"timezone: {zone!r} is not a time zone PostgreSQL knows")
        if problems:
            raise ProblemError(422, "Invalid event", "; ".join(problems), problems)

    @app.get("/api/events", response_model=models.EventPage, tags=["events"],
             responses=documented(400, 403, 422, 503))
    def list_events(tenant: Tenant,
                    event_type: Annotated[models.Text | None,
                                          Query(alias="type", max_length=40)] = None,
                    status: models.Status | None = None,
                    start_from: AwareDatetime | None = None,
                    start_to: AwareDatetime | None = None,
                    limit: Annotated[int, Query(ge=1, le=200)] = 50,
                    cursor: Annotated[str | None, Query(max_length=64)] = None,
                    ) -> dict[str, Any]:
        """Events of the tenant, oldest id first, a page at a time (follow next_cursor)."""
        with database(pool) as conn:
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
            rows = store.list_events(conn, tenant, event_type=event_type, status=status,
                                     start_from=start_from, start_to=start_to,
                                     after_id=after_id, limit=limit + 1)
        page, more = rows[:limit], len(rows) > limit
        return {"data": page, "next_cursor": store.encode_cursor(page[-1]["id"]) if more
                else None}

    @app.get("/api/events/{event_id}", response_model=models.EventDetail, tags=["events"],
             responses=documented(400, 403, 404, 422, 503))
    def get_event(tenant: Tenant, event_id: EventId) -> dict[str, Any]:
        """One event with its participants and sections."""
        with database(pool) as conn:
            event = store.get_event(conn, tenant, event_id)
            if event is None:
                raise ProblemError(404, "Not found", f"event {event_id} does not exist")
            participants, sections = store.event_children(conn, event_id)
        return {**event, "participants": participants, "sections": sections}

    @app.post("/api/events", response_model=models.Event, status_code=201, tags=["events"],
              responses=documented(400, 403, 409, 413, 422, 503))
    def create_event(tenant: Tenant, body: models.EventCreate, response: Response) -> dict[
            str, Any]:
        """Create an event; its metadata is validated by its event type's plugin."""
        values = body.model_dump()
        with database(pool) as conn, conn.transaction():
            check_event(conn, values, body.event_type, set(values))
            event = store.insert_event(conn, tenant, values)
        response.headers["Location"] = f"/api/events/{event['id']}"
        return event

    @app.patch("/api/events/{event_id}", response_model=models.Event, tags=["events"],
               responses=documented(400, 403, 404, 409, 413, 422, 503))
    def update_event(tenant: Tenant, event_id: EventId, body: models.EventPatch) -> dict[
            str, Any]:
        """Change some fields of an event; the result is validated as a whole."""
        changes = body.model_dump(exclude_unset=True)
        with database(pool) as conn, conn.transaction():
            current = store.get_event(conn, tenant, event_id)
            if current is None:
                raise ProblemError(404, "Not found", f"event {event_id} does not exist")
            for required in ("title", "slug", "timezone", "status", "metadata"):
                if required in changes and changes[required] is None:
                    raise ProblemError(422, "Invalid event", f"{required}: may not be null")
            check_event(conn, {**current, **changes}, current["event_type"], set(changes))
            if not changes:
                return current
            updated = store.update_event(conn, tenant, event_id, changes)
        if updated is None:
            raise ProblemError(404, "Not found", f"event {event_id} does not exist")
        return updated

    @app.delete("/api/events/{event_id}", status_code=204, tags=["events"],
                responses=documented(400, 403, 404, 422, 503))
    def delete_event(tenant: Tenant, event_id: EventId) -> Response:
        """Delete an event with its participants and sections."""
        with database(pool) as conn:
            if not store.delete_event(conn, tenant, event_id):
                raise ProblemError(404, "Not found", f"event {event_id} does not exist")
        return Response(status_code=204)

    @app.get("/api/event-types", response_model=list[models.EventTypeInfo], tags=["events"],
             responses=documented(503))
    def event_types() -> list[dict[str, Any]]:
        """Event types from the database, and whether a plugin serves each."""
        with database(pool) as conn:
            rows = store.event_types(conn)
        loaded = set(plugins.get_available_types())
        return [{**r, "plugin_loaded": r["code"] in loaded} for r in rows]

    @app.get("/api/weddings/{wedding_id}/invitations",
             response_model=list[models.LegacyInvitation], tags=["legacy"],
             responses=documented(400, 403, 404, 422, 503))
    def wedding_invitations(tenant: Tenant, wedding_id: EventId) -> list[dict[str, Any]]:
        """The old wedding front end's read path, served from the compatibility views."""
        with database(pool) as conn:
            rows = store.legacy_invitations(conn, tenant, wedding_id)
        if rows is None:
            raise ProblemError(404, "Not found", f"wedding {wedding_id} does not exist")
        return rows

    def plugins_report() -> dict[str, Any]:
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

    @app.get("/api/plugins", response_model=models.PluginsReport, tags=["plugins"])
    def list_plugins() -> dict[str, Any]:
        """Loaded plugins, the errors of those that failed, and disagreements with
        event_types."""
        return plugins_report()

    @app.post("/api/plugins/reload", response_model=models.PluginsReport, tags=["plugins"],
              responses=documented(401, 403))
    def reload_plugins(authorization: Annotated[str | None, Header()] = None) -> dict[
            str, Any]:
        """Discover the plugins again (admin token required)."""
        if not settings.admin_token:
            raise ProblemError(403, "Reload disabled", "this engine was started without an "
                               "admin token (eventgate serve --admin-token)")
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
                given.encode(), settings.admin_token.encode()):
            raise ProblemError(401, "Unauthorized",
                               "send Authorization: Bearer <admin token>")
        plugins.reload_all()
        return plugins_report()

    @app.get("/health", response_model=models.HealthReport, tags=["operations"],
             responses={503: {"model": models.HealthReport}})
    def get_health() -> JSONResponse:
        """Database, plugins and migration; 503 naming the failing check."""
        report = models.HealthReport(**health(pool, plugins, settings.final_migration))
        return JSONResponse(report.model_dump(mode="json"),
                            status_code=200 if report.status == "healthy" else 503)

    @app.get("/metrics", tags=["operations"], response_class=Response,
             responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
    def get_metrics() -> Response:
        """Prometheus text exposition."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/api/metrics", response_model=models.GuideMetrics, tags=["operations"],
             responses=documented(503))
    def get_guide_metrics() -> dict[str, Any]:
        """The deployment guide's metrics JSON."""
        try:
            return guide_metrics(pool, plugins, metrics)
        except (PoolTimeout, psycopg.OperationalError) as exc:
            raise ProblemError(503, "Database unavailable", "the database did not answer; "
                               "try again shortly") from exc

    return app

