"""The three event types the engine ships: wedding, conference, birthday."""

from __future__ import annotations

from typing import Any

from eventgate.engine.plugins import EventTypePlugin

# What the wedding compatibility views can read back (see migration 009's CHECK constraints):
# times as HH:MM:SS[.ffffff], names within the legacy column lengths.
LEGACY_TIME = {"type": ["string", "null"],
               "pattern": r"^([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?$"}


def _reception_after_ceremony(metadata: dict[str, Any]) -> list[str]:
    ceremony, reception = metadata.get("ceremony_time"), metadata.get("reception_time")
    if isinstance(ceremony, str) and isinstance(reception, str) and reception < ceremony:
        return ["metadata.reception_time: must not be before metadata.ceremony_time"]
    return []


wedding = EventTypePlugin(
    code="wedding",
    name="Wedding",
    metadata_schema={
        "type": "object",
        "required": ["bride_name", "groom_name"],
        "properties": {
            "bride_name": {"type": "string", "minLength": 1, "maxLength": 200},
            "groom_name": {"type": "string", "minLength": 1, "maxLength": 200},
            "ceremony_time": LEGACY_TIME,
            "reception_time": LEGACY_TIME,
            "theme": {"type": ["string", "null"], "maxLength": 50},
        },
        "additionalProperties": False,
    },
    participant_roles=("guest", "host", "vendor"),
    section_types=("hero", "story", "schedule", "venue", "gallery", "registry", "rsvp", "faq"),
    hooks=(_reception_after_ceremony,),
)

conference = EventTypePlugin(
    code="conference",
    name="Conference",
    metadata_schema={
        "type": "object",
        "properties": {
            "organiser": {"type": "string", "maxLength": 200},
            "tracks": {"type": "array", "items": {"type": "string", "maxLength": 100},
                       "maxItems": 50},
        },
        "additionalProperties": False,
    },
    participant_roles=("attendee", "speaker", "organiser", "sponsor"),
    section_types=("agenda", "speakers", "venue", "sponsors", "faq"),
)

birthday = EventTypePlugin(
    code="birthday",
    name="Birthday",
    metadata_schema={
        "type": "object",
        "properties": {
            "celebrant": {"type": "string", "maxLength": 200},
            "age": {"type": ["integer", "null"], "minimum": 0, "maximum": 150},
        },
        "additionalProperties": False,
    },
    participant_roles=("guest", "host"),
    section_types=("hero", "schedule", "venue", "gallery", "rsvp"),
)
