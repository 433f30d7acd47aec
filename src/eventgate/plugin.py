"""The pytest plugin: options, markers, the report header and the one early stop when no
database can be had. Fixtures live in eventgate.fixtures."""

from __future__ import annotations

import signal
import threading

import pytest

from eventgate import dsn as dsn_mod
from eventgate import fixtures
from eventgate.config import OPTIONS, settings_from
from eventgate.errors import EventgateError
from eventgate.pg.provision import Route, choose_route, external_server

MARKERS = (
    "green: safe on a live system (read-only, bounded in time); what `pytest -m green` runs "
    "against staging",
    "integrity: data parity between the legacy tables and the migrated ones",
    "compat: the compatibility views the old wedding application reads and writes",
    "performance: indexes, plans and query budgets",
    "functional: the engine's HTTP API, plugins, health and metrics",
    "destructive: changes data; needs a database the suite owns",
    "slow: production-scale; not in the default run",
)

_ROUTE_KEY = pytest.StashKey[str]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("eventgate", "eventgate migration acceptance suite")
    for option in OPTIONS:
        help_text = f"{option.help} [env {option.env}]"
        group.addoption(option.flag, dest=option.dest, default=None, help=help_text)
        parser.addini(option.dest, help=help_text, default=option.default)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    # A CI timeout or cancel sends SIGTERM, whose default action skips every finally block and
    # would leave the embedded cluster running; as an interrupt, teardown still happens.
    if (threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL):
        signal.signal(signal.SIGTERM, _interrupt)
    for marker in MARKERS:
        config.addinivalue_line("markers", marker)
    if not config.pluginmanager.has_plugin("eventgate.fixtures"):
        config.pluginmanager.register(fixtures, "eventgate.fixtures")


def _describe(route: Route) -> str:
    if route.kind == "dsn":
        assert route.dsn is not None
        return external_server(route.dsn).describe()
    return route.description


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """Decide where PostgreSQL comes from, for the header. A failure is only reported here:
    the first test that needs the database stops the run, once (see fixtures.pg_server), so
    tests that need no database, and other projects' suites, are not held up."""
    settings = settings_from(session.config)
    try:
        route = choose_route(settings.dsn, settings.pg_bindir)
        session.config.stash[_ROUTE_KEY] = _describe(route)
    except EventgateError as exc:
        first_line = dsn_mod.redact(str(exc)).splitlines()[0]
        session.config.stash[_ROUTE_KEY] = f"no PostgreSQL to test against ({first_line})"


EXTERNAL_SKIP = ("not a green test: it writes, or needs a database or engine the suite owns; "
                 "against an external --dsn/--base-url only green tests run")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Against an external target (staging), everything that is not green is skipped, so
    nothing the suite runs there can write."""
    settings = settings_from(config)
    if not (settings.dsn or settings.base_url):
        return
    skip = pytest.mark.skip(reason=EXTERNAL_SKIP)
    for item in items:
        if item.get_closest_marker("green") is None:
            item.add_marker(skip)


def pytest_report_header(config: pytest.Config) -> list[str]:
    settings = settings_from(config)
    route = config.stash.get(_ROUTE_KEY, "not chosen yet")
    return [
        f"eventgate: {route}",
        f"eventgate: bundle {settings.bundle}, scale {settings.scale}",
    ]
