// The alert catalog: every alert once, with its expression, severity, annotations, runbook
// entry and promtool tests (an input that fires it, an input just below that does not).
// Prometheus rule files, Grafana alert provisioning, promtool tests and docs/runbooks.md are
// all rendered from this list.
import { selectorLabels, type MonitoringConfig } from '../config.ts';
import { perLabelThreshold, recorded } from '../queries.ts';

export type Severity = 'critical' | 'warning' | 'info';

export interface InputSeries {
  series: string;
  values: string;
}

export interface AlertTest {
  name: string;
  input: InputSeries[];
  evalTime: string;
  /** Alerts expected at evalTime: extra labels beyond the rule's own, and the rendered description. */
  expect: { labels: Record<string, string>; description: string; severity?: Severity }[];
}

export interface AlertRule {
  alert: string;
  severity: Severity;
  /** data: about the LLM traffic (silenced while the exporter is down); pipeline: about tokenwatch. */
  component: 'data' | 'pipeline';
  for: string;
  expr: string;
  summary: string;
  description: string;
  runbook: { meaning: string; impact: string; diagnosis: string; mitigation: string };
  tests: AlertTest[];
}

const counter = (labels: string, values: string): InputSeries => ({ series: `${labels}`, values });

/** A ratio as Prometheus' humanizePercentage prints it. */
function pct(x: number): string {
  return `${Math.round(x * 10000) / 100}%`;
}

export function alertCatalog(config: MonitoringConfig): AlertRule[] {
  const job = config.jobSelector;
  const budget = 1 - config.availabilityObjective;
  const req = (tenant: string, cls: string) => `tokenwatch_requests_total{${job},source="claude-nexus-proxy",tenant="${tenant}",model="claude-sonnet-4-5",status_class="${cls}"}`;
  // Error burn inputs: `bad` 5xx requests per minute out of 100.
  const burnInput = (bad: number): InputSeries[] => [
    counter(req('acme', '2xx'), `0+${100 - bad}x120`),
    counter(req('acme', '5xx'), `0+${bad}x120`),
  ];
  const burn = (factor: number, long: string, short: string) =>
    `${recorded.errorRatio(long as '1h')} > (${factor} * ${budget.toFixed(6).replace(/0+$/, '')})\nand\n${recorded.errorRatio(short as '5m')} > (${factor} * ${budget.toFixed(6).replace(/0+$/, '')})`;
  const burnDescription = (ratio: number) =>
    `Tenant acme (claude-nexus-proxy): ${pct(ratio)} of requests failed with a 5xx; at this rate the error budget of the ${pct(config.availabilityObjective)} availability objective runs out early.`;
  const quotaSeries = (used: number, limit: number) => [
    counter(`tokenwatch_quota_utilisation_ratio{${job},source="sidekick-forge",client="client-0",resource="voice_seconds"}`, `${used / limit}x30`),
  ];
  const latencyBucket = (le: string, value: string) =>
    counter(`gen_ai_client_operation_duration_seconds_bucket{${job},gen_ai_operation_name="chat",gen_ai_provider_name="anthropic",gen_ai_request_model="claude-sonnet-4-5",tenant="acme",error_type="",le="${le}"}`, value);
  const ttftBucket = (le: string, value: string) =>
    counter(`gen_ai_server_time_to_first_token_seconds_bucket{${job},gen_ai_operation_name="chat",gen_ai_provider_name="anthropic",gen_ai_request_model="claude-sonnet-4-5",tenant="acme",le="${le}"}`, value);
  // Alerts on series that keep their labels also carry the scrape job's.
  const jobLabel = selectorLabels(config);
  const quotaLabels = { ...jobLabel, source: 'sidekick-forge', client: 'client-0', resource: 'voice_seconds' };

  return [
    {
      alert: 'TokenwatchErrorBudgetBurn',
      severity: 'critical',
      component: 'data',
      for: '2m',
      expr: `(\n${burn(14.4, '1h', '5m')}\n)\nor\n(\n${burn(6, '6h', '30m')}\n)`,
      summary: 'LLM requests of a tenant are failing fast enough to exhaust the error budget within days.',
      description: `Tenant {{ $labels.tenant }} ({{ $labels.source }}): {{ $value | humanizePercentage }} of requests failed with a 5xx; at this rate the error budget of the ${pct(config.availabilityObjective)} availability objective runs out early.`,
      runbook: {
        meaning: 'The share of requests answered with HTTP 5xx, over both a long and a short window, burns the error budget 14.4× (1 h / 5 m) or 6× (6 h / 30 m) faster than the objective allows.',
        impact: 'Users of this tenant see failed completions now; at this pace the monthly budget is gone in about two (14.4×) or five (6×) days.',
        diagnosis: 'Open the Tenant detail dashboard for the tenant: error rate by type shows whether it is `overloaded_error`, `api_error` or the proxy itself. Compare with other tenants: all failing points upstream.',
        mitigation: 'Upstream outage: fail over to another account or model, or wait it out and tell the tenant. Proxy errors: check the proxy logs and roll back a recent deploy.',
      },
      tests: [
        {
          name: 'fires critical (and warning) at 10% errors', input: burnInput(10), evalTime: '70m',
          expect: [
            { labels: { source: 'claude-nexus-proxy', tenant: 'acme' }, description: burnDescription(0.1) },
            { labels: { source: 'claude-nexus-proxy', tenant: 'acme' }, description: burnDescription(0.1), severity: 'warning' },
          ],
        },
        {
          name: 'only the warning just below the 6x budget burn (2.9%)', input: burnInput(2.9), evalTime: '70m',
          expect: [{ labels: { source: 'claude-nexus-proxy', tenant: 'acme' }, description: burnDescription(0.029), severity: 'warning' }],
        },
      ],
    },
    {
      alert: 'TokenwatchErrorBudgetBurn',
      severity: 'warning',
      component: 'data',
      for: '15m',
      expr: `(\n${burn(3, '1d', '2h')}\n)\nor\n(\n${burn(1, '3d', '6h')}\n)`,
      summary: 'LLM requests of a tenant are failing faster than the availability objective allows.',
      description: `Tenant {{ $labels.tenant }} ({{ $labels.source }}): {{ $value | humanizePercentage }} of requests failed with a 5xx; at this rate the error budget of the ${pct(config.availabilityObjective)} availability objective runs out early.`,
      runbook: {
        meaning: 'The 5xx share burns the error budget 3× (1 d / 2 h) or 1× (3 d / 6 h) faster than sustainable: a slow leak rather than an outage.',
        impact: 'No immediate outage, but the objective will be missed this month if it continues.',
        diagnosis: 'Tenant detail dashboard: which models and error types; is it one account (rate limits, overload) or all?',
        mitigation: 'Open a ticket with the owner of the failing path; consider retries with backoff or moving traffic to a healthier model.',
      },
      tests: [
        { name: 'fires warning at 0.6% errors', input: burnInput(0.6), evalTime: '70m', expect: [{ labels: { source: 'claude-nexus-proxy', tenant: 'acme' }, description: burnDescription(0.006) }] },
        { name: 'no warning just below 1x budget burn (0.4%)', input: burnInput(0.4), evalTime: '70m', expect: [] },
      ],
    },
    {
      alert: 'TokenwatchLatencyHigh',
      severity: 'warning',
      component: 'data',
      for: '15m',
      expr: perLabelThreshold(recorded.latency('p95'), 'gen_ai_request_model', config.latencyP95Seconds),
      summary: 'p95 request latency of a model is above its threshold.',
      description: 'p95 latency of {{ $labels.gen_ai_request_model }} for tenant {{ $labels.tenant }} is {{ $value | humanizeDuration }}.',
      runbook: {
        meaning: 'The 95th percentile of request duration (proxy view, start to end of the response) over 5 minutes is above the configured threshold for the model.',
        impact: 'Slow responses for interactive users; agents may time out.',
        diagnosis: 'Overview dashboard, latency by model: one model or all? Compare time to first token: a high TTFT points at the upstream queue, a normal TTFT with high duration at long outputs.',
        mitigation: 'Upstream slowness: shift traffic to a faster model or region. Long outputs: check whether max_tokens changed.',
      },
      tests: [
        {
          name: 'fires when every request takes 40-80 s',
          input: [latencyBucket('20.48', '0x40'), latencyBucket('40.96', '0x40'), latencyBucket('81.92', '0+10x40'), latencyBucket('+Inf', '0+10x40')],
          evalTime: '30m',
          expect: [{ labels: { tenant: 'acme', gen_ai_request_model: 'claude-sonnet-4-5' }, description: 'p95 latency of claude-sonnet-4-5 for tenant acme is 1m 19s.' }],
        },
        {
          name: 'silent when requests take 10-20 s (threshold 30 s)',
          input: [latencyBucket('10.24', '0x40'), latencyBucket('20.48', '0+10x40'), latencyBucket('40.96', '0+10x40'), latencyBucket('81.92', '0+10x40'), latencyBucket('+Inf', '0+10x40')],
          evalTime: '30m',
          expect: [],
        },
      ],
    },
    {
      alert: 'TokenwatchTimeToFirstTokenHigh',
      severity: 'warning',
      component: 'data',
      for: '15m',
      expr: perLabelThreshold(recorded.ttft('p95'), 'gen_ai_request_model', config.ttftP95Seconds),
      summary: 'p95 time to first token of a model is above its threshold.',
      description: 'p95 time to first token of {{ $labels.gen_ai_request_model }} for tenant {{ $labels.tenant }} is {{ $value | humanizeDuration }}.',
      runbook: {
        meaning: 'Streaming responses take long to start: the 95th percentile of time to first token over 5 minutes is above the threshold.',
        impact: 'Chat and voice agents feel unresponsive; voice calls get dead air.',
        diagnosis: 'Usually upstream queueing or very long prompts (cache misses). Check cache-read tokens on the Tenant detail dashboard.',
        mitigation: 'Enable or fix prompt caching; move latency-sensitive agents to a faster model.',
      },
      tests: [
        {
          name: 'fires when first tokens take 7.5-10 s',
          input: [ttftBucket('7.5', '0x40'), ttftBucket('10', '0+10x40'), ttftBucket('+Inf', '0+10x40')],
          evalTime: '30m',
          expect: [{ labels: { tenant: 'acme', gen_ai_request_model: 'claude-sonnet-4-5' }, description: 'p95 time to first token of claude-sonnet-4-5 for tenant acme is 9.875s.' }],
        },
        {
          name: 'silent when first tokens take 2.5-5 s (threshold 5 s)',
          input: [ttftBucket('2.5', '0x40'), ttftBucket('5', '0+10x40'), ttftBucket('+Inf', '0+10x40')],
          evalTime: '30m',
          expect: [],
        },
      ],
    },
    {
      alert: 'TokenwatchQuotaHigh',
      severity: 'warning',
      component: 'data',
      for: '5m',
      expr: `tokenwatch_quota_utilisation_ratio{${job}} >= ${config.quotaWarningRatio}`,
      summary: 'A client has used most of a monthly quota.',
      description: 'Client {{ $labels.client }} has used {{ $value | humanizePercentage }} of its {{ $labels.resource }} quota this month.',
      runbook: {
        meaning: `The client's usage of the resource (sum over its agents) is at or above ${pct(config.quotaWarningRatio)} of its quota for the current month.`,
        impact: 'None yet; at 100 % the platform starts refusing the client\'s voice minutes, text messages or embedding chunks.',
        diagnosis: 'Agents and quotas dashboard: which agents use it, and the trend against last month.',
        mitigation: 'Tell the client; offer a tier upgrade or raise the limit in agent_usage / tier_quotas.',
      },
      tests: [
        { name: 'fires at 85%', input: quotaSeries(5100, 6000), evalTime: '10m', expect: [{ labels: quotaLabels, description: 'Client client-0 has used 85% of its voice_seconds quota this month.' }] },
        { name: 'silent at 79.9%', input: quotaSeries(4794, 6000), evalTime: '10m', expect: [] },
      ],
    },
    {
      alert: 'TokenwatchQuotaHigh',
      severity: 'critical',
      component: 'data',
      for: '5m',
      expr: `tokenwatch_quota_utilisation_ratio{${job}} >= ${config.quotaCriticalRatio}`,
      summary: 'A client has almost used up a monthly quota.',
      description: 'Client {{ $labels.client }} has used {{ $value | humanizePercentage }} of its {{ $labels.resource }} quota this month.',
      runbook: {
        meaning: `Usage is at or above ${pct(config.quotaCriticalRatio)} of the quota; the client will be cut off soon.`,
        impact: 'The client\'s agents stop working for this resource at 100 %.',
        diagnosis: 'Agents and quotas dashboard: the usage trend shows when 100 % will be reached.',
        mitigation: 'Act now: raise the limit or upgrade the tier, or agree with the client to throttle.',
      },
      tests: [
        {
          name: 'fires critical (and warning) at 95%', input: quotaSeries(5700, 6000), evalTime: '10m',
          expect: [
            { labels: quotaLabels, description: 'Client client-0 has used 95% of its voice_seconds quota this month.' },
            { labels: quotaLabels, description: 'Client client-0 has used 95% of its voice_seconds quota this month.', severity: 'warning' },
          ],
        },
        {
          name: 'only the warning at 89.9%', input: quotaSeries(5394, 6000), evalTime: '10m',
          expect: [{ labels: quotaLabels, description: 'Client client-0 has used 89.9% of its voice_seconds quota this month.', severity: 'warning' }],
        },
      ],
    },
    {
      alert: 'TokenwatchQuotaExceeded',
      severity: 'critical',
      component: 'data',
      for: '1m',
      expr: `tokenwatch_quota_utilisation_ratio{${job}} >= ${config.quotaExceededRatio}`,
      summary: 'A client has exceeded a monthly quota.',
      description: 'Client {{ $labels.client }} has used {{ $value | humanizePercentage }} of its {{ $labels.resource }} quota this month.',
      runbook: {
        meaning: 'Usage reached or passed the quota: the platform refuses further use of the resource.',
        impact: 'The client\'s agents are failing for this resource.',
        diagnosis: 'Agents and quotas dashboard; agent_usage for the current period.',
        mitigation: 'Raise the limit or upgrade the tier immediately if the client should keep working.',
      },
      tests: [
        { name: 'fires at 100%', input: quotaSeries(6000, 6000), evalTime: '10m', expect: [{ labels: quotaLabels, description: 'Client client-0 has used 100% of its voice_seconds quota this month.' }] },
        { name: 'silent at 99.9%', input: quotaSeries(5994, 6000), evalTime: '10m', expect: [] },
      ],
    },
    {
      alert: 'TokenwatchAccountWindowNearLimit',
      severity: 'warning',
      component: 'data',
      for: '5m',
      expr: `tokenwatch_account_output_tokens_5h{${job}}\n/ on (source, account)\ntokenwatch_account_output_tokens_5h_limit{${job}} >= ${config.accountWindowRatio}`,
      summary: 'An upstream account is close to its rolling 5-hour output-token limit.',
      description: 'Account {{ $labels.account }} used {{ $value | humanizePercentage }} of its 5-hour output-token limit.',
      runbook: {
        meaning: `Output tokens of the upstream account over the last 5 hours reached ${pct(config.accountWindowRatio)} of the configured limit.`,
        impact: 'When the window is full the upstream rejects requests of every tenant on this account.',
        diagnosis: 'Tenant detail dashboard, 5-hour window panel: which tenants drive it.',
        mitigation: 'Move tenants to another account, or slow down batch work until the window rolls.',
      },
      tests: [
        {
          name: 'fires at 95% of the window',
          input: [counter(`tokenwatch_account_output_tokens_5h{${job},source="claude-nexus-proxy",account="acct-a"}`, '133000x20'), counter(`tokenwatch_account_output_tokens_5h_limit{${job},source="claude-nexus-proxy",account="acct-a"}`, '140000x20')],
          evalTime: '10m',
          expect: [{ labels: { source: 'claude-nexus-proxy', account: 'acct-a' }, description: 'Account acct-a used 95% of its 5-hour output-token limit.' }],
        },
        {
          name: 'silent at 89%',
          input: [counter(`tokenwatch_account_output_tokens_5h{${job},source="claude-nexus-proxy",account="acct-a"}`, '124600x20'), counter(`tokenwatch_account_output_tokens_5h_limit{${job},source="claude-nexus-proxy",account="acct-a"}`, '140000x20')],
          evalTime: '10m',
          expect: [],
        },
      ],
    },
    {
      alert: 'TokenwatchRateLimitWarnings',
      severity: 'warning',
      component: 'data',
      for: '5m',
      expr: `sum by (source, tenant, account, status) (increase(tokenwatch_rate_limit_warnings_total{${job}}[15m])) > 0`,
      summary: 'The upstream API is warning that a rate limit is near.',
      description: 'Tenant {{ $labels.tenant }} got {{ $value | humanize }} responses with rate-limit status {{ $labels.status }} in 15 minutes (account {{ $labels.account }}).',
      runbook: {
        meaning: 'Responses carried a rate-limit status other than "allowed" (Anthropic\'s anthropic-ratelimit-unified-status, e.g. allowed_warning).',
        impact: 'Requests will soon be rejected with 429 for this account.',
        diagnosis: 'Tenant detail dashboard: rate-limit warnings and the 5-hour window.',
        mitigation: 'Spread load over accounts or reduce request rate.',
      },
      tests: [
        {
          name: 'fires on warnings',
          input: [counter(`tokenwatch_rate_limit_warnings_total{${job},source="claude-nexus-proxy",tenant="acme",account="acct-a",status="allowed_warning"}`, '0+1x30')],
          evalTime: '20m',
          expect: [{ labels: { source: 'claude-nexus-proxy', tenant: 'acme', account: 'acct-a', status: 'allowed_warning' }, description: 'Tenant acme got 15 responses with rate-limit status allowed_warning in 15 minutes (account acct-a).' }],
        },
        { name: 'silent without new warnings', input: [counter(`tokenwatch_rate_limit_warnings_total{${job},source="claude-nexus-proxy",tenant="acme",account="acct-a",status="allowed_warning"}`, '3x30')], evalTime: '20m', expect: [] },
      ],
    },
    {
      alert: 'TokenwatchSpendAnomaly',
      severity: 'warning',
      component: 'data',
      for: '30m',
      expr: `${recorded.costRate1h} > ${config.spendAnomalyFactor} * ${recorded.costBaseline7d}\nand\n${recorded.costRate1h} > ${config.spendAnomalyMinUsdPerHour}`,
      summary: 'A tenant is spending far more than usual for this hour.',
      description: `Tenant {{ $labels.tenant }} ({{ $labels.source }}) spends {{ $value | printf "%.2f" }} USD per hour, more than ${config.spendAnomalyFactor} times its average for this hour over the last 7 days.`,
      runbook: {
        meaning: `The tenant's cost rate over the last hour is above ${config.spendAnomalyFactor}× the average of the same hour on the previous 7 days, and above ${config.spendAnomalyMinUsdPerHour} USD/h.`,
        impact: 'Unexpected cost: a runaway agent loop, a leaked key or a new workload.',
        diagnosis: 'Tenant detail dashboard, cost by model; Conversations dashboard for the conversations with most tokens.',
        mitigation: 'Contact the tenant; revoke the key or cap the tenant if it is abuse.',
      },
      tests: [
        {
          name: 'fires at 10x the usual spend',
          // 8 days of history at 0.001 USD/s (3.6 USD/h), then the last 2 hours at 0.01 USD/s (36 USD/h).
          input: [counter(`tokenwatch_cost_usd_total{${job},source="litellm",tenant="team-a",model="gpt-4o"}`, '0+0.06x11520 691.8+0.6x119')],
          evalTime: '8d2h',
          expect: [{ labels: { source: 'litellm', tenant: 'team-a' }, description: 'Tenant team-a (litellm) spends 36.00 USD per hour, more than 3 times its average for this hour over the last 7 days.' }],
        },
        {
          name: 'silent at 2.9x the usual spend',
          input: [counter(`tokenwatch_cost_usd_total{${job},source="litellm",tenant="team-a",model="gpt-4o"}`, '0+0.06x11520 691.374+0.174x119')],
          evalTime: '8d2h',
          expect: [],
        },
      ],
    },
    {
      alert: 'TokenwatchCostUnknown',
      severity: 'warning',
      component: 'data',
      for: '30m',
      expr: `${recorded.costUnknownShare1h} > ${config.costUnknownMaxShare}`,
      summary: 'Requests of models without a price: their cost is missing from the cost panels.',
      description: `{{ $value | humanizePercentage }} of {{ $labels.source }} requests in the last hour had a model without a price (above ${pct(config.costUnknownMaxShare)}).`,
      runbook: {
        meaning: `More than ${pct(config.costUnknownMaxShare)} of a source's requests over the last hour used a model that neither the price catalog shipped with tokenwatch nor the configuration's pricing.models prices.`,
        impact: 'Their cost is unknown: cost panels, the spend anomaly alert and cost reports understate spend (LiteLLM\'s own recorded spend still counts; only its list-price estimate is missing).',
        diagnosis: 'sum by (model) (increase(tokenwatch_cost_unknown_requests_total[1h])) names the models; `tokenwatch check` lists them with their request counts; `tokenwatch pricing MODEL` shows what the catalog knows.',
        mitigation: 'Add the model under pricing.models (USD per million tokens) and restart, then `tokenwatch reprice --from DATE` to price what was stored meanwhile; or upgrade tokenwatch for a newer catalog.',
      },
      tests: [
        {
          name: 'fires when 5% of requests have no price',
          input: [
            counter(`tokenwatch_requests_total{${job},source="claude-nexus-proxy",tenant="acme",model="claude-haiku-5-5",status_class="2xx"}`, '0+5x120'),
            counter(`tokenwatch_requests_total{${job},source="claude-nexus-proxy",tenant="acme",model="claude-sonnet-4-5",status_class="2xx"}`, '0+95x120'),
            counter(`tokenwatch_cost_unknown_requests_total{${job},source="claude-nexus-proxy",tenant="acme",model="claude-haiku-5-5"}`, '0+5x120'),
          ],
          evalTime: '100m',
          expect: [{ labels: { source: 'claude-nexus-proxy' }, description: '5% of claude-nexus-proxy requests in the last hour had a model without a price (above 1%).' }],
        },
        {
          name: 'silent at 0.5%, and when every model has a price',
          input: [
            counter(`tokenwatch_requests_total{${job},source="claude-nexus-proxy",tenant="acme",model="claude-sonnet-4-5",status_class="2xx"}`, '0+199x120'),
            counter(`tokenwatch_cost_unknown_requests_total{${job},source="claude-nexus-proxy",tenant="acme",model="claude-haiku-5-5"}`, '0+1x120'),
            counter(`tokenwatch_requests_total{${job},source="litellm",tenant="team-a",model="gpt-4o",status_class="2xx"}`, '0+100x120'),
          ],
          evalTime: '100m',
          expect: [],
        },
      ],
    },
    {
      alert: 'TokenwatchTrafficStopped',
      severity: 'warning',
      component: 'data',
      for: '10m',
      expr: `sum by (source, tenant) (increase(tokenwatch_requests_total{${job}}[30m])) == 0\nand\nsum by (source, tenant) (increase(tokenwatch_requests_total{${job}}[1h] offset 30m)) >= ${config.trafficStoppedMinRequests}`,
      summary: 'A tenant that was sending requests has stopped.',
      description: 'Tenant {{ $labels.tenant }} ({{ $labels.source }}) sent no request in the last 30 minutes after steady traffic before.',
      runbook: {
        meaning: `No requests from the tenant for 30 minutes, after at least ${config.trafficStoppedMinRequests} in the hour before.`,
        impact: 'The tenant\'s integration may be broken (bad key, DNS, client deploy), or its users are blocked.',
        diagnosis: 'Check the proxy logs for the tenant\'s domain or team: rejected authentications, 4xx. Check whether tokenwatch itself is reading (System health dashboard).',
        mitigation: 'Contact the tenant; fix credentials or routing.',
      },
      tests: [
        { name: 'fires after traffic stops', input: [counter(req('acme', '2xx'), '0+10x60 600x60')], evalTime: '105m', expect: [{ labels: { source: 'claude-nexus-proxy', tenant: 'acme' }, description: 'Tenant acme (claude-nexus-proxy) sent no request in the last 30 minutes after steady traffic before.' }] },
        { name: 'silent while traffic continues slowly', input: [counter(req('acme', '2xx'), '0+10x60 601+1x59')], evalTime: '105m', expect: [] },
      ],
    },
    {
      alert: 'TokenwatchExporterDown',
      severity: 'critical',
      component: 'pipeline',
      for: '5m',
      expr: `up{${job}} == 0 or absent(up{${job}})`,
      summary: 'Prometheus cannot scrape tokenwatch: LLM metrics are stale and data alerts are silenced.',
      // absent() has no instance: then no target of the job exists at all (often a job name that is not the scrape job's).
      description: `{{ if $labels.instance }}tokenwatch at {{ $labels.instance }} has been unreachable for 5 minutes.{{ else }}Prometheus has no target matching ${config.jobSelector} (is jobSelector in the monitoring configuration the job_name of your scrape config?).{{ end }}`,
      runbook: {
        meaning: 'The tokenwatch scrape target is down or missing.',
        impact: 'No fresh LLM metrics: dashboards freeze and every data alert is silenced (inhibited) until it is back. No data is lost: tokenwatch resumes from its checkpoints.',
        diagnosis: 'Is the process running? Check its logs (JSON lines on stderr), `/healthz`, and the network path from Prometheus.',
        mitigation: 'Restart tokenwatch; if it exits, run `tokenwatch check` for configuration and database problems.',
      },
      tests: [
        { name: 'fires when the target is down', input: [counter(`up{${job},instance="tw:9464"}`, '0x20')], evalTime: '10m', expect: [{ labels: { ...jobLabel, instance: 'tw:9464' }, description: 'tokenwatch at tw:9464 has been unreachable for 5 minutes.' }] },
        { name: 'silent when up', input: [counter(`up{${job},instance="tw:9464"}`, '1x20')], evalTime: '10m', expect: [] },
        {
          name: 'fires naming the selector when no target of the job exists (another job is scraped)',
          input: [counter('up{job="some-other-job",instance="tw:9464"}', '1x20')],
          evalTime: '10m',
          expect: [{ labels: jobLabel, description: `Prometheus has no target matching ${config.jobSelector} (is jobSelector in the monitoring configuration the job_name of your scrape config?).` }],
        },
      ],
    },
    {
      alert: 'TokenwatchIngestLagHigh',
      severity: 'warning',
      component: 'pipeline',
      for: '5m',
      expr: `tokenwatch_ingest_lag_seconds{${job}} > ${config.ingestLagSeconds}`,
      summary: 'tokenwatch has not completed a poll of a source table for a while.',
      description: 'The newest data read from {{ $labels.source }}/{{ $labels.table }} is {{ $value | humanizeDuration }} old.',
      runbook: {
        meaning: `The last successful poll of the stream started more than ${config.ingestLagSeconds} seconds ago.`,
        impact: 'Metrics and events of this source are behind; alerts about its traffic fire late.',
        diagnosis: 'tokenwatch logs: "poll failed" lines name the error. `tokenwatch_source_up` and `tokenwatch_source_poll_duration_seconds` show whether polls fail or are slow.',
        mitigation: 'Fix database connectivity or permissions (`tokenwatch check`); for slow polls lower maxCommitDelay or add the missing index `check` reports.',
      },
      tests: [
        { name: 'fires at 10 minutes of lag', input: [counter(`tokenwatch_ingest_lag_seconds{${job},source="litellm",table="LiteLLM_SpendLogs"}`, '600x20')], evalTime: '10m', expect: [{ labels: { ...jobLabel, source: 'litellm', table: 'LiteLLM_SpendLogs' }, description: 'The newest data read from litellm/LiteLLM_SpendLogs is 10m 0s old.' }] },
        { name: 'silent at 299 s', input: [counter(`tokenwatch_ingest_lag_seconds{${job},source="litellm",table="LiteLLM_SpendLogs"}`, '299x20')], evalTime: '10m', expect: [] },
      ],
    },
    {
      alert: 'TokenwatchReplicationSlotRetainingWal',
      severity: 'critical',
      component: 'pipeline',
      for: '15m',
      expr: `max by (source, slot) (tokenwatch_replication_slot_retained_bytes{${job}}) > ${config.replicationRetainedMaxBytes}`,
      summary: 'A replication slot keeps a growing amount of WAL on the source database.',
      description: 'Replication slot {{ $labels.slot }} of {{ $labels.source }} retains {{ $value | humanize1024 }}B of WAL on the source.',
      runbook: {
        meaning: `The slot tokenwatch reads (mode: replication) holds more than ${config.replicationRetainedMaxBytes} bytes of WAL that PostgreSQL cannot remove until tokenwatch confirms it.`,
        impact: 'The source database\'s disk fills; at max_slot_wal_keep_size the slot is invalidated and tokenwatch must load the tables again.',
        diagnosis: 'tokenwatch_replication_slot_lag_bytes and tokenwatch_replication_last_message_timestamp_seconds: is tokenwatch down, or failing (logs: "replication failed")? On the source: SELECT * FROM pg_replication_slots.',
        mitigation: 'Bring tokenwatch back; if it will not return, drop the slot on the source (SELECT pg_drop_replication_slot(\'<slot>\')): tokenwatch then loads the tables again on its next start (or polls the source, with onSlotLost: polling).',
      },
      tests: [
        { name: 'fires at 2 GiB retained', input: [counter(`tokenwatch_replication_slot_retained_bytes{${job},source="claude-nexus-proxy",slot="tokenwatch_claude_nexus_proxy"}`, `${2 * 1024 ** 3}x30`)], evalTime: '20m', expect: [{ labels: { source: 'claude-nexus-proxy', slot: 'tokenwatch_claude_nexus_proxy' }, description: 'Replication slot tokenwatch_claude_nexus_proxy of claude-nexus-proxy retains 2GiB of WAL on the source.' }] },
        { name: 'silent at 100 MiB', input: [counter(`tokenwatch_replication_slot_retained_bytes{${job},source="claude-nexus-proxy",slot="tokenwatch_claude_nexus_proxy"}`, `${100 * 1024 ** 2}x30`)], evalTime: '20m', expect: [] },
      ],
    },
    {
      alert: 'TokenwatchReplicationSilent',
      severity: 'warning',
      component: 'pipeline',
      for: '5m',
      expr: `time() - tokenwatch_replication_last_message_timestamp_seconds{${job}} > ${config.replicationSilentSeconds}`,
      summary: 'A replication stream receives nothing, not even the server\'s keepalives.',
      description: 'The replication stream of {{ $labels.source }} (slot {{ $labels.slot }}) has received nothing for {{ $value | humanizeDuration }}.',
      runbook: {
        meaning: `No change and no keepalive arrived on the slot's stream for more than ${config.replicationSilentSeconds} seconds; PostgreSQL sends keepalives every wal_sender_timeout / 2.`,
        impact: 'Changes of the source are not read: metrics and events of this source fall behind while its slot retains WAL.',
        diagnosis: 'tokenwatch logs ("replication failed" names the error), tokenwatch_source_up; on the source, pg_stat_replication and pg_replication_slots (active, wal_status).',
        mitigation: 'Fix connectivity or the REPLICATION privilege; a slot shown as lost was invalidated: drop it, and tokenwatch loads the tables again on its next start.',
      },
      tests: [
        { name: 'fires after 10 minutes without a message', input: [counter(`tokenwatch_replication_last_message_timestamp_seconds{${job},source="litellm",slot="tokenwatch_litellm"}`, '0x30')], evalTime: '15m', expect: [{ labels: { ...jobLabel, source: 'litellm', slot: 'tokenwatch_litellm' }, description: 'The replication stream of litellm (slot tokenwatch_litellm) has received nothing for 15m 0s.' }] },
        { name: 'silent while messages arrive', input: [counter(`tokenwatch_replication_last_message_timestamp_seconds{${job},source="litellm",slot="tokenwatch_litellm"}`, '0+60x30')], evalTime: '15m', expect: [] },
      ],
    },
    {
      alert: 'TokenwatchReplicationFellBackToPolling',
      severity: 'warning',
      component: 'pipeline',
      for: '0m',
      expr: `max by (source, slot) (tokenwatch_replication_fallback{${job}}) == 1`,
      summary: 'A source in mode: replication lost its slot and is polled instead.',
      description: 'The replication slot {{ $labels.slot }} of {{ $labels.source }} was lost or invalidated; tokenwatch polls the source from the last change it handled.',
      runbook: {
        meaning: 'The slot was dropped or invalidated (max_slot_wal_keep_size exceeded) after tokenwatch had started reading it, and the source has onSlotLost: polling: each table is polled from the commit time of the last transaction handled, less maxCommitDelay.',
        impact: 'Freshness is the poll interval\'s, and the source is read as a polled source is: an update of a row after maxCommitDelay, or a delete, is not seen. Nothing already counted is counted twice.',
        diagnosis: 'tokenwatch logs: "replication slot lost" gives the reason; on the source, SELECT * FROM pg_replication_slots (missing, or wal_status lost) and max_slot_wal_keep_size.',
        mitigation: 'To read by replication again, set onSlotLost: reload on the source and restart tokenwatch: a new slot is created and the tables are loaded again under its snapshot; rows already stored are recognised by their row version and not counted twice.',
      },
      tests: [
        { name: 'fires while polling instead', input: [counter(`tokenwatch_replication_fallback{${job},source="litellm",slot="tokenwatch_litellm"}`, '1x10')], evalTime: '5m', expect: [{ labels: { source: 'litellm', slot: 'tokenwatch_litellm' }, description: 'The replication slot tokenwatch_litellm of litellm was lost or invalidated; tokenwatch polls the source from the last change it handled.' }] },
        { name: 'silent while replicating', input: [counter(`tokenwatch_replication_fallback{${job},source="litellm",slot="tokenwatch_litellm"}`, '0x10')], evalTime: '5m', expect: [] },
      ],
    },
    {
      alert: 'TokenwatchRejectedRowsRising',
      severity: 'warning',
      component: 'pipeline',
      for: '5m',
      expr: `sum by (source, table, reason) (increase(tokenwatch_source_rows_invalid_total{${job},action="rejected"}[15m])) > 0`,
      summary: 'Source rows are being rejected as invalid.',
      description: '{{ $value | humanize }} rows of {{ $labels.source }}/{{ $labels.table }} were rejected in 15 minutes ({{ $labels.reason }}).',
      runbook: {
        meaning: 'Rows were skipped because they cannot be used (negative token counts, timestamps in the future, missing ids).',
        impact: 'Those requests are missing from metrics and events; totals undercount by that many rows.',
        diagnosis: 'tokenwatch logs one line per reason per minute with a row id: look the row up in the source table.',
        mitigation: 'Fix the writer of the source rows (or the clock of its host for future timestamps).',
      },
      tests: [
        { name: 'fires while rows are rejected', input: [counter(`tokenwatch_source_rows_invalid_total{${job},source="claude-nexus-proxy",table="api_requests",reason="negative_tokens",action="rejected"}`, '0+2x30')], evalTime: '20m', expect: [{ labels: { source: 'claude-nexus-proxy', table: 'api_requests', reason: 'negative_tokens' }, description: '30 rows of claude-nexus-proxy/api_requests were rejected in 15 minutes (negative_tokens).' }] },
        { name: 'silent when only repaired rows rise', input: [counter(`tokenwatch_source_rows_invalid_total{${job},source="claude-nexus-proxy",table="api_requests",reason="null_tokens",action="repaired"}`, '0+2x30')], evalTime: '20m', expect: [] },
      ],
    },
    {
      alert: 'TokenwatchLateRows',
      severity: 'warning',
      component: 'pipeline',
      for: '0m',
      expr: `sum by (source, table) (increase(tokenwatch_source_rows_late_total{${job}}[1h])) > 0`,
      summary: 'Source rows commit later than maxCommitDelay: the straggler sweep delivers them, minutes late.',
      description: '{{ $value | humanize }} rows of {{ $labels.source }}/{{ $labels.table }} committed later than maxCommitDelay in the last hour and were delivered late by the straggler sweep.',
      runbook: {
        meaning: 'Rows appeared whose transaction committed more than maxCommitDelay after their timestamp (a long streaming request, a stalled transaction). The poll had already passed their timestamp; the straggler sweep found and delivered them, once.',
        impact: 'Nothing is lost, but those rows reached the metrics and ClickHouse up to sweepInterval late: recent rates undercounted, then jumped. `tokenwatch_source_late_row_max_delay_seconds` says how late.',
        diagnosis: 'Compare `tokenwatch_source_late_row_max_delay_seconds` with `tokenwatch_source_max_commit_delay_seconds`. The warning log line "late rows delivered by the straggler sweep" names the stream; the proxy\'s longest requests (duration_ms) usually explain it.',
        mitigation: 'Raise the source\'s maxCommitDelay above the longest delay seen (polls then read a longer window: a little more database work per poll). Keep sweepWindow well above it.',
      },
      tests: [
        { name: 'fires when late rows arrive', input: [counter(`tokenwatch_source_rows_late_total{${job},source="claude-nexus-proxy",table="api_requests"}`, '0x10 12x20')], evalTime: '20m', expect: [{ labels: { source: 'claude-nexus-proxy', table: 'api_requests' }, description: '12 rows of claude-nexus-proxy/api_requests committed later than maxCommitDelay in the last hour and were delivered late by the straggler sweep.' }] },
        { name: 'silent while none arrive', input: [counter(`tokenwatch_source_rows_late_total{${job},source="claude-nexus-proxy",table="api_requests"}`, '0x30')], evalTime: '20m', expect: [] },
      ],
    },
    {
      alert: 'TokenwatchRowsBeyondSweepWindow',
      severity: 'critical',
      component: 'pipeline',
      for: '0m',
      expr: `sum by (source, table) (increase(tokenwatch_source_rows_beyond_sweep_window_total{${job}}[6h])) > 0`,
      summary: 'Source rows commit later than the straggler sweep window: rows committing later still are lost.',
      description: '{{ $value | humanize }} rows of {{ $labels.source }}/{{ $labels.table }} committed so late that only the last sweep of their timestamp found them; later ones are never read.',
      runbook: {
        meaning: 'The sweep found rows whose timestamp had already left the sweep window (sweepWindow, default 24 h): they were caught in the last band the sweep reads before giving a timestamp up. A row that commits later than that is never read by tokenwatch.',
        impact: 'Rows are probably being lost: metrics and ClickHouse undercount the source by the rows that commit beyond the window. The ones counted here were delivered.',
        diagnosis: '`tokenwatch_source_late_row_max_delay_seconds` against `tokenwatch_source_sweep_window_seconds`; the error log line "rows committed later than the sweep window". Look for transactions held open for hours on the source (pg_stat_activity, xact_start) or a writer that back-dates timestamps.',
        mitigation: 'Raise the source\'s sweepWindow above the longest commit delay (the sweep reads the whole window every sweepInterval: more database work). Fix the writer that holds transactions open. Rows already lost come back with a backfill into a fresh state directory.',
      },
      tests: [
        { name: 'fires when rows are found at the edge of the window', input: [counter(`tokenwatch_source_rows_beyond_sweep_window_total{${job},source="litellm",table="LiteLLM_SpendLogs"}`, '0x10 3x20')], evalTime: '20m', expect: [{ labels: { source: 'litellm', table: 'LiteLLM_SpendLogs' }, description: '3 rows of litellm/LiteLLM_SpendLogs committed so late that only the last sweep of their timestamp found them; later ones are never read.' }] },
        { name: 'silent while none are', input: [counter(`tokenwatch_source_rows_beyond_sweep_window_total{${job},source="litellm",table="LiteLLM_SpendLogs"}`, '0x30')], evalTime: '20m', expect: [] },
      ],
    },
    {
      alert: 'TokenwatchRowsMissing',
      severity: 'critical',
      component: 'pipeline',
      for: '0m',
      expr: `max by (source, table) (tokenwatch_reconcile_missing_rows{${job}}) > 0`,
      summary: 'Reconciliation found source rows that are not in the event store, and its repair did not deliver them.',
      description: '{{ $value | humanize }} rows of {{ $labels.source }}/{{ $labels.table }} on closed days are in the source but not in the event store after the repair.',
      runbook: {
        meaning: 'Every reconcileInterval (default 1 h) tokenwatch compares the source table\'s rows per day with the event store\'s, for closed days (older than the sweep window), and delivers the rows the store lacks. Rows still missing after that delivery are counted here.',
        impact: 'The event store, and the metrics of those rows, undercount the source. Dashboards built on ClickHouse miss these rows.',
        diagnosis: '`tokenwatch verify` prints the comparison per day. The error log line "rows of the source are still missing from the event store after repair" names the stream and days. Check `tokenwatch_sink_rows_rejected_total` (rows the store refused are in dead_letters) and `tokenwatch_sink_write_failures_total`.',
        mitigation: 'Fix what refuses the rows (see TokenwatchSinkRowsRejected and TokenwatchSinkWritesFailing); the next reconciliation delivers them again. If the source rows were deleted from the store by hand, reconciliation restores them.',
      },
      tests: [
        { name: 'fires when rows are still missing', input: [counter(`tokenwatch_reconcile_missing_rows{${job},source="claude-nexus-proxy",table="api_requests"}`, '0x10 4x20')], evalTime: '20m', expect: [{ labels: { source: 'claude-nexus-proxy', table: 'api_requests' }, description: '4 rows of claude-nexus-proxy/api_requests on closed days are in the source but not in the event store after the repair.' }] },
        { name: 'silent when the store holds every row', input: [counter(`tokenwatch_reconcile_missing_rows{${job},source="claude-nexus-proxy",table="api_requests"}`, '0x30')], evalTime: '20m', expect: [] },
      ],
    },
    {
      alert: 'TokenwatchSinkWritesFailing',
      severity: 'critical',
      component: 'pipeline',
      for: '5m',
      expr: `tokenwatch_sink_up{${job}} == 0`,
      summary: 'tokenwatch cannot write events to a sink (ClickHouse or a JSON-lines file).',
      description: 'Writes to sink {{ $labels.sink }} are failing.',
      runbook: {
        meaning: 'The last write to the sink failed; tokenwatch retries the same page on every poll.',
        impact: 'Events stop flowing to ClickHouse (conversation dashboards go stale) and the sources are not read further until writes succeed. Nothing is lost.',
        diagnosis: 'tokenwatch logs "poll failed" with the sink error; `tokenwatch_probe_up{kind="clickhouse"}`.',
        mitigation: 'Restore the ClickHouse server or disk space; tokenwatch catches up by itself.',
      },
      tests: [
        { name: 'fires while writes fail', input: [counter(`tokenwatch_sink_up{${job},sink="clickhouse"}`, '0x20')], evalTime: '10m', expect: [{ labels: { ...jobLabel, sink: 'clickhouse' }, description: 'Writes to sink clickhouse are failing.' }] },
        { name: 'silent when writes succeed', input: [counter(`tokenwatch_sink_up{${job},sink="clickhouse"}`, '1x20')], evalTime: '10m', expect: [] },
      ],
    },
    {
      alert: 'TokenwatchSinkRowsRejected',
      severity: 'warning',
      component: 'pipeline',
      for: '0m',
      expr: `sum by (sink, table, reason) (increase(tokenwatch_sink_rows_rejected_total{${job}}[1h])) > 0`,
      summary: 'The event store refused rows: they are set aside in dead_letters, not stored.',
      description: '{{ $value | humanize }} rows meant for {{ $labels.sink }} table {{ $labels.table }} were refused in the last hour ({{ $labels.reason }}).',
      runbook: {
        meaning: 'ClickHouse refused rows of a page (a value the column cannot hold, text it cannot parse). tokenwatch split the page until those rows were isolated, wrote the rest and kept each refused row, with its source id and the error, in the dead_letters table.',
        impact: 'Those rows are missing from ClickHouse (dashboards built on it undercount by that many rows); /metrics counted them. The stream goes on.',
        diagnosis: "SELECT failed_at, target_table, row_id, reason, error FROM tokenwatch.dead_letters ORDER BY failed_at DESC LIMIT 20; then look the row id up in the source table.",
        mitigation: 'Fix the writer of the source rows; rows fixed in the source come back with a backfill into a fresh state directory, or insert them from dead_letters by hand once the value fits.',
      },
      tests: [
        { name: 'fires when a row is refused', input: [counter(`tokenwatch_sink_rows_rejected_total{${job},sink="clickhouse",table="requests",reason="ARGUMENT_OUT_OF_BOUND"}`, '0x10 1x20')], evalTime: '20m', expect: [{ labels: { sink: 'clickhouse', table: 'requests', reason: 'ARGUMENT_OUT_OF_BOUND' }, description: '1 rows meant for clickhouse table requests were refused in the last hour (ARGUMENT_OUT_OF_BOUND).' }] },
        { name: 'silent while none are', input: [counter(`tokenwatch_sink_rows_rejected_total{${job},sink="clickhouse",table="requests",reason="ARGUMENT_OUT_OF_BOUND"}`, '0x30')], evalTime: '20m', expect: [] },
      ],
    },
    {
      alert: 'TokenwatchSourceDown',
      severity: 'critical',
      component: 'pipeline',
      for: '5m',
      expr: `tokenwatch_source_up{${job}} == 0`,
      summary: 'tokenwatch cannot read a source table.',
      description: 'Polls of {{ $labels.source }}/{{ $labels.table }} are failing.',
      runbook: {
        meaning: 'The last poll of the stream failed.',
        impact: 'Metrics of this source are frozen; traffic alerts for its tenants are blind.',
        diagnosis: 'tokenwatch logs "poll failed" with the database error; `tokenwatch check` on one screen.',
        mitigation: 'Restore database access (credentials, network, permissions); renamed columns go in `columns:`.',
      },
      tests: [
        { name: 'fires while polls fail', input: [counter(`tokenwatch_source_up{${job},source="litellm",table="LiteLLM_SpendLogs"}`, '0x20')], evalTime: '10m', expect: [{ labels: { ...jobLabel, source: 'litellm', table: 'LiteLLM_SpendLogs' }, description: 'Polls of litellm/LiteLLM_SpendLogs are failing.' }] },
        { name: 'silent when polls succeed', input: [counter(`tokenwatch_source_up{${job},source="litellm",table="LiteLLM_SpendLogs"}`, '1x20')], evalTime: '10m', expect: [] },
      ],
    },
    {
      alert: 'TokenwatchDependencyDown',
      severity: 'critical',
      component: 'pipeline',
      for: '5m',
      expr: `tokenwatch_probe_up{${job}} == 0`,
      summary: 'A dependency (PostgreSQL, ClickHouse, LiveKit or the upstream API) does not answer its probe.',
      description: '{{ $labels.kind }} dependency {{ $labels.probe }} is not answering.',
      runbook: {
        meaning: 'tokenwatch\'s probe of the dependency failed (PostgreSQL: SELECT 1; ClickHouse: /ping; HTTP: any answer below 500).',
        impact: 'PostgreSQL/ClickHouse: no fresh data. LiveKit or the upstream API: the platform itself is likely failing users.',
        diagnosis: '`tokenwatch_probe_duration_seconds` before the failure; the dependency\'s own health.',
        mitigation: 'Restore the dependency; page its owner.',
      },
      tests: [
        { name: 'fires when a probe fails', input: [counter(`tokenwatch_probe_up{${job},probe="livekit",kind="livekit"}`, '0x20')], evalTime: '10m', expect: [{ labels: { ...jobLabel, probe: 'livekit', kind: 'livekit' }, description: 'livekit dependency livekit is not answering.' }] },
        { name: 'silent when it answers', input: [counter(`tokenwatch_probe_up{${job},probe="livekit",kind="livekit"}`, '1x20')], evalTime: '10m', expect: [] },
      ],
    },
  ];
}
