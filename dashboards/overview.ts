// LLM traffic overview: requests, tokens and cost; who and which models; latency and errors.
import { ch, layout, newDashboard, place, prom, tenantVariable, dashboardSelector } from './lib/grafana.ts';
import { barGauge, pie, stat, steps, table, timeseries } from './lib/panels.ts';
import { recorded } from './queries.ts';
import type { MonitoringConfig } from './config.ts';

/** A stat with the period's value and the previous period's, side by side. */
function periodStat(title: string, description: string, unit: string, expr: (offset: string) => string, window: string) {
  return stat({ title, description, unit, targets: [prom(expr(''), 'current', { instant: true }), prom(expr(` offset ${window}`), 'previous period', { instant: true })] });
}

export function overview(config: MonitoringConfig) {
  const job = dashboardSelector(config);
  const sel = `${job},tenant=~"$tenant"`;
  const dashboard = newDashboard(config, 'tokenwatch-overview', 'tokenwatch / LLM traffic overview', 'All LLM traffic through the proxies: volume, spend, models, latency and errors.', { prometheus: true, clickhouse: true }).withVariable(tenantVariable());
  const requests = (w: string) => (offset: string) => `sum(increase(tokenwatch_requests_total{${sel}}[${w}]${offset}))`;
  const tokens = (w: string) => (offset: string) => `sum(increase(tokenwatch_tokens_total{${sel}}[${w}]${offset}))`;
  const cost = (w: string) => (offset: string) => `sum(increase(tokenwatch_cost_usd_total{${sel}}[${w}]${offset}))`;
  return layout(dashboard, [
    {
      title: 'Today and this month',
      panels: [
        place(periodStat('Requests, last 24 h', 'LLM requests in the last 24 hours, and the 24 hours before for comparison.', 'short', requests('1d'), '1d'), 4, 5),
        place(periodStat('Tokens, last 24 h', 'Input, output and cache tokens in the last 24 hours, and the 24 hours before.', 'short', tokens('1d'), '1d'), 4, 5),
        place(periodStat('Cost, last 24 h', 'Cost in USD in the last 24 hours (LiteLLM spend, or estimated from tokens), and the 24 hours before.', 'currencyUSD', cost('1d'), '1d'), 4, 5),
        place(periodStat('Requests, last 30 days', 'LLM requests in the last 30 days, and the 30 days before.', 'short', requests('30d'), '30d'), 4, 5),
        place(periodStat('Tokens, last 30 days', 'Tokens in the last 30 days, and the 30 days before.', 'short', tokens('30d'), '30d'), 4, 5),
        place(periodStat('Cost, last 30 days', 'Cost in USD in the last 30 days, and the 30 days before.', 'currencyUSD', cost('30d'), '30d'), 4, 5),
      ],
    },
    {
      title: 'Traffic',
      panels: [
        place(timeseries({ title: 'Requests per second by tenant', description: 'Request rate per tenant (domain, client or team), 5-minute rate.', unit: 'reqps', targets: [prom(`sum by (tenant) (${recorded.requestRate}{tenant=~"$tenant"})`, '{{tenant}}')] }), 12),
        place(timeseries({ title: 'Tokens per second by type', description: 'Token rate by type: input, output, cache_read (cheap), cache_creation.', unit: 'short', targets: [prom(`sum by (type) (${recorded.tokenRate}{tenant=~"$tenant"})`, '{{type}}')] }), 12),
        place(barGauge({ title: 'Top tenants by requests', description: 'The ten tenants with most requests in the time range.', unit: 'short', targets: [prom(`topk(10, sum by (tenant) (increase(tokenwatch_requests_total{${sel}}[$__range])))`, '{{tenant}}', { instant: true })] }), 8),
        place(pie({ title: 'Model distribution', description: 'Share of requests per model in the time range.', unit: 'short', targets: [prom(`sum by (model) (increase(tokenwatch_requests_total{${sel}}[$__range]))`, '{{model}}', { instant: true })] }), 8),
        place(stat({ title: 'Active tenants', description: 'Tenants with at least one request that started in the last 5 minutes.', unit: 'short', targets: [prom(`sum(tokenwatch_active_tenants{${job}})`, 'active')] }), 8),
      ],
    },
    {
      title: 'Cost: where prices come from',
      panels: [
        place(timeseries({
          title: 'Requests without a price, by source', description: `Share of requests whose model has no price in the price catalog nor in pricing.models: their cost is left out of the cost panels (tokenwatch pricing MODEL; docs/pricing.md). Alert above ${(config.costUnknownMaxShare * 100).toFixed(1)} %.`, unit: 'percentunit',
          thresholds: steps([null, 'green'], [config.costUnknownMaxShare, 'red']), targets: [prom(`${recorded.costUnknownShare1h}`, '{{source}}')],
        }), 12),
        place(timeseries({
          title: 'Recorded spend ÷ list price, by model', description: 'Where a source records its own spend (LiteLLM): that spend divided by the price catalog\'s list-price estimate of the same requests, per model, over an hour. 1 = they agree; below 1, a discount or a price the gateway has wrong; above 1, a surcharge or a stale gateway price.', unit: 'short',
          targets: [prom(`${recorded.spendOverListPrice1h}{source="litellm"}`, '{{model}}')],
        }), 12),
      ],
    },
    {
      title: 'Latency and errors',
      panels: [
        place(timeseries({
          title: 'Latency p50 / p95 / p99 by model', description: 'Request duration percentiles per model (start to end of the response, as the proxy saw it).', unit: 's',
          thresholds: steps([null, 'green'], [config.latencyP95Seconds.default ?? 30, 'red']),
          targets: ([['p50', 0.5], ['p95', 0.95], ['p99', 0.99]] as const).map(([name, q]) =>
            prom(`histogram_quantile(${q}, sum by (gen_ai_request_model, le) (rate(gen_ai_client_operation_duration_seconds_bucket{${sel}}[$__rate_interval])))`, `${name} {{gen_ai_request_model}}`)),
        }), 12),
        place(timeseries({
          title: 'Time to first token p95 by model', description: 'How long streaming responses take to start, 95th percentile per model.', unit: 's',
          thresholds: steps([null, 'green'], [config.ttftP95Seconds.default ?? 5, 'red']),
          targets: [prom(`histogram_quantile(0.95, sum by (gen_ai_request_model, le) (rate(gen_ai_server_time_to_first_token_seconds_bucket{${sel}}[$__rate_interval])))`, '{{gen_ai_request_model}}')],
        }), 12),
        place(timeseries({ title: 'Errors per second by type', description: 'Failed requests by error type (rate_limit_error, overloaded_error, http_500, …).', unit: 'reqps', targets: [prom(`sum by (error_type) (rate(tokenwatch_errors_total{${sel}}[$__rate_interval]))`, '{{error_type}}')] }), 12),
        place(timeseries({
          title: '5xx error ratio by tenant', description: `Share of requests failing with HTTP 5xx (the availability SLI; objective ${(config.availabilityObjective * 100).toFixed(1)} %).`, unit: 'percentunit',
          thresholds: steps([null, 'green'], [1 - config.availabilityObjective, 'red']), targets: [prom(`${recorded.errorRatio('5m')}{tenant=~"$tenant"}`, '{{tenant}}')],
        }), 12),
      ],
    },
    {
      title: 'Peak usage',
      panels: [
        place(table({
          title: 'Peak hours: requests by hour of day and weekday (UTC)', description: 'Requests in the time range by hour of day (rows) and weekday (columns, 1 = Monday). Darker cells are busier.', unit: 'short',
          thresholds: steps([null, 'green'], [100, 'yellow'], [1000, 'red']),
          targets: [ch(`SELECT toHour(started_at) AS hour,
  ${[1, 2, 3, 4, 5, 6, 7].map((d) => `countIf(toDayOfWeek(started_at) = ${d}) AS d${d}`).join(', ')}
FROM tokenwatch.requests FINAL
WHERE $__timeFilter(started_at) AND match(tenant, '^(\${tenant:regex})$')
GROUP BY hour ORDER BY hour`)],
        }), 24, 12),
      ],
    },
  ]);
}
