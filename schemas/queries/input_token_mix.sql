-- input_token_mix: image versus text input tokens per workspace and model.
--
-- input_text_tokens and input_image_tokens are what the provider reported in
-- input_tokens_details; chat-style usage has no details, so its input shows
-- up as unattributed (input_tokens - text - image). Shares are percentages
-- of input_tokens, rounded to 0.01; the sums are exact.
--
-- Parameters (positional, bound by clickhouse-go in this order):
--   1. from  String 'YYYY-MM-DD hh:mm:ss' UTC, inclusive
--   2. to    String 'YYYY-MM-DD hh:mm:ss' UTC, exclusive
SELECT
    workspace_id,
    provider,
    model,
    sum(input_tokens) AS input_tokens,
    sum(input_text_tokens) AS text_tokens,
    sum(input_image_tokens) AS image_tokens,
    toInt64(input_tokens) - toInt64(text_tokens) - toInt64(image_tokens) AS unattributed_tokens,
    round(100 * text_tokens / input_tokens, 2) AS text_pct,
    round(100 * image_tokens / input_tokens, 2) AS image_pct
FROM usage_1h
WHERE window_start >= toDateTime(?, 'UTC')
  AND window_start < toDateTime(?, 'UTC')
GROUP BY workspace_id, provider, model
HAVING input_tokens > 0
ORDER BY workspace_id, provider, model;
