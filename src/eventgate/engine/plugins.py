"""Event-type plugins: discovered through an entry-point group, each declaring its type code,
metadata schema, participant roles and section types, and optional validation hooks. A plugin
that fails to import or to validate is recorded in the registry's errors; it never takes the
service down."""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

import jsonschema

ENTRY_POINT_GROUP = "eventgate.event_types"
# Extra plugins as "name=module:attribute,...": how an operator (or a test) adds a plugin
# without packaging it.
EXTRA_ENV = "EVENTGATE_EXTRA_PLUGINS"

Hook = Callable[[dict[str, Any]], list[str]]


@dataclass(frozen=True)
class EventTypePlugin:
    code: str
    name: str
    metadata_schema: dict[str, Any]
    participant_roles: tuple[str, ...]
    section_types: tuple[str, ...]
    hooks: tuple[Hook, ...] = ()
    active: bool = True
    version: str = "1.0.0"

    def validate(self, metadata: dict[str, Any]) -> list[str]:
        """Everything wrong with an event's metadata, as messages naming the field."""
        validator = jsonschema.Draft202012Validator(
            self.metadata_schema, format_checker=jsonschema.FormatChecker())
        problems = [f"metadata{''.join(f'.{p}' for p in e.absolute_path)}: {e.message}"
                    for e in sorted(validator.iter_errors(metadata), key=str)]
        for hook in self.hooks:
            try:
                problems += hook(metadata)
            except Exception as exc:  # a plugin's bug is a refusal, never a crash
                problems.append(f"metadata: the {self.code} plugin could not check it "
                                f"({type(exc).__name__}: {exc})")
        return problems

    def describe(self) -> dict[str, Any]:
        return {"code": self.code, "name": self.name, "version": self.version,
                "active": self.active, "participant_roles": list(self.participant_roles),
                "section_types": list(self.section_types),
                "metadata_schema": self.metadata_schema}


@dataclass(frozen=True)
class PluginError:
    plugin: str
    source: str
    error: str


@dataclass
class PluginRegistry:
    """The loaded plugins and the errors met loading them; reload() swaps both at once."""

    _plugins: dict[str, EventTypePlugin] = field(default_factory=dict)
    _errors: list[PluginError] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get_all(self) -> list[EventTypePlugin]:
        return list(self._plugins.values())

    def get_active_plugins(self) -> list[EventTypePlugin]:
        return [p for p in self._plugins.values() if p.active]

    def get_available_types(self) -> list[str]:
        return sorted(p.code for p in self.get_active_plugins())

    def get_errors(self) -> list[PluginError]:
        return list(self._errors)

    def get(self, code: str) -> EventTypePlugin | None:
        plugin = self._plugins.get(code)
        return plugin if plugin and plugin.active else None

    def reload_all(self) -> None:
        plugins, errors = discover()
        with self._lock:
            self._plugins, self._errors = plugins, errors


def _sources() -> list[tuple[str, str]]:
    found = [(ep.name, ep.value) for ep in entry_points(group=ENTRY_POINT_GROUP)]
    for item in filter(None, os.environ.get(EXTRA_ENV, "").split(",")):
        name, _, target = item.partition("=")
        found.append((name.strip(), target.strip()))
    return found


def _load(target: str) -> EventTypePlugin:
    module_name, _, attribute = target.partition(":")
    value: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        value = getattr(value, part)
    if callable(value) and not isinstance(value, EventTypePlugin):
        value = value()
    if not isinstance(value, EventTypePlugin):
        raise TypeError(f"{target} is a {type(value).__name__}, not an EventTypePlugin")
    jsonschema.Draft202012Validator.check_schema(value.metadata_schema)
    return value


def discover() -> tuple[dict[str, EventTypePlugin], list[PluginError]]:
    plugins: dict[str, EventTypePlugin] = {}
    errors: list[PluginError] = []
    for name, target in _sources():
        try:
            plugin = _load(target)
        except Exception as exc:  # a broken plugin is reported, never fatal
            errors.append(PluginError(name, target, f"{type(exc).__name__}: {exc}"))
            continue
        if plugin.code in plugins:
            errors.append(PluginError(name, target, f"a plugin for event type {plugin.code!r} "
                                      "is already loaded; this one was skipped"))
            continue
        plugins[plugin.code] = plugin
    return plugins, errors
