"""The Allure results directory of a run: whether allure-pytest writes results at all, where
(by default beside eventgate's other reports), and the files written beside the results once per
session (categories.json, environment.properties)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from eventgate.pytest_plugin.settings import Settings
from eventgate.reports.categories import CATEGORIES
from eventgate.reports.environment import Target, environment, format_properties

ALLURE_PLUGIN = "allure_pytest"  # the name of allure-pytest's pytest11 entry point


def allure_active(config: pytest.Config) -> bool:
    """allure-pytest is loaded (not disabled with -p no:allure_pytest)."""
    return config.pluginmanager.hasplugin(ALLURE_PLUGIN)


def results_dir(config: pytest.Config) -> Path | None:
    """Where allure-pytest writes in this run, or None when it writes nothing."""
    if not allure_active(config):
        return None
    value = getattr(config.option, "allure_report_dir", None)
    return Path(value).absolute() if value else None


def default_results_dir(config: pytest.Config, settings: Settings) -> None:
    """Without --alluredir, results go to <reports-dir>/allure-results, where `eventgate gate`
    puts them and QA looks; `--alluredir=` (empty) turns them off. Runs before allure-pytest's
    own pytest_configure, which reads the option.

    Nothing is cleaned unless asked (--clean-alluredir): Allure shows repeated runs as retries,
    and deleting results a person did not ask to delete would be a surprise."""
    if not allure_active(config) or getattr(config.option, "allure_report_dir", "") is not None:
        return
    import allure_commons
    from allure_commons.logger import AllureFileLogger

    # A pytester run inside a session that already writes results shares allure's global
    # plugin manager: a second writer would copy every result into both directories.
    if any(isinstance(p, AllureFileLogger) for p in allure_commons.plugin_manager.get_plugins()):
        return
    reports = settings.reports
    if not reports.is_absolute():
        reports = config.invocation_params.dir / reports
    config.option.allure_report_dir = str(reports / "allure-results")


def _write_atomically(path: Path, text: str) -> None:
    # Written to a temporary name and renamed, so a concurrent reader (or a second writer under
    # xdist) never sees half a file.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_session_files(directory: Path, settings: Settings, target: Target) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    _write_atomically(directory / "categories.json", json.dumps(CATEGORIES, indent=2) + "\n")
    _write_atomically(directory / "environment.properties",
                      format_properties(environment(settings, target)))
