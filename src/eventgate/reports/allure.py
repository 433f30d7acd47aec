"""What QA reads in the Allure results besides pass and fail.

Every test gets a plain-language title, a description, a feature (its suite), a story (its
module) and a severity, derived once at collection from names and docstrings rather than written
on 300 tests; an allure decorator on a test wins. At the end of the session the results
directory gets environment.properties (what was tested, with which versions) and categories.json
(infrastructure trouble apart from product defects)."""

from __future__ import annotations

import inspect
import json
import os
import platform
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

import eventgate
from eventgate import dsn as dsn_mod
from eventgate.bundle import load_bundle
from eventgate.errors import EventgateError
from eventgate.migrate import ledger
from eventgate.pytest_plugin.settings import Settings
from eventgate.reports.attachments import redact_url

ALLURE_PLUGIN = "allure_pytest"  # the name of allure-pytest's pytest11 entry point

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
GATE_SUITES = ("integrity", "compat", "performance", "functional")

# Words of test names that read wrong in lower case.
_WORDS = {"api": "API", "sql": "SQL", "json": "JSON", "url": "URL", "urls": "URLs", "dsn": "DSN",
          "cli": "CLI", "openapi": "OpenAPI", "http": "HTTP", "sigterm": "SIGTERM", "ctrl": "Ctrl",
          "pid": "PID", "brin": "BRIN", "rsvp": "RSVP", "utc": "UTC", "nul": "NUL"}
STORY_MAX = 90


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


# --- titles, descriptions, labels ------------------------------------------------------------

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
    if suite in GATE_SUITES:
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


# --- categories.json ---------------------------------------------------------------------------

# Allure 2 matches a regex against the whole message (Java's String.matches) and Allure 3 finds
# it anywhere, so every pattern is anchored and padded with [\s\S]* (no inline flags: JavaScript
# has none). Allure 2 files a result under every category it matches and Allure 3 under the
# first, so each category excludes the patterns of those before it, to agree in both.
_INFRA = (
    ("Infrastructure: timeout",
     "A statement or an HTTP request ran out of time. On a shared system this is load or "
     "contention; run again before reading it as a defect.",
     # Lock timeouts are left out on purpose: the runner's handling of them is under test.
     r"canceling statement due to statement timeout|timeout expired|"
     r"(ReadTimeout|ConnectTimeout|WriteTimeout|PoolTimeout|TimeoutExpired|TimeoutError)"),
    ("Infrastructure: engine unreachable",
     "The engine refused or dropped the connection, or answered 503 while its database was "
     "away.",
     r"httpx\.(ConnectError|RemoteProtocolError|ReadError|NetworkError)|"
     r"[Ss]erver disconnected without sending a response|503 Service Unavailable|"
     r"[Aa]ll connection attempts failed"),
    ("Infrastructure: database unreachable",
     "PostgreSQL could not be reached or went away: not a finding about the migration. Check "
     "the server, the network and the DSN, then run again.",
     r"[Cc]onnection refused|[Cc]ould not connect|connection failed|"
     r"server closed the connection|terminating connection|"
     r"the database system is (starting up|shutting down|in recovery mode)|too many clients|"
     r"ProvisioningError|no PostgreSQL server to test against|[Nn]o space left on device"),
)


def _matching(pattern: str, excluding: list[str]) -> str:
    exclude = rf"(?![\s\S]*({'|'.join(excluding)}))" if excluding else ""
    return rf"^{exclude}[\s\S]*({pattern})[\s\S]*$"


def _categories() -> list[dict[str, Any]]:
    categories: list[dict[str, Any]] = []
    seen: list[str] = []
    for name, description, pattern in _INFRA:
        categories.append({"name": name, "description": description,
                           "matchedStatuses": ["failed", "broken"],
                           "messageRegex": _matching(pattern, seen)})
        seen.append(pattern)
    anything_else = rf"^(?![\s\S]*({'|'.join(seen)}))[\s\S]*$"
    categories += [
        {"name": "Product defects: a gate failed",
         "description": "A gate found the migration, the views or the engine wrong: data lost "
                        "or changed, a missing index, a budget missed, an API answer that "
                        "disagrees with the database. This is what blocks the traffic switch.",
         "matchedStatuses": ["failed"], "messageRegex": anything_else},
        {"name": "Not proven: the data cannot exercise the gate",
         "description": "Neither a pass nor a failure: the database under test holds no data "
                        "that could exercise this gate (no row to compare, no value to draw a "
                        "parameter from). The message says what it looked for. eventgate gate "
                        "--require-proof turns these into a no-go.",
         "matchedStatuses": ["skipped"], "messageRegex": r"^[\s\S]*not proven: [\s\S]*$"},
        {"name": "Test defects",
         "description": "The test itself broke (an unexpected exception, not a failed "
                        "assertion): look at the suite before the product.",
         "matchedStatuses": ["broken"], "messageRegex": anything_else},
    ]
    return categories


CATEGORIES: list[dict[str, Any]] = _categories()


def categorize(status: str, message: str) -> str | None:
    """The first category a result falls into, as Allure 3 decides (for tests and for anyone
    checking a message by hand)."""
    for category in CATEGORIES:
        if status in category["matchedStatuses"] and re.search(category["messageRegex"],
                                                               message):
            return str(category["name"])
    return None


# --- environment.properties ------------------------------------------------------------------

@dataclass(frozen=True)
class Target:
    """What the plugin found at session start: where PostgreSQL comes from."""

    kind: str  # "embedded", "external DSN", "testcontainers" or "none"
    description: str  # password-free
    server_version: str | None


def _escape(text: str, key: bool = False) -> str:
    """java.util.Properties escaping, in ASCII: Allure 2 reads the file as ISO-8859-1, Allure 3
    as UTF-8, and both decode \\uXXXX."""
    out = text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
    out = out.replace("\t", "\\t")
    if key:  # in a value these are plain characters
        for char in "=: #!":
            out = out.replace(char, "\\" + char)
    elif out.startswith(" "):
        out = "\\" + out
    chars = []
    for char in out:
        code = ord(char)
        if 0x20 <= code < 0x7F:
            chars.append(char)
        elif code <= 0xFFFF:
            chars.append(f"\\u{code:04x}")
        else:  # outside the BMP: a UTF-16 surrogate pair, as Java writes it
            code -= 0x10000
            chars.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}")
    return "".join(chars)


def format_properties(properties: Mapping[str, str]) -> str:
    return "".join(f"{_escape(k, key=True)}={_escape(dsn_mod.redact(v))}\n"
                   for k, v in properties.items())


def _ledger_rows(dsn: str) -> list[tuple[int, str, str]]:
    """The target's ledger, read in a read-only session that gives up within seconds."""
    with psycopg.connect(dsn, autocommit=True, connect_timeout=5,
                         application_name="eventgate report environment",
                         options="-c default_transaction_read_only=on "
                                 "-c statement_timeout=5000") as conn:
        if not ledger.exists(conn):
            return []
        rows = conn.execute(f"SELECT version, name, sha256 FROM {ledger.SCHEMA}.{ledger.TABLE} "
                            "ORDER BY version").fetchall()
    return [(int(r[0]), str(r[1]), str(r[2]).strip()) for r in rows]


def _first_line(exc: BaseException) -> str:
    lines = dsn_mod.redact(str(exc)).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _migrations(settings: Settings) -> dict[str, str]:
    found: dict[str, str] = {}
    source = ""
    if settings.dsn:
        try:
            rows = _ledger_rows(settings.dsn)
        except psycopg.Error as exc:
            source = f"bundle (the target's ledger could not be read: {_first_line(exc)})"
        else:
            if rows:
                found = {f"migration.{v:03d}": f"{name} sha256={sha}" for v, name, sha in rows}
                source = "ledger of the target database"
            else:
                source = "bundle (the target database has no migration ledger)"
    if not found:
        try:
            bundle = load_bundle(settings.bundle)
        except EventgateError as exc:
            return {"migrations.source": f"none: the bundle cannot be read ({_first_line(exc)})"}
        found = {f"migration.{m.version:03d}": f"{m.name} sha256={m.sha256}"
                 for m in bundle.migrations}
        source = source or "bundle (the embedded target is migrated from it every session)"
    return {"migrations.source": source, **found}


def _engine(settings: Settings) -> dict[str, str]:
    if not settings.base_url:
        engine = settings.engine_factory or "the reference engine"
        return {"engine": f"{engine}, started by the suite",
                "engine.version": eventgate.__version__}
    base = settings.base_url.rstrip("/")
    properties = {"engine": f"external, {redact_url(base)}"}
    try:
        response = httpx.get(f"{base}/health", timeout=3)
        version = response.json().get("version")
    except (httpx.HTTPError, ValueError, AttributeError) as exc:
        version = None
        properties["engine.version"] = f"unknown (/health did not answer: {type(exc).__name__})"
    if version is not None:
        properties["engine.version"] = f"{version} (from its /health)"
    elif "engine.version" not in properties:
        properties["engine.version"] = "unknown (its /health names no version)"
    return properties


def environment(settings: Settings, target: Target) -> dict[str, str]:
    """The keys of environment.properties, none of them holding a password."""
    properties = {
        "postgresql.version": target.server_version or "unknown",
        "target.kind": target.kind,
        "target": target.description,
        "bundle": str(settings.bundle),
        "scale": settings.scale,
        # The data the gates ran on, for QA to replay a failure (an external target has none).
        **({} if settings.external or settings.seed is None else {"seed": str(settings.seed)}),
        **({"profile": settings.profile} if settings.profile else {}),
        **_migrations(settings),
        **_engine(settings),
        "eventgate.version": eventgate.__version__,
        "python.version": platform.python_version(),
        "allow_destructive": "yes" if settings.allow_destructive else "no",
    }
    return {key: dsn_mod.redact(value) for key, value in properties.items()}


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
