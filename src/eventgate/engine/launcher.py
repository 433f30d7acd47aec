"""A warm start for eventgate's child processes: one process that has already imported the
web stack (and, once asked for a child pytest, pytest and its plugins) forks each engine
(`eventgate serve`) and each child gate, instead of a new interpreter importing it all again.

A gate starts five engines or more (the suite's own, a broken plugin, one on the legacy
database, one whose database goes away...), and each new interpreter spent about 0.75 s of CPU
importing FastAPI, uvicorn and psycopg before it served anything (measured: 0.85-0.92 s to
answering, of which 0.72 s imports). A child gate's pytest spent 1.7 s starting and collecting
the suites, half of it importing pytest, hypothesis, schemathesis and the other plugins
(measured: 0.9 s forked). The forked child runs the same command with its own environment,
working directory and log: only the imports are shared, never a socket, a connection or a
thread (the launcher starts none before it forks).

The launcher reads one JSON request a line on stdin and answers one a line on stdout:
  {"argv": [...], "env": {...}, "cwd": "...", "log": "...", "program": "eventgate" | "pytest"}
      -> {"pid": N} or {"error": "..."}
  {"status": N} -> {"code": exit code, or null while it runs}
It exits, stopping the children it forked, when its stdin closes (the session that started it
ended or died). Linux only: the caller watches a child it did not fork through a pidfd."""

from __future__ import annotations

import atexit
import contextlib
import gc
import importlib
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


class Forked:
    """The part of subprocess.Popen that engine_process and run_gate use, for a process the
    launcher forked: poll, terminate, kill and wait, watched through a pidfd."""

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
                raise subprocess.TimeoutExpired(f"forked process {self.pid}", timeout or 0)
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
        # Reentrant: start() holds it across its request and the pidfd (see there).
        self._lock = threading.RLock()

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
                raise EventgateError(f"the launcher of engines and child gates stopped (exit code "
                                     f"{process.poll()}); "
                                     f"its log ({self._log}) ends with: {log_tail(self._log)}")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise EventgateError(f"the launcher could not start "
                                 f"{request.get('program', 'eventgate')} "
                                 f"{' '.join(request.get('argv', [])[:3])}: {answer['error']}")
        return answer

    @property
    def pid(self) -> int | None:
        """The launcher process's pid, once it runs."""
        return self._process.pid if self._process is not None else None

    def start(self, argv: list[str], env: dict[str, str], log: Path, *,
              cwd: Path | None = None, program: str = "eventgate") -> Forked:
        """`eventgate <argv>` (or `python -m pytest <argv>` for program="pytest") forked with
        exactly `env`, in `cwd` (default: this directory), output to `log`."""
        if program not in PROGRAMS:
            raise EventgateError(f"the launcher runs {' or '.join(PROGRAMS)}, not {program!r}")
        # The pidfd is opened before any other request can reach the launcher, which reaps its
        # exited children at each request: a child that ended at once keeps its pid until then.
        with self._lock:
            answer = self._ask({"argv": argv, "env": env, "cwd": str(cwd or os.getcwd()),
                                "log": str(log), "program": program})
            return Forked(self, int(answer["pid"]))

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

PROGRAMS = ("eventgate", "pytest")
# A plugin the launcher imported before pytest started cannot have its asserts rewritten, and
# pytest says so for each (an error under our filterwarnings). Only third-party plugins and the
# web stack's modules are imported early: eventgate's pytest plugin, whose asserts are the
# gates' failure messages, and every test module are imported, and rewritten, in the child.
QUIET_REWRITE = ["-W", "ignore::pytest.PytestAssertRewriteWarning"]

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
    """In the forked child: become `eventgate <argv>` (or pytest) as a new process would be;
    never returns."""
    code = 1
    pytest_child = request.get("program") == "pytest"
    try:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
            signal.signal(signum, signal.SIG_DFL)
        if pytest_child:
            # As in a new interpreter: Ctrl-C is KeyboardInterrupt, so pytest tears down.
            signal.signal(signal.SIGINT, signal.default_int_handler)
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
        # The environment's say on .pyc files, which pytest's rewritten test modules follow.
        sys.dont_write_bytecode = bool(request["env"].get("PYTHONDONTWRITEBYTECODE"))
        importlib.invalidate_caches()
        if pytest_child:
            import pytest

            sys.argv = ["pytest", *request["argv"]]
            code = int(pytest.main([*QUIET_REWRITE, *request["argv"]]))
            _end_as_an_interpreter_would()
        else:
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


def _end_as_an_interpreter_would() -> None:
    """What a new interpreter does after its main module, before the os._exit that ends a
    forked child: wait for the threads that are not daemons, then run the atexit handlers (a
    cluster's last-resort stop is one). Returning, not exiting, keeps the child out of the
    launcher's own cleanup, which would stop the other children."""
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()


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


def _warm_pytest() -> None:
    """What every child pytest imports before its first test, but eventgate's own plugin:
    pytest's own plugins, then the third-party ones it loads by entry point."""
    import importlib.metadata

    import _pytest.config

    for name in _pytest.config.default_plugins:
        with contextlib.suppress(ImportError):
            importlib.import_module(f"_pytest.{name}")
    for entry in importlib.metadata.entry_points(group="pytest11"):
        if entry.value.partition(".")[0] != "eventgate":
            # A plugin that fails to import fails the same way in the child, which says so.
            with contextlib.suppress(Exception):
                entry.load()


def _freeze() -> None:
    """Every object imported so far out of the collector's reach, in this process and in each
    child forked after: a child's full collections would otherwise walk the whole inherited
    heap (pytest, hypothesis and schemathesis in an engine too), and touching each object's
    header copies the page it shares with the launcher."""
    gc.collect()
    gc.freeze()


def serve_requests() -> None:
    # Everything an engine imports, once, before any fork (no thread is running yet).
    import uvicorn  # noqa: F401

    import eventgate.cli.main
    import eventgate.cli.serve
    import eventgate.engine.app  # noqa: F401

    _freeze()
    # Ctrl-C reaches the whole process group: the caller and each child handle their own, and
    # the caller closes this launcher when it is done with them (its stdin closes if it dies).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    warm_for_pytest = False
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
            if request.get("program") == "pytest" and not warm_for_pytest:
                warm_for_pytest = True
                # Only a head start: whatever fails here fails again, and says so, in the child.
                with contextlib.suppress(Exception):
                    _warm_pytest()
                _freeze()
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
