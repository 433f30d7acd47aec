"""The engine deployable as the guide deploys it. There is no Docker engine here, so what can be
checked is: the compose files parse and say what the guide's do (DATABASE_URL per colour, port
3000, built from this repository's Dockerfile), and the image's entry command, run from a wheel
built from this checkout with the image's environment, serves /health against a database given
only as DATABASE_URL."""

import os
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from eventgate import http_client
from eventgate.pg.databases import Database

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def _dockerfile() -> dict[str, str]:
    """The final stage's ENV and CMD, as docker would read them."""
    text = (DEPLOY / "Dockerfile").read_text()
    final = text.split("\nFROM ")[-1]
    env: dict[str, str] = {}
    cmd = ""
    for line in final.splitlines():
        if line.startswith("ENV "):
            env.update(dict(part.split("=", 1) for part in shlex.split(line[4:])))
        if line.startswith("CMD "):
            cmd = line[4:]
    return {**env, "CMD": cmd}


def test_the_compose_files_parse_and_build_the_engine_from_this_repository() -> None:
    blue_green = yaml.safe_load((DEPLOY / "docker-compose.blue-green.yml").read_text())
    rollback = yaml.safe_load((DEPLOY / "docker-compose.rollback.yml").read_text())
    for colour in ("blue", "green"):
        service = blue_green["services"][f"app-{colour}"]
        assert f"DATABASE_URL=${{{colour.upper()}_DATABASE_URL}}" in service["environment"]
        assert (DEPLOY / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
        assert any("port=3000" in label for label in service["labels"])
    assert set(blue_green["networks"]) == {"blue-network", "green-network"}
    app = rollback["services"]["app"]
    assert app["ports"] == ["3000:3000"] and "DATABASE_URL=${DATABASE_URL}" in app["environment"]
    image = _dockerfile()
    assert (image["HOST"], image["PORT"], image["CMD"]) == (
        "0.0.0.0", "3000", '["eventgate", "serve"]')


@pytest.mark.destructive
def test_the_images_entry_command_serves_from_an_installed_wheel(
        migrated_db: Database, tmp_path: Path) -> None:
    wheels, site = tmp_path / "wheels", tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels),
                    str(ROOT)], check=True, timeout=300)
    [wheel] = wheels.glob("eventgate-*.whl")
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(site), str(wheel)], check=True, timeout=300)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    image = _dockerfile()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVENTGATE_", "PG"))}
    # The image's environment, but on loopback and a free port: the CMD is what is under test.
    env.update(HOST="127.0.0.1", PORT=str(port), DATABASE_URL=migrated_db.dsn,
               PYTHONPATH=str(site))
    assert image["CMD"] == '["eventgate", "serve"]'
    # The console script `eventgate`, as the wheel installs it, from the wheel's files.
    engine = subprocess.Popen([sys.executable, "-c", "import sys, eventgate; "
                               "assert eventgate.__file__.startswith(sys.argv[1]); "
                               "from eventgate.cli import main; "
                               "sys.argv = ['eventgate', 'serve']; sys.exit(main())",
                               str(site)], env=env, cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline, answer = time.monotonic() + 60, None
        while time.monotonic() < deadline and engine.poll() is None:
            try:
                answer = http_client.get(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert answer is not None, (
            engine.communicate(timeout=10)[0] if engine.poll() is not None else "no answer")
        assert answer.status_code == 200, answer.text
    finally:
        engine.terminate()
        out = engine.communicate(timeout=20)[0]
    assert f"serving the engine on http://127.0.0.1:{port}" in " ".join(out.split())
