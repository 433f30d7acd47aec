-- FASE 0 · rollback 007: the generic tables go. Events the legacy schema cannot hold (other
-- types, created by the new engine) would go with them, so refuse rather than drop them silently.
DO $$
DECLARE
    left_behind text;
BEGIN
    SELECT string_agg(event_type || ': ' || n, ', ') INTO left_behind
      FROM (SELECT event_type, count(*) AS n FROM events GROUP BY event_type ORDER BY 1) t;
    IF left_behind IS NOT NULL THEN
        RAISE EXCEPTION 'rollback of 007 would delete events the legacy schema cannot hold (%)',
            left_behind
            USING HINT = 'export them first, e.g. COPY (SELECT * FROM events) TO STDOUT, '
                         'then delete them and run the rollback again';
    END IF;
END
$$;
DROP TABLE event_sections;
DROP TABLE event_participants;
DROP TABLE events;
