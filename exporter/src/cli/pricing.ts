// `tokenwatch pricing [MODEL] [--at DATE] [--tenant T]`: the price that applies to a model at
// a time, and where it comes from (the catalog and its version, or a configured override).
// Without a model: the overrides and discounts configured, and the catalog in use. Reads the
// configuration only; connects to nothing.
import { UsageError, loadOrExit, type CommonOptions } from './load-or-exit.ts';
import { Pricing, type PriceReport } from '../pricing/pricing.ts';
import { CATALOG_PACKAGE, type Tiered } from '../pricing/catalog.ts';

export interface PricingOptions extends CommonOptions {
  at?: string;
  tenant?: string;
  provider?: string;
  json?: boolean;
}

function when(text: string | undefined): Date {
  if (text === undefined) return new Date();
  const at = new Date(/^\d{4}-\d{2}-\d{2}$/.test(text) ? `${text}T00:00:00Z` : text);
  if (Number.isNaN(at.getTime())) throw new UsageError(`--at ${text}: not a date (use 2026-11-01 or 2026-11-01T12:00:00Z)`);
  return at;
}

const money = (usd: number) => `$${Number(usd.toFixed(9))}`;

function tiered(t: Tiered): string {
  const perMillion = (usd: number) => `${money(usd)} per million tokens`;
  if (typeof t === 'number') return perMillion(t);
  return `${perMillion(t.base)} (${t.tiers.map((x) => `${money(x.price)} when a request has over ${x.start.toLocaleString('en-US')} input tokens`).join(', ')})`;
}

export function renderPrice(r: PriceReport): string {
  return [
    `${r.model} at ${r.at}`,
    `  source:            ${r.source}${r.effectiveFrom ? ` (prices in force since ${r.effectiveFrom})` : ''}`,
    `  input:             ${tiered(r.input)}`,
    `  output:            ${tiered(r.output)}`,
    `  cache read:        ${tiered(r.cacheRead)}`,
    `  cache write (5m):  ${tiered(r.cacheWrite5m)}`,
    `  cache write (1h):  ${tiered(r.cacheWrite1h)}`,
    `  web search:        ${money(r.webSearchesPerThousand)} per 1,000 searches`,
    ...(r.tenantDiscount > 0 ? [`  tenant discount:   ${Number((r.tenantDiscount * 100).toFixed(4))} % (pricing.tenants), applied above`] : []),
    '  batch service tier: half the token prices',
    ...r.notes.map((n) => `  ${n}`),
    '',
  ].join('\n');
}

export function pricingCommand(model: string | undefined, options: PricingOptions): void {
  const at = when(options.at);
  const { loaded } = loadOrExit(options);
  const { pricing } = loaded.config;
  const prices = new Pricing(pricing);
  if (model === undefined) {
    const summary = { catalog: CATALOG_PACKAGE, overrides: pricing.models, tenants: pricing.tenants };
    if (options.json) process.stdout.write(`${JSON.stringify(summary)}\n`);
    else {
      process.stdout.write([
        `catalog: ${CATALOG_PACKAGE} (offline: the prices shipped with this version of tokenwatch)`,
        `overrides (pricing.models): ${Object.keys(pricing.models).length === 0 ? 'none' : Object.keys(pricing.models).join(', ')}`,
        `tenant discounts (pricing.tenants): ${Object.entries(pricing.tenants).map(([t, d]) => `${t} ${d.discount * 100} %`).join(', ') || 'none'}`,
        'Show one model: tokenwatch pricing MODEL [--at DATE] [--tenant TENANT]',
        '',
      ].join('\n'));
    }
    return;
  }
  const report = prices.report(model, { at, tenant: options.tenant ?? null, provider: options.provider ?? null });
  if (report === undefined) {
    const text = `${model}: no price in ${CATALOG_PACKAGE} nor in pricing.models: requests with this model are counted in tokenwatch_cost_unknown_requests_total; add it under pricing.models (docs/pricing.md)`;
    if (options.json) process.stdout.write(`${JSON.stringify({ model, price: null, message: text })}\n`);
    else process.stderr.write(`${text}\n`);
    process.exitCode = 1;
    return;
  }
  process.stdout.write(options.json ? `${JSON.stringify(report)}\n` : renderPrice(report));
}
