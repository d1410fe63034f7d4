-- usage_{{window}} is re-created for the segment frontier of migration 0015:
-- a raw piece is folded by a manifest when its chunk is below below[p] or its
-- segment below below_segment[p] (a segment ended by a seal record or by the
-- group cap). Everything else is as in 0014: the compact rows of the newest
-- manifest of each (topic, window_start) plus the raw pieces it did not fold,
-- usage_compactions read once, in the one JOIN; columns, names and order
-- unchanged. A manifest without below_segment (written before 0015) folds
-- by chunk only: its segment frontier reads as 0 per partition.
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
    SELECT topic, window_start, folded_partition AS `partition`, folded_below, folded_segment, newest_id
    FROM
    (
        SELECT
            topic,
            window_start,
            argMax(compaction_id, (generation, compaction_id)) AS newest_id,
            arrayConcat([toInt32(-1)], argMax(partitions, (generation, compaction_id))) AS folded_partitions,
            arrayConcat([toInt64(0)], argMax(below, (generation, compaction_id))) AS folded_belows,
            arrayConcat([toInt64(0)], argMax(if(empty(below_segment), arrayMap(x -> toInt64(0), below), below_segment),
                (generation, compaction_id))) AS folded_segments
        FROM {{database}}.usage_compactions
        WHERE window = '{{window}}'
        GROUP BY topic, window_start
    )
    ARRAY JOIN folded_partitions AS folded_partition, folded_belows AS folded_below, folded_segments AS folded_segment
) AS frontier USING (topic, window_start, `partition`)
WHERE if(chunk < 0, compaction_id != 0 AND compaction_id = ifNull(newest_id, 0),
    chunk >= ifNull(folded_below, 0) AND segment >= ifNull(folded_segment, 0));
