// PromQL that alerts and dashboards share, written once. Expensive expressions (ratios,
// quantiles, baselines) are recording rules; alerts and panels read the recorded series.
import type { MonitoringConfig } from './config.ts';

export interface RecordingRule {
  record: string;
  expr: string;
}

/** The windows of the multi-window, multi-burn-rate error-budget alerts. */
export const BURN_WINDOWS = ['5m', '30m', '1h', '2h', '6h', '1d', '3d'] as const;
export type BurnWindow = (typeof BURN_WINDOWS)[number];

export const recorded = {
  errorRatio: (window: BurnWindow) => `tokenwatch:request_error_ratio:rate${window}`,
  requestRate: 'tokenwatch:requests:rate5m',
  latency: (quantile: 'p50' | 'p95' | 'p99') => `tokenwatch:request_duration_seconds:${quantile}_5m`,
  ttft: (quantile: 'p50' | 'p95' | 'p99') => `tokenwatch:time_to_first_token_seconds:${quantile}_5m`,
  costRate1h: 'tokenwatch:cost_usd:rate1h',
  costBaseline7d: 'tokenwatch:cost_usd:rate1h_same_hour_avg7d',
  tokenRate: 'tokenwatch:tokens:rate5m',
  /** Share of a source's requests whose model has no price (the cost panels leave them out). */
  costUnknownShare1h: 'tokenwatch:cost_unknown_requests:share1h',
  /** The spend a source recorded over the list-price estimate, by model (1: they agree). */
  spendOverListPrice1h: 'tokenwatch:cost_usd_over_estimate:ratio1h',
} as const;

const QUANTILES = { p50: 0.5, p95: 0.95, p99: 0.99 } as const;

export function recordingRules(config: MonitoringConfig): RecordingRule[] {
  const job = config.jobSelector;
  const rules: RecordingRule[] = [];
  for (const window of BURN_WINDOWS) {
    // SLI: a request is bad when the upstream or the proxy failed it (HTTP 5xx).
    rules.push({
      record: recorded.errorRatio(window),
      expr: `sum by (source, tenant) (rate(tokenwatch_requests_total{${job},status_class="5xx"}[${window}]))\n/\nsum by (source, tenant) (rate(tokenwatch_requests_total{${job}}[${window}]))`,
    });
  }
  rules.push({ record: recorded.requestRate, expr: `sum by (source, tenant, model, status_class) (rate(tokenwatch_requests_total{${job}}[5m]))` });
  rules.push({ record: recorded.tokenRate, expr: `sum by (source, tenant, model, type) (rate(tokenwatch_tokens_total{${job}}[5m]))` });
  for (const [name, q] of Object.entries(QUANTILES) as ['p50' | 'p95' | 'p99', number][]) {
    rules.push({
      record: recorded.latency(name),
      expr: `histogram_quantile(${q}, sum by (tenant, gen_ai_request_model, le) (rate(gen_ai_client_operation_duration_seconds_bucket{${job}}[5m])))`,
    });
    rules.push({
      record: recorded.ttft(name),
      expr: `histogram_quantile(${q}, sum by (tenant, gen_ai_request_model, le) (rate(gen_ai_server_time_to_first_token_seconds_bucket{${job}}[5m])))`,
    });
  }
  rules.push({
    record: recorded.costUnknownShare1h,
    // 0 where every request has a price (the unknown counter then has no series).
    expr: `(sum by (source) (rate(tokenwatch_cost_unknown_requests_total{${job}}[1h])) or sum by (source) (rate(tokenwatch_requests_total{${job}}[1h])) * 0)\n/\nsum by (source) (rate(tokenwatch_requests_total{${job}}[1h]))`,
  });
  rules.push({
    record: recorded.spendOverListPrice1h,
    expr: `sum by (source, model) (rate(tokenwatch_cost_usd_total{${job}}[1h]))\n/\nsum by (source, model) (rate(tokenwatch_cost_estimate_usd_total{${job}}[1h]))`,
  });
  rules.push({ record: recorded.costRate1h, expr: `sum by (source, tenant) (rate(tokenwatch_cost_usd_total{${job}}[1h])) * 3600` });
  rules.push({
    record: recorded.costBaseline7d,
    expr: `(\n${[1, 2, 3, 4, 5, 6, 7].map((d) => `  ${recorded.costRate1h} offset ${d}d`).join('\n+\n')}\n) / 7`,
  });
  return rules;
}

/** `expr > threshold` with a threshold per value of `label` and a default for the rest. */
export function perLabelThreshold(expr: string, label: string, thresholds: Record<string, number>): string {
  const specific = Object.entries(thresholds).filter(([k]) => k !== 'default');
  const parts = specific.map(([value, t]) => `${expr.replace(/^(\S+)/, `$1{${label}="${value}"}`)} > ${t}`);
  const rest = specific.length > 0 ? `{${label}!~"${specific.map(([v]) => v.replace(/[.*+?^${}()|[\]\\]/g, '\\\\$&')).join('|')}"}` : '';
  parts.push(`${expr.replace(/^(\S+)/, `$1${rest}`)} > ${thresholds.default ?? Infinity}`);
  return parts.length === 1 ? parts[0]! : parts.map((p) => `(${p})`).join('\nor\n');
}
