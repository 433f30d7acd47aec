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
