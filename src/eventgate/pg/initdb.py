"""A new cluster's data directory: a copy of the one initdb made earlier with the same binary and
options, or initdb itself the first time.

initdb writes the same ~1,000 files for the same options every time, and spends 0.85 s of CPU
on it (0.9 s wall), most of it in the kernel; a copy of its output takes 0.1-0.25 s. A test run
starts some 25 clusters (each gate its own), the selftest one per variant.

The copies come from a directory only this user may write (EVENTGATE_INITDB_CACHE, default
<tmp>/eventgate-initdb-cache): a data directory planted by another user could hold settings
that run commands as the server. When it is not ours, or a copy fails, initdb runs as before.
Only clusters without a password are copied: initdb writes the password into the catalog, and
each cluster's is its own."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CACHE_ENV = "EVENTGATE_INITDB_CACHE"
# An initdb takes about a second; a scratch directory this old belongs to no running fill.
STALE_FILL_S = 600.0


@dataclass(frozen=True)
class Made:
    """The data directory's making, as initdb reports it: its exit code and its stderr."""

    returncode: int
    stderr: str


def cache_root() -> Path:
    chosen = os.environ.get(CACHE_ENV, "").strip()
    return Path(chosen) if chosen else Path(tempfile.gettempdir()) / "eventgate-initdb-cache"


def _ours(path: Path, server_user: int | None = None) -> bool:
    """A directory this user (or the server's OS user) owns, and no one else may write into."""
    try:
        info = path.lstat()
    except OSError:
        return False
    return (stat.S_ISDIR(info.st_mode) and info.st_uid in (os.geteuid(), server_user)
            and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH))


def _usable_root() -> Path | None:
    root = cache_root()
    with contextlib.suppress(OSError):
        # Readable by the server's OS user, who copies from it; written only by us.
        root.mkdir(mode=0o755, parents=True, exist_ok=True)
    if not _ours(root):
        return None
    # A fill whose process was killed leaves its scratch directory (39 MB) behind.
    for left in root.glob(".filling-*"):
        with contextlib.suppress(OSError):
            if time.time() - left.stat().st_mtime > STALE_FILL_S:
                shutil.rmtree(left, ignore_errors=True)
    return root


def _key(command: list[str], run: dict[str, Any]) -> str:
    """The options, the binary (path, size and change time: an upgrade in place is another
    binary) and the OS user the files belong to."""
    info = os.stat(command[0])
    facts = [command, info.st_size, info.st_mtime_ns, info.st_ctime_ns, run.get("user"),
             run.get("env", {}).get("LC_ALL")]
    return hashlib.sha256(json.dumps(facts).encode()).hexdigest()[:24]


def _initdb(command: list[str], datadir: Path, run: dict[str, Any]) -> Made:
    done = subprocess.run([*command, "-D", str(datadir)], capture_output=True, text=True,
                          check=False, **run)
    return Made(done.returncode, done.stderr)


def _fill(root: Path, entry: Path, command: list[str], run: dict[str, Any]) -> Made:
    """initdb into a new directory of the cache, then moved into place in one rename, so a
    reader sees a whole entry or none; when two fill it at once, the second's is dropped."""
    scratch = Path(tempfile.mkdtemp(prefix=".filling-", dir=root))
    try:
        os.chmod(scratch, 0o755)
        if "user" in run:
            os.chown(scratch, run["user"], run["group"])
        made = _initdb(command, scratch / "data", run)
        if made.returncode == 0:
            with contextlib.suppress(OSError):
                scratch.rename(entry)
        return made
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def make_datadir(command: list[str], datadir: Path, run: dict[str, Any], *,
                 reuse: bool) -> Made:
    """`command` (initdb and its options, without -D) for `datadir`, run with subprocess
    keywords `run` (the OS user, the environment); a copy of its earlier output when `reuse`
    and the cache is ours."""
    root = _usable_root() if reuse else None
    if root is None:
        return _initdb(command, datadir, run)
    entry = root / _key(command, run)
    if not (entry / "data" / "PG_VERSION").is_file() and _fill(
            root, entry, command, run).returncode != 0:
        # Run again where it was asked for: if it fails there too, its error names that place
        # (not the cache's scratch directory); if only the cache's disk was the trouble, it works.
        return _initdb(command, datadir, run)
    # The entry belongs to the server's OS user when we run as root (its initdb wrote it).
    if _ours(entry, run.get("user")):
        # As the server's OS user, who owns the files: the copy keeps owner and modes (0700).
        done = subprocess.run(["cp", "-a", "--", str(entry / "data"), str(datadir)],
                              capture_output=True, text=True, check=False, **run)
        if done.returncode == 0:
            return Made(0, "")
        shutil.rmtree(datadir, ignore_errors=True)
    return _initdb(command, datadir, run)
