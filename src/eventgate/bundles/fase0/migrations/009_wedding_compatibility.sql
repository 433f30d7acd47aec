-- FASE 0 · 009: the old wedding application's tables, rebuilt as views over the generic schema.
-- They are built in the schema wedding_compat and stay there, unseen by the old application,
-- until 010 moves the data and swaps them in within one transaction: the old application never
-- sees a half-migrated database.
CREATE SCHEMA wedding_compat;

-- The one place a wedding's start is derived: local date + ceremony time (midnight when unknown)
-- in the wedding's own time zone. A local time that falls in a DST gap is read as PostgreSQL
-- reads it (shifted forward by the gap); the ceremony time itself is kept verbatim in metadata.
CREATE FUNCTION wedding_compat.wedding_start(wedding_date date, ceremony_time time, timezone text)
    RETURNS timestamptz
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN (wedding_date + coalesce(ceremony_time, time '00:00')) AT TIME ZONE timezone;

-- What the views can read back without error or truncation. The engine writes metadata too; a
-- value the old application cannot read (a ceremony_time of '2pm', a 300-character name) would
-- break every legacy query touching the row, so the database refuses it.
CREATE FUNCTION wedding_compat.is_legacy_time(value jsonb) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN value IS NULL OR jsonb_typeof(value) = 'null'
        OR (jsonb_typeof(value) = 'string'
            AND value #>> '{}' ~ '^([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?$');

CREATE FUNCTION wedding_compat.is_legacy_text(value jsonb, max_length integer, required boolean)
    RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE WHEN value IS NULL OR jsonb_typeof(value) = 'null' THEN NOT required
                ELSE jsonb_typeof(value) = 'string'
                     AND (max_length IS NULL OR char_length(value #>> '{}') <= max_length) END;

CREATE FUNCTION wedding_compat.is_legacy_integer(value jsonb) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN value IS NULL OR jsonb_typeof(value) = 'null'
        OR (jsonb_typeof(value) = 'number' AND (value #>> '{}') ~ '^-?[0-9]+$'
            AND (value #>> '{}')::numeric BETWEEN -2147483648 AND 2147483647);

ALTER TABLE public.events ADD CONSTRAINT events_wedding_metadata_readable CHECK (
    event_type <> 'wedding' OR (
        wedding_compat.is_legacy_text(metadata -> 'bride_name', 200, true)
        AND wedding_compat.is_legacy_text(metadata -> 'groom_name', 200, true)
        AND wedding_compat.is_legacy_time(metadata -> 'ceremony_time')
        AND wedding_compat.is_legacy_time(metadata -> 'reception_time')
        AND wedding_compat.is_legacy_text(metadata -> 'theme', 50, false)));

ALTER TABLE public.event_participants ADD CONSTRAINT event_participants_guest_metadata_readable
    CHECK (wedding_compat.is_legacy_text(metadata -> 'dietary_notes', NULL, false)
           AND wedding_compat.is_legacy_integer(metadata -> 'table_number'));

CREATE VIEW wedding_compat.wedding_events AS
SELECT e.id,
       e.tenant_id,
       e.slug,
       (e.metadata ->> 'bride_name')::varchar(200)   AS bride_name,
       (e.metadata ->> 'groom_name')::varchar(200)   AS groom_name,
       (e.start_date AT TIME ZONE e.timezone)::date  AS wedding_date,
       (e.metadata ->> 'ceremony_time')::time        AS ceremony_time,
       (e.metadata ->> 'reception_time')::time       AS reception_time,
       e.timezone,
       e.venue_name,
       e.venue_address,
       (e.metadata ->> 'theme')::varchar(50)         AS theme,
       e.status,
       e.created_at,
       e.updated_at
  FROM public.events e
 WHERE e.event_type = 'wedding';

CREATE VIEW wedding_compat.wedding_invitations AS
SELECT p.id,
       p.event_id                                     AS wedding_id,
       p.display_name                                 AS guest_name,
       p.email,
       p.phone,
       p.rsvp_status,
       p.party_size,
       p.metadata ->> 'dietary_notes'                 AS dietary_notes,
       (p.metadata ->> 'table_number')::integer       AS table_number,
       p.invited_at,
       p.responded_at
  FROM public.event_participants p
  JOIN public.events e ON e.id = p.event_id AND e.event_type = 'wedding'
 WHERE p.role = 'guest';

CREATE VIEW wedding_compat.wedding_sections AS
SELECT s.id,
       s.event_id AS wedding_id,
       s.section_type,
       s.title,
       s.content,
       s.position,
       s.is_visible
  FROM public.event_sections s
  JOIN public.events e ON e.id = s.event_id AND e.event_type = 'wedding';

-- The legacy tables' column defaults, so the old application's INSERTs that omit columns behave
-- as before.
ALTER VIEW wedding_compat.wedding_events
    ALTER COLUMN id SET DEFAULT nextval('public.events_id_seq'::regclass),
    ALTER COLUMN timezone SET DEFAULT 'UTC',
    ALTER COLUMN status SET DEFAULT 'draft',
    ALTER COLUMN created_at SET DEFAULT now(),
    ALTER COLUMN updated_at SET DEFAULT now();
ALTER VIEW wedding_compat.wedding_invitations
    ALTER COLUMN id SET DEFAULT nextval('public.event_participants_id_seq'::regclass),
    ALTER COLUMN rsvp_status SET DEFAULT 'pending',
    ALTER COLUMN party_size SET DEFAULT 1,
    ALTER COLUMN invited_at SET DEFAULT now();
ALTER VIEW wedding_compat.wedding_sections
    ALTER COLUMN id SET DEFAULT nextval('public.event_sections_id_seq'::regclass),
    ALTER COLUMN position SET DEFAULT 0,
    ALTER COLUMN is_visible SET DEFAULT true;

-- Writes through the views. Metadata is merged, not replaced, so keys the new engine added to a
-- wedding survive an edit made by the old application.
-- Each marks what it writes as the old application's (wedding_compat.write_origin = 'legacy',
-- local to the transaction, and put back before it returns), so that the change record 010
-- installs can tell these writes from the engine's; an error undoes the mark with the write.
CREATE FUNCTION wedding_compat.wedding_events_write() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    prior_origin text := coalesce(current_setting('wedding_compat.write_origin', true), '');
BEGIN
    PERFORM set_config('wedding_compat.write_origin', 'legacy', true);
    IF TG_OP = 'DELETE' THEN
        DELETE FROM public.events WHERE id = OLD.id AND event_type = 'wedding';
        PERFORM set_config('wedding_compat.write_origin', prior_origin, true);
        RETURN OLD;
    END IF;
    IF TG_OP = 'INSERT' THEN
        INSERT INTO public.events (id, tenant_id, event_type, title, slug, start_date, timezone,
                                   venue_name, venue_address, status, metadata,
                                   created_at, updated_at)
        VALUES (NEW.id, NEW.tenant_id, 'wedding', NEW.bride_name || ' & ' || NEW.groom_name,
                NEW.slug,
                wedding_compat.wedding_start(NEW.wedding_date, NEW.ceremony_time, NEW.timezone),
                NEW.timezone, NEW.venue_name, NEW.venue_address, NEW.status,
                jsonb_build_object('bride_name', NEW.bride_name, 'groom_name', NEW.groom_name,
                                   'ceremony_time', NEW.ceremony_time,
                                   'reception_time', NEW.reception_time, 'theme', NEW.theme),
                NEW.created_at, NEW.updated_at);
        PERFORM set_config('wedding_compat.write_origin', prior_origin, true);
        RETURN NEW;
    END IF;
    -- Only what the old application changed is written: the engine may have set a title, a
    -- precise start or metadata keys of its own, and an unrelated legacy edit must keep them.
    UPDATE public.events
       SET id = NEW.id,
           tenant_id = NEW.tenant_id,
           title = CASE WHEN (NEW.bride_name, NEW.groom_name)
                             IS DISTINCT FROM (OLD.bride_name, OLD.groom_name)
                        THEN NEW.bride_name || ' & ' || NEW.groom_name ELSE title END,
           slug = NEW.slug,
           start_date = CASE WHEN (NEW.wedding_date, NEW.ceremony_time, NEW.timezone)
                                  IS DISTINCT FROM (OLD.wedding_date, OLD.ceremony_time,
                                                    OLD.timezone)
                             THEN wedding_compat.wedding_start(NEW.wedding_date,
                                                               NEW.ceremony_time, NEW.timezone)
                             ELSE start_date END,
           timezone = NEW.timezone,
           venue_name = NEW.venue_name,
           venue_address = NEW.venue_address,
           status = NEW.status,
           metadata = metadata
               || CASE WHEN NEW.bride_name IS DISTINCT FROM OLD.bride_name
                       THEN jsonb_build_object('bride_name', NEW.bride_name) ELSE '{}' END
               || CASE WHEN NEW.groom_name IS DISTINCT FROM OLD.groom_name
                       THEN jsonb_build_object('groom_name', NEW.groom_name) ELSE '{}' END
               || CASE WHEN NEW.ceremony_time IS DISTINCT FROM OLD.ceremony_time
                       THEN jsonb_build_object('ceremony_time', NEW.ceremony_time) ELSE '{}' END
               || CASE WHEN NEW.reception_time IS DISTINCT FROM OLD.reception_time
                       THEN jsonb_build_object('reception_time', NEW.reception_time)
                       ELSE '{}' END
               || CASE WHEN NEW.theme IS DISTINCT FROM OLD.theme
                       THEN jsonb_build_object('theme', NEW.theme) ELSE '{}' END,
           created_at = NEW.created_at,
           updated_at = NEW.updated_at
     WHERE id = OLD.id AND event_type = 'wedding';
    PERFORM set_config('wedding_compat.write_origin', prior_origin, true);
    RETURN NEW;
END
$$;

CREATE FUNCTION wedding_compat.wedding_invitations_write() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    wedding_tenant uuid;
    prior_origin text := coalesce(current_setting('wedding_compat.write_origin', true), '');
BEGIN
    PERFORM set_config('wedding_compat.write_origin', 'legacy', true);
    IF TG_OP = 'DELETE' THEN
        DELETE FROM public.event_participants WHERE id = OLD.id;
        PERFORM set_config('wedding_compat.write_origin', prior_origin, true);
        RETURN OLD;
    END IF;
    SELECT tenant_id INTO wedding_tenant
      FROM public.events WHERE id = NEW.wedding_id AND event_type = 'wedding';
    IF wedding_tenant IS NULL THEN
        RAISE EXCEPTION 'wedding % does not exist', NEW.wedding_id
            USING ERRCODE = 'foreign_key_violation',
                  HINT = 'an invitation must belong to an existing wedding';
    END IF;
    IF TG_OP = 'INSERT' THEN
        INSERT INTO public.event_participants (id, event_id, tenant_id, role, display_name, email,
                                               phone, rsvp_status, party_size, metadata,
                                               invited_at, responded_at)
        VALUES (NEW.id, NEW.wedding_id, wedding_tenant, 'guest', NEW.guest_name, NEW.email,
                NEW.phone, NEW.rsvp_status, NEW.party_size,
                jsonb_build_object('dietary_notes', NEW.dietary_notes,
                                   'table_number', NEW.table_number),
                NEW.invited_at, NEW.responded_at);
        PERFORM set_config('wedding_compat.write_origin', prior_origin, true);
        RETURN NEW;
    END IF;
    UPDATE public.event_participants
       SET id = NEW.id,
           event_id = NEW.wedding_id,
           tenant_id = wedding_tenant,
           display_name = NEW.guest_name,
           email = NEW.email,
           phone = NEW.phone,
           rsvp_status = NEW.rsvp_status,
           party_size = NEW.party_size,
           metadata = metadata
               || CASE WHEN NEW.dietary_notes IS DISTINCT FROM OLD.dietary_notes
                       THEN jsonb_build_object('dietary_notes', NEW.dietary_notes) ELSE '{}' END
               || CASE WHEN NEW.table_number IS DISTINCT FROM OLD.table_number
                       THEN jsonb_build_object('table_number', NEW.table_number) ELSE '{}' END,
           invited_at = NEW.invited_at,
           responded_at = NEW.responded_at
     WHERE id = OLD.id;
    PERFORM set_config('wedding_compat.write_origin', prior_origin, true);
    RETURN NEW;
END
$$;

CREATE FUNCTION wedding_compat.wedding_sections_write() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    prior_origin text := coalesce(current_setting('wedding_compat.write_origin', true), '');
BEGIN
    PERFORM set_config('wedding_compat.write_origin', 'legacy', true);
    IF TG_OP = 'DELETE' THEN
        DELETE FROM public.event_sections WHERE id = OLD.id;
        PERFORM set_config('wedding_compat.write_origin', prior_origin, true);
        RETURN OLD;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM public.events
                    WHERE id = NEW.wedding_id AND event_type = 'wedding') THEN
        RAISE EXCEPTION 'wedding % does not exist', NEW.wedding_id
            USING ERRCODE = 'foreign_key_violation',
                  HINT = 'a section must belong to an existing wedding';
    END IF;
    IF TG_OP = 'INSERT' THEN
        INSERT INTO public.event_sections (id, event_id, section_type, title, content, position,
                                           is_visible)
        VALUES (NEW.id, NEW.wedding_id, NEW.section_type, NEW.title, NEW.content, NEW.position,
                NEW.is_visible);
        PERFORM set_config('wedding_compat.write_origin', prior_origin, true);
        RETURN NEW;
    END IF;
    UPDATE public.event_sections
       SET id = NEW.id,
           event_id = NEW.wedding_id,
           section_type = NEW.section_type,
           title = NEW.title,
           content = NEW.content,
           position = NEW.position,
           is_visible = NEW.is_visible
     WHERE id = OLD.id;
    PERFORM set_config('wedding_compat.write_origin', prior_origin, true);
    RETURN NEW;
END
$$;

CREATE TRIGGER wedding_events_write INSTEAD OF INSERT OR UPDATE OR DELETE
    ON wedding_compat.wedding_events
    FOR EACH ROW EXECUTE FUNCTION wedding_compat.wedding_events_write();
CREATE TRIGGER wedding_invitations_write INSTEAD OF INSERT OR UPDATE OR DELETE
    ON wedding_compat.wedding_invitations
    FOR EACH ROW EXECUTE FUNCTION wedding_compat.wedding_invitations_write();
CREATE TRIGGER wedding_sections_write INSTEAD OF INSERT OR UPDATE OR DELETE
    ON wedding_compat.wedding_sections
    FOR EACH ROW EXECUTE FUNCTION wedding_compat.wedding_sections_write();

-- The views act as their owner when read. wedding_compat_views (007) is no superuser, so the
-- tables' row-level security holds for them: the old application, naming no tenant, reads
-- every tenant as before; the engine, which serves the old front end's read path from them,
-- reads its own tenant's rows only. The migration's role joins it to hand the views over.
DO $$
BEGIN
    IF NOT pg_has_role(current_user, 'wedding_compat_views', 'MEMBER') THEN
        EXECUTE format('GRANT wedding_compat_views TO %I', current_user);
    END IF;
END
$$;
ALTER VIEW wedding_compat.wedding_events OWNER TO wedding_compat_views;
ALTER VIEW wedding_compat.wedding_invitations OWNER TO wedding_compat_views;
ALTER VIEW wedding_compat.wedding_sections OWNER TO wedding_compat_views;
GRANT SELECT ON wedding_compat.wedding_events, wedding_compat.wedding_invitations,
    wedding_compat.wedding_sections TO event_engine;
