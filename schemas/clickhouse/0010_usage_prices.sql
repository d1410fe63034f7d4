-- usage_prices holds list prices with the moment each took effect. A price
-- applies to every window whose window_start is at or after effective_from,
-- until the next effective_from of the same (provider, model). Cost is never
-- stored: the usage_cost_<window> views multiply usage by the price in effect
-- at query time, so adding a price period never rewrites the past and
-- correcting one corrects every report at once.
--
-- All prices are exact decimals in US dollars:
--   input_per_mtok        per million uncached, non-image input tokens
--   cached_input_per_mtok per million cached input tokens
--   image_token_per_mtok  per million image input tokens
--   output_per_mtok       per million output tokens
--   per_image             per successful request (status < 400), for models
--                         billed per generated image (one image per request)
--
-- Rows are keyed by (provider, model, effective_from); the row with the
-- latest updated_at wins, so a wrong price is corrected by inserting the same
-- key again with a later updated_at. Readers use FINAL (the views do).
-- docs/analysts.md explains how to add a price.
CREATE TABLE IF NOT EXISTS {{database}}.usage_prices
(
    provider              String,
    model                 String,
    effective_from        DateTime('UTC'),
    input_per_mtok        Decimal(18, 9),
    cached_input_per_mtok Decimal(18, 9),
    image_token_per_mtok  Decimal(18, 9),
    output_per_mtok       Decimal(18, 9),
    per_image             Decimal(18, 9),
    note                  String,
    updated_at            DateTime('UTC')
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY (provider, model, effective_from);
