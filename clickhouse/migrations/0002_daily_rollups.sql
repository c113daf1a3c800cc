-- Daily rollups by tenant / model and tenant / agent, maintained by materialized views on
-- insert. tokenwatch writes each source row once (it checks for rows already present before
-- inserting a page again after a crash), so the views never count a row twice.
-- Read rule: SummingMergeTree collapses rows of the same key in merges; always read with
-- sum(...) GROUP BY the key.

CREATE TABLE IF NOT EXISTS {db}.requests_daily {on_cluster}
(
    day Date,
    tenant LowCardinality(String),
    source LowCardinality(String),
    model LowCardinality(String),
    requests UInt64,
    errors UInt64,
    subtask_requests UInt64,
    input_tokens UInt64,
    output_tokens UInt64,
    cache_read_tokens UInt64,
    cache_write_tokens UInt64,
    cost_usd Decimal(38, 9),
    duration_ms_sum Float64,
    tool_calls UInt64
)
ENGINE = {engine:SummingMergeTree}
PARTITION BY toYYYYMM(day)
ORDER BY (tenant, day, source, model);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.requests_daily_mv {on_cluster} TO {db}.requests_daily AS
SELECT
    toDate(started_at) AS day, tenant, source, model,
    count() AS requests,
    countIf(error_type != '') AS errors,
    countIf(is_subtask) AS subtask_requests,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(cache_read_tokens) AS cache_read_tokens,
    sum(cache_write_tokens) AS cache_write_tokens,
    sum(toDecimal128(cost_usd, 9)) AS cost_usd,
    sum(ifNull(duration_ms, 0)) AS duration_ms_sum,
    sum(tool_calls) AS tool_calls
FROM {db}.requests
GROUP BY day, tenant, source, model;

CREATE TABLE IF NOT EXISTS {db}.messages_daily {on_cluster}
(
    day Date,
    tenant LowCardinality(String),
    source LowCardinality(String),
    agent LowCardinality(String),
    channel LowCardinality(String),
    messages UInt64
)
ENGINE = {engine:SummingMergeTree}
PARTITION BY toYYYYMM(day)
ORDER BY (tenant, day, source, agent, channel);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.messages_daily_mv {on_cluster} TO {db}.messages_daily AS
SELECT toDate(created_at) AS day, tenant, source, agent, channel, count() AS messages
FROM {db}.messages
GROUP BY day, tenant, source, agent, channel;
