// Defect: rows that committed later than maxCommitDelay after their timestamp were lost with
// no trace. Rows committed at 2× maxCommitDelay (short durations here) now reach ClickHouse
// and the metric counters exactly once, through the straggler sweep, and are counted as late.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../testing/databases.ts';
import { silentLogger, testConfig } from '../testing/fixtures.ts';
import { eventually } from '../testing/prometheus.ts';
import { sumSamples } from '../testing/metrics-text.ts';
import { openStore, type EventStore } from '../store/clickhouse.ts';
import { ClickHouseSink } from '../sinks/clickhouse-sink.ts';
import { FileCheckpointStore } from '../reader/checkpoint-store.ts';
import { MetricsRegistry } from '../metrics/registry.ts';
import { prometheusText } from '../metrics/prometheus-text.ts';
import { Pipeline } from './pipeline.ts';

const PROMPT_ROWS = 200;
const LATE_TRANSACTIONS = 5;
const LATE_ROWS_EACH = 10;

describe('rows committed later than maxCommitDelay', () => {
  let db: TestDatabase;
  let stateDir: string;
  let store: EventStore;
  beforeAll(async () => {
    db = await createTestDatabase({ schemas: ['claude-nexus-proxy'] });
    stateDir = mkdtempSync(join(tmpdir(), 'tw-late-'));
  });
  afterAll(async () => {
    await store?.close();
    await db.drop();
    rmSync(stateDir, { recursive: true, force: true });
  });

  it('reach ClickHouse and the counters exactly once, and are counted as late', async () => {
    const config = testConfig(db.url, {
      stateDir,
      sources: [{ type: 'claude-nexus-proxy', pollInterval: '100ms', maxCommitDelay: '1s', sweepWindow: '1m', sweepInterval: '1s' }],
    });
    store = await openStore(config);
    await store.migrate();
    const metrics = new MetricsRegistry();
    const pipeline = await Pipeline.open({
      config, logger: silentLogger(), sinks: [new ClickHouseSink(store, 'redacted')], store: new FileCheckpointStore(stateDir), autoSources: false, metrics,
    });
    pipeline.start();
    const insert = (client: { query: (sql: string, params: unknown[]) => Promise<unknown> }, prefix: string, n: number) =>
      client.query(
        `INSERT INTO api_requests (request_id, domain, timestamp, model, request_type, response_status, input_tokens, output_tokens)
         SELECT gen_random_uuid(), $1 || '.example.com', now(), 'claude-sonnet-4-5-20250929', 'inference', 200, 100 + i, i FROM generate_series(1, $2::int) AS i`,
        [prefix, n],
      );
    // Late: each transaction's rows carry its start time and commit 2 s later (2× maxCommitDelay).
    const late = Array.from({ length: LATE_TRANSACTIONS }, async (_, i) => {
      await new Promise((resolve) => setTimeout(resolve, i * 400));
      const client = await db.pool.connect();
      try {
        await client.query('BEGIN');
        await insert(client, 'late', LATE_ROWS_EACH);
        await new Promise((resolve) => setTimeout(resolve, 2000));
        await client.query('COMMIT');
      } finally {
        client.release();
      }
    });
    // Prompt: committed at once, all the while.
    for (let i = 0; i < PROMPT_ROWS / 20; i++) {
      await insert(db.pool, 'prompt', 20);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    await Promise.all(late);
    const total = PROMPT_ROWS + LATE_TRANSACTIONS * LATE_ROWS_EACH;
    await eventually(async () => {
      const [row] = await store.query<{ n: number }>('SELECT count() AS n FROM tokenwatch.requests FINAL');
      return Number(row!.n) === total;
    }, 20_000, 'every row in ClickHouse');
    await pipeline.close();

    const { rows } = await db.pool.query<{ n: number; input: string; output: string }>(
      "SELECT count(*)::int AS n, sum(input_tokens)::text AS input, sum(output_tokens)::text AS output FROM api_requests WHERE request_type = 'inference'",
    );
    expect(rows[0]!.n).toBe(total);
    const [ch] = await store.query<{ physical: number }>('SELECT count() AS physical FROM tokenwatch.requests');
    expect(Number(ch!.physical), 'rows stored twice').toBe(total);
    const text = prometheusText(metrics.collect(pipeline.statuses(), [], []));
    expect(sumSamples(text, 'tokenwatch_requests_total')).toBe(total);
    expect(sumSamples(text, 'tokenwatch_tokens_total', 'type="input"')).toBe(Number(rows[0]!.input));
    expect(sumSamples(text, 'tokenwatch_tokens_total', 'type="output"')).toBe(Number(rows[0]!.output));
    expect(sumSamples(text, 'tokenwatch_source_rows_late_total')).toBe(LATE_TRANSACTIONS * LATE_ROWS_EACH);
    expect(sumSamples(text, 'tokenwatch_source_rows_beyond_sweep_window_total')).toBe(0);
    const maxDelay = sumSamples(text, 'tokenwatch_source_late_row_max_delay_seconds');
    expect(maxDelay).toBeGreaterThanOrEqual(2);
    expect(maxDelay).toBeLessThan(10);
    expect(text).toContain('tokenwatch_source_max_commit_delay_seconds{source="claude-nexus-proxy",table="api_requests"} 1');
    expect(text).toContain('tokenwatch_source_sweep_window_seconds{source="claude-nexus-proxy",table="api_requests"} 60');
  });
});
