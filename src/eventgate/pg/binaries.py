"""Finding PostgreSQL server binaries: an explicit directory, PATH, pg_config, Debian's layout."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

DEBIAN_ROOT = Path("/usr/lib/postgresql")
REQUIRED = ("initdb", "postgres")


@dataclass(frozen=True)
class ServerBinaries:
    bindir: Path
    version: str
    found_via: str

    def tool(self, name: str) -> str:
        return str(self.bindir / name)


def _has_server(bindir: Path) -> bool:
    return all(os.access(bindir / name, os.X_OK) for name in REQUIRED)


def _version_of(bindir: Path) -> str:
    out = subprocess.run(
        [str(bindir / "postgres"), "--version"], capture_output=True, text=True, check=True
    ).stdout
    match = re.search(r"(\d+(?:\.\d+)?)", out)
    return match.group(1) if match else out.strip()


def _debian_bindirs() -> list[Path]:
    if not DEBIAN_ROOT.is_dir():
        return []
    versions = [p for p in DEBIAN_ROOT.iterdir() if p.name.replace(".", "").isdigit()]
    versions.sort(key=lambda p: tuple(int(x) for x in p.name.split(".")), reverse=True)
    return [p / "bin" for p in versions]


def _pg_config_bindir() -> Path | None:
    pg_config = shutil.which("pg_config")
    if not pg_config:
        return None
    done = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
    return Path(done.stdout.strip()) if done.returncode == 0 and done.stdout.strip() else None


def candidates(explicit: str | None) -> list[tuple[str, Path | None]]:
    """Every place looked at, in order, as (how it was found, directory or None)."""
    found: list[tuple[str, Path | None]] = []
    if explicit:
        found.append(("--pg-bindir", Path(explicit)))
    on_path = shutil.which("postgres")
    found.append(("PATH", Path(on_path).resolve().parent if on_path else None))
    found.append(("pg_config --bindir", _pg_config_bindir()))
    debian = _debian_bindirs()
    found.extend(("Debian per-version directory", d) for d in debian)
    if not debian:
        found.append((f"Debian per-version directory ({DEBIAN_ROOT}/*/bin)", None))
    return found


def locate(explicit: str | None) -> tuple[ServerBinaries | None, list[str]]:
    """The first directory holding initdb and postgres, and a line per place tried."""
    tried: list[str] = []
    for how, bindir in candidates(explicit):
        if bindir is None:
            tried.append(f"{how}: nothing found")
        elif _has_server(bindir):
            return ServerBinaries(bindir, _version_of(bindir), how), tried
        else:
            tried.append(f"{how}: {bindir} has no initdb/postgres")
        if how == "--pg-bindir":
            # An explicit directory that does not work is a mistake to report, not to paper over.
            break
    return None, tried


def client_tool_candidates(name: str, explicit: str | Path | None = None) -> list[tuple[str, Path]]:
    """Where a client tool (pg_dump, pg_restore) may be, as (how it was found, path), in order:
    an explicit directory alone, else the server binaries' directory, PATH, and Debian's
    per-version directories newest first. Paths that do not exist are left out."""
    if explicit:
        # An explicit directory is a decision, not a hint: nothing else is tried behind it.
        return [("explicit directory", Path(explicit) / name)]
    found: list[tuple[str, Path]] = []
    server, _ = locate(os.environ.get("EVENTGATE_PG_BINDIR"))
    if server is not None:
        found.append((f"server binaries ({server.found_via})", server.bindir / name))
    on_path = shutil.which(name)
    if on_path:
        found.append(("PATH", Path(on_path)))
    found.extend(("Debian per-version directory", d / name) for d in _debian_bindirs())
    unique: list[tuple[str, Path]] = []
    seen: set[Path] = set()
    for how, path in found:
        if os.access(path, os.X_OK) and path.resolve() not in seen:
            seen.add(path.resolve())
            unique.append((how, path))
    return unique


def tool_version(path: Path) -> str | None:
    """What `<tool> --version` says, as '15.18', or None when the tool does not run."""
    try:
        out = subprocess.run([str(path), "--version"], capture_output=True, text=True,
                             check=False, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    # "pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)": the number after the product.
    match = re.search(r"\)\s*(\d+(?:\.\d+)?)", out)
    return match.group(1) if match else None
