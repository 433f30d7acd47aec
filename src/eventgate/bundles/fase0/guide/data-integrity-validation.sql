-- The deployment guide's data-integrity-validation.sql, as it stands there (its emoji, which
-- the guide's text carries mis-encoded, put back). eventgate gate runs it through psql,
-- read-only, and fails on a row marked ❌ (checks/guide_sql.py, guide/guide.toml).
-- data-integrity-validation.sql

-- Verify all wedding data migrated correctly
WITH wedding_data_check AS (
    SELECT 
        COUNT(*) as original_count
    FROM wedding_events_backup
),
migrated_data_check AS (
    SELECT 
        COUNT(*) as migrated_count
    FROM events 
    WHERE event_type = 'wedding'
)
SELECT 
    w.original_count,
    m.migrated_count,
    CASE 
        WHEN w.original_count = m.migrated_count 
        THEN '✅ Data migration successful'
        ELSE '❌ Data migration failed'
    END as status
FROM wedding_data_check w, migrated_data_check m;

-- Verify compatibility views work
SELECT 
    COUNT(*) as view_count,
    'wedding_invitations view' as test_name
FROM wedding_invitations;

-- Verify indexes are properly created
SELECT 
    schemaname,
    indexname,
    tablename
FROM pg_indexes 
WHERE tablename IN ('events', 'event_participants', 'event_sections')
ORDER BY tablename, indexname;
