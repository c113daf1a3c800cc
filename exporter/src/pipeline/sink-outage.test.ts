// The event store failing for a long time while rows keep arriving: every write fails at the
// writer boundary of the embedded engine (the store's insert). Reading pauses by
// backpressure (no page is taken further than the failing write, no rows pile up in
// memory), the sink shows as down, and on recovery everything arrives once: ClickHouse and
// the counters equal SQL. The same with a real ClickHouse server stopped and started again
// runs where a Docker engine is reachable.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../testing/databases.ts';
import { silentLogger, testConfig } from '../testing/fixtures.ts';
import { waitUntil } from '../testing/tokenwatch-process.ts';
import { startWriter } from '../testing/writer.ts';
import { sumSamples } from '../testing/metrics-text.ts';
import { dockerUnavailable } from '../testing/docker.ts';
import { openStore, type EventStore } from '../store/clickhouse.ts';
import { ClickHouseSink } from '../sinks/clickhouse-sink.ts';
import { FileCheckpointStore } from '../reader/checkpoint-store.ts';
import { MetricsRegistry } from '../metrics/registry.ts';
import { prometheusText } from '../metrics/prometheus-text.ts';
import type { Config } from '../config/schema.ts';
import { Pipeline } from './pipeline.ts';

const OUTAGE_MS = 20_000;

/** The store with a switch at its writer boundary: while `failing`, every insert throws. */
function failingAtInsert(store: EventStore): EventStore & { failing: boolean } {
  const wrapped = {
    ...store,
    failing: false,
    async insert(table: string, rows: readonly Record<string, unknown>[]) {
      if (wrapped.failing) throw new Error('injected: ClickHouse insert failed (Code: 242, TABLE_IS_READ_ONLY)');
      return store.insert(table, rows);
    },
  };
  return wrapped;
}

async function sqlTotals(db: TestDatabase): Promise<{ rows: number; output: number }> {
  const { rows } = await db.pool.query<{ n: number; output: string }>("SELECT count(*)::int AS n, coalesce(sum(output_tokens), 0)::text AS output FROM api_requests WHERE request_type = 'inference'");
  return { rows: rows[0]!.n, output: Number(rows[0]!.output) };
}

/** Runs the outage scenario against `store`; `outage` breaks it and `recover` mends it. */
async function outageScenario(db: TestDatabase, config: Config, store: EventStore, outage: { start(): Promise<void>; end(): Promise<void> }, stateDir: string) {
  const metrics = new MetricsRegistry();
  const pipeline = await Pipeline.open({ config, logger: silentLogger(), sinks: [new ClickHouseSink(store, 'redacted')], store: new FileCheckpointStore(stateDir), autoSources: false, metrics });
  pipeline.start();
  const text = () => prometheusText(metrics.collect(pipeline.statuses(), [], [], pipeline.sinks()));
  const writer = startWriter(db.url, { rowsPerInsert: 10, everyMs: 50 });
  try {
    await waitUntil(() => sumSamples(text(), 'tokenwatch_requests_total') > 0, 'rows flowing before the outage', 30_000);
    await outage.start();
    const rss: number[] = [];
    const started = Date.now();
    // Counted from the first failed write on: a page read just before the outage may still be
    // finishing when it starts (it was delivered; its rows are counted as it ends).
    await waitUntil(() => text().includes('tokenwatch_sink_up{sink="clickhouse"} 0'), 'the first failed write', 10_000, 50);
    const readAtStart = sumSamples(text(), 'tokenwatch_source_rows_read_total');
    let sinkDown = false;
    while (Date.now() - started < OUTAGE_MS) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      rss.push(process.memoryUsage().rss);
      if (text().includes('tokenwatch_sink_up{sink="clickhouse"} 0')) sinkDown = true;
    }
    const readDuring = sumSamples(text(), 'tokenwatch_source_rows_read_total') - readAtStart;
    const pendingRows = (await sqlTotals(db)).rows - sumSamples(text(), 'tokenwatch_requests_total');
    await outage.end();
    await writer.stop();
    const totals = await sqlTotals(db);
    await waitUntil(() => sumSamples(text(), 'tokenwatch_requests_total') === totals.rows, 'the counters to catch up', 60_000, 200);
    const final = text();
    expect(sumSamples(final, 'tokenwatch_tokens_total', 'type="output"')).toBe(totals.output);
    expect(final).toContain('tokenwatch_sink_up{sink="clickhouse"} 1');
    expect(sumSamples(final, 'tokenwatch_sink_write_failures_total')).toBeGreaterThan(0);
    return { sinkDown, readDuring, pendingRows, rss, totals };
  } finally {
    await writer.stop();
    await pipeline.close();
  }
}

describe('event store outage', () => {
  let db: TestDatabase;
  const dirs: string[] = [];
  beforeAll(async () => {
    db = await createTestDatabase({ schemas: ['claude-nexus-proxy'] });
  });
  afterAll(async () => {
    await db.drop();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  it(`embedded engine failing every insert for ${OUTAGE_MS / 1000} s: reading pauses, memory stays flat, nothing is lost`, async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'tw-sink-outage-'));
    dirs.push(stateDir);
    const config = testConfig(db.url, { stateDir, sources: [{ type: 'claude-nexus-proxy', pollInterval: '200ms', batchSize: 500 }] });
    const real = await openStore(config);
    await real.migrate();
    const store = failingAtInsert(real);
    try {
      const result = await outageScenario(db, config, store, { start: async () => void (store.failing = true), end: async () => void (store.failing = false) }, stateDir);
      expect(result.sinkDown).toBe(true);
      // Backpressure: nothing was taken past the failing write while rows kept arriving.
      expect(result.readDuring).toBe(0);
      expect(result.pendingRows).toBeGreaterThan(1000);
      const mib = (n: number) => Math.round(n / 1048576);
      const growth = Math.max(...result.rss) - result.rss[0]!;
      console.log(`event store outage ${OUTAGE_MS / 1000} s: ${result.pendingRows} rows waited in PostgreSQL, RSS ${mib(result.rss[0]!)} -> ${mib(Math.max(...result.rss))} MiB (max growth ${mib(growth)} MiB), ${result.totals.rows} rows delivered once after recovery`);
      expect(growth).toBeLessThan(64 * 1048576);
      const [ch] = await real.query<{ physical: number; distinct_ids: number }>('SELECT count() AS physical, uniqExact(request_id) AS distinct_ids FROM tokenwatch.requests');
      expect({ physical: Number(ch!.physical), distinct: Number(ch!.distinct_ids) }).toEqual({ physical: result.totals.rows, distinct: result.totals.rows });
    } finally {
      await real.close();
    }
  });
});

const noDocker = await dockerUnavailable();
if (noDocker) console.log(`skipping the ClickHouse server outage test: no Docker engine reachable (${noDocker})`);

describe.skipIf(noDocker !== undefined)('event store outage on a ClickHouse server', () => {
  it('a server stopped and started again: reading pauses, nothing is lost', async () => {
    const { GenericContainer, Wait } = await import('testcontainers');
    const container = await new GenericContainer('clickhouse/clickhouse-server:25.8')
      .withEnvironment({ CLICKHOUSE_USER: 'tokenwatch', CLICKHOUSE_PASSWORD: 'secret', CLICKHOUSE_DEFAULT_ACCESS_MANAGEMENT: '1' })
      .withExposedPorts({ container: 8123, host: 18123 })
      .withWaitStrategy(Wait.forHttp('/ping', 8123))
      .start();
    const db = await createTestDatabase({ schemas: ['claude-nexus-proxy'] });
    const stateDir = mkdtempSync(join(tmpdir(), 'tw-sink-outage-server-'));
    try {
      const config = testConfig(db.url, { stateDir, sources: [{ type: 'claude-nexus-proxy', pollInterval: '200ms' }], clickhouse: { url: 'http://tokenwatch:secret@127.0.0.1:18123' } });
      const store = await openStore(config);
      await store.migrate();
      const result = await outageScenario(db, config, store, {
        start: async () => void (await container.stop({ remove: false, timeout: 0 })),
        end: async () => void (await container.restart()),
      }, stateDir);
      expect(result.sinkDown).toBe(true);
      const [ch] = await store.query<{ physical: string; distinct_ids: string }>('SELECT count() AS physical, uniqExact(request_id) AS distinct_ids FROM tokenwatch.requests');
      expect(Number(ch!.distinct_ids)).toBe(result.totals.rows);
      await store.close();
    } finally {
      await container.stop().catch(() => undefined);
      await db.drop();
      rmSync(stateDir, { recursive: true, force: true });
    }
  });
});
