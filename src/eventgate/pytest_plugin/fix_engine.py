"""The engine's fixtures: the engine under test (the reference engine started against a private
migrated copy, or --base-url), an HTTP client whose exchanges go into the Allure results, a
read-only session on the engine's database to hold the API to what it stores, the tenants the
API gates ask as with the credentials that authenticate them, and start_engine for a test that
needs an engine of its own. They build on eventgate.pytest_plugin.fix_db's server and
templates."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx
import psycopg
import pytest

from eventgate import http_client
from eventgate.credentials import NoCredential, TenantCredentials, read_tokens_file
from eventgate.engine import launcher, store
from eventgate.engine.identity import KEYS_ENV, TokenKeys
from eventgate.engine.process import RunningEngine, engine_process
from eventgate.pg.databases import Database, Databases
from eventgate.pg.roles import engine_login_dsn
from eventgate.pg.server import Server
from eventgate.pytest_plugin.proof import not_proven
from eventgate.pytest_plugin.settings import Settings
from eventgate.reports.attachments import HttpExchanges

# A test's `as_tenant` fixture: the headers that authenticate a request as that tenant.
AsTenant = Callable[[UUID], dict[str, str]]


@pytest.fixture(scope="session")
def engine_database(eventgate_settings: Settings, pg_server: Server,
                    request: pytest.FixtureRequest) -> Database:
    """The database the engine serves: the --dsn database next to a --base-url engine, or a
    private migrated copy for the engine the suite starts (its writes stay out of the gates'
    target)."""
    if eventgate_settings.base_url and not eventgate_settings.dsn:
        pytest.skip("comparing the API with its database needs --dsn of the engine's database")
    if not pg_server.owned:
        target: Database = request.getfixturevalue("target_database")
        return target
    databases: Databases = request.getfixturevalue("databases")
    template: Database = request.getfixturevalue("migrated_template")
    return databases.create("engine", template=template.name)


@pytest.fixture(scope="session")
def engine_launcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[
        launcher.Launcher | None]:
    """What forks the engines this session starts (eventgate.engine.launcher: the web stack
    imported once, not once an engine); None where the platform cannot watch a forked child,
    and each engine is then a new interpreter."""
    if not launcher.available():
        yield None
        return
    warm = launcher.Launcher(tmp_path_factory.mktemp("engine-launcher") / "launcher.log")
    try:
        yield warm
    finally:
        warm.close()


@pytest.fixture(scope="session")
def engine(eventgate_settings: Settings, request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningEngine]:
    """The engine under test: --base-url, or the reference engine started on a free port
    against engine_database and stopped afterwards."""
    if eventgate_settings.base_url:
        yield RunningEngine(eventgate_settings.base_url.rstrip("/"),
                            os.environ.get("EVENTGATE_ADMIN_TOKEN"))
        return
    db: Database = request.getfixturevalue("engine_database")
    # As a member of the bundle's engine role, under the tables' row-level security, the way
    # a deployed engine runs, on a server the suite owns; on someone else's server (--dsn) no
    # role is created, and the engine logs in as the DSN says.
    security = request.getfixturevalue("bundle").expectations.row_security
    owned = request.getfixturevalue("pg_server").owned
    dsn = engine_login_dsn(db.dsn, security.engine_role) if security and owned else db.dsn
    with engine_process(dsn, workdir=tmp_path_factory.mktemp("engine"),
                        admin_token=secrets.token_urlsafe(16),
                        app_factory=eventgate_settings.engine_factory,
                        launcher=request.getfixturevalue("engine_launcher")) as running:
        yield running


@pytest.fixture(scope="session")
def tenant_credentials(eventgate_settings: Settings, engine: RunningEngine) -> TenantCredentials:
    """How the gates authenticate as a tenant: with the keys of the engine the suite started,
    or, for --base-url, the engine's keys (EVENTGATE_TOKEN_KEYS), a tokens file
    (--tenant-tokens) or a command printing tokens (--tenant-token-command)."""
    if engine.token_keys is not None:
        return TenantCredentials(eventgate_settings.auth_header, keys=engine.token_keys)
    keys = os.environ.get(KEYS_ENV)
    tokens = eventgate_settings.tenant_tokens
    return TenantCredentials(eventgate_settings.auth_header,
                             keys=TokenKeys.parse(keys) if keys else None,
                             tokens=read_tokens_file(tokens) if tokens else {},
                             command=eventgate_settings.tenant_token_command)


@pytest.fixture
def as_tenant(tenant_credentials: TenantCredentials) -> AsTenant:
    """The headers that authenticate a request as a tenant; *not proven* when the gate was
    given no way to authenticate (the engine refuses anonymous requests, so nothing could be
    proven about its tenants' data)."""
    def headers(tenant: UUID) -> dict[str, str]:
        try:
            return tenant_credentials.headers(tenant)
        except NoCredential as exc:
            not_proven(str(exc))
    return headers


@pytest.fixture
def api(engine: RunningEngine) -> Iterator[httpx.Client]:
    """An HTTP client for the engine; each request and its response (credentials masked) is
    attached to the test's Allure result when allure-pytest collects results."""
    with http_client.client(base_url=engine.url, timeout=15,
                            event_hooks=HttpExchanges().event_hooks) as client:
        yield client


@pytest.fixture
def engine_conn(engine_database: Database) -> Iterator[psycopg.Connection]:
    """A read-only session on the engine's database, to hold the API to what it stores."""
    with engine_database.connect(read_only=True) as conn:
        yield conn


@pytest.fixture
def busy_tenant(engine_conn: psycopg.Connection) -> UUID:
    """The tenant with the most events in the engine's database."""
    tenant = store.busiest_tenant(engine_conn)
    if tenant is None:
        not_proven("the engine's database holds no events; the API gates need at least one")
    return tenant


@pytest.fixture(params=["another-tenant", "unknown-tenant"])
def intruder(request: pytest.FixtureRequest, engine_conn: psycopg.Connection,
             busy_tenant: UUID) -> UUID:
    """A tenant that does not own busy_tenant's events, to check that it never sees or
    changes them: another tenant of the database, and one that does not exist at all (which
    holds on any data, a single-tenant database included)."""
    if request.param == "another-tenant":
        other = store.another_tenant(engine_conn, busy_tenant)
        if other is None:
            not_proven("the engine's database holds a single tenant, so no other real tenant "
                       "can ask for its events (the unknown-tenant case covers this database)")
        return other
    while True:
        stranger = uuid4()
        if not store.tenant_exists(engine_conn, stranger):
            return stranger


@pytest.fixture
def start_engine(eventgate_settings: Settings, tmp_path: Path,
                 request: pytest.FixtureRequest) -> Callable[
        ..., contextlib.AbstractContextManager[RunningEngine]]:
    """Start another engine (a broken plugin, a database that goes away) for one test."""
    if eventgate_settings.base_url:
        pytest.skip("starts engines of its own; runs without --base-url")
    warm = request.getfixturevalue("engine_launcher")

    def start(dsn: str, **options: Any) -> contextlib.AbstractContextManager[RunningEngine]:
        options.setdefault("app_factory", eventgate_settings.engine_factory)
        options.setdefault("launcher", warm)
        return engine_process(dsn, workdir=tmp_path, **options)

    return start
