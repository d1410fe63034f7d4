-- usage_rollup_{{window}} holds the rollup at one window size. Each row is the
-- aggregate of its (window, dimensions) group over the offsets
-- [segment, version] of one (topic, partition) chunk; segment is the chunk's
-- first offset unless the group cap cut the chunk: a longer prefix (higher
-- version) supersedes a shorter one and equal versions are identical, so
-- replays and retries never change what ReplacingMergeTree keeps. Rows of
-- different chunks are disjoint and add up.
CREATE TABLE IF NOT EXISTS {{database}}.usage_rollup_{{window}}
(
    window_start        {{time}},
    workspace_id        {{dimension}},
    project_id          {{dimension}},
    api_key_id          {{dimension}},
    provider            {{dimension}},
    model               {{dimension}},
    endpoint            {{dimension}},
    topic               String,
    `partition`         Int32,
    chunk               Int64,
    segment             Int64,
    version             UInt64,
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
    late_events         {{counter}},
    written_at          DateTime('UTC')
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(window_start)
ORDER BY (window_start, workspace_id, project_id, api_key_id, provider, model, endpoint, topic, `partition`, chunk, segment);

-- usage_{{window}} is what analysts query: FINAL keeps only the longest prefix
-- of every group, so sum() over any filter is exact before merges run.
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
FROM {{database}}.usage_rollup_{{window}} FINAL;
