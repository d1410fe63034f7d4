-- schema_migrations records each applied migration after all its statements
-- ran. A window template is recorded once per window, named e.g.
-- 0005_usage_rollup@1m. Replicas migrating at once may record a migration
-- twice; readers use DISTINCT.
CREATE TABLE IF NOT EXISTS {{database}}.schema_migrations
(
    version    UInt32,
    name       String,
    applied_at DateTime('UTC')
)
ENGINE = MergeTree
ORDER BY version;
