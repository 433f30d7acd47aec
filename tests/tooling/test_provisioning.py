"""Provisioning: the ephemeral cluster starts and vanishes; every failure says what was tried."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from eventgate import dsn as dsn_mod
from eventgate.errors import ConfigError, ProvisioningError
from eventgate.pg import binaries, initdb, provision
from eventgate.pg.binaries import locate
from eventgate.pg.local import DIR_ENV, RAM_DIR, LocalCluster, cluster_parents
from eventgate.pg.provision import choose_route


def _postgres_pids_for(root: Path) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if str(root) in cmdline:
                pids.append(int(proc.name))
    return pids


def test_local_cluster_runs_unprivileged_and_leaves_no_process_and_no_directory() -> None:
    found, _ = locate(None)
    assert found is not None
    cluster = LocalCluster(found)
    server = cluster.start()
    with __import__("psycopg").connect(server.dsn) as conn:
        assert conn.execute("SHOW fsync").fetchone() == ("off",)
        assert conn.execute("SHOW listen_addresses").fetchone() == ("",)
    postmaster = int((cluster.datadir / "postmaster.pid").read_text().split()[0])
    if os.geteuid() == 0:
        assert os.stat(f"/proc/{postmaster}").st_uid != 0
    assert _postgres_pids_for(cluster.root)
    cluster.stop()
    assert not cluster.root.exists()
    assert _postgres_pids_for(cluster.root) == []


def _system_identifier(cluster: LocalCluster) -> int:
    server = cluster.start()
    try:
        with __import__("psycopg").connect(server.dsn) as conn:
            row = conn.execute("SELECT system_identifier FROM pg_control_system()").fetchone()
            conn.execute("CREATE TABLE written_here (n int)")  # a copy is a cluster of its own
            return int(row[0])
    finally:
        cluster.stop()


@pytest.fixture
def initdb_cache(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    # Under the temp directory itself: the server's OS user must reach it, as it would the
    # default one (pytest's tmp_path is this user's alone).
    root = Path(tempfile.mkdtemp(prefix="eventgate-test-initdb-")) / "cache"
    os.chmod(root.parent, 0o755)
    monkeypatch.setenv(initdb.CACHE_ENV, str(root))
    yield root
    shutil.rmtree(root.parent, ignore_errors=True)


def test_a_cluster_after_the_first_is_a_copy_of_its_initdb_and_one_with_a_password_is_not(
        initdb_cache: Path) -> None:
    found, _ = locate(None)
    assert found is not None
    first = _system_identifier(LocalCluster(found, in_memory=True))
    assert len(list(initdb_cache.iterdir())) == 1
    # The same catalog bytes (its system identifier), and nothing the first one wrote.
    assert _system_identifier(LocalCluster(found, in_memory=True)) == first
    assert _system_identifier(LocalCluster(found, tcp=True, in_memory=True)) != first
    assert len(list(initdb_cache.iterdir())) == 1


def test_a_fill_left_behind_by_a_killed_run_is_removed(initdb_cache: Path) -> None:
    found, _ = locate(None)
    assert found is not None
    initdb_cache.mkdir(mode=0o755)
    left, running = initdb_cache / ".filling-killed", initdb_cache / ".filling-running"
    left.mkdir()
    running.mkdir()
    os.utime(left, (time.time() - 2 * initdb.STALE_FILL_S,) * 2)
    _system_identifier(LocalCluster(found, in_memory=True))
    assert not left.exists() and running.exists()


def test_a_cache_another_user_could_write_to_is_not_copied_from(initdb_cache: Path) -> None:
    found, _ = locate(None)
    assert found is not None
    initdb_cache.mkdir(mode=0o777)
    os.chmod(initdb_cache, 0o777)  # past the umask
    first = _system_identifier(LocalCluster(found, in_memory=True))
    assert _system_identifier(LocalCluster(found, in_memory=True)) != first
    assert list(initdb_cache.iterdir()) == []


def test_a_small_run_keeps_its_cluster_in_memory_and_a_big_one_on_disk(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DIR_ENV, raising=False)
    found, _ = locate(None)
    assert found is not None
    if not RAM_DIR.is_dir():
        pytest.skip(f"this machine has no {RAM_DIR}")
    small, big = LocalCluster(found, in_memory=True), LocalCluster(found)
    try:
        server = small.start()
        assert small.root.parent == RAM_DIR and server.route.endswith(f"in {RAM_DIR} (memory)")
        with __import__("psycopg").connect(server.dsn, autocommit=True) as conn:
            conn.execute("CREATE DATABASE made_in_memory")
        assert big.root.parent == Path(tempfile.gettempdir())
        assert "(memory)" not in big.start().route
    finally:
        small.stop()
        big.stop()
    assert not small.root.exists() and not big.root.exists()


def test_a_cluster_directory_that_cannot_be_used_is_named(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    found, _ = locate(None)
    assert found is not None
    monkeypatch.setenv(DIR_ENV, str(tmp_path / "missing"))
    with pytest.raises(ProvisioningError, match=rf"{DIR_ENV}=.*missing is not a directory "
                       "this user may write"):
        LocalCluster(found, in_memory=True)
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_during_a_run_still_removes_the_cluster(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_interrupted="""
        import os, signal

        def test_interrupted(pg_server, databases):
            print("CLUSTER", databases.server.dsn, flush=True)
            # Python's own Ctrl-C handler, as at a terminal: a run started in the background
            # by a non-interactive shell inherits SIGINT ignored.
            signal.signal(signal.SIGINT, signal.default_int_handler)
            os.kill(os.getpid(), signal.SIGINT)
    """)
    result = pytester.runpytest_subprocess("-s", "-p", "no:cacheprovider")
    port = next(line.split("port=")[1].split()[0] for line in result.outlines
                if "CLUSTER host=" in line)
    assert "KeyboardInterrupt" in result.stdout.str()
    leftovers = [p for parent in cluster_parents() for p in parent.glob("eventgate-pg-*")
                 if (p / "data" / "postmaster.pid").exists()
                 and f"\n{port}\n" in (p / "data" / "postmaster.pid").read_text()]
    assert leftovers == []
    running = subprocess.run(["pgrep", "-f", f"postgres.*-p {port} "], capture_output=True)
    assert running.stdout == b""


def test_no_server_anywhere_lists_every_route_tried(monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(binaries, "DEBIAN_ROOT", tmp_path / "no-debian")
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    with pytest.raises(ProvisioningError) as raised:
        choose_route(None)
    message = str(raised.value)
    for expected in ("no --dsn or EVENTGATE_DSN given", "PATH: nothing found",
                     "pg_config --bindir: nothing found", "Debian per-version directory",
                     "testcontainers: no Docker engine answered", "apt-get install postgresql",
                     "--pg-bindir"):
        assert expected in message


def test_a_wrong_pg_bindir_is_reported_not_skipped(tmp_path: Path) -> None:
    with pytest.raises(ProvisioningError, match="does not hold initdb and postgres"):
        choose_route(None, str(tmp_path))


def test_a_malformed_dsn_is_named_without_its_password() -> None:
    with pytest.raises(ConfigError) as raised:
        choose_route("host=db.example password=s3cr3t port")
    assert "malformed" in str(raised.value) and "s3cr3t" not in str(raised.value)


def test_an_unreachable_dsn_says_where_without_the_password() -> None:
    with pytest.raises(ProvisioningError) as raised, provision(
            "postgresql://app:s3cr3t@127.0.0.1:1/weddings"):
        pass
    message = str(raised.value)
    assert "could not connect to app@127.0.0.1:1/weddings" in message
    assert "s3cr3t" not in message


@pytest.mark.parametrize(("dsn", "password"), [
    ("postgresql://app:s3cr3t@db:5432/weddings", "s3cr3t"),
    ("postgresql://app:p@ss@db/weddings", "p@ss"),
    ("host=db password=s3cr3t dbname=weddings", "s3cr3t"),
    ("host=db password='s3 cr3t' dbname=weddings", "s3 cr3t"),
], ids=["url", "url-password-with-at", "keywords", "quoted-keyword"])
def test_redact_hides_every_password_form(dsn: str, password: str) -> None:
    redacted = dsn_mod.redact(dsn)
    assert password not in redacted
    assert "****" in redacted and "db" in redacted and "weddings" in redacted


def test_the_cli_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    script = textwrap.dedent("""
        import sys
        from eventgate.cli.main import main
        sys.exit(main(["cluster", "--weddings", "5", "--guests-per-wedding", "2"]))
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "export EVENTGATE_DSN" in line:
                break
        dsn = lines[-1].split("'")[1]
        with __import__("psycopg").connect(dsn) as conn:
            assert conn.execute("SELECT count(*) FROM wedding_events").fetchone() == (5,)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=30)
        proc.stdout.close()
    port = dsn.split("port=")[1].split()[0]
    assert subprocess.run(["pgrep", "-f", f"postgres.*-p {port} "],
                          capture_output=True).stdout == b""


def _cluster_dirs_of(pid: int) -> list[Path]:
    return [p for parent in cluster_parents() for p in parent.glob("eventgate-pg-*")
            if (p / "owner.pid").exists() and (p / "owner.pid").read_text() == str(pid)]


def test_sigterm_while_seeding_still_removes_the_cluster() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "eventgate.cli", "cluster", "--weddings", "30000",
         "--guests-per-wedding", "20"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("seeding"):
                break
        roots = _cluster_dirs_of(proc.pid)
        assert roots, "the cluster directory should exist while seeding"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
        if proc.stdout:
            proc.stdout.close()
    assert not roots[0].exists()
    assert _postgres_pids_for(roots[0]) == []


def test_sigterm_to_pytest_still_removes_the_cluster(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_terminated="""
        import os, signal

        def test_terminated(pg_server):
            print("CLUSTER", pg_server.dsn, flush=True)
            os.kill(os.getpid(), signal.SIGTERM)
    """)
    result = pytester.runpytest_subprocess("-s", "-p", "no:cacheprovider")
    root = next(line.split("host=")[1].split()[0] for line in result.outlines
                if "CLUSTER host=" in line)
    assert "KeyboardInterrupt" in result.stdout.str()
    assert not Path(root).exists()
    assert _postgres_pids_for(Path(root)) == []


def test_a_cluster_whose_owner_was_killed_is_removed_by_the_next_run() -> None:
    script = textwrap.dedent("""
        import time
        from eventgate.pg.binaries import locate
        from eventgate.pg.local import DIR_ENV, RAM_DIR, LocalCluster, cluster_parents
        cluster = LocalCluster(locate(None)[0], in_memory=True)
        cluster.start()
        print(cluster.root, flush=True)
        time.sleep(600)
    """)
    owner = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert owner.stdout is not None
    root = Path(owner.stdout.readline().strip())
    owner.kill()  # SIGKILL: no handler, no finally, no atexit
    owner.wait()
    owner.stdout.close()
    assert root.exists() and _postgres_pids_for(root)
    from eventgate.pg.local import remove_orphans

    assert root in remove_orphans()
    deadline = time.monotonic() + 10
    while _postgres_pids_for(root) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not root.exists() and _postgres_pids_for(root) == []
