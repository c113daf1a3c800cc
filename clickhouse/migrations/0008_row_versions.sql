-- Row versions. The sources update rows in place (Claude Nexus Proxy stores the response with
-- an UPDATE; Sidekick Forge rewrites a transcript row as speech streams in), so a request or a
-- message can reach the event store in several versions. Each version is a row of the
-- ReplacingMergeTree, the newest by ingested_at (tokenwatch reads a row's versions in the
-- order the source committed them, and writes them one after another); exact reads use
-- FINAL, as before.
--
-- fingerprint: a hash of the row as tokenwatch mapped it, so a row read again unchanged is not
-- written again (0: written by the bulk backfill, compared by its counted columns instead).

ALTER TABLE {db}.{local:requests} {on_cluster} ADD COLUMN IF NOT EXISTS fingerprint UInt64 DEFAULT 0;
ALTER TABLE {db}.requests {on_cluster} ADD COLUMN IF NOT EXISTS fingerprint UInt64 DEFAULT 0;
ALTER TABLE {db}.{local:messages} {on_cluster} ADD COLUMN IF NOT EXISTS fingerprint UInt64 DEFAULT 0;
ALTER TABLE {db}.messages {on_cluster} ADD COLUMN IF NOT EXISTS fingerprint UInt64 DEFAULT 0;

-- The daily rollups take a newer version as a correction: tokenwatch inserts the older
-- version with its amounts negated (a request of -1, its tokens negated) and the new version
-- through the view as usual, so the sums stay those of the newest versions. The summed
-- columns become signed for that.
ALTER TABLE {db}.{local:requests_daily} {on_cluster}
    MODIFY COLUMN requests Int64, MODIFY COLUMN errors Int64, MODIFY COLUMN subtask_requests Int64,
    MODIFY COLUMN input_tokens Int64, MODIFY COLUMN output_tokens Int64, MODIFY COLUMN cache_read_tokens Int64,
    MODIFY COLUMN cache_write_tokens Int64, MODIFY COLUMN tool_calls Int64;
ALTER TABLE {db}.requests_daily {on_cluster}
    MODIFY COLUMN requests Int64, MODIFY COLUMN errors Int64, MODIFY COLUMN subtask_requests Int64,
    MODIFY COLUMN input_tokens Int64, MODIFY COLUMN output_tokens Int64, MODIFY COLUMN cache_read_tokens Int64,
    MODIFY COLUMN cache_write_tokens Int64, MODIFY COLUMN tool_calls Int64;
ALTER TABLE {db}.{local:messages_daily} {on_cluster} MODIFY COLUMN messages Int64;
ALTER TABLE {db}.messages_daily {on_cluster} MODIFY COLUMN messages Int64;
