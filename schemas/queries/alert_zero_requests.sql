-- alert_zero_requests: workspaces with no requests in the last complete hour
-- that had traffic in the same hour the day before.
--
-- "Complete" comes from usage_progress_topic.closed_through: every window
-- ending at or before it is final in every partition. The last complete hour
-- is the one ending at toStartOfHour(closed_through), taken over all topics
-- (min), so a lagging or stalled pipeline moves the hour back instead of
-- reporting its missing rows as zero usage; alert_freshness.sql catches the
-- stall itself. With no progress yet, the hour wraps to 2106 and nothing
-- matches. Never compare against now(): the current hour is always partial.
--
-- Reads usage_rollup_1h FINAL with a filter on window_start only, the same
-- rows as the view usage_1h, because ClickHouse 18.16 does not push a filter
-- into a view and would scan every hour ever stored (docs/alerting.md).
--
-- Parameters (positional, bound by clickhouse-go in this order):
--   1. min_day_before  UInt requests the day before needed to alert (e.g. 10)
WITH
    (SELECT toStartOfHour(min(closed_through)) FROM usage_progress_topic) AS last_hour_end,
    toDateTime(last_hour_end - 3600, 'UTC') AS last_hour,
    last_hour - 86400 AS day_before
SELECT
    workspace_id,
    last_hour,
    sumIf(requests, window_start = last_hour) AS requests_last_hour,
    sumIf(requests, window_start = day_before) AS requests_day_before
FROM usage_rollup_1h FINAL
WHERE window_start IN (last_hour, day_before)
GROUP BY workspace_id
HAVING requests_last_hour = 0 AND requests_day_before >= ?
ORDER BY requests_day_before DESC, workspace_id;
