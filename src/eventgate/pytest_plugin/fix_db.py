"""The suite's database fixtures: one server per session (per xdist worker), a seeded legacy
template and a migrated template built once, cheap clones for tests that change data, and
read-only connections for the green gates; beside them the session's settings and bundle, and
record_check, which keeps a gate's result in the reports. The engine's fixtures are in
eventgate.pytest_plugin.fix_engine."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import TypeVar

import psycopg
import pytest

from eventgate.bundle import Bundle, TableMapping, load_bundle
from eventgate.checks.key_ranges import Readers, default_count
from eventgate.checks.result import CheckResult
from eventgate.checks.table_pass import TablePass, table_pass
from eventgate.checks.views import ViewPass, view_pass
from eventgate.errors import EventgateError
from eventgate.migrate.runner import Runner
from eventgate.pg import provision
from eventgate.pg.access import require_read_access
from eventgate.pg.connect import connect
from eventgate.pg.databases import Database, Databases
from eventgate.pg.server import Server
from eventgate.pytest_plugin.settings import Settings, settings_from
from eventgate.reports.attachments import attach
from eventgate.reports.check_json import write_json
from eventgate.seed.generator import SeedPlan
from eventgate.seed.load import build_legacy
from eventgate.seed.profiles import profile
from eventgate.seed.scales import scale

T = TypeVar("T")

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
            # Small data (the default scale, or a profile) may keep the cluster in memory.
            small = bool(eventgate_settings.profile) or eventgate_settings.scale == "small"
            server = stack.enter_context(
                provision(eventgate_settings.dsn, eventgate_settings.pg_bindir,
                          in_memory=small))
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
    conn = connect(target_database.dsn, application_name="eventgate green gate", read_only=True,
                   statement_timeout_ms=STATEMENT_TIMEOUT_MS)
    try:
        row = conn.execute("SHOW default_transaction_read_only").fetchone()
        assert row == ("on",), "the green gate's session is not read-only; refusing to go on"
        yield conn
    finally:
        conn.close()


@pytest.fixture(scope="session")
def target_readers(target_database: Database) -> Readers:
    """Reader sessions for the big comparisons: they share a gate's snapshot and split its
    table's key (eventgate.checks.key_ranges), read-only like target_conn."""
    return Readers(target_database.dsn, default_count(), STATEMENT_TIMEOUT_MS)


@pytest.fixture(scope="session")
def _table_passes() -> dict[str, TablePass]:
    return {}


@pytest.fixture
def table_pass_of(_table_passes: dict[str, TablePass], target_conn: psycopg.Connection,
                  bundle: Bundle, target_readers: Readers) -> Callable[[TableMapping], TablePass]:
    """Content parity and row counts of a mapped table on the target, from one read of it
    (eventgate.checks.table_pass), made by the first of the two gates to ask and kept for the
    other in this session: the green target is only read."""

    def of(mapping: TableMapping) -> TablePass:
        return _once(_table_passes, mapping.legacy_table, lambda: table_pass(
            target_conn, mapping, log=bundle.expectations.change_log, readers=target_readers))

    return of


@pytest.fixture(scope="session")
def _view_passes() -> dict[str, ViewPass]:
    return {}


@pytest.fixture
def view_pass_of(_view_passes: dict[str, ViewPass], target_conn: psycopg.Connection,
                 bundle: Bundle, target_readers: Readers) -> Callable[[TableMapping], ViewPass]:
    """A compatibility view's row equality and NOT NULL columns on the target, from one read
    of it (eventgate.checks.views.view_pass), made by the first of the two gates to ask."""

    def of(mapping: TableMapping) -> ViewPass:
        return _once(_view_passes, mapping.legacy_table, lambda: view_pass(
            target_conn, mapping, log=bundle.expectations.change_log, readers=target_readers))

    return of


def _once(kept: dict[str, T], key: str, make: Callable[[], T]) -> T:
    """What `make` gives, made on the first ask of `key` and kept: the green target is only
    read, so a second gate over the same read sees what the first saw."""
    if key not in kept:
        kept[key] = make()
    return kept[key]


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
    with _private_copy(databases, "legacy_copy", legacy_template) as db:
        yield db


# A sabotage proof migrates a broken bundle and asks whether the gates see the defect: what it
# proves does not grow with the data, so past the small volume it runs on the small one. At
# --scale prod each such proof would otherwise copy ten million rows (4-10 minutes apiece).
PROOF_SCALE = "small"


def proof_plan(settings: Settings) -> SeedPlan | None:
    """The proofs' seed plan when it is not the session's own (a bigger --scale), else None.
    A profile is a shape, not a volume: the proofs keep it."""
    if settings.profile or settings.scale == PROOF_SCALE:
        return None
    base = scale(PROOF_SCALE)
    return base if settings.seed is None else replace(base, seed=settings.seed)


@pytest.fixture(scope="session")
def proof_template(databases: Databases, bundle: Bundle, eventgate_settings: Settings,
                   request: pytest.FixtureRequest) -> Database:
    """The legacy database the sabotage proofs copy: the session's, or a small one beside a
    big session's (see PROOF_SCALE); only ever cloned."""
    plan = proof_plan(eventgate_settings)
    if plan is None:
        template: Database = request.getfixturevalue("legacy_template")
        return template
    db = databases.create("proof_legacy")
    with db.connect() as conn:
        build_legacy(conn, bundle, plan)
    return db


@pytest.fixture
def proof_legacy_db(databases: Databases, proof_template: Database) -> Iterator[Database]:
    """A private copy of the proofs' legacy database, for migrating a sabotaged bundle."""
    with _private_copy(databases, "proof_copy", proof_template) as db:
        yield db


@pytest.fixture
def migrated_db(databases: Databases, migrated_template: Database) -> Iterator[Database]:
    """A private copy of the migrated database to break on purpose, dropped after the test."""
    with _private_copy(databases, "migrated_copy", migrated_template) as db:
        yield db


@contextlib.contextmanager
def _private_copy(databases: Databases, name: str, template: Database) -> Iterator[Database]:
    db = databases.create(name, template=template.name)
    try:
        yield db
    finally:
        databases.drop(db)
