"""The server and its host: a PostgreSQL new enough, free disk for the copy the migration
makes, and memory for its index builds. Disk and memory are read from this host only when the
server provably runs on it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import errors as pg_errors

from eventgate.safety.preflight.check import Check, one
from eventgate.safety.preflight.state import MigrationState, cannot_read
from eventgate.units import human_bytes

MIN_SERVER_VERSION = 140000
# A backend's own memory (catalog caches, plan, buffers of its result) besides work_mem.
MEMORY_MARGIN = 64 * 1024**2


def check_server_version(conn: psycopg.Connection) -> Check:
    number = int(one(conn, "SELECT current_setting('server_version_num')::int"))
    version = str(one(conn, "SHOW server_version")).split()[0]
    figure = f"PostgreSQL {version} ({number}); need ≥ 14"
    if number < MIN_SERVER_VERSION:
        return Check("server version", "fail", figure,
                     "upgrade the server to PostgreSQL 14 or newer before migrating; the "
                     "migrations use features older servers lack")
    return Check("server version", "ok", figure)


@dataclass(frozen=True)
class ServerHost:
    local: bool
    reason: str  # why the server is, or is not known to be, on this host
    data_directory: Path | None = None


def postmaster_mismatch(pid_file: str, data_directory: str, start_epoch: float,
                        port: str) -> str | None:
    """Why postmaster.pid does not describe the server we are connected to, or None when it
    does: same data directory, same port and the same start time.

    The file holds whole seconds, written a moment before pg_postmaster_start_time() is taken,
    hence the two seconds of slack."""
    lines = pid_file.splitlines()
    if len(lines) < 4:
        return "postmaster.pid is incomplete"
    if lines[1].strip() != data_directory:
        return f"postmaster.pid names data directory {lines[1].strip()}"
    if lines[3].strip() != port:
        return f"postmaster.pid names port {lines[3].strip()}, the server uses {port}"
    try:
        started = float(lines[2])
    except ValueError:
        return f"postmaster.pid has no start time ({lines[2].strip()!r})"
    if abs(started - start_epoch) > 2:
        return "postmaster.pid belongs to a server started at another time"
    return None


def locate_server(conn: psycopg.Connection) -> ServerHost:
    """Whether the server runs on this host: its data_directory here holds a postmaster.pid
    describing this very server. Another host may well have a directory of the same name."""
    try:
        data_directory = str(one(conn, "SHOW data_directory"))
    except pg_errors.InsufficientPrivilege:
        return ServerHost(False, "cannot see data_directory (needs superuser or "
                          "pg_read_all_settings)")
    start_epoch, port = conn.execute(
        "SELECT extract(epoch FROM pg_postmaster_start_time())::float8, "
        "current_setting('port')").fetchone() or (0.0, "")
    pid_file = Path(data_directory) / "postmaster.pid"
    try:
        text = pid_file.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ServerHost(False, f"server not on this host (no {pid_file} here)")
    except OSError as exc:
        return ServerHost(False, f"cannot read {pid_file} ({exc.strerror}), so cannot tell "
                          "whether the server runs on this host")
    mismatch = postmaster_mismatch(text, data_directory, float(start_epoch), str(port))
    if mismatch:
        return ServerHost(False, f"server not on this host ({mismatch})")
    return ServerHost(True, f"server runs on this host, data in {data_directory}",
                      Path(data_directory))


def _new_tables_directory(conn: psycopg.Connection, host: ServerHost) -> Path:
    """Where the new schema's tables and the migrated rows go: the tablespace new tables get
    (default_tablespace, else the database's own), whose location is empty for pg_default."""
    assert host.data_directory is not None
    location = str(one(conn, """
        SELECT pg_tablespace_location(coalesce(
                   (SELECT oid FROM pg_tablespace
                     WHERE spcname = nullif(current_setting('default_tablespace'), '')),
                   d.dattablespace))
          FROM pg_database d WHERE d.datname = current_database()"""))
    return Path(location) if location else host.data_directory


def legacy_size(conn: psycopg.Connection, tables: tuple[str, ...]) -> int:
    """What the migration copies: the migrated tables with their indexes and toast."""
    return int(one(conn, "SELECT coalesce(sum(pg_total_relation_size(to_regclass(t))), 0)"
                         "::bigint FROM unnest(%s::text[]) t", (list(tables),)))


def check_disk(conn: psycopg.Connection, host: ServerHost, factor: float,
               state: MigrationState, locked: dict[str, str]) -> Check:
    tables = state.scope.migrated_tables
    why_not = cannot_read(state, locked, tables)
    if why_not:
        return Check("disk space", "skip", why_not)
    # The new tables receive a full copy (rows and rebuilt indexes) while the legacy tables
    # stay as *_backup, and the WAL of that copy needs room too until a checkpoint: hence a
    # factor over the legacy size rather than the size itself.
    legacy = legacy_size(conn, tables)
    need = factor * legacy
    estimate = (f"need ≥ {factor:g} x legacy tables' size (incl. indexes and toast) = "
                f"{factor:g} x {human_bytes(legacy)} = {human_bytes(need)}")
    if not host.local:
        return Check("disk space", "warn", f"{host.reason}; free disk unknown ({estimate})",
                     "check free space on the database server's data volume by hand")
    directory = _new_tables_directory(conn, host)
    stats = os.statvfs(directory)
    free = stats.f_bavail * stats.f_frsize
    figure = f"{estimate}; free {human_bytes(free)} on {directory}"
    if free < need:
        return Check("disk space", "fail", figure,
                     f"free {human_bytes(need - free)} more on the filesystem holding "
                     f"{directory} (or give the database a larger volume) before migrating; "
                     "--disk-factor changes the estimate")
    return Check("disk space", "ok", figure)


def mem_available(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    """MemAvailable in bytes, or None where the kernel does not say (not Linux)."""
    try:
        lines = meminfo.read_text(encoding="ascii").splitlines()
    except OSError:
        return None
    for line in lines:
        key, _, value = line.partition(":")
        if key == "MemAvailable":
            return int(value.split()[0]) * 1024
    return None


def check_memory(conn: psycopg.Connection, host: ServerHost) -> Check:
    row = conn.execute(
        "SELECT current_setting('shared_buffers'), current_setting('maintenance_work_mem'), "
        "current_setting('work_mem'), pg_size_bytes(current_setting('maintenance_work_mem')), "
        "pg_size_bytes(current_setting('work_mem')), "
        "current_setting('hash_mem_multiplier')::float8").fetchone()
    assert row is not None
    shared, maintenance, work, maintenance_b, work_b, hash_multiplier = row
    # The migration rebuilds the new tables' indexes one at a time, each within
    # maintenance_work_mem (shared with its parallel workers); an autovacuum worker on the
    # freshly loaded tables may take as much again (autovacuum_work_mem defaults to it). The
    # INSERT ... SELECT joins and the refusal checks sort and hash: a few nodes of work_mem
    # (times hash_mem_multiplier). shared_buffers is allocated at server start, so it is not
    # needed anew.
    need = 2 * int(maintenance_b) + 4 * int(work_b) * float(hash_multiplier) + MEMORY_MARGIN
    estimate = (f"need ≈ 2 x maintenance_work_mem + 4 x work_mem x hash_mem_multiplier "
                f"{float(hash_multiplier):g} + {human_bytes(MEMORY_MARGIN)} = "
                f"{human_bytes(need)}")
    settings = f"shared_buffers {shared}, maintenance_work_mem {maintenance}, work_mem {work}"
    if not host.local:
        return Check("memory", "warn", f"{host.reason}; MemAvailable unknown ({estimate}); "
                     f"{settings}", "check the server's free memory by hand")
    available = mem_available()
    if available is None:
        return Check("memory", "warn", f"MemAvailable unknown (no /proc/meminfo); {estimate}; "
                     f"{settings}", "check the server's free memory by hand")
    figure = f"{estimate}; MemAvailable {human_bytes(available)}; {settings}"
    if available < need:
        # A warning: short memory makes index builds spill to disk and run slower, it does
        # not make the migration fail.
        return Check("memory", "warn", figure,
                     "free memory on the server, or lower maintenance_work_mem for the "
                     "migration's role (ALTER ROLE ... SET maintenance_work_mem)")
    return Check("memory", "ok", figure)
