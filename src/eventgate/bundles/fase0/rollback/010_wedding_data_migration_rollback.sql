-- FASE 0 · rollback 010: the legacy tables come back holding what the compatibility views show
-- now, so writes the old application made through the views during the blue-green window
-- survive the rollback. Rows no one touched are left as they are, byte for byte.
LOCK TABLE events, event_participants, event_sections IN SHARE ROW EXCLUSIVE MODE;

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

-- Rows added through the views took ids from the events sequences; the legacy sequences must
-- not hand those ids out again. Untouched sequences are left exactly as they were.
SELECT setval(pg_get_serial_sequence('wedding_events', 'id'), max(id)) FROM wedding_events
HAVING max(id) >= (SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END
                     FROM wedding_events_id_seq);
SELECT setval(pg_get_serial_sequence('wedding_invitations', 'id'), max(id))
  FROM wedding_invitations
HAVING max(id) >= (SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END
                     FROM wedding_invitations_id_seq);
SELECT setval(pg_get_serial_sequence('wedding_sections', 'id'), max(id)) FROM wedding_sections
HAVING max(id) >= (SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END
                     FROM wedding_sections_id_seq);

-- Participants and sections of weddings go with them (ON DELETE CASCADE).
DELETE FROM events WHERE event_type = 'wedding';
