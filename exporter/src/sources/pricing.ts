// Estimated cost per request from token counts, for sources that do not record spend
// (Claude Nexus Proxy). Prices are USD per million tokens, list prices at the time of writing;
// `pricing:` in the configuration overrides or extends them. A model is matched by the longest
// key that its name starts with, so "claude-sonnet-4-5-20250929" matches "claude-sonnet-4-5".
import { clickhouseString } from '../store/literal.ts';

export interface ModelPrice {
  input: number;
  output: number;
  /** Defaults to input × 0.1 (Anthropic's cache-read ratio). */
  cacheRead?: number | undefined;
  /** Defaults to input × 1.25 (Anthropic's 5-minute cache-write ratio). */
  cacheWrite?: number | undefined;
}

export const BUILT_IN_PRICES: Readonly<Record<string, ModelPrice>> = {
  'claude-opus-4-5': { input: 5, output: 25 },
  'claude-opus-4': { input: 15, output: 75 },
  'claude-3-opus': { input: 15, output: 75 },
  'claude-sonnet-4': { input: 3, output: 15 },
  'claude-3-7-sonnet': { input: 3, output: 15 },
  'claude-3-5-sonnet': { input: 3, output: 15 },
  'claude-haiku-4-5': { input: 1, output: 5 },
  'claude-3-5-haiku': { input: 0.8, output: 4 },
  'claude-3-haiku': { input: 0.25, output: 1.25, cacheWrite: 0.3, cacheRead: 0.03 },
  'gpt-4o-mini': { input: 0.15, output: 0.6, cacheRead: 0.075, cacheWrite: 0.15 },
  'gpt-4o': { input: 2.5, output: 10, cacheRead: 1.25, cacheWrite: 2.5 },
  'gpt-4.1-mini': { input: 0.4, output: 1.6, cacheRead: 0.1, cacheWrite: 0.4 },
  'gpt-4.1': { input: 2, output: 8, cacheRead: 0.5, cacheWrite: 2 },
};

export interface TokenUsage {
  inputTokens: number;
  outputTokens: number;
  cacheReadTokens: number;
  cacheWriteTokens: number;
}

/** A price in micro-USD per million tokens (pico-USD per token), exact as an integer. */
interface IntegerPrice {
  key: string;
  input: number;
  output: number;
  cacheRead: number;
  cacheWrite: number;
}

const PICO_PER_USD_PER_MILLION = 1_000_000;

/**
 * Costs are computed in integer pico-USD and rounded half up to nano-USD, the scale of the
 * store's Decimal(18, 9): exact, and the same in JavaScript and in ClickHouse SQL (the bulk
 * backfill computes cost there), where floating-point sums would differ in the last digit.
 * Prices are therefore exact to 1e-6 USD per million tokens.
 */
export class Pricing {
  private readonly prices: IntegerPrice[];

  constructor(overrides: Readonly<Record<string, ModelPrice>> = {}) {
    const merged = { ...BUILT_IN_PRICES, ...overrides };
    const micro = (usdPerMillion: number) => Math.round(usdPerMillion * PICO_PER_USD_PER_MILLION);
    // Longest first, so the most specific prefix wins.
    this.prices = Object.keys(merged)
      .sort((a, b) => b.length - a.length)
      .map((key) => {
        const price = merged[key]!;
        return {
          key,
          input: micro(price.input),
          output: micro(price.output),
          cacheRead: micro(price.cacheRead ?? price.input * 0.1),
          cacheWrite: micro(price.cacheWrite ?? price.input * 1.25),
        };
      });
  }

  private find(model: string): IntegerPrice | undefined {
    return this.prices.find((p) => model === p.key || model.startsWith(p.key));
  }

  priceOf(model: string): ModelPrice | undefined {
    const price = this.find(model);
    if (!price) return undefined;
    const usd = (micro: number) => micro / PICO_PER_USD_PER_MILLION;
    return { input: usd(price.input), output: usd(price.output), cacheRead: usd(price.cacheRead), cacheWrite: usd(price.cacheWrite) };
  }

  /** USD (a whole number of nano-USD), or undefined for a model without a price. */
  cost(model: string, usage: TokenUsage): number | undefined {
    const price = this.find(model);
    if (!price) return undefined;
    const pico =
      usage.inputTokens * price.input +
      usage.outputTokens * price.output +
      usage.cacheReadTokens * price.cacheRead +
      usage.cacheWriteTokens * price.cacheWrite;
    return Math.floor((pico + 500) / 1000) / 1e9;
  }

  /**
   * ClickHouse SQL: the position (1-based) of the price a model (an expression) matches in
   * this pricing's order, 0 for none. startsWith in order, longest key first, as find()
   * does: one cheap prefix test per key, where a regular expression per row cost four times
   * as much on a million rows.
   */
  clickhousePriceIndex(model: string): string {
    if (this.prices.length === 0) return 'toUInt16(0)';
    // (A model equal to a key starts with it: find()'s equality test needs no twin here.)
    const tests = this.prices.map((p, i) => `startsWith(${model}, ${clickhouseString(p.key)}), ${i + 1}`);
    return `toUInt16(multiIf(${tests.join(', ')}, 0))`;
  }

  /**
   * ClickHouse SQL for cost(): Decimal(18, 9), 0 when `index` (clickhousePriceIndex) is 0.
   * Integer arithmetic, so it equals cost() to the last digit.
   */
  clickhouseCost(index: string, tokens: { input: string; output: string; cacheRead: string; cacheWrite: string }): string {
    if (this.prices.length === 0) return 'toDecimal64(0, 9)';
    // An index of 0 takes the array's default element, 0.
    const price = (field: 'input' | 'output' | 'cacheRead' | 'cacheWrite') => `arrayElement([${this.prices.map((p) => p[field]).join(', ')}]::Array(Int64), ${index})`;
    const pico = `toInt64(${tokens.input}) * ${price('input')} + toInt64(${tokens.output}) * ${price('output')} + toInt64(${tokens.cacheRead}) * ${price('cacheRead')} + toInt64(${tokens.cacheWrite}) * ${price('cacheWrite')}`;
    return `toDecimal64(intDiv(${pico} + 500, 1000), 0) * toDecimal64('0.000000001', 9)`;
  }
}
