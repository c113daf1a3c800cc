// The process counters (cardinality guard folds and shortened label values, failed sink
// writes) survive a restart as the stream counters do: what one process counted is on the
// next process's /metrics before it reads anything, and a scrape never shows a value that is
// not saved yet.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../testing/databases.ts';
import { silentLogger, testConfig } from '../testing/fixtures.ts';
import { samples } from '../testing/metrics-text.ts';
import { prometheusText } from '../metrics/prometheus-text.ts';
import { DurableCounters } from '../metrics/durable-counters.ts';
import type { Sink } from '../sinks/sink.ts';
import { openRuntime, type Runtime } from './runtime.ts';

const GUARD = ['tokenwatch_metric_series_overflow_total', 'tokenwatch_metric_label_values_shortened_total'];

describe('process counters across a restart', () => {
  let db: TestDatabase;
  let stateDir: string;
  beforeAll(async () => {
    db = await createTestDatabase({ schemas: ['litellm'] });
    stateDir = mkdtempSync(join(tmpdir(), 'tw-durable-'));
    // Five models against a cap of two: updates of three are folded into "other"; one model
    // name of 300 characters is shortened.
    const models = ['gpt-4o', 'gpt-4o-mini', 'claude-sonnet-4-5', 'mistral-large', `x${'y'.repeat(299)}`];
    for (let i = 0; i < 40; i++) {
      await db.pool.query(`INSERT INTO "LiteLLM_SpendLogs" (request_id, call_type, spend, prompt_tokens, completion_tokens, "startTime", "endTime", model, team_id, status)
        VALUES ($1, 'acompletion', 0.01, 10, 5, now() - make_interval(secs => $2), now() - make_interval(secs => $2), $3, 'team-a', 'success')`, [`r-${i}`, 600 - i, models[i % models.length]]);
    }
  });
  afterAll(async () => {
    await db?.drop();
    if (stateDir) rmSync(stateDir, { recursive: true, force: true });
  });

  async function open(): Promise<Runtime> {
    const config = testConfig(db.url, {
      stateDir, sources: [{ type: 'litellm' }], clickhouse: { enabled: false },
      sinks: { jsonl: join(stateDir, 'events.jsonl') }, metrics: { maxValuesPerLabel: { model: 2 } },
    });
    return openRuntime({ config, file: undefined, embedded: false, autoSources: false }, silentLogger());
  }
  const scrape = (runtime: Runtime) => prometheusText(runtime.collect());
  const of = (text: string, name: string) => samples(text, name).map((s) => `${JSON.stringify(s.labels)} ${s.value}`).sort();

  it('restores the guard\'s counts and the sink\'s failed writes before reading, and reading again adds nothing', async () => {
    const first = await open();
    await first.pipeline.backfill();
    // A sink that fails once (a full disk): the poll fails and is counted.
    const sink = (first.pipeline as unknown as { options: { sinks: Sink[] } }).options.sinks[0]!;
    const write = sink.write.bind(sink);
    sink.write = () => Promise.reject(new Error('ENOSPC: no space left on device'));
    await db.pool.query(`INSERT INTO "LiteLLM_SpendLogs" (request_id, call_type, spend, prompt_tokens, completion_tokens, "startTime", "endTime", model, team_id, status)
      VALUES ('late-1', 'acompletion', 0.01, 10, 5, now(), now(), 'gpt-4o', 'team-a', 'success')`);
    await expect(first.pipeline.pollStream(first.pipeline.sources[0]!.streams[0]!)).rejects.toThrow(/no space left/);
    sink.write = write;
    const shown = scrape(first);
    await first.close();
    expect(of(shown, 'tokenwatch_sink_write_failures_total')).toEqual(['{"sink":"jsonl"} 1']);
    const overflow = samples(shown, GUARD[0]!).find((s) => s.labels.label === 'model');
    expect(overflow?.value).toBeGreaterThan(0);
    expect(samples(shown, GUARD[1]!).find((s) => s.labels.label === 'model')?.value).toBeGreaterThan(0);
    // What was shown is what was saved.
    const saved = JSON.parse(readFileSync(join(stateDir, 'counters.json'), 'utf8')) as { series: { metric: string; value: number }[] };
    expect(saved.series.find((s) => s.metric === 'sinkFailures')?.value).toBe(1);

    const second = await open();
    const before = scrape(second);
    for (const name of [...GUARD, 'tokenwatch_sink_write_failures_total']) expect(of(before, name), name).toEqual(of(shown, name));
    await second.close();
  });

  it('names a damaged counters file instead of starting from zero without a word', () => {
    const file = join(stateDir, 'damaged.json');
    writeFileSync(file, '{"version":1,"series":[{"metric":"sinkFailures","labels":["jsonl"],"value":-3}]}');
    expect(() => new DurableCounters(file).load()).toThrow(/damaged\.json is damaged .*move it away/);
  });
});
