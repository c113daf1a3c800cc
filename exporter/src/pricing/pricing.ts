// Cost of a request, priced at its own time: prices from the catalog (catalog.ts) or from the
// configuration's `pricing.models` overrides (longest matching prefix wins over the catalog),
// with a tenant's negotiated discount (`pricing.tenants`), and every rule the usage block
// carries: uncached input, output, cache reads, 5-minute and 1-hour cache writes, web
// searches, long-context tiers and the batch service tier (half price on tokens).
//
// Costs are exact: prices are held as integer pico-USD per token (micro-USD per million) and
// a cost is their integer sum rounded half up to the nano-dollar, the scale of the store's
// Decimal(18, 9). The bulk backfill computes the same sum in ClickHouse SQL (clickhouseCost),
// so both paths agree to the last digit.
import { clickhouseString } from '../store/literal.ts';
import { CATALOG_PACKAGE, catalogModel, type CatalogComponents, type Tiered } from './catalog.ts';

/** A price set by the configuration, USD per million tokens (web searches: per 1000). */
export interface ModelPrice {
  input: number;
  output: number;
  /** Defaults to input × 0.1 (Anthropic's cache-read ratio). */
  cacheRead?: number | undefined;
  /** 5-minute cache writes; defaults to input × 1.25. */
  cacheWrite?: number | undefined;
  /** 1-hour cache writes; defaults to input × 2. */
  cacheWrite1h?: number | undefined;
  webSearchesPerThousand?: number | undefined;
}

export interface PricingConfig {
  models?: Readonly<Record<string, ModelPrice>>;
  /** Discount as a fraction (0.2 = 20 % off list prices), per tenant. */
  tenants?: Readonly<Record<string, { discount: number }>>;
}

/** A model name as rows hold it, with the provider the source names for it (LiteLLM), or null. */
export interface PricedModel {
  model: string;
  provider: string | null;
}

/** What a request used, as its usage block reports it. */
export interface Usage {
  /** Input tokens not read from or written to the cache. */
  inputTokens: number;
  outputTokens: number;
  cacheReadTokens: number;
  /** All cache writes, 5-minute and 1-hour. */
  cacheWriteTokens: number;
  /** The part of cacheWriteTokens written for one hour. */
  cacheWrite1hTokens?: number;
  webSearchRequests?: number;
  /** "batch" is billed at half the token prices. */
  serviceTier?: string | null;
}

/** Who and when: the request's time picks the price, its tenant a discount. */
export interface PriceContext {
  at: string | Date;
  tenant?: string | null;
  /** A hint for the catalog (LiteLLM's custom_llm_provider). */
  provider?: string | null;
}

/** A component in pico-USD per token (per request for web searches), tiered by total input tokens. */
interface IntegerTiered {
  base: number;
  tiers: { start: number; price: number }[];
}

interface IntegerPeriod {
  from: number | null;
  input: IntegerTiered;
  output: IntegerTiered;
  cacheRead: IntegerTiered;
  cacheWrite: IntegerTiered;
  cacheWrite1h: IntegerTiered;
  webSearch: number;
}

/** Where a model's price comes from. */
export interface Resolved {
  source: 'override' | 'catalog';
  /** The override's prefix, or the catalog's model id. */
  key: string;
  provider: string | null;
  catalog: string | null;
  /** Oldest first. */
  periods: IntegerPeriod[];
  notes: string[];
}

/** A price as `tokenwatch pricing` shows it: USD per million tokens. */
export interface PriceReport {
  model: string;
  source: string;
  at: string;
  effectiveFrom: string | null;
  input: Tiered;
  output: Tiered;
  cacheRead: Tiered;
  cacheWrite5m: Tiered;
  cacheWrite1h: Tiered;
  webSearchesPerThousand: number;
  tenantDiscount: number;
  notes: string[];
}

const PICO_PER_USD_PER_MILLION = 1_000_000;
const micro = (usdPerMillion: number) => Math.round(usdPerMillion * PICO_PER_USD_PER_MILLION);
const usd = (pico: number) => pico / PICO_PER_USD_PER_MILLION;

function integerTiered(value: Tiered, factor: number): IntegerTiered {
  if (typeof value === 'number') return { base: micro(value * factor), tiers: [] };
  return { base: micro(value.base * factor), tiers: value.tiers.map((t) => ({ start: t.start, price: micro(t.price * factor) })) };
}

function scaled(c: CatalogComponents, factor: number): Omit<IntegerPeriod, 'from'> {
  const input = integerTiered(c.input, factor);
  const cacheWrite = c.cacheWrite === undefined ? input : integerTiered(c.cacheWrite, factor);
  return {
    input,
    output: integerTiered(c.output, factor),
    // A provider without a cache price charges cached tokens as input (OpenAI's cache writes).
    cacheRead: c.cacheRead === undefined ? input : integerTiered(c.cacheRead, factor),
    cacheWrite,
    cacheWrite1h: c.cacheWrite1h === undefined ? cacheWrite : integerTiered(c.cacheWrite1h, factor),
    // Per request: USD per 1000 requests × 1e12 pico / 1000.
    webSearch: Math.round((c.webSearchesPerThousand ?? 0) * factor * 1e9),
  };
}

function overrideComponents(p: ModelPrice): CatalogComponents {
  return {
    input: p.input, output: p.output, cacheRead: p.cacheRead ?? p.input * 0.1, cacheWrite: p.cacheWrite ?? p.input * 1.25,
    cacheWrite1h: p.cacheWrite1h ?? p.input * 2, webSearchesPerThousand: p.webSearchesPerThousand ?? 0,
  };
}

const priceAt = (t: IntegerTiered, totalInput: number) => {
  let price = t.base;
  for (const tier of t.tiers) if (totalInput > tier.start) price = tier.price;
  return price;
};

export class Pricing {
  private readonly overrides: { key: string; price: ModelPrice }[];
  private readonly discounts: ReadonlyMap<string, number>;
  private readonly resolved = new Map<string, Resolved | null>();

  constructor(config: PricingConfig = {}) {
    // Longest first, so the most specific prefix wins.
    this.overrides = Object.entries(config.models ?? {}).sort(([a], [b]) => b.length - a.length).map(([key, price]) => ({ key, price }));
    this.discounts = new Map(Object.entries(config.tenants ?? {}).map(([tenant, t]) => [tenant, t.discount]));
  }

  /** Where the price of `model` comes from, or undefined when neither the configuration nor the catalog has it. */
  resolve(model: string, provider?: string | null): Resolved | undefined {
    const cacheKey = `${provider ?? ''}\u0001${model}`;
    let found = this.resolved.get(cacheKey);
    if (found === undefined) {
      found = this.lookup(model, provider ?? undefined) ?? null;
      this.resolved.set(cacheKey, found);
    }
    return found ?? undefined;
  }

  private lookup(model: string, provider: string | undefined): Resolved | undefined {
    const override = this.overrides.find((o) => model === o.key || model.startsWith(o.key));
    if (override) {
      return { source: 'override', key: override.key, provider: null, catalog: null, periods: [{ from: null, ...scaled(overrideComponents(override.price), 1) }], notes: [] };
    }
    const entry = catalogModel(model, provider);
    if (!entry) return undefined;
    return {
      source: 'catalog', key: entry.modelId, provider: entry.providerId, catalog: CATALOG_PACKAGE,
      periods: entry.periods.map((p) => ({ from: p.from === null ? null : Date.parse(p.from), ...scaled(p.components, 1) })),
      notes: entry.ignored.map((i) => `not applied: ${i}`),
    };
  }

  /** Where the price of `model` comes from, as the event store records it; null without a price. */
  pricedAs(model: string, provider?: string | null): string | null {
    const resolved = this.resolve(model, provider);
    if (!resolved) return null;
    return resolved.source === 'override' ? `override:${resolved.key}` : `catalog:${resolved.provider}/${resolved.key}`;
  }

  /** The tenant's discount factor as an integer share of 1,000,000 (1e6 = no discount). */
  private keepShare(tenant: string | null | undefined): number {
    const discount = tenant ? this.discounts.get(tenant) : undefined;
    return discount === undefined ? 1_000_000 : Math.round((1 - discount) * 1_000_000);
  }

  /** The period of `resolved` in force at `at` (epoch ms), with the tenant's discount applied. */
  private period(resolved: Resolved, at: number, tenant: string | null | undefined): IntegerPeriod {
    let found = resolved.periods[0]!;
    for (const p of resolved.periods) if (p.from === null || at >= p.from) found = p;
    const keep = this.keepShare(tenant);
    if (keep === 1_000_000) return found;
    // A discount scales each integer price, rounded to the integer pico-USD: the same in SQL.
    const scale = (price: number) => Math.round((price * keep) / 1_000_000);
    const tier = (t: IntegerTiered): IntegerTiered => ({ base: scale(t.base), tiers: t.tiers.map((x) => ({ start: x.start, price: scale(x.price) })) });
    return {
      from: found.from, input: tier(found.input), output: tier(found.output), cacheRead: tier(found.cacheRead),
      cacheWrite: tier(found.cacheWrite), cacheWrite1h: tier(found.cacheWrite1h), webSearch: scale(found.webSearch),
    };
  }

  /** USD (a whole number of nano-USD), or undefined for a model without a price. */
  cost(model: string, usage: Usage, ctx: PriceContext): number | undefined {
    const resolved = this.resolve(model, ctx.provider);
    if (!resolved) return undefined;
    const at = typeof ctx.at === 'string' ? Date.parse(ctx.at) : ctx.at.getTime();
    const p = this.period(resolved, at, ctx.tenant);
    const write1h = Math.min(usage.cacheWrite1hTokens ?? 0, usage.cacheWriteTokens);
    const totalInput = usage.inputTokens + usage.cacheReadTokens + usage.cacheWriteTokens;
    const tokens =
      usage.inputTokens * priceAt(p.input, totalInput) +
      usage.outputTokens * priceAt(p.output, totalInput) +
      usage.cacheReadTokens * priceAt(p.cacheRead, totalInput) +
      (usage.cacheWriteTokens - write1h) * priceAt(p.cacheWrite, totalInput) +
      write1h * priceAt(p.cacheWrite1h, totalInput);
    // Twice the pico-USD, so that half price (batch) stays an integer; rounded half up.
    const doubled = (usage.serviceTier === 'batch' ? tokens : 2 * tokens) + 2 * (usage.webSearchRequests ?? 0) * p.webSearch;
    return Math.floor((doubled + 1000) / 2000) / 1e9;
  }

  /** The price that applies to `model` at `at` for `tenant`, for people (`tokenwatch pricing`). */
  report(model: string, ctx: PriceContext): PriceReport | undefined {
    const resolved = this.resolve(model, ctx.provider);
    if (!resolved) return undefined;
    const at = typeof ctx.at === 'string' ? new Date(ctx.at) : ctx.at;
    const p = this.period(resolved, at.getTime(), ctx.tenant);
    const show = (t: IntegerTiered): Tiered => (t.tiers.length === 0 ? usd(t.base) : { base: usd(t.base), tiers: t.tiers.map((x) => ({ start: x.start, price: usd(x.price) })) });
    const keep = this.keepShare(ctx.tenant);
    return {
      model,
      source: resolved.source === 'override' ? `configuration pricing.models["${resolved.key}"]` : `catalog ${resolved.catalog}: ${resolved.provider}/${resolved.key}`,
      at: at.toISOString(),
      effectiveFrom: p.from === null ? null : new Date(p.from).toISOString().slice(0, 10),
      input: show(p.input), output: show(p.output), cacheRead: show(p.cacheRead), cacheWrite5m: show(p.cacheWrite), cacheWrite1h: show(p.cacheWrite1h),
      webSearchesPerThousand: p.webSearch / 1e9,
      tenantDiscount: 1 - keep / 1_000_000,
      notes: resolved.notes,
    };
  }

  /** ClickHouse SQL for pricedAs() of the `models` (a model expression), '' for others. */
  clickhousePricedAs(models: readonly PricedModel[], e: { model: string; provider?: string | undefined }): string {
    const cases = models.flatMap((m) => {
      const as = this.pricedAs(m.model, m.provider);
      return as === null ? [] : [`${this.isModel(m, e)}, ${clickhouseString(as)}`];
    });
    return cases.length === 0 ? "''" : `multiIf(${cases.join(', ')}, '')`;
  }

  /**
   * ClickHouse SQL for cost(): Decimal(18, 9), NULL for a model without a price. `models` are
   * the model names the rows can hold (the bulk path reads them first); a model outside the
   * list gets NULL, so rows with it must go through the row path. Integer arithmetic, so it
   * equals cost() to the last digit.
   */
  /** ClickHouse condition: the row's model (and provider, where the source names one) is `m`. */
  private isModel(m: PricedModel, e: { model: string; provider?: string | undefined }): string {
    const model = `${e.model} = ${clickhouseString(m.model)}`;
    return e.provider === undefined ? model : `${model} AND ${e.provider} = ${clickhouseString(m.provider ?? '')}`;
  }

  clickhouseCost(models: readonly PricedModel[], e: {
    model: string; at: string; tenant: string; provider?: string | undefined;
    input: string; output: string; cacheRead: string; cacheWrite: string; cacheWrite1h: string; webSearches: string; serviceTier: string;
  }): string {
    const branches: string[] = [];
    const totalInput = `(toInt64(${e.input}) + toInt64(${e.cacheRead}) + toInt64(${e.cacheWrite}))`;
    const tier = (t: IntegerTiered) => {
      if (t.tiers.length === 0) return `${t.base}`;
      const cases = [...t.tiers].reverse().map((x) => `${totalInput} > ${x.start}, ${x.price}`);
      return `multiIf(${cases.join(', ')}, ${t.base})`;
    };
    const write1h = `least(toInt64(${e.cacheWrite1h}), toInt64(${e.cacheWrite}))`;
    const cost = (p: IntegerPeriod) => {
      const tokens = `(toInt64(${e.input}) * ${tier(p.input)} + toInt64(${e.output}) * ${tier(p.output)} + toInt64(${e.cacheRead}) * ${tier(p.cacheRead)}` +
        ` + (toInt64(${e.cacheWrite}) - ${write1h}) * ${tier(p.cacheWrite)} + ${write1h} * ${tier(p.cacheWrite1h)})`;
      const doubled = `(if(${e.serviceTier} = 'batch', 1, 2) * ${tokens} + 2 * toInt64(${e.webSearches}) * ${p.webSearch})`;
      return `toDecimal64(intDiv(${doubled} + 1000, 2000), 0) * toDecimal64('0.000000001', 9)`;
    };
    const tenants = [...this.discounts.keys()];
    for (const m of models) {
      const resolved = this.resolve(m.model, m.provider);
      if (!resolved) continue;
      const isModel = this.isModel(m, e);
      // Newest period first: the first branch whose date has come wins.
      const periods = [...resolved.periods].reverse();
      for (const tenant of [...tenants, null]) {
        const who = tenant === null ? '' : ` AND ${e.tenant} = ${clickhouseString(tenant)}`;
        for (const p of periods) {
          // The oldest period also prices what comes before its date (as cost() does).
          const since = p.from === null || p === resolved.periods[0] ? '' : ` AND ${e.at} >= fromUnixTimestamp64Milli(toInt64(${p.from}), 'UTC')`;
          branches.push(`${isModel}${who}${since}, ${cost(this.period(resolved, p.from ?? Number.NEGATIVE_INFINITY, tenant))}`);
        }
      }
    }
    if (branches.length === 0) return 'CAST(NULL, \'Nullable(Decimal(18, 9))\')';
    return `CAST(multiIf(${branches.join(', ')}, NULL), 'Nullable(Decimal(18, 9))')`;
  }
}
