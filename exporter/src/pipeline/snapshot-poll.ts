// One read of a table updated in place (quotas, agents, conversations): every row in one
// REPEATABLE READ transaction, mapped to snapshot events that replace the previous read's
// gauges. Nothing is incremental here: no checkpoint, no row versions.
import type pg from 'pg';
import type { CanonicalEvent } from '../model/events.ts';
import type { MapContext, SnapshotQuery } from '../sources/adapter.ts';
import type { MetricsRegistry } from '../metrics/registry.ts';
import type { RowQuality } from '../quality/row-quality.ts';
import { beginRead } from '../db/postgres.ts';
import { errorText } from '../log.ts';
import { mapRowChecked } from '../quality/map-row.ts';
import type { StreamStatus } from './status.ts';

export interface SnapshotPollDeps {
  mapContext(queryId: string): MapContext;
  quality: RowQuality;
  emit(events: CanonicalEvent[]): Promise<void>;
  metrics: MetricsRegistry | undefined;
  now(): number;
}

/** Reads `query` once, keeping `status`; returns the rows read. */
export async function pollSnapshot(pool: pg.Pool, entry: { query: SnapshotQuery; status: StreamStatus }, deps: SnapshotPollDeps): Promise<number> {
  const { query, status } = entry;
  status.lastPollStartedAt = deps.now();
  status.polls += 1;
  const client = await pool.connect();
  try {
    await beginRead(client);
    const { rows } = await client.query(query.sql, query.params);
    await client.query('COMMIT');
    const ctx = deps.mapContext(query.id);
    const observedAt = new Date(deps.now()).toISOString();
    const events: CanonicalEvent[] = [];
    for (const row of rows) {
      const outcome = mapRowChecked(() => query.mapRow(row, ctx, observedAt));
      if (outcome.rejected) {
        status.rowsRejected += 1;
        deps.quality.record(query.id, 'rejected', outcome.rejected.reason, outcome.rejected.message, '');
      } else {
        events.push(...outcome.events);
      }
    }
    await deps.emit(events);
    deps.metrics?.recordSnapshot(query.id, events);
    status.rowsRead += rows.length;
    status.eventsEmitted += events.length;
    status.lastSuccessAt = deps.now();
    status.lastSuccessStartedAt = status.lastPollStartedAt;
    status.lastError = null;
    return rows.length;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    status.lastError = errorText(error);
    throw error;
  } finally {
    client.release();
    status.lastPollDurationMs = deps.now() - status.lastPollStartedAt;
  }
}
