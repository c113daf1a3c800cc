// A sink that fails loses nothing: the page is read again on the next poll, and the metric
// counters recorded for it are rolled back so it is not counted twice.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../testing/databases.ts';
import { API_REQUEST_COLUMNS, apiRequestRows, insertRows } from '../embedded/seed.ts';
import { Pipeline } from './pipeline.ts';
import { MemoryCheckpointStore } from '../reader/checkpoint-store.ts';
import { silentLogger, testConfig } from '../testing/fixtures.ts';
import { MetricsRegistry } from '../metrics/registry.ts';
import { prometheusText } from '../metrics/prometheus-text.ts';
import type { CanonicalEvent } from '../model/events.ts';
import type { Sink } from '../sinks/sink.ts';

class FlakySink implements Sink {
  readonly name = 'flaky';
  readonly requests = new Map<string, number>();
  failNext = 0;
  writes = 0;
  async write(events: readonly CanonicalEvent[]): Promise<void> {
    this.writes += 1;
    if (this.failNext > 0 && this.writes > 2) {
      this.failNext -= 1;
      throw new Error('disk full');
    }
    for (const e of events) if (e.kind === 'request') this.requests.set(e.requestId, (this.requests.get(e.requestId) ?? 0) + 1);
  }
  async close(): Promise<void> {}
}

describe('sink failure', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase({ schemas: ['claude-nexus-proxy'] });
    await insertRows(db.pool, 'api_requests', API_REQUEST_COLUMNS, apiRequestRows(2000, { seed: 5 }));
  });
  afterAll(async () => {
    await db.drop();
  });

  it('marks the sink down, re-reads the page and counts every row once', async () => {
    const sink = new FlakySink();
    sink.failNext = 1;
    const metrics = new MetricsRegistry();
    const store = new MemoryCheckpointStore();
    const config = testConfig(db.url, { sources: [{ type: 'claude-nexus-proxy', batchSize: 300 }] });
    for (const source of config.sources) source.databaseUrl = db.url;
    const pipeline = await Pipeline.open({ config, logger: silentLogger(), sinks: [sink], store, autoSources: false, metrics });
    await expect(pipeline.backfill()).rejects.toThrow('sink flaky: disk full');
    expect(pipeline.sinks()).toEqual([{ sink: 'flaky', up: false, failures: 1, eventsWritten: expect.any(Number), rowsRejected: [] }]);
    await pipeline.backfill();
    expect(pipeline.sinks()[0]!.up).toBe(true);
    await pipeline.close();
    const { rows } = await db.pool.query<{ id: string }>("SELECT request_id::text AS id FROM api_requests WHERE request_type = 'inference'");
    expect(sink.requests.size).toBe(rows.length);
    const text = prometheusText(metrics.collect(pipeline.statuses(), [], [], pipeline.sinks()));
    const counted = text.split('\n').filter((l) => l.startsWith('tokenwatch_requests_total{')).reduce((n, l) => n + Number(l.split(' ')[1]), 0);
    expect(counted).toBe(rows.length);
    expect(text).toContain('tokenwatch_sink_write_failures_total{sink="flaky"} 1');
  });
});
