-- Cost you can audit: the usage components a cost is computed from beyond the four token
-- counts (1-hour cache writes, web searches, the service tier), the price catalog's estimate
-- beside the recorded cost (LiteLLM records its own spend), and where the price came from.
-- `tokenwatch reprice` recomputes cost_usd and cost_estimate_usd from these columns.

ALTER TABLE {db}.{local:requests} {on_cluster}
    ADD COLUMN IF NOT EXISTS cache_write_1h_tokens UInt64 DEFAULT 0,
    ADD COLUMN IF NOT EXISTS web_search_requests UInt32 DEFAULT 0,
    ADD COLUMN IF NOT EXISTS service_tier LowCardinality(String) DEFAULT '',
    ADD COLUMN IF NOT EXISTS cost_estimate_usd Nullable(Decimal(18, 9)),
    ADD COLUMN IF NOT EXISTS priced_as LowCardinality(String) DEFAULT '';
ALTER TABLE {db}.requests {on_cluster}
    ADD COLUMN IF NOT EXISTS cache_write_1h_tokens UInt64 DEFAULT 0,
    ADD COLUMN IF NOT EXISTS web_search_requests UInt32 DEFAULT 0,
    ADD COLUMN IF NOT EXISTS service_tier LowCardinality(String) DEFAULT '',
    ADD COLUMN IF NOT EXISTS cost_estimate_usd Nullable(Decimal(18, 9)),
    ADD COLUMN IF NOT EXISTS priced_as LowCardinality(String) DEFAULT '';
