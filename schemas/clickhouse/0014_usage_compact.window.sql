-- usage_compact_{{window}} holds compacted windows: for one (topic,
-- window_start, compaction_id) its rows are the per-group totals of every raw
-- piece of usage_rollup_{{window}} named by that compaction's manifest row in
-- usage_compactions (chunk below below[partition]). Rows are a pure function
-- of the raw pieces folded, which never change once their chunk is complete,
-- so re-running a compaction writes identical rows; FINAL hides the copies.
-- Measures sum, except latency_ms_max, which takes the max.
CREATE TABLE IF NOT EXISTS {{database}}.usage_compact_{{window}}
(
    window_start        {{time}},
    workspace_id        {{dimension}},
    project_id          {{dimension}},
    api_key_id          {{dimension}},
    provider            {{dimension}},
    model               {{dimension}},
    endpoint            {{dimension}},
    topic               String,
    compaction_id       UInt64,
    requests            {{counter}},
    errors              {{counter}},
    input_tokens        {{counter}},
    input_text_tokens   {{counter}},
    input_image_tokens  {{counter}},
    input_cached_tokens {{counter}},
    output_tokens       {{counter}},
    total_tokens        {{counter}},
    latency_ms_sum      {{counter}},
    latency_ms_max      {{counter}},
    inconsistent_events {{counter}},
    late_events         {{counter}}
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(window_start)
ORDER BY (window_start, topic, compaction_id, workspace_id, project_id, api_key_id, provider, model, endpoint);

-- usage_{{window}} is re-created to read compacted windows: the compact rows
-- of the newest manifest of each (topic, window_start), plus the raw pieces
-- that manifest did not fold (chunk >= below[partition]); windows without a
-- manifest read raw as before. Compact rows carry partition -1, chunk -1 and
-- segment -1. Columns, names and order are unchanged.
--
-- usage_compactions is read once, in the one JOIN below, so both halves of
-- the union are filtered by the same manifest even while a compactor
-- publishes a new one (two reads could see two manifests and count a piece
-- twice or not at all). The join's right side has, per (topic, window_start),
-- a row for partition -1 (the compact rows: newest_id) and one per listed
-- partition (the raw rows: folded_below). No match gives the defaults 0:
-- compaction 0 does not exist, and below 0 folds nothing; ifNull keeps that
-- under join_use_nulls=1.
--
-- There is no CREATE OR REPLACE VIEW on 18.16: the view is dropped and
-- created, so for a moment during this migration usage_{{window}} does not
-- exist (queries fail with "table doesn't exist"; none return wrong sums).
-- Both statements are idempotent; a replica migrating at the same time
-- re-creates the same view.
DROP TABLE IF EXISTS {{database}}.usage_{{window}};

CREATE VIEW IF NOT EXISTS {{database}}.usage_{{window}} AS
SELECT
    window_start,
    workspace_id,
    project_id,
    api_key_id,
    provider,
    model,
    endpoint,
    requests,
    errors,
    input_tokens,
    input_text_tokens,
    input_image_tokens,
    input_cached_tokens,
    output_tokens,
    total_tokens,
    latency_ms_sum,
    latency_ms_max,
    inconsistent_events,
    late_events,
    topic,
    `partition`,
    chunk,
    segment
FROM
(
    SELECT
        window_start, workspace_id, project_id, api_key_id, provider, model, endpoint,
        requests, errors, input_tokens, input_text_tokens, input_image_tokens, input_cached_tokens,
        output_tokens, total_tokens, latency_ms_sum, latency_ms_max, inconsistent_events, late_events,
        topic, toInt32(-1) AS `partition`, toInt64(-1) AS chunk, toInt64(-1) AS segment, compaction_id
    FROM {{database}}.usage_compact_{{window}} FINAL
    UNION ALL
    SELECT
        window_start, workspace_id, project_id, api_key_id, provider, model, endpoint,
        requests, errors, input_tokens, input_text_tokens, input_image_tokens, input_cached_tokens,
        output_tokens, total_tokens, latency_ms_sum, latency_ms_max, inconsistent_events, late_events,
        topic, `partition`, chunk, segment, toUInt64(0) AS compaction_id
    FROM {{database}}.usage_rollup_{{window}} FINAL
) AS pieces
ANY LEFT JOIN
(
    SELECT topic, window_start, folded_partition AS `partition`, folded_below, newest_id
    FROM
    (
        SELECT
            topic,
            window_start,
            argMax(compaction_id, (generation, compaction_id)) AS newest_id,
            arrayConcat([toInt32(-1)], argMax(partitions, (generation, compaction_id))) AS folded_partitions,
            arrayConcat([toInt64(0)], argMax(below, (generation, compaction_id))) AS folded_belows
        FROM {{database}}.usage_compactions
        WHERE window = '{{window}}'
        GROUP BY topic, window_start
    )
    ARRAY JOIN folded_partitions AS folded_partition, folded_belows AS folded_below
) AS frontier USING (topic, window_start, `partition`)
WHERE if(chunk < 0, compaction_id != 0 AND compaction_id = ifNull(newest_id, 0), chunk >= ifNull(folded_below, 0));
