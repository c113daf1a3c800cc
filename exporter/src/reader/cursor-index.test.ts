// A table whose real schema has no index on its cursor column is read less often while it has
// none, and on pollInterval once the index check prints exists; /metrics shows which.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../testing/databases.ts';
import { silentLogger, testConfig } from '../testing/fixtures.ts';
import { Pipeline } from '../pipeline/pipeline.ts';
import { MemoryCheckpointStore } from './checkpoint-store.ts';
import { MemorySink } from '../sinks/memory-sink.ts';
import { MetricsRegistry } from '../metrics/registry.ts';
import { prometheusText } from '../metrics/prometheus-text.ts';
import { value } from '../testing/metrics-text.ts';
import { hasCursorIndex, indexStatement } from './cursor-index.ts';
import { ERROR_LOG_INTERVAL_MS } from '../sources/litellm.ts';

describe('tables without an index on their cursor column', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase({ schemas: ['litellm'] });
  });
  afterAll(async () => {
    await db?.drop();
  });

  async function intervals(): Promise<{ spend: number | undefined; errors: number | undefined }> {
    const config = testConfig(db.url, { sources: [{ type: 'litellm', pollInterval: '2s' }] });
    const metrics = new MetricsRegistry();
    const pipeline = await Pipeline.open({ config, logger: silentLogger(), sinks: [new MemorySink()], store: new MemoryCheckpointStore(), autoSources: false, metrics });
    try {
      const text = prometheusText(metrics.collect(pipeline.statuses(), [], []));
      return {
        spend: value(text, 'tokenwatch_source_poll_interval_seconds', { table: 'LiteLLM_SpendLogs' }),
        errors: value(text, 'tokenwatch_source_poll_interval_seconds', { table: 'LiteLLM_ErrorLogs' }),
      };
    } finally {
      await pipeline.close();
    }
  }

  it('reads the error log every 5 minutes while "startTime" has no index, on pollInterval once it has one', async () => {
    const spec = { table: 'public."LiteLLM_ErrorLogs"', cursorColumn: '"startTime"' };
    expect(await hasCursorIndex(db.pool, spec)).toBe(false);
    expect(await hasCursorIndex(db.pool, { table: 'public."LiteLLM_SpendLogs"', cursorColumn: '"startTime"' })).toBe(true);
    expect(await intervals()).toEqual({ spend: 2, errors: ERROR_LOG_INTERVAL_MS / 1000 });
    // The statement check prints, run as printed.
    await db.pool.query(indexStatement(spec));
    expect(await hasCursorIndex(db.pool, spec)).toBe(true);
    expect(await intervals()).toEqual({ spend: 2, errors: 2 });
  });
});
