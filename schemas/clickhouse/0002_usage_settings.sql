-- usage_settings records the row layout each topic was first rolled up with:
-- the chunk size and the group cap that cuts segments. Rows are keyed by
-- (topic, partition, chunk, segment), so rolling a topic up again with other
-- values would put the same offsets under other keys and double count them;
-- the sink refuses to start instead. The earliest row per topic wins (ties:
-- smallest chunk_size), so replicas racing to record different values all
-- see the same winner.
CREATE TABLE IF NOT EXISTS {{database}}.usage_settings
(
    topic      String,
    chunk_size Int64,
    max_groups Int64,
    created_at DateTime('UTC')
)
ENGINE = MergeTree
ORDER BY topic;
