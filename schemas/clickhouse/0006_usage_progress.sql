-- usage_progress_log is the finality signal for alerting: per topic and
-- partition, every window that ends at or before closed_through is complete
-- (all events up to the partition's watermark are written). A partition
-- writes a row only when closed_through advances, after the rows it covers
-- are durable; advanced_at is when that happened, so a stalled partition
-- shows an old advanced_at. Idle partitions (caught up, no records for
-- IDLE_PARTITION_TIMEOUT) advance to wall clock minus the allowed lateness,
-- so they never hold the topic back. The row with the largest closed_through
-- wins: a restart or a replay never moves finality backwards.
CREATE TABLE IF NOT EXISTS {{database}}.usage_progress_log
(
    topic            String,
    `partition`      Int32,
    closed_through   DateTime('UTC'),
    max_event_time   DateTime('UTC'),
    committed_offset Int64,
    idle             UInt8,
    advanced_at      DateTime('UTC')
)
ENGINE = ReplacingMergeTree(closed_through)
ORDER BY (topic, `partition`);

-- usage_progress: one row per topic and partition, the furthest it advanced.
CREATE VIEW IF NOT EXISTS {{database}}.usage_progress AS
SELECT topic, `partition`, closed_through, max_event_time, committed_offset, idle, advanced_at
FROM {{database}}.usage_progress_log FINAL;

-- usage_progress_topic: one row per topic. Windows ending at or before
-- closed_through are complete on every partition; advanced_at is the oldest
-- partition advance (now() - advanced_at large means a stalled pipeline).
CREATE VIEW IF NOT EXISTS {{database}}.usage_progress_topic AS
SELECT
    topic,
    min(closed_through) AS closed_through,
    min(advanced_at)    AS advanced_at,
    count()             AS partitions
FROM {{database}}.usage_progress_log FINAL
GROUP BY topic;
