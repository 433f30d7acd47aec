-- FASE 0 · 008: the indexes the engine's hot paths and the compatibility views depend on.
-- Listed in expectations.toml, which the index gate holds the database to.
CREATE INDEX events_tenant_start_idx ON events (tenant_id, start_date);
CREATE INDEX events_type_status_idx ON events (event_type, status);
-- The engine's event list pages a tenant's events in id order (WHERE tenant_id = ? ORDER BY id
-- LIMIT n): with the tenant leading and the id after it, each page reads its n entries, for a
-- tenant of any size. Without it the planner walks the primary key and filters, which reads
-- the whole table for a small tenant.
CREATE INDEX events_tenant_id_idx ON events (tenant_id, id);
CREATE UNIQUE INDEX events_tenant_slug_uidx ON events (tenant_id, slug);
CREATE INDEX event_participants_event_idx ON event_participants (event_id);
CREATE INDEX event_participants_email_idx ON event_participants (email);
CREATE INDEX event_participants_tenant_idx ON event_participants (tenant_id);
CREATE INDEX event_sections_event_position_idx ON event_sections (event_id, position);
