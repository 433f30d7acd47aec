"""What QA reads about each test in the Allure results besides pass and fail: a plain-language
title, a description, a feature (its suite), a story (its module) and a severity, derived once at
collection from names and docstrings rather than written on 300 tests; an allure decorator on a
test wins."""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from eventgate.gate.suites import SUITES

# tests/<dir> -> the feature QA filters by.
FEATURES = {
    "integrity": "Integrity: data parity",
    "compat": "Compatibility views",
    "performance": "Performance: indexes and budgets",
    "functional": "Engine API",
    "proofs": "Gate proofs",
    "runner": "Runner",
    "safety": "Safety net",
    "tooling": "Tooling",
    "staging": "Staging gate",
}

# Words of test names that read wrong in lower case.
_WORDS = {"api": "API", "sql": "SQL", "json": "JSON", "url": "URL", "urls": "URLs", "dsn": "DSN",
          "cli": "CLI", "openapi": "OpenAPI", "http": "HTTP", "sigterm": "SIGTERM", "ctrl": "Ctrl",
          "pid": "PID", "brin": "BRIN", "rsvp": "RSVP", "utc": "UTC", "nul": "NUL"}
STORY_MAX = 90


def humanize(name: str) -> str:
    """test_every_acknowledged_write_lands_exactly_once -> Every acknowledged write lands
    exactly once."""
    words = [w for w in name.removeprefix("test_").split("_") if w]
    words = [_WORDS.get(w.lower(), w) for w in words]
    text = " ".join(words).replace("Ctrl c ", "Ctrl-C ")
    return text[:1].upper() + text[1:]


def _first_paragraph(doc: str) -> str:
    return " ".join(inspect.cleandoc(doc).split("\n\n", 1)[0].split())


def story_of(module_doc: str | None, module_name: str) -> str:
    """The module docstring's opening phrase (up to a colon or the end of its first sentence),
    else the module's name in words."""
    if not module_doc or not module_doc.strip():
        return humanize(module_name)
    text = _first_paragraph(module_doc)
    text = re.split(r"(?<=[a-z0-9)])\.(?:\s|$)", text, maxsplit=1)[0]
    text = text.partition(": ")[0]
    text = text.rstrip(".")
    if len(text) > STORY_MAX:
        text = text[:STORY_MAX].rsplit(" ", 1)[0] + " …"
    return text


def suite_of(path: Path) -> str | None:
    """The directory under tests/ a test file sits in (tests/integrity/... -> integrity)."""
    for parent in path.parents:
        if parent.parent.name == "tests":
            return parent.name
    return None


def severity_of(suite: str | None, green: bool) -> str:
    # The rule: a green gate of integrity or compat failing means data lost or changed, or the
    # old application reading something else: it blocks the switch ("blocker"). The other gates
    # (performance, functional) and the integrity/compat tests that need an owned database are
    # "critical": they fail the gate too, but do not show a live system's data is wrong. The
    # proofs, runner, safety and staging tests prove eventgate's own machinery ("normal");
    # tooling is "minor". Anything else is allure's default, "normal".
    if suite in ("integrity", "compat") and green:
        return "blocker"
    if suite in SUITES:
        return "critical"
    if suite == "tooling":
        return "minor"
    return "normal"


def _module_doc(item: pytest.Function) -> str | None:
    doc = getattr(getattr(item, "module", None), "__doc__", None)
    return doc if isinstance(doc, str) else None


@dataclass(frozen=True)
class Meta:
    title: str  # an allure title template: "{param_id}" is filled in per parametrized test
    description: str | None
    feature: str | None
    story: str
    severity: str | None


def meta_for(item: pytest.Function) -> Meta:
    title = humanize(item.originalname)
    if getattr(item, "callspec", None) is not None:
        title += " [{param_id}]"
    module_doc = _module_doc(item)
    own_doc = getattr(item.function, "__doc__", None)
    doc = own_doc if own_doc and own_doc.strip() else module_doc
    suite = suite_of(item.path)
    return Meta(
        title=title,
        description=inspect.cleandoc(doc) if doc else None,
        feature=(FEATURES.get(suite) or humanize(suite)) if suite else None,
        story=story_of(module_doc, item.path.stem),
        severity=severity_of(suite, item.get_closest_marker("green") is not None)
        if suite else None,
    )


def _has_label(item: pytest.Item, label_type: str) -> bool:
    return any(m.kwargs.get("label_type") == label_type
               for m in item.iter_markers(name="allure_label"))


def apply_metadata(items: Iterable[pytest.Item]) -> None:
    """Title, description, feature, story and severity for each test, through allure's own
    decorators (allure.title, allure.description, allure.label), so allure-pytest reads them
    as if written on the test. Whatever a test or its module already declares is kept.

    Tags need nothing here: allure-pytest turns every argument-less mark (green, destructive,
    integrity, ...) into a tag label itself."""
    import allure as allure_module
    from allure_commons.types import LabelType

    allure: Any = allure_module  # its decorators carry no type annotations
    for item in items:
        if not isinstance(item, pytest.Function):
            continue
        meta = meta_for(item)
        function = item.function
        if getattr(function, "__allure_display_name__", None) is None:
            allure.title(meta.title)(function)
        if meta.description and item.get_closest_marker("allure_description") is None:
            item.add_marker(allure.description(meta.description))
        for label_type, value in ((LabelType.FEATURE, meta.feature),
                                  (LabelType.STORY, meta.story),
                                  (LabelType.SEVERITY, meta.severity)):
            if value and not _has_label(item, label_type):
                item.add_marker(allure.label(label_type, value))
