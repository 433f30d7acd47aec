"""The Allure results QA reads: titles, descriptions and labels from names and docstrings,
attachments (check results, plans and budget figures, HTTP exchanges) with credentials masked,
and environment.properties and categories.json beside the results."""

import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from eventgate.bundle import Bundle, default_bundle_path
from eventgate.checks import parity
from eventgate.checks.result import CheckResult
from eventgate.pg.databases import Database
from eventgate.pytest_plugin.settings import Settings
from eventgate.reports import attachments as reporting
from eventgate.reports.categories import CATEGORIES, categorize
from eventgate.reports.environment import Target, environment, format_properties
from eventgate.reports.labels import STORY_MAX, humanize, severity_of, story_of
from eventgate.reports.redact import redact_url, redact_value

# A suite laid out like ours, run in a subprocess: allure-pytest keeps global state, and an
# in-process run would also write its results into this session's results directory.
DEMO_SUITE = {
    "tests/integrity/test_demo_parity.py": '''
        """Demo parity: every demo row arrives.

        Second paragraph."""
        import allure
        import pytest

        pytestmark = [pytest.mark.integrity, pytest.mark.green]


        @pytest.mark.parametrize("table", ["wedding_invitations"])
        def test_every_acknowledged_write_lands_in_the_new_tables_exactly_once(table):
            pass


        def test_a_gate_that_fails():
            """The gate's own words."""
            assert False, "content parity — demo: 1 missing"


        @allure.title("Written by hand")
        @allure.feature("Hand-made feature")
        @allure.severity(allure.severity_level.TRIVIAL)
        def test_with_its_own_allure_decorators():
            pass
    ''',
    "tests/tooling/test_helpers.py": '''
        import pytest

        pytestmark = pytest.mark.green


        def test_a_cli_tool_works():
            pass
    ''',
    "tests/functional/test_http_demo.py": '''
        """HTTP exchanges: what the engine was asked and what it answered."""
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        import httpx
        import pytest

        from eventgate.reports.attachments import HttpExchanges

        pytestmark = pytest.mark.green


        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                body = json.dumps({"ok": True, "token": "resp-secret-1",
                                   "dsn": "postgresql://app:dsn-secret-2@db:5432/x"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Set-Cookie", "session=cookie-secret-3")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass


        def test_requests_are_attached():
            server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            try:
                with httpx.Client(base_url=f"http://127.0.0.1:{server.server_port}",
                                  event_hooks=HttpExchanges(limit=3).event_hooks) as client:
                    client.get("/api/events", params={"token": "query-secret-4", "limit": "5"},
                               headers={"Authorization": "Bearer header-secret-5",
                                        "X-Admin-Token": "header-secret-6",
                                        "Cookie": "sid=cookie-secret-7"})
                    for _ in range(4):
                        client.get("/health")
            finally:
                server.shutdown()
                server.server_close()
    ''',
}


def _write_suite(pytester: pytest.Pytester, files: dict[str, str]) -> None:
    import textwrap

    for relative, source in files.items():
        path = pytester.path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source).lstrip(), encoding="utf-8")


def _results(directory: Path) -> dict[str, dict[str, Any]]:
    found = {}
    for path in directory.glob("*-result.json"):
        result = json.loads(path.read_text(encoding="utf-8"))
        found[result["name"]] = result
    return found


def _labels(result: dict[str, Any], name: str) -> list[str]:
    return sorted(label["value"] for label in result["labels"] if label["name"] == name)


def _properties(path: Path) -> dict[str, str]:
    """Enough of java.util.Properties for what format_properties writes here."""
    pairs = {}
    for line in path.read_text(encoding="ascii").splitlines():
        key, _, value = line.partition("=")
        pairs[key] = value.encode("ascii").decode("unicode-escape")
    return pairs


def test_results_read_in_plain_language_with_credentials_masked(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, migrated_db: Database,
        reference_bundle: Bundle) -> None:
    _write_suite(pytester, DEMO_SUITE)
    # The embedded cluster trusts its socket, so a password in the DSN is accepted and unused:
    # a real external-DSN run whose password must show nowhere. Passed by environment, as
    # `eventgate gate` does, so that it is not in the command line this test's output shows.
    monkeypatch.setenv("EVENTGATE_DSN", f"{migrated_db.dsn} password=s3cr3t-pw")
    out = pytester.path / "allure"
    run = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--alluredir={out}")
    run.assert_outcomes(passed=4, failed=1)
    results = _results(out)

    parametrized = results[
        "Every acknowledged write lands in the new tables exactly once [wedding_invitations]"]
    assert parametrized["description"] == ("Demo parity: every demo row arrives.\n\n"
                                           "Second paragraph.")
    assert _labels(parametrized, "feature") == ["Integrity: data parity"]
    assert _labels(parametrized, "story") == ["Demo parity"]
    assert _labels(parametrized, "severity") == ["blocker"]
    assert {"green", "integrity"} <= set(_labels(parametrized, "tag"))

    failing = results["A gate that fails"]
    assert failing["status"] == "failed"
    assert failing["description"] == "The gate's own words."
    assert (categorize("failed", failing["statusDetails"]["message"])
            == "Product defects: a gate failed")

    by_hand = results["Written by hand"]  # an explicit decorator wins over the generated one
    assert _labels(by_hand, "feature") == ["Hand-made feature"]
    assert _labels(by_hand, "severity") == ["trivial"]
    assert _labels(by_hand, "story") == ["Demo parity"]

    tool = results["A CLI tool works"]  # no docstring: the module's name, in words
    assert (_labels(tool, "feature"), _labels(tool, "story"), _labels(tool, "severity")) == (
        ["Tooling"], ["Helpers"], ["minor"])
    assert "description" not in tool

    http = results["Requests are attached"]
    assert _labels(http, "feature") == ["Engine API"]
    assert _labels(http, "severity") == ["critical"]
    names = [a["name"] for a in http["attachments"]]
    assert len([n for n in names if n.startswith("HTTP GET")]) == 3, names
    assert "HTTP: further requests not attached" in names
    first = next(a for a in http["attachments"] if a["name"].startswith("HTTP GET /api/events"))
    exchange = (out / first["source"]).read_text(encoding="utf-8")
    for line in ("Authorization: ***", "X-Admin-Token: ***", "Cookie: ***", "Set-Cookie: ***",
                 '"token": "***"', "postgresql://app:****@db:5432/x", " 200 OK"):
        assert line in exchange, exchange
    assert "token=***" in exchange and "limit=5" in exchange

    assert json.loads((out / "categories.json").read_text()) == CATEGORIES
    env = _properties(out / "environment.properties")
    assert env["target.kind"] == "external DSN"
    assert env["target"].endswith(migrated_db.name) and "PostgreSQL" in env["target"]
    assert re.fullmatch(r"\d+(\.\d+)*", env["postgresql.version"])
    assert env["migrations.source"] == "ledger of the target database"
    assert {f"migration.{m.version:03d}": f"{m.name} sha256={m.sha256}"
            for m in reference_bundle.migrations}.items() <= env.items()
    for key in ("bundle", "scale", "engine", "engine.version", "eventgate.version",
                "python.version"):
        assert env[key], key

    everything = "".join(p.read_text(encoding="utf-8", errors="replace")
                         for p in out.iterdir()) + run.stdout.str() + run.stderr.str()
    assert "s3cr3t-pw" not in everything
    assert "-secret-" not in everything


def test_without_alluredir_results_go_to_the_reports_dir_once_per_xdist_run(
        pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_one="def test_one():\n    pass\n")
    run = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2",
                                        "--reports-dir", "out")
    run.assert_outcomes(passed=1)
    written = {p.name for p in (pytester.path / "out" / "allure-results").iterdir()}
    assert {"categories.json", "environment.properties"} <= written
    assert any(name.endswith("-result.json") for name in written)
    assert not any(name.endswith(".tmp") for name in written)


def test_allure_can_be_switched_off(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_one="def test_one():\n    pass\n")
    for switch in (["-p", "no:allure_pytest"], ["--alluredir="]):
        pytester.runpytest("-p", "no:cacheprovider", *switch).assert_outcomes(passed=1)
        assert not (pytester.path / "reports").exists(), switch


# --- the pieces, without a run ---------------------------------------------------------------

@pytest.mark.parametrize(("name", "title"), [
    ("test_every_acknowledged_write_lands_in_the_new_tables_exactly_once",
     "Every acknowledged write lands in the new tables exactly once"),
    ("test_the_api_answers_json", "The API answers JSON"),
    ("test_ctrl_c_during_a_run_still_removes_the_cluster",
     "Ctrl-C during a run still removes the cluster"),
])
def test_titles_are_test_names_in_words(name: str, title: str) -> None:
    assert humanize(name) == title


@pytest.mark.parametrize(("suite", "green", "severity"), [
    ("integrity", True, "blocker"), ("compat", True, "blocker"),
    ("integrity", False, "critical"), ("performance", True, "critical"),
    ("functional", False, "critical"), ("proofs", False, "normal"), ("runner", False, "normal"),
    ("safety", False, "normal"), ("tooling", False, "minor"), (None, True, "normal"),
])
def test_severity_follows_the_suite_and_green(suite: str | None, green: bool,
                                              severity: str) -> None:
    assert severity_of(suite, green) == severity


def test_stories_are_the_modules_opening_phrase() -> None:
    story = story_of
    assert story("Row-count parity: each legacy table has as many rows.", "x") == "Row-count parity"
    assert story("Index presence.\n\nMore.", "x") == "Index presence"
    assert story(None, "test_bundle_files") == "Bundle files"
    assert len(story("word " * 40, "x")) <= STORY_MAX + 2


@pytest.mark.parametrize(("status", "message", "category"), [
    ("broken", 'psycopg.OperationalError: connection failed: connection to server at '
               '"10.0.0.5", port 5432 failed: Connection refused', "Infrastructure: database "
                                                                   "unreachable"),
    ("broken", "psycopg.errors.QueryCanceled: canceling statement due to statement timeout",
     "Infrastructure: timeout"),
    ("broken", "httpx.ReadTimeout: timed out", "Infrastructure: timeout"),
    ("broken", "httpx.ConnectError: [Errno 111] Connection refused",
     "Infrastructure: engine unreachable"),
    ("broken", 'psycopg.OperationalError: connection failed: connection to server at "db", '
               'port 5432 failed: timeout expired', "Infrastructure: timeout"),
    ("failed", "AssertionError: server closed the connection unexpectedly\nassert False",
     "Infrastructure: database unreachable"),
    ("broken", "httpx.RemoteProtocolError: Server disconnected without sending a response.",
     "Infrastructure: engine unreachable"),
    ("failed", "AssertionError: content parity — wedding_events -> events: 1 missing\n"
               "assert False", "Product defects: a gate failed"),
    ("broken", "KeyError: 'data'", "Test defects"),
    ("passed", "", None),
], ids=["psycopg refused", "statement timeout", "httpx timeout", "httpx refused",
        "libpq timeout", "assertion naming a dropped connection", "engine hung up",
        "gate assertion", "unexpected exception", "passed"])
def test_categories_keep_infrastructure_apart_from_defects(status: str, message: str,
                                                           category: str | None) -> None:
    assert categorize(status, message) == category
    # Allure 2 matches the whole message and files a result under every category it matches:
    # the same result lands in exactly one there too.
    whole = [c["name"] for c in CATEGORIES
             if status in c["matchedStatuses"] and re.fullmatch(c["messageRegex"], message)]
    assert whole == ([category] if category else [])


def test_environment_properties_name_the_target_without_its_password() -> None:
    settings = Settings(dsn="postgresql://app:s3cr3t-pw@127.0.0.1:1/wedding",
                        bundle=default_bundle_path(),
                        pg_bindir=None, scale="small",
                        base_url="http://ops:b4sic-pw@127.0.0.1:1/?token=t0ken-pw")
    target = Target("external DSN", "PostgreSQL 16.4 via external server "
                                   "app@127.0.0.1:1/wedding", "16.4")
    text = format_properties(environment(settings, target))
    env = dict(line.split("=", 1) for line in text.splitlines())
    assert env["target.kind"] == "external DSN" and env["postgresql.version"] == "16.4"
    assert env["migrations.source"].startswith("bundle (the target's ledger could not be read")
    assert env["migration.010"].startswith("010_wedding_data_migration sha256=")
    assert env["engine.version"].startswith("unknown (/health did not answer")
    assert env["engine"] == "external, http://ops:****@127.0.0.1:1/?token=***"
    for secret in ("s3cr3t-pw", "b4sic-pw", "t0ken-pw"):
        assert secret not in text


def test_properties_stay_one_line_and_ascii() -> None:
    text = format_properties({"a key": "line one\nline two — ü", "b": " lead"})
    assert text == "a\\ key=line one\\nline two \\u2014 \\u00fc\nb=\\ lead\n"


def test_credentials_are_masked_in_urls_and_json() -> None:
    assert (redact_url("https://u:pw@h/p?token=x&limit=5&api_key=y")
            == "https://u:****@h/p?token=***&limit=5&api_key=***")
    assert redact_url("http://h/p?monkey=1") == "http://h/p?monkey=1"
    assert redact_value({"password": "x", "nested": [{"dsn": "host=h password=x"}],
                                   "count": 3}) == {
        "password": "***", "nested": [{"dsn": "host=h password=****"}], "count": 3}


def test_a_large_body_is_cut_short() -> None:
    request = httpx.Request("POST", "http://h/api/events", content=b"x" * 200_000,
                            headers={"Content-Type": "application/json"})
    response = httpx.Response(413, request=request, json={"detail": "too large"})
    text = reporting.exchange_text(response, limit=1000)
    assert "… 199000 more characters not kept (200000 bytes in all)" in text
    assert len(text) < 2000


class FakeAllure:
    """Stands in for the allure module to see what reporting attaches."""

    attachment_type = SimpleNamespace(JSON="json", TEXT="text")

    def __init__(self) -> None:
        self.attached: list[tuple[str, str, str]] = []

    def attach(self, body: str, name: str, attachment_type: str) -> None:
        self.attached.append((name, attachment_type, body))


@pytest.fixture
def fake_allure(monkeypatch: pytest.MonkeyPatch) -> FakeAllure:
    fake = FakeAllure()
    monkeypatch.setattr(reporting, "_allure", lambda: fake)
    return fake


PLAN = {"Plan": {"Node Type": "Nested Loop", "Join Type": "Left", "Startup Cost": 0.56,
                 "Total Cost": 25.3, "Plan Rows": 3, "Plan Width": 90, "Actual Rows": 3,
                 "Actual Startup Time": 0.02, "Actual Total Time": 0.05, "Actual Loops": 1,
                 "Shared Hit Blocks": 9, "Plans": [
                     {"Node Type": "Index Scan", "Index Name": "idx_events_tenant",
                      "Relation Name": "events", "Alias": "e", "Startup Cost": 0.28,
                      "Total Cost": 8.3, "Plan Rows": 1, "Plan Width": 60,
                      "Index Cond": "(tenant_id = $1)"}]},
        "Planning Time": 0.1, "Execution Time": 0.2}


def test_a_budget_comes_with_its_plan_and_figures(fake_allure: FakeAllure) -> None:
    client = [float(n) for n in range(1, 31)]
    result = CheckResult("query budget", "budget events_list", True, "within", data={
        "budget_ms": 50, "statistic": "p95", "rounds": 30, "client_ms": client,
        "server_ms": [n / 2 for n in client], "params": {"tenant": "t"},
        "explain_analyze": PLAN, "client_p95_ms": 29.0, "server_p95_ms": 14.5})
    reporting.attach(result)
    attached = {name: (kind, body) for name, kind, body in fake_allure.attached}
    assert set(attached) == {"query budget: budget events_list",
                             "EXPLAIN (ANALYZE, BUFFERS) budget events_list",
                             "statistics budget events_list"}
    plan = attached["EXPLAIN (ANALYZE, BUFFERS) budget events_list"][1]
    assert plan.splitlines()[0].startswith("Nested Loop Left Join  (cost=0.56..25.30 rows=3")
    assert "  ->  Index Scan using idx_events_tenant on events e" in plan
    assert "Index Cond: (tenant_id = $1)" in plan and "Buffers: shared hit=9" in plan
    stats = json.loads(attached["statistics budget events_list"][1])
    assert stats["client_ms"] == {"p50": 15.0, "p95": 29.0, "max": 30.0}
    assert (stats["verdict"], stats["rounds"], stats["budget_ms"]) == ("within budget", 30, 50)


def test_a_parity_result_is_attached_once_with_its_samples(
        fake_allure: FakeAllure, monkeypatch: pytest.MonkeyPatch) -> None:
    sample = {"key": 7, "kind": "changed", "columns": {"rsvp": {"before": "yes", "after": "no"}}}
    result = CheckResult("content parity", "wedding_invitations -> event_participants", False,
                         "1 changed", data={"samples": [sample]})
    monkeypatch.setattr(parity, "observers", [reporting.observe_parity])  # as the plugin does
    reporting.begin_test(collecting=True)
    try:
        parity._observed(result)  # what content_parity does with every result
        reporting.attach(result)  # and record_check after it
    finally:
        reporting.end_test()
    assert len(fake_allure.attached) == 1
    assert json.loads(fake_allure.attached[0][2])["data"]["samples"] == [sample]

