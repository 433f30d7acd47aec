-- Legacy wedding application, migration 001: tenants (one per wedding organiser account).
CREATE TABLE tenants (
    id          uuid PRIMARY KEY,
    name        varchar(200) NOT NULL,
    slug        varchar(63)  NOT NULL UNIQUE,
    created_at  timestamptz  NOT NULL DEFAULT now()
);
