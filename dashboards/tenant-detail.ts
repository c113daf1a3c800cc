// Tenant detail: the overview's views for the selected tenants, plus cost by model, the
// 5-hour account window, rate-limit warnings, sub-tasks and tool calls.
import { layout, newDashboard, place, prom, tenantVariable, dashboardSelector } from './lib/grafana.ts';
import { stat, steps, timeseries, UTILISATION } from './lib/panels.ts';
import { recorded } from './queries.ts';
import type { MonitoringConfig } from './config.ts';

export function tenantDetail(config: MonitoringConfig) {
  const job = dashboardSelector(config);
  const sel = `${job},tenant=~"$tenant"`;
  const dashboard = newDashboard(config, 'tokenwatch-tenant-detail', 'tokenwatch / Tenant detail', 'One or more tenants in depth: traffic, cost by model, latency, rate limits, sub-tasks and tools.', { prometheus: true }).withVariable(tenantVariable());
  return layout(dashboard, [
    {
      title: 'Usage',
      panels: [
        place(timeseries({ title: 'Requests per second by status class', description: 'Request rate of the selected tenants by HTTP status class.', unit: 'reqps', targets: [prom(`sum by (status_class) (${recorded.requestRate}{tenant=~"$tenant"})`, '{{status_class}}')] }), 8),
        place(timeseries({ title: 'Tokens per second by type', description: 'Token rate by type for the selected tenants.', unit: 'short', targets: [prom(`sum by (type) (${recorded.tokenRate}{tenant=~"$tenant"})`, '{{type}}')] }), 8),
        place(timeseries({ title: 'Cost per hour by model', description: 'USD per hour by model for the selected tenants.', unit: 'currencyUSD', targets: [prom(`sum by (model) (rate(tokenwatch_cost_usd_total{${sel}}[$__rate_interval])) * 3600`, '{{model}}')] }), 8),
      ],
    },
    {
      title: 'Latency',
      panels: [
        place(timeseries({ title: 'Latency p50 / p95 / p99', description: 'Request duration percentiles per tenant and model (recording rules shared with the latency alert).', unit: 's', targets: (['p50', 'p95', 'p99'] as const).map((q) => prom(`${recorded.latency(q)}{tenant=~"$tenant"}`, `${q} {{tenant}} {{gen_ai_request_model}}`)) }), 12),
        place(timeseries({ title: 'Time to first token p95', description: 'Time to first token, 95th percentile, per tenant and model.', unit: 's', targets: [prom(`${recorded.ttft('p95')}{tenant=~"$tenant"}`, '{{tenant}} {{gen_ai_request_model}}')] }), 12),
      ],
    },
    {
      title: 'Limits',
      panels: [
        place(timeseries({
          title: '5-hour output-token window by account', description: 'Output tokens of each upstream account over the rolling 5 hours, as a share of its limit (Claude Nexus Proxy). Red above 80 %.', unit: 'percentunit',
          thresholds: UTILISATION(), targets: [prom(`tokenwatch_account_output_tokens_5h{${job}} / on (source, account) tokenwatch_account_output_tokens_5h_limit{${job}}`, '{{account}}')],
        }), 12),
        place(timeseries({ title: 'Rate-limit warnings', description: 'Responses whose upstream rate-limit status was not "allowed" (e.g. allowed_warning): the account is close to being throttled.', unit: 'short', thresholds: steps([null, 'green'], [1, 'red']), targets: [prom(`sum by (tenant, account, status) (increase(tokenwatch_rate_limit_warnings_total{${sel}}[$__rate_interval]))`, '{{tenant}} {{account}} {{status}}')] }), 12),
      ],
    },
    {
      title: 'Agents and tools',
      panels: [
        place(stat({ title: 'Sub-task share', description: 'Share of requests made by sub-tasks (spawned by a Task tool call) in the time range.', unit: 'percentunit', targets: [prom(`sum(increase(tokenwatch_subtask_requests_total{${sel}}[$__range])) / sum(increase(tokenwatch_requests_total{${sel}}[$__range]))`, 'sub-tasks')] }), 6),
        place(timeseries({ title: 'Sub-task requests per second', description: 'Requests made by sub-tasks per tenant.', unit: 'reqps', targets: [prom(`sum by (tenant) (rate(tokenwatch_subtask_requests_total{${sel}}[$__rate_interval]))`, '{{tenant}}')] }), 9),
        place(timeseries({ title: 'Tool calls per second by model', description: 'Tool calls made in responses, per model.', unit: 'short', targets: [prom(`sum by (model) (rate(tokenwatch_tool_calls_total{${sel}}[$__rate_interval]))`, '{{model}}')] }), 9),
      ],
    },
  ]);
}
