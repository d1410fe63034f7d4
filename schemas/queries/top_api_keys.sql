-- top_api_keys: the API keys with the most tokens in a period, with their
-- workspace, request and error counts and how many models they used.
--
-- Reads usage_1h (hour-aligned periods); for a period shorter than a few
-- hours or not on hour boundaries, replace usage_1h with usage_1m.
--
-- Parameters (positional, bound by clickhouse-go in this order):
--   1. from   String 'YYYY-MM-DD hh:mm:ss' UTC, inclusive
--   2. to     String 'YYYY-MM-DD hh:mm:ss' UTC, exclusive
--   3. limit  UInt number of keys to return
SELECT
    api_key_id,
    workspace_id,
    sum(total_tokens) AS total_tokens,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(requests) AS requests,
    sum(errors) AS errors,
    uniqExact(model) AS models
FROM usage_1h
WHERE window_start >= toDateTime(?, 'UTC')
  AND window_start < toDateTime(?, 'UTC')
GROUP BY api_key_id, workspace_id
ORDER BY total_tokens DESC, api_key_id, workspace_id
LIMIT ?;
