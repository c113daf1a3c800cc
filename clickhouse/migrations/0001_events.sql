-- Event tables. Templates: {db} database, {on_cluster} ON CLUSTER clause (clustered variant),
-- {engine:Name(args)} table engine (Replicated* in the clustered variant).
-- Read rule for every ReplacingMergeTree here: a row re-sent with the same key is collapsed in
-- background merges, not at insert time; exact reads use FINAL (or argMax by the version).

CREATE TABLE IF NOT EXISTS {db}.requests {on_cluster}
(
    tenant LowCardinality(String),
    source LowCardinality(String),
    request_id String,
    started_at DateTime64(3, 'UTC'),
    ended_at Nullable(DateTime64(3, 'UTC')),
    conversation_id String,
    branch_id LowCardinality(String),
    parent_request_id String,
    parent_task_request_id String,
    is_subtask Bool,
    account LowCardinality(String),
    user String,
    model LowCardinality(String),
    provider LowCardinality(String),
    operation LowCardinality(String),
    http_status UInt16 COMMENT '0 when unknown',
    error_type LowCardinality(String) COMMENT 'empty for a successful request',
    input_tokens UInt64,
    output_tokens UInt64,
    cache_read_tokens UInt64,
    cache_write_tokens UInt64,
    cost_usd Decimal(18, 9),
    cost_known Bool COMMENT 'false when the model has no price (cost_usd is 0 then)',
    duration_ms Nullable(Float64),
    ttft_ms Nullable(Float64),
    tool_calls UInt32,
    streaming Bool,
    rate_limit_status LowCardinality(String),
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = {engine:ReplacingMergeTree(ingested_at)}
PARTITION BY toYYYYMM(started_at)
ORDER BY (tenant, toDate(started_at), request_id);

CREATE TABLE IF NOT EXISTS {db}.messages {on_cluster}
(
    tenant LowCardinality(String),
    source LowCardinality(String),
    conversation_id String,
    message_id String,
    role LowCardinality(String),
    content String CODEC(ZSTD(3)),
    sequence Nullable(Int32),
    channel LowCardinality(String),
    agent LowCardinality(String),
    user String,
    request_id String,
    created_at DateTime64(3, 'UTC'),
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = {engine:ReplacingMergeTree(ingested_at)}
PARTITION BY toYYYYMM(created_at)
ORDER BY (tenant, conversation_id, message_id);

-- Activity: conversation started / ended, quota threshold crossed, errors. The version keeps
-- the earliest occurrence of an event id (a quota crossing is seen on every snapshot read).
CREATE TABLE IF NOT EXISTS {db}.activity_events {on_cluster}
(
    tenant LowCardinality(String),
    source LowCardinality(String),
    event_id String,
    event_type LowCardinality(String),
    event_time DateTime64(3, 'UTC'),
    agent LowCardinality(String),
    conversation_id String,
    resource LowCardinality(String),
    value Float64,
    details String,
    version UInt64
)
ENGINE = {engine:ReplacingMergeTree(version)}
PARTITION BY toYYYYMM(event_time)
ORDER BY (tenant, event_type, event_id);

CREATE TABLE IF NOT EXISTS {db}.conversations {on_cluster}
(
    tenant LowCardinality(String),
    source LowCardinality(String),
    conversation_id String,
    agent LowCardinality(String),
    user String,
    channel LowCardinality(String),
    status LowCardinality(String),
    started_at DateTime64(3, 'UTC'),
    last_activity_at DateTime64(3, 'UTC'),
    duration_seconds Nullable(Float64),
    observed_at DateTime64(3, 'UTC')
)
ENGINE = {engine:ReplacingMergeTree(observed_at)}
ORDER BY (tenant, conversation_id);

-- Usage counters as observed, the last observation of each day kept: daily usage trends.
CREATE TABLE IF NOT EXISTS {db}.usage_daily {on_cluster}
(
    tenant LowCardinality(String),
    source LowCardinality(String),
    client LowCardinality(String),
    agent LowCardinality(String),
    resource LowCardinality(String),
    period_start Date,
    day Date,
    used Float64,
    quota Float64 COMMENT '0 = unlimited',
    observed_at DateTime64(3, 'UTC')
)
ENGINE = {engine:ReplacingMergeTree(observed_at)}
PARTITION BY toYYYYMM(day)
ORDER BY (tenant, client, agent, resource, day);
