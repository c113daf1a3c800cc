// Cost end to end, against hand computations (the prices and their source: pricing.test.ts):
// Claude Nexus Proxy rows with the usage block the proxy stores (usage_data), backfilled row by
// row and through the bulk path, each into its own ClickHouse database. sum(cost_usd) in
// ClickHouse and tokenwatch_cost_usd_total on /metrics equal the hand computation to the
// nano-dollar, request by request and in total, on both paths; a model without a price is
// counted as unknown, not priced at 0 silently.
import { createHash } from 'node:crypto';
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
import { Pipeline } from '../pipeline/pipeline.ts';

interface Case {
  id: string;
  at: string;
  tenant: string;
  model: string;
  input: number;
  output: number;
  cacheRead?: number;
  cacheWrite5m?: number;
  cacheWrite1h?: number;
  webSearches?: number;
  tier?: string;
  /** By hand, USD (null: no price). */
  cost: string | null;
}

const CASES: Case[] = [
  // 1,000 × $5 + 2,000 × $25 + 10,000 × $0.50 + 2,000 × $6.25 + 1,000 × $10 (per million).
  { id: 'opus-46-cache-writes', at: '2026-06-01T10:00:00Z', tenant: 'one.example.com', model: 'claude-opus-4-6', input: 1000, output: 2000, cacheRead: 10_000, cacheWrite5m: 2000, cacheWrite1h: 1000, cost: '0.0825' },
  // 210,000 input tokens in all: the long-context tier. 150,000 × $6 + 60,000 × $0.60 + 1,000 × $22.50.
  { id: 'sonnet-45-long', at: '2026-06-01T10:01:00Z', tenant: 'one.example.com', model: 'claude-sonnet-4-5-20250929', input: 150_000, output: 1000, cacheRead: 60_000, cost: '0.9585' },
  // 100,000 × $3 + 1,000 × $15: below the tier.
  { id: 'sonnet-45-short', at: '2026-06-01T10:02:00Z', tenant: 'one.example.com', model: 'claude-sonnet-4-5-20250929', input: 100_000, output: 1000, cost: '0.315' },
  // 1,000 × $3 + 500 × $15 + 3 searches × $0.01.
  { id: 'sonnet-45-search', at: '2026-06-01T10:03:00Z', tenant: 'one.example.com', model: 'claude-sonnet-4-5', input: 1000, output: 500, webSearches: 3, cost: '0.0405' },
  // The day before Opus 4.6's flat 1M pricing: 250,000 × $10 + 1,000 × $37.50.
  { id: 'opus-46-before', at: '2026-03-12T23:59:59Z', tenant: 'one.example.com', model: 'claude-opus-4-6', input: 250_000, output: 1000, cost: '2.5375' },
  // From that day: 250,000 × $5 + 1,000 × $25.
  { id: 'opus-46-after', at: '2026-03-13T00:00:00Z', tenant: 'one.example.com', model: 'claude-opus-4-6', input: 250_000, output: 1000, cost: '1.275' },
  // A negotiated 20 % discount: (100,000 × $3 + 10,000 × $15) × 0.8.
  { id: 'acme-discount', at: '2026-06-01T10:04:00Z', tenant: 'acme.example.com', model: 'claude-sonnet-4-5', input: 100_000, output: 10_000, cost: '0.36' },
  // Batch: half of 10,000 × $5 + 1,000 × $25.
  { id: 'opus-46-batch', at: '2026-06-01T10:05:00Z', tenant: 'one.example.com', model: 'claude-opus-4-6', input: 10_000, output: 1000, tier: 'batch', cost: '0.0375' },
  // Not in the catalog: unknown, counted.
  { id: 'haiku-55', at: '2026-06-01T10:06:00Z', tenant: 'one.example.com', model: 'claude-haiku-5-5', input: 1000, output: 1000, cost: null },
];
const TOTAL = '5.6065';

describe('cost end to end, by hand', () => {
  let db: TestDatabase;
  let stateDir: string;
  const stores: EventStore[] = [];

  beforeAll(async () => {
    db = await createTestDatabase({ schemas: ['claude-nexus-proxy'] });
    stateDir = mkdtempSync(join(tmpdir(), 'tw-cost-truth-'));
    for (const c of CASES) {
      const write = (c.cacheWrite5m ?? 0) + (c.cacheWrite1h ?? 0);
      const usage = {
        input_tokens: c.input, output_tokens: c.output, cache_read_input_tokens: c.cacheRead ?? 0, cache_creation_input_tokens: write,
        cache_creation: { ephemeral_5m_input_tokens: c.cacheWrite5m ?? 0, ephemeral_1h_input_tokens: c.cacheWrite1h ?? 0 },
        ...(c.webSearches ? { server_tool_use: { web_search_requests: c.webSearches } } : {}), service_tier: c.tier ?? 'standard',
      };
      await db.pool.query(
        `INSERT INTO api_requests (request_id, domain, timestamp, model, request_type, response_status, input_tokens, output_tokens, cache_read_input_tokens, cache_creation_input_tokens, usage_data)
         VALUES (md5($1)::uuid, $2, $3, $4, 'inference', 200, $5, $6, $7, $8, $9)`,
        [c.id, c.tenant, c.at, c.model, c.input, c.output, c.cacheRead ?? 0, write, JSON.stringify(usage)],
      );
    }
  });
  afterAll(async () => {
    for (const store of stores) await store.close();
    await db?.drop();
    if (stateDir) rmSync(stateDir, { recursive: true, force: true });
  });

  /** Backfills `source` from `url` into a fresh ClickHouse database: the store and /metrics. */
  async function backfillInto(url: string, source: 'claude-nexus-proxy' | 'litellm', database: string, bulk: boolean) {
    const config = testConfig(url, {
      stateDir, sources: [{ type: source }], clickhouse: { database, bulkBackfill: bulk },
      pricing: { tenants: { 'acme.example.com': { discount: 0.2 } } },
    });
    const store = await openStore(config);
    stores.push(store);
    await store.command(`DROP DATABASE IF EXISTS ${database} SYNC`);
    await store.migrate();
    const metrics = new MetricsRegistry();
    const pipeline = await Pipeline.open({ config, logger: silentLogger(), sinks: [new ClickHouseSink(store, 'redacted')], store: new MemoryCheckpointStore(), autoSources: false, metrics });
    await pipeline.backfill();
    const text = prometheusText(metrics.collect(pipeline.statuses(), [], []));
    await pipeline.close();
    return { store, text };
  }

  async function backfill(database: string, bulk: boolean) {
    const { store, text } = await backfillInto(db.url, 'claude-nexus-proxy', database, bulk);
    const rows = await store.query<{ id: string; cost: string; known: boolean | number; estimate: string | null; priced_as: string; w1h: string | number; web: number; tier: string; fingerprint: string }>(
      `SELECT request_id AS id, toString(cost_usd) AS cost, cost_known AS known, toString(cost_estimate_usd) AS estimate, priced_as,
         cache_write_1h_tokens AS w1h, web_search_requests AS web, service_tier AS tier, toString(fingerprint) AS fingerprint
       FROM ${database}.requests FINAL ORDER BY started_at`,
    );
    const [total] = await store.query<{ cost: string }>(`SELECT toString(sum(cost_usd)) AS cost FROM ${database}.requests FINAL`);
    return { text, rows, total: total!.cost };
  }

  describe('LiteLLM: the recorded spend is the cost, the list price is exported beside it', () => {
    let litellm: TestDatabase;
    beforeAll(async () => {
      litellm = await createTestDatabase({ schemas: ['litellm'] });
      // gpt-4o (OpenAI, 2026-12-05: $2.50 input, $1.25 cached input, $10 output per million):
      // 1,000 prompt tokens of which 200 cached, 500 completion tokens:
      // 800 × $2.50 + 200 × $1.25 + 500 × $10 = $0.00725 at list price; LiteLLM recorded $0.006.
      await litellm.pool.query(`INSERT INTO "LiteLLM_SpendLogs" (request_id, call_type, spend, prompt_tokens, completion_tokens, "startTime", "endTime", model, custom_llm_provider, team_id, status, metadata)
        VALUES ('call-1', 'acompletion', 0.006, 1000, 500, '2026-06-01T10:00:00Z', '2026-06-01T10:00:02Z', 'gpt-4o', 'openai', 'team-a', 'success',
          '{"usage_object": {"prompt_tokens": 1000, "completion_tokens": 500, "prompt_tokens_details": {"cached_tokens": 200}}}')`);
    });
    afterAll(async () => {
      await litellm?.drop();
    });

    for (const bulk of [false, true]) {
      it(bulk ? 'bulk path' : 'row by row', async () => {
        const database = bulk ? 'tw_cost_litellm_bulk' : 'tw_cost_litellm_rows';
        const { store, text } = await backfillInto(litellm.url, 'litellm', database, bulk);
        const rows = await store.query<{ cost: string; estimate: string; priced_as: string; fingerprint: string }>(
          `SELECT toString(cost_usd) AS cost, toString(cost_estimate_usd) AS estimate, priced_as, toString(fingerprint) AS fingerprint FROM ${database}.requests FINAL`,
        );
        expect(rows.map(({ fingerprint: _, ...r }) => r)).toEqual([{ cost: '0.006', estimate: '0.00725', priced_as: 'catalog:openai/gpt-4o' }]);
        // Written by the bulk path itself (fingerprint 0), or row by row.
        expect(rows[0]!.fingerprint === '0').toBe(bulk);
        expect(sumSamples(text, 'tokenwatch_cost_usd_total')).toBeCloseTo(0.006, 9);
        expect(sumSamples(text, 'tokenwatch_cost_estimate_usd_total', 'model="gpt-4o"')).toBeCloseTo(0.00725, 9);
      });
    }
  });

  for (const bulk of [false, true]) {
    it(`${bulk ? 'bulk path' : 'row by row'}: ClickHouse and /metrics equal the hand computation to the nano-dollar`, async () => {
      const { text, rows, total } = await backfill(bulk ? 'tw_cost_bulk' : 'tw_cost_rows', bulk);
      expect(rows.length).toBe(CASES.length);
      const byTime = [...CASES].sort((a, b) => a.at.localeCompare(b.at));
      rows.forEach((row, i) => {
        const c = byTime[i]!;
        expect(row.cost, c.id).toBe(c.cost ?? '0');
        expect(Boolean(row.known), c.id).toBe(c.cost !== null);
        expect(row.estimate, c.id).toBe(c.cost);
        expect(Number(row.w1h), c.id).toBe(c.cacheWrite1h ?? 0);
        expect(Number(row.web), c.id).toBe(c.webSearches ?? 0);
        expect(row.tier, c.id).toBe(c.tier ?? 'standard');
        expect(row.priced_as, c.id).toBe(c.cost === null ? '' : `catalog:anthropic/${c.model.startsWith('claude-opus-4-6') ? 'claude-opus-4-6' : 'claude-sonnet-4-5'}`);
      });
      expect(total).toBe(TOTAL);
      // The bulk path wrote the priced rows itself (no fingerprint); the unpriced one went through map().
      if (bulk) expect(rows.filter((r) => r.fingerprint === '0').length).toBe(CASES.length - 1);
      expect(sumSamples(text, 'tokenwatch_cost_usd_total')).toBeCloseTo(Number(TOTAL), 9);
      expect(sumSamples(text, 'tokenwatch_cost_estimate_usd_total')).toBeCloseTo(Number(TOTAL), 9);
      expect(sumSamples(text, 'tokenwatch_cost_usd_total', 'tenant="acme.example.com"')).toBeCloseTo(0.36, 9);
      expect(sumSamples(text, 'tokenwatch_cost_unknown_requests_total', 'model="claude-haiku-5-5"')).toBe(1);
      expect(sumSamples(text, 'tokenwatch_cost_unknown_requests_total')).toBe(1);
    });
  }
  it('reprice: after an override of Opus 4.6, the stored costs and the daily rollup are those of the new price; /metrics keeps its counts', async () => {
    // The row-by-row store above, priced at catalog prices; now Opus 4.6 at $1 / $2 (cache
    // reads 0.1×, 5-minute writes 1.25×, 1-hour writes 2× the input price).
    const database = 'tw_cost_rows';
    const config = testConfig(db.url, {
      stateDir, sources: [{ type: 'claude-nexus-proxy' }], clickhouse: { database, bulkBackfill: false },
      pricing: { models: { 'claude-opus-4-6': { input: 1, output: 2 } }, tenants: { 'acme.example.com': { discount: 0.2 } } },
    });
    const store = await openStore(config);
    stores.push(store);
    const metrics = new MetricsRegistry();
    const pipeline = await Pipeline.open({ config, logger: silentLogger(), sinks: [new ClickHouseSink(store, 'redacted')], store: new MemoryCheckpointStore(), autoSources: false, metrics });
    const [result] = await pipeline.reprice(Date.parse('2026-03-01T00:00:00Z'), Date.parse('2026-07-01T00:00:00Z'));
    await pipeline.close();
    // 1,000 + 2,000 × 2 + 10,000 × 0.1 + 2,000 × 1.25 + 1,000 × 2 = 10,500 per million; 250,000 + 1,000 × 2 twice;
    // half of 10,000 + 1,000 × 2. The others keep their catalog prices.
    const costs = Object.fromEntries((await store.query<{ id: string; cost: string }>(`SELECT request_id AS id, toString(cost_usd) AS cost FROM ${database}.requests FINAL`)).map((r) => [r.id, r.cost]));
    const id = (name: string) => createHash('md5').update(name).digest('hex').replace(/^(.{8})(.{4})(.{4})(.{4})(.{12})$/, '$1-$2-$3-$4-$5');
    expect(costs[id('opus-46-cache-writes')]).toBe('0.0105');
    expect(costs[id('opus-46-before')]).toBe('0.252');
    expect(costs[id('opus-46-after')]).toBe('0.252');
    expect(costs[id('opus-46-batch')]).toBe('0.006');
    expect(costs[id('sonnet-45-long')]).toBe('0.9585');
    expect(result).toMatchObject({ stream: 'claude-nexus-proxy/api_requests', rows: CASES.length, changed: 4, before: { cost: TOTAL }, after: { cost: '2.1945' } });
    const [daily] = await store.query<{ cost: string }>(`SELECT toString(sum(cost_usd)) AS cost FROM ${database}.requests_daily`);
    expect(daily!.cost).toBe('2.1945');
    // This process counted nothing: reprice does not touch counters.
    expect(sumSamples(prometheusText(metrics.collect([], [], [])), 'tokenwatch_cost_usd_total')).toBe(0);
  });
});
