-- alert_freshness: topics whose complete windows lag the clock by more than
-- N minutes. This is a pipeline problem, not zero usage: usage alerts
-- (alert_zero_requests.sql, alert_error_rate.sql) only read windows at or
-- before closed_through, so while this fires they are looking at old data.
--
-- state tells the two causes apart by advanced_at (when closed_through last
-- moved; min over the topic's partitions):
--   stalled  advanced_at is also older than N minutes: nothing is moving
--            (consumer down, stuck partition, ClickHouse writes failing)
--   lagging  closed_through moves but is behind: backlog or replay
-- A topic with no row at all has never made progress; usage_progress has the
-- per-partition detail (idle, committed_offset, max_event_time).
--
-- closed_through trails the newest event time by ALLOWED_LATENESS (default
-- 10m) even when all is well, so the allowed lag must exceed it plus a few
-- FLUSH_INTERVALs and the producers' own delay: e.g. 20 with the defaults.
--
-- Parameters (positional, bound by clickhouse-go in this order):
--   1. max_lag_minutes  UInt allowed lag of closed_through behind now() (e.g. 20)
WITH toUInt32(?) * 60 AS max_lag_seconds
SELECT
    topic,
    closed_through,
    advanced_at,
    partitions,
    intDiv(toInt64(now()) - toInt64(closed_through), 60) AS lag_minutes,
    if(toInt64(now()) - toInt64(advanced_at) > max_lag_seconds, 'stalled', 'lagging') AS state
FROM usage_progress_topic
WHERE toInt64(now()) - toInt64(closed_through) > max_lag_seconds
ORDER BY topic;
