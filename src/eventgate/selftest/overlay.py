"""What a variant changes, made real before anything runs: its patches applied to a copy of the
bundle, and its engine factory checked to import the way the engine process will import it."""

from __future__ import annotations

import importlib
import shutil
import sys
from pathlib import Path

from eventgate.selftest.variants import SabotageError, Variant


def _snippet(text: str) -> str:
    first = text.strip().splitlines()[0] if text.strip() else text
    return repr(first[:80] + ("…" if len(first) > 80 or "\n" in text.strip() else ""))


def apply_overlay(variant: Variant, base: Path, dest: Path) -> Path:
    """A copy of the bundle at `base` in `dest` (replaced if there) with the variant's patches
    applied in order. A find text that does not occur exactly once (in the file as patched so
    far) is an error naming the variant and the file, so an overlay never silently stops
    applying when the reference bundle changes under it."""
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(base, dest, ignore=shutil.ignore_patterns("__pycache__"))
    for patch in variant.patches:
        target = (dest / patch.file).resolve()
        if not target.is_relative_to(dest.resolve()) or not target.is_file():
            raise SabotageError(f"sabotage variant {variant.name}: {patch.file} is not a file of "
                                f"the bundle {base}")
        text = target.read_text(encoding="utf-8")
        found = text.count(patch.find)
        if found != 1:
            raise SabotageError(
                f"sabotage variant {variant.name}: {patch.file}: the find text "
                f"{_snippet(patch.find)} occurs {found} times, expected exactly once; the "
                "bundle changed under the overlay; update it in "
                f"{variant.source or 'its .toml'}")
        target.write_text(text.replace(patch.find, patch.replace), encoding="utf-8")
    return dest


def resolve_engine_factory(factory: str, root: Path) -> None:
    """Fail early, naming the variant's setting, if its engine factory cannot be imported the
    way the engine process will import it (from the checkout's root)."""
    module, _, name = factory.partition(":")
    added = str(root) not in sys.path
    if added:
        sys.path.insert(0, str(root))
    try:
        loaded = importlib.import_module(module)
    except ImportError as exc:
        raise SabotageError(f"engine_factory {factory!r}: cannot import {module}: {exc}") from exc
    finally:
        if added:
            sys.path.remove(str(root))
    if not callable(getattr(loaded, name, None)):
        raise SabotageError(f"engine_factory {factory!r}: {module} has no function {name}")
