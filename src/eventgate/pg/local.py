"""An ephemeral PostgreSQL cluster in a temporary directory, gone without a trace on exit."""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg

from eventgate.errors import ProvisioningError
from eventgate.pg import initdb
from eventgate.pg.binaries import ServerBinaries
from eventgate.pg.server import Server

SUPERUSER = "postgres"
READY_TIMEOUT_S = 30.0
PREFIX = "eventgate-pg-"
OWNER_FILE = "owner.pid"
# Durability is worthless for a throwaway cluster and costs most of the seeding time. No TCP:
# the suite connects through the socket in the cluster's own 0700 directory, so no other local
# user can reach a superuser with trust authentication.
SERVER_SETTINGS = {
    "listen_addresses": "",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "100",
    "shared_buffers": "128MB",
    "maintenance_work_mem": "256MB",
    "log_min_messages": "warning",
    "logging_collector": "off",
}


DIR_ENV = "EVENTGATE_PG_DIR"
# Memory-backed: on this kind of virtual disk, creating, copying and deleting a cluster's files
# is most of a small gate's system time (measured: a small `eventgate gate` spends 23 s in the
# kernel with its cluster on ext4 and 8 s on tmpfs, 62 s against 44 s of wall time).
RAM_DIR = Path("/dev/shm")
# A small-scale session peaks far below this (templates and clones of ~10 MB each); below it
# the cluster stays on disk rather than compete for memory.
RAM_MIN_FREE = 2 * 1024**3


def cluster_parents() -> list[Path]:
    """Every directory a cluster's directory may be made in: where orphans are looked for."""
    parents = [Path(tempfile.gettempdir()), RAM_DIR]
    chosen = os.environ.get(DIR_ENV, "").strip()
    if chosen:
        parents.insert(0, Path(chosen))
    return list(dict.fromkeys(p for p in parents if p.is_dir()))


def _ram_dir_usable() -> bool:
    try:
        return (RAM_DIR.is_dir() and os.access(RAM_DIR, os.W_OK | os.X_OK)
                and shutil.disk_usage(RAM_DIR).free >= RAM_MIN_FREE)
    except OSError:
        return False


def cluster_parent(in_memory: bool) -> Path:
    """Where a new cluster's directory goes: EVENTGATE_PG_DIR when set; else, for a run whose
    data is small (in_memory), /dev/shm when it exists with room; else the temp directory."""
    chosen = os.environ.get(DIR_ENV, "").strip()
    if chosen:
        path = Path(chosen)
        if not path.is_dir() or not os.access(path, os.W_OK | os.X_OK):
            raise ProvisioningError(
                f"{DIR_ENV}={chosen} is not a directory this user may write: the embedded "
                "PostgreSQL's files go there; create it, or unset the variable for the default")
        return path
    if in_memory and _ram_dir_usable():
        return RAM_DIR
    return Path(tempfile.gettempdir())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _run_as() -> dict[str, Any]:
    """PostgreSQL refuses to run as root, so as root we drop to an unprivileged OS user."""
    if os.geteuid() != 0:
        return {}
    wanted = os.environ.get("EVENTGATE_PG_OS_USER", "postgres")
    for name in (wanted, "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
    raise ProvisioningError(
        f"running as root, and neither the OS user {wanted!r} nor 'nobody' exists to run "
        "PostgreSQL (it refuses root); create one with `useradd --system postgres` "
        "or set EVENTGATE_PG_OS_USER"
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_orphans() -> list[Path]:
    """Stop and delete clusters whose owning process died without cleaning up (SIGKILL, an
    out-of-memory kill): the next run tidies what the last one could not."""
    removed = []
    for root in (r for parent in cluster_parents() for r in parent.glob(f"{PREFIX}*")):
        try:
            owner = int((root / OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue
        if _alive(owner):
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            postmaster = int((root / "data" / "postmaster.pid").read_text().split()[0])
            os.kill(postmaster, signal.SIGQUIT)
        shutil.rmtree(root, ignore_errors=True)
        removed.append(root)
    return removed


class LocalCluster:
    """initdb + postgres in a fresh directory; `stop()` removes the process and the directory.

    With tcp=True it also listens on 127.0.0.1, with a random scram password (self.password)
    instead of trust, for tools that cannot use a socket. in_memory=True (a run whose data is
    small) puts the directory in memory when there is room (cluster_parent)."""

    def __init__(self, binaries: ServerBinaries, *, tcp: bool = False,
                 in_memory: bool = False) -> None:
        self.binaries = binaries
        self._identity = _run_as()
        remove_orphans()
        self.root = Path(tempfile.mkdtemp(prefix=PREFIX, dir=cluster_parent(in_memory)))
        (self.root / OWNER_FILE).write_text(str(os.getpid()))
        self.datadir = self.root / "data"
        self.port = 0
        self.tcp = tcp
        self.password = secrets.token_urlsafe(24) if tcp else None
        self._process: subprocess.Popen[bytes] | None = None
        atexit.register(self.stop)

    @property
    def logfile(self) -> Path:
        return self.root / "postgres.log"

    def _subprocess_kwargs(self) -> dict[str, Any]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C.UTF-8"
        return {"cwd": self.root, "env": env, **self._identity}

    def start(self) -> Server:
        if self._identity:
            os.chown(self.root, self._identity["user"], self._identity["group"])
        self._initdb()
        last_error = ""
        for _ in range(3):  # another process may take the free port between probe and bind
            self.port = _free_port()
            try:
                self._launch()
                break
            except ProvisioningError as exc:
                last_error = str(exc)
                if "could not bind" not in last_error and "in use" not in last_error:
                    raise
        else:
            raise ProvisioningError(last_error)
        return Server(
            dsn=self._socket_dsn(),
            version=self.binaries.version,
            route=f"ephemeral local cluster ({self.binaries.bindir}, found via "
            f"{self.binaries.found_via}) in {self.root.parent}"
            + (" (memory)" if self.root.parent == RAM_DIR else ""),
            owned=True,
        )

    def _socket_dsn(self) -> str:
        return f"host={self.root} port={self.port} user={SUPERUSER} dbname=postgres"

    def _initdb(self) -> None:
        auth = ["--auth-local=trust"]
        if self.password:
            pwfile = self.root / "pwfile"
            pwfile.write_text(self.password)
            if self._identity:
                os.chown(pwfile, self._identity["user"], self._identity["group"])
            auth += ["--auth-host=scram-sha-256", f"--pwfile={pwfile}"]
        command = [self.binaries.tool("initdb"), "-U", SUPERUSER, *auth, "--encoding=UTF8",
                   "--locale=C.UTF-8", "--no-sync"]
        done = initdb.make_datadir(command, self.datadir, self._subprocess_kwargs(),
                                   reuse=self.password is None)
        (self.root / "pwfile").unlink(missing_ok=True)
        if done.returncode != 0:
            raise ProvisioningError(
                f"initdb failed in {self.datadir} (exit {done.returncode}): "
                f"{done.stderr.strip()[-800:]}"
            )

    def _launch(self) -> None:
        args = [self.binaries.tool("postgres"), "-D", str(self.datadir), "-p", str(self.port),
                "-k", str(self.root)]
        settings = {**SERVER_SETTINGS, "listen_addresses": "127.0.0.1" if self.tcp else ""}
        for key, value in settings.items():
            args += ["-c", f"{key}={value}"]
        # A fresh log per attempt, so a retry decision reads only this attempt's failure.
        with open(self.logfile, "wb") as log:
            # A session of its own, so a Ctrl-C meant for pytest does not reach the server
            # before our teardown does.
            self._process = subprocess.Popen(
                args, stdout=log, stderr=log, start_new_session=True,
                **self._subprocess_kwargs(),
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + READY_TIMEOUT_S
        dsn = self._socket_dsn()  # our own socket: never another server that took the port
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._process = None
                raise ProvisioningError(
                    f"postgres exited during start-up; its log ({self.logfile}) ends with: "
                    f"{self._log_tail()}"
                )
            try:
                psycopg.connect(dsn, connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                time.sleep(0.02)
        self._kill(self._process)
        self._process = None
        raise ProvisioningError(
            f"postgres did not accept connections on port {self.port} within "
            f"{READY_TIMEOUT_S:.0f} s; log: {self._log_tail()}"
        )

    def _log_tail(self) -> str:
        try:
            return self.logfile.read_text(errors="replace").strip()[-800:]
        except OSError:
            return "(no log)"

    def halt(self) -> None:
        """Stop the server but keep its data, as an outage would; resume() brings it back on
        the same port."""
        process, self._process = self._process, None
        if process is not None:
            self._kill(process)

    def resume(self) -> None:
        self._launch()

    def stop(self) -> None:
        """Stop the server (fast shutdown, then SIGKILL) and delete the directory. Idempotent."""
        process, self._process = self._process, None
        if process is not None:
            self._kill(process)
        shutil.rmtree(self.root, ignore_errors=True)
        atexit.unregister(self.stop)

    @staticmethod
    def _kill(process: subprocess.Popen[bytes]) -> None:
        if process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@contextlib.contextmanager
def local_cluster(binaries: ServerBinaries, in_memory: bool = False) -> Iterator[Server]:
    cluster = LocalCluster(binaries, in_memory=in_memory)
    try:
        yield cluster.start()
    finally:
        cluster.stop()
