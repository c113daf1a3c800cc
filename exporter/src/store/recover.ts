// Repairs, after a crash, what ClickHouse's materialized views derive from request and
// message rows.
//
// An INSERT into `requests` writes its part, then the parts of the views that feed on it
// (daily rollups, error events). A process killed between the two leaves rows in `requests`
// that the rollups never counted, and the writers' rule "insert only ids not stored yet",
// which keeps rows from being stored twice, then never inserts them again. So before a
// stream resumes, the rows written since its last checkpoint (by ingested_at) mark the days
// in doubt, and for each such day of the source:
//   1. the rollup rows of the day are deleted;
//   2. the day's rows are inserted again (the views run and rebuild the rollups; error
//      events collapse in their ReplacingMergeTree);
//   3. the older copies of the day's rows are deleted.
// Each step can be interrupted and the whole repeated: the days in doubt are found again
// from the copies, and only the newest copy survives step 3.
import type { EventStore } from './clickhouse.ts';
import { clickhouseString } from './literal.ts';

/** Event tables with materialized views on them, their time column and the views' rollup tables. */
const DERIVED = [
  { table: 'requests', time: 'started_at', rollups: ['requests_daily'] },
  { table: 'messages', time: 'created_at', rollups: ['messages_daily'] },
] as const;

/** Rows written this long before the checkpoint count as in doubt too, beyond the clock skew. */
const MARGIN_MS = 1000;

export interface RecoverResult {
  table: string;
  days: string[];
  rows: number;
}

/**
 * `since`: the checkpoint time; `notBefore`: a time no event written since is older than (the
 * checkpoint's watermark), which lets the search skip older partitions and granules; a day
 * of slack covers event times that trail the cursor (a response message's end time).
 */
export async function recoverDerived(store: EventStore, source: string, since: Date, notBefore: Date | null = null): Promise<RecoverResult[]> {
  const db = store.database;
  // DELETE runs on the storage tables (on every node of a cluster).
  const local = (table: string) => (store.cluster === undefined ? `${db}.${table}` : `${db}.${table}_local ON CLUSTER '${store.cluster}'`);
  const src = clickhouseString(source);
  // ingested_at is the server's clock, the checkpoint time is ours: allow for the difference.
  const [clock] = await store.query<{ now: string }>("SELECT toString(now64(3, 'UTC')) AS now");
  const skew = Math.abs(Date.parse(`${clock!.now.replace(' ', 'T')}Z`) - Date.now());
  const from = new Date(since.getTime() - skew - MARGIN_MS).toISOString().replace('T', ' ').replace('Z', '');
  const results: RecoverResult[] = [];
  for (const { table, time, rollups } of DERIVED) {
    const bound = notBefore === null ? '' : ` AND ${time} >= toDateTime64(${clickhouseString(new Date(notBefore.getTime() - 86_400_000).toISOString().slice(0, 10))}, 3, 'UTC')`;
    const doubt = await store.query<{ day: string }>(
      `SELECT DISTINCT toString(toDate(${time})) AS day FROM ${db}.${table}
       WHERE source = ${src} AND ingested_at >= toDateTime64(${clickhouseString(from)}, 3, 'UTC')${bound} ORDER BY day`,
    );
    if (doubt.length === 0) continue;
    const days = `(${doubt.map((d) => clickhouseString(d.day)).join(', ')})`;
    // In UTC, as it is read back below (a server in another time zone would print local time).
    const [{ started }] = (await store.query<{ started: string }>("SELECT toString(now64(3, 'UTC')) AS started")) as [{ started: string }];
    for (const rollup of rollups) await store.command(`DELETE FROM ${local(rollup)} WHERE source = ${src} AND day IN ${days}`);
    // Every column but ingested_at, which the server sets anew (its default).
    await store.command(`INSERT INTO ${db}.${table} (* EXCEPT (ingested_at))
      SELECT * EXCEPT (ingested_at) FROM ${db}.${table} FINAL WHERE source = ${src} AND toDate(${time}) IN ${days}
      SETTINGS optimize_on_insert = 0`);
    // ingested_at is set by the server; copies made by step 2 are not older than `started`.
    await store.command(`DELETE FROM ${local(table)} WHERE source = ${src} AND toDate(${time}) IN ${days} AND ingested_at < toDateTime64(${clickhouseString(started)}, 3, 'UTC')`);
    const [count] = await store.query<{ n: string }>(`SELECT count() AS n FROM ${db}.${table} WHERE source = ${src} AND toDate(${time}) IN ${days}`);
    results.push({ table, days: doubt.map((d) => d.day), rows: Number(count!.n) });
  }
  return results;
}
