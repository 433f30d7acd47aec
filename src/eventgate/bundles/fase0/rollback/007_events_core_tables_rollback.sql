-- FASE 0 · rollback 007: the generic tables go. Events the legacy schema cannot hold (other
-- types, created by the new engine) would go with them, so refuse rather than drop them silently,
-- unless `eventgate rollback` has just exported them (rollback.toml) and said so.
DO $$
DECLARE
    left_behind text;
BEGIN
    SELECT string_agg(event_type || ': ' || n, ', ') INTO left_behind
      FROM (SELECT event_type, count(*) AS n FROM events GROUP BY event_type ORDER BY 1) t;
    IF left_behind IS NOT NULL
       AND current_setting('eventgate.exported', true) IS DISTINCT FROM '007' THEN
        RAISE EXCEPTION 'rollback of 007 would delete events the legacy schema cannot hold (%)',
            left_behind
            USING HINT = 'roll back with eventgate rollback, which exports them first, or '
                         'export them yourself (COPY (SELECT * FROM events) TO STDOUT), '
                         'delete them and run the rollback again';
    END IF;
END
$$;
DROP FUNCTION event_counts_by_type();
-- event_engine stays: a role belongs to the cluster, and other databases may use it.
REVOKE SELECT ON tenants, event_types FROM event_engine;
REVOKE USAGE ON SCHEMA public FROM event_engine, wedding_compat_views;
DO $$
BEGIN
    IF to_regclass('eventgate_ledger.migration_ledger') IS NOT NULL THEN
        REVOKE SELECT ON eventgate_ledger.migration_ledger FROM event_engine;
        REVOKE USAGE ON SCHEMA eventgate_ledger FROM event_engine;
    END IF;
END
$$;
DROP TABLE event_sections;
DROP TABLE event_participants;
DROP TABLE events;
DROP FUNCTION tenant_unscoped();
