"""The application's own state beside the database backup (`eventgate backup --app-state`): the
configuration files and uploads the deployment guide's backup-application-state.sh archives,
in one `app_state_<stamp>.tar.gz` with an `app_state_<stamp>.json` that lists what it holds.

The archive is read back before it counts: every member's bytes compared with the file it was
made from. What is reported names files, never their contents: an env file's passwords go into
the archive (restoring the configuration needs them), not into any output."""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from eventgate.errors import BackupError

CHUNK = 1 << 20


@dataclass(frozen=True)
class AppStateBackup:
    archive: Path
    manifest: Path
    files: int
    size_bytes: int  # of the files, uncompressed
    archive_bytes: int
    skipped: list[str] = field(default_factory=list)  # not regular files (sockets, devices)


def _members(paths: list[Path]) -> tuple[list[tuple[Path, str]], list[str]]:
    """(file, its name in the archive) for every regular file under the paths, sorted; names
    are relative to the working directory when under it, as the guide's tar run from the
    application's root would store them."""
    cwd = Path.cwd().resolve()
    found: dict[str, Path] = {}
    skipped: list[str] = []
    for given in paths:
        if not given.exists():
            raise BackupError(f"--app-state {given}: no such file or directory; nothing was "
                              "archived")
        walk = [given] if given.is_file() else sorted(p for p in given.rglob("*"))
        for path in walk:
            if path.is_dir():
                continue
            if not path.is_file():
                skipped.append(str(path))
                continue
            resolved = path.resolve()
            try:
                name = str(resolved.relative_to(cwd))
            except ValueError:
                name = str(resolved).lstrip("/")
            found[name] = path
    if not found:
        raise BackupError("--app-state: the paths hold no file; nothing was archived")
    return sorted(((p, n) for n, p in found.items()), key=lambda pair: pair[1]), skipped


def _digest_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def back_up_app_state(paths: list[Path | str], directory: Path | str) -> AppStateBackup:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    members, skipped = _members([Path(p) for p in paths])
    stamp = datetime.now(UTC).strftime("%Y%m%d_%H%M%S")
    archive = directory / f"app_state_{stamp}.tar.gz"
    partial = archive.with_name(archive.name + ".partial")
    expected: dict[str, str] = {}
    with tarfile.open(partial, "w:gz") as tar:
        for path, name in members:
            expected[name] = _digest_file(path)
            tar.add(path, arcname=name, recursive=False)
    problems = _read_back(partial, expected)
    if problems:
        partial.unlink()
        raise BackupError(f"the application-state archive did not read back: "
                          f"{'; '.join(problems[:5])}; it was deleted, nothing was kept")
    # Files may be secrets (an env file): owner-only, like the database dumps.
    os.chmod(partial, 0o600)
    partial.rename(archive)
    size = sum(path.stat().st_size for path, _ in members)
    manifest = archive.with_name(f"app_state_{stamp}.json")
    manifest.write_text(json.dumps({
        "created_at": datetime.now(UTC).isoformat(), "archive": archive.name,
        "archive_sha256": _digest_file(archive), "archive_bytes": archive.stat().st_size,
        "files": [name for _, name in members], "size_bytes": size,
        "read_back": True}, indent=2) + "\n", encoding="utf-8")
    return AppStateBackup(archive, manifest, len(members), size, archive.stat().st_size,
                          skipped)


def _read_back(archive: Path, expected: dict[str, str]) -> list[str]:
    """Every member's bytes against the file's digest taken while archiving."""
    problems: list[str] = []
    seen: set[str] = set()
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                handle = tar.extractfile(member)
                if handle is None:
                    problems.append(f"{member.name}: not a file in the archive")
                    continue
                digest = hashlib.sha256()
                while chunk := handle.read(CHUNK):
                    digest.update(chunk)
                seen.add(member.name)
                if expected.get(member.name) != digest.hexdigest():
                    problems.append(f"{member.name}: its bytes in the archive differ from the "
                                    "file (was it written to while archived?)")
    except (OSError, tarfile.TarError, EOFError) as exc:
        return [f"{archive.name} cannot be read: {exc}"]
    problems += [f"{name}: missing from the archive" for name in sorted(set(expected) - seen)]
    return problems
