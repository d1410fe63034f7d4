-- usage_settings records the chunk size each topic was first rolled up with.
-- Rows are keyed by (topic, partition, chunk), so rolling a topic up again
-- with another chunk size would put the same offsets in differently numbered
-- chunks and double count them; the sink refuses to start instead. The
-- earliest row per topic wins (ties: smallest chunk_size), so replicas racing
-- to record different sizes all see the same winner.
CREATE TABLE IF NOT EXISTS {{database}}.usage_settings
(
    topic      String,
    chunk_size Int64,
    created_at DateTime('UTC')
)
ENGINE = MergeTree
ORDER BY topic;
