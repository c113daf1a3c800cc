// Operational counters survive a restart exactly as the data counters do: what one process
// (here a backfill) read, rejected and repaired is on the next process's /metrics before it
// reads anything, and reading again adds nothing twice.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../testing/databases.ts';
import { silentLogger, testConfig } from '../testing/fixtures.ts';
import { samples } from '../testing/metrics-text.ts';
import { Pipeline } from './pipeline.ts';
import { FileCheckpointStore } from '../reader/checkpoint-store.ts';
import { MemorySink } from '../sinks/memory-sink.ts';
import { MetricsRegistry } from '../metrics/registry.ts';
import { prometheusText } from '../metrics/prometheus-text.ts';

const OPERATIONAL = ['tokenwatch_source_rows_read_total', 'tokenwatch_source_rows_invalid_total', 'tokenwatch_source_rows_late_total', 'tokenwatch_source_late_row_max_delay_seconds'];

describe('operational counters across a restart', () => {
  let db: TestDatabase;
  let stateDir: string;
  beforeAll(async () => {
    db = await createTestDatabase({ schemas: ['litellm'] });
    stateDir = mkdtempSync(join(tmpdir(), 'tw-counters-'));
    const insert = `INSERT INTO "LiteLLM_SpendLogs" (request_id, call_type, spend, prompt_tokens, completion_tokens, "startTime", "endTime", model, team_id, status)
      VALUES ($1, 'acompletion', $2, $3, 5, now() - make_interval(secs => $4), now() - make_interval(secs => $4), 'gpt-4o', 'team-a', 'success')`;
    for (let i = 0; i < 120; i++) {
      // Every 10th row rejected (negative tokens); every 7th repaired (a spend that is not an amount)
      // unless rejected: 16 rows.
      await db.pool.query(insert, [`r-${i}`, i % 7 === 0 ? 'NaN' : 0.01, i % 10 === 0 ? -1 : 10, 900 - i * 5]);
    }
  });
  afterAll(async () => {
    await db?.drop();
    if (stateDir) rmSync(stateDir, { recursive: true, force: true });
  });

  /** One process: opens on the state directory, optionally reads, and returns /metrics. */
  async function process(read: boolean): Promise<string> {
    const config = testConfig(db.url, { stateDir, sources: [{ type: 'litellm', batchSize: 50 }] });
    const metrics = new MetricsRegistry();
    const pipeline = await Pipeline.open({ config, logger: silentLogger(), sinks: [new MemorySink()], store: new FileCheckpointStore(stateDir), autoSources: false, metrics });
    if (read) await pipeline.backfill();
    const text = prometheusText(metrics.collect(pipeline.statuses(), pipeline.quality.snapshot(), [], pipeline.sinks()));
    await pipeline.close();
    return text;
  }

  const of = (text: string, name: string) => samples(text, name).filter((s) => s.labels.table === 'LiteLLM_SpendLogs').map((s) => `${JSON.stringify(s.labels)} ${s.value}`).sort();

  it('a backfill\'s counts are on the next process\'s /metrics before it reads, and reading again adds nothing', async () => {
    const first = await process(true);
    expect(of(first, 'tokenwatch_source_rows_read_total')).toEqual(['{"source":"litellm","table":"LiteLLM_SpendLogs"} 120']);
    expect(of(first, 'tokenwatch_source_rows_invalid_total')).toEqual([
      '{"source":"litellm","table":"LiteLLM_SpendLogs","reason":"invalid_cost","action":"repaired"} 16',
      '{"source":"litellm","table":"LiteLLM_SpendLogs","reason":"negative_tokens","action":"rejected"} 12',
    ]);
    const restarted = await process(false);
    for (const name of [...OPERATIONAL, 'tokenwatch_requests_total']) expect(of(restarted, name), name).toEqual(of(first, name));
    const again = await process(true);
    for (const name of [...OPERATIONAL, 'tokenwatch_requests_total']) expect(of(again, name), name).toEqual(of(first, name));
  });
});
