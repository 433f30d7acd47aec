-- Legacy wedding application, migration 002: one row per wedding.
-- The legacy schema is loosely constrained on purpose: it is what production holds, and the
-- preflight checks look for the bad rows these missing constraints let in.
CREATE TABLE wedding_events (
    id              bigserial PRIMARY KEY,
    tenant_id       uuid         NOT NULL REFERENCES tenants (id),
    slug            varchar(120) NOT NULL,
    bride_name      varchar(200) NOT NULL,
    groom_name      varchar(200) NOT NULL,
    wedding_date    date,
    ceremony_time   time,
    reception_time  time,
    timezone        varchar(64)  NOT NULL DEFAULT 'UTC',
    venue_name      varchar(200),
    venue_address   text,
    theme           varchar(50),
    status          varchar(20)  NOT NULL DEFAULT 'draft',
    created_at      timestamptz  NOT NULL DEFAULT now(),
    updated_at      timestamptz  NOT NULL DEFAULT now()
);
