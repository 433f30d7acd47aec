-- FASE 0 · rollback 006: event types the engine added would go silently with the table, unless
-- `eventgate rollback` has just exported them (rollback.toml) and said so.
DO $$
DECLARE
    added text;
BEGIN
    SELECT string_agg(code, ', ' ORDER BY code) INTO added
      FROM event_types WHERE code NOT IN ('wedding', 'conference', 'birthday');
    IF added IS NOT NULL
       AND current_setting('eventgate.exported', true) IS DISTINCT FROM '006' THEN
        RAISE EXCEPTION 'rollback of 006 would delete event types added since (%)', added
            USING HINT = 'roll back with eventgate rollback, which exports them first, or export '
                         'them yourself (COPY (SELECT * FROM event_types) TO STDOUT), '
                         'delete them, and run the rollback again';
    END IF;
END
$$;
DROP TABLE event_types;
