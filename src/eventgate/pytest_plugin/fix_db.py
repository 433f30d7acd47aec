"""The suite's fixtures: one server per session (per xdist worker), a seeded legacy template and
a migrated template built once, cheap clones for tests that change data, and read-only
connections for the green gates."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx
import psycopg
import pytest

from eventgate.bundle import Bundle, load_bundle
from eventgate.checks.result import CheckResult
from eventgate.engine.process import RunningEngine, engine_process
from eventgate.errors import EventgateError
from eventgate.migrate.runner import Runner
from eventgate.pg import provision
from eventgate.pg.access import require_read_access
from eventgate.pg.databases import Database, Databases
from eventgate.pg.server import Server
from eventgate.pytest_plugin.proof import not_proven
from eventgate.pytest_plugin.settings import Settings, settings_from
from eventgate.reports.attachments import HttpExchanges, attach, write_json
from eventgate.seed.generator import SeedPlan
from eventgate.seed.load import build_legacy
from eventgate.seed.profiles import profile
from eventgate.seed.scales import scale

STATEMENT_TIMEOUT_MS = 60_000
OWNED_ONLY = ("needs a database the suite owns (it writes); runs on the embedded cluster, "
              "not against --dsn")


@pytest.fixture(scope="session")
def eventgate_settings(pytestconfig: pytest.Config) -> Settings:
    return settings_from(pytestconfig)


@pytest.fixture(scope="session")
def bundle(eventgate_settings: Settings) -> Bundle:
    try:
        return load_bundle(eventgate_settings.bundle)
    except EventgateError as exc:
        pytest.exit(f"eventgate: {exc}", returncode=4)


@pytest.fixture(scope="session")
def pg_server(eventgate_settings: Settings) -> Iterator[Server]:
    """The session's PostgreSQL server; one the suite started is stopped and deleted after."""
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(
                provision(eventgate_settings.dsn, eventgate_settings.pg_bindir))
        except EventgateError as exc:
            # One clear stop instead of an error in every test that needs the database.
            pytest.exit(f"eventgate: {exc}", returncode=4)
        yield server


@pytest.fixture(scope="session")
def databases(pg_server: Server) -> Iterator[Databases]:
    if not pg_server.owned:
        pytest.skip(OWNED_ONLY)
    made = Databases(pg_server)
    try:
        yield made
    finally:
        made.drop_all()


def session_plan(settings: Settings) -> SeedPlan:
    """What the session's legacy database is seeded with: the profile or the scale, with the
    run's seed (the same in every xdist worker)."""
    base = profile(settings.profile) if settings.profile else scale(settings.scale)
    return base if settings.seed is None else replace(base, seed=settings.seed)


@pytest.fixture(scope="session")
def legacy_template(databases: Databases, bundle: Bundle,
                    eventgate_settings: Settings) -> Database:
    """The legacy wedding database, seeded once per session; only ever cloned."""
    db = databases.create("legacy")
    with db.connect() as conn:
        build_legacy(conn, bundle, session_plan(eventgate_settings))
    return db


def migrate(db: Database, bundle: Bundle) -> None:
    with db.connect() as conn:
        Runner(conn, bundle).execute()


@pytest.fixture(scope="session")
def migrated_template(databases: Databases, legacy_template: Database,
                      bundle: Bundle) -> Database:
    """The legacy database after 006-010, built once per session; only ever cloned."""
    db = databases.create("migrated", template=legacy_template.name)
    migrate(db, bundle)
    return db


@pytest.fixture(scope="session")
def target_database(pg_server: Server, request: pytest.FixtureRequest) -> Database:
    """The migrated database the green gates read: the --dsn database, or an embedded one.
    An external one is first checked for what the gate's role may read: a missing privilege
    stops the run once, naming the GRANT, instead of failing every gate."""
    if not pg_server.owned:
        dbname = psycopg.conninfo.conninfo_to_dict(pg_server.dsn).get("dbname", "")
        try:
            require_read_access(pg_server.dsn, request.getfixturevalue("bundle"),
                                statement_timeout_ms=STATEMENT_TIMEOUT_MS)
        except EventgateError as exc:
            pytest.exit(f"eventgate: {exc}", returncode=4)
        return Database(str(dbname), pg_server.dsn)
    databases: Databases = request.getfixturevalue("databases")
    template: Database = request.getfixturevalue("migrated_template")
    return databases.create("target", template=template.name)


@pytest.fixture
def target_conn(target_database: Database) -> Iterator[psycopg.Connection]:
    """A read-only session on the target: green gates can look but never write."""
    conn = psycopg.connect(
        target_database.dsn, autocommit=True, application_name="eventgate green gate",
        options=f"-c default_transaction_read_only=on -c statement_timeout={STATEMENT_TIMEOUT_MS}",
    )
    try:
        row = conn.execute("SHOW default_transaction_read_only").fetchone()
        assert row == ("on",), "the green gate's session is not read-only; refusing to go on"
        yield conn
    finally:
        conn.close()


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
def engine(eventgate_settings: Settings, request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningEngine]:
    """The engine under test: --base-url, or the reference engine started on a free port
    against engine_database and stopped afterwards."""
    if eventgate_settings.base_url:
        yield RunningEngine(eventgate_settings.base_url.rstrip("/"),
                            os.environ.get("EVENTGATE_ADMIN_TOKEN"))
        return
    db: Database = request.getfixturevalue("engine_database")
    with engine_process(db.dsn, workdir=tmp_path_factory.mktemp("engine"),
                        admin_token=secrets.token_urlsafe(16),
                        app_factory=eventgate_settings.engine_factory) as running:
        yield running


@pytest.fixture
def api(engine: RunningEngine) -> Iterator[httpx.Client]:
    """An HTTP client for the engine; each request and its response (credentials masked) is
    attached to the test's Allure result when allure-pytest collects results."""
    with httpx.Client(base_url=engine.url, timeout=15,
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
    row = engine_conn.execute("SELECT tenant_id FROM events GROUP BY 1 "
                              "ORDER BY count(*) DESC, 1 LIMIT 1").fetchone()
    if row is None:
        not_proven("the engine's database holds no events; the API gates need at least one")
    return UUID(str(row[0]))


@pytest.fixture(params=["another-tenant", "unknown-tenant"])
def intruder(request: pytest.FixtureRequest, engine_conn: psycopg.Connection,
             busy_tenant: UUID) -> UUID:
    """A tenant that does not own busy_tenant's events, to check that it never sees or
    changes them: another tenant of the database, and one that does not exist at all (which
    holds on any data, a single-tenant database included)."""
    if request.param == "another-tenant":
        row = engine_conn.execute("SELECT id FROM tenants WHERE id <> %s ORDER BY id LIMIT 1",
                                  (busy_tenant,)).fetchone()
        if row is None:
            not_proven("the engine's database holds a single tenant, so no other real tenant "
                       "can ask for its events (the unknown-tenant case covers this database)")
        return UUID(str(row[0]))
    while True:
        stranger = uuid4()
        if engine_conn.execute("SELECT NOT EXISTS (SELECT 1 FROM tenants WHERE id = %s)",
                               (stranger,)).fetchone() == (True,):
            return stranger


@pytest.fixture
def start_engine(eventgate_settings: Settings, tmp_path: Path) -> Callable[
        ..., contextlib.AbstractContextManager[RunningEngine]]:
    """Start another engine (a broken plugin, a database that goes away) for one test."""
    if eventgate_settings.base_url:
        pytest.skip("starts engines of its own; runs without --base-url")

    def start(dsn: str, **options: Any) -> contextlib.AbstractContextManager[RunningEngine]:
        options.setdefault("app_factory", eventgate_settings.engine_factory)
        return engine_process(dsn, workdir=tmp_path, **options)

    return start


@pytest.fixture
def record_check(eventgate_settings: Settings) -> Callable[[CheckResult], CheckResult]:
    """Keep a check's result as JSON under reports/checks/ and as an Allure attachment."""

    def record(result: CheckResult) -> CheckResult:
        write_json(result, eventgate_settings.reports)
        attach(result)
        return result

    return record


@pytest.fixture
def legacy_db(databases: Databases, legacy_template: Database) -> Iterator[Database]:
    """A private copy of the seeded legacy database, dropped after the test."""
    db = databases.create("legacy_copy", template=legacy_template.name)
    try:
        yield db
    finally:
        databases.drop(db)


@pytest.fixture
def migrated_db(databases: Databases, migrated_template: Database) -> Iterator[Database]:
    """A private copy of the migrated database to break on purpose, dropped after the test."""
    db = databases.create("migrated_copy", template=migrated_template.name)
    try:
        yield db
    finally:
        databases.drop(db)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """One test per mapped table, view or required index, named after it, read from the
    bundle so that a team's own bundle gets its own tests."""
    wanted = {"table_mapping", "view_mapping", "index_expectation", "reference",
              "same_value_rule", "unique_rule", "query_budget"} & set(metafunc.fixturenames)
    if not wanted:
        return
    try:
        loaded = load_bundle(settings_from(metafunc.config).bundle)
    except EventgateError as exc:
        pytest.exit(f"eventgate: {exc}", returncode=4)
    migrated = [m for m in loaded.mapping.values() if m.backup]
    if "table_mapping" in wanted:
        metafunc.parametrize("table_mapping", migrated, ids=[m.legacy_table for m in migrated])
    if "view_mapping" in wanted:
        views = [m for m in migrated if m.view]
        metafunc.parametrize("view_mapping", views, ids=[m.view or "" for m in views])
    if "index_expectation" in wanted:
        indexes = loaded.expectations.indexes
        metafunc.parametrize("index_expectation", indexes, ids=[i.name for i in indexes])
    expected = loaded.expectations
    if "reference" in wanted:
        metafunc.parametrize("reference", expected.references,
                             ids=[f"{r.child}.{r.column}" for r in expected.references])
    if "same_value_rule" in wanted:
        metafunc.parametrize("same_value_rule", expected.same_values,
                             ids=[f"{r.child}.{r.column}" for r in expected.same_values])
    if "query_budget" in wanted:
        metafunc.parametrize("query_budget", expected.budgets,
                             ids=[b.name for b in expected.budgets])
    if "unique_rule" in wanted:
        metafunc.parametrize("unique_rule", expected.unique,
                             ids=[f"{r.table}({','.join(r.columns)})" for r in expected.unique])
