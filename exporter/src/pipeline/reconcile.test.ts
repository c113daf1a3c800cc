// Reconciliation: the event store checked against the source per closed day, on /metrics and
// with `verify`. It reports zero difference after a clean read, the right difference after
// rows are deleted from the store by hand, tells rows rejected as invalid from missing ones,
// and delivers a row that committed later than the sweep window (which no poll or sweep can
// see) so that ClickHouse and the counters equal SQL on the source again.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../testing/databases.ts';
import { silentLogger, testConfig } from '../testing/fixtures.ts';
import { sumSamples } from '../testing/metrics-text.ts';
import { openStore, type EventStore } from '../store/clickhouse.ts';
import { ClickHouseSink } from '../sinks/clickhouse-sink.ts';
import { MemoryCheckpointStore } from '../reader/checkpoint-store.ts';
import { MetricsRegistry } from '../metrics/registry.ts';
import { prometheusText } from '../metrics/prometheus-text.ts';
import { Pipeline } from './pipeline.ts';
import { comparisonTotals } from './reconcile.ts';
import { renderComparisons } from '../cli/verify.ts';

const DAYS = [4, 3, 2];
const ROWS_PER_DAY = 40;

describe('reconciliation', () => {
  let db: TestDatabase;
  let store: EventStore;
  let pipeline: Pipeline;
  let metrics: MetricsRegistry;
  const sourceTruth = async () => (await db.pool.query<{ n: number; input: string }>(
    "SELECT count(*)::int AS n, sum(input_tokens)::text AS input FROM api_requests WHERE request_type = 'inference' AND domain <> ''",
  )).rows[0]!;
  const storedIds = async () => Number((await store.query<{ n: number }>('SELECT uniqExact(request_id) AS n FROM tw_reconcile.requests'))[0]!.n);
  const pollOnce = async () => {
    const entry = pipeline.sources[0]!.streams[0]!;
    await pipeline.pollStream(entry);
  };
  const insertDay = (daysAgo: number, n: number, domain = 'acme.example.com') => db.pool.query(
    `INSERT INTO api_requests (request_id, domain, timestamp, model, request_type, response_status, input_tokens, output_tokens)
     SELECT gen_random_uuid(), $3, date_trunc('day', now()) - make_interval(days => $1::int) + make_interval(mins => i), 'claude-sonnet-4-5-20250929', 'inference', 200, 100 + i, i
     FROM generate_series(1, $2::int) AS i`,
    [daysAgo, n, domain],
  );

  let stateDir: string;
  beforeAll(async () => {
    stateDir = mkdtempSync(join(tmpdir(), 'tw-reconcile-'));
    db = await createTestDatabase({ schemas: ['claude-nexus-proxy'] });
    for (const d of DAYS) await insertDay(d, ROWS_PER_DAY);
    // A row tokenwatch rejects (no tenant): not in the store by design, and not "missing".
    await insertDay(3, 1, '');
    const config = testConfig(db.url, {
      sources: [{ type: 'claude-nexus-proxy', maxCommitDelay: '1s', sweepWindow: '1m', sweepInterval: '1h', reconcileInterval: '1ms', reconcileDays: 7 }],
      // A database of its own (the embedded engine is shared by the test files of a process),
      // emptied first: a state directory left by an earlier run may hold it.
      stateDir,
      clickhouse: { database: 'tw_reconcile' },
    });
    store = await openStore(config);
    await store.command('DROP DATABASE IF EXISTS tw_reconcile SYNC');
    await store.migrate();
    metrics = new MetricsRegistry();
    pipeline = await Pipeline.open({ config, logger: silentLogger(), sinks: [new ClickHouseSink(store, 'redacted')], store: new MemoryCheckpointStore(), autoSources: false, metrics });
  }, 120_000);
  afterAll(async () => {
    await pipeline?.close();
    await store?.close();
    await db.drop();
    rmSync(stateDir, { recursive: true, force: true });
  });

  it('finds nothing missing after a clean read, and counts the rejected row as rejected', async () => {
    await pollOnce(); // the first poll reads everything; reconciliation waits for a whole poll
    await pollOnce(); // this one reconciles
    const comparisons = await pipeline.verify();
    const [comparison] = comparisons;
    expect(comparison!.stream).toBe('claude-nexus-proxy/api_requests');
    const byDay = new Map(comparison!.days.map((d) => [d.day, d]));
    for (const d of DAYS) {
      const day = new Date(Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth(), new Date().getUTCDate() - d)).toISOString().slice(0, 10);
      expect(byDay.get(day)?.storedRows, day).toBe(ROWS_PER_DAY);
    }
    expect(comparisonTotals(comparison!)).toEqual({ missing: 0, extra: 0, rejected: 1 });
    const text = prometheusText(metrics.collect(pipeline.statuses(), [], []));
    expect(text).toContain('tokenwatch_reconcile_missing_rows{source="claude-nexus-proxy",table="api_requests"} 0');
    expect(text).toContain('tokenwatch_reconcile_rejected_rows{source="claude-nexus-proxy",table="api_requests"} 1');
    expect(sumSamples(text, 'tokenwatch_reconcile_days')).toBe(7);
    expect(renderComparisons(comparisons)).toContain(': ok');
  });

  it('reports the right difference when rows are deleted from the event store by hand, and the next reconciliation delivers them', async () => {
    const before = sumSamples(prometheusText(metrics.collect(pipeline.statuses(), [], [])), 'tokenwatch_requests_total');
    const victims = await store.query<{ id: string; day: string }>(
      "SELECT request_id AS id, toString(toDate(started_at)) AS day FROM tw_reconcile.requests ORDER BY started_at LIMIT 5",
    );
    await store.command(`ALTER TABLE tw_reconcile.requests DELETE WHERE request_id IN (${victims.map((v) => `'${v.id}'`).join(', ')}) SETTINGS mutations_sync = 1`);
    expect(await storedIds()).toBe(DAYS.length * ROWS_PER_DAY - 5);

    const [comparison] = await pipeline.verify();
    const missing = comparison!.days.flatMap((d) => d.missing).sort();
    expect(missing).toEqual(victims.map((v) => v.id).sort());
    expect(comparison!.days.find((d) => d.day === victims[0]!.day)!.missing.length).toBe(5);
    expect(renderComparisons([comparison!])).toContain('DIFFERS');

    await pollOnce();
    expect(await storedIds()).toBe(DAYS.length * ROWS_PER_DAY);
    const text = prometheusText(metrics.collect(pipeline.statuses(), [], []));
    expect(text).toContain('tokenwatch_reconcile_missing_rows{source="claude-nexus-proxy",table="api_requests"} 0');
    expect(text).toContain('tokenwatch_reconcile_delivered_rows_total{source="claude-nexus-proxy",table="api_requests"} 5');
    // Rows deleted by hand had been counted: delivered again, they are counted again (docs/how-rows-are-read.md).
    expect(sumSamples(text, 'tokenwatch_requests_total')).toBe(before + 5);
  });

  it('delivers a row that committed later than the sweep window, so the store equals the source again', async () => {
    const storedBefore = await storedIds();
    // Two days old when it commits: no poll (watermark) and no sweep (1 minute) reads it again.
    await insertDay(2, 1, 'late.example.com');
    await pollOnce();
    expect(await storedIds()).toBe(storedBefore + 1);
    const truth = await sourceTruth();
    const [ch] = await store.query<{ n: number; input: string }>("SELECT count() AS n, toString(sum(input_tokens)) AS input FROM tw_reconcile.requests FINAL WHERE tenant = 'late.example.com'");
    expect(Number(ch!.n)).toBe(1);
    const [all] = await store.query<{ n: number; input: string }>('SELECT count() AS n, toString(sum(input_tokens)) AS input FROM tw_reconcile.requests FINAL');
    expect(Number(all!.n)).toBe(truth.n);
    expect(all!.input).toBe(truth.input);
    const text = prometheusText(metrics.collect(pipeline.statuses(), [], []));
    expect(sumSamples(text, 'tokenwatch_requests_total', 'tenant="late.example.com"')).toBe(1);
    expect(sumSamples(text, 'tokenwatch_source_rows_late_total')).toBe(6);
    expect(sumSamples(text, 'tokenwatch_source_late_row_max_delay_seconds')).toBeGreaterThan(86_400);
    const [comparison] = await pipeline.verify();
    expect(comparisonTotals(comparison!)).toEqual({ missing: 0, extra: 0, rejected: 1 });
  });
});
