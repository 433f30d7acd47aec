-- Legacy wedding application, migration 003: one row per invited guest (or party).
CREATE TABLE wedding_invitations (
    id              bigserial PRIMARY KEY,
    wedding_id      bigint       NOT NULL,
    guest_name      varchar(200) NOT NULL,
    email           varchar(320),
    phone           varchar(40),
    rsvp_status     varchar(20)  NOT NULL DEFAULT 'pending',
    party_size      smallint     NOT NULL DEFAULT 1,
    dietary_notes   text,
    table_number    integer,
    invited_at      timestamptz  NOT NULL DEFAULT now(),
    responded_at    timestamptz
);
