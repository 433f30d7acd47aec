"""A warm start for engines: one process that has already imported the web stack forks each
`eventgate serve`, instead of a new interpreter importing it again for every engine.

A gate starts five engines or more (the suite's own, a broken plugin, one on the legacy
database, one whose database goes away...), and each new interpreter spent about 0.75 s of CPU
importing FastAPI, uvicorn and psycopg before it served anything (measured: 0.85-0.92 s to
answering, of which 0.72 s imports). The forked child runs the same `eventgate serve` with its
own environment, working directory and log, over real HTTP on its own port: only the imports
are shared, never a socket, a connection or a thread (the launcher starts none before it forks).

The launcher reads one JSON request a line on stdin and answers one a line on stdout:
  {"argv": [...], "env": {...}, "cwd": "...", "log": "..."} -> {"pid": N} or {"error": "..."}
  {"status": N} -> {"code": exit code, or null while it runs}
It exits, stopping the engines it forked, when its stdin closes (the session that started it
ended or died). Linux only: the caller watches a child it did not fork through a pidfd."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import IO, Any

from eventgate.errors import EventgateError

STOP_GRACE_S = 10.0


def available() -> bool:
    """Whether this platform can watch a forked engine (os.pidfd_open: Linux 5.3 and newer)."""
    if not hasattr(os, "pidfd_open") or not hasattr(os, "fork"):
        return False
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:
        return False
    return True


def log_tail(log: Path) -> str:
    """The end of a process's log, for the error that says it stopped."""
    try:
        return log.read_text(errors="replace").strip()[-800:] or "(nothing)"
    except OSError:
        return "(no log)"


class ForkedEngine:
    """The part of subprocess.Popen that engine_process uses, for an engine the launcher
    forked: poll, terminate, kill and wait, watched through a pidfd."""

    def __init__(self, launcher: Launcher, pid: int) -> None:
        self.pid = pid
        self._launcher = launcher
        self._pidfd = os.pidfd_open(pid)
        self.returncode: int | None = None

    def _exited(self, timeout: float | None) -> bool:
        """Whether the engine has exited, waiting up to `timeout` seconds (None: until it has)."""
        watch = select.poll()
        watch.register(self._pidfd, select.POLLIN)
        return bool(watch.poll(None if timeout is None else timeout * 1000))

    def poll(self) -> int | None:
        if self.returncode is None and self._exited(0):
            self.returncode = self._launcher.exit_code(self.pid)
            os.close(self._pidfd)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            if not self._exited(timeout):
                raise subprocess.TimeoutExpired(f"engine {self.pid}", timeout or 0)
            self.poll()
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, signum: int) -> None:
        # Through the pidfd: once the launcher has reaped the engine its pid may be another
        # process's, the pidfd never is.
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._pidfd, signum)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class Launcher:
    """The client of one launcher process, started on first use and stopped by close()."""

    def __init__(self, log: Path) -> None:
        self._log = log
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    def _ask(self, request: dict[str, Any], *, start: bool = True) -> dict[str, Any]:
        with self._lock:
            if self._process is None and not start:
                return {}
            if self._process is None:
                with self._log.open("ab") as err:
                    self._process = subprocess.Popen(
                        [sys.executable, "-m", "eventgate.engine.launcher"],
                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err)
            process = self._process
            assert process.stdin is not None and process.stdout is not None
            try:
                process.stdin.write(json.dumps(request).encode() + b"\n")
                process.stdin.flush()
                line = process.stdout.readline()
            except OSError:
                line = b""
            if not line:
                raise EventgateError(f"the engine launcher stopped (exit code {process.poll()}); "
                                     f"its log ({self._log}) ends with: {log_tail(self._log)}")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise EventgateError(f"the engine launcher could not start an engine: "
                                 f"{answer['error']}")
        return answer

    @property
    def pid(self) -> int | None:
        """The launcher process's pid, once it runs."""
        return self._process.pid if self._process is not None else None

    def start(self, argv: list[str], env: dict[str, str], log: Path) -> ForkedEngine:
        """`eventgate <argv>` forked with exactly `env`, in this directory, output to `log`."""
        answer = self._ask({"argv": argv, "env": env, "cwd": os.getcwd(), "log": str(log)})
        return ForkedEngine(self, int(answer["pid"]))

    def exit_code(self, pid: int) -> int:
        """How a forked engine ended; -1 when the launcher no longer knows (it was closed, or
        it stopped with the session, as on Ctrl-C, where the engine's exit is all that counts)."""
        try:
            code = self._ask({"status": pid}, start=False).get("code")
        except EventgateError:
            return -1
        return int(code) if code is not None else -1

    def close(self) -> None:
        """Stop the launcher; it stops any engine still running."""
        process, self._process = self._process, None
        if process is None:
            return
        assert process.stdin is not None
        with contextlib.suppress(OSError):
            process.stdin.close()
        try:
            process.wait(timeout=STOP_GRACE_S + 5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


# The launcher process itself.

PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when its parent dies


def _stop_with_launcher(launcher_pid: int) -> None:
    """SIGTERM to this engine if the launcher dies, even by SIGKILL, which no finally survives:
    an engine left behind would hold its port and its database connections."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != launcher_pid:  # it died before prctl took effect
        os._exit(1)


def _child(request: dict[str, Any], launcher_pid: int) -> None:
    """In the forked child: become `eventgate <argv>` as a new process would be; never returns."""
    code = 1
    try:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
            signal.signal(signum, signal.SIG_DFL)
        _stop_with_launcher(launcher_pid)
        null = os.open(os.devnull, os.O_RDONLY)
        out = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.close(null)
        os.close(out)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        # What `python -m` in that directory with that PYTHONPATH would have on its path.
        sys.path[0] = request["cwd"]
        extra = [p for p in request["env"].get("PYTHONPATH", "").split(os.pathsep) if p]
        sys.path[1:1] = [p for p in extra if p not in sys.path]
        sys.argv = ["eventgate", *request["argv"]]
        from eventgate.cli.main import main
        code = main(list(request["argv"]))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _reap(codes: dict[int, int]) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        codes[pid] = os.waitstatus_to_exitcode(status)


def _stop_children(children: set[int], codes: dict[int, int]) -> None:
    """SIGTERM to every engine still running, SIGKILL to any still there after the grace."""
    running = children - codes.keys()
    for pid in running:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    while running and time.monotonic() < deadline:
        _reap(codes)
        running -= codes.keys()
        time.sleep(0.05)
    for pid in running:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    _reap(codes)


def _answer(out: IO[str], answer: dict[str, Any]) -> None:
    out.write(json.dumps(answer) + "\n")
    out.flush()


def serve_requests() -> None:
    # Everything an engine imports, once, before any fork (no thread is running yet).
    import uvicorn  # noqa: F401

    import eventgate.cli.main
    import eventgate.cli.serve
    import eventgate.engine.app  # noqa: F401

    children: set[int] = set()
    codes: dict[int, int] = {}
    try:
        for line in sys.stdin:
            request = json.loads(line)
            _reap(codes)
            if "status" in request:
                pid = int(request["status"])
                if pid not in codes and pid in children:
                    with contextlib.suppress(ChildProcessError):
                        _, status = os.waitpid(pid, 0)
                        codes[pid] = os.waitstatus_to_exitcode(status)
                _answer(sys.stdout, {"code": codes.get(pid)})
                continue
            try:
                launcher_pid, pid = os.getpid(), os.fork()
            except OSError as exc:
                _answer(sys.stdout, {"error": f"fork failed: {exc}"})
                continue
            if pid == 0:
                _child(request, launcher_pid)
            children.add(pid)
            _answer(sys.stdout, {"pid": pid})
    finally:
        _reap(codes)
        _stop_children(children, codes)


if __name__ == "__main__":
    serve_requests()
