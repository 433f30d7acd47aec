-- FASE 0 · rollback 008
DROP INDEX event_sections_event_position_idx;
DROP INDEX event_participants_tenant_idx;
DROP INDEX event_participants_email_idx;
DROP INDEX event_participants_event_idx;
DROP INDEX events_tenant_slug_uidx;
DROP INDEX events_tenant_id_idx;
DROP INDEX events_type_status_idx;
DROP INDEX events_tenant_start_idx;
