-- FASE 0 · rollback 006
DROP TABLE event_types;
