"""The three event types the engine ships: wedding, conference, birthday."""

from __future__ import annotations

from typing import Any

from eventgate.engine.plugins import EventTypePlugin

# What the wedding compatibility views can read back (see migration 009's CHECK constraints):
# times as HH:MM:SS[.ffffff], names within the legacy column lengths.
LEGACY_TIME = {"type": ["string", "null"],
               "pattern": r"^([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?$"}


def _names_not_blank(metadata: dict[str, Any]) -> list[str]:
    # A reception may well start after midnight, so times are not compared; names are.
    return [f"metadata.{key}: must not be blank" for key in ("bride_name", "groom_name")
            if isinstance(metadata.get(key), str) and not metadata[key].strip()]


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
    hooks=(_names_not_blank,),
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
