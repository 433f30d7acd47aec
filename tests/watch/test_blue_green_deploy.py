"""deploy/blue-green-deploy.sh end to end with real engines as blue and green, real users routed by
a file the switch steps write (traefik's part): a green that degrades under traffic after the
switch is switched back to blue, which keeps running, and green is kept; a healthy green keeps
the traffic and blue is stopped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from fixtures.traffic import users

from eventgate import http_client
from eventgate.engine import store
from eventgate.engine.process import RunningEngine
from eventgate.pg.databases import Database

pytestmark = [pytest.mark.destructive, pytest.mark.functional]
ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "blue-green-deploy.sh"
FAULTS_ENV = {"PYTHONPATH": str(ROOT / "fixtures")}
Start = Callable[..., AbstractContextManager[RunningEngine]]
# One green gate, to keep the run short: the gate in front of the switch has its own tests
# (tests/staging); this is about what happens after it.
GATE_TEST = "test_health_reports_every_check_healthy"


@contextmanager
def slack() -> Iterator[tuple[str, list[str]]]:
    """A webhook on 127.0.0.1 standing in for Slack's: yields its URL and the texts posted."""
    texts: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            texts.append(str(json.loads(body).get("text")))
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/services/T0/B0/secret", texts
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


def _deploy(tmp_path: Path, db: Database, blue: RunningEngine, green: RunningEngine,
            watch_duration: str, **extra: str
            ) -> tuple[subprocess.CompletedProcess[str], Path]:
    route, marks, reports = tmp_path / "route", tmp_path / "marks", tmp_path / "reports"
    marks.mkdir()
    route.write_text("blue")
    wrapper = tmp_path / "eventgate"
    wrapper.write_text(f'#!/usr/bin/env bash\nif [[ "$1" == gate ]]; then\n'
                       f'    exec {sys.executable} -m eventgate.cli "$@" -- -k {GATE_TEST}\nfi\n'
                       f'exec {sys.executable} -m eventgate.cli "$@"\n')
    wrapper.chmod(0o755)
    thresholds = tmp_path / "watch.toml"
    # Enough requests to judge arrive within each 1 s interval at these users' pace.
    thresholds.write_text("[thresholds]\nmin_requests = 10\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVENTGATE_", "PYTEST_"))}
    env.update({
        "GREEN_DATABASE_URL": db.dsn, "GREEN_BASE_URL": green.url,
        "REPORTS_DIR": str(reports), "HEALTH_TIMEOUT": "30", "HEALTH_INTERVAL": "0.2",
        "EVENTGATE_CMD": str(wrapper), "WATCH_DURATION": watch_duration,
        "WATCH_INTERVAL": "1s", "WATCH_THRESHOLDS": str(thresholds),
        "DEPLOY_GREEN_CMD": f"touch {marks / 'deployed'}",
        "SWITCH_TRAFFIC_CMD": f"echo green > {route}; date +%s.%N > {marks / 'switched'}",
        "SWITCH_BACK_CMD": f"echo blue > {route}; date +%s.%N > {marks / 'switched-back'}",
        "STOP_BLUE_CMD": f"touch {marks / 'blue-stopped'}", **extra})
    urls = {"blue": blue.url, "green": green.url}
    with db.connect(read_only=True) as conn:
        tenant = store.busiest_tenant(conn)
    assert tenant is not None
    # Routed as traefik would: by the file the switch steps write (empty while rewritten).
    # 45 requests a second: enough to judge each 1 s interval, and well served by a busy machine.
    # Blue and green share their token keys, as the two colours of one deployment do.
    with users(lambda: urls.get(route.read_text().strip()), blue.as_tenant(tenant), 3, 15):
        result = subprocess.run(["bash", str(SCRIPT)], env=env, cwd=tmp_path,
                                capture_output=True, text=True, timeout=300)
    return result, tmp_path


def test_a_green_that_degrades_after_the_switch_is_switched_back_to_blue(
        start_engine: Start, engine_database: Database, tmp_path: Path) -> None:
    mark = tmp_path / "degraded-at"
    env = {**FAULTS_ENV, "EVENTGATE_DEGRADE_AFTER": "150", "EVENTGATE_DEGRADE_MARK": str(mark)}
    with start_engine(engine_database.dsn) as blue, start_engine(
            engine_database.dsn, app_factory="engine_faults:degrades_after_requests",
            env=env, token_keys=blue.token_keys) as green, slack() as (hook, posted):
        result, work = _deploy(tmp_path, engine_database, blue, green, "60s",
                                         SLACK_WEBHOOK_URL=hook)
        green_after = http_client.get(f"{green.url}/health", timeout=10).status_code
    out = result.stdout + result.stderr
    assert result.returncode == 4, out
    marks = {p.name for p in (work / "marks").iterdir()}
    assert marks == {"deployed", "switched", "switched-back"}, out  # blue never stopped
    assert (work / "route").read_text().strip() == "blue"
    assert green_after == 200, "green was not kept running for inspection"
    verdict = json.loads((work / "reports" / "watch-verdict.json").read_text())
    assert verdict["outcome"] == "regression" and verdict["breaches"][0]["threshold"] == (
        "5xx rate"), verdict["summary"]
    assert "[blue-green] SWITCHED BACK: regression: 5xx rate:" in out
    degraded = float(mark.read_text())
    back = float((work / "marks" / "switched-back").read_text())
    # The watch stopped at its breach (the last sample), long before its 60 s window ended.
    assert verdict["breaches"][0]["sample"] == len(verdict["seen"])
    assert degraded < back < degraded + 30, (degraded, back)
    print(f"degraded -> switched back: {back - degraded:.2f} s; watch interval 1 s; "
          f"{len(verdict['seen'])} samples")
    # The watch told the team, once it started and once it failed, naming the threshold.
    watch_posts = [t for t in posted if "watch" in t]
    assert any(t.startswith(":x: FAILED: eventgate watch on ") and "5xx rate" in t
               for t in watch_posts), posted
    assert "secret" not in out


def test_a_healthy_green_keeps_the_traffic_and_blue_is_stopped(
        start_engine: Start, engine_database: Database, tmp_path: Path) -> None:
    with start_engine(engine_database.dsn) as blue, start_engine(
            engine_database.dsn, token_keys=blue.token_keys) as green:
        result, work = _deploy(tmp_path, engine_database, blue, green, "5s")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    marks = {p.name for p in (work / "marks").iterdir()}
    assert marks == {"deployed", "switched", "blue-stopped"}, out
    assert (work / "route").read_text().strip() == "green"
    verdict = json.loads((work / "reports" / "watch-verdict.json").read_text())
    assert verdict["outcome"] == "pass" and verdict["breaches"] == [], verdict["summary"]
    assert len(verdict["seen"]) == 6 and verdict["judged_requests"] > 0
    assert "the watch passed, blue is stopped" in out
