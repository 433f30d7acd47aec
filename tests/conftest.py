"""Fixtures shared by this repository's own tests of eventgate."""

import shutil
from pathlib import Path

import pytest

from eventgate.bundle import Bundle, default_bundle_path, load_bundle


@pytest.fixture
def bundle_copy(tmp_path: Path) -> Path:
    """A private copy of the reference bundle, to edit on purpose."""
    target = tmp_path / "bundle"
    shutil.copytree(default_bundle_path(), target)
    return target


@pytest.fixture
def reference_bundle() -> Bundle:
    return load_bundle()
