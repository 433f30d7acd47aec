"""deploy/monitoring/ proven with the real tools: promtool checks the Prometheus configuration and
the alert rules and runs their unit tests (each alert fires on a regressing green and stays quiet
on a healthy one), amtool checks the Alertmanager routing, and every metric the rules and the
dashboard query is one the engine really exports on /metrics."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import httpx
import promql_parser
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from eventgate import http_client
from eventgate.engine.process import RunningEngine
from eventgate.watch.thresholds import Thresholds

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "deploy" / "monitoring"
DASHBOARD = MONITORING / "grafana" / "dashboards" / "event-management-engine.json"
HINT = ("needs {tool} from Debian's {package} package: apt-get install {package} "
        "(CI's .ci/run installs it)")
# Series Prometheus itself adds to every scrape, not the engine.
SCRAPE_SERIES = {"up"}


def _tool(name: str, package: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(HINT.format(tool=name, package=package))
    return found


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=MONITORING, capture_output=True, text=True, timeout=120)


def test_promtool_accepts_the_configuration_and_the_rules() -> None:
    promtool = _tool("promtool", "prometheus")
    config = _run(promtool, "check", "config", "prometheus.yml")
    assert config.returncode == 0, config.stdout + config.stderr
    rules = _run(promtool, "check", "rules", "alerts.yml")
    assert rules.returncode == 0 and "SUCCESS: 8 rules found" in rules.stdout, (
        rules.stdout + rules.stderr)


def test_every_alert_fires_on_a_regressing_green_and_stays_quiet_on_a_healthy_one() -> None:
    promtool = _tool("promtool", "prometheus")
    result = _run(promtool, "test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    tests = yaml.safe_load((MONITORING / "alerts_test.yml").read_text())["tests"]
    fired = {case["alertname"] for test in tests for case in test["alert_rule_test"]
             if case.get("exp_alerts")}
    quiet = {case["alertname"] for test in tests for case in test["alert_rule_test"]
             if not case.get("exp_alerts")}
    assert fired == quiet == set(_alerts()), "every alert needs a firing and a quiet test"


def test_a_rule_that_no_longer_fires_fails_its_unit_test(tmp_path: Path) -> None:
    # The restart alert broken (it now needs five restarts): its firing test goes red, by name.
    promtool = _tool("promtool", "prometheus")
    rules = (MONITORING / "alerts.yml").read_text()
    broken = rules.replace("[15m]) > 0", "[15m]) > 5", 1)
    assert broken != rules
    (tmp_path / "alerts.yml").write_text(broken)
    shutil.copy(MONITORING / "alerts_test.yml", tmp_path / "alerts_test.yml")
    result = subprocess.run([promtool, "test", "rules", "alerts_test.yml"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "alertname: EngineRestarted" in result.stdout + result.stderr, result.stdout


def test_amtool_accepts_the_alertmanager_routing_to_slack_and_email() -> None:
    amtool = _tool("amtool", "prometheus-alertmanager")
    result = _run(amtool, "check-config", "alertmanager.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    receivers = yaml.safe_load((MONITORING / "alertmanager.yml").read_text())["receivers"]
    assert {"slack_configs", "email_configs"} <= set(receivers[0])


def _alerts() -> dict[str, dict[str, object]]:
    groups = yaml.safe_load((MONITORING / "alerts.yml").read_text())["groups"]
    return {rule["alert"]: rule for group in groups for rule in group["rules"]}


def _metric_names(expr: str) -> set[str]:
    names: set[str] = set()

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)

    promql_parser.walk(promql_parser.parse(expr), pre_visit=visit)
    return names


def _exported(engine: RunningEngine) -> set[str]:
    text = http_client.get(f"{engine.url}/metrics", timeout=10).text
    return {sample.name for family in text_string_to_metric_families(text)
            for sample in family.samples}


def test_every_metric_the_rules_and_the_dashboard_query_is_exported(
        engine: RunningEngine, api: httpx.Client) -> None:
    api.get("/api/event-types")  # one request, so the latency histogram has series
    exported = _exported(engine) | SCRAPE_SERIES
    queried = {name: _metric_names(str(rule["expr"])) for name, rule in _alerts().items()}
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            queried[f"panel {panel['title']!r}"] = _metric_names(target["expr"])
    missing = {where: sorted(names - exported) for where, names in queried.items()
               if names - exported}
    assert not missing, f"queried but not exported by the engine: {missing}"
    titles = {p["title"] for p in dashboard["panels"]}
    assert {"Events by type", "Request rate", "Error rate (5xx share)",
            "Latency p50 / p95 / p99", "Connection pool", "Plugins", "Database up"} <= titles


def test_the_metric_check_sees_a_name_the_engine_does_not_export(engine: RunningEngine) -> None:
    assert "eventgate_engine_request_total" not in _exported(engine)
    assert _metric_names("rate(eventgate_engine_request_total[5m]) > 1") == {
        "eventgate_engine_request_total"}


def _threshold(rule: dict[str, object]) -> float:
    expr = promql_parser.parse(str(rule["expr"]))
    assert isinstance(expr, promql_parser.BinaryExpr), rule["alert"]
    assert isinstance(expr.rhs, promql_parser.NumberLiteral), rule["alert"]
    return float(expr.rhs.val)


def test_the_alerts_hold_green_to_the_watchs_own_thresholds() -> None:
    watch = Thresholds()
    alerts = _alerts()
    by_threshold = {str(r["labels"]["watch_threshold"]): r  # type: ignore[index]
                    for r in alerts.values() if "watch_threshold" in r["labels"]}  # type: ignore[operator]
    assert _threshold(by_threshold["max_error_rate"]) == watch.max_error_rate
    assert _threshold(by_threshold["max_p95_ms"]) * 1000 == watch.max_p95_ms
    assert _threshold(by_threshold["max_pool_waiting"]) == watch.max_pool_waiting
    assert _threshold(by_threshold["min_plugins_active"]) == watch.min_plugins_active
    assert _threshold(by_threshold["max_restarts"]) == watch.max_restarts


def test_the_compose_file_mounts_what_is_here() -> None:
    # Every file or folder the monitoring stack mounts exists beside it, but the Slack
    # webhook's secret, which the operator provides.
    compose = yaml.safe_load((MONITORING / "docker-compose.yml").read_text())
    assert set(compose["services"]) == {"prometheus", "grafana", "alertmanager"}
    sources = [volume.split(":")[0] for service in compose["services"].values()
               for volume in service.get("volumes", []) if volume.startswith("./")]
    missing = [s for s in sources if s != "./secrets" and not (MONITORING / s).exists()]
    assert sources and not missing, missing
