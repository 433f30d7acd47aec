-- FASE 0 · rollback 009: the compatibility views, their write triggers and the start-date
-- derivation go with their schema.
DROP SCHEMA wedding_compat CASCADE;
