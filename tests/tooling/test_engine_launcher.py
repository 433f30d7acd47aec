"""The engine launcher (eventgate.engine.launcher): engines forked from one process that has
imported the web stack are separate engines over real HTTP, each with its own settings, a
start-up failure reads as it does for a new interpreter, and closing the launcher stops every
engine it forked."""

import contextlib
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import httpx
import pytest

from eventgate import http_client
from eventgate.engine import launcher, store
from eventgate.engine.identity import TokenKeys
from eventgate.engine.process import engine_process
from eventgate.errors import EventgateError
from eventgate.pg.databases import Database

pytestmark = pytest.mark.skipif(not launcher.available(), reason="needs os.pidfd_open (Linux)")


def test_engines_forked_by_one_launcher_each_serve_their_own_settings(
        engine_database: Database, tmp_path: Path) -> None:
    warm = launcher.Launcher(tmp_path / "launcher.log")
    keys = [TokenKeys.generate(), TokenKeys.generate()]
    try:
        with contextlib.ExitStack() as stack:
            engines = [stack.enter_context(engine_process(
                engine_database.dsn, workdir=tmp_path, token_keys=k, launcher=warm,
                admin_token=f"admin-{n}")) for n, k in enumerate(keys)]
            with engine_database.connect(read_only=True) as conn:
                tenant = store.busiest_tenant(conn)
            assert tenant is not None
            for n, engine in enumerate(engines):
                assert http_client.get(f"{engine.url}/health").status_code == 200
                own = http_client.get(f"{engine.url}/api/events", headers=engine.as_tenant(tenant))
                other = http_client.get(f"{engine.url}/api/events",
                                        headers=engines[1 - n].as_tenant(tenant))
                assert own.status_code == 200, own.text
                assert other.status_code == 401, other.text
                wrong_admin = http_client.post(f"{engine.url}/api/plugins/reload",
                                               headers={"Authorization": f"Bearer admin-{1 - n}"})
                assert wrong_admin.status_code in (401, 403), wrong_admin.text
                assert engine.log is not None
                assert "serving the engine on" in engine.log.read_text()
    finally:
        warm.close()


def test_an_engine_that_cannot_start_is_reported_with_its_exit_code_and_log(
        engine_database: Database, tmp_path: Path) -> None:
    warm = launcher.Launcher(tmp_path / "launcher.log")
    try:
        for given in (warm, None):  # forked, then a new interpreter: the same report
            with pytest.raises(EventgateError) as failed, engine_process(
                    engine_database.dsn, workdir=tmp_path, launcher=given,
                    app_factory="no_such_engine_module:create"):
                pass
            assert "exited with code 1 during start-up" in str(failed.value)
            assert "no_such_engine_module" in str(failed.value)
    finally:
        warm.close()


def test_closing_the_launcher_stops_the_engines_it_forked(engine_database: Database,
                                                          tmp_path: Path) -> None:
    warm = launcher.Launcher(tmp_path / "launcher.log")
    with engine_process(engine_database.dsn, workdir=tmp_path, launcher=warm) as engine:
        assert http_client.get(f"{engine.url}/health").status_code == 200
        warm.close()
        assert _stops_answering(engine.url), f"{engine.url} still answers after its launcher closed"


def _stops_answering(url: str, within_s: float = 15) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            http_client.get(f"{url}/health", timeout=1)
        except httpx.TransportError:
            return True
        time.sleep(0.05)
    return False


def test_an_engine_stops_when_its_launcher_is_killed_outright(engine_database: Database,
                                                              tmp_path: Path) -> None:
    # SIGKILL runs no finally: the engine hears of it from the kernel (PR_SET_PDEATHSIG), and
    # leaving engine_process still reads the engine's end without the launcher.
    warm = launcher.Launcher(tmp_path / "launcher.log")
    try:
        with engine_process(engine_database.dsn, workdir=tmp_path, launcher=warm) as engine:
            assert http_client.get(f"{engine.url}/health").status_code == 200
            assert warm.pid is not None
            os.kill(warm.pid, signal.SIGKILL)
            assert _stops_answering(engine.url), f"{engine.url} still answers"
    finally:
        warm.close()


# Child gates: `python -m pytest` forked from the launcher once it has imported pytest.

SUITE = {
    "pytest.ini": "[pytest]\nfilterwarnings = error\n",
    # A handler a new interpreter runs at its end (a cluster's last-resort stop is one).
    "conftest.py": "import atexit, os, pathlib\n"
                   "atexit.register(pathlib.Path(os.environ['AT_EXIT']).touch)\n",
    "test_child.py": '''import os
from pathlib import Path

from eventgate.checks.result import CheckResult
from eventgate.pytest_plugin import proof


def test_sees_its_own_environment_and_directory():
    assert os.environ["CHILD_MARK"] == "forked-or-not"
    assert Path.cwd().name == "suite"


def test_a_plain_assert_is_rewritten():
    value = 1
    assert value == 2


def test_a_gate_fails_with_the_plugins_message():
    proof.hold(CheckResult("a gate", "a table", False, "the row with id=7 differs"))
''',
}


def _suite(tmp_path: Path) -> Path:
    suite = tmp_path / "suite"
    suite.mkdir()
    for name, text in SUITE.items():
        (suite / name).write_text(text)
    return suite


def _failures(junit: Path) -> dict[str, str]:
    return {case.get("name", ""): (failure.get("message") or "") + (failure.text or "")
            for case in ET.parse(junit).iter("testcase")
            for failure in case.iter("failure")}


def test_a_forked_child_pytest_reports_as_a_new_interpreter_does(tmp_path: Path) -> None:
    suite = _suite(tmp_path)
    env = {**os.environ, "CHILD_MARK": "forked-or-not", "AT_EXIT": str(tmp_path / "new.ended")}
    new = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          f"--junitxml={tmp_path / 'new.xml'}"], cwd=suite, env=env,
                         capture_output=True, check=False)
    warm = launcher.Launcher(tmp_path / "launcher.log")
    try:
        forked = warm.start(["-q", "-p", "no:cacheprovider",
                             f"--junitxml={tmp_path / 'forked.xml'}"],
                            {**env, "AT_EXIT": str(tmp_path / "forked.ended")},
                            tmp_path / "forked.log", cwd=suite, program="pytest")
        code = forked.wait(timeout=120)
    finally:
        warm.close()
    log = (tmp_path / "forked.log").read_text()
    assert (code, new.returncode) == (1, 1), log + new.stdout.decode()
    # The same two failures, with pytest's introspection of the test's own assert and of the
    # plugin's (proof.hold): both were imported, and rewritten, in the child.
    assert _failures(tmp_path / "forked.xml") == _failures(tmp_path / "new.xml"), log
    failures = _failures(tmp_path / "forked.xml")
    assert set(failures) == {"test_a_plain_assert_is_rewritten",
                             "test_a_gate_fails_with_the_plugins_message"}
    assert "assert 1 == 2" in failures["test_a_plain_assert_is_rewritten"]
    assert "id=7 differs" in failures["test_a_gate_fails_with_the_plugins_message"]
    assert "PytestAssertRewriteWarning" not in log
    assert (tmp_path / "new.ended").exists() and (tmp_path / "forked.ended").exists()


def test_ctrl_c_interrupts_a_forked_child_pytest_as_it_would_a_new_one(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "test_slow.py").write_text(
        "import pathlib, time\n\ndef test_waits():\n"
        "    pathlib.Path('started').touch()\n    time.sleep(60)\n")
    warm = launcher.Launcher(tmp_path / "launcher.log")
    try:
        child = warm.start(["-q", "-p", "no:cacheprovider"], dict(os.environ),
                           tmp_path / "forked.log", cwd=suite, program="pytest")
        deadline = time.monotonic() + 60
        while not (suite / "started").exists():
            assert time.monotonic() < deadline, (tmp_path / "forked.log").read_text()
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGINT)
        # KeyboardInterrupt, so pytest ends its session (and its fixtures) and says so.
        assert child.wait(timeout=60) == pytest.ExitCode.INTERRUPTED
    finally:
        warm.close()
    assert "KeyboardInterrupt" in (tmp_path / "forked.log").read_text()
