-- usage_chunks is the consumption progress of each chunk: one row per write,
-- the row with the largest last_offset wins. accepted + rejected + duplicates
-- equals the number of records in [first_offset, last_offset] present in the
-- log (compacted or deleted offsets leave gaps).
CREATE TABLE IF NOT EXISTS {{database}}.usage_chunks
(
    topic          String,
    `partition`    Int32,
    chunk          Int64,
    first_offset   Int64,
    last_offset    Int64,
    accepted       UInt64,
    rejected       UInt64,
    duplicates     UInt64,
    late           UInt64,
    max_event_time DateTime('UTC'),
    watermark      DateTime('UTC'),
    written_at     DateTime('UTC')
)
ENGINE = ReplacingMergeTree(last_offset)
ORDER BY (topic, `partition`, chunk);

-- usage_chunk_progress shows exactly one row per chunk, the furthest write,
-- whether or not background merges have run yet.
CREATE VIEW IF NOT EXISTS {{database}}.usage_chunk_progress AS
SELECT
    topic,
    `partition`,
    chunk,
    first_offset,
    last_offset,
    accepted,
    rejected,
    duplicates,
    late,
    max_event_time,
    watermark,
    written_at
FROM {{database}}.usage_chunks FINAL;
