// `tokenwatch reprice`: after a price or override change, the stored costs of a date range are
// computed again. The source rows of the range are read again (by day, on the timestamp
// index) and mapped with today's prices, exactly as a poll maps them; a request whose stored
// version differs is written as a new version, with its old amounts taken out of the daily
// rollups (row versions, model/row-versions.ts). The Prometheus counters are not touched:
// counters never go down, and /metrics keeps what it counted when the rows were read.
import type pg from 'pg';
import { withReadTransaction } from '../db/postgres.ts';
import type { RequestEvent } from '../model/events.ts';
import { unchanged, versionKey } from '../model/row-versions.ts';
import type { ClickHouseSink } from '../sinks/clickhouse-sink.ts';
import { dayIds, idTypeOf, readRowsById } from './reconcile.ts';
import type { StreamRunner } from './stream-runner.ts';

const DAY_MS = 86_400_000;
const BATCH = 1000;

export interface RepriceResult {
  stream: string;
  /** Source rows read again, and requests whose stored cost (or estimate) changed. */
  rows: number;
  changed: number;
  /** sum(cost_usd) and sum(cost_estimate_usd) of the stream's stored requests in the range, before and after. */
  before: { cost: string; estimate: string };
  after: { cost: string; estimate: string };
}

/** UTC days (YYYY-MM-DD) from `from` (inclusive) to `to` (exclusive), whole days. */
export function daysBetween(from: number, to: number): string[] {
  const days: string[] = [];
  for (let at = Math.floor(from / DAY_MS) * DAY_MS; at < to; at += DAY_MS) days.push(new Date(at).toISOString().slice(0, 10));
  return days;
}

async function storedSums(sink: ClickHouseSink, source: string, from: number, to: number): Promise<{ cost: string; estimate: string }> {
  const [row] = await sink.store.query<{ cost: string; estimate: string }>(
    `SELECT toString(sum(cost_usd)) AS cost, toString(sum(ifNull(cost_estimate_usd, 0))) AS estimate FROM ${sink.store.database}.requests FINAL
     WHERE source = {source:String} AND started_at >= fromUnixTimestamp64Milli({from:Int64}) AND started_at < fromUnixTimestamp64Milli({to:Int64})`,
    { source, from, to },
  );
  return { cost: row?.cost ?? '0', estimate: row?.estimate ?? '0' };
}

/** Reprices the requests of one stream whose rows have a cursor in [from, to) (whole UTC days). */
export async function repriceStream(pool: pg.Pool, sink: ClickHouseSink, runner: StreamRunner, from: number, to: number, onDay?: (day: string, rows: number) => void): Promise<RepriceResult> {
  const { stream } = runner;
  const source = stream.stored!.source;
  const start = Math.floor(from / DAY_MS) * DAY_MS;
  const end = Math.ceil(to / DAY_MS) * DAY_MS;
  const before = await storedSums(sink, source, start, end);
  const result: RepriceResult = { stream: runner.id, rows: 0, changed: 0, before, after: before };
  await withReadTransaction(pool, async (client) => {
    const idType = await idTypeOf(client, stream);
    for (const day of daysBetween(start, end)) {
      const ids = await dayIds(client, stream, day);
      for (let i = 0; i < ids.length; i += BATCH) {
        const rows = await readRowsById(client, stream, ids.slice(i, i + BATCH), idType);
        const requests = runner.mapRows(rows).filter((e): e is RequestEvent => e.kind === 'request');
        const stored = await sink.storedVersions(requests);
        // Only requests stored before: a row never delivered is the reader's to deliver (and count).
        const changed = requests.filter((e) => {
          const found = stored.get(versionKey(e));
          return found !== undefined && !unchanged(e, found);
        });
        if (changed.length > 0) await sink.write(changed, stored);
        result.rows += rows.length;
        result.changed += changed.length;
      }
      onDay?.(day, ids.length);
    }
  });
  result.after = await storedSums(sink, source, start, end);
  return result;
}
