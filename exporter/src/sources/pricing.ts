// Estimated cost per request from token counts, for sources that do not record spend
// (Claude Nexus Proxy). Prices are USD per million tokens, list prices at the time of writing;
// `pricing:` in the configuration overrides or extends them. A model is matched by the longest
// key that its name starts with, so "claude-sonnet-4-5-20250929" matches "claude-sonnet-4-5".

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

export class Pricing {
  private readonly keys: string[];
  private readonly prices: Record<string, ModelPrice>;

  constructor(overrides: Readonly<Record<string, ModelPrice>> = {}) {
    this.prices = { ...BUILT_IN_PRICES, ...overrides };
    // Longest first, so the most specific prefix wins.
    this.keys = Object.keys(this.prices).sort((a, b) => b.length - a.length);
  }

  priceOf(model: string): ModelPrice | undefined {
    const key = this.keys.find((k) => model === k || model.startsWith(k));
    return key === undefined ? undefined : this.prices[key];
  }

  /** USD, or undefined for a model without a price. */
  cost(model: string, usage: TokenUsage): number | undefined {
    const price = this.priceOf(model);
    if (!price) return undefined;
    const cacheRead = price.cacheRead ?? price.input * 0.1;
    const cacheWrite = price.cacheWrite ?? price.input * 1.25;
    return (
      (usage.inputTokens * price.input +
        usage.outputTokens * price.output +
        usage.cacheReadTokens * cacheRead +
        usage.cacheWriteTokens * cacheWrite) /
      1_000_000
    );
  }
}
