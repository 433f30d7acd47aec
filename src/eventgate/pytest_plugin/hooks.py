"""The pytest plugin: options, markers, the report header, the one early stop when no database
can be had, and what goes into the Allure results (eventgate.reports.allure). Fixtures live in
eventgate.pytest_plugin.fix_db."""

from __future__ import annotations

import signal
import threading
from collections.abc import Generator, Iterator
from typing import Any

import pluggy
import pytest

from eventgate import dsn as dsn_mod
from eventgate.checks import parity
from eventgate.errors import EventgateError
from eventgate.pg.container import IMAGE
from eventgate.pg.provision import Route, choose_route, external_server
from eventgate.pytest_plugin import fix_db as fixtures
from eventgate.pytest_plugin import proof
from eventgate.pytest_plugin.settings import (
    FLAGS,
    OPTIONS,
    WORKER_SEED,
    session_seed,
    settings_from,
)
from eventgate.reports import allure as allure_results
from eventgate.reports import attachments as reporting
from eventgate.seed.choice import replay_hint

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

_TARGET_KEY = pytest.StashKey[allure_results.Target]()
_KINDS = {"dsn": "external DSN", "local": "embedded", "container": "testcontainers"}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("eventgate", "eventgate migration acceptance suite")
    for option in OPTIONS:
        help_text = f"{option.help} [env {option.env}]"
        group.addoption(option.flag, dest=option.dest, default=None, help=help_text)
        parser.addini(option.dest, help=help_text, default=option.default)
    for flag in FLAGS:
        help_text = f"{flag.help} [env {flag.env}=1]"
        group.addoption(flag.flag, dest=flag.dest, action="store_true", default=None,
                        help=help_text)
        parser.addini(flag.dest, help=help_text, type="bool", default=False)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


# tryfirst: the default results directory must be set before allure-pytest's pytest_configure
# reads --alluredir.
@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    # A CI timeout or cancel sends SIGTERM, whose default action skips every finally block and
    # would leave the embedded cluster running; as an interrupt, teardown still happens.
    if (threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL):
        signal.signal(signal.SIGTERM, _interrupt)
    for marker in MARKERS:
        config.addinivalue_line("markers", marker)
    if not config.pluginmanager.has_plugin("eventgate.pytest_plugin.fix_db"):
        config.pluginmanager.register(fixtures, "eventgate.pytest_plugin.fix_db")
    # Resolved once here so that a malformed setting (EVENTGATE_ALLOW_DESTRUCTIVE=maybe) is a
    # usage error before anything runs.
    settings = settings_from(config)
    allure_results.default_results_dir(config, settings)
    if allure_results.allure_active(config) and reporting.observe_parity not in parity.observers:
        parity.observers.append(reporting.observe_parity)
        config.add_cleanup(lambda: parity.observers.remove(reporting.observe_parity))


# optionalhook: the hook exists only with pytest-xdist, which the plugin does not require.
@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:  # xdist's WorkerController
    """Hand the controller's seed to each worker: every worker builds its own legacy database,
    and they must all hold the same data."""
    node.workerinput[WORKER_SEED] = session_seed(node.config)


def _target(route: Route) -> allure_results.Target:
    kind = _KINDS.get(route.kind, route.kind)
    if route.kind == "dsn":
        assert route.dsn is not None
        server = external_server(route.dsn)
        return allure_results.Target(kind, server.describe(), server.version)
    if route.kind == "local":
        assert route.binaries is not None
        return allure_results.Target(kind, route.description, route.binaries.version)
    return allure_results.Target(kind, f"{route.description} ({IMAGE})",
                                 IMAGE.partition(":")[2].split("-")[0] or None)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """Decide where PostgreSQL comes from, for the header. A failure is only reported here:
    the first test that needs the database stops the run, once (see fixtures.pg_server), so
    tests that need no database, and other projects' suites, are not held up."""
    settings = settings_from(session.config)
    try:
        target = _target(choose_route(settings.dsn, settings.pg_bindir))
    except EventgateError as exc:
        first_line = dsn_mod.redact(str(exc)).splitlines()[0]
        target = allure_results.Target(
            "none", f"no PostgreSQL to test against ({first_line})", None)
    session.config.stash[_TARGET_KEY] = target


EXTERNAL_SKIP = ("not a green test: it writes, or needs a database or engine the suite owns; "
                 "against an external --dsn/--base-url only green tests run unless "
                 "--allow-destructive is given")


# tryfirst: allure-pytest selects tests by label (--allure-features ...) in its own
# pytest_collection_modifyitems, so the labels must be on the items by then.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Against an external target (staging), everything that is not green is skipped, so
    nothing the suite runs there can write, unless --allow-destructive says it may. Every test
    gets its Allure title, description and labels."""
    if allure_results.allure_active(config):
        allure_results.apply_metadata(items)
    settings = settings_from(config)
    if not settings.external_target or settings.allow_destructive:
        return
    skip = pytest.mark.skip(reason=EXTERNAL_SKIP)
    for item in items:
        if item.get_closest_marker("green") is None:
            item.add_marker(skip)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    # Attachments made while this test runs belong to it (reporting keeps per-test limits).
    reporting.begin_test(allure_results.results_dir(item.config) is not None)
    try:
        yield
    finally:
        reporting.end_test()


def _skip_reason(report: pytest.TestReport) -> str | None:
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2])
    return None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[
        None, pluggy.Result[pytest.TestReport], None]:
    """With --require-proof a gate the data cannot exercise fails, naming why."""
    outcome = yield
    report = outcome.get_result()
    reason = _skip_reason(report)
    if proof.is_not_proven(reason) and settings_from(item.config).require_proof:
        report.outcome = "failed"
        report.longrepr = (f"{reason.removeprefix('Skipped: ') if reason else ''}\n"
                           "(--require-proof: a gate the data cannot exercise fails)")


def pytest_report_teststatus(report: pytest.TestReport,
                             config: pytest.Config) -> tuple[str, str, str] | None:
    """Not proven is its own outcome in the progress line and the closing tally."""
    if proof.is_not_proven(_skip_reason(report)):
        return "not proven", "N", "NOT PROVEN"
    return None


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The -ra summary lists only pytest's own outcomes; not proven gets its own list."""
    reports = terminalreporter.stats.get("not proven", [])
    if not reports:
        return
    terminalreporter.section("not proven: the data cannot exercise these gates", sep="-")
    for report in reports:
        reason = (_skip_reason(report) or "").removeprefix("Skipped: ")
        terminalreporter.line(f"NOT PROVEN {report.nodeid} - "
                              f"{reason.removeprefix(proof.NOT_PROVEN)}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """environment.properties and categories.json beside the results, written once: by the
    xdist controller, or by the only process when there are no workers. Not after Ctrl-C or
    SIGTERM: asking the target for its ledger could hold up the exit by seconds."""
    config = session.config
    directory = allure_results.results_dir(config)
    if (directory is None or hasattr(config, "workerinput") or config.option.collectonly
            or exitstatus == pytest.ExitCode.INTERRUPTED or _TARGET_KEY not in config.stash):
        return
    allure_results.write_session_files(directory, settings_from(config), config.stash[_TARGET_KEY])


def _named(dsn: str) -> str:
    try:
        return dsn_mod.describe(dsn)
    except EventgateError:  # malformed: the header already says so; never show it whole
        return dsn_mod.redact(dsn)


def pytest_report_header(config: pytest.Config) -> list[str]:
    settings = settings_from(config)
    target = config.stash.get(_TARGET_KEY, None)
    lines = [
        f"eventgate: {target.description if target else 'not chosen yet'}",
        f"eventgate: bundle {settings.bundle}, "
        + (f"profile {settings.profile}" if settings.profile else f"scale {settings.scale}"),
    ]
    if not settings.external and settings.seed is not None:
        lines.append(f"eventgate: seed {settings.seed} ({replay_hint(settings.seed)})")
    if settings.allow_destructive:
        if settings.external_target:
            where = " and ".join(
                ([f"the database {_named(settings.dsn)}"] if settings.dsn else [])
                + ([f"the engine {reporting.redact_url(settings.base_url)}"]
                   if settings.base_url else []))
            lines.append(f"eventgate: !!! WARNING: --allow-destructive: tests that WRITE run "
                         f"against {where}; they may change or delete its data !!!")
        else:
            lines.append("eventgate: --allow-destructive has no effect: the suite owns its "
                         "database and engine")
    return lines
