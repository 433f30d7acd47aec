"""The pytest plugin's hooks: options, markers, the report header, the one early stop when no
database can be had, the tests parametrized from the bundle, not proven as an outcome of its
own, and what goes into the Allure results (eventgate.reports). The fixtures are in
eventgate.pytest_plugin.fix_db and fix_engine, registered here as plugins of their own."""

from __future__ import annotations

import signal
import threading
from collections.abc import Generator, Iterator
from typing import Any

import pluggy
import pytest

from eventgate import dsn as dsn_mod
from eventgate import operator_env
from eventgate.bundle import load_bundle
from eventgate.checks import parity
from eventgate.errors import EventgateError
from eventgate.pg.container import IMAGE
from eventgate.pg.provision import Route, choose_route, external_server
from eventgate.pytest_plugin import fix_db, fix_engine, proof, rewriting
from eventgate.pytest_plugin.settings import (
    FLAGS,
    OPTIONS,
    WORKER_SEED,
    session_seed,
    settings_from,
)
from eventgate.reports import allure_results, attachments, labels
from eventgate.reports.environment import Target
from eventgate.reports.redact import redact_url
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

_TARGET_KEY = pytest.StashKey[Target]()
_KINDS = {"dsn": "external DSN", "local": "embedded", "container": "testcontainers"}


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    # Called as this plugin registers, before the plugins loaded after it import their
    # packages: see eventgate.pytest_plugin.rewriting.
    rewriting.keep_ours(pluginmanager)


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
    for fixtures in (fix_db, fix_engine):
        if not config.pluginmanager.has_plugin(fixtures.__name__):
            config.pluginmanager.register(fixtures, fixtures.__name__)
    # Resolved once here so that a malformed setting (EVENTGATE_ALLOW_DESTRUCTIVE=maybe) is a
    # usage error before anything runs.
    settings = settings_from(config)
    allure_results.default_results_dir(config, settings)
    if allure_results.allure_active(config) and attachments.observe_parity not in parity.observers:
        parity.observers.append(attachments.observe_parity)
        config.add_cleanup(lambda: parity.observers.remove(attachments.observe_parity))


# optionalhook: the hook exists only with pytest-xdist, which the plugin does not require.
@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:  # xdist's WorkerController
    """Hand the controller's seed to each worker: every worker builds its own legacy database,
    and they must all hold the same data."""
    node.workerinput[WORKER_SEED] = session_seed(node.config)


def _target(route: Route) -> Target:
    kind = _KINDS.get(route.kind, route.kind)
    if route.kind == "dsn":
        assert route.dsn is not None
        server = external_server(route.dsn)
        return Target(kind, server.describe(), server.version)
    if route.kind == "local":
        assert route.binaries is not None
        return Target(kind, route.description, route.binaries.version)
    return Target(kind, f"{route.description} ({IMAGE})",
                                 IMAGE.partition(":")[2].split("-")[0] or None)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """Decide where PostgreSQL comes from, for the header. A failure is only reported here:
    the first test that needs the database stops the run, once (see fix_db.pg_server), so
    tests that need no database, and other projects' suites, are not held up."""
    settings = settings_from(session.config)
    try:
        target = _target(choose_route(settings.dsn, settings.pg_bindir))
    except EventgateError as exc:
        first_line = dsn_mod.redact(str(exc)).splitlines()[0]
        target = Target(
            "none", f"no PostgreSQL to test against ({first_line})", None)
    session.config.stash[_TARGET_KEY] = target


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """One test per mapped table, view or required index, named after it, read from the
    bundle so that a team's own bundle gets its own tests."""
    wanted = {"table_mapping", "view_mapping", "index_expectation", "reference",
              "same_value_rule", "unique_rule", "query_budget",
              "guarded_table"} & set(metafunc.fixturenames)
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
    if "guarded_table" in wanted:
        guarded = [t.name for t in expected.row_security.tables] if expected.row_security else []
        metafunc.parametrize("guarded_table", guarded, ids=guarded)


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
        labels.apply_metadata(items)
    settings = settings_from(config)
    if (settings.external_target and settings.allow_destructive
            and operator_env.migration_mode() == "production"):
        raise pytest.UsageError(
            "MIGRATION_MODE=production: --allow-destructive is refused against an external "
            "target (tests that write would run on production); only green tests run there")
    if not settings.external_target or settings.allow_destructive:
        return
    skip = pytest.mark.skip(reason=EXTERNAL_SKIP)
    for item in items:
        if item.get_closest_marker("green") is None:
            item.add_marker(skip)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    # Attachments made while this test runs belong to it (attachments keeps per-test limits).
    attachments.begin_test(allure_results.results_dir(item.config) is not None)
    try:
        yield
    finally:
        attachments.end_test()


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
                + ([f"the engine {redact_url(settings.base_url)}"]
                   if settings.base_url else []))
            lines.append(f"eventgate: !!! WARNING: --allow-destructive: tests that WRITE run "
                         f"against {where}; they may change or delete its data !!!")
        else:
            lines.append("eventgate: --allow-destructive has no effect: the suite owns its "
                         "database and engine")
    return lines
