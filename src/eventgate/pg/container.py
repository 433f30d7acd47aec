"""PostgreSQL in a container through testcontainers, used only when a Docker engine answers."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from eventgate.pg.server import Server, server_version

IMAGE = "postgres:16-alpine"


def docker_answers() -> tuple[bool, str]:
    """Whether a Docker engine answers a ping, and what happened if not."""
    try:
        import docker

        client = docker.from_env(timeout=3)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:  # any failure to reach the engine means this route is closed
        return False, f"{type(exc).__name__}: {str(exc)[:160]}"
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
