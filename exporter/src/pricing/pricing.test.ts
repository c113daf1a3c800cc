// Prices and costs against hand computations from the providers' published prices, and the
// ClickHouse SQL of the bulk backfill against JavaScript, digit for digit.
//
// Source of the figures below: Anthropic's pricing page (platform.claude.com/docs/en/about-
// claude/pricing, with prompt-caching and context-window pages it links), as of 2026-12-05
// and as the pinned catalog (@pydantic/genai-prices 0.1.8) carries it:
//   Claude Opus 4.6 (from 2026-03-13): $5 input, $25 output, $0.50 cache read, $6.25 5-minute
//     cache write, $10 1-hour cache write per million tokens; before that date, prompts over
//     200k tokens cost $10 / $37.50 (long context).
//   Claude Sonnet 4.5: $3 / $15, cache read $0.30, writes $3.75 (5 min) and $6 (1 h); over 200k
//     input tokens $6 / $22.50 / $0.60 / $7.50 / $12.
//   Web search: $10 per 1,000 searches. Batch API: 50 % of token prices.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Pricing, type Usage } from './pricing.ts';
import { Config } from '../config/schema.ts';
import { openStore, type EventStore } from '../store/clickhouse.ts';

const usage = (u: Partial<Usage>): Usage => ({ inputTokens: 0, outputTokens: 0, cacheReadTokens: 0, cacheWriteTokens: 0, ...u });
const AFTER = '2026-06-01T12:00:00Z';

describe('pricing', () => {
  const pricing = new Pricing({ tenants: { 'acme.example.com': { discount: 0.2 } } });

  it('prices Opus 4.6 from the catalog, with 5-minute and 1-hour cache writes (not the Opus 4 price)', () => {
    expect(pricing.report('claude-opus-4-6-20260205', { at: AFTER })).toMatchObject({
      input: 5, output: 25, cacheRead: 0.5, cacheWrite5m: 6.25, cacheWrite1h: 10, webSearchesPerThousand: 10, effectiveFrom: '2026-03-13',
    });
    // 1,000 × $5 + 2,000 × $25 + 10,000 × $0.50 + 2,000 × $6.25 + 1,000 × $10 = $82,500 per million = $0.0825.
    expect(pricing.cost('claude-opus-4-6', usage({ inputTokens: 1000, outputTokens: 2000, cacheReadTokens: 10_000, cacheWriteTokens: 3000, cacheWrite1hTokens: 1000 }), { at: AFTER })).toBe(0.0825);
  });

  it('applies a context-length tier above its threshold only', () => {
    // Below 200k input tokens: 100,000 × $3 + 1,000 × $15 = $0.315.
    expect(pricing.cost('claude-sonnet-4-5-20250929', usage({ inputTokens: 100_000, outputTokens: 1000 }), { at: AFTER })).toBe(0.315);
    // 210,000 input tokens (150,000 uncached + 60,000 cache reads): 150,000 × $6 + 60,000 × $0.60 + 1,000 × $22.50 = $0.9585.
    expect(pricing.cost('claude-sonnet-4-5-20250929', usage({ inputTokens: 150_000, cacheReadTokens: 60_000, outputTokens: 1000 }), { at: AFTER })).toBe(0.9585);
  });

  it('charges web searches per request', () => {
    // 1,000 × $3 + 500 × $15 = $0.0105, plus 3 searches × $0.01.
    expect(pricing.cost('claude-sonnet-4-5', usage({ inputTokens: 1000, outputTokens: 500, webSearchRequests: 3 }), { at: AFTER })).toBe(0.0405);
  });

  it('prices each request at its own time: a price change on a date', () => {
    const long = usage({ inputTokens: 250_000, outputTokens: 1000 });
    // Before 2026-03-13, a 250k prompt is long context: 250,000 × $10 + 1,000 × $37.50.
    expect(pricing.cost('claude-opus-4-6', long, { at: '2026-03-12T23:59:59Z' })).toBe(2.5375);
    // From that date the 1M window is priced flat: 250,000 × $5 + 1,000 × $25.
    expect(pricing.cost('claude-opus-4-6', long, { at: '2026-03-13T00:00:00Z' })).toBe(1.275);
  });

  it('applies a tenant\'s negotiated discount and the batch tier', () => {
    // 100,000 × $3 + 10,000 × $15 = $0.45; 20 % off: $0.36.
    const u = usage({ inputTokens: 100_000, outputTokens: 10_000 });
    expect(pricing.cost('claude-sonnet-4-5', u, { at: AFTER, tenant: 'other.example.com' })).toBe(0.45);
    expect(pricing.cost('claude-sonnet-4-5', u, { at: AFTER, tenant: 'acme.example.com' })).toBe(0.36);
    expect(pricing.report('claude-sonnet-4-5', { at: AFTER, tenant: 'acme.example.com' })?.tenantDiscount).toBeCloseTo(0.2, 9);
    // Batch: half of 10,000 × $5 + 1,000 × $25 = $0.0375.
    expect(pricing.cost('claude-opus-4-6', usage({ inputTokens: 10_000, outputTokens: 1000, serviceTier: 'batch' }), { at: AFTER })).toBe(0.0375);
  });

  it('lets the configuration override the catalog, and knows no price for models the catalog does not have', () => {
    const overridden = new Pricing({ models: { 'claude-opus-4-6': { input: 1, output: 2 } } });
    expect(overridden.cost('claude-opus-4-6-20260205', usage({ inputTokens: 1_000_000, outputTokens: 1_000_000 }), { at: AFTER })).toBe(3);
    expect(overridden.report('claude-opus-4-6', { at: AFTER })?.source).toBe('configuration pricing.models["claude-opus-4-6"]');
    expect(overridden.pricedAs('claude-opus-4-6')).toBe('override:claude-opus-4-6');
    expect(pricing.pricedAs('claude-opus-4-6')).toBe('catalog:anthropic/claude-opus-4-6');
    for (const model of ['claude-haiku-5-5', 'gpt-6.1-sol', 'mystery']) expect(pricing.cost(model, usage({ inputTokens: 1 }), { at: AFTER }), model).toBeUndefined();
    // A LiteLLM row names its provider: the catalog is searched there first.
    expect(pricing.pricedAs('text-embedding-3-small', 'openai')).toBe('catalog:openai/text-embedding-3-small');
  });

  describe('ClickHouse SQL of the bulk backfill', () => {
    let dir: string;
    let store: EventStore;
    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'tw-pricing-'));
      store = await openStore(Config.parse({ stateDir: dir }));
    });
    afterAll(async () => {
      await store?.close();
      rmSync(dir, { recursive: true, force: true });
    });

    it('gives the same cost as JavaScript, digit for digit, across tiers, dates, discounts, batch, 1-hour writes and searches', async () => {
      // Odd prices: rounding to the nano-dollar happens, and half-way cases occur.
      const odd = new Pricing({
        models: { odd: { input: 0.0001234, output: 0.0015, cacheRead: 0.0000005, cacheWrite: 1.0000001, cacheWrite1h: 2.0000003, webSearchesPerThousand: 0.0000007 } },
        tenants: { 'acme.example.com': { discount: 0.137 } },
      });
      const models = ['odd-model', 'claude-sonnet-4-5', 'claude-opus-4-6', 'claude-haiku-4-5-20251001', 'gpt-4o', 'claude-opus-4-1', 'nothing'].map((model) => ({ model, provider: null }));
      let seed = 42;
      const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
      const rows = Array.from({ length: 3000 }, (_, i) => {
        const cacheWrite = Math.floor(next() * 20_000);
        return {
          model: models[i % models.length]!.model, tenant: i % 3 === 0 ? 'acme.example.com' : 'other',
          at: Date.parse('2026-01-01T00:00:00Z') + Math.floor(next() * 200 * 86_400_000),
          input: Math.floor(next() ** 3 * 400_000), output: Math.floor(next() * 50_000), cacheRead: Math.floor(next() * 90_000), cacheWrite,
          cacheWrite1h: i % 4 === 0 ? cacheWrite + 5 : Math.floor(next() * cacheWrite), webSearches: i % 5 === 0 ? Math.floor(next() * 4) : 0,
          tier: i % 6 === 0 ? 'batch' : 'standard',
        };
      });
      for (const output of [1, 3, 5, 7]) rows.push({ model: 'odd-model', tenant: 'other', at: Date.parse(AFTER), input: 0, output, cacheRead: 0, cacheWrite: 0, cacheWrite1h: 0, webSearches: 0, tier: 'standard' });
      const sql = odd.clickhouseCost(models, {
        model: 'r.1', at: "fromUnixTimestamp64Milli(r.2, 'UTC')", tenant: 'r.3', input: 'r.4', output: 'r.5', cacheRead: 'r.6', cacheWrite: 'r.7',
        cacheWrite1h: 'r.8', webSearches: 'r.9', serviceTier: 'r.10',
      });
      const result = await store.query<{ cost: string | null }>(
        `SELECT toString(${sql}) AS cost FROM (SELECT arrayJoin(arrayZip({m:Array(String)}, {at:Array(Int64)}, {t:Array(String)}, {i:Array(UInt64)}, {o:Array(UInt64)}, {r:Array(UInt64)}, {w:Array(UInt64)}, {h:Array(UInt64)}, {s:Array(UInt64)}, {tier:Array(String)})) AS r)`,
        {
          m: rows.map((r) => r.model), at: rows.map((r) => r.at), t: rows.map((r) => r.tenant), i: rows.map((r) => r.input), o: rows.map((r) => r.output),
          r: rows.map((r) => r.cacheRead), w: rows.map((r) => r.cacheWrite), h: rows.map((r) => r.cacheWrite1h), s: rows.map((r) => r.webSearches), tier: rows.map((r) => r.tier),
        },
      );
      expect(odd.cost('odd-model', usage({ outputTokens: 1 }), { at: AFTER })).toBe(2e-9);
      const seen = { tiered: 0, beforeChange: 0, priced: 0, unknown: 0 };
      rows.forEach((r, i) => {
        const js = odd.cost(r.model, {
          inputTokens: r.input, outputTokens: r.output, cacheReadTokens: r.cacheRead, cacheWriteTokens: r.cacheWrite,
          cacheWrite1hTokens: r.cacheWrite1h, webSearchRequests: r.webSearches, serviceTier: r.tier,
        }, { at: new Date(r.at), tenant: r.tenant });
        const ch = result[i]!.cost;
        if (js === undefined) {
          expect(ch, JSON.stringify(r)).toBeNull();
          seen.unknown += 1;
          return;
        }
        seen.priced += 1;
        if (r.input + r.cacheRead + r.cacheWrite > 200_000) seen.tiered += 1;
        if (r.model === 'claude-opus-4-6' && r.at < Date.parse('2026-03-13')) seen.beforeChange += 1;
        expect(ch, JSON.stringify(r)).toBe(js.toFixed(9).replace(/\.?0+$/, '') || '0');
      });
      expect(seen.unknown).toBeGreaterThan(0);
      expect(seen.tiered).toBeGreaterThan(0);
      expect(seen.beforeChange).toBeGreaterThan(0);
    });
  });
});
