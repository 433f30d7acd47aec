"""PostgreSQL in a container through testcontainers, used only when a Docker engine answers."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator

from eventgate.pg.server import Server, server_version

IMAGE = "postgres:16-alpine"


def _engine_address() -> tuple[str, str]:
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if host.startswith("unix://"):
        return "unix", host.removeprefix("unix://")
    if host.startswith("tcp://"):
        return "tcp", host.removeprefix("tcp://")
    return "unsupported", host


def docker_answers(timeout_s: float = 2.0) -> tuple[bool, str]:
    """Whether a Docker engine answers GET /_ping, and what happened if not.

    Asked over a plain socket: the engine is usually absent, and the Docker SDK would cost an
    import and leave a socket behind just to find that out.
    """
    kind, address = _engine_address()
    if kind == "unsupported":
        return False, f"DOCKER_HOST {address} is neither unix:// nor tcp://"
    try:
        if kind == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            target: str | tuple[str, int] = address
        else:
            host, _, port = address.rpartition(":")
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            target = (host, int(port))
        with sock:
            sock.settimeout(timeout_s)
            sock.connect(target)
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            answer = sock.recv(1024)
    except (OSError, ValueError) as exc:
        return False, f"{kind} {address}: {exc}"
    if b" 200 " not in answer.split(b"\r\n", 1)[0]:
        return False, f"{kind} {address} answered {answer[:60]!r}"
    return True, "engine answered"


@contextlib.contextmanager
def container_server(image: str = IMAGE) -> Iterator[Server]:
    from testcontainers.postgres import PostgresContainer

    with PostgresContainer(image, driver=None) as pg:
        dsn = (
            f"host={pg.get_container_host_ip()} port={pg.get_exposed_port(5432)} "
            f"user={pg.username} password={pg.password} dbname=postgres"
        )
        yield Server(dsn=dsn, version=server_version(dsn), route=f"testcontainers ({image})",
                     owned=True)
