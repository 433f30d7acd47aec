-- FASE 0 · rollback 006: event types the engine added would go silently with the table.
DO $$
DECLARE
    added text;
BEGIN
    SELECT string_agg(code, ', ' ORDER BY code) INTO added
      FROM event_types WHERE code NOT IN ('wedding', 'conference', 'birthday');
    IF added IS NOT NULL THEN
        RAISE EXCEPTION 'rollback of 006 would delete event types added since (%)', added
            USING HINT = 'export them first (COPY (SELECT * FROM event_types) TO STDOUT), '
                         'delete them, and run the rollback again';
    END IF;
END
$$;
DROP TABLE event_types;
