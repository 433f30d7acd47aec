"""The pytest plugin end to end, through pytester: options, markers, header, one clean stop."""

import subprocess
import sys
from pathlib import Path

import pytest

from eventgate.pg.databases import Database


def test_markers_are_registered_for_strict_markers(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--markers")
    for marker in ("green", "integrity", "compat", "performance", "functional", "destructive",
                   "slow"):
        result.stdout.fnmatch_lines([f"@pytest.mark.{marker}:*"])


def test_options_exist_as_flags_and_ini_keys(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(["eventgate migration acceptance suite:", "*--dsn=*",
                                 "*--bundle=*", "*--pg-bindir=*", "*--scale=*",
                                 "*eventgate_dsn (string):*"])


def test_an_unreachable_dsn_stops_the_run_once_without_the_password(
        pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_many="""
        import pytest

        @pytest.mark.green
        @pytest.mark.parametrize("n", range(50))
        def test_needs_db(target_conn, n):
            pass
    """)
    result = pytester.runpytest_subprocess("--dsn", "postgresql://app:s3cr3t@127.0.0.1:1/w")
    assert result.ret == 4
    result.stdout.fnmatch_lines([
        "eventgate: no PostgreSQL to test against (could not connect to app@127.0.0.1:1/w*"])
    stops = [line for line in result.outlines if "Exit: eventgate: could not connect" in line]
    assert len(stops) == 1
    assert "s3cr3t" not in result.stdout.str() + result.stderr.str()
    assert "passed" not in result.stdout.str() and "ERROR" not in result.stdout.str()


def test_the_header_names_the_version_and_route_of_a_dsn(pytester: pytest.Pytester,
                                                         legacy_db: Database) -> None:
    pytester.makepyfile(test_nothing="def test_nothing():\n    pass\n")
    result = pytester.runpytest_subprocess("--dsn", legacy_db.dsn)
    result.stdout.fnmatch_lines([f"eventgate: PostgreSQL 1* via external server *{legacy_db.name}"])
    assert result.ret == 0


def test_only_green_tests_run_against_an_external_target(pytester: pytest.Pytester,
                                                         legacy_db: Database) -> None:
    pytester.makepyfile(test_writes="""
        import pytest

        def test_writes(migrated_db):
            pass

        @pytest.mark.green
        def test_reads_but_needs_an_owned_database(migrated_db):
            pass

        @pytest.mark.green
        def test_reads():
            pass
    """)
    result = pytester.runpytest_subprocess("--dsn", legacy_db.dsn, "-rs")
    result.assert_outcomes(skipped=2, passed=1)
    result.stdout.fnmatch_lines(["*not a green test: it writes*",
                                 "*needs a database the suite owns*"])


def test_green_sessions_are_read_only(target_conn) -> None:  # type: ignore[no-untyped-def]
    import psycopg

    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        target_conn.execute("DELETE FROM tenants")


DESTRUCTIVE_SUITE = """
    import pytest

    def test_writes():
        pass

    @pytest.mark.green
    def test_reads():
        pass
"""
# In-process runs: allure-pytest is switched off so that they add nothing to this session's
# results (and that switch is proven harmless on the way).
NO_ALLURE = ("-p", "no:allure_pytest", "-p", "no:cacheprovider")


def test_against_an_external_engine_only_green_tests_run_and_the_skip_names_the_flag(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTGATE_BASE_URL", "http://127.0.0.1:9")
    pytester.makepyfile(test_mixed=DESTRUCTIVE_SUITE)
    result = pytester.runpytest(*NO_ALLURE, "-rs")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED * not a green test*unless --allow-destructive is given"])
    assert "WARNING" not in result.stdout.str()


@pytest.mark.parametrize("how", ["flag", "env", "ini"])
def test_allow_destructive_runs_them_with_a_loud_warning(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    monkeypatch.setenv("EVENTGATE_BASE_URL", "http://ops:s3cr3t@127.0.0.1:9")
    pytester.makepyfile(test_mixed=DESTRUCTIVE_SUITE)
    args = list(NO_ALLURE)
    if how == "flag":
        args.append("--allow-destructive")
    elif how == "env":
        monkeypatch.setenv("EVENTGATE_ALLOW_DESTRUCTIVE", "1")
    else:
        pytester.makeini("[pytest]\neventgate_allow_destructive = true\n")
    result = pytester.runpytest(*args)
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["eventgate: !!! WARNING: --allow-destructive: tests that WRITE "
                                 "run against the engine http://ops:****@127.0.0.1:9*"])
    assert "s3cr3t" not in result.stdout.str()


def test_a_malformed_allow_destructive_is_a_usage_error(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTGATE_ALLOW_DESTRUCTIVE", "maybe")
    pytester.makepyfile(test_mixed=DESTRUCTIVE_SUITE)
    result = pytester.runpytest(*NO_ALLURE)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*EVENTGATE_ALLOW_DESTRUCTIVE='maybe' is neither true*"])


REWRITTEN = """
    import importlib

    def _rewritten(name):
        # pytest's rewriting imports its helpers into the module as @pytest_ar.
        return "@pytest_ar" in vars(importlib.import_module(name))

    def test_rewriting():
        assert _rewritten("eventgate.pytest_plugin.proof")
        # imported lazily by the contract test, and full of asserts
        assert not _rewritten("schemathesis.specs.openapi._hypothesis")
"""


def test_assertion_rewriting_is_kept_to_eventgate_and_the_tests(
        pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_rewriting=REWRITTEN)
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)
    # Without the plugin, pytest rewrites schemathesis whole: the test above can fail.
    without = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:eventgate")
    without.assert_outcomes(failed=1)
    without.stdout.fnmatch_lines(["*assert not *_rewritten*schemathesis*"])


def test_the_repositorys_own_conftest_runs_without_xdist() -> None:
    """The suite's conftest.py names an xdist hook; `pytest -p no:xdist tests/performance` (the
    serial budget run the skip reason points to) and the child gates the selftest runs in this
    checkout must still collect and run."""
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:xdist", "-p",
                           "no:cacheprovider", "-q", "tests/tooling/test_notify.py", "-k",
                           "hung_webhook"], cwd=root, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "1 passed" in done.stdout, done.stdout[-2000:]
