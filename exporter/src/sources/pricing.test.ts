// Cost is computed in JavaScript (row by row) and in ClickHouse SQL (bulk backfill): both must
// give the same Decimal(18, 9) to the last digit, including prices with fractions of a
// micro-dollar per million tokens and half-way rounding cases.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Pricing } from './pricing.ts';
import { Config } from '../config/schema.ts';
import { openStore, type EventStore } from '../store/clickhouse.ts';

describe('pricing', () => {
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

  it('matches the longest prefix and derives cache prices from the input price', () => {
    const pricing = new Pricing();
    expect(pricing.priceOf('claude-opus-4-5-20251101')).toEqual({ input: 5, output: 25, cacheRead: 0.5, cacheWrite: 6.25 });
    expect(pricing.priceOf('claude-opus-4-1-20250805')?.input).toBe(15);
    expect(pricing.cost('mystery', { inputTokens: 1, outputTokens: 1, cacheReadTokens: 0, cacheWriteTokens: 0 })).toBeUndefined();
    // 1000 input tokens of Sonnet at $3 per million: $0.003.
    expect(pricing.cost('claude-sonnet-4-5', { inputTokens: 1000, outputTokens: 0, cacheReadTokens: 0, cacheWriteTokens: 0 })).toBe(0.003);
  });

  it('ClickHouse SQL gives the same cost as JavaScript, digit for digit', async () => {
    // Odd prices: rounding to the nano-dollar happens, and half-way cases (x.5 nano) occur.
    const pricing = new Pricing({ odd: { input: 0.0001234, output: 0.0015, cacheRead: 0.0000005, cacheWrite: 1.0000001 }, 'claude-sonnet-4': { input: 3.3, output: 15.7 } });
    const models = ['odd-model', 'claude-sonnet-4-5', 'claude-haiku-4-5-20251001', 'claude-3-haiku', 'claude-3-haiku-x', 'claude-opus-4', 'claude-opus-4-5-2025', 'nothing', 'claude-opus-'];
    let seed = 42;
    const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const rows = Array.from({ length: 3000 }, (_, i) => ({
      model: models[i % models.length]!,
      input: Math.floor(next() ** 2 * 2_000_000), output: Math.floor(next() * 50_000), cacheRead: Math.floor(next() * 900_000), cacheWrite: i % 7 === 0 ? 1 : Math.floor(next() * 10_000),
    }));
    // Exactly half-way: 1 output token at 1500 pico-USD is 1.5 nano-USD, rounded up to 2.
    for (const output of [1, 3, 5, 7]) rows.push({ model: 'odd-model', input: 0, output, cacheRead: 0, cacheWrite: 0 });
    const sql = pricing.clickhouseCost(pricing.clickhousePriceIndex('r.1'), { input: 'r.2', output: 'r.3', cacheRead: 'r.4', cacheWrite: 'r.5' });
    const result = await store.query<{ cost: string; known: number | boolean }>(
      `SELECT toString(${sql}) AS cost, ${pricing.clickhousePriceIndex('r.1')} != 0 AS known FROM (SELECT arrayJoin(arrayZip({m:Array(String)}, {i:Array(UInt64)}, {o:Array(UInt64)}, {r:Array(UInt64)}, {w:Array(UInt64)})) AS r)`,
      { m: rows.map((r) => r.model), i: rows.map((r) => r.input), o: rows.map((r) => r.output), r: rows.map((r) => r.cacheRead), w: rows.map((r) => r.cacheWrite) },
    );
    expect(pricing.cost('odd-model', { inputTokens: 0, outputTokens: 1, cacheReadTokens: 0, cacheWriteTokens: 0 })).toBe(2e-9);
    let halfway = 0;
    rows.forEach((r, i) => {
      const js = pricing.cost(r.model, { inputTokens: r.input, outputTokens: r.output, cacheReadTokens: r.cacheRead, cacheWriteTokens: r.cacheWrite });
      expect(Number(result[i]!.cost), `${JSON.stringify(r)}`).toBe(js ?? 0);
      expect(Boolean(result[i]!.known), `price found for ${r.model}`).toBe(js !== undefined);
      expect(result[i]!.cost, JSON.stringify(r)).toBe((js ?? 0).toFixed(9).replace(/\.?0+$/, '') || '0');
      const price = pricing.priceOf(r.model);
      const micro = (usd: number) => Math.round(usd * 1e6);
      if (price && (r.input * micro(price.input) + r.output * micro(price.output) + r.cacheRead * micro(price.cacheRead!) + r.cacheWrite * micro(price.cacheWrite!)) % 1000 === 500) halfway += 1;
    });
    expect(halfway, 'half-way rounding cases in the sample').toBeGreaterThan(0);
  });
});
