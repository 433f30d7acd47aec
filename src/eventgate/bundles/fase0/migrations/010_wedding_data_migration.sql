-- FASE 0 · 010: move every wedding into the generic tables, keep the legacy tables as *_backup,
-- and swap the compatibility views in under the legacy names, all in one transaction.

-- Writes wait from here to COMMIT; reads of the legacy tables go on until the rename below.
LOCK TABLE wedding_events, wedding_invitations, wedding_sections IN SHARE ROW EXCLUSIVE MODE;

-- Refuse, naming the rows, anything the generic schema cannot hold, rather than dropping it.
DO $$
DECLARE
    problems text := '';
    found text;
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
    SELECT string_agg(DISTINCT quote_literal(rsvp_status), ', ') INTO found
      FROM wedding_invitations
     WHERE rsvp_status NOT IN ('pending', 'accepted', 'declined', 'maybe');
    IF found IS NOT NULL THEN
        problems := problems || E'\n  wedding_invitations.rsvp_status values outside pending/accepted/declined/maybe: ' || found;
    END IF;
    SELECT string_agg(i.id::text, ', ' ORDER BY i.id) INTO found
      FROM (SELECT id FROM wedding_invitations WHERE party_size < 0 ORDER BY id LIMIT 20) i;
    IF found IS NOT NULL THEN
        problems := problems || E'\n  wedding_invitations with a negative party_size (ids): ' || found;
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

-- New rows (from the engine or through the views) must not collide with the migrated ids.
-- ALTER ... RESTART is transactional, unlike setval(), so a dry run leaves no trace.
DO $$
DECLARE
    t text;
    next_id bigint;
BEGIN
    FOREACH t IN ARRAY ARRAY['events', 'event_participants', 'event_sections'] LOOP
        EXECUTE format('SELECT coalesce(max(id), 0) + 1 FROM %I', t) INTO next_id;
        EXECUTE format('ALTER TABLE %I ALTER COLUMN id RESTART WITH %s', t, next_id);
    END LOOP;
END
$$;

ALTER TABLE wedding_events RENAME TO wedding_events_backup;
ALTER TABLE wedding_invitations RENAME TO wedding_invitations_backup;
ALTER TABLE wedding_sections RENAME TO wedding_sections_backup;
ALTER VIEW wedding_compat.wedding_events SET SCHEMA public;
ALTER VIEW wedding_compat.wedding_invitations SET SCHEMA public;
ALTER VIEW wedding_compat.wedding_sections SET SCHEMA public;
