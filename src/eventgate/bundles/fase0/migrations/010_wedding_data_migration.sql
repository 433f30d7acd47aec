-- FASE 0 · 010: move every wedding into the generic tables, keep the legacy tables as *_backup,
-- and swap the compatibility views in under the legacy names, online: the old application
-- keeps writing through the legacy tables the whole time, and no write of it waits for the copy.
--
-- The runner runs this script in phases (the `-- eventgate:` lines; docs/online-migrations.md),
-- each in a transaction of its own, and keeps its place in the ledger schema, so that a run cut
-- short (kill -9, a failed batch) resumes where it stopped or is undone (the abort phases at the
-- end). A dry run goes through every phase in one transaction and rolls it back.
--   expand    refuse bad legacy rows; triggers on the legacy tables start carrying every write
--             into the generic tables, through the compatibility views' own write triggers (009)
--   backfill  copy the rows that were there before, a batch of keys per transaction, each batch
--             holding row locks on its own rows only, never a lock that makes a writer wait
--   rebuild   the three participant indexes expand set aside, built CONCURRENTLY
--   reattach  the participants' foreign key back, NOT VALID (a moment's lock)
--   verify    the foreign key validated; every legacy row has its copy and no copy lacks its
--             row; planner statistics
--   switch    one short transaction: the legacy tables become *_backup, the views take their
--             names, the change record starts

-- eventgate:phase expand

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

-- What the old application writes from here on is carried into the generic tables in its own
-- transaction, by the same write triggers that carry its writes through the views after the
-- switch (009): an insert is inserted, an update updates the copy if the backfill already made it
-- (if not, the backfill copies the updated row when it gets there) and a delete deletes it.
-- SECURITY DEFINER: the old application's roles have no rights on the generic tables.
CREATE FUNCTION wedding_compat.carry_legacy_wedding(wedding bigint) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
    IF wedding IS NULL OR EXISTS (SELECT 1 FROM public.events WHERE id = wedding) THEN
        RETURN;
    END IF;
    -- A guest or section of a wedding the backfill has not copied yet: the wedding goes first.
    -- The lock waits out a batch copying this wedding right now (it holds the row FOR SHARE);
    -- then the copy is there, or not, for certain.
    PERFORM 1 FROM public.wedding_events WHERE id = wedding FOR NO KEY UPDATE;
    IF FOUND AND NOT EXISTS (SELECT 1 FROM public.events WHERE id = wedding) THEN
        INSERT INTO wedding_compat.wedding_events
        SELECT w.* FROM public.wedding_events w WHERE w.id = wedding;
    END IF;
END
$$;

-- The guests' backfill row-locks none of the ten million legacy guests (FOR SHARE writes a lock
-- into every row it reads: a sixth of the copy's time at 10M). Instead each batch holds, from
-- before it reads, an exclusive advisory lock on every thousand ids it covers, and an update or
-- delete of a guest waits on the shared one of its id's thousand before it reaches the copy: it
-- then either waits for the batch that copies the guest and finds the copy, or the batch waits
-- for it and copies the guest as it left it. Classid 0x45474231 ("EGB1").
CREATE FUNCTION wedding_compat.guard_guest_batch(after bigint, upto bigint) RETURNS void
    LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    -- In ascending order, as every batch takes them: two batches never wait on each other.
    FOR thousand IN floor((after + 1) / 1000.0)::integer .. floor(upto / 1000.0)::integer LOOP
        PERFORM pg_advisory_xact_lock(1162297905, thousand);
    END LOOP;
END
$$;

CREATE FUNCTION wedding_compat.carry_legacy_write() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    through text := format('wedding_compat.%I', TG_TABLE_NAME);  -- the view of the same name
    columns text;
BEGIN
    IF TG_TABLE_NAME = 'wedding_invitations' AND TG_OP <> 'INSERT' THEN
        PERFORM pg_advisory_xact_lock_shared(1162297905, floor(OLD.id / 1000.0)::integer);
    END IF;
    IF TG_OP = 'DELETE' THEN
        EXECUTE format('DELETE FROM %s WHERE id = $1', through) USING OLD.id;
        RETURN NULL;
    END IF;
    IF TG_TABLE_NAME <> 'wedding_events' THEN
        PERFORM wedding_compat.carry_legacy_wedding(NEW.wedding_id);
    END IF;
    IF TG_OP = 'INSERT' THEN
        EXECUTE format('INSERT INTO %s SELECT ($1).*', through) USING NEW;
    ELSE
        SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) INTO columns
          FROM pg_attribute WHERE attrelid = TG_RELID AND attnum > 0 AND NOT attisdropped;
        EXECUTE format('UPDATE %s SET (%s) = (SELECT %s FROM (SELECT ($1).*) n) WHERE id = $2',
                       through, columns, columns) USING NEW, OLD.id;
    END IF;
    RETURN NULL;
END
$$;

-- Set aside for the backfill, built back after it (the rebuild and reattach phases): writing ten
-- million guests into a table that maintains three more indexes row by row and checks a foreign
-- key per row takes twice as long as building them once afterwards (docs/online-migrations.md
-- § Measured). Nobody writes to the participants until the triggers below exist, so these locks
-- make no writer wait. Not IF EXISTS: the indexes are 008's, and the rebuild builds them all,
-- so a missing one would be built here and hide that 008 lacks it.
DO $$
DECLARE
    missing text;
BEGIN
    SELECT string_agg(name, ', ') INTO missing
      FROM unnest(ARRAY['event_participants_event_idx', 'event_participants_email_idx',
                        'event_participants_tenant_idx']) name
     WHERE to_regclass(format('public.%I', name)) IS NULL;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                    WHERE conrelid = 'public.event_participants'::regclass
                      AND conname = 'event_participants_event_tenant_fkey') THEN
        missing := concat_ws(', ', missing, 'the foreign key event_participants_event_tenant_fkey');
    END IF;
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'the participants lack what 010 sets aside and builds back (%); nothing was migrated', missing
            USING HINT = 'they come from 007 and 008: apply them as shipped, then run the migration again';
    END IF;
END
$$;
ALTER TABLE event_participants DROP CONSTRAINT event_participants_event_tenant_fkey;
DROP INDEX event_participants_event_idx;
DROP INDEX event_participants_email_idx;
DROP INDEX event_participants_tenant_idx;

-- What the foreign key would cascade while it is away: 009's view triggers change an event's
-- id or tenant (the old application updated its wedding), or delete it. Without the event
-- index the participants cannot be found cheaply, so the change is written down here, in the
-- writer's transaction, and carried out once the index is back (rebuild, then reattach under
-- the foreign key's own lock, for what came in meanwhile).
CREATE TABLE wedding_compat.pending_event_keys (
    seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    old_id      bigint NOT NULL,
    old_tenant  uuid   NOT NULL,
    new_id      bigint,  -- NULL: the event was deleted
    new_tenant  uuid
);

CREATE FUNCTION wedding_compat.note_event_keys() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO wedding_compat.pending_event_keys (old_id, old_tenant)
        VALUES (OLD.id, OLD.tenant_id);
    ELSIF (NEW.id, NEW.tenant_id) IS DISTINCT FROM (OLD.id, OLD.tenant_id) THEN
        INSERT INTO wedding_compat.pending_event_keys (old_id, old_tenant, new_id, new_tenant)
        VALUES (OLD.id, OLD.tenant_id, NEW.id, NEW.tenant_id);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER note_event_keys AFTER DELETE OR UPDATE OF id, tenant_id ON events
    FOR EACH ROW EXECUTE FUNCTION wedding_compat.note_event_keys();

-- ... carried out in the order written (one event's changes are written in the order its row
-- lock let them commit), each once: its row goes in the same transaction.
CREATE FUNCTION wedding_compat.apply_event_keys() RETURNS bigint
    LANGUAGE plpgsql SET search_path = pg_catalog, public AS $$
DECLARE
    change record;
    done bigint := 0;
BEGIN
    FOR change IN SELECT * FROM wedding_compat.pending_event_keys ORDER BY seq LOOP
        IF change.new_id IS NULL THEN
            DELETE FROM event_participants
             WHERE event_id = change.old_id AND tenant_id = change.old_tenant;
        ELSE
            UPDATE event_participants SET event_id = change.new_id, tenant_id = change.new_tenant
             WHERE event_id = change.old_id AND tenant_id = change.old_tenant;
        END IF;
        DELETE FROM wedding_compat.pending_event_keys WHERE seq = change.seq;
        done := done + 1;
    END LOOP;
    RETURN done;
END
$$;

-- Created last, so the SHARE ROW EXCLUSIVE lock each takes is held only for the moment to COMMIT
-- (the checks above read every legacy row, under no lock a writer waits for).
CREATE TRIGGER carry_legacy_writes AFTER INSERT OR UPDATE OR DELETE ON wedding_events
    FOR EACH ROW EXECUTE FUNCTION wedding_compat.carry_legacy_write();
CREATE TRIGGER carry_legacy_writes AFTER INSERT OR UPDATE OR DELETE ON wedding_invitations
    FOR EACH ROW EXECUTE FUNCTION wedding_compat.carry_legacy_write();
CREATE TRIGGER carry_legacy_writes AFTER INSERT OR UPDATE OR DELETE ON wedding_sections
    FOR EACH ROW EXECUTE FUNCTION wedding_compat.carry_legacy_write();

-- The rows that were there before the triggers, a batch of keys at a time. The runner sets
-- eventgate.batch_after and eventgate.batch_upto; the last key is read once, when the phase
-- starts (rows added after it are the triggers'). FOR SHARE: a writer of one of the batch's rows
-- waits for the batch (milliseconds), and the batch copies the row as that writer left it; a row
-- deleted meanwhile is not copied. ON CONFLICT: the row was carried by a trigger already (the
-- runner tries each batch without it first, and again with it when that meets such a row).

-- Weddings in smaller batches: a wedding row costs more to copy (its start, its metadata), and a
-- guest written for a wedding not copied yet waits for the batch that holds it (measured at 10M
-- guests: 0.78 s for 5,000 weddings).
-- eventgate:backfill table=wedding_events key=id rows=1000
INSERT INTO events (id, tenant_id, event_type, title, slug, start_date, end_date, timezone,
                    venue_name, venue_address, status, metadata, created_at, updated_at)
SELECT w.id, w.tenant_id, 'wedding', w.bride_name || ' & ' || w.groom_name, w.slug,
       wedding_compat.wedding_start(w.wedding_date, w.ceremony_time, w.timezone), NULL,
       w.timezone, w.venue_name, w.venue_address, w.status,
       jsonb_build_object('bride_name', w.bride_name, 'groom_name', w.groom_name,
                          'ceremony_time', w.ceremony_time, 'reception_time', w.reception_time,
                          'theme', w.theme),
       w.created_at, w.updated_at
  FROM wedding_events w
 WHERE w.id > current_setting('eventgate.batch_after')::bigint
   AND w.id <= current_setting('eventgate.batch_upto')::bigint
   FOR SHARE OF w
ON CONFLICT (id) DO NOTHING;

-- Guests after their weddings, so that each finds its event.
-- Guests without a row lock of their own: guard_guest_batch, above, keeps their writers and the
-- batch apart. Their weddings are row-locked still (a wedding moved to another tenant while its
-- guests are copied waits for the batch). Each guest's wedding looked up by its key (LATERAL):
-- a join lets the planner hash every wedding for each batch, the most of a batch's time at
-- 100,000 weddings.
-- eventgate:backfill table=wedding_invitations key=id rows=5000 guard=wedding_compat.guard_guest_batch
INSERT INTO event_participants (id, event_id, tenant_id, role, display_name, email, phone,
                                rsvp_status, party_size, metadata, invited_at, responded_at)
SELECT i.id, i.wedding_id, w.tenant_id, 'guest', i.guest_name, i.email, i.phone, i.rsvp_status,
       i.party_size,
       jsonb_build_object('dietary_notes', i.dietary_notes, 'table_number', i.table_number),
       i.invited_at, i.responded_at
  FROM wedding_invitations i
 CROSS JOIN LATERAL (SELECT w.tenant_id FROM wedding_events w
                      WHERE w.id = i.wedding_id FOR SHARE) w
 WHERE i.id > current_setting('eventgate.batch_after')::bigint
   AND i.id <= current_setting('eventgate.batch_upto')::bigint
ON CONFLICT (id) DO NOTHING;

-- eventgate:backfill table=wedding_sections key=id rows=5000
INSERT INTO event_sections (id, event_id, section_type, title, content, position, is_visible)
SELECT s.id, s.wedding_id, s.section_type, s.title, s.content, s.position, s.is_visible
  FROM wedding_sections s
 WHERE s.id > current_setting('eventgate.batch_after')::bigint
   AND s.id <= current_setting('eventgate.batch_upto')::bigint
   FOR SHARE OF s
ON CONFLICT (id) DO NOTHING;

-- eventgate:concurrently rebuild
-- Each statement a transaction of its own: a CONCURRENTLY build takes SHARE UPDATE EXCLUSIVE,
-- which no writer waits for. Cut short, a build leaves its index INVALID; the runner drops it
-- and builds it again when the run resumes.
CREATE INDEX CONCURRENTLY IF NOT EXISTS event_participants_event_idx
    ON event_participants (event_id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS event_participants_email_idx
    ON event_participants (email);
CREATE INDEX CONCURRENTLY IF NOT EXISTS event_participants_tenant_idx
    ON event_participants (tenant_id);
-- The event changes written down so far, now that the event index finds their participants:
-- most of them, outside any lock, so that reattach has only the last few to do.
SELECT wedding_compat.apply_event_keys();

-- eventgate:phase reattach lock_timeout_ms=500
-- The foreign key back, NOT VALID: it holds every write from now on, and cascades in place of
-- the trigger, which goes in the same transaction. First, under the locks this needs anyway
-- (no event changes meanwhile), the event changes written down since the rebuild, a handful at
-- most. Nothing here reads more than those rows, so the locks last a moment; given up after
-- 500 ms behind a writer, and tried again. Taken at their strongest and in the order a writer
-- takes them (every carried guest write reads events first): dropping the trigger needs ACCESS
-- EXCLUSIVE on events, and upgrading to it from the foreign key's SHARE ROW EXCLUSIVE would
-- deadlock with a writer holding events and waiting for the upgrade's first lock.
LOCK TABLE events IN ACCESS EXCLUSIVE MODE;
LOCK TABLE event_participants IN SHARE ROW EXCLUSIVE MODE;
SELECT wedding_compat.apply_event_keys();
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                    WHERE conrelid = 'public.event_participants'::regclass
                      AND conname = 'event_participants_event_tenant_fkey') THEN
        ALTER TABLE event_participants ADD CONSTRAINT event_participants_event_tenant_fkey
            FOREIGN KEY (event_id, tenant_id) REFERENCES events (id, tenant_id)
            ON DELETE CASCADE ON UPDATE CASCADE NOT VALID;
    END IF;
END
$$;
DROP TRIGGER note_event_keys ON events;
DROP FUNCTION wedding_compat.note_event_keys();
DROP FUNCTION wedding_compat.apply_event_keys();
DROP TABLE wedding_compat.pending_event_keys;

-- eventgate:phase verify
-- Every participant row written before the foreign key came back has its event: a scan under
-- SHARE UPDATE EXCLUSIVE, which no writer waits for.
ALTER TABLE event_participants VALIDATE CONSTRAINT event_participants_event_tenant_fkey;

-- The triggers write in the writer's own transaction, so one snapshot sees both sides alike:
-- each comparison below is one statement, one snapshot, exact while the old application writes.
DO $$
DECLARE
    problems text := '';
    found text;
BEGIN
    SELECT string_agg(id::text, ', ') INTO found
      FROM (SELECT w.id FROM wedding_events w
             WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.id = w.id) ORDER BY 1 LIMIT 20) x;
    IF found IS NOT NULL THEN
        problems := problems || E'\n  wedding_events not copied to events (ids): ' || found;
    END IF;
    SELECT string_agg(id::text, ', ') INTO found
      FROM (SELECT e.id FROM events e WHERE e.event_type = 'wedding'
               AND NOT EXISTS (SELECT 1 FROM wedding_events w WHERE w.id = e.id)
             ORDER BY 1 LIMIT 20) x;
    IF found IS NOT NULL THEN
        problems := problems || E'\n  weddings in events with no wedding_events row (ids): ' || found;
    END IF;
    SELECT string_agg(id::text, ', ') INTO found
      FROM (SELECT i.id FROM wedding_invitations i
             WHERE NOT EXISTS (SELECT 1 FROM event_participants p WHERE p.id = i.id)
             ORDER BY 1 LIMIT 20) x;
    IF found IS NOT NULL THEN
        problems := problems || E'\n  wedding_invitations not copied to event_participants (ids): ' || found;
    END IF;
    SELECT string_agg(id::text, ', ') INTO found
      FROM (SELECT p.id FROM event_participants p JOIN events e ON e.id = p.event_id
             WHERE e.event_type = 'wedding'
               AND NOT EXISTS (SELECT 1 FROM wedding_invitations i WHERE i.id = p.id)
             ORDER BY 1 LIMIT 20) x;
    IF found IS NOT NULL THEN
        problems := problems || E'\n  wedding guests in event_participants with no wedding_invitations row (ids): ' || found;
    END IF;
    SELECT string_agg(id::text, ', ') INTO found
      FROM (SELECT s.id FROM wedding_sections s
             WHERE NOT EXISTS (SELECT 1 FROM event_sections x WHERE x.id = s.id)
             ORDER BY 1 LIMIT 20) x;
    IF found IS NOT NULL THEN
        problems := problems || E'\n  wedding_sections not copied to event_sections (ids): ' || found;
    END IF;
    SELECT string_agg(id::text, ', ') INTO found
      FROM (SELECT x.id FROM event_sections x JOIN events e ON e.id = x.event_id
             WHERE e.event_type = 'wedding'
               AND NOT EXISTS (SELECT 1 FROM wedding_sections s WHERE s.id = x.id)
             ORDER BY 1 LIMIT 20) x;
    IF found IS NOT NULL THEN
        problems := problems || E'\n  wedding sections in event_sections with no wedding_sections row (ids): ' || found;
    END IF;
    IF problems <> '' THEN
        RAISE EXCEPTION 'the copy and the legacy tables disagree; the legacy names were not switched:%', problems
            USING HINT = 'eventgate migrate --rollback undoes the copy (the legacy tables were never changed); then run the migration again';
    END IF;
END
$$;

-- Planner statistics for the copied rows, before anyone queries them: without column statistics
-- the planner guesses every selectivity (and for instance reads a guest by email through every
-- wedding's guest list). ANALYZE samples a bounded number of rows and blocks no writer.
ANALYZE events, event_participants, event_sections;

-- eventgate:phase switch lock_timeout_ms=500
-- The only moment the old application waits: ACCESS EXCLUSIVE on its three tables, for the
-- statements below, none of which reads more than an index's last entry. Taken all at once,
-- given up after lock_timeout when a reader is in the way (who then waited at most that long)
-- and tried again by the runner.
LOCK TABLE wedding_events, wedding_invitations, wedding_sections IN ACCESS EXCLUSIVE MODE;

-- What keeps the copy equal to the legacy tables since the verify phase counted it: the carrying
-- triggers, on every table, enabled. Without them a write may have been missed, and the switch
-- refuses rather than count ten million rows under this lock.
DO $$
DECLARE
    missing text;
BEGIN
    SELECT string_agg(t.name, ', ') INTO missing
      FROM unnest(ARRAY['wedding_events', 'wedding_invitations', 'wedding_sections']) t(name)
     WHERE NOT EXISTS (SELECT 1 FROM pg_trigger g
                        WHERE g.tgrelid = format('public.%I', t.name)::regclass
                          AND g.tgname = 'carry_legacy_writes' AND g.tgenabled IN ('O', 'A'));
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'writes to % may not have been carried into the generic tables since the copy was verified (the carry_legacy_writes trigger is missing or disabled); the legacy names were not switched', missing
            USING HINT = 'eventgate migrate --rollback undoes the copy; then run the migration again';
    END IF;
END
$$;
DROP TRIGGER carry_legacy_writes ON wedding_events;
DROP TRIGGER carry_legacy_writes ON wedding_invitations;
DROP TRIGGER carry_legacy_writes ON wedding_sections;
DROP FUNCTION wedding_compat.carry_legacy_write();
DROP FUNCTION wedding_compat.carry_legacy_wedding(bigint);
DROP FUNCTION wedding_compat.guard_guest_batch(bigint, bigint);

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

-- eventgate:abort unhook lock_timeout_ms=500
-- Undoing a run that stopped before the switch (`eventgate migrate --rollback`): the legacy
-- tables were never changed, so only the triggers go (a moment of ACCESS EXCLUSIVE) ...
DROP TRIGGER IF EXISTS carry_legacy_writes ON wedding_events;
DROP TRIGGER IF EXISTS carry_legacy_writes ON wedding_invitations;
DROP TRIGGER IF EXISTS carry_legacy_writes ON wedding_sections;
DROP FUNCTION IF EXISTS wedding_compat.carry_legacy_write();
DROP FUNCTION IF EXISTS wedding_compat.carry_legacy_wedding(bigint);
DROP FUNCTION IF EXISTS wedding_compat.guard_guest_batch(bigint, bigint);
DROP TRIGGER IF EXISTS note_event_keys ON events;
DROP FUNCTION IF EXISTS wedding_compat.note_event_keys();
DROP FUNCTION IF EXISTS wedding_compat.apply_event_keys();
DROP TABLE IF EXISTS wedding_compat.pending_event_keys;

-- eventgate:abort delete
-- ... and then, in a transaction of its own that no legacy writer waits for, the copies.
-- Participants first, by hand: their foreign key may be set aside (expand). Sections of weddings
-- go with their events (ON DELETE CASCADE).
DELETE FROM event_participants p USING events e
 WHERE e.id = p.event_id AND e.event_type = 'wedding';
DELETE FROM events WHERE event_type = 'wedding';

-- eventgate:abort restore
-- ... and last what expand set aside, as it was: the indexes (an INVALID one, left by a rebuild
-- cut short, goes first) and the foreign key, validated. The participants the engine may own
-- are all that is left to index and check.
DO $$
DECLARE
    name text;
BEGIN
    FOREACH name IN ARRAY ARRAY['event_participants_event_idx', 'event_participants_email_idx',
                                'event_participants_tenant_idx'] LOOP
        IF EXISTS (SELECT 1 FROM pg_index
                    WHERE indexrelid = to_regclass(format('public.%I', name)) AND NOT indisvalid) THEN
            EXECUTE format('DROP INDEX public.%I', name);
        END IF;
    END LOOP;
END
$$;
CREATE INDEX IF NOT EXISTS event_participants_event_idx ON event_participants (event_id);
CREATE INDEX IF NOT EXISTS event_participants_email_idx ON event_participants (email);
CREATE INDEX IF NOT EXISTS event_participants_tenant_idx ON event_participants (tenant_id);
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                    WHERE conrelid = 'public.event_participants'::regclass
                      AND conname = 'event_participants_event_tenant_fkey') THEN
        ALTER TABLE event_participants ADD CONSTRAINT event_participants_event_tenant_fkey
            FOREIGN KEY (event_id, tenant_id) REFERENCES events (id, tenant_id)
            ON DELETE CASCADE ON UPDATE CASCADE;
    END IF;
END
$$;
ALTER TABLE event_participants VALIDATE CONSTRAINT event_participants_event_tenant_fkey;
