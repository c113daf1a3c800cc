// A PostgreSQL test database with all three source schemas seeded, backfilled into an
// embedded ClickHouse store in a temporary state directory: the starting point of the store tests.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestDatabase, type TestDatabase } from './databases.ts';
import { seedAll } from '../embedded/seed.ts';
import { silentLogger, testConfig } from './fixtures.ts';
import { openStore, type EventStore } from '../store/clickhouse.ts';
import type { Config } from '../config/schema.ts';
import { MetricsRegistry } from '../metrics/registry.ts';
import { prometheusText } from '../metrics/prometheus-text.ts';
import type { QualityCount } from '../quality/row-quality.ts';
import { Pipeline } from '../pipeline/pipeline.ts';
import { MemoryCheckpointStore } from '../reader/checkpoint-store.ts';
import { ClickHouseSink } from '../sinks/clickhouse-sink.ts';
import type { Sink } from '../sinks/sink.ts';

export interface SeededEventStore {
  db: TestDatabase;
  store: EventStore;
  stateDir: string;
  /** Migrations applied when the store was opened. */
  migrated: string[];
  close(): Promise<void>;
}

export async function seededEventStore(options: { requests: number; spendLogs: number; prepare?: (db: TestDatabase) => Promise<void>; extraSinks?: Sink[] }): Promise<SeededEventStore> {
  const db = await createTestDatabase({ schemas: ['claude-nexus-proxy', 'sidekick-forge', 'litellm'] });
  await seedAll(db.pool, { requests: options.requests, spendLogs: options.spendLogs });
  await options.prepare?.(db);
  const stateDir = mkdtempSync(join(tmpdir(), 'tw-store-'));
  const config = testConfig(db.url, { stateDir });
  const store = await openStore(config);
  const migrated = await store.migrate();
  const pipeline = await Pipeline.open({
    config, logger: silentLogger(), sinks: [new ClickHouseSink(store, 'redacted'), ...(options.extraSinks ?? [])], store: new MemoryCheckpointStore(), autoSources: false,
  });
  await pipeline.backfill();
  await pipeline.close();
  return {
    db, store, stateDir, migrated,
    async close() {
      await store.close();
      await db.drop();
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
}

/**
 * Backfills the configured sources once into a fresh store in the configuration's state
 * directory: the store (left open, to query) and what /metrics shows afterwards.
 */
export async function backfillOnce(config: Config): Promise<{ store: EventStore; text: string; quality: QualityCount[] }> {
  const store = await openStore(config);
  await store.migrate();
  const metrics = new MetricsRegistry();
  const pipeline = await Pipeline.open({ config, logger: silentLogger(), sinks: [new ClickHouseSink(store, 'full')], store: new MemoryCheckpointStore(), autoSources: false, metrics });
  try {
    await pipeline.backfill();
    const quality = pipeline.quality.snapshot();
    return { store, text: prometheusText(metrics.collect(pipeline.statuses(), quality, [])), quality };
  } finally {
    await pipeline.close();
  }
}
