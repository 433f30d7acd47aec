-- Legacy wedding application, migration 004: the content blocks of a wedding's website.
CREATE TABLE wedding_sections (
    id              bigserial PRIMARY KEY,
    wedding_id      bigint       NOT NULL,
    section_type    varchar(40)  NOT NULL,
    title           varchar(200),
    content         text,
    position        integer      NOT NULL DEFAULT 0,
    is_visible      boolean      NOT NULL DEFAULT true
);
