-- A conversation, a message and an activity event are one row whatever tenant they are
-- labelled with. Sidekick Forge attributes an agent to its client through the agent's usage
-- rows and the activity log, so the tenant of a conversation or a transcript can change
-- between two reads (an agent's first usage row arrives later than its first messages); with
-- the tenant in the sorting key the second version was a second row (91 rows for 86
-- conversations). The sorting keys become the identities alone; the tenant stays a column.
--
-- ClickHouse cannot drop a column from a sorting key, so each table is rebuilt: copied into a
-- table with the new key, then exchanged with it atomically. The steps are safe to run again
-- after a crash at any point (the copy is dropped and made again from whichever table holds
-- the data now). The migration runs at start, before anything writes.
-- Cluster: the local tables are rebuilt on every node; the Distributed tables still shard by
-- tenant, so a row whose tenant changes can have versions on two shards (clickhouse/README.md).

DROP TABLE IF EXISTS {db}.{local:conversations_0006} {on_cluster};
CREATE TABLE {db}.{local:conversations_0006} {on_cluster} AS {db}.{local:conversations}
ENGINE = {engine:ReplacingMergeTree(observed_at)}
ORDER BY conversation_id;
INSERT INTO {db}.{local:conversations_0006} SELECT * FROM {db}.{local:conversations};
EXCHANGE TABLES {db}.{local:conversations} AND {db}.{local:conversations_0006} {on_cluster};
DROP TABLE IF EXISTS {db}.{local:conversations_0006} {on_cluster};

DROP TABLE IF EXISTS {db}.{local:activity_events_0006} {on_cluster};
CREATE TABLE {db}.{local:activity_events_0006} {on_cluster} AS {db}.{local:activity_events}
ENGINE = {engine:ReplacingMergeTree(version)}
PARTITION BY toYYYYMM(event_time)
ORDER BY (event_type, event_id);
INSERT INTO {db}.{local:activity_events_0006} SELECT * FROM {db}.{local:activity_events};
EXCHANGE TABLES {db}.{local:activity_events} AND {db}.{local:activity_events_0006} {on_cluster};
DROP TABLE IF EXISTS {db}.{local:activity_events_0006} {on_cluster};

DROP TABLE IF EXISTS {db}.{local:messages_0006} {on_cluster};
CREATE TABLE {db}.{local:messages_0006} {on_cluster} AS {db}.{local:messages}
ENGINE = {engine:ReplacingMergeTree(ingested_at)}
PARTITION BY toYYYYMM(created_at)
ORDER BY (conversation_id, message_id);
INSERT INTO {db}.{local:messages_0006} SELECT * FROM {db}.{local:messages};
EXCHANGE TABLES {db}.{local:messages} AND {db}.{local:messages_0006} {on_cluster};
DROP TABLE IF EXISTS {db}.{local:messages_0006} {on_cluster};
ALTER TABLE {db}.{local:messages} {on_cluster} ADD INDEX IF NOT EXISTS idx_conversation_id conversation_id TYPE bloom_filter(0.01) GRANULARITY 1;
