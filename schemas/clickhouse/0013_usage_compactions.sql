-- usage_compactions is the manifest of compacted windows (issue #9). A row
-- says: the rows of usage_compact_<window> with this (topic, window_start,
-- compaction_id) are the totals of every raw piece of usage_rollup_<window>
-- in that window whose chunk is below below[i] in partition partitions[i]
-- (partitions missing from the arrays: nothing folded, i.e. below 0).
--
-- A compactor writes the row only after its compact rows are durable, so a
-- manifest never points at missing rows; a crashed compaction leaves orphan
-- compact rows that no manifest names and nobody reads. Every manifest is
-- self-consistent: the views read the newest one per (topic, window,
-- window_start), argMax by (generation, compaction_id), whichever it is.
--
-- Keyed by generation and compaction_id as well, so that merges never
-- collapse two different manifests of one window (which would change which
-- one is newest under a reader's feet); a re-run writes an identical row.
-- created_at is the server's now() when the row was inserted: raw pieces are
-- deleted only below manifests older than the compactors' run limit
-- (COMPACT_MAX_RUN, see docs/design.md "Compaction").
CREATE TABLE IF NOT EXISTS {{database}}.usage_compactions
(
    topic         String,
    window        String,
    window_start  DateTime('UTC'),
    generation    UInt64,
    compaction_id UInt64,
    partitions    Array(Int32),
    below         Array(Int64),
    created_at    DateTime('UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY (topic, window, window_start, generation, compaction_id);

-- usage_compaction_runs: one row per `consumer compact` run, for operators
-- and the SQL alert of docs/alerting.md.
CREATE TABLE IF NOT EXISTS {{database}}.usage_compaction_runs
(
    started_at              DateTime('UTC'),
    finished_at             DateTime('UTC'),
    topic                   String,
    window                  String,
    windows_compacted       UInt64,
    raw_rows_folded         UInt64,
    raw_rows_deleted        UInt64,
    oldest_uncompacted      DateTime('UTC'),
    uncompacted_windows     UInt64,
    error                   String
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(started_at)
ORDER BY (topic, window, started_at);
