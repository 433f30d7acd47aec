"""deploy/rolling-deployment.sh with real engine processes as the instances: each instance is
stopped, started on the new version and must be healthy before the next; a bad instance stops
the rollout there, and the instances after it keep the old version and keep serving."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from eventgate import http_client
from eventgate.pg.databases import Database

pytestmark = [pytest.mark.destructive, pytest.mark.functional]
ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "rolling-deployment.sh"
INSTANCES = 3


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Fleet:
    """Instance i: an `eventgate serve` on ports/i, its pid in pids/i, its version in
    versions/i; a version's database is dsn/<version> (an instance may have its own,
    dsn/<version>-<i>: a host whose settings are broken)."""

    def __init__(self, root: Path, dsn: str) -> None:
        self.root = root
        for part in ("ports", "pids", "versions", "dsn", "logs"):
            (root / part).mkdir()
        for i in range(1, INSTANCES + 1):
            (root / "ports" / str(i)).write_text(str(_free_port()))
        for version in ("v1", "v2"):
            (root / "dsn" / version).write_text(dsn)
        # Only the engine goes to the background, so that pids/i is the engine's own pid.
        self.start_cmd = (
            f'set -e; cd {root}; dsn=$(cat dsn/$NEW_VERSION-$INSTANCE 2>/dev/null '
            f'|| cat dsn/$NEW_VERSION); port=$(cat ports/$INSTANCE); '
            f'EVENTGATE_DSN="$dsn" setsid {sys.executable} -m eventgate.cli serve --port "$port" '
            f'> logs/$INSTANCE-$NEW_VERSION 2>&1 < /dev/null & echo $! > pids/$INSTANCE; '
            f'echo $NEW_VERSION > versions/$INSTANCE')
        self.stop_cmd = (f'pid=$(cat {root}/pids/$INSTANCE); kill $pid; '
                         'while kill -0 $pid 2>/dev/null; do sleep 0.1; done')

    def url(self, i: int) -> str:
        return f"http://127.0.0.1:{(self.root / 'ports' / str(i)).read_text()}"

    def version(self, i: int) -> str:
        return (self.root / "versions" / str(i)).read_text().strip()

    def healthy(self, i: int) -> bool:
        try:
            return http_client.get(f"{self.url(i)}/health", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def answers_healthy(self, i: int, within_s: float = 15) -> bool:
        """Healthy now or within `within_s`: on a loaded machine one /health may take longer
        than its timeout, which says nothing of the rollout."""
        deadline = time.monotonic() + within_s
        while not self.healthy(i):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)
        return True

    def log_of(self, i: int) -> str:
        return "\n".join(f"{p.name}: {p.read_text()[-600:]}"
                         for p in sorted((self.root / "logs").glob(f"{i}-*")))

    def start_all(self, version: str) -> None:
        for i in range(1, INSTANCES + 1):
            subprocess.run(["bash", "-c", self.start_cmd], check=True, env={
                **os.environ, "INSTANCE": str(i), "NEW_VERSION": version})
        for i in range(1, INSTANCES + 1):
            assert self.answers_healthy(i), self.log_of(i)

    def stop_all(self) -> None:
        for pid_file in (self.root / "pids").iterdir():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid_file.read_text()), signal.SIGTERM)


@pytest.fixture
def fleet(tmp_path: Path, engine_database: Database) -> Iterator[Fleet]:
    running = Fleet(tmp_path, engine_database.dsn)
    running.start_all("v1")
    try:
        yield running
    finally:
        running.stop_all()


def _roll(fleet: Fleet, version: str, health_timeout: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVENTGATE_", "PYTEST_"))}
    env.update({"INSTANCES": str(INSTANCES), "START_INSTANCE_CMD": fleet.start_cmd,
                "STOP_INSTANCE_CMD": fleet.stop_cmd, "HEALTH_TIMEOUT": health_timeout,
                "HEALTH_INTERVAL": "0.2", "SETTLE_SECONDS": "0"})
    # Each instance has a port of its own, read by the health command.
    env["INSTANCE_HEALTH_CMD"] = (f'curl -fsS -o /dev/null --max-time 5 '
                                  f'"http://127.0.0.1:$(cat {fleet.root}/ports/$INSTANCE)/health"')
    return subprocess.run(["bash", str(SCRIPT), version], env=env, capture_output=True,
                          text=True, timeout=240)


def test_every_instance_is_rolled_to_the_new_version_one_at_a_time(fleet: Fleet) -> None:
    result = _roll(fleet, "v2", "30")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert [fleet.version(i) for i in range(1, INSTANCES + 1)] == ["v2"] * INSTANCES
    assert all(fleet.healthy(i) for i in range(1, INSTANCES + 1))
    # One at a time: each instance is healthy before the next one is stopped.
    order = [line for line in out.splitlines() if "instance " in line]
    stops = [n for n, line in enumerate(order) if ": stop:" in line]
    healthy = [n for n, line in enumerate(order) if "healthy on v2" in line]
    assert len(stops) == len(healthy) == INSTANCES, out
    assert all(h < s for h, s in zip(healthy, stops[1:], strict=False)), out
    assert "rolled out: 3/3 instances on v2 and healthy" in out


def test_the_rollout_stops_at_an_instance_that_does_not_come_up_healthy(fleet: Fleet) -> None:
    # Instance 2's settings point v2 at a database that does not exist: it starts, and its
    # /health answers 503.
    (fleet.root / "dsn" / "v2-2").write_text(
        (fleet.root / "dsn" / "v2").read_text() + " dbname=no_such_database")
    # Long enough for a healthy instance to start on a busy machine (4 s was not, under CI's
    # load): the bad one waits all of it.
    result = _roll(fleet, "v2", "15")
    out = result.stdout + result.stderr
    assert result.returncode == 3, out
    assert [fleet.version(i) for i in range(1, INSTANCES + 1)] == ["v2", "v2", "v1"]
    assert not fleet.healthy(2)
    for untouched_or_updated in (1, 3):
        assert fleet.answers_healthy(untouched_or_updated), fleet.log_of(untouched_or_updated)
    assert "STOPPED: instance 2/3 did not become healthy on v2 within 15 s" in out
    assert "updated and healthy: 1; failed: 2" in out
    assert "untouched, on the old version: 3" in out
    assert "instance 3/3" not in out


def test_a_missing_version_is_refused_before_anything_is_touched(fleet: Fleet) -> None:
    result = _roll(fleet, "", "4")
    assert result.returncode == 2
    assert "give the version to roll out" in result.stderr
    assert [fleet.version(i) for i in range(1, INSTANCES + 1)] == ["v1"] * INSTANCES
