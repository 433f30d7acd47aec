-- FASE 0 · 010: move every wedding into the generic tables, keep the legacy tables as *_backup,
-- and swap the compatibility views in under the legacy names, all in one transaction.

-- Writes wait from here to COMMIT; reads of the legacy tables go on until the rename below.
LOCK TABLE wedding_events, wedding_invitations, wedding_sections IN SHARE ROW EXCLUSIVE MODE;

-- Refuse, naming the rows, anything the generic schema cannot hold, rather than dropping it.
DO $$
DECLARE
    problems text := '';
    found text;
    negative text;
BEGIN
    SELECT string_agg(i.id::text, ', ' ORDER BY i.id) INTO found
      FROM (SELECT id FROM wedding_invitations i
             WHERE NOT EXISTS (SELECT 1 FROM wedding_events w WHERE w.id = i.wedding_id)
             ORDER BY id LIMIT 20) i;
    IF found IS NOT NULL THEN
        problems := problems || E'\n  wedding_invitations whose wedding does not exist (ids): ' || found;
    END IF;
    SELECT string_agg(s.id::text, ', ' ORDER BY s.id) INTO found
      FROM (SELECT id FROM wedding_sections s
             WHERE NOT EXISTS (SELECT 1 FROM wedding_events w WHERE w.id = s.wedding_id)
             ORDER BY id LIMIT 20) s;
    IF found IS NOT NULL THEN
        problems := problems || E'\n  wedding_sections whose wedding does not exist (ids): ' || found;
    END IF;
    SELECT string_agg(DISTINCT quote_literal(w.timezone), ', ') INTO found
      FROM wedding_events w
     WHERE NOT EXISTS (SELECT 1 FROM pg_timezone_names z WHERE z.name = w.timezone)
       AND NOT EXISTS (SELECT 1 FROM pg_timezone_abbrevs a WHERE a.abbrev = w.timezone);
    IF found IS NOT NULL THEN
        problems := problems || E'\n  wedding_events.timezone values PostgreSQL does not know: ' || found;
    END IF;
    -- A date and time that do not survive the trip through start_date: 24:00, or a local day
    -- the zone skipped (Pacific/Apia, 2011-12-30). Known zones only; unknown ones are above.
    SELECT string_agg(w.id::text, ', ' ORDER BY w.id) INTO found
      FROM (SELECT id FROM wedding_events w
             WHERE w.wedding_date IS NOT NULL
               -- CASE, because only it guarantees the zone is known before it is used.
               AND CASE WHEN EXISTS (SELECT 1 FROM pg_timezone_names z WHERE z.name = w.timezone)
                          OR EXISTS (SELECT 1 FROM pg_timezone_abbrevs a
                                      WHERE a.abbrev = w.timezone)
                        THEN w.ceremony_time = time '24:00'
                             OR (wedding_compat.wedding_start(w.wedding_date, w.ceremony_time,
                                                              w.timezone)
                                 AT TIME ZONE w.timezone)::date <> w.wedding_date
                        ELSE false END
             ORDER BY id LIMIT 20) w;
    IF found IS NOT NULL THEN
        problems := problems || E'\n  wedding_events whose wedding_date and ceremony_time do not exist in their time zone, or a ceremony_time of 24:00 (ids): ' || found;
    END IF;
    -- Rows the engine already created (after an earlier migration and rollback) keep their ids
    -- and slugs; a legacy row may not collide with them.
    SELECT string_agg(w.id::text, ', ' ORDER BY w.id) INTO found
      FROM (SELECT w.id FROM wedding_events w JOIN events e ON e.id = w.id
             ORDER BY w.id LIMIT 20) w;
    IF found IS NOT NULL THEN
        problems := problems || E'\n  wedding_events ids already used in events (ids): ' || found;
    END IF;
    SELECT string_agg(i.id::text, ', ' ORDER BY i.id) INTO found
      FROM (SELECT i.id FROM wedding_invitations i JOIN event_participants p ON p.id = i.id
             ORDER BY i.id LIMIT 20) i;
    IF found IS NOT NULL THEN
        problems := problems || E'\n  wedding_invitations ids already used in event_participants (ids): ' || found;
    END IF;
    SELECT string_agg(s.id::text, ', ' ORDER BY s.id) INTO found
      FROM (SELECT s.id FROM wedding_sections s JOIN event_sections x ON x.id = s.id
             ORDER BY s.id LIMIT 20) s;
    IF found IS NOT NULL THEN
        problems := problems || E'\n  wedding_sections ids already used in event_sections (ids): ' || found;
    END IF;
    SELECT string_agg(w.id::text, ', ' ORDER BY w.id) INTO found
      FROM (SELECT w.id FROM wedding_events w
              JOIN events e ON e.tenant_id = w.tenant_id AND e.slug = w.slug
             ORDER BY w.id LIMIT 20) w;
    IF found IS NOT NULL THEN
        problems := problems || E'\n  wedding_events whose slug is already used by an event of the same tenant (ids): ' || found;
    END IF;
    -- One scan of the (largest) invitations table for both of its value checks.
    SELECT string_agg(DISTINCT quote_literal(rsvp_status), ', ')
               FILTER (WHERE rsvp_status NOT IN ('pending', 'accepted', 'declined', 'maybe')),
           array_to_string((array_agg(id ORDER BY id) FILTER (WHERE party_size < 0))[1:20], ', ')
      INTO found, negative
      FROM wedding_invitations
     WHERE rsvp_status NOT IN ('pending', 'accepted', 'declined', 'maybe') OR party_size < 0;
    IF found IS NOT NULL THEN
        problems := problems || E'\n  wedding_invitations.rsvp_status values outside pending/accepted/declined/maybe: ' || found;
    END IF;
    IF negative IS NOT NULL THEN
        problems := problems || E'\n  wedding_invitations with a negative party_size (ids): ' || negative;
    END IF;
    SELECT string_agg(DISTINCT quote_literal(status), ', ') INTO found
      FROM wedding_events
     WHERE status NOT IN ('draft', 'published', 'completed', 'cancelled', 'archived');
    IF found IS NOT NULL THEN
        problems := problems || E'\n  wedding_events.status values outside draft/published/completed/cancelled/archived: ' || found;
    END IF;
    SELECT string_agg(d.tenant_id || '/' || d.slug, ', ') INTO found
      FROM (SELECT tenant_id, slug FROM wedding_events
             GROUP BY tenant_id, slug HAVING count(*) > 1 LIMIT 20) d;
    IF found IS NOT NULL THEN
        problems := problems || E'\n  wedding_events slugs used twice in one tenant (tenant/slug): ' || found;
    END IF;
    IF problems <> '' THEN
        RAISE EXCEPTION 'legacy data the events schema cannot hold; nothing was migrated:%', problems
            USING HINT = 'fix or delete these rows in the legacy tables, then run the migration again';
    END IF;
END
$$;

-- Bulk load the way PostgreSQL loads fastest: secondary indexes and foreign keys of the three
-- tables are set aside and rebuilt after the rows are in (one sort per index, one join per
-- key), instead of being maintained row by row. Their definitions are read from the catalog,
-- so they come back exactly as 007 and 008 made them.
CREATE TEMPORARY TABLE fase0_deferred (statement text NOT NULL, restore text NOT NULL)
    ON COMMIT DROP;
INSERT INTO fase0_deferred
SELECT format('DROP INDEX %s', i.indexrelid::regclass), pg_get_indexdef(i.indexrelid)
  FROM pg_index i
 WHERE i.indrelid IN ('events'::regclass, 'event_participants'::regclass,
                      'event_sections'::regclass)
   AND NOT i.indisprimary
   AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid);
INSERT INTO fase0_deferred
SELECT format('ALTER TABLE %s DROP CONSTRAINT %I', c.conrelid::regclass, c.conname),
       format('ALTER TABLE %s ADD CONSTRAINT %I %s', c.conrelid::regclass, c.conname,
              pg_get_constraintdef(c.oid))
  FROM pg_constraint c
 WHERE c.contype = 'f'
   AND c.conrelid IN ('events'::regclass, 'event_participants'::regclass,
                      'event_sections'::regclass)
   -- Only keys between the new tables: dropping one that references tenants or event_types
   -- would lock those shared tables against every reader until COMMIT.
   AND c.confrelid IN ('events'::regclass, 'event_participants'::regclass,
                       'event_sections'::regclass);
DO $$
DECLARE
    step record;
BEGIN
    FOR step IN SELECT statement FROM fase0_deferred LOOP
        EXECUTE step.statement;
    END LOOP;
END
$$;

INSERT INTO events (id, tenant_id, event_type, title, slug, start_date, end_date, timezone,
                    venue_name, venue_address, status, metadata, created_at, updated_at)
SELECT w.id, w.tenant_id, 'wedding', w.bride_name || ' & ' || w.groom_name, w.slug,
       wedding_compat.wedding_start(w.wedding_date, w.ceremony_time, w.timezone), NULL,
       w.timezone, w.venue_name, w.venue_address, w.status,
       jsonb_build_object('bride_name', w.bride_name, 'groom_name', w.groom_name,
                          'ceremony_time', w.ceremony_time, 'reception_time', w.reception_time,
                          'theme', w.theme),
       w.created_at, w.updated_at
  FROM wedding_events w;

INSERT INTO event_participants (id, event_id, tenant_id, role, display_name, email, phone,
                                rsvp_status, party_size, metadata, invited_at, responded_at)
SELECT i.id, i.wedding_id, w.tenant_id, 'guest', i.guest_name, i.email, i.phone, i.rsvp_status,
       i.party_size,
       jsonb_build_object('dietary_notes', i.dietary_notes, 'table_number', i.table_number),
       i.invited_at, i.responded_at
  FROM wedding_invitations i
  JOIN wedding_events w ON w.id = i.wedding_id;

INSERT INTO event_sections (id, event_id, section_type, title, content, position, is_visible)
SELECT s.id, s.wedding_id, s.section_type, s.title, s.content, s.position, s.is_visible
  FROM wedding_sections s;

-- The indexes and foreign keys set aside above, rebuilt over the loaded rows.
DO $$
DECLARE
    step record;
BEGIN
    FOR step IN SELECT restore FROM fase0_deferred ORDER BY restore LIKE 'ALTER TABLE%' LOOP
        EXECUTE step.restore;
    END LOOP;
END
$$;

-- Planner statistics for the loaded rows. Rebuilding an index records a row count but no
-- column statistics, and autovacuum may not look at the tables for minutes (or, on a small
-- database, ever): until then the planner guesses every selectivity, and for instance reads a
-- guest by email through every wedding's guest list instead of the email index. ANALYZE
-- samples a bounded number of rows (about a second at ten million) and blocks no writer.
ANALYZE events, event_participants, event_sections;

-- New rows (from the engine or through the views) must not collide with the migrated ids, nor
-- reuse the id of a legacy row deleted before the migration (an emailed /rsvp/204 link must not
-- lead to another guest): each identity restarts past both.
-- ALTER ... RESTART is transactional, unlike setval(), so a dry run leaves no trace.
DO $$
DECLARE
    pair text[];
    next_id bigint;
BEGIN
    FOREACH pair SLICE 1 IN ARRAY ARRAY[['events', 'wedding_events'],
                                        ['event_participants', 'wedding_invitations'],
                                        ['event_sections', 'wedding_sections']] LOOP
        EXECUTE format(
            'SELECT greatest((SELECT coalesce(max(id), 0) + 1 FROM %I),
                             (SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END
                                FROM %s))',
            pair[1], pg_get_serial_sequence(pair[2], 'id')) INTO next_id;
        EXECUTE format('ALTER TABLE %I ALTER COLUMN id RESTART WITH %s', pair[1], next_id);
    END LOOP;
END
$$;

-- The old application's roles keep what they could do: the legacy tables' privileges move to
-- the views, and its INSERTs may draw ids from the new sequences (view defaults run as them).
DO $$
DECLARE
    pair text[];
    grant_row record;
BEGIN
    FOREACH pair SLICE 1 IN ARRAY ARRAY[['wedding_events', 'events'],
                                        ['wedding_invitations', 'event_participants'],
                                        ['wedding_sections', 'event_sections']] LOOP
        FOR grant_row IN
            SELECT a.privilege_type, a.grantee, a.is_grantable
              FROM pg_class c, aclexplode(c.relacl) a
             WHERE c.oid = format('public.%I', pair[1])::regclass
               AND a.grantee <> c.relowner
        LOOP
            EXECUTE format('GRANT %s ON wedding_compat.%I TO %s%s', grant_row.privilege_type,
                           pair[1],
                           CASE WHEN grant_row.grantee = 0 THEN 'PUBLIC'
                                ELSE grant_row.grantee::regrole::text END,
                           CASE WHEN grant_row.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
            IF grant_row.privilege_type = 'INSERT' THEN
                EXECUTE format('GRANT USAGE ON SEQUENCE %s TO %s',
                               pg_get_serial_sequence(pair[2], 'id'),
                               CASE WHEN grant_row.grantee = 0 THEN 'PUBLIC'
                                    ELSE grant_row.grantee::regrole::text END);
            END IF;
        END LOOP;
    END LOOP;
END
$$;

ALTER TABLE wedding_events RENAME TO wedding_events_backup;
ALTER TABLE wedding_invitations RENAME TO wedding_invitations_backup;
ALTER TABLE wedding_sections RENAME TO wedding_sections_backup;
ALTER VIEW wedding_compat.wedding_events SET SCHEMA public;
ALTER VIEW wedding_compat.wedding_invitations SET SCHEMA public;
ALTER VIEW wedding_compat.wedding_sections SET SCHEMA public;

-- The change record: every row written to the new tables from now on, by the old application
-- through the views (origin 'legacy': their write triggers mark it, see 009) or directly, by
-- the engine or anyone else (origin 'engine'). The parity gates hold every row the migration
-- copied to its *_backup row exactly, and leave out the keys recorded here, so legitimate
-- writes made during the blue-green window never read as migration defects. Created last, after
-- the copy, so that none of the migration's own rows is recorded; a write that bypasses
-- triggers is not recorded either, and reads as a defect (expectations.toml [change_log]).
CREATE TABLE wedding_compat.row_changes (
    relation    text        NOT NULL,
    row_key     text        NOT NULL,
    origin      text        NOT NULL CHECK (origin IN ('legacy', 'engine')),
    op          text        NOT NULL CHECK (op IN ('INSERT', 'UPDATE', 'DELETE')),
    changed_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    changed_by  name        NOT NULL DEFAULT session_user
);
-- No index: the gates read the record whole, one hash anti-join per table, so an index would
-- only add to the cost of every write.

-- SECURITY DEFINER: whoever writes to the new tables is recorded, without rights on the record.
CREATE FUNCTION wedding_compat.record_row_change() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    origin text := CASE current_setting('wedding_compat.write_origin', true)
                       WHEN 'legacy' THEN 'legacy' ELSE 'engine' END;
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO wedding_compat.row_changes (relation, row_key, origin, op)
        VALUES (TG_TABLE_NAME, NEW.id::text, origin, TG_OP);
    ELSIF TG_OP = 'DELETE' OR NEW.id = OLD.id THEN
        INSERT INTO wedding_compat.row_changes (relation, row_key, origin, op)
        VALUES (TG_TABLE_NAME, OLD.id::text, origin, TG_OP);
    ELSE
        -- A changed key: the row left one key and took another; both are no longer the
        -- migration's.
        INSERT INTO wedding_compat.row_changes (relation, row_key, origin, op)
        VALUES (TG_TABLE_NAME, OLD.id::text, origin, TG_OP),
               (TG_TABLE_NAME, NEW.id::text, origin, TG_OP);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER row_changes_record AFTER INSERT OR UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION wedding_compat.record_row_change();
CREATE TRIGGER row_changes_record AFTER INSERT OR UPDATE OR DELETE ON event_participants
    FOR EACH ROW EXECUTE FUNCTION wedding_compat.record_row_change();
CREATE TRIGGER row_changes_record AFTER INSERT OR UPDATE OR DELETE ON event_sections
    FOR EACH ROW EXECUTE FUNCTION wedding_compat.record_row_change();
