"""Backups a migration can fall back on: pg_dump in custom format, with per-table row counts and
checksums taken in the dump's own snapshot, proven by restoring them into a scratch database.

The row counts and checksums are what make a backup checkable: a restore (into a scratch
database here, into the real one in eventgate.safety.restore) must reproduce every one of them.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import re
import subprocess
import tempfile
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import psycopg
import psycopg.conninfo
from psycopg import sql

from eventgate import dsn as dsn_mod
from eventgate.errors import BackupError
from eventgate.migrate import ledger
from eventgate.pg import binaries
from eventgate.safety import catalog
from eventgate.safety.catalog import BackupRecord, TableSum, Verification

Progress = Callable[[str], None]

MAINTENANCE_DB = "postgres"
NAME_MAX = 63  # bytes in a database name (NAMEDATALEN - 1); longer names are cut by the server
STALE_PARTIAL_S = 24 * 3600.0
TAIL = 1200  # characters of a tool's stderr quoted in an error
FILE_STAMP = "%Y%m%dT%H%M%SZ"
DB_STAMP = "%Y%m%d_%H%M%S"  # lower case: the operator can type the name without quotes

# Checksums are over each row's text form, which depends on these settings. Pinned on every
# checksum session, so a backup's numbers compare with a restore's whatever the database or the
# role sets (a restored scratch database has none of the original's ALTER DATABASE ... SET).
CHECKSUM_SETTINGS = {
    "TimeZone": "UTC",
    "DateStyle": "ISO,MDY",
    "IntervalStyle": "postgres",
    "extra_float_digits": "1",
    "bytea_output": "hex",
    "lc_monetary": "C",
    "search_path": "pg_catalog",
}

# Every user table, the ledger included: a restore must bring back the migration history too.
TABLES = r"""
    SELECT schemaname, tablename FROM pg_catalog.pg_tables
     WHERE schemaname NOT IN ('pg_catalog', 'information_schema')
       AND schemaname NOT LIKE 'pg\_toast%' AND schemaname NOT LIKE 'pg\_temp\_%'
     ORDER BY 1, 2"""

# The same expression as eventgate.checks.snapshot.content_checksums, so the numbers compare.
TABLE_SUM = ("SELECT count(*), coalesce(sum(('x' || substr(md5(t::text), 1, 15))::bit(60)::bigint)"
             ", 0)::text FROM {}.{} t")


def no_progress(text: str) -> None:
    """The progress sink when nobody watches."""


def _now() -> datetime:
    return datetime.now(UTC)


def _major(version: str) -> int:
    return int(version.split(".")[0])


# -- sessions ---------------------------------------------------------------------------------


def connect(dsn: str, *, autocommit: bool = True, pinned: bool = False,
            what: str = "") -> psycopg.Connection:
    """A session for this module; `pinned` applies CHECKSUM_SETTINGS. A failure names the
    target without its password."""
    options: dict[str, Any] = {}
    if pinned:
        given = dsn_mod.parse(dsn).get("options", "")
        pins = " ".join(f"-c {k}={v}" for k, v in CHECKSUM_SETTINGS.items())
        options["options"] = f"{given} {pins}".strip()
    try:
        return psycopg.connect(dsn, autocommit=autocommit, connect_timeout=10,
                               application_name="eventgate backup", **options)
    except psycopg.OperationalError as exc:
        raise BackupError(
            f"could not connect to {dsn_mod.describe(dsn)}{what}: "
            f"{dsn_mod.redact(str(exc)).strip()}; check host, port, user, password and that "
            "the database exists"
        ) from exc


def table_sums(conn: psycopg.Connection,
               on_table: Callable[[str], None] | None = None) -> dict[str, TableSum]:
    """Per table: row count and an order-independent checksum of every row's text form.
    `conn` must be pinned (see `connect`); `on_table` hears of each table before it is read."""
    sums: dict[str, TableSum] = {}
    for schema, table in conn.execute(TABLES).fetchall():
        name = f"{schema}.{table}"
        if on_table is not None:
            on_table(name)
        row = conn.execute(sql.SQL(TABLE_SUM).format(sql.Identifier(schema),
                                                     sql.Identifier(table))).fetchone()
        assert row is not None
        sums[name] = TableSum(rows=int(row[0]), checksum=str(row[1]))
    return sums


def compare_tables(expected: dict[str, TableSum], found: dict[str, TableSum]) -> list[str]:
    """One line per table that differs between a backup's metadata and a restore of it."""
    problems = []
    for name in sorted(expected.keys() | found.keys()):
        want, got = expected.get(name), found.get(name)
        if got is None:
            problems.append(f"{name}: in the backup's metadata but missing from the restore")
        elif want is None:
            problems.append(f"{name}: restored but not in the backup's metadata")
        elif want.rows != got.rows:
            problems.append(f"{name}: {want.rows} rows in the backup's metadata, "
                            f"{got.rows} restored")
        elif want.checksum != got.checksum:
            problems.append(f"{name}: content checksum differs ({want.checksum} in the "
                            f"metadata, {got.checksum} restored) with the same {got.rows} rows")
    return problems


def _scalar(conn: psycopg.Connection, query: str, params: tuple[object, ...] = ()) -> Any:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def server_version(conn: psycopg.Connection) -> str:
    return str(_scalar(conn, "SHOW server_version")).split()[0]


def is_superuser(conn: psycopg.Connection) -> bool:
    return bool(_scalar(conn, "SHOW is_superuser") == "on")


def migration_version(conn: psycopg.Connection) -> int | None:
    """The newest applied migration, from the ledger; None before the first."""
    qualified = f"{ledger.SCHEMA}.{ledger.TABLE}"
    if not _scalar(conn, "SELECT to_regclass(%s) IS NOT NULL", (qualified,)):
        return None
    newest = _scalar(conn, f"SELECT max(version) FROM {qualified}")
    return None if newest is None else int(newest)


# -- client tools -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Tool:
    name: str
    path: Path
    version: str


def find_tool(name: str, for_server: str, bindir: str | Path | None = None) -> Tool:
    """The first pg_dump / pg_restore at least as new as the server: an older one cannot read a
    newer server's catalog (pg_dump refuses) or a newer archive (pg_restore refuses)."""
    wanted = _major(for_server)
    tried = []
    for how, path in binaries.client_tool_candidates(name, bindir):
        version = binaries.tool_version(path)
        if version is None:
            tried.append(f"{path} ({how}): missing, or does not run")
        elif _major(version) < wanted:
            tried.append(f"{path} ({how}): version {version}, older than the server")
        else:
            return Tool(name, path, version)
    where = "; ".join(tried) or (f"nothing found (server binaries, PATH, "
                                 f"{binaries.DEBIAN_ROOT}/*/bin)")
    raise BackupError(
        f"no usable {name} for PostgreSQL {for_server}: it must be of major version {wanted} or "
        f"newer; tried: {where}. Install the client tools of version {wanted} or newer "
        f"(Debian/Ubuntu: apt-get install postgresql-client-{wanted}) or pass --pg-bindir with "
        "the directory holding them"
    )


def tool_connection(dsn: str, dbname: str) -> tuple[str, dict[str, str], str | None]:
    """(conninfo without the password, environment with PGPASSWORD, the password): a password
    on a command line is visible to every local user in `ps`, the environment is not."""
    params = dict(dsn_mod.parse(dsn))
    password = params.pop("password", None) or None
    params["dbname"] = dbname
    env = dict(os.environ)
    if password:
        env["PGPASSWORD"] = password
    return psycopg.conninfo.make_conninfo(**params), env, password


def _tail(text: str, password: str | None) -> str:
    """The end of a tool's stderr, with no password in it whatever the tool printed."""
    if password:
        text = text.replace(password, "****")
    text = dsn_mod.redact(text).strip()
    return ("…" + text[-TAIL:]) if len(text) > TAIL else (text or "(no message)")


def run_pg_restore(tool: Tool, dump: Path, dsn: str, dbname: str, *, keep_owners: bool) -> None:
    """pg_restore `dump` into the existing, empty database `dbname`, stopping at the first
    error. Keeping owners needs a superuser (ALTER ... OWNER TO another role)."""
    conninfo, env, password = tool_connection(dsn, dbname)
    argv = [str(tool.path), "--exit-on-error", "--no-password", f"--dbname={conninfo}"]
    if not keep_owners:
        argv.append("--no-owner")
    argv.append(str(dump))
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              env=env, check=False)
    except OSError as exc:
        raise BackupError(
            f"could not run pg_restore {tool.version} ({tool.path}) on {dump.name}: {exc}; "
            "check that it is still installed and executable, or pass --pg-bindir with the "
            "directory of a working one") from exc
    if done.returncode != 0:
        raise BackupError(
            f"pg_restore {tool.version} of {dump.name} into database {dbname} failed (exit "
            f"{done.returncode}): {_tail(done.stderr, password)}"
        )


# -- databases --------------------------------------------------------------------------------


def free_database_name(conn: psycopg.Connection, base: str, suffix: str) -> str:
    """`<base><suffix>`, cut to fit a database name and numbered if taken."""
    for n in range(1, 100):
        extra = suffix if n == 1 else f"{suffix}_{n}"
        room = NAME_MAX - len(extra.encode())
        name = base.encode()[:room].decode(errors="ignore") + extra
        if not _scalar(conn, "SELECT count(*) FROM pg_database WHERE datname = %s", (name,)):
            return name
    raise BackupError(f"no free database name like {base}{suffix}: drop old ones")


def database_properties(conn: psycopg.Connection, name: str) -> dict[str, Any] | None:
    """The pg_database row of `name` (whatever columns this server version has), with owner,
    encoding and tablespace as names; None when there is no such database."""
    row = conn.execute(
        "SELECT to_jsonb(d) || jsonb_build_object('owner', pg_get_userbyid(d.datdba), "
        "'encoding_name', pg_encoding_to_char(d.encoding), 'tablespace', t.spcname, "
        "'comment', shobj_description(d.oid, 'pg_database')) "
        "FROM pg_database d JOIN pg_tablespace t ON t.oid = d.dattablespace "
        "WHERE d.datname = %s", (name,)).fetchone()
    return None if row is None else dict(row[0])


def create_database_like(conn: psycopg.Connection, name: str, like: str, *,
                         same_owner: bool) -> None:
    """CREATE DATABASE `name` from template0 with the encoding, locale and tablespace of
    `like` (and its owner when `same_owner`), so restored text sorts and converts the same."""
    props = database_properties(conn, like)
    parts = [sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name))]
    if props is not None:
        options: list[tuple[str, sql.Composable]] = []
        if same_owner:
            options.append(("OWNER", sql.Identifier(props["owner"])))
        options += [("ENCODING", sql.Literal(props["encoding_name"])),
                    ("LC_COLLATE", sql.Literal(props["datcollate"])),
                    ("LC_CTYPE", sql.Literal(props["datctype"])),
                    ("TABLESPACE", sql.Identifier(props["tablespace"]))]
        provider = props.get("datlocprovider")  # PostgreSQL 15 and newer
        icu_locale = props.get("daticulocale") or props.get("datlocale")
        if provider == "i":
            options += [("LOCALE_PROVIDER", sql.SQL("icu")),
                        ("ICU_LOCALE", sql.Literal(icu_locale))]
            if props.get("daticurules"):
                options.append(("ICU_RULES", sql.Literal(props["daticurules"])))
        elif provider == "b":
            options += [("LOCALE_PROVIDER", sql.SQL("builtin")),
                        ("BUILTIN_LOCALE", sql.Literal(props.get("datlocale")))]
        elif provider == "c":
            options.append(("LOCALE_PROVIDER", sql.SQL("libc")))
        parts += [sql.SQL("{} {}").format(sql.SQL(key), value) for key, value in options]
    conn.execute(sql.SQL(" ").join(parts))


def drop_database(conn: psycopg.Connection, name: str) -> None:
    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# -- files ------------------------------------------------------------------------------------


def file_digest(path: Path) -> tuple[int, str]:
    """(size in bytes, sha256 hex) of a file, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def file_problems(record: BackupRecord) -> list[str]:
    """Whether the dump on disk is the one the metadata describes (present, same sha256)."""
    path = record.dump_path
    if not path.is_file():
        return [f"{path} is missing (the metadata {record.meta_path} describes it)"]
    try:
        size, digest = file_digest(path)
    except OSError as exc:
        return [f"{path} cannot be read to check its sha256: {exc}; fix the file's "
                "permissions or the disk, or take a new backup"]
    if digest != record.sha256:
        return [f"sha256 mismatch: {path.name} has sha256 {digest} ({size} bytes), the metadata "
                f"says {record.sha256} ({record.size_bytes} bytes); the file changed or was "
                "damaged after the backup: do not restore it, take a new backup"]
    return []


def _fsync_dir(directory: Path) -> None:
    # A rename is durable only once its directory is; without this a crash can lose the name.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _prepare(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BackupError(f"cannot create the backup directory {directory}: {exc}; pass "
                          "--backup-dir with a writable directory") from exc


def _reserve(directory: Path, database: str, at: datetime) -> Path:
    """An exclusive `<db>-<stamp>.dump.partial`, so two backups in one second never collide."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", database)
    for n in range(100):
        stem = f"{safe}-{at.strftime(FILE_STAMP)}" + (f"-{n}" if n else "")
        dump = directory / f"{stem}{catalog.SUFFIX}"
        if dump.exists() or dump.with_suffix(catalog.META_SUFFIX).exists():
            continue
        partial = dump.with_name(dump.name + ".partial")
        try:
            os.close(os.open(partial, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            continue
        except OSError as exc:
            raise BackupError(f"cannot write in the backup directory {directory}: {exc}; "
                              "pass --backup-dir with a writable directory") from exc
        return partial
    raise BackupError(f"no free file name for a backup of {database} in {directory}")


# -- backup -----------------------------------------------------------------------------------


@contextlib.contextmanager
def _snapshot_session(dsn: str) -> Iterator[psycopg.Connection]:
    """A pinned, read-only REPEATABLE READ transaction: one snapshot for every query in it."""
    conn = connect(dsn, autocommit=False, pinned=True)
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    conn.read_only = True
    try:
        yield conn
    finally:
        conn.rollback()
        conn.close()


class _DumpFailed(Exception):
    """pg_dump stopped while the checksums were still being taken."""


def _run_dump(conn: psycopg.Connection, dsn: str, tool: Tool, database: str, partial: Path,
              report: Progress, errors: IO[bytes]) -> tuple[int, dict[str, TableSum], int | None]:
    """pg_dump on an exported snapshot while this session checksums the tables in the same
    snapshot: the counts describe exactly the rows in the dump, whatever commits meanwhile."""
    snapshot = str(_scalar(conn, "SELECT pg_export_snapshot()"))
    conninfo, env, _ = tool_connection(dsn, database)
    # Custom format is compressed by default and lets pg_restore pick and reorder objects.
    argv = [str(tool.path), "--format=custom", f"--snapshot={snapshot}", f"--file={partial}",
            "--no-password", f"--dbname={conninfo}"]
    report(f"pg_dump {tool.version} of {database} → {partial.name.removesuffix('.partial')}")
    dump = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=errors, env=env)
    try:
        def on_table(name: str) -> None:
            if dump.poll() not in (None, 0):
                raise _DumpFailed
            report(f"pg_dump running; counting and checksumming {name}")

        try:
            tables = table_sums(conn, on_table)
            version = migration_version(conn)
        except _DumpFailed:
            return dump.wait(), {}, None
        except psycopg.Error as exc:
            raise BackupError(
                f"reading the row counts and checksums of {database} failed: "
                f"{dsn_mod.redact(str(exc)).strip()}; the backup was abandoned (the role needs "
                "SELECT on every table, as pg_dump does)") from exc
        report("waiting for pg_dump to finish")
        return dump.wait(), tables, version
    finally:
        if dump.poll() is None:
            dump.kill()
            dump.wait()


def take_backup(dsn: str, directory: Path | str, *, verify: bool,
                maintenance_dsn: str | None = None, progress: Progress | None = None,
                bindir: str | Path | None = None) -> BackupRecord:
    """Dump the database of `dsn` into `directory` with its metadata beside it, and with
    `verify` prove it restores (see verify_backup; the result is in `record.verification`).

    A failed dump leaves nothing behind and raises BackupError."""
    report = progress or no_progress
    directory = Path(directory)
    _prepare(directory)
    started = _now()
    with _snapshot_session(dsn) as conn:
        database = str(_scalar(conn, "SELECT current_database()"))
        version = server_version(conn)
        tool = find_tool("pg_dump", version, bindir)
        partial = _reserve(directory, database, started)
        password = tool_connection(dsn, database)[2]
        dump = partial.with_name(partial.name.removesuffix(".partial"))
        step = f"running pg_dump {tool.version} ({tool.path})"
        try:
            with tempfile.TemporaryFile() as errors:
                code, tables, migrated = _run_dump(conn, dsn, tool, database, partial, report,
                                                   errors)
                errors.seek(0)
                stderr = errors.read().decode(errors="replace")
            if code != 0:
                raise BackupError(
                    f"pg_dump {tool.version} ({tool.path}) of {dsn_mod.describe(dsn)} failed "
                    f"(exit {code}): {_tail(stderr, password)}; "
                    f"nothing was kept in {directory}. A full disk shows as 'could not write', "
                    "a missing privilege as 'permission denied' (back up as the database owner "
                    "or a superuser)")
            step = f"reading the finished dump {partial.name} for its sha256"
            size, digest = file_digest(partial)
            step = f"renaming {partial.name} to {dump.name}"
            os.replace(partial, dump)
        except OSError as exc:
            raise BackupError(
                f"the backup of {dsn_mod.describe(dsn)} failed {step}: {exc}; nothing was kept "
                f"in {directory}. Check that the directory is on a healthy, writable disk with "
                "free space and that nothing else writes in it, then back up again") from exc
        finally:
            partial.unlink(missing_ok=True)
    _fsync_dir(directory)
    record = BackupRecord(database=database, created_at=started.isoformat(),
                          dump_file=dump.name, size_bytes=size, sha256=digest,
                          server_version=version, migration_version=migrated, tables=tables)
    meta = dump.with_suffix(catalog.META_SUFFIX)
    try:
        record.save(meta)
    except OSError as exc:
        dump.unlink(missing_ok=True)
        meta.with_name(meta.name + ".partial").unlink(missing_ok=True)
        raise BackupError(f"could not write the backup's metadata {meta}: {exc}; the dump was "
                          "removed with it (a dump nobody can check is no backup); free space "
                          "and try again") from exc
    if verify:
        verify_backup(record, maintenance_dsn or dsn_mod.with_dbname(dsn, MAINTENANCE_DB),
                      progress=progress, bindir=bindir)
    return record


# -- verification -----------------------------------------------------------------------------


def _restore_and_compare(record: BackupRecord, maintenance_dsn: str, report: Progress,
                         bindir: str | Path | None, scratch: list[str]) -> list[str]:
    with connect(maintenance_dsn, what=" (the maintenance database, to create a scratch "
                 "database)") as conn:
        tool = find_tool("pg_restore", server_version(conn), bindir)
        # Owners are kept when we may set them, as the real restore does; otherwise the
        # scratch copy is owned by us, which changes no row and so no checksum.
        keep_owners = is_superuser(conn)
        name = free_database_name(conn, record.database,
                                  f"_verify_{_now().strftime(DB_STAMP)}")
        report(f"creating scratch database {name}")
        try:
            create_database_like(conn, name, record.database, same_owner=False)
        except psycopg.Error as exc:
            raise BackupError(
                f"could not create the scratch database {name}: "
                f"{dsn_mod.redact(str(exc)).strip()}; verifying needs a role with CREATEDB"
            ) from exc
        scratch.append(name)
        try:
            report(f"pg_restore {tool.version} into {name}")
            run_pg_restore(tool, record.dump_path, maintenance_dsn, name, keep_owners=keep_owners)
            report(f"counting and checksumming the tables of {name}")
            with connect(dsn_mod.with_dbname(maintenance_dsn, name), pinned=True) as restored:
                found = table_sums(restored)
            return compare_tables(record.tables, found)
        finally:
            report(f"dropping scratch database {name}")
            drop_database(conn, name)


def verify_backup(record: BackupRecord, maintenance_dsn: str, *,
                  progress: Progress | None = None,
                  bindir: str | Path | None = None) -> Verification:
    """Prove a backup restores: its sha256 first, then pg_restore into a scratch database on
    the server of `maintenance_dsn`, every table's rows and checksum compared with the
    metadata, and the scratch database dropped whatever happens. The outcome is saved into the
    record's metadata file; only an ok one makes the backup eligible for a restore."""
    report = progress or no_progress
    report(f"checking the sha256 of {record.dump_file}")
    problems = file_problems(record)
    scratch: list[str] = []
    if not problems:
        try:
            problems = _restore_and_compare(record, maintenance_dsn, report, bindir, scratch)
        except (BackupError, psycopg.Error) as exc:
            problems = [dsn_mod.redact(str(exc)).strip()]
        except OSError as exc:
            problems = [f"verifying {record.dump_file} stopped: {exc}; check the disk and "
                        "the client tools (--pg-bindir), then take a new backup with --verify"]
    verification = Verification(at=_now().isoformat(), ok=not problems,
                                scratch_database=scratch[0] if scratch else "",
                                problems=problems)
    record.verification = verification
    if record.meta_path is not None:
        try:
            record.save(record.meta_path)
        except OSError as exc:
            # Unsaved, the file still says "not verified": say so rather than claim a success.
            outcome = ("the restore into a scratch database matched every table"
                       if verification.ok else "the verification failed")
            verification = Verification(
                at=verification.at, ok=False, scratch_database=verification.scratch_database,
                problems=[*problems, f"{outcome}, but the outcome could not be saved in "
                          f"{record.meta_path}: {exc}; that file still says not verified, so "
                          "restore --latest will not pick this backup. Free space or make "
                          "the directory writable, then take a new backup with --verify"])
            record.verification = verification
    return verification


# -- retention --------------------------------------------------------------------------------


@dataclass
class Pruned:
    """What prune removed, and why anything old was kept."""

    removed: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def prune(directory: Path | str, database: str, keep_days: float,
          now: datetime | None = None, protected: Collection[Path] = ()) -> Pruned:
    """Delete the backups (dump and metadata) of `database` older than `keep_days`, except
    the newest verified one, which is never deleted however old, and those whose metadata file
    is in `protected` (the backup just taken); also `.partial` leftovers of interrupted
    backups older than a day."""
    if not keep_days >= 0 or math.isinf(keep_days):  # NaN fails the first test
        raise BackupError(f"retention of {keep_days} days: pass a number of days, 0 or more")
    directory = Path(directory)
    now = now or _now()
    try:
        cutoff = now - timedelta(days=keep_days)
    except OverflowError:  # more days than a datetime spans: nothing is that old
        cutoff = datetime.min.replace(tzinfo=UTC)
    kept = {Path(path).resolve() for path in protected}
    result = Pruned()
    records, unreadable = catalog.scan(directory, database)
    keep = catalog.latest_verified(directory, database)
    if keep is None and records:
        result.notes.append(f"no verified backup of {database} in {directory}: old ones are "
                            "pruned by age alone")
    for record in records:
        if record.created >= cutoff:
            continue
        if keep is not None and record.meta_path == keep.meta_path:
            result.notes.append(
                f"kept {record.dump_file} although older than {keep_days:g} days: it is the "
                f"newest verified backup of {database}, which is never pruned")
            continue
        if record.meta_path is not None and record.meta_path.resolve() in kept:
            result.notes.append(f"kept {record.dump_file} although older than {keep_days:g} "
                                "days: it is the backup just taken")
            continue
        # Metadata first: a dump without it is never offered for a restore.
        for path in (record.meta_path, record.dump_path):
            if path is not None and path.exists():
                path.unlink()
                result.removed.append(path)
    result.notes += [f"left alone, unreadable: {line}" for line in unreadable]
    if directory.is_dir():
        for partial in sorted(directory.glob("*.partial")):
            with contextlib.suppress(FileNotFoundError):
                if now.timestamp() - partial.stat().st_mtime > STALE_PARTIAL_S:
                    partial.unlink()
                    result.removed.append(partial)
    return result
