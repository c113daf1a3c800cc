-- A conversation's requests, found without reading the whole table: requests are sorted by
-- (tenant, day, request_id), so a filter on conversation_id alone (the Conversation thread
-- dashboard, `tokenwatch export`) had to read every granule. A bloom filter on it lets
-- ClickHouse skip the granules that cannot hold the conversation. Existing parts get the
-- index as they merge (MATERIALIZE INDEX would rewrite them all at once).

ALTER TABLE {db}.{local:requests} {on_cluster} ADD INDEX IF NOT EXISTS idx_conversation_id conversation_id TYPE bloom_filter(0.01) GRANULARITY 1;
