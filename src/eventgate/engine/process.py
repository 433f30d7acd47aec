"""Running the engine as a separate process on a free loopback port, the way the functional
suite and the benchmarks talk to it: over real HTTP."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from uuid import UUID

import httpx

from eventgate import http_client
from eventgate.engine.identity import KEYS_ENV, TokenKeys, issue
from eventgate.engine.launcher import Forked, Launcher, log_tail
from eventgate.errors import EventgateError

READY_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class RunningEngine:
    url: str
    admin_token: str | None = field(repr=False)
    log: Path | None = None
    # The keys it verifies tenant tokens with, when this process started it (None: an engine
    # running elsewhere, whose credentials come from the gate's settings).
    token_keys: TokenKeys | None = field(default=None, repr=False)

    def as_tenant(self, tenant: UUID | str) -> dict[str, str]:
        """Headers that authenticate as `tenant` to an engine started here."""
        if self.token_keys is None:
            raise EventgateError("this engine was not started here: its tenant tokens come "
                                 "from the gate's credential settings")
        return {"Authorization": f"Bearer {issue(self.token_keys, UUID(str(tenant)))}"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_until_answering(url: str, process: subprocess.Popen[bytes] | Forked,
                          log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise EventgateError(f"the engine exited with code {process.returncode} during "
                                 f"start-up; its log ends with: {log_tail(log)}")
        with contextlib.suppress(httpx.TransportError):
            http_client.get(f"{url}/health", timeout=2)
            return
        time.sleep(0.05)
    raise EventgateError(f"the engine did not answer on {url} within {READY_TIMEOUT_S:.0f} s")


@contextlib.contextmanager
def engine_process(dsn: str, *, workdir: Path, admin_token: str | None = None,
                   app_factory: str | None = None,
                   env: dict[str, str] | None = None,
                   token_keys: TokenKeys | None = None,
                   launcher: Launcher | None = None) -> Iterator[RunningEngine]:
    """`eventgate serve` in a child process (forked by `launcher` when given, else a new
    interpreter); stopped (SIGTERM, then SIGKILL) on exit. It verifies tenant tokens with
    `token_keys` (a new key when none is given)."""
    keys = token_keys or TokenKeys.generate()
    port = _free_port()
    argv = ["serve", "--port", str(port)]
    if app_factory:
        argv += ["--app-factory", app_factory]
    child_env = {**os.environ, KEYS_ENV: keys.text(), **(env or {}), "EVENTGATE_DSN": dsn}
    if admin_token:
        child_env["EVENTGATE_ADMIN_TOKEN"] = admin_token
    log = workdir / f"engine-{port}.log"
    url = f"http://127.0.0.1:{port}"
    process: subprocess.Popen[bytes] | Forked
    if launcher is not None:
        log.write_bytes(b"")
        process = launcher.start(argv, child_env, log)
    else:
        with log.open("wb") as out:
            process = subprocess.Popen([sys.executable, "-m", "eventgate.cli", *argv],
                                       stdout=out, stderr=subprocess.STDOUT, env=child_env)
    try:
        _wait_until_answering(url, process, log)
        yield RunningEngine(url, admin_token, log, keys)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)
