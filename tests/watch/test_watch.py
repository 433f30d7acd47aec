"""`eventgate watch` against real engine processes with real traffic: a healthy green passes a
whole window with no false alarm; a green that turns bad mid-watch is named by the first sample
after it turned; a restart is a restart, not a negative rate."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from fixtures.traffic import users

from eventgate import http_client
from eventgate.engine import store
from eventgate.engine.process import RunningEngine
from eventgate.pg.databases import Database
from eventgate.watch.judging import Judge
from eventgate.watch.run import PASS, REGRESSION, watch
from eventgate.watch.scrape import Sample, quantile, take
from eventgate.watch.thresholds import Thresholds

pytestmark = [pytest.mark.destructive, pytest.mark.functional]
ROOT = Path(__file__).resolve().parents[2]
FAULTS_ENV = {"PYTHONPATH": str(ROOT / "fixtures")}
Start = Callable[..., AbstractContextManager[RunningEngine]]


@contextmanager
def traffic(engine: RunningEngine, tenant: UUID, users_count: int = 2,
            per_second: float = 30) -> Iterator[list[int]]:
    with users(lambda: engine.url, engine.as_tenant(tenant), users_count,
               per_second) as statuses:
        yield statuses


def _tenant(db: Database) -> UUID:
    with db.connect(read_only=True) as conn:
        tenant = store.busiest_tenant(conn)
    assert tenant is not None
    return tenant


def test_a_healthy_green_passes_a_whole_window_without_a_false_alarm(
        start_engine: Start, engine_database: Database, tmp_path: Path) -> None:
    with start_engine(engine_database.dsn) as engine, traffic(engine, _tenant(engine_database)):
        report = watch(engine.url, duration_s=6, interval_s=0.5, thresholds=Thresholds())
    assert report.outcome == PASS, report.summary()
    assert report.breaches == [] and report.exit_code == 0
    assert len(report.seen) >= 12 and all(s.reachable for s in report.seen)
    assert report.judged_requests >= 100, report.summary()
    assert report.worst_error_rate == 0.0
    states = {item.text: item.state for item in report.checklist}
    assert states == {"All services are running and healthy": "checked",
                      "Database connections are stable": "checked",
                      "API endpoints respond correctly": "checked",
                      "Plugin system loads successfully": "checked",
                      "No critical errors in logs": "not checkable",
                      "Performance metrics are within acceptable ranges": "checked"}


@pytest.mark.parametrize(("mode", "threshold"), [("errors", "5xx rate"),
                                                 ("slow", "p95 latency")])
def test_a_green_that_degrades_mid_watch_is_named_by_the_first_sample_after(
        start_engine: Start, engine_database: Database, tmp_path: Path, mode: str,
        threshold: str) -> None:
    mark = tmp_path / "degraded-at"
    env = {**FAULTS_ENV, "EVENTGATE_DEGRADE_AFTER": "150", "EVENTGATE_DEGRADE_MODE": mode,
           "EVENTGATE_DEGRADE_MARK": str(mark)}
    # Enough users that every 1 s interval holds enough requests to judge (held 1.5 s each,
    # the slow engine needs more of them), at a pace a busy 2-core machine serves well within
    # the latency limit before the engine turns (12 users at 30/s each held p95 at 930 ms under
    # CI's load, and the watch rightly said so); the watch stops at its first breach.
    users, pace = (6, 10) if mode == "slow" else (3, 30)
    with start_engine(engine_database.dsn, app_factory="engine_faults:degrades_after_requests",
                      env=env) as engine, traffic(engine, _tenant(engine_database),
                                                  users, pace) as got:
        thresholds = Thresholds(min_requests=3)
        report = watch(engine.url, duration_s=40, interval_s=1, thresholds=thresholds)
    assert report.outcome == REGRESSION and report.exit_code == 1, report.summary()
    assert [b.threshold for b in report.breaches] == [threshold], report.summary()
    assert mark.exists(), f"the watch went red before the engine turned: {report.summary()}"
    breach = report.breaches[0]
    # A slow answer is counted when it ends, 1.5 s after the engine turned.
    visible = float(mark.read_text()) + (1.5 if mode == "slow" else 0)
    # An error counts in the first interval that holds it; latency once it has held for
    # p95_intervals judged intervals. Each 1 s interval holds enough requests here, so the
    # breach is the first (errors) or p95_intervals-th (latency) sample after the regression
    # could show in /metrics, and the watch stopped there.
    needed = 1 if mode == "errors" else thresholds.p95_intervals
    after = [s for s in report.seen if s.at.timestamp() > visible]
    assert after and after[0].at.timestamp() <= breach.at.timestamp(), (visible, breach)
    assert needed <= len(after) <= needed + 1, ([s.at for s in after], visible, breach)
    assert breach.sample == len(report.seen)
    assert breach.limit == ("500 ms" if mode == "slow" else "1.0%")
    if mode == "errors":
        assert 500 in got and "/api/events" in breach.why


def test_a_restarted_engine_is_a_restart_not_a_negative_rate(
        start_engine: Start, engine_database: Database) -> None:
    tenant = _tenant(engine_database)
    judge = Judge(Thresholds(max_restarts=1))
    with http_client.client(timeout=10) as client:
        with start_engine(engine_database.dsn) as first:
            with traffic(first, tenant):
                time.sleep(1.5)
            busy = take(client, first.url)
        with start_engine(engine_database.dsn) as second:
            fresh = take(client, second.url)
    assert busy.requests > fresh.requests >= 0
    assert judge.observe(busy) == [] and judge.observe(fresh) == []
    assert judge.restarts == [fresh.at]
    # Allowed none: the restart itself is the regression, named as one.
    strict = Judge(Thresholds())
    strict.observe(busy)
    [breach] = strict.observe(fresh)
    assert breach.threshold == "restarts" and "restarted" in breach.why


def test_p95_is_read_from_the_buckets_as_prometheus_does() -> None:
    # 100 requests: 90 at or under 10 ms, 10 more under 50 ms: p95 lies halfway into the
    # (10 ms, 50 ms] bucket.
    buckets = {0.01: 90.0, 0.05: 100.0, float("inf"): 100.0}
    assert quantile(0.95, buckets) == pytest.approx(0.03)
    assert quantile(0.5, {0.01: 0.0, float("inf"): 0.0}) is None


def _eventgate(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "eventgate.cli", *args], capture_output=True,
                          text=True, timeout=120, **kwargs)


def test_the_cli_says_unreachable_with_exit_3_and_writes_its_verdict(tmp_path: Path) -> None:
    result = _eventgate("watch", "--base-url", "http://127.0.0.1:9", "--duration", "2s",
                        "--interval", "0.5s", "--reports", str(tmp_path))
    assert result.returncode == 3, result.stdout + result.stderr
    assert "unreachable: http://127.0.0.1:9 did not answer 2 samples in a row" in " ".join(
        result.stdout.split())
    verdict = json.loads((tmp_path / "watch-verdict.json").read_text())
    assert verdict["outcome"] == "unreachable" and verdict["exit_code"] == 3
    junit = (tmp_path / "watch-junit.xml").read_text()
    assert 'name="green answers"' in junit and "<error" in junit
    assert list((tmp_path / "allure-results").glob("*-result.json"))


def test_a_thresholds_file_with_an_unknown_key_is_refused_naming_it(tmp_path: Path) -> None:
    thresholds = tmp_path / "watch.toml"
    thresholds.write_text("[thresholds]\nmax_error_rate = 0.05\nmax_p99_ms = 300\n")
    result = _eventgate("watch", "--base-url", "http://127.0.0.1:9", "--thresholds",
                        str(thresholds))
    assert result.returncode == 1
    assert "unknown threshold max_p99_ms" in result.stdout, result.stdout
    assert not (tmp_path / "watch-verdict.json").exists()


def _sample(at: int, requests: float, slow: float) -> Sample:
    """A reachable sample with `requests` counted so far, `slow` of them over 1 s."""
    from datetime import UTC, datetime
    return Sample(datetime.fromtimestamp(at, UTC), True, health_status=200, requests=requests,
                  buckets={0.1: requests - slow, 1.0: requests - slow, float("inf"): requests},
                  gauges={"database_up": 1, "plugins_active": 3, "started_at": 1.0})


def test_one_slow_interval_is_a_cold_start_and_two_are_a_regression() -> None:
    # 30 requests an interval. Interval 1: all slow (a cold engine after the switch); 2: fast.
    cold = Judge(Thresholds())
    assert [cold.observe(s) for s in (_sample(0, 0, 0), _sample(10, 30, 30),
                                      _sample(20, 60, 30))] == [[], [], []]
    # Slow twice in a row: named on the second, with both figures.
    slow = Judge(Thresholds())
    breaches = [slow.observe(s) for s in (_sample(0, 0, 0), _sample(10, 30, 30),
                                          _sample(20, 60, 60))]
    assert breaches[:2] == [[], []]
    [breach] = breaches[2]
    assert breach.threshold == "p95 latency" and breach.sample == 3
    assert "on 2 judged intervals in a row" in breach.why
