"""The sabotage variants: each fixtures/sabotage/<name>.toml read and checked into a Variant, and
the runs chosen from them (the clean bundle first).

A variant is a small overlay on the reference bundle:

    title = "010 truncates guest names to 20 characters"
    defect = "truncated values"              # the defect class, for the matrix
    catches = ["integrity", "compat"]        # the suites that must go red
    engine_factory = "fixtures.engine_faults:metrics_off_by_one"   # optional
    why = "..."                              # optional: what makes it realistic

    [[patch]]                                # any number; applied in order to a copy
    file = "migrations/010_wedding_data_migration.sql"
    find = "i.guest_name, i.email"           # must occur exactly once, or the overlay is stale
    replace = "left(i.guest_name, 20), i.email"
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eventgate.errors import ConfigError
from eventgate.gate.run import find_suites
from eventgate.gate.suites import SUITES

CLEAN = "clean"
VARIANT_KEYS = frozenset({"title", "defect", "catches", "engine_factory", "why", "patch"})
PATCH_KEYS = frozenset({"file", "find", "replace"})
NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")


class SabotageError(ConfigError):
    """A variant that cannot be built: malformed, or an overlay gone stale."""


@dataclass(frozen=True)
class Patch:
    file: str
    find: str
    replace: str


@dataclass(frozen=True)
class Variant:
    name: str
    title: str
    defect: str
    catches: tuple[str, ...]
    patches: tuple[Patch, ...] = ()
    engine_factory: str | None = None
    why: str = ""
    source: Path | None = None

    @property
    def clean(self) -> bool:
        return self.name == CLEAN


CLEAN_VARIANT = Variant(CLEAN, "the reference bundle and engine, unchanged", "none", ())


def default_variants_dir() -> Path:
    return find_suites() / "fixtures" / "sabotage"


def load_variant(path: Path) -> Variant:
    name = path.stem
    where = f"sabotage variant {name} ({path})"
    if not NAME.match(name) or name == CLEAN:
        raise SabotageError(f"{where}: a variant is named by its file, in lower case with "
                            f"dashes, and not {CLEAN!r} (the unchanged bundle)")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise SabotageError(f"{where} is not valid TOML: {exc}") from exc
    unknown = set(data) - VARIANT_KEYS
    if unknown:
        raise SabotageError(f"{where}: unknown keys {', '.join(sorted(unknown))}; a variant "
                            f"takes {', '.join(sorted(VARIANT_KEYS))}")
    for key in ("title", "defect"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            raise SabotageError(f"{where} needs {key} = \"...\"")
    catches = data.get("catches")
    if (not isinstance(catches, list) or not catches
            or any(c not in SUITES for c in catches) or len(set(catches)) != len(catches)):
        raise SabotageError(f"{where}: catches must list the suites that must go red, some of "
                            f"{', '.join(SUITES)}; it is {catches!r}")
    factory = data.get("engine_factory")
    if factory is not None and (not isinstance(factory, str) or ":" not in factory):
        raise SabotageError(f"{where}: engine_factory must read 'module:function'")
    patches = _patches(where, data.get("patch", []))
    if not patches and factory is None:
        raise SabotageError(f"{where} changes nothing: give [[patch]] entries, an "
                            "engine_factory, or both")
    return Variant(name, data["title"].strip(), data["defect"].strip(), tuple(catches),
                   patches, factory, str(data.get("why", "")).strip(), path)


def _patches(where: str, specs: list[Any]) -> tuple[Patch, ...]:
    patches = []
    for n, spec in enumerate(specs, start=1):
        if (not isinstance(spec, dict) or set(spec) != PATCH_KEYS
                or not all(isinstance(v, str) for v in spec.values()) or not spec["find"]):
            raise SabotageError(f"{where}: [[patch]] {n} needs exactly file, find (not empty) "
                                "and replace, all strings")
        patches.append(Patch(spec["file"], spec["find"], spec["replace"]))
    return tuple(patches)


def load_variants(directory: Path) -> list[Variant]:
    if not directory.is_dir():
        raise SabotageError(f"no sabotage variants at {directory}: expected a directory of "
                            "<name>.toml overlays")
    variants = [load_variant(p) for p in sorted(directory.glob("*.toml"))]
    if not variants:
        raise SabotageError(f"{directory} holds no <name>.toml sabotage variants")
    return variants


def select(variants: Sequence[Variant], only: Sequence[str] | None) -> list[Variant]:
    """The clean run and every variant, or the ones named (in the order given, clean first)."""
    everything = [CLEAN_VARIANT, *variants]
    if not only:
        return everything
    by_name = {v.name: v for v in everything}
    unknown = [n for n in only if n not in by_name]
    if unknown:
        raise SabotageError(f"--only names no variant {', '.join(unknown)}; see eventgate "
                            "selftest --list")
    wanted = list(dict.fromkeys(only))
    return sorted((by_name[n] for n in wanted), key=lambda v: not v.clean)
