-- Error activity events derived from request rows as they are inserted, by the row-by-row
-- writer and the bulk backfill alike (one definition, no second insert to keep in step).
-- Templates: {local:name} is the storage table (name_local in the clustered variant), so the
-- view reads each node's own inserts and writes to the same shard (both tables are sharded
-- by tenant). A re-sent request row is never inserted (writers insert only ids not yet
-- stored), so no event is created twice; activity_events is a ReplacingMergeTree besides.

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.error_events_mv {on_cluster} TO {db}.{local:activity_events} AS
SELECT
    tenant, source,
    concat('error:', request_id) AS event_id,
    'error' AS event_type,
    started_at AS event_time,
    '' AS agent, '' AS conversation_id, '' AS resource, 0 AS value,
    -- {"error_type": …, "http_status": … or null, "model": …}
    toJSONString(CAST((error_type, nullIf(http_status, 0), model), 'Tuple(error_type String, http_status Nullable(UInt16), model String)')) AS details,
    toUInt64(4503599627370496 - toUnixTimestamp64Milli(started_at)) AS version
FROM {db}.{local:requests}
WHERE error_type != '';
