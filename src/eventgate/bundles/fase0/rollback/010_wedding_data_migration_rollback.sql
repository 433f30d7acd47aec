-- FASE 0 · rollback 010: the legacy tables come back holding what the compatibility views show
-- now, so writes the old application made through the views during the blue-green window
-- survive the rollback. Rows no one touched are left as they are, byte for byte.
LOCK TABLE events, event_participants, event_sections IN SHARE ROW EXCLUSIVE MODE;

-- What the legacy tables cannot hold would be lost without a word when the weddings are deleted
-- below: refuse, naming it, as the rollback of 007 does.
DO $$
DECLARE
    problems text := '';
    found text;
BEGIN
    SELECT string_agg(role || ': ' || n, ', ') INTO found
      FROM (SELECT p.role, count(*) AS n FROM event_participants p
              JOIN events e ON e.id = p.event_id AND e.event_type = 'wedding'
             WHERE p.role <> 'guest' GROUP BY p.role ORDER BY 1) r;
    IF found IS NOT NULL THEN
        problems := problems || E'\n  wedding participants other than guests (' || found || ')';
    END IF;
    SELECT string_agg(k || ': ' || n, ', ') INTO found
      FROM (SELECT k, count(*) AS n FROM events e, jsonb_object_keys(e.metadata) k
             WHERE e.event_type = 'wedding'
               AND k NOT IN ('bride_name', 'groom_name', 'ceremony_time', 'reception_time',
                             'theme')
             GROUP BY k ORDER BY 1) r;
    IF found IS NOT NULL THEN
        problems := problems || E'\n  wedding metadata keys the legacy schema has no column for (' || found || ')';
    END IF;
    SELECT count(*)::text INTO found FROM events
     WHERE event_type = 'wedding' AND end_date IS NOT NULL;
    IF found <> '0' THEN
        problems := problems || E'\n  weddings with an end_date (' || found || ')';
    END IF;
    SELECT count(*)::text INTO found FROM event_sections s
      JOIN events e ON e.id = s.event_id AND e.event_type = 'wedding'
     WHERE s.metadata <> '{}';
    IF found <> '0' THEN
        problems := problems || E'\n  wedding sections with metadata (' || found || ')';
    END IF;
    IF problems <> '' THEN
        RAISE EXCEPTION 'rolling back 010 would lose data only the events schema holds:%', problems
            USING HINT = 'export it first (e.g. COPY (SELECT * FROM events WHERE event_type = '
                         '''wedding'') TO STDOUT), remove it, and roll back again';
    END IF;
END
$$;

-- The change record stops recording: the rows moved below are the rollback's. Disabling a
-- trigger takes no lock beyond the one held since the top, so readers of the new tables go on.
DO $$
DECLARE
    recorded record;
BEGIN
    FOR recorded IN SELECT t.tgrelid::regclass AS rel FROM pg_trigger t
                     WHERE t.tgname = 'row_changes_record'
                       AND t.tgrelid IN ('events'::regclass, 'event_participants'::regclass,
                                         'event_sections'::regclass) LOOP
        EXECUTE format('ALTER TABLE %s DISABLE TRIGGER row_changes_record', recorded.rel);
    END LOOP;
END
$$;

ALTER VIEW public.wedding_events SET SCHEMA wedding_compat;
ALTER VIEW public.wedding_invitations SET SCHEMA wedding_compat;
ALTER VIEW public.wedding_sections SET SCHEMA wedding_compat;
ALTER TABLE wedding_events_backup RENAME TO wedding_events;
ALTER TABLE wedding_invitations_backup RENAME TO wedding_invitations;
ALTER TABLE wedding_sections_backup RENAME TO wedding_sections;

-- wedding_events: deleted, changed, then added rows.
DELETE FROM wedding_events b
 WHERE NOT EXISTS (SELECT 1 FROM wedding_compat.wedding_events v WHERE v.id = b.id);
UPDATE wedding_events b
   SET (tenant_id, slug, bride_name, groom_name, wedding_date, ceremony_time, reception_time,
        timezone, venue_name, venue_address, theme, status, created_at, updated_at)
     = (v.tenant_id, v.slug, v.bride_name, v.groom_name, v.wedding_date, v.ceremony_time,
        v.reception_time, v.timezone, v.venue_name, v.venue_address, v.theme, v.status,
        v.created_at, v.updated_at)
  FROM wedding_compat.wedding_events v
 WHERE v.id = b.id AND ROW(b.*) IS DISTINCT FROM ROW(v.*);
INSERT INTO wedding_events
SELECT v.* FROM wedding_compat.wedding_events v
 WHERE NOT EXISTS (SELECT 1 FROM wedding_events b WHERE b.id = v.id);

-- wedding_invitations
DELETE FROM wedding_invitations b
 WHERE NOT EXISTS (SELECT 1 FROM wedding_compat.wedding_invitations v WHERE v.id = b.id);
UPDATE wedding_invitations b
   SET (wedding_id, guest_name, email, phone, rsvp_status, party_size, dietary_notes,
        table_number, invited_at, responded_at)
     = (v.wedding_id, v.guest_name, v.email, v.phone, v.rsvp_status, v.party_size,
        v.dietary_notes, v.table_number, v.invited_at, v.responded_at)
  FROM wedding_compat.wedding_invitations v
 WHERE v.id = b.id AND ROW(b.*) IS DISTINCT FROM ROW(v.*);
INSERT INTO wedding_invitations
SELECT v.* FROM wedding_compat.wedding_invitations v
 WHERE NOT EXISTS (SELECT 1 FROM wedding_invitations b WHERE b.id = v.id);

-- wedding_sections
DELETE FROM wedding_sections b
 WHERE NOT EXISTS (SELECT 1 FROM wedding_compat.wedding_sections v WHERE v.id = b.id);
UPDATE wedding_sections b
   SET (wedding_id, section_type, title, content, position, is_visible)
     = (v.wedding_id, v.section_type, v.title, v.content, v.position, v.is_visible)
  FROM wedding_compat.wedding_sections v
 WHERE v.id = b.id AND ROW(b.*) IS DISTINCT FROM ROW(v.*);
INSERT INTO wedding_sections
SELECT v.* FROM wedding_compat.wedding_sections v
 WHERE NOT EXISTS (SELECT 1 FROM wedding_sections b WHERE b.id = v.id);

-- Ids handed out by the events sequences (to rows added through the views, and to other event
-- types the engine created, which stay) must never come from the legacy sequences too.
-- Untouched sequences are left exactly as they were.
DO $$
DECLARE
    pair text[];
    seq text;
    highest bigint;
BEGIN
    FOREACH pair SLICE 1 IN ARRAY ARRAY[['wedding_events', 'events'],
                                        ['wedding_invitations', 'event_participants'],
                                        ['wedding_sections', 'event_sections']] LOOP
        seq := pg_get_serial_sequence(pair[1], 'id');
        EXECUTE format('SELECT greatest((SELECT max(id) FROM %I), (SELECT max(id) FROM %I))',
                       pair[1], pair[2]) INTO highest;
        IF highest IS NOT NULL THEN
            EXECUTE format('SELECT setval(%L, %s) FROM %s
                             WHERE %s >= CASE WHEN is_called THEN last_value + 1
                                              ELSE last_value END',
                           seq, highest, seq, highest);
        END IF;
    END LOOP;
END
$$;

-- Participants and sections of weddings go with them (ON DELETE CASCADE).
DELETE FROM events WHERE event_type = 'wedding';

-- Last, the change record goes. Dropping a trigger needs ACCESS EXCLUSIVE on its table, which
-- the engine's readers then wait for until COMMIT: so it is taken only now, on all three tables
-- together, and given up within 50 ms whenever a reader is in the way, then tried again. The
-- rollback never holds one of these locks while waiting for another, which a reader locking the
-- tables in another order would deadlock against. After 200 tries the runner's lock_timeout
-- applies, and it retries the whole rollback.
DO $$
DECLARE
    runner_timeout text := current_setting('lock_timeout');
BEGIN
    FOR attempt IN 1..200 LOOP
        BEGIN
            PERFORM set_config('lock_timeout', '50ms', true);
            LOCK TABLE event_participants, event_sections, events IN ACCESS EXCLUSIVE MODE;
            PERFORM set_config('lock_timeout', runner_timeout, true);
            RETURN;
        EXCEPTION WHEN lock_not_available THEN
            PERFORM pg_sleep(0.02);  -- the failed try's locks and lock_timeout are undone
        END;
    END LOOP;
    LOCK TABLE event_participants, event_sections, events IN ACCESS EXCLUSIVE MODE;
END
$$;
DROP TRIGGER IF EXISTS row_changes_record ON event_participants;
DROP TRIGGER IF EXISTS row_changes_record ON event_sections;
DROP TRIGGER IF EXISTS row_changes_record ON events;
DROP FUNCTION IF EXISTS wedding_compat.record_row_change();
DROP TABLE IF EXISTS wedding_compat.row_changes;
