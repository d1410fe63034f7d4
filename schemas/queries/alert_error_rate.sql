-- alert_error_rate: complete 1-minute windows of the last N complete minutes
-- in which an endpoint/provider/model failed more than a threshold share of
-- its requests (errors = status >= 400).
--
-- "Complete" comes from usage_progress_topic.closed_through (min over
-- topics): a 1m window is complete when it ends at or before it, i.e.
-- window_start < toStartOfMinute(closed_through). The N minutes end there,
-- not at now(): the newest minutes are partial, and a partial minute's
-- error rate is noise. closed_through trails the newest events by
-- ALLOWED_LATENESS, so the alert fires that much later than the errors
-- happened. alert_freshness.sql catches a stalled pipeline.
--
-- Reads usage_rollup_1m FINAL with a filter on window_start only (the same
-- rows as the view usage_1m, read from a few granules instead of every
-- minute ever stored on ClickHouse 18.16; docs/alerting.md). The error test
-- is exact integer arithmetic: errors * 100 > requests * threshold.
--
-- Parameters (positional, bound by clickhouse-go in this order):
--   1. minutes        UInt how many complete minutes to look at (e.g. 15)
--   2. min_requests   UInt ignore windows with fewer requests (e.g. 20)
--   3. threshold_pct  UInt alert above this error percentage (e.g. 5)
WITH (SELECT toStartOfMinute(min(closed_through)) FROM usage_progress_topic) AS closed_minute
SELECT
    window_start,
    endpoint,
    provider,
    model,
    sum(requests) AS requests,
    sum(errors) AS errors,
    round(100 * errors / requests, 2) AS error_pct
FROM usage_rollup_1m FINAL
WHERE window_start >= closed_minute - 60 * ?
  AND window_start < closed_minute
GROUP BY window_start, endpoint, provider, model
HAVING requests >= ? AND errors * 100 > requests * ?
ORDER BY window_start, endpoint, provider, model;
