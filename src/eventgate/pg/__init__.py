"""PostgreSQL provisioning: an external server, an ephemeral local cluster, or a container."""

from eventgate.pg.provision import provision
from eventgate.pg.server import Server

__all__ = ["Server", "provision"]
