"""Request and response bodies of the events API, which are also its OpenAPI schema."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

STATUSES = ("draft", "published", "completed", "cancelled", "archived")
Status = Literal["draft", "published", "completed", "cancelled", "archived"]


MAX_DEPTH = 32
EARLIEST, LATEST = datetime(1900, 1, 1, tzinfo=UTC), datetime(2200, 1, 1, tzinfo=UTC)


def storable(value: Any, depth: int = 0) -> Any:
    """PostgreSQL text holds neither NUL characters nor lone surrogates, and a JSON document
    nested without end would exhaust validation; refuse them here, as a 422 naming the field,
    rather than at the database or as a crash."""
    if depth > MAX_DEPTH:
        raise ValueError(f"must not be nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("must not contain NUL characters")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("must be valid Unicode (no lone surrogates)") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            storable(key, depth + 1)
            storable(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            storable(item, depth + 1)
    return value


def plausible(value: datetime | None) -> datetime | None:
    """Dates an event can have: years 1900 to 2199 in UTC (beyond, PostgreSQL stores what
    Python cannot read back)."""
    if value is not None and not EARLIEST <= value < LATEST:
        raise ValueError("must be between 1900-01-01 and 2199-12-31 (UTC)")
    return value


Text = Annotated[str, AfterValidator(storable)]
Slug = Annotated[str, Field(min_length=1, max_length=120, pattern=r"^[a-z0-9][a-z0-9-]*$")]
Metadata = Annotated[dict[str, Any], AfterValidator(storable)]
EventDate = Annotated[AwareDatetime, AfterValidator(plausible)]


class EventCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_type: Annotated[Text, Field(min_length=1, max_length=40)]
    title: Annotated[Text, Field(min_length=1, max_length=500)]
    slug: Slug
    start_date: EventDate | None = None
    end_date: EventDate | None = None
    timezone: Annotated[Text, Field(min_length=1, max_length=64)] = "UTC"
    venue_name: Annotated[Text, Field(max_length=200)] | None = None
    venue_address: Annotated[Text, Field(max_length=2000)] | None = None
    status: Status = "draft"
    metadata: Metadata = Field(default_factory=dict)


class EventPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Annotated[Text, Field(min_length=1, max_length=500)] | None = None
    slug: Slug | None = None
    start_date: EventDate | None = None
    end_date: EventDate | None = None
    timezone: Annotated[Text, Field(min_length=1, max_length=64)] | None = None
    venue_name: Annotated[Text, Field(max_length=200)] | None = None
    venue_address: Annotated[Text, Field(max_length=2000)] | None = None
    status: Status | None = None
    metadata: Metadata | None = None


class Event(BaseModel):
    id: int
    tenant_id: UUID
    event_type: str
    title: str
    slug: str
    start_date: datetime | None
    end_date: datetime | None
    timezone: str
    venue_name: str | None
    venue_address: str | None
    status: str
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class Participant(BaseModel):
    id: int
    role: str
    display_name: str
    email: str | None
    phone: str | None
    rsvp_status: str
    party_size: int
    metadata: dict[str, Any]
    invited_at: datetime
    responded_at: datetime | None


class Section(BaseModel):
    id: int
    section_type: str
    title: str | None
    content: str | None
    position: int
    is_visible: bool
    metadata: dict[str, Any]


class EventDetail(Event):
    participants: list[Participant]
    sections: list[Section]


class EventPage(BaseModel):
    data: list[Event]
    next_cursor: str | None


class EventTypeInfo(BaseModel):
    code: str
    name: str
    plugin: str
    is_active: bool
    plugin_loaded: bool


class LegacyInvitation(BaseModel):
    """A row of the wedding_invitations compatibility view, as the old front end read it."""

    id: int
    wedding_id: int
    guest_name: str
    email: str | None
    phone: str | None
    rsvp_status: str
    party_size: int
    dietary_notes: str | None
    table_number: int | None
    invited_at: datetime
    responded_at: datetime | None


class PluginInfo(BaseModel):
    code: str
    name: str
    version: str
    active: bool
    participant_roles: list[str]
    section_types: list[str]
    metadata_schema: dict[str, Any]


class PluginErrorInfo(BaseModel):
    plugin: str
    source: str
    error: str


class PluginsReport(BaseModel):
    plugins: list[PluginInfo]
    available_types: list[str]
    errors: list[PluginErrorInfo]
    mismatches: list[str]


class HealthReport(BaseModel):
    status: Literal["healthy", "unhealthy"]
    timestamp: datetime
    version: str
    checks: dict[str, str]
    failing: list[str]
    errors: list[str]


class GuideMetrics(BaseModel):
    events: dict[str, Any]
    performance: dict[str, Any]
    plugins: dict[str, int]
