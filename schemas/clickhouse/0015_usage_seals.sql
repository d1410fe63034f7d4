-- Seal records (issue #9). A consumer whose partition went idle writes a seal
-- record into it; every reader ends the partition's current segment at that
-- offset, so the pieces below it are complete and compaction can fold them
-- without waiting for CHUNK_SIZE more records (docs/design.md, "Seal records").
--
-- usage_chunks.seals counts the chunk's seal records: accepted + rejected +
-- duplicates + seals is the number of records of [first_offset, last_offset]
-- present in the log. usage_chunks.open_segment is the first offset of the
-- segment the chunk's next record joins: segments of the chunk starting below
-- it are complete. Rows written before this migration read 0 for both, which
-- says only what chunks say (a chunk is complete once a later one exists).
--
-- usage_compactions.below_segment extends a manifest's frontier: per listed
-- partition, pieces with segment < below_segment[i] are folded as well as
-- those with chunk < below[i]. Manifests written before read an empty array:
-- nothing more is folded.
--
-- {{add_column}}: see 0012. One column per statement.
ALTER TABLE {{database}}.usage_chunks {{add_column}} seals UInt64 DEFAULT 0;
ALTER TABLE {{database}}.usage_chunks {{add_column}} open_segment Int64 DEFAULT 0;
ALTER TABLE {{database}}.usage_compactions {{add_column}} below_segment Array(Int64);

-- usage_chunk_progress gains the two columns; dropped and created like the
-- views of 0014 (no CREATE OR REPLACE VIEW on 18.16).
DROP TABLE IF EXISTS {{database}}.usage_chunk_progress;

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
    written_at,
    seals,
    open_segment
FROM {{database}}.usage_chunks FINAL;
