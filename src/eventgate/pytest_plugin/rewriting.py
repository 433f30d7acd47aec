"""Assertion rewriting kept to eventgate's own code.

pytest marks every package of a distribution that declares a pytest plugin for assertion
rewriting, whole: hypothesis, schemathesis, pytest-benchmark, allure-pytest, anyio and xdist. A
rewritten module is parsed, rewritten and compiled on each import, and with no bytecode cache
(PYTHONDONTWRITEBYTECODE, as most containers set it, or a read-only site-packages) that happens in
every pytest process: schemathesis' OpenAPI modules, imported lazily by the contract test, cost
1.3 s of each gate that way against 0.2 s unrewritten. Those packages' own asserts are not
gates; the failure messages the gates show come from the test modules and eventgate's plugin
(`proof.hold`), which stay rewritten."""

from __future__ import annotations

import pytest

OURS = "eventgate"


def keep_ours(pluginmanager: pytest.PytestPluginManager) -> list[str]:
    """Unmark the other distributions' packages not imported yet; the names unmarked.

    The marks live in a private set of pytest's import hook: where it is not there (another
    pytest, or rewriting off), nothing changes and the run is only slower."""
    marked = getattr(pluginmanager.rewrite_hook, "_must_rewrite", None)
    if not isinstance(marked, set):
        return []
    foreign = sorted(name for name in marked
                     if name != OURS and not name.startswith(OURS + "."))
    marked.difference_update(foreign)
    return foreign
