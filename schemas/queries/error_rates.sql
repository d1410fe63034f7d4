-- error_rates: requests, errors (status >= 400) and error rate per endpoint,
-- provider and model, worst first.
--
-- Parameters (positional, bound by clickhouse-go in this order):
--   1. from  String 'YYYY-MM-DD hh:mm:ss' UTC, inclusive
--   2. to    String 'YYYY-MM-DD hh:mm:ss' UTC, exclusive
SELECT
    endpoint,
    provider,
    model,
    sum(requests) AS requests,
    sum(errors) AS errors,
    round(100 * errors / requests, 2) AS error_pct
FROM usage_1h
WHERE window_start >= toDateTime(?, 'UTC')
  AND window_start < toDateTime(?, 'UTC')
GROUP BY endpoint, provider, model
ORDER BY error_pct DESC, endpoint, provider, model;
