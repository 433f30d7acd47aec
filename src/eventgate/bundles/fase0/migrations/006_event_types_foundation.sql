-- FASE 0 · 006: the catalogue of event types. Every event names its type; each type is served by
-- a plugin that owns its metadata schema, participant roles and section types.
CREATE TABLE event_types (
    code               varchar(40)  PRIMARY KEY,
    name               varchar(100) NOT NULL,
    plugin             varchar(100) NOT NULL,
    metadata_schema    jsonb        NOT NULL DEFAULT '{}'::jsonb,
    participant_roles  text[]       NOT NULL DEFAULT '{}',
    section_types      text[]       NOT NULL DEFAULT '{}',
    is_active          boolean      NOT NULL DEFAULT true,
    created_at         timestamptz  NOT NULL DEFAULT now(),
    CONSTRAINT event_types_code_format CHECK (code ~ '^[a-z][a-z0-9_]*$')
);

INSERT INTO event_types (code, name, plugin, metadata_schema, participant_roles, section_types)
VALUES
    ('wedding', 'Wedding', 'wedding',
     '{"type": "object",
       "required": ["bride_name", "groom_name"],
       "properties": {
         "bride_name":     {"type": "string", "maxLength": 200},
         "groom_name":     {"type": "string", "maxLength": 200},
         "ceremony_time":  {"type": ["string", "null"], "format": "time"},
         "reception_time": {"type": ["string", "null"], "format": "time"},
         "theme":          {"type": ["string", "null"], "maxLength": 50}}}',
     '{guest,host,vendor}',
     '{hero,story,schedule,venue,gallery,registry,rsvp,faq}'),
    ('conference', 'Conference', 'conference',
     '{"type": "object",
       "properties": {
         "organiser": {"type": "string"},
         "tracks":    {"type": "array", "items": {"type": "string"}}}}',
     '{attendee,speaker,organiser,sponsor}',
     '{agenda,speakers,venue,sponsors,faq}'),
    ('birthday', 'Birthday', 'birthday',
     '{"type": "object",
       "properties": {
         "celebrant": {"type": "string"},
         "age":       {"type": ["integer", "null"], "minimum": 0}}}',
     '{guest,host}',
     '{hero,schedule,venue,gallery,rsvp}');
