-- usage_rejected_log keeps one row per rejected message, keyed by its offset.
-- A replay rejects the same offset again with the same record_time, so the
-- rewrite lands in the same partition and replaces the earlier row (the last
-- inserted wins; only rejected_at differs). Partitioning by rejected_at
-- would put the rewrite in another partition where FINAL cannot see the pair.
CREATE TABLE IF NOT EXISTS {{database}}.usage_rejected_log
(
    topic       String,
    `partition` Int32,
    `offset`    Int64,
    reason      String,
    field       String,
    detail      String,
    record_time DateTime('UTC'),
    size        UInt64,
    payload     String,
    rejected_at DateTime('UTC')
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(record_time)
ORDER BY (topic, `partition`, `offset`);

-- usage_rejected shows each rejected message once, also after replays.
CREATE VIEW IF NOT EXISTS {{database}}.usage_rejected AS
SELECT
    topic,
    `partition`,
    `offset`,
    reason,
    field,
    detail,
    record_time,
    size,
    payload,
    rejected_at
FROM {{database}}.usage_rejected_log FINAL;
