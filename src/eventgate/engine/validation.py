"""What an event write must satisfy beyond its request schema: an active plugin for its type,
metadata its plugin accepts, an end not before its start, a time zone PostgreSQL knows."""

from __future__ import annotations

from typing import Any

import psycopg

from eventgate.engine import store
from eventgate.engine.plugins import PluginRegistry
from eventgate.engine.problems import ProblemError


class EventValidator:
    """Judges event writes against the plugins of one engine; PostgreSQL's zone names are
    read once, on first use (the database may be down when the engine starts)."""

    def __init__(self, plugins: PluginRegistry) -> None:
        self.plugins = plugins
        self._zones: set[str] = set()

    def check(self, conn: psycopg.Connection, values: dict[str, Any], event_type: str,
              changed: set[str]) -> None:
        """Validate what is being written; values not in `changed` were accepted before (a
        migrated wedding may carry a zone abbreviation 010 allowed) and are not re-judged."""
        plugin = self.plugins.get(event_type)
        if plugin is None:
            raise ProblemError(422, "Unknown event type",
                               f"no active plugin serves event type {event_type!r}; available: "
                               f"{', '.join(self.plugins.get_available_types()) or 'none'}")
        problems = plugin.validate(values.get("metadata", {})) if "metadata" in changed else []
        start, end = values.get("start_date"), values.get("end_date")
        if changed & {"start_date", "end_date"} and start and end and end < start:
            problems.append("end_date: must not be before start_date")
        zone = values.get("timezone")
        if "timezone" in changed and zone and not self._known_zone(conn, zone):
            problems.append(f"timezone: {zone!r} is not a time zone PostgreSQL knows")
        if problems:
            raise ProblemError(422, "Invalid event", "; ".join(problems), problems)

    def _known_zone(self, conn: psycopg.Connection, zone: str) -> bool:
        if not self._zones:
            self._zones.update(store.known_timezones(conn))
        return zone in self._zones
