"""A settings file an operator wrote (TOML), read with the error that names it: what it is for,
where it was looked for, and what is wrong with it."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from eventgate.errors import ConfigError


def read_settings(path: Path, what: str) -> dict[str, Any]:
    """The TOML at `path`; a ConfigError naming `what` it is (e.g. "the thresholds file")."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{what} {path} is not valid TOML: {exc}") from None
