-- Rows the event store refused. A page ClickHouse will not take (a value its column cannot
-- hold, text it cannot parse) is split until the refused rows are isolated; each of those is
-- kept here with its source id, the table it was meant for and ClickHouse's error, and
-- counted in tokenwatch_sink_rows_rejected_total. The rest of the page, and the stream, go on.

CREATE TABLE IF NOT EXISTS {db}.dead_letters {on_cluster}
(
    failed_at DateTime64(3, 'UTC') DEFAULT now64(3),
    tenant LowCardinality(String),
    source LowCardinality(String),
    target_table LowCardinality(String),
    row_id String,
    reason LowCardinality(String) COMMENT 'ClickHouse error name, e.g. ARGUMENT_OUT_OF_BOUND',
    error String,
    row String COMMENT 'the row as it was sent, JSON' CODEC(ZSTD(3))
)
ENGINE = {engine:MergeTree}
PARTITION BY toYYYYMM(failed_at)
ORDER BY (target_table, failed_at);
