-- Legacy wedding application, migration 005: the indexes the wedding front end relied on.
CREATE INDEX wedding_events_tenant_idx ON wedding_events (tenant_id);
CREATE INDEX wedding_invitations_wedding_idx ON wedding_invitations (wedding_id);
CREATE INDEX wedding_invitations_email_idx ON wedding_invitations (email);
CREATE INDEX wedding_sections_wedding_idx ON wedding_sections (wedding_id, position);
